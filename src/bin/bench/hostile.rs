//! Scenario 7 (issue 10): a hostile room. Whisper runs with its production per-socket limits
//! (message and byte rates, `SECURITY.md`); only the per-address and per-user limits stay
//! lifted, since the whole load comes from one address and a few users.
//!
//! `clients − 3` victims share one room at `latency_rate` deliveries/s, twice, for
//! `hostile_secs` each:
//!
//! * clean: the other three members are well-behaved readers;
//! * hostile: one floods — messages of "é" as large as a room frame may be once escaped
//!   (`WS_MAX_MESSAGE_BYTES`), sent as fast as the server reads them — one stops reading, and
//!   one reads and counts the flood messages that reached the room, whole.
//!
//! Victims must lose nothing, and their p99 should stay within 1.5× the clean run's. The
//! server's peak RSS of each run, what the flooder got through, and how the stopped reader
//! ended (its close code, or a reset, and when the server dropped it) come with the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::load::{Layout, StepResult, Swarm, Ws, connect, join};
use crate::login::login_all;
use crate::report::Report;
use crate::scenarios::BUSY_READ_BUFFER;
use crate::servers::{Server, healthz, rss_kib_of};
use crate::setup::{PASSWORD, Run};
use crate::{Sizes, Target};

/// Whisper's default per-socket rates (README settings table), put back over the bench's.
const PRODUCTION_RATES: [(&str, &str); 3] = [
    ("WS_MESSAGES_PER_SECOND", "20"),
    ("WS_MESSAGES_BURST", "60"),
    ("WS_BYTES_PER_SECOND", "262144"),
];

/// The default `WS_MAX_MESSAGE_BYTES`: the largest frame a message may make in its room.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The flood message's "é"s: its room frame, {"room": N, "username": "benchK", "message":
/// "\u00e9…"}, fits in `MAX_EVENT_BYTES` (200 bytes cover everything but the message).
const FLOOD_CHARS: usize = (MAX_EVENT_BYTES - 200) / 6;

/// One run of the victims' load with the server's peak RSS.
pub struct Measured {
    pub victims: StepResult,
    pub peak_rss_kib: u64,
}

/// What the abusers of the hostile run saw.
#[derive(Debug, Default)]
pub struct Abuse {
    /// Flood frames written; those that reached the room whole (counted by a member); the
    /// `RATE_LIMITED` answers the flooder read (it reads only while its writes go through).
    pub flood_sent: u64,
    pub flood_delivered: u64,
    pub flood_refused: u64,
    /// How the flooder's connection stood after the run.
    pub flooder: String,
    /// The size of one flood frame, in and escaped.
    pub flood_in_bytes: usize,
    pub flood_out_bytes: usize,
    /// How the stopped reader's connection ended once it read again.
    pub stopped_reader: String,
    /// Seconds from the hostile run's start until the server's open sockets fell by one.
    pub dropped_after: Option<f64>,
}

pub async fn hostile_room(run: &Run, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let extra: Vec<(&str, String)> = PRODUCTION_RATES
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    let server = Server::start(run, Target::Whisper, &extra, "whisper-hostile").await?;
    let outcome = on_server(run, sizes, &server).await;
    server.stop().await;
    let (clean, hostile, abuse) = outcome?;
    report.hostile(&clean, &hostile, &abuse);
    Ok(())
}

async fn on_server(
    run: &Run,
    sizes: &Sizes,
    server: &Server,
) -> anyhow::Result<(Measured, Measured, Abuse)> {
    let cookies: Vec<String> = login_all(&server.base_url(), &run.users, PASSWORD).await?;
    let room = run.rooms[0];
    let layout = Layout {
        addrs: vec![server.addr],
        sources: Vec::new(),
        rooms: vec![room],
        clients: sizes.clients.saturating_sub(3).max(1),
        senders: sizes.senders,
        cookies: cookies.iter().cloned().map(Some).collect(),
        read_buffer: BUSY_READ_BUFFER,
        concurrency: 64,
        connect_limit: Duration::from_secs(120),
        track_last: false,
    };
    let (mut swarm, _) = Swarm::connect(&layout).await.context("victims")?;
    let member = |i: usize| {
        let cookie = cookies[i % cookies.len()].clone();
        let addr = server.addr;
        async move {
            let mut ws = connect(addr, None, Some(&cookie), BUSY_READ_BUFFER).await?;
            join(&mut ws, room).await?;
            anyhow::Ok(ws)
        }
    };
    let duration = Duration::from_secs_f64(sizes.hostile_secs);

    let readers: Vec<_> = [member(0).await?, member(1).await?, member(2).await?]
        .into_iter()
        .map(|ws| tokio::spawn(ws.for_each(|_| async {})))
        .collect();
    let clean = measured(&mut swarm, sizes, server, duration).await?;
    eprintln!("bench: whisper: scenario 7 clean: {}", describe(&clean));
    for reader in readers {
        reader.abort();
    }
    swarm.settle(Duration::from_secs(5)).await;

    let flooder = member(3).await?;
    let stopped = member(4).await?;
    let observer = member(5).await?;
    let open = open_sockets(&server.base_url()).await?;
    let (stop, stopped_flag) = watch::channel(false);
    let counted = tokio::spawn(count_flood(observer, stopped_flag.clone(), FLOOD_CHARS * 6));
    let flood = tokio::spawn(flood(flooder, room, stopped_flag.clone()));
    let watcher = tokio::spawn(watch_drop(server.base_url(), open, duration * 3));
    let hostile = measured(&mut swarm, sizes, server, duration).await;
    let _ = stop.send(true);
    let mut abuse = flood.await?;
    abuse.flood_delivered = counted.await?;
    abuse.dropped_after = watcher.await?;
    abuse.stopped_reader = how_it_ended(stopped).await;
    let hostile = hostile?;
    eprintln!(
        "bench: whisper: scenario 7 hostile: {}; {abuse:?}",
        describe(&hostile)
    );
    Ok((clean, hostile, abuse))
}

