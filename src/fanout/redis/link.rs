//! What every Redis wire format shares: the process's state (local hub, wanted groups, link
//! health, counters), reconnecting with back-off, and the publishing task.
//!
//! The publisher owns one connection and sends whatever is queued as one pipeline, in FIFO
//! order, so a sender's events reach Redis (and every other process) in the order they were
//! produced. A lost connection is retried with capped exponential back-off; meanwhile queued
//! commands are dropped and counted, and local delivery goes on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::core::Membership;
use crate::fanout::LocalHub;

pub(super) const PROCESS_ID_LEN: usize = 16;
/// Commands waiting for the publisher task; beyond this they are dropped and counted.
pub(super) const PUBLISH_QUEUE: usize = 16 * 1024;
/// Commands sent as one pipeline at most (PUBLISH; the core layer's sends use a smaller bound,
/// see `core::pipeline_limit`).
pub(super) const MAX_PIPELINE: usize = 512;
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// An idle publishing connection is PINGed this often, so an outage is noticed (and health
/// reported) even when nobody talks.
const IDLE_PING: Duration = Duration::from_secs(1);

/// Groups with local members, and those whose Redis-side state (subscription or group
/// membership) may need changing.
#[derive(Default)]
pub(super) struct Wanted {
    pub groups: HashSet<String>,
    pub dirty: HashSet<String>,
    /// Groups whose subscription (or membership) Redis has confirmed.
    confirmed: HashSet<String>,
    /// Joins waiting for their group to be confirmed.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl Wanted {
    /// Redis confirmed `added` and dropped `removed`: wake the joins waiting for them.
    pub fn confirm(&mut self, added: &[String], removed: &[String]) {
        for group in removed {
            self.confirmed.remove(group);
        }
        for group in added {
            self.confirmed.insert(group.clone());
            for waiter in self.waiters.remove(group).unwrap_or_default() {
                let _ = waiter.send(());
            }
        }
    }

    /// The connection holding the subscriptions is gone.
    pub fn unconfirm_all(&mut self) {
        self.confirmed.clear();
        self.waiters.clear();
    }

    /// A receiver that resolves when `group` is confirmed; `None` if it already is (or is not
    /// wanted at all).
    pub fn wait_for(&mut self, group: &str) -> Option<oneshot::Receiver<()>> {
        if self.confirmed.contains(group) || !self.groups.contains(group) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(group.to_string()).or_default().push(tx);
        Some(rx)
    }

    /// The groups to add to and remove from Redis to match `active`: all wanted groups after a
    /// (re)connect (`full`), else only those whose membership changed.
    pub fn diff(&mut self, active: &HashSet<String>, full: bool) -> (Vec<String>, Vec<String>) {
        let candidates: Vec<String> = if full {
            self.dirty.clear();
            self.groups.iter().chain(active.iter()).cloned().collect()
        } else {
            self.dirty.drain().collect()
        };
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for group in candidates {
            match (self.groups.contains(&group), active.contains(&group)) {
                (true, false) => add.push(group),
                // A full pass re-announces active groups too (Redis may have lost them).
                (true, true) if full => add.push(group),
                (false, true) => remove.push(group),
                _ => {}
            }
        }
        add.sort();
        add.dedup();
        remove.sort();
        remove.dedup();
        (add, remove)
    }
}

#[derive(Default)]
struct Links {
    publisher: bool,
    receiver: bool,
    /// The state last logged (`None`: nothing logged yet).
    reported: Option<bool>,
}

#[derive(Clone, Copy)]
pub(super) enum Link {
    Publisher,
    /// The subscriber (pub/sub formats) or the queue reader (`RedisChannelLayer`).
    Receiver,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets a repeated warning through at most once a minute.
#[derive(Default)]
pub(super) struct Throttle(Mutex<Option<Instant>>);

impl Throttle {
    const EVERY: Duration = Duration::from_secs(60);

