//! A chat socket's event loop: what woke it, and what that asks of it.
//!
//! Everything that can wake a connection raises a bit on its queue (`fanout::Mailbox`): a
//! delivery, the socket becoming readable or writable, its timer, its keep-alive turn
//! (`web::keepalive`), the server shutting down, a revocation (`web::revocation`). Each wake
//! takes, under one lock, the frames queued and those bits, and polls only the sources that
//! changed: a delivery costs one take and one `writev`, not a poll of every source the
//! socket waits on (issue 12). Reading and writing wake the loop through wakers of their own
//! ([`READ`], [`WRITE`]), so a readable socket is read only when the kernel said so.
//!
//! The order of one turn is the rule of `web::socket`'s table: the queue-full, shutdown and
//! revocation closes first, then writing what is queued, then reading. [`Conn::poll_event`]
//! returns to the socket's task only for what needs the consumer (a text frame, a demotion)
//! or ends the connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};
use tungstenite::{Message, Utf8Bytes};

use crate::chat::protocol::Frame;
use crate::fanout::{CLOSE_SLOW_CONSUMER, Inbox, Wake};
use crate::web::revocation::{CLOSE_PASSWORD_CHANGED, CLOSE_SESSION_ENDED, CLOSE_USER_INACTIVE};
use crate::web::wire::{Close, Wire};

/// The socket is readable (its read waker fired).
pub const READ: Wake = Wake(1 << Wake::FIRST_FREE);
/// The socket takes writes again.
pub const WRITE: Wake = Wake(1 << (Wake::FIRST_FREE + 1));
/// The connection's timer fired (a write deadline, the end of a read pause).
pub const TIMER: Wake = Wake(1 << (Wake::FIRST_FREE + 2));
/// Its keep-alive turn came (`web::keepalive`).
pub const PING: Wake = Wake(1 << (Wake::FIRST_FREE + 3));
/// The server shuts down: close 1001.
pub const SHUTDOWN: Wake = Wake(1 << (Wake::FIRST_FREE + 4));
/// The user lost `is_staff`: leave the staff-only rooms.
pub const DEMOTE: Wake = Wake(1 << (Wake::FIRST_FREE + 5));
/// Revocations (`web::revocation`): the user was deleted, deactivated; the session ended;
/// the password changed.
pub const USER_DELETED: Wake = Wake(1 << (Wake::FIRST_FREE + 6));
pub const USER_DEACTIVATED: Wake = Wake(1 << (Wake::FIRST_FREE + 7));
pub const SESSION_ENDED: Wake = Wake(1 << (Wake::FIRST_FREE + 8));
pub const PASSWORD_CHANGED: Wake = Wake(1 << (Wake::FIRST_FREE + 9));
/// The revocations in the order they win, with the close each sends.
const REVOKED: [(Wake, Close); 4] = [
    (USER_DELETED, Some((CLOSE_USER_INACTIVE, "user deleted"))),
    (
        USER_DEACTIVATED,
        Some((CLOSE_USER_INACTIVE, "user deactivated")),
    ),
    (SESSION_ENDED, Some((CLOSE_SESSION_ENDED, "session ended"))),
    (
        PASSWORD_CHANGED,
        Some((CLOSE_PASSWORD_CHANGED, "password changed")),
    ),
];

pub const QUEUE_FULL: Close = Some((CLOSE_SLOW_CONSUMER, "outbound queue full"));
pub const SHUTTING_DOWN: Close = Some((1001, "server shutting down"));
pub const WRITE_TIMED_OUT: Close = Some((CLOSE_SLOW_CONSUMER, "write timed out"));
/// The reasons logged (and counted) when no close frame is sent.
pub const CLIENT_CLOSED: &str = "client closed";
pub const LOST: &str = "connection lost";
pub const KEEPALIVE: &str = "keep-alive timeout";

/// A close the server sends, with its reason as what is logged.
pub fn ends(close: Close) -> Event {
    Event::End(close, close.map_or(LOST, |(_, reason)| reason))
}

/// What the socket's task must handle.
#[derive(Debug)]
pub enum Event {
    /// A text frame for the consumer.
    Text(Utf8Bytes),
    /// Leave the staff-only rooms.
    Demote,
    /// The connection ends: the close frame to send, if any, and the reason to log.
    End(Close, &'static str),
}

/// The time limits a connection keeps.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `WS_WRITE_TIMEOUT`: how long a write may make no progress.
    pub write_timeout: Duration,
    /// `WS_PING_INTERVAL` + `WS_PING_TIMEOUT`: how long the peer may send nothing.
    pub quiet_limit: Duration,
}

pub struct Conn {
    wire: Wire,
    inbox: Inbox,
    /// Frames taken from the inbox, written in order.
    queue: VecDeque<Frame>,
    read_waker: Waker,
    write_waker: Waker,
    timer_waker: Waker,
    /// The socket may have something to read (it said so, or nobody asked yet).
    can_read: bool,
    /// A write is waiting for the socket to take more.
    write_blocked: bool,
    /// Reading waits until then (after `RATE_LIMITED`).
    paused_until: Option<Instant>,
    /// A stuck write ends the connection then, unless the socket took bytes since (the count
    /// of bytes written when the deadline was set).
    write_deadline: Option<(Instant, u64)>,
    /// Made on first need (few sockets ever pause or block).
    timer: Option<Pin<Box<Sleep>>>,
    last_seen: Instant,
    timing: Timing,
    deliveries: Counter,
}