fn describe(m: &Measured) -> String {
    let r = &m.victims;
    format!(
        "expected {} received {} lost {} closed {} p50 {:.2} ms p99 {:.2} ms max {:.1} ms, peak RSS {} KiB",
        r.expected,
        r.received,
        r.lost,
        r.closed,
        r.p(0.5),
        r.p(0.99),
        r.max_ms(),
        m.peak_rss_kib
    )
}

/// The victims' fixed-rate load, with the server's RSS sampled every 50 ms.
async fn measured(
    swarm: &mut Swarm,
    sizes: &Sizes,
    server: &Server,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let pid = server.pid().context("server exited")?;
    let (stop, mut stopped) = watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_kib_of(pid).unwrap_or(0));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stopped.changed() => break peak,
            }
        }
    });
    let victims = swarm
        .step(
            sizes.latency_rate as f64,
            duration,
            Duration::from_secs(5),
            None,
        )
        .await;
    let _ = stop.send(true);
    let peak_rss_kib = sampler.await?;
    Ok(Measured {
        victims: victims?,
        peak_rss_kib,
    })
}

/// Sends the largest escaped message a room frame may carry, as fast as the server reads,
/// until `stop`; counts the answers.
async fn flood(ws: Ws, room: i64, mut stop: watch::Receiver<bool>) -> Abuse {
    let text = format!(
        r#"{{"command": "send", "room": {room}, "message": "{}"}}"#,
        "é".repeat(FLOOD_CHARS)
    );
    let mut abuse = Abuse {
        flood_in_bytes: text.len(),
        flood_out_bytes: FLOOD_CHARS * 6,
        ..Abuse::default()
    };
    let message = Message::text(text);
    let (mut sink, mut stream) = ws.split();
    let refused = Arc::new(AtomicU64::new(0));
    let answers = tokio::spawn({
        let refused = refused.clone();
        async move {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with(r#"{"error": "RATE_LIMITED""#) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break format!("closed {:?}", frame.map(|f| u16::from(f.code)));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("reset ({e})"),
                    None => break "reset (end of stream)".to_string(),
                }
            }
        }
    });
    loop {
        tokio::select! {
            sent = sink.send(message.clone()) => match sent {
                Ok(()) => abuse.flood_sent += 1,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        }
    }
    // Once the flooder stops writing, it reads what was answered meanwhile.
    let read = tokio::time::timeout(Duration::from_secs(3), answers).await;
    abuse.flooder = match read {
        Ok(Ok(end)) => end,
        _ => "open".to_string(),
    };
    abuse.flood_refused = refused.load(Ordering::Relaxed);
    abuse
}

/// Counts the flood messages one member received whole (at least `whole` bytes), until `stop`
/// and for 2 s after (messages still in flight).
async fn count_flood(mut ws: Ws, mut stop: watch::Receiver<bool>, whole: usize) -> u64 {
    let mut count = 0;
    let mut tally = |msg: Message| {
        if let Message::Text(t) = msg
            && t.len() >= whole
            && t.contains(r#""message": "\u00e9"#)
        {
            count += 1;
        }
    };
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg)) => tally(msg),
                _ => break,
            },
            _ = stop.changed() => {
                let late = async {
                    while let Some(Ok(msg)) = ws.next().await {
                        tally(msg);
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), late).await;
                break;
            }
        }
    }
    count
}

async fn open_sockets(base: &str) -> anyhow::Result<u64> {
    healthz(base).await?["open_sockets"]
        .as_u64()
        .context("no open_sockets in /healthz")
}

/// Seconds until the server holds fewer than `open` sockets (the stopped reader dropped),
/// watched for up to `limit` (three runs): past the run, its blocked write still times out.
async fn watch_drop(base: String, open: u64, limit: Duration) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if open_sockets(&base).await.is_ok_and(|n| n < open) {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Reads what the stopped reader was sent, to its end: the close frame, a reset, or nothing
/// more for 3 s (the server kept it: everything it was sent fitted in the socket buffers).
async fn how_it_ended(mut ws: Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Err(_) => break "open: not closed by the server".to_string(),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                break format!("close {} {}", u16::from(frame.code), frame.reason);
            }
            Ok(Some(Ok(Message::Close(None)))) => {
                break format!("close {}", u16::from(CloseCode::Status));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => break format!("reset ({e})"),
            Ok(None) => break "reset (end of stream)".to_string(),
        }
    }
}
