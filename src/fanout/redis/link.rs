//! Connections to one Redis host: connecting with capped exponential back-off, and the
//! publishing task.
//!
//! Each host of the ring has its own publisher, which owns one connection and sends whatever is
//! queued for that host as one pipeline, in FIFO order, so a sender's events reach Redis (and
//! every other process) in the order they were produced. A lost connection is retried with
//! capped exponential back-off, independently of the other hosts; meanwhile that host's queued
//! jobs are dropped and counted, and local delivery goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::core::{Membership, Outgoing};
use super::shared::{Link, Shared};

/// Jobs waiting for a host's publisher; beyond this they are dropped and counted.
pub(super) const PUBLISH_QUEUE: usize = 16 * 1024;
/// Bytes of the jobs waiting for a host's publisher: one frame can be several MiB, so the job
/// bound alone did not bound memory (issue 10 point 9). One job larger than this still goes
/// into an empty queue.
pub(super) const PUBLISH_QUEUE_BYTES: usize = 64 << 20;
/// Jobs sent as one pipeline at most (PUBLISH; the core layer's sends use a smaller bound,
/// see `core::pipeline_limit`).
pub(super) const MAX_PIPELINE: usize = 512;
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// An idle publishing connection is PINGed this often, so an outage is noticed (and health
/// reported) even when nobody talks.
const IDLE_PING: Duration = Duration::from_secs(1);

/// What a publisher sends for the broker.
pub(super) enum Job {
    /// One event: a PUBLISH, or the core layer's send script (reply: queues found full).
    Event(redis::Cmd),
    /// The core layer on several hosts, step one on the group's host: read the group's
    /// members; step two is then queued to each member queue's host as [`Job::Push`].
    Members(redis::Cmd, Box<Outgoing>),
    /// Step two: push one event to the member queues on this host (reply: queues found full).
    Push(redis::Cmd),
}

impl Job {
    fn cmd(&self) -> &redis::Cmd {
        match self {
            Job::Event(cmd) | Job::Members(cmd, _) | Job::Push(cmd) => cmd,
        }
    }

    /// What the job holds, about: its command's arguments (a member step's event included).
    fn bytes(&self) -> usize {
        let args = |cmd: &redis::Cmd| -> usize {
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.len(),
                    _ => 0,
                })
                .sum()
        };
        match self {
            Job::Members(cmd, outgoing) => args(cmd) + outgoing.bytes(),
            Job::Event(cmd) | Job::Push(cmd) => args(cmd),
        }
    }
}

/// A host's publisher queue, bounded in jobs ([`PUBLISH_QUEUE`]) and in bytes
/// ([`PUBLISH_QUEUE_BYTES`]). Sending never waits: a job that does not fit is refused.
#[derive(Clone)]
pub(super) struct JobQueue {
    tx: mpsc::Sender<Job>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The publisher's end of a [`JobQueue`].
pub(super) struct JobReceiver {
    rx: mpsc::Receiver<Job>,
    bytes: Arc<AtomicUsize>,
}

pub(super) fn job_queue(max_jobs: usize, max_bytes: usize) -> (JobQueue, JobReceiver) {
    let (tx, rx) = mpsc::channel(max_jobs);
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        JobQueue {
            tx,
            bytes: bytes.clone(),
            max_bytes,
        },
        JobReceiver { rx, bytes },
    )
}

