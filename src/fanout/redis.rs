//! Fan-out between Whisper processes over Redis pub/sub (`REDIS_URL` set).
//!
//! [`RedisBroker`] wraps a [`LocalHub`] for the members connected to this process:
//!
//! * `group_send` hands the frame to the local members at once (no round trip, so §4.12's
//!   self-delivery order is exactly the single-process one), then queues ONE publication on
//!   channel `REDIS_PREFIX + group`. The queue is bounded and never waited on: when it is full,
//!   or Redis is away, the publication is dropped and counted.
//! * One background task owns the publishing connection and sends whatever is queued as one
//!   pipeline. One connection, one task, FIFO queue: a sender's events reach Redis, and so
//!   every other process, in the order they were produced.
//! * Another task owns a pub/sub connection subscribed to the groups that have local members
//!   only (SUBSCRIBE on the first local member, UNSUBSCRIBE after the last one leaves). A
//!   received payload is handed to the local hub, unless this process published it.
//! * Payload: `WSP1` + a random 16-byte process id + the frame's bytes (serialised once).
//! * Losing Redis: both tasks reconnect with capped exponential back-off, and the subscriber
//!   subscribes again to every wanted group. Meanwhile local delivery goes on; the outage is
//!   logged once and the recovery once; nothing blocks and nothing panics.
//!
//! A process only hears what was published after its SUBSCRIBE was confirmed (pub/sub keeps
//! nothing), exactly as channels_redis' pub/sub layer behaves.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::{Broker, ConnId, LocalHub, Mailbox};
use crate::chat::protocol::Frame;

/// `REDIS_PREFIX`'s default.
pub const DEFAULT_PREFIX: &str = "whisper:";

const MAGIC: &[u8; 4] = b"WSP1";
const PROCESS_ID_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + PROCESS_ID_LEN;
/// Publications waiting for the publisher task; beyond this they are dropped and counted.
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Publications sent as one pipeline at most.
const MAX_PIPELINE: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// An idle publishing connection is PINGed this often, so an outage is noticed (and health
/// reported) even when nobody talks.
const IDLE_PING: Duration = Duration::from_secs(1);

/// What `/healthz` and tests see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisStatus {
    /// Both the publishing and the subscribing connections are up.
    pub connected: bool,
    /// Publications Redis accepted.
    pub published: u64,
    /// `group_send`s that never reached Redis: queue full, Redis down, or a failed pipeline.
    pub publish_failures: u64,
    /// Groups this process is subscribed to right now.
    pub subscribed_groups: usize,
    /// Payloads from other processes handed to local members.
    pub received: u64,
}

/// The Redis-backed [`Broker`].
pub struct RedisBroker {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    /// Dropped with the broker: its receivers tell the background tasks to stop.
    _stop: watch::Sender<()>,
}

struct Outgoing {
    channel: String,
    payload: Vec<u8>,
}

struct Shared {
    hub: LocalHub,
    prefix: String,
    process_id: [u8; PROCESS_ID_LEN],
    wanted: Mutex<Wanted>,
    wanted_changed: Notify,
    links: Mutex<Links>,
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    subscribed: AtomicUsize,
    redacted_url: String,
}

/// Groups with local members, and those whose subscription may need changing.
#[derive(Default)]
struct Wanted {
    groups: HashSet<String>,
    dirty: HashSet<String>,
}

#[derive(Default)]
struct Links {
    publisher: bool,
    subscriber: bool,
    /// The state last logged (`None`: nothing logged yet).
    reported: Option<bool>,
}

