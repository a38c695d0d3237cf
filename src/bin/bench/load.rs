//! The client side: WebSocket connections that log in by cookie and join rooms, paced senders,
//! and per-step delivery statistics.
//!
//! Every chat message the bench sends carries `bench <step> <sender> <seq> <sent_us>` as its
//! text; receivers find it in the delivered frame, so latency (receive time − send time on one
//! monotonic clock) and loss (expected − received, per step) need no server cooperation.
//! Each connection's receiver is its own task and records into its own [`Slot`] (a lock only
//! the collector contends, once per step), so the receiving side scales with the runtime's
//! threads and allocates nothing per message beyond what the WebSocket codec does.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;

pub use crate::connect::{Ws, connect, connect_many, join};
use crate::lasts::Lasts;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
type Sink = SplitSink<Ws, Message>;

/// Microseconds since the bench started, on the monotonic clock every sender and receiver share.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A latency histogram in microseconds, 1 µs to 10 min, two significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid histogram bounds")
}

/// What one receiver counted in the current step.
struct Tally {
    step: u32,
    received: u64,
    /// Bench messages of an earlier step (arrived after that step was collected).
    stale: u64,
    hist: Histogram<u64>,
}

/// One connection's statistics, shared by its receiver task and the collector.
pub struct Slot {
    tally: Mutex<Tally>,
    /// Set when the server closed the socket or it failed: every later delivery is lost.
    closed: AtomicBool,
    /// Leave notices received (`{"msg_type": 5, …}`), whatever the step.
    leaves: AtomicU64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            tally: Mutex::new(Tally {
                step: 0,
                received: 0,
                stale: 0,
                hist: histogram(),
            }),
            closed: AtomicBool::new(false),
            leaves: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Finds `bench <step> <sender> <seq> <sent_us>` in a delivered frame: (step, seq, sent_us).
/// Only the frame's head is searched, so a large frame (scenario 7's flood) costs no scan.
fn parse_bench_message(frame: &str) -> Option<(u32, u64, u64)> {
    const KEY: &[u8] = br#""message": "bench "#;
    const HEAD: usize = 256;
    let head = &frame.as_bytes()[..frame.len().min(HEAD)];
    let start = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &frame[start..];
    let end = rest.find('"')?;
    let mut fields = rest[..end].split(' ');
    let step = fields.next()?.parse().ok()?;
    let seq = fields.nth(1)?.parse().ok()?;
    let sent = fields.next()?.parse().ok()?;
    Some((step, seq, sent))
}

const LEAVE_NOTICE: &str = r#"{"msg_type": 5,"#;

async fn receive(mut stream: SplitStream<Ws>, slot: Arc<Slot>, lasts: Option<Arc<Lasts>>) {
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                if text.starts_with(LEAVE_NOTICE) {
                    slot.leaves.fetch_add(1, Ordering::Relaxed);
                } else if let Some((step, seq, sent)) = parse_bench_message(text.as_str()) {
                    let latency = now_us().saturating_sub(sent).max(1);
                    if let Some(lasts) = &lasts {
                        lasts.record(step, seq, latency);
                    }
                    let mut tally = slot.lock();
                    if tally.step == step {
                        tally.received += 1;
                        tally.hist.saturating_record(latency);
                    } else {
                        tally.stale += 1;
                    }
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    slot.closed.store(true, Ordering::Release);
}

/// One joined connection of a [`Swarm`].
struct Member {
    room: usize,
    slot: Arc<Slot>,
    /// The write half; taken by a sender task for the length of a step.
    sink: Option<Sink>,
    receiver: JoinHandle<()>,
}

/// How a swarm is laid out: which room and which server each client uses.
pub struct Layout {
    pub addrs: Vec<SocketAddr>,
    /// Loopback source addresses, round-robin (empty: the system's choice).
    pub sources: Vec<IpAddr>,
    /// Room ids (database ids; the bare server accepts any).
    pub rooms: Vec<i64>,
    pub clients: usize,
    /// Senders: at most one per room first, then more spread over the rooms.
    pub senders: usize,
    pub cookies: Vec<Option<String>>,
    pub read_buffer: usize,
    pub concurrency: usize,
    /// Give up connecting after this long.
    pub connect_limit: Duration,
    /// Track each message's last receipt (`StepResult::last`; one sender only).
    pub track_last: bool,
}

/// Connected, joined clients with a receiver task each.
pub struct Swarm {
    members: Vec<Member>,
    rooms: Vec<i64>,
    senders: Vec<usize>,
    step: u32,
    lasts: Option<Arc<Lasts>>,
}

/// The outcome of one step at a fixed offered rate.
pub struct StepResult {
    pub offered: f64,
    pub delivered_per_sec: f64,
    pub expected: u64,
    pub received: u64,
    pub lost: i64,
    /// Sockets the server closed during the step.
    pub closed: usize,
    /// The senders could not keep the offered rate (the server pushed back).
    pub behind: bool,
    pub hist: Histogram<u64>,
    /// Per message, the latency to its last receipt (layouts with `track_last`).
    pub last: Option<Histogram<u64>>,
}

impl StepResult {
    pub fn p(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    /// Zero loss, the senders kept up, and p99 within `p99_limit_ms`.
    pub fn holds(&self, p99_limit_ms: f64) -> bool {
        self.lost == 0 && self.closed == 0 && !self.behind && self.p(0.99) <= p99_limit_ms
    }
}

impl Swarm {
    /// Connects and joins the layout's clients and starts their receivers.
    pub async fn connect(layout: &Layout) -> anyhow::Result<(Swarm, Duration)> {
        let (sockets, took) = connect_many(
            &layout.addrs,
            &layout.sources,
            &layout.rooms,
            &layout.cookies,
            layout.clients,
            layout.read_buffer,
            layout.concurrency,
            layout.connect_limit,
        )
        .await?;
        let rooms = layout.rooms.len();
        let lasts = layout.track_last.then(|| Arc::new(Lasts::new()));
        let members = sockets
            .into_iter()
            .enumerate()
            .map(|(i, ws)| {
                let (sink, stream) = ws.split();
                let slot = Arc::new(Slot::new());
                let receiver = tokio::spawn(receive(stream, slot.clone(), lasts.clone()));
                Member {
                    room: i % rooms,
                    slot,
                    sink: Some(sink),
                    receiver,
                }
            })
            .collect::<Vec<_>>();
        // Client i is in room i % rooms, so clients 0..senders spread over the rooms.
        let senders = (0..layout.senders.min(members.len())).collect();
        let swarm = Swarm {
            members,
            rooms: layout.rooms.clone(),
            senders,
            step: 0,
            lasts,
        };
        Ok((swarm, took))
    }

    fn room_sizes(&self) -> Vec<u64> {
        let mut sizes = vec![0u64; self.rooms.len()];
        for m in &self.members {
            sizes[m.room] += 1;
        }
        sizes
    }

    /// Starts a new step: every receiver's counters restart, and frames of older steps are
    /// counted as stale from now on.
    fn begin_step(&mut self) -> u32 {
        self.step += 1;
        if let Some(lasts) = &self.lasts {
            lasts.begin(self.step);
        }
        for m in &self.members {
            let mut tally = m.slot.lock();
            tally.step = self.step;
            tally.received = 0;
            tally.stale = 0;
            tally.hist.reset();
        }
        self.step
    }

    fn totals(&self) -> (u64, u64, usize) {
        let (mut received, mut stale, mut closed) = (0, 0, 0);
        for m in &self.members {
            let tally = m.slot.lock();
            received += tally.received;
            stale += tally.stale;
            closed += usize::from(m.slot.closed.load(Ordering::Acquire));
        }
        (received, stale, closed)
    }

    /// Offers `rate` deliveries/s for `duration` (or until `stop` is set), then waits up to
    /// `drain` for the deliveries still in flight and counts what arrived.
    pub async fn step(
        &mut self,
        rate: f64,
        duration: Duration,
        drain: Duration,
        stop: Option<Arc<AtomicBool>>,
    ) -> anyhow::Result<StepResult> {
        let step = self.begin_step();
        let sizes = self.room_sizes();
        let senders = self.senders.len().max(1) as f64;
        let closed_before = self.totals().2;
        let stop = stop.unwrap_or_default();
        let mut tasks = Vec::new();
        for (k, &i) in self.senders.iter().enumerate() {
            let member = &mut self.members[i];
            let sink = member
                .sink
                .take()
                .ok_or_else(|| anyhow!("sender {i} busy"))?;
            let pace = Pace {
                step,
                sender: i,
                room: self.rooms[member.room],
                // Each sender offers an equal share of the deliveries; its room fans it out.
                per_sec: rate / senders / sizes[member.room] as f64,
                phase: k as f64 / senders,
                duration,
                stop: stop.clone(),
            };
            tasks.push(tokio::spawn(send_paced(sink, pace)));
        }
        let started = Instant::now();
        let mut expected = 0;
        let mut messages = 0;
        let mut behind = false;
        for (&i, task) in self.senders.clone().iter().zip(tasks) {
            let (sink, sent, planned) = task.await?;
            let room = self.members[i].room;
            expected += sent * sizes[room];
            messages += sent;
            behind |= (sent as f64) < planned * 0.95 - 1.0;
            self.members[i].sink = sink;
        }
        let send_secs = started.elapsed().as_secs_f64().max(1e-3);
        let deadline = Instant::now() + drain;
        loop {
            let (received, _, _) = self.totals();
            if received >= expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut hist = histogram();
        let mut received = 0;
        for m in &self.members {
            let tally = m.slot.lock();
            received += tally.received;
            hist.add(&tally.hist).ok();
        }
        let closed = self.totals().2 - closed_before;
        Ok(StepResult {
            offered: rate,
            delivered_per_sec: received as f64 / send_secs,
            expected,
            received,
            lost: expected as i64 - received as i64,
            closed,
            behind,
            hist,
            last: self.lasts.as_ref().map(|l| l.histogram(messages)),
        })
    }

    /// Drops the first `n` members' connections at once (no close frame: their TCP
    /// connections just end) and returns how many leave notices the others should then get:
    /// one per departed member of their room.
    pub fn disconnect_first(&mut self, n: usize) -> u64 {
        let n = n.min(self.members.len());
        let mut gone = vec![0u64; self.rooms.len()];
        for m in self.members.drain(..n) {
            gone[m.room] += 1;
            m.receiver.abort();
            drop(m.sink);
        }
        self.senders.retain(|&i| i >= n);
        for i in &mut self.senders {
            *i -= n;
        }
        let sizes = self.room_sizes();
        sizes
            .iter()
            .zip(&gone)
            .map(|(left, gone)| left * gone)
            .sum()
    }

    /// Leave notices received so far, over every member.
    pub fn leaves(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.slot.leaves.load(Ordering::Relaxed))
            .sum()
    }

    /// After an overloaded step: waits until late deliveries stop arriving (at most `limit`),
    /// so the next step starts on an idle server.
    pub async fn settle(&mut self, limit: Duration) {
        self.begin_step();
        let deadline = Instant::now() + limit;
        let mut last = u64::MAX;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (_, stale, _) = self.totals();
            if stale == last {
                break;
            }
            last = stale;
        }
    }

    /// Whether the server closed any socket (e.g. 1013 for a full queue): the swarm is then
    /// unusable for further steps.
    pub fn damaged(&self) -> bool {
        self.totals().2 > 0 || self.members.iter().any(|m| m.sink.is_none())
    }
}

/// A sender's schedule for one step.
struct Pace {
    step: u32,
    sender: usize,
    room: i64,
    /// Messages per second this sender offers.
    per_sec: f64,
    /// Offset in [0, 1) of a message interval, so senders do not fire together.
    phase: f64,
    duration: Duration,
    stop: Arc<AtomicBool>,
}

/// Sends on schedule: sleeps until the next message is due (at least 1 ms, at most 100 ms, so
/// a sender of 0.1 message/s does not wake 1,000 times a second) and writes whatever is due in
/// one flush. Returns the sink (None if the socket failed), messages sent and messages planned.
async fn send_paced(mut sink: Sink, pace: Pace) -> (Option<Sink>, u64, f64) {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut text = String::with_capacity(128);
    let ok = loop {
        let next_due = ((sent + 1) as f64 - pace.phase).max(0.0) / pace.per_sec.max(1e-9);
        let wait = (next_due - started.elapsed().as_secs_f64()).clamp(0.001, 0.1);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        let elapsed = started.elapsed();
        if elapsed >= pace.duration || pace.stop.load(Ordering::Acquire) {
            break true;
        }
        let due = (elapsed.as_secs_f64() * pace.per_sec + pace.phase).floor() as u64;
        if due <= sent {
            continue;
        }
        let mut failed = false;
        while sent < due {
            use std::fmt::Write;
            text.clear();
            let _ = write!(
                text,
                r#"{{"command": "send", "room": {}, "message": "bench {} {} {} {}"}}"#,
                pace.room,
                pace.step,
                pace.sender,
                sent,
                now_us()
            );
            if sink
                .feed(Message::Text(Utf8Bytes::from(text.as_str())))
                .await
                .is_err()
            {
                failed = true;
                break;
            }
            sent += 1;
        }
        if failed || sink.flush().await.is_err() {
            break false;
        }
    };
    let planned = started.elapsed().min(pace.duration).as_secs_f64() * pace.per_sec;
    (ok.then_some(sink), sent, planned)
}

#[cfg(test)]
mod tests {
    use super::parse_bench_message;

    #[test]
    fn finds_the_step_and_send_time_in_a_delivered_frame() {
        let frame =
            r#"{"msg_type": 0, "room": 3, "username": "u", "message": "bench 7 2 41 123456"}"#;
        assert_eq!(parse_bench_message(frame), Some((7, 41, 123_456)));
        assert_eq!(parse_bench_message(r#"{"join": "3", "title": "t"}"#), None);
    }
}