impl JobQueue {
    /// Queues the job; false when it does not fit (the caller counts the loss).
    pub fn try_send(&self, job: Job) -> bool {
        let n = job.bytes();
        let before = self.bytes.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.max_bytes {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        if self.tx.try_send(job).is_err() {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl JobReceiver {
    /// As `mpsc::Receiver::recv_many`, giving back the bytes of what it took.
    pub async fn recv_many(&mut self, batch: &mut Vec<Job>, limit: usize) -> usize {
        let from = batch.len();
        let n = self.rx.recv_many(batch, limit).await;
        let taken: usize = batch[from..].iter().map(Job::bytes).sum();
        self.bytes.fetch_sub(taken, Ordering::AcqRel);
        n
    }
}

/// The `RedisChannelLayer` side of a publisher.
pub(super) struct CoreRole {
    pub membership: Arc<Membership>,
    /// Every host's publisher queue, in ring order (for [`Job::Push`]).
    pub queues: Vec<JobQueue>,
}

/// One host's publishing task and what it needs.
pub(super) struct Publisher {
    pub shared: Arc<Shared>,
    pub host: usize,
    pub client: redis::Client,
    pub rx: JobReceiver,
    pub stop: watch::Receiver<()>,
    pub core: Option<CoreRole>,
    pub max_pipeline: usize,
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

/// A fresh publishing connection, prepared for the format (`RedisChannelLayer`: its scripts
/// loaded and this process's group memberships on this host announced again).
async fn open(
    client: &redis::Client,
    core: Option<&CoreRole>,
    host: usize,
) -> redis::RedisResult<MultiplexedConnection> {
    let mut conn = connect(client, RESPONSE_TIMEOUT).await?;
    if let Some(core) = core {
        core.membership.on_connect(host, &mut conn).await?;
    }
    Ok(conn)
}

/// Sends one pipeline; returns each job's reply.
async fn send_batch(
    conn: &mut MultiplexedConnection,
    batch: &[Job],
) -> redis::RedisResult<Vec<redis::Value>> {
    let mut pipe = redis::pipe();
    for job in batch {
        pipe.add_command(job.cmd().clone());
    }
    pipe.query_async(conn).await
}

impl Publisher {
    /// Sends the queue in pipelines, in order, until the broker is dropped. With `core`
    /// (`RedisChannelLayer`), it also keeps this process's memberships of the groups on this
    /// host in Redis.
    pub async fn run(mut self) {
        let shared = self.shared.clone();
        let host = self.host;
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = first_backoff();
        let mut retry_at = Instant::now();
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_pipeline);
        loop {
            if conn.is_none() && Instant::now() >= retry_at {
                match open(&self.client, self.core.as_ref(), host).await {
                    Ok(c) => {
                        conn = Some(c);
                        backoff = first_backoff();
                        shared.set_link(host, Link::Publisher, true, None);
                    }
                    Err(e) => {
                        shared.set_link(host, Link::Publisher, false, Some(&e));
                        retry_at = Instant::now() + backoff;
                        backoff = next_backoff(backoff);
                    }
                }
            }
            if let (Some(c), Some(core)) = (conn.as_mut(), self.core.as_ref())
                && let Err(e) = core.membership.sync(host, c).await
            {
                conn = None;
                shared.set_link(host, Link::Publisher, false, Some(&e));
                retry_at = Instant::now();
                continue;
            }
            let wait = match conn {
                Some(_) => IDLE_PING,
                None => retry_at.saturating_duration_since(Instant::now()),
            };
            let woken_for_membership = async {
                match self.core {
                    Some(_) => shared.changed(host).notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = self.rx.recv_many(&mut batch, self.max_pipeline) => {
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
                        shared.set_link(host, Link::Publisher, false, Some(&e));
                        retry_at = Instant::now();
                    }
                    continue;
                }
                _ = stopping(&mut self.stop) => break,
            }
            let mut result = match conn.as_mut() {
                Some(c) => send_batch(c, &batch).await.map_err(|e| e.to_string()),
                None => Err("not connected".to_string()),
            };
            // A connection that died while idle (Redis restarted) fails the first batch: try
            // once more on a fresh connection before counting the batch as lost.
            if result.is_err() && conn.is_some() {
                conn = None;
                if let Ok(mut c) = open(&self.client, self.core.as_ref(), host).await {
                    result = send_batch(&mut c, &batch).await.map_err(|e| e.to_string());
                    if result.is_ok() {
                        conn = Some(c);
                    }
                }
            }
            match result {
                Ok(replies) => self.delivered(batch.drain(..), replies),
                Err(e) => {
                    shared
                        .publish_failures
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if conn.is_none() && Instant::now() >= retry_at {
                        shared.set_link(host, Link::Publisher, false, Some(&e));
                        retry_at = Instant::now() + backoff;
                        backoff = next_backoff(backoff);
                    }
                }
            }
            batch.clear();
        }
        if let (Some(c), Some(core)) = (conn.as_mut(), self.core.as_ref()) {
            core.membership.leave_all(host, c).await;
        }
    }

    /// Counts what Redis accepted; with several hosts, queues each group's pushes to the
    /// hosts of its members' queues.
    fn delivered(&self, jobs: impl Iterator<Item = Job>, replies: Vec<redis::Value>) {
        let shared = &self.shared;
        for (job, reply) in jobs.zip(replies) {
            match (job, self.core.as_ref()) {
                (Job::Event(_), core) => {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    if let Some(core) = core {
                        core.membership.count_over_capacity(&reply);
                    }
                }
                (Job::Push(_), Some(core)) => core.membership.count_over_capacity(&reply),
                (Job::Members(_, outgoing), Some(core)) => {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    for (host, push) in core.membership.route(&outgoing, &reply) {
                        if !core.queues[host].try_send(Job::Push(push)) {
                            shared.publish_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (Job::Push(_) | Job::Members(..), None) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(len: usize) -> Job {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg("channel").arg(vec![b'x'; len]);
        Job::Event(cmd)
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_bytes_and_gives_them_back() {
        let (queue, mut rx) = job_queue(100, 10_000);
        // One job larger than the bound still goes into an empty queue.
        assert!(queue.try_send(publish(50_000)));
        assert!(
            !queue.try_send(publish(10)),
            "the queue holds too many bytes"
        );
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 10).await, 1);
        for _ in 0..4 {
            assert!(queue.try_send(publish(2_000)));
        }
        assert!(
            !queue.try_send(publish(2_000)),
            "5 × 2,007 bytes is past 10,000"
        );
        batch.clear();
        assert_eq!(rx.recv_many(&mut batch, 10).await, 4);
        assert!(queue.try_send(publish(2_000)), "the bytes came back");
    }
}
