//! `/chat/stream/`: the WebSocket endpoint (spec §4).
//!
//! The handshake authenticates like Channels' `AuthMiddlewareStack` (cookie → session →
//! `get_user`) and refuses anonymous users with HTTP 403 before any socket exists (§4.2). A
//! browser `Origin` must belong to this site (closing cross-site WebSocket hijacking).
//!
//! Each connection is one task that handles, strictly in order, its inbound frames and its
//! outbound queue. Queued frames are written in batches and flushed once per batch. This file
//! is also the one place that decides which failures are answered and which close the socket:
//!
//! | what | answer |
//! |---|---|
//! | database or session cache unreachable at the handshake | HTTP 503, no socket |
//! | more than `WS_HANDSHAKES_PER_MINUTE` from one address, or `WS_MAX_SOCKETS_PER_USER` open | HTTP 429, no socket |
//! | malformed or unknown command, bad room | `{"error": CODE}` reply, socket stays open |
//! | too fast, too many rooms, room value or room frame too large (`chat::limits`) | `{"error": "RATE_LIMITED"}` / `TOO_MANY_ROOMS` / `ROOM_INVALID` / `MESSAGE_TOO_LARGE`, socket stays open; after `RATE_LIMITED` the socket is not read until the next token (at most [`MAX_READ_PAUSE`] at a time) |
//! | `room_users` for a staff-only room, from a non-staff user | `{"error": "ROOM_ACCESS_DENIED"}` |
//! | binary frame | close 1003 |
//! | frame over `WS_MAX_MESSAGE_BYTES` | close 1009 |
//! | invalid UTF-8 / protocol violation | close 1007 / 1002 |
//! | outbound queue full (client too slow) | close 1013 |
//! | a write not done within `WS_WRITE_TIMEOUT` (client stopped reading) | close 1013 |
//! | no traffic for `WS_PING_INTERVAL` + `WS_PING_TIMEOUT` (50 s: a ping every 20 s unanswered, like Daphne) | connection dropped |
//! | server shutting down | close 1001 |
//! | session ended / password changed / user deactivated elsewhere (`web::revocation`) | leave notices, then close 4001 / 4002 / 4003 |
//! | `is_staff` lost elsewhere | `{"leave": id}` and `{"error": "ROOM_ACCESS_DENIED"}` per staff-only room left |
//!
//! Whatever ends a connection, the leave procedure runs for every joined room (§4.11), then
//! the close frame gets [`CLOSE_WRITE_TIMEOUT`] to leave; a peer that cannot take even that is
//! dropped. After a close of the server's own the connection lingers ([`LINGER`]), reading
//! and dropping what the peer still sends, so the peer reads its close code, not a reset. A write never blocks the other rules: while one waits, the queue-full, keep-alive
//! and shutdown closes still fire. No frame the server builds can break a connection: the
//! write buffer is unbounded (frames are bounded by `WS_MAX_MESSAGE_BYTES` and the queue by
//! `WS_OUTBOUND_QUEUE_BYTES`), and messages over 8 KiB go out in fragments, so it stays small
//! (`web::upgrade`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use tracing::Instrument;

use crate::chat::consumer::{Consumer, Outcome, UserSnapshot};
use crate::chat::protocol::Frame;
use crate::config::Settings;
use crate::django::sessions::AuthHashCheck;
use crate::fanout::{self, CLOSE_SLOW_CONSUMER, ConnId, Inbox};
use crate::metrics::{COMMANDS, Handshake, Metrics};
use crate::store::{StoreError, User};
use crate::web::error::WebError;
use crate::web::pages::cookie_headers;
use crate::web::revocation::{Control, ControlSlot, Registration};
use crate::web::session::{Session, resolve_user};
use crate::web::throttle::UserSlot;
use crate::web::upgrade::{self, Upgrade, WebSocket};
use crate::web::{AppState, effects, security};