impl Conn {
    pub fn new(wire: Wire, inbox: Inbox, timing: Timing, deliveries: Counter) -> Conn {
        Conn {
            read_waker: inbox.waker(READ),
            write_waker: inbox.waker(WRITE),
            timer_waker: inbox.waker(TIMER),
            wire,
            inbox,
            queue: VecDeque::new(),
            can_read: true,
            write_blocked: false,
            paused_until: None,
            write_deadline: None,
            timer: None,
            last_seen: Instant::now(),
            timing,
            deliveries,
        }
    }

    /// Stops reading for `pause` (a frame was refused for its rate).
    pub fn pause(&mut self, pause: Duration) {
        self.paused_until = Some(Instant::now() + pause);
        self.arm_timer();
    }

    /// Drives the socket until the task has something to do.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            let woke = self.inbox.take(cx, &mut self.queue, !self.write_blocked);
            if let Some(event) = self.closing(woke) {
                return Poll::Ready(event);
            }
            if woke.contains(READ) {
                self.can_read = true;
            }
            if woke.contains(WRITE) {
                self.write_blocked = false;
            }
            if woke.contains(TIMER)
                && let Some(end) = self.timer_fired()
            {
                return Poll::Ready(end);
            }
            if woke.contains(PING) {
                if self.last_seen.elapsed() > self.timing.quiet_limit {
                    return Poll::Ready(Event::End(None, KEEPALIVE));
                }
                self.wire.queue_ping();
            }
            if woke.contains(DEMOTE) {
                return Poll::Ready(Event::Demote);
            }
            if let Some(end) = self.write() {
                return Poll::Ready(end);
            }
            if self.can_read && self.paused_until.is_none() {
                let mut cx = Context::from_waker(&self.read_waker);
                match self.wire.poll_read(&mut cx) {
                    Poll::Pending => self.can_read = false,
                    Poll::Ready(read) => {
                        self.last_seen = Instant::now();
                        if let Some(event) = received(read) {
                            return Poll::Ready(event);
                        }
                        // A ping or pong: its reply (if any) is written on the next turn.
                        continue;
                    }
                }
            }
            if !self.write_blocked && self.wire.has_output(&self.queue) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// The closes that win over everything queued.
    fn closing(&self, woke: Wake) -> Option<Event> {
        if woke.contains(Wake::OVERFLOW) {
            return Some(ends(QUEUE_FULL));
        }
        if woke.contains(SHUTDOWN) {
            return Some(ends(SHUTTING_DOWN));
        }
        REVOKED
            .iter()
            .find(|(bit, _)| woke.contains(*bit))
            .map(|(_, close)| ends(*close))
    }

    /// Writes what is queued; `Some` when the connection is lost.
    fn write(&mut self) -> Option<Event> {
        if self.write_blocked || !self.wire.has_output(&self.queue) {
            return None;
        }
        let before = self.queue.len();
        let mut cx = Context::from_waker(&self.write_waker);
        let result = self.wire.poll_write(&mut cx, &mut self.queue);
        self.deliveries.inc_by((before - self.queue.len()) as u64);
        match result {
            Poll::Ready(Ok(())) => {
                self.write_deadline = None;
                // A burst's buffer goes back rather than stay with an idle socket.
                if self.queue.capacity() > 64 {
                    self.queue = VecDeque::new();
                }
                None
            }
            Poll::Ready(Err(_)) => Some(Event::End(None, LOST)),
            Poll::Pending => {
                self.write_blocked = true;
                let written = self.wire.written();
                match self.write_deadline {
                    Some((_, at)) if at == written => {}
                    _ => {
                        let deadline = Instant::now() + self.timing.write_timeout;
                        self.write_deadline = Some((deadline, written));
                        self.arm_timer();
                    }
                }
                None
            }
        }
    }

    /// After the timer fired: a stuck write ends the connection, a pause is over.
    fn timer_fired(&mut self) -> Option<Event> {
        let now = Instant::now();
        if let Some((deadline, at)) = self.write_deadline
            && now >= deadline
        {
            if self.write_blocked && at == self.wire.written() {
                return Some(ends(WRITE_TIMED_OUT));
            }
            self.write_deadline = None;
        }
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
        }
        self.arm_timer();
        None
    }

    /// Sets the timer to the nearest deadline still ahead.
    fn arm_timer(&mut self) {
        let next = [self.write_deadline.map(|(at, _)| at), self.paused_until]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
        timer.as_mut().reset(next);
        if timer
            .as_mut()
            .poll(&mut Context::from_waker(&self.timer_waker))
            .is_ready()
        {
            self.timer_waker.wake_by_ref();
        }
    }

    /// Ends the connection (see `Wire::goodbye`); the frames not yet started are dropped.
    pub async fn goodbye(mut self, close: Close) {
        let queue = std::mem::take(&mut self.queue);
        drop(self.inbox);
        self.wire.goodbye(queue, close).await;
    }
}

/// What a frame read from the peer asks for; `None` for pings and pongs.
fn received(read: Result<Message, tungstenite::Error>) -> Option<Event> {
    match read {
        Ok(Message::Text(text)) => Some(Event::Text(text)),
        Ok(Message::Binary(_)) => Some(ends(Some((1003, "binary frames are not supported")))),
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
        Ok(Message::Close(frame)) => {
            if let Some(frame) = frame {
                tracing::debug!(client_code = u16::from(frame.code), client_reason = %frame.reason, "client closed");
            }
            Some(Event::End(None, CLIENT_CLOSED))
        }
        Err(e) => Some(match close_for(e) {
            Some(close) => ends(Some(close)),
            None => Event::End(None, LOST),
        }),
    }
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
