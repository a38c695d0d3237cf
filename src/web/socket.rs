//! `/chat/stream/`: the WebSocket endpoint (spec §4).
//!
//! The handshake authenticates like Channels' `AuthMiddlewareStack` (cookie → session →
//! `get_user`) and refuses anonymous users with HTTP 403 before any socket exists (§4.2). A
//! browser `Origin` must belong to this site (closing cross-site WebSocket hijacking).
//!
//! Each connection is one task that handles, strictly in order, its inbound frames and its
//! outbound queue (`web::conn`); everything queued when it wakes goes out in one write. This
//! file is also the one place that decides which failures are answered and which close the
//! socket:
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
//! the close frame gets `CLOSE_WRITE_TIMEOUT` to leave; a peer that cannot take even that is
//! dropped. After a close of the server's own the connection lingers, reading and dropping
//! what the peer still sends, so the peer reads its close code, not a reset (`web::wire`). A
//! write never blocks the other rules: while one waits, the queue-full, keep-alive, shutdown
//! and revocation closes still fire (`web::conn`). No frame the server builds can break a
//! connection: frames are bounded by `WS_MAX_MESSAGE_BYTES`, the queue by
//! `WS_OUTBOUND_QUEUE_BYTES`, and frames go from the queue to the socket with no write buffer
//! between them.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tokio::time::Instant;
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;

use crate::chat::consumer::{Consumer, Outcome, UserSnapshot};
use crate::config::Settings;
use crate::django::sessions::AuthHashCheck;
use crate::fanout::{self, Inbox, Mailbox};
use crate::metrics::{COMMANDS, Handshake};
use crate::store::{StoreError, User};
use crate::web::conn::{Conn, Event, Timing};
use crate::web::error::WebError;
use crate::web::pages::cookie_headers;
use crate::web::revocation::Registration;
use crate::web::session::{Session, resolve_user};
use crate::web::throttle::UserSlot;
use crate::web::upgrade::Upgrade;
use crate::web::wire::Wire;
use crate::web::{AppState, SocketGuard, effects, security};

/// Per-socket read buffer: small, since most frames are ~100 bytes (tungstenite defaults to
/// 128 KiB). tungstenite zero-fills it on every read attempt, so its size is paid per read
/// (at 4 KiB that fill was a third of the server's CPU in the fan-out profile,
/// BENCHMARKS.md). Larger inbound frames still arrive whole, read in several chunks.
const READ_BUFFER: usize = 512;
/// The longest a rate-limited socket goes unread at a time (its keep-alive pongs wait too).
const MAX_READ_PAUSE: Duration = Duration::from_secs(1);

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
    let (mailbox, inbox) = fanout::mailbox(
        id,
        app.settings.ws_outbound_queue,
        app.settings.ws_outbound_queue_bytes,
    );
    let registration = app.live_sockets.register(
        id,
        user.id,
        session.key().map(str::to_string),
        session.data.auth_hash().unwrap_or_default(),
        user.is_staff,
        inbox.signal(),
    );
    app.keepalive.add(inbox.signal());
    // The socket's task outlives the request: its span is the request's child, so its lines
    // carry the request id and user id of its handshake, and its socket id. It is entered for
    // the socket's rare work (commands, the goodbye), not for every delivery.
    let held = Held {
        slot,
        registration,
        mailbox,
        inbox,
        span: tracing::info_span!("socket", socket_id = id),
    };
    let config = configure(&app.settings);
    app.metrics.handshake(Handshake::Accepted);
    upgrade
        .config(config)
        .finish(move |wire| run(app, wire, user, held))
}