/// Keep-alive pings (`WS_PING_INTERVAL`, Daphne's 20 s by default) fall on a grid of this step
/// from the process's `ping_epoch`, so the sockets due in one step share one timer wake-up.
const PING_GRID: Duration = Duration::from_millis(250);
/// Frames written before one flush.
const MAX_BATCH: usize = 64;
/// Per-socket buffers: small, since most frames are ~100 bytes (tungstenite defaults to 128 KiB).
/// tungstenite zero-fills `READ_BUFFER` bytes on every read attempt, and the connection loop
/// attempts a read each time it wakes (for queued frames too), so this size is paid per wake:
/// at 4 KiB that fill was a third of the server's CPU in the fan-out profile (BENCHMARKS.md).
/// Larger inbound frames still arrive whole, read in several chunks.
const READ_BUFFER: usize = 512;
const WRITE_BUFFER: usize = 8 * 1024;
/// The longest a rate-limited socket goes unread at a time (its keep-alive pongs wait too).
const MAX_READ_PAUSE: Duration = Duration::from_secs(1);
/// How long the close frame may take once a connection ends.
pub const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection the server closed waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// The handshake: Origin, the client address's handshake rate, then the session's user
/// (anonymous → 403 with an empty body) and the user's socket count.
pub async fn handshake(
    State(app): State<AppState>,
    Extension(ConnectInfo(peer)): Extension<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Response {
    if !security::websocket_origin_allowed(&app, &headers) {
        tracing::warn!(origin = ?headers.get("origin"), "WebSocket refused: foreign Origin");
        app.metrics.handshake(Handshake::ForeignOrigin);
        return StatusCode::FORBIDDEN.into_response();
    }
    let client = security::client_ip(&app, peer.ip(), &headers);
    if let Err(wait) = app.handshakes.take(&client, Instant::now()) {
        app.metrics.handshake(Handshake::Throttled);
        return WebError::TooManyRequests {
            what: "WS_HANDSHAKES_PER_MINUTE",
            retry_after: wait.as_secs_f64().ceil() as u64,
        }
        .into_response();
    }
    let (user, session) = match authenticate(&app, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            app.metrics.handshake(Handshake::Anonymous);
            return StatusCode::FORBIDDEN.into_response();
        }
        Err(e) => {
            app.metrics.handshake(Handshake::Unavailable);
            return WebError::Store(e).into_response();
        }
    };
    let Some(slot) = app.user_sockets.acquire(user.id) else {
        app.metrics.handshake(Handshake::Throttled);
        return WebError::TooManyRequests {
            what: "WS_MAX_SOCKETS_PER_USER",
            retry_after: 5,
        }
        .into_response();
    };
    let id = app.next_conn_id();
    let (registration, control) = app.live_sockets.register(
        id,
        user.id,
        session.key().map(str::to_string),
        session.data.auth_hash().unwrap_or_default(),
        user.is_staff,
    );
    let held = Held {
        id,
        _slot: slot,
        _registration: registration,
        control,
    };
    let config = configure(&app.settings);
    app.metrics.handshake(Handshake::Accepted);
    // The socket's task outlives the request: its span is the request's child, so its lines
    // carry the request id and user id of its handshake, and its socket id.
    let span = tracing::info_span!("socket", socket_id = id);
    upgrade
        .config(config)
        .finish(move |socket| run(app, socket, user, held).instrument(span))
}