#[derive(Clone, Copy)]
enum Link {
    Publisher,
    Subscriber,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisBroker {
    /// Starts the background tasks and waits up to `CONNECT_TIMEOUT` for Redis. An unreachable
    /// Redis is not an error: the broker starts degraded (local delivery only) and keeps
    /// retrying. Only an invalid URL is.
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Arc<RedisBroker>> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared::new(
            prefix,
            rand::random(),
            crate::config::redact_url(url),
        ));
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (stop, stopped) = watch::channel(());
        tokio::spawn(publisher(
            shared.clone(),
            client.clone(),
            rx,
            stopped.clone(),
        ));
        tokio::spawn(subscriber(shared.clone(), client, stopped));
        let broker = Arc::new(RedisBroker {
            shared,
            queue,
            _stop: stop,
        });
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !broker.status().connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(broker)
    }

    pub fn status(&self) -> RedisStatus {
        let s = &self.shared;
        let links = lock(&s.links);
        RedisStatus {
            connected: links.publisher && links.subscriber,
            published: s.published.load(Ordering::Relaxed),
            publish_failures: s.publish_failures.load(Ordering::Relaxed),
            subscribed_groups: s.subscribed.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
        }
    }

    /// The in-process part (members connected here).
    pub fn local(&self) -> &LocalHub {
        &self.shared.hub
    }

    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    fn mark(&self, wanted: &mut Wanted, group: &str) {
        wanted.dirty.insert(group.to_string());
        self.shared.wanted_changed.notify_one();
    }
}

impl Broker for RedisBroker {
    fn group_add(&self, group: &str, member: &Mailbox) {
        // The lock spans the hub change and the check, so a concurrent add and discard cannot
        // leave a group with local members unsubscribed.
        let mut wanted = lock(&self.shared.wanted);
        self.shared.hub.group_add(group, member);
        if wanted.groups.insert(group.to_string()) {
            self.mark(&mut wanted, group);
        }
    }

    fn group_discard(&self, group: &str, member: ConnId) {
        let mut wanted = lock(&self.shared.wanted);
        self.shared.hub.group_discard(group, member);
        if self.shared.hub.group_size(group) == 0 && wanted.groups.remove(group) {
            self.mark(&mut wanted, group);
        }
    }