/// The WebSocket protocol settings of every chat socket (also what the Autobahn|Testsuite
/// conformance run tests, `tests/autobahn.rs`).
pub fn configure(settings: &Settings) -> WebSocketConfig {
    let max = settings.ws_max_message_bytes;
    // tungstenite writes only control frames here (`web::wire`), so its write buffer settings
    // do not matter; data frames never pass through it.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
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

/// What a socket holds from its handshake until it ends: its user slot, its registration for
/// live revocation, its queue and its log span.
struct Held {
    slot: UserSlot,
    registration: Registration,
    mailbox: Mailbox,
    inbox: Inbox,
    span: tracing::Span,
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

/// The socket's task: what it needs is made here, before the task starts, so the task holds
/// each piece once (its state lives as long as the socket: its size is paid per member).
fn run(app: AppState, wire: Wire, user: User, held: Held) -> impl Future<Output = ()> + use<> {
    let Held {
        slot,
        registration,
        mailbox,
        inbox,
        span,
    } = held;
    let consumer = Consumer::new(
        snapshot(user),
        app.rooms.clone(),
        app.presence.clone(),
        app.settings.notify_users_on_enter_or_leave_rooms,
        app.settings.limits.socket,
    );
    let limits = &app.settings.limits;
    let timing = Timing {
        write_timeout: limits.ws_write_timeout,
        quiet_limit: limits.ws_ping_interval + limits.ws_ping_timeout,
    };
    let conn = Conn::new(wire, inbox, timing, app.metrics.deliveries.clone());
    let socket = Socket {
        _open: app.socket_opened(),
        _slot: slot,
        _registration: registration,
        mailbox,
        span,
        opened: Instant::now(),
    };
    serve(app, conn, consumer, socket)
}

/// What a running socket holds besides its connection and consumer.
struct Socket {
    _open: SocketGuard,
    _slot: UserSlot,
    _registration: Registration,
    mailbox: Mailbox,
    span: tracing::Span,
    opened: Instant,
}

/// The socket's task: not an `async fn`, whose arguments rustc stores twice (as arguments and
/// as locals); the block below uses them where they are.
#[allow(clippy::manual_async_fn)]
fn serve(
    app: AppState,
    mut conn: Conn,
    mut consumer: Consumer,
    socket: Socket,
) -> impl Future<Output = ()> {
    async move {
        let Socket { mailbox, span, .. } = &socket;
        span.in_scope(|| tracing::debug!("WebSocket open"));
        let (close, why) = loop {
            match poll_fn(|cx| conn.poll_event(cx)).await {
                Event::Text(text) => {
                    app.metrics.frame_received();
                    // Boxed in a statement of its own: the rare paths' state stays out of the
                    // task's, which lives as long as the socket.
                    let work = Box::pin(
                        async {
                            let effects = consumer.receive(text.as_str()).await;
                            count(&app, consumer.take_outcome());
                            effects::apply(&app, mailbox, effects).await;
                        }
                        .instrument(span.clone()),
                    );
                    work.await;
                    let pause = consumer.pause();
                    if !pause.is_zero() {
                        conn.pause(pause.min(MAX_READ_PAUSE));
                    }
                }
                Event::Demote => {
                    let work = Box::pin(
                        async {
                            let effects = consumer.demote().await;
                            effects::apply(&app, mailbox, effects).await;
                        }
                        .instrument(span.clone()),
                    );
                    work.await;
                }
                Event::End(close, why) => break (close, why),
            }
        };

        // Leave every joined room, whatever ended the connection (spec §4.11).
        let goodbye = Box::pin(
            async {
                let effects = consumer.disconnect().await;
                effects::apply(&app, mailbox, effects).await;
                conn.goodbye(close).await;
                let code = close.map(|(code, _)| code);
                app.metrics.closed(code, why);
                // One line per closed socket (its span adds the socket, user and request ids).
                tracing::info!(
                    code = code.map(u64::from),
                    reason = why,
                    duration_s = (socket.opened.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                    "WebSocket closed"
                );
            }
            .instrument(span.clone()),
        );
        goodbye.await;
    }
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

/// The connection task's state lives as long as the socket, so its size is paid per member:
/// 6,168 bytes before the rarely taken paths (a command, a demotion, the goodbye) were boxed,
/// 2,600 with tokio-tungstenite's stream and a `select!` over every source; 1,304 now (issue
/// 12).
#[cfg(test)]
mod size {
    use super::*;

    #[test]
    fn the_connection_task_stays_small() {
        fn size_of_output<F: Future>(
            _: &impl FnOnce(AppState, Conn, Consumer, Socket) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        let size = size_of_output(&serve);
        assert!(size <= 1400, "the connection future is {size} bytes");
    }
}