/// The WebSocket protocol settings of every chat socket (also what the Autobahn|Testsuite
/// conformance run tests, `tests/autobahn.rs`).
pub fn configure(settings: &Settings) -> WebSocketConfig {
    let max = settings.ws_max_message_bytes;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Unbounded here: tungstenite fails a connection whose frame does not fit, and an
        // event escaped to 6× its message did (issue 10). What is queued is bounded upstream,
        // and large messages go out in fragments (`web::upgrade`), so the buffer stays small.
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Channels' `get_user`: the session's user if the auth hash matches (a fallback key counts,
/// and nothing is saved, as WebSockets never save sessions); a mismatch flushes the session,
/// as Channels does (django-internals §8).
async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, Session)>, StoreError> {
    let now = Utc::now();
    let mut session = Session::load(app, &cookie_headers(headers), now).await?;
    match resolve_user(app, &session.data).await? {
        (Some(user), AuthHashCheck::Current | AuthHashCheck::Fallback) => Ok(Some((user, session))),
        (Some(_), AuthHashCheck::Mismatch) => {
            session.flush(app).await?;
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}

/// Why the loop ended, and the close frame to send if any.
pub type Close = Option<(u16, &'static str)>;

/// What a socket holds from its handshake until it ends: its user slot, its registration for
/// live revocation and the controls that arrive through it.
struct Held {
    id: ConnId,
    _slot: UserSlot,
    _registration: Registration,
    control: std::sync::Arc<ControlSlot>,
}

/// What the consumer keeps of the user: the rest of the row (password hash, email, …) goes now
/// rather than living as long as the socket.
fn snapshot(user: User) -> UserSnapshot {
    UserSnapshot {
        id: user.id,
        username: user.username,
        name: user.name.unwrap_or_default(),
        is_staff: user.is_staff,
    }
}

async fn run(app: AppState, mut socket: WebSocket, user: User, held: Held) {
    let _open = app.socket_opened();
    let Held { id, control, .. } = held;
    let (mailbox, mut inbox) = fanout::mailbox(
        id,
        app.settings.ws_outbound_queue,
        app.settings.ws_outbound_queue_bytes,
    );
    let overflow = inbox.overflow_signal();
    let snapshot = snapshot(user);
    tracing::debug!("WebSocket open");
    let opened = Instant::now();
    let mut consumer = Consumer::new(
        snapshot,
        app.rooms.clone(),
        app.presence.clone(),
        app.settings.notify_users_on_enter_or_leave_rooms,
        app.settings.limits.socket,
    );
    let write_timeout = app.settings.limits.ws_write_timeout;
    let mut shutdown = app.shutdown.clone();
    let limits = &app.settings.limits;
    let every = ping_interval(limits.ws_ping_interval);
    let mut ping = tokio::time::interval_at(first_ping(app.ping_epoch, every), every);
    let mut last_seen = Instant::now();
    let quiet_limit = limits.ws_ping_interval + limits.ws_ping_timeout;
    let silent = |last_seen: Instant| last_seen.elapsed() > quiet_limit;
    // Reading stops until `resume` fires after a frame refused for its rate (`Consumer::pause`).
    let mut paused = false;
    // Made once and polled in place, not remade on every turn of the loop: the overflow and
    // shutdown waits stay registered, one timer serves each write's deadline and one the read
    // pause (issue 12: remaking them was a fifth of the instructions per delivery).
    let overflowed = overflow.wait();
    let shutting_down = shutdown.changed();
    let deadline = tokio::time::sleep(Duration::ZERO);
    let resume = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(overflowed, shutting_down, deadline, resume);

    // The queue-full, shutdown and revocation closes win over delivering what is queued. A
    // busy socket finds its frames ready at once and reads these as flags; the waits below are
    // only polled when it has nothing to write (or a write is stuck).
    let stopping = app.shutdown.clone();
    let closing = |inbox: &Inbox| {
        if inbox.is_overflowed() {
            Some(ends(QUEUE_FULL))
        } else if stopping.has_changed().unwrap_or(true) {
            Some(ends(SHUTTING_DOWN))
        } else if let Some(Control::Revoke(code, reason)) = control.revocation() {
            Some(ends(Some((code, reason))))
        } else {
            None
        }
    };

    let (close, why): (Close, &'static str) = loop {
        tokio::select! {
            biased;
            Some(frame) = inbox.recv() => {
                if let Some(close) = closing(&inbox) {
                    break close;
                }
                // The write has its deadline, and the other closes still fire while it waits.
                deadline.as_mut().reset(Instant::now() + write_timeout);
                let write = write_batch(&mut socket, frame, &mut inbox, &app.metrics);
                tokio::pin!(write);
                let outcome = loop {
                    tokio::select! {
                        biased;
                        done = &mut write => break match done {
                            Ok(()) => Ok(()),
                            Err(_) => Err((None, LOST)),
                        },
                        _ = &mut overflowed => break Err(ends(QUEUE_FULL)),
                        _ = &mut shutting_down => break Err(ends(SHUTTING_DOWN)),
                        _ = ping.tick() => if silent(last_seen) { break Err((None, KEEPALIVE)) },
                        _ = &mut deadline => break Err(ends(WRITE_TIMED_OUT)),
                    }
                };
                if let Err(close) = outcome {
                    break close;
                }
            }
            _ = &mut overflowed => break ends(QUEUE_FULL),
            _ = &mut shutting_down => break ends(SHUTTING_DOWN),
            ctrl = control.recv() => match ctrl {
                Control::Revoke(code, reason) => break ends(Some((code, reason))),
                Control::Demote => {
                    let effects = Box::pin(consumer.demote()).await;
                    Box::pin(effects::apply(&app, &mailbox, effects)).await;
                }
            },
            _ = &mut resume, if paused => {
                paused = false;
            }
            msg = socket.next(), if !paused => {
                last_seen = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        app.metrics.frame_received();
                        let effects = Box::pin(consumer.receive(text.as_str())).await;
                        count(&app, consumer.take_outcome());
                        Box::pin(effects::apply(&app, &mailbox, effects)).await;
                        let pause = consumer.pause();
                        if !pause.is_zero() {
                            resume.as_mut().reset(Instant::now() + pause.min(MAX_READ_PAUSE));
                            paused = true;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => break ends(Some((1003, "binary frames are not supported"))),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        if let Some(frame) = frame {
                            tracing::debug!(client_code = u16::from(frame.code), client_reason = %frame.reason, "client closed");
                        }
                        break (None, CLIENT_CLOSED);
                    }
                    None => break (None, LOST),
                    Some(Err(e)) => break match close_for(e) {
                        Some(close) => ends(Some(close)),
                        None => (None, LOST),
                    },
                }
            }
            _ = ping.tick() => {
                if silent(last_seen) {
                    break (None, KEEPALIVE);
                }
                let ping = socket.send(Message::Ping(bytes::Bytes::from_static(b"whisper!")));
                match tokio::time::timeout(write_timeout, ping).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break (None, LOST),
                    Err(_) => break ends(WRITE_TIMED_OUT),
                }
            }
        }
    };

    // Leave every joined room, whatever ended the connection (spec §4.11).
    let effects = Box::pin(consumer.disconnect()).await;
    Box::pin(effects::apply(&app, &mailbox, effects)).await;
    drop(inbox);
    Box::pin(goodbye(&mut socket, close)).await;
    let code = close.map(|(code, _)| code);
    app.metrics.closed(code, why);
    // One line per closed socket (its span adds the socket, user and request ids).
    tracing::info!(
        code = code.map(u64::from),
        reason = why,
        duration_s = (opened.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "WebSocket closed"
    );
}

/// `WS_PING_INTERVAL` as a whole number of grid steps (at least one).
fn ping_interval(setting: Duration) -> Duration {
    let steps = (setting.as_secs_f64() / PING_GRID.as_secs_f64())
        .round()
        .max(1.0);
    PING_GRID * steps as u32
}

/// A socket's first keep-alive ping: a random point of the grid between half an interval and
/// an interval from now, then every `every` (a whole number of grid steps). Sockets that
/// connect together (a restart's reconnect wave) would otherwise ping together at every
/// interval; so their pings spread evenly over it, and the sockets of one grid step share one
/// timer wake-up (issue 12, BENCHMARKS.md).
fn first_ping(epoch: Instant, every: Duration) -> Instant {
    let steps = (every.as_millis() / PING_GRID.as_millis()).max(1);
    let earliest = Instant::now() + every / 2 - epoch;
    let slot = earliest.as_millis().div_ceil(PING_GRID.as_millis())
        + rand::random_range(0..steps.div_ceil(2));
    epoch + PING_GRID * slot as u32
}

/// The reasons logged (and counted) when no close frame is sent.
const CLIENT_CLOSED: &str = "client closed";
const LOST: &str = "connection lost";
const KEEPALIVE: &str = "keep-alive timeout";
const WRITE_TIMED_OUT: Close = Some((CLOSE_SLOW_CONSUMER, "write timed out"));

/// A close the server sends, with its reason as what is logged.
fn ends(close: Close) -> (Close, &'static str) {
    (close, close.map_or(LOST, |(_, reason)| reason))
}

/// Counts a frame's outcome: the command done, or the error it was answered with.
fn count(app: &AppState, outcome: Option<Outcome>) {
    match outcome {
        Some(Outcome::Done(name)) => {
            if let Some(i) = COMMANDS.iter().position(|c| *c == name) {
                app.metrics.command(i);
            }
        }
        Some(Outcome::Refused(error)) => app.metrics.refused(error.code()),
        None => {}
    }
}

/// Ends a connection: sends `close` (or, when the peer closed, flushes the close reply
/// tungstenite queued) within [`CLOSE_WRITE_TIMEOUT`]; a peer that cannot take even that is
/// dropped with its TCP connection. After a close of the server's own, the connection lingers.
pub async fn goodbye(socket: &mut WebSocket, close: Close) {
    let send = async {
        match close {
            Some((code, reason)) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                socket.send(Message::Close(Some(frame))).await
            }
            None => socket.flush().await,
        }
    };
    match tokio::time::timeout(CLOSE_WRITE_TIMEOUT, send).await {
        Ok(Ok(())) if close.is_some() => linger(socket).await,
        _ => {}
    }
}

/// A lingering close (RFC 6455 §7.1.1: the server closes TCP once the client has answered):
/// after the server's close frame, its side of the TCP connection is shut and what the peer
/// still sends is read and dropped, until the peer closes or for at most [`LINGER`]. Closed
/// at once instead, a connection with unread bytes (the rest of a frame over the limit, say)
/// ends in a TCP reset, which can throw away the close frame before the peer reads it.
async fn linger(socket: &mut WebSocket) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = socket.get_mut();
    let drain = async {
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

const QUEUE_FULL: Close = Some((CLOSE_SLOW_CONSUMER, "outbound queue full"));
const SHUTTING_DOWN: Close = Some((1001, "server shutting down"));

/// Writes `first` and whatever else is queued (up to a batch), then flushes once; counts the
/// frames once per batch.
async fn write_batch(
    socket: &mut WebSocket,
    first: Frame,
    inbox: &mut Inbox,
    metrics: &Metrics,
) -> Result<(), tungstenite::Error> {
    upgrade::send_text(socket, first.into_inner()).await?;
    let mut written = 1;
    for _ in 1..MAX_BATCH {
        match inbox.try_recv() {
            Some(frame) => {
                upgrade::send_text(socket, frame.into_inner()).await?;
                written += 1;
            }
            None => break,
        }
    }
    metrics.deliveries.inc_by(written);
    socket.flush().await
}

/// The close to send after a read error, if the connection can still take one.
pub fn close_for(err: tungstenite::Error) -> Close {
    use tungstenite::error::Error;
    match err {
        Error::Capacity(_) => Some((1009, "message too big")),
        Error::Utf8(_) => Some((1007, "invalid UTF-8")),
        Error::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pings_fall_on_the_grid_between_10_and_20_s() {
        let every = ping_interval(Duration::from_secs(20));
        assert_eq!(every, Duration::from_secs(20));
        assert_eq!(ping_interval(Duration::from_millis(10)), PING_GRID);
        assert_eq!(ping_interval(Duration::from_millis(1100)), PING_GRID * 4);
        let now = Instant::now();
        let epoch = now - Duration::from_millis(1234);
        let mut slots = std::collections::HashSet::new();
        for _ in 0..2000 {
            let first = first_ping(epoch, every);
            assert!(first >= now + every / 2 && first < now + every + PING_GRID);
            let since = first - epoch;
            assert_eq!(since.as_millis() % PING_GRID.as_millis(), 0);
            slots.insert(since.as_millis());
        }
        // Spread over the whole range of 40 steps, not bunched.
        assert_eq!(slots.len(), 40);
    }
}

/// The connection task's state lives as long as the socket, so its size is paid per member:
/// 6,168 bytes before the rarely taken paths (a command, a demotion, the goodbye) were boxed,
/// most of a member's memory (issue 12).
#[cfg(test)]
mod size {
    use super::*;

    fn output_size<A, B, C, D, F: Future>(_: &impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn the_connection_task_stays_small() {
        // 2,600 bytes now, in the test profile as in release.
        let size = output_size(&run);
        assert!(size <= 3072, "the connection future is {size} bytes");
    }
}