    /// `true` if the warning may be logged now (and starts a new minute).
    pub fn due(&self) -> bool {
        let mut last = lock(&self.0);
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// State shared by the broker and its background tasks.
pub(super) struct Shared {
    pub hub: LocalHub,
    pub prefix: String,
    pub process_id: [u8; PROCESS_ID_LEN],
    pub wanted: Mutex<Wanted>,
    pub wanted_changed: Notify,
    links: Mutex<Links>,
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    pub received: AtomicU64,
    pub ignored: AtomicU64,
    ignore_warning: Throttle,
    pub over_capacity: AtomicU64,
    pub subscribed: AtomicUsize,
    pub redacted_url: String,
    pub backend: &'static str,
}

impl Shared {
    /// Fresh state for one process: nothing wanted, nothing counted yet.
    pub fn new(
        prefix: &str,
        process_id: [u8; PROCESS_ID_LEN],
        redacted_url: String,
        backend: &'static str,
    ) -> Shared {
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
            ignored: AtomicU64::new(0),
            ignore_warning: Throttle::default(),
            over_capacity: AtomicU64::new(0),
            subscribed: AtomicUsize::new(0),
            redacted_url,
            backend,
        }
    }

    /// Both connections are up.
    pub fn connected(&self) -> bool {
        let links = lock(&self.links);
        links.publisher && links.receiver
    }

    /// Records a link's state; logs the outage once and the recovery once.
    pub fn set_link(&self, link: Link, up: bool, error: Option<&dyn fmt::Display>) {
        let mut links = lock(&self.links);
        match link {
            Link::Publisher => links.publisher = up,
            Link::Receiver => links.receiver = up,
        }
        let connected = links.publisher && links.receiver;
        if connected && links.reported != Some(true) {
            if links.reported.is_none() {
                tracing::info!(url = %self.redacted_url, prefix = %self.prefix, backend = self.backend, "connected to Redis");
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

    /// A payload that was not a chat event for this process: counted, logged at debug, and
    /// warned about at most once a minute (a bot sending a wrong `type` should be noticed).
    pub fn ignore(&self, channel: &str, why: &dyn fmt::Display) {
        let total = self.ignored.fetch_add(1, Ordering::Relaxed) + 1;
        if self.ignore_warning.due() {
            tracing::warn!(channel, %why, total, "ignoring channel-layer payloads that are not chat events");
        } else {
            tracing::debug!(channel, %why, "ignoring a channel-layer payload");
        }
    }

    /// Marks `group` for the background task that mirrors membership into Redis.
    pub fn mark(&self, wanted: &mut Wanted, group: &str) {
        wanted.dirty.insert(group.to_string());
        self.wanted_changed.notify_one();
    }
}

pub(super) fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

pub(super) fn first_backoff() -> Duration {
    BACKOFF_MIN
}

/// Returns once the broker was dropped.
pub(super) async fn stopping(stop: &mut watch::Receiver<()>) {
    // Nothing is ever sent: `changed` only returns (with an error) when the sender is gone.
    let _ = stop.changed().await;
}

pub(super) async fn connect(
    client: &redis::Client,
    response_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// A fresh publishing connection, prepared for the format (`RedisChannelLayer`: its script
/// loaded and this process's group memberships announced again).
async fn open(
    client: &redis::Client,
    membership: Option<&Membership>,
) -> redis::RedisResult<MultiplexedConnection> {
    let mut conn = connect(client, RESPONSE_TIMEOUT).await?;
    if let Some(m) = membership {
        m.on_connect(&mut conn).await?;
    }
    Ok(conn)
}

/// Sends one pipeline; returns each command's integer reply (PUBLISH: receivers, the
/// `RedisChannelLayer` send script: queues over capacity).
async fn send_batch(
    conn: &mut MultiplexedConnection,
    batch: &[redis::Cmd],
) -> redis::RedisResult<Vec<i64>> {
    let mut pipe = redis::pipe();
    for cmd in batch {
        pipe.add_command(cmd.clone());
    }
    pipe.query_async(conn).await
}

/// Owns the publishing connection: sends the queue in pipelines, in order. With `membership`
/// (`RedisChannelLayer`), it also keeps this process's group memberships in Redis.
pub(super) async fn publisher(
    shared: Arc<Shared>,
    client: redis::Client,
    mut rx: mpsc::Receiver<redis::Cmd>,
    mut stop: watch::Receiver<()>,
    membership: Option<Arc<Membership>>,
    max_pipeline: usize,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = first_backoff();
    let mut retry_at = Instant::now();
    let mut batch: Vec<redis::Cmd> = Vec::with_capacity(max_pipeline);
    loop {
        if conn.is_none() && Instant::now() >= retry_at {
            match open(&client, membership.as_deref()).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = first_backoff();
                    shared.set_link(Link::Publisher, true, None);
                }
                Err(e) => {
                    shared.set_link(Link::Publisher, false, Some(&e));
                    retry_at = Instant::now() + backoff;
                    backoff = next_backoff(backoff);
                }
            }
        }
        if let (Some(c), Some(m)) = (conn.as_mut(), membership.as_ref())
            && let Err(e) = m.sync(c).await
        {
            conn = None;
            shared.set_link(Link::Publisher, false, Some(&e));
            retry_at = Instant::now();
            continue;
        }
        let wait = match conn {
            Some(_) => IDLE_PING,
            None => retry_at.saturating_duration_since(Instant::now()),
        };
        let woken_for_membership = async {
            match membership {
                Some(_) => shared.wanted_changed.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut batch, max_pipeline) => {
                if n == 0 {
                    break;
                }
            }
            _ = woken_for_membership => continue,
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
            _ = stopping(&mut stop) => break,
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
            if let Ok(mut c) = open(&client, membership.as_deref()).await {
                result = send_batch(&mut c, &batch).await.map_err(|e| e.to_string());
                if result.is_ok() {
                    conn = Some(c);
                }
            }
        }
        match result {
            Ok(replies) => {
                shared.published.fetch_add(n, Ordering::Relaxed);
                if let Some(m) = membership.as_ref() {
                    m.count_over_capacity(&replies);
                }
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
    if let (Some(c), Some(m)) = (conn.as_mut(), membership.as_ref()) {
        m.leave_all(c).await;
    }
}