    fn group_send(&self, group: &str, frame: Frame) {
        let s = &self.shared;
        let mut payload = Vec::with_capacity(HEADER_LEN + frame.len());
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(&s.process_id);
        payload.extend_from_slice(frame.as_str().as_bytes());
        s.hub.group_send(group, frame);
        let item = Outgoing {
            channel: format!("{}{}", s.prefix, group),
            payload,
        };
        if self.queue.try_send(item).is_err() {
            s.publish_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    /// Fresh state for one process: nothing wanted, nothing counted yet.
    fn new(prefix: &str, process_id: [u8; PROCESS_ID_LEN], redacted_url: String) -> Shared {
        Shared {
            hub: LocalHub::new(),
            prefix: prefix.to_string(),
            process_id,
            wanted: Mutex::new(Wanted::default()),
            wanted_changed: Notify::new(),
            links: Mutex::new(Links::default()),
            published: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            received: AtomicU64::new(0),
            subscribed: AtomicUsize::new(0),
            redacted_url,
        }
    }

    /// Records a link's state; logs the outage once and the recovery once.
    fn set_link(&self, link: Link, up: bool, error: Option<&dyn fmt::Display>) {
        let mut links = lock(&self.links);
        match link {
            Link::Publisher => links.publisher = up,
            Link::Subscriber => links.subscriber = up,
        }
        let connected = links.publisher && links.subscriber;
        if connected && links.reported != Some(true) {
            if links.reported.is_none() {
                tracing::info!(url = %self.redacted_url, prefix = %self.prefix, "connected to Redis");
            } else {
                tracing::warn!(url = %self.redacted_url, "Redis connection restored; cross-process delivery resumed");
            }
            links.reported = Some(true);
        } else if !up && links.reported != Some(false) {
            tracing::error!(
                url = %self.redacted_url,
                error = %error.map(|e| e.to_string()).unwrap_or_default(),
                "Redis unavailable: serving local members only, retrying in the background"
            );
            links.reported = Some(false);
        }
    }

    /// A payload from Redis: to the local members, unless this process published it.
    fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(group) = channel.strip_prefix(self.prefix.as_str()) else {
            return;
        };
        if payload.len() < HEADER_LEN || &payload[..MAGIC.len()] != MAGIC {
            tracing::debug!(channel, "ignoring a foreign payload");
            return;
        }
        if payload[MAGIC.len()..HEADER_LEN] == self.process_id {
            return;
        }
        let Ok(text) = std::str::from_utf8(&payload[HEADER_LEN..]) else {
            tracing::debug!(channel, "ignoring a payload that is not UTF-8");
            return;
        };
        self.received.fetch_add(1, Ordering::Relaxed);
        self.hub
            .group_send(group, Frame::from_string(text.to_string()));
    }

    fn channel(&self, group: &str) -> String {
        format!("{}{}", self.prefix, group)
    }
}

fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

/// `true` once the broker was dropped.
async fn stopping(stop: &mut watch::Receiver<()>) {
    // Nothing is ever sent: `changed` only returns (with an error) when the sender is gone.
    let _ = stop.changed().await;
}

async fn connect_publisher(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn send_batch(
    conn: &mut MultiplexedConnection,
    batch: &[Outgoing],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for item in batch {
        pipe.cmd("PUBLISH")
            .arg(&item.channel)
            .arg(&item.payload)
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// Owns the publishing connection: sends the queue in pipelines, in order.
async fn publisher(
    shared: Arc<Shared>,
    client: redis::Client,
    mut rx: mpsc::Receiver<Outgoing>,
    mut stop: watch::Receiver<()>,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = BACKOFF_MIN;
    let mut retry_at = Instant::now();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_PIPELINE);
    loop {
        if conn.is_none() && Instant::now() >= retry_at {
            match connect_publisher(&client).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = BACKOFF_MIN;
                    shared.set_link(Link::Publisher, true, None);
                }
                Err(e) => {
                    shared.set_link(Link::Publisher, false, Some(&e));
                    retry_at = Instant::now() + backoff;
                    backoff = next_backoff(backoff);
                }
            }
        }
        let wait = match conn {
            Some(_) => IDLE_PING,
            None => retry_at.saturating_duration_since(Instant::now()),
        };
        tokio::select! {
            n = rx.recv_many(&mut batch, MAX_PIPELINE) => {
                if n == 0 {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {
                if let Some(c) = conn.as_mut()
                    && let Err(e) = redis::cmd("PING").query_async::<()>(c).await
                {
                    conn = None;
                    shared.set_link(Link::Publisher, false, Some(&e));
                    retry_at = Instant::now();
                }
                continue;
            }
            _ = stopping(&mut stop) => return,
        }
        let n = batch.len() as u64;
        let mut result = match conn.as_mut() {
            Some(c) => send_batch(c, &batch).await.map_err(|e| e.to_string()),
            None => Err("not connected".to_string()),
        };
        // A connection that died while idle (Redis restarted) fails the first batch: try once
        // more on a fresh connection before counting the batch as lost.
        if result.is_err() && conn.is_some() {
            conn = None;
            if let Ok(mut c) = connect_publisher(&client).await {
                result = send_batch(&mut c, &batch).await.map_err(|e| e.to_string());
                if result.is_ok() {
                    conn = Some(c);
                }
            }
        }
        match result {
            Ok(()) => {
                shared.published.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                shared.publish_failures.fetch_add(n, Ordering::Relaxed);
                if conn.is_none() && Instant::now() >= retry_at {
                    shared.set_link(Link::Publisher, false, Some(&e));
                    retry_at = Instant::now() + backoff;
                    backoff = next_backoff(backoff);
                }
            }
        }
        batch.clear();
    }
}

/// Owns the pub/sub connection: keeps it subscribed to the wanted groups and hands what
/// arrives to the local hub.
async fn subscriber(shared: Arc<Shared>, client: redis::Client, mut stop: watch::Receiver<()>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                let (mut sink, mut stream) = pubsub.split();
                let mut active: HashSet<String> = HashSet::new();
                let mut full = true;
                loop {
                    if let Err(e) = reconcile(&shared, &mut sink, &mut active, full).await {
                        break e;
                    }
                    if full {
                        full = false;
                        backoff = BACKOFF_MIN;
                        shared.set_link(Link::Subscriber, true, None);
                    }
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => shared.on_message(msg.get_channel_name(), msg.get_payload_bytes()),
                            None => break "connection closed".to_string(),
                        },
                        _ = shared.wanted_changed.notified() => {}
                        _ = stopping(&mut stop) => return,
                    }
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection timed out".to_string(),
        };
        shared.subscribed.store(0, Ordering::Relaxed);
        shared.set_link(Link::Subscriber, false, Some(&error));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping(&mut stop) => return,
        }
        backoff = next_backoff(backoff);
    }
}

/// Brings the connection's subscriptions in line with the wanted groups: all of them after a
/// (re)connect, else only those whose membership changed.
async fn reconcile(
    shared: &Shared,
    sink: &mut PubSubSink,
    active: &mut HashSet<String>,
    full: bool,
) -> Result<(), String> {
    let (add, remove): (Vec<String>, Vec<String>) = {
        let mut wanted = lock(&shared.wanted);
        let candidates: Vec<String> = if full {
            wanted.dirty.clear();
            wanted.groups.iter().cloned().collect()
        } else {
            wanted.dirty.drain().collect()
        };
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for group in candidates {
            match (wanted.groups.contains(&group), active.contains(&group)) {
                (true, false) => add.push(group),
                (false, true) => remove.push(group),
                _ => {}
            }
        }
        (add, remove)
    };
    // The lock is released: the commands below await. A change meanwhile marks the group
    // dirty again and wakes the caller's next round.
    let timeout = |what| move |_| format!("{what} timed out");
    if !add.is_empty() {
        let channels: Vec<String> = add.iter().map(|g| shared.channel(g)).collect();
        tokio::time::timeout(RESPONSE_TIMEOUT, sink.subscribe(&channels))
            .await
            .map_err(timeout("SUBSCRIBE"))?
            .map_err(|e| e.to_string())?;
        active.extend(add);
    }
    if !remove.is_empty() {
        // Never an empty UNSUBSCRIBE: that would mean "every channel".
        let channels: Vec<String> = remove.iter().map(|g| shared.channel(g)).collect();
        tokio::time::timeout(RESPONSE_TIMEOUT, sink.unsubscribe(&channels))
            .await
            .map_err(timeout("UNSUBSCRIBE"))?
            .map_err(|e| e.to_string())?;
        for group in &remove {
            active.remove(group);
        }
    }
    shared.subscribed.store(active.len(), Ordering::Relaxed);
    Ok(())
}

/// One PING with a timeout: `./manage check`.
pub async fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, connect_publisher(&client))
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(prefix: &str) -> Shared {
        Shared::new(prefix, [7; PROCESS_ID_LEN], String::new())
    }

    fn payload(id: [u8; PROCESS_ID_LEN], text: &str) -> Vec<u8> {
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&id);
        p.extend_from_slice(text.as_bytes());
        p
    }

    #[test]
    fn own_and_foreign_payloads_are_ignored() {
        let s = shared("t:");
        let (m, mut inbox) = crate::fanout::mailbox(1, 8);
        s.hub.group_add("room-1", &m);
        s.on_message("t:room-1", &payload([7; PROCESS_ID_LEN], "mine"));
        s.on_message("t:room-1", b"garbage");
        s.on_message(
            "other:room-1",
            &payload([8; PROCESS_ID_LEN], "other prefix"),
        );
        assert!(inbox.try_recv().is_none());
        s.on_message("t:room-1", &payload([8; PROCESS_ID_LEN], "theirs"));
        assert_eq!(inbox.try_recv().unwrap().as_str(), "theirs");
        assert_eq!(s.received.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn unreachable_redis_degrades_without_blocking() {
        // Port 1 refuses connections: the broker starts, delivers locally, counts failures.
        let broker = RedisBroker::connect("redis://127.0.0.1:1/", "t:")
            .await
            .unwrap();
        assert!(!broker.status().connected);
        let (m, mut inbox) = crate::fanout::mailbox(1, 8);
        broker.group_add("room-1", &m);
        broker.group_send("room-1", Frame::from_string("x".into()));
        assert_eq!(inbox.try_recv().unwrap().as_str(), "x");
        let deadline = Instant::now() + Duration::from_secs(5);
        while broker.status().publish_failures == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(broker.status().publish_failures, 1);
        assert!(RedisBroker::connect("not a url", "t:").await.is_err());
    }
}
