//! Fan-out between processes over Redis: the channel layer when `CHANNEL_LAYERS` or
//! `REDIS_URL` is set.
//!
//! [`RedisBroker`] wraps a [`LocalHub`](super::LocalHub) for the members connected to this process and speaks
//! one of three wire formats (see `config::channel_layers`):
//!
//! * Whisper's own and `RedisPubSubChannelLayer`'s: one PUBLISH per event on the group's
//!   channel, one SUBSCRIBE per group with local members ([`pubsub`]);
//! * `RedisChannelLayer`'s: one EVALSHA per event pushing to member processes' queues, group
//!   membership in sorted sets ([`core`]), a queue reader ([`inbox`]).
//!
//! With several hosts (`CHANNEL_LAYERS` `hosts`), each group's state and each queue live on the
//! host channels_redis' consistent hash picks ([`ring`]); every host has its own connections,
//! which fail and reconnect independently ([`link`], [`shared`]).
//!
//! In all three, `group_send` hands the frame to the local members at once (no round trip, so
//! §4.12's self-delivery order is exactly the single-process one), then queues ONE command for
//! Redis. The queue is bounded and never waited on: when it is full, or Redis is away, the
//! command is dropped and counted. The event is serialised once for Redis whatever the number
//! of recipients, and events from other processes are rendered once per process.
//!
//! Losing Redis: every connection reconnects with capped exponential back-off and restores its
//! subscriptions or memberships. Meanwhile local delivery goes on; the outage is logged once and
//! the recovery once; nothing blocks and nothing panics.

mod core;
mod event;
mod inbox;
mod link;
mod pubsub;
mod ring;
mod shared;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{Broker, ConnId, Mailbox};
use crate::chat::protocol::GroupEvent;
use crate::config::{LayerFormat, RedisLayer};
use link::{CoreRole, Job, Publisher};
use pubsub::PubSubFormat;
use ring::Ring;
use shared::{PROCESS_ID_LEN, Shared, Topology, lock};

/// What `/healthz`, `check` and tests see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisStatus {
    /// The Django `BACKEND` this process speaks.
    pub backend: &'static str,
    /// Every host's connections (publishing and receiving) are up.
    pub connected: bool,
    /// Per host, in `hosts` order: its connections are up.
    pub hosts: Vec<bool>,
    /// Events Redis accepted.
    pub published: u64,
    /// Events (or, on several hosts, an event's pushes to one host) that never reached Redis:
    /// queue full, Redis down, or a failed pipeline.
    pub publish_failures: u64,
    /// Groups this process is subscribed to (or a member of) right now.
    pub subscribed_groups: usize,
    /// Events from other processes handed to local members.
    pub received: u64,
    /// Payloads that were not chat events (unknown `type`, missing keys, not decodable).
    pub ignored: u64,
    /// `RedisChannelLayer`: messages not queued because a member process's queue was full.
    pub over_capacity: u64,
    /// Connections made again after they were lost.
    pub reconnects: u64,
}

/// How this broker reaches Redis.
enum Format {
    PubSub(PubSubFormat),
    Core(Arc<core::Membership>),
}

/// The Redis-backed [`Broker`].
pub struct RedisBroker {
    shared: Arc<Shared>,
    format: Format,
    /// Each host's publisher queue, in ring order.
    queues: Vec<link::JobQueue>,
    /// Dropped with the broker: its receivers tell the background tasks to stop.
    _stop: watch::Sender<()>,
}

impl RedisBroker {
    /// Starts the background tasks and waits up to two seconds for Redis. An unreachable Redis
    /// is not an error: the broker starts degraded (local delivery only) and keeps retrying.
    /// Only an invalid URL is.
    pub async fn connect(layer: &RedisLayer) -> redis::RedisResult<Arc<RedisBroker>> {
        let clients = layer
            .hosts
            .iter()
            .map(|url| redis::Client::open(url.expose()))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let n = clients.len();
        let process_id: [u8; PROCESS_ID_LEN] = rand::random();
        let (ring, inbox) = match &layer.format {
            LayerFormat::Whisper => (Ring::new(1, ""), None),
            LayerFormat::PubSub => (Ring::new(n, &format!("{}__group__", layer.prefix)), None),
            LayerFormat::Core(_) => {
                let ring = Ring::new(n, "");
                let names = core::Names::new(&layer.prefix, &process_id);
                let inbox = ring.host_of(names.queue_hash_name());
                (ring, Some(inbox))
            }
        };
        let topology = Topology {
            hosts: layer
                .hosts
                .iter()
                .map(|url| crate::config::redact_url(url.expose()))
                .collect(),
            ring,
            inbox,
        };
        let shared = Arc::new(Shared::new(
            &layer.prefix,
            process_id,
            topology,
            layer.format.backend(),
        ));
        let (queues, receivers): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| link::job_queue(link::PUBLISH_QUEUE, link::PUBLISH_QUEUE_BYTES))
            .unzip();
        let (stop, stopped) = watch::channel(());
        let format = match &layer.format {
            LayerFormat::Core(params) => Format::Core(Arc::new(core::Membership::new(
                shared.clone(),
                params.clone(),
            ))),
            LayerFormat::Whisper => Format::PubSub(PubSubFormat::Whisper),
            LayerFormat::PubSub => Format::PubSub(PubSubFormat::Channels),
        };
        for (host, (client, rx)) in clients.iter().zip(receivers).enumerate() {
            let (core, max_pipeline) = match (&format, &layer.format) {
                (Format::Core(m), LayerFormat::Core(params)) => (
                    Some(CoreRole {
                        membership: m.clone(),
                        queues: queues.clone(),
                    }),
                    core::pipeline_limit(params.capacity),
                ),
                _ => (None, link::MAX_PIPELINE),
            };
            let publisher = Publisher {
                shared: shared.clone(),
                host,
                client: client.clone(),
                rx,
                stop: stopped.clone(),
                core,
                max_pipeline,
            };
            tokio::spawn(publisher.run());
            if let Format::PubSub(f) = format {
                tokio::spawn(pubsub::subscriber(
                    shared.clone(),
                    f,
                    host,
                    client.clone(),
                    stopped.clone(),
                ));
            }
        }
        if let (Format::Core(m), LayerFormat::Core(params)) = (&format, &layer.format) {
            tokio::spawn(inbox::reader(
                shared.clone(),
                m.clone(),
                params.random_prefix_length,
                clients[m.inbox_host()].clone(),
                stopped,
            ));
        }
        let broker = Arc::new(RedisBroker {
            shared,
            format,
            queues,
            _stop: stop,
        });
        let deadline = Instant::now() + link::CONNECT_TIMEOUT;
        while !broker.status().connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(broker)
    }

    pub fn status(&self) -> RedisStatus {
        let s = &self.shared;
        let hosts = s.hosts_up();
        RedisStatus {
            backend: s.backend,
            connected: hosts.iter().all(|up| *up),
            hosts,
            published: s.published.load(Ordering::Relaxed),
            publish_failures: s.publish_failures.load(Ordering::Relaxed),
            subscribed_groups: s.subscribed(),
            received: s.received.load(Ordering::Relaxed),
            ignored: s.ignored.load(Ordering::Relaxed),
            over_capacity: s.over_capacity.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
        }
    }
}

impl Broker for RedisBroker {
    fn group_add(&self, group: &str, member: &Mailbox) {
        // The lock spans the hub change and the check, so a concurrent add and discard cannot
        // leave a group with local members unsubscribed.
        let mut wanted = lock(&self.shared.wanted);
        self.shared.hub.group_add(group, member);
        if wanted.groups.insert(group.to_string()) {
            self.shared.mark(&mut wanted, group);
        }
    }

    fn group_discard(&self, group: &str, member: ConnId) {
        let mut wanted = lock(&self.shared.wanted);
        self.shared.hub.group_discard(group, member);
        if self.shared.hub.group_size(group) == 0 && wanted.groups.remove(group) {
            self.shared.mark(&mut wanted, group);
        }
    }

    fn membership(&self) -> (usize, usize) {
        self.shared.hub.membership()
    }

    fn ready(&self, group: &str) -> Option<oneshot::Receiver<()>> {
        // While the group's Redis is away a join does not wait: it is served locally at once.
        if !self.shared.reaches(group) {
            return None;
        }
        lock(&self.shared.wanted).wait_for(group)
    }

    fn group_send(&self, group: &str, event: GroupEvent) {
        let s = &self.shared;
        let job = match &self.format {
            Format::PubSub(f) => Job::Event(f.publish(s, group, &event)),
            Format::Core(m) => m.send_job(group, &event),
        };
        s.hub.deliver(group, event.frame());
        if !self.queues[s.ring.group_host(group)].try_send(job) {
            s.publish_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One PING with a timeout: `./manage check`.
pub async fn ping(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        link::CONNECT_TIMEOUT,
        link::connect(&client, link::RESPONSE_TIMEOUT),
    )
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
    use crate::config::Secret;
    use crate::django::pyjson::Value;

    #[tokio::test]
    async fn unreachable_redis_degrades_without_blocking() {
        // Port 1 refuses connections: the broker starts, delivers locally, counts failures.
        let layer = |url: &str| RedisLayer {
            hosts: vec![Secret::new(url)],
            prefix: "t:".into(),
            format: LayerFormat::Whisper,
        };
        let broker = RedisBroker::connect(&layer("redis://127.0.0.1:1/"))
            .await
            .unwrap();
        assert!(!broker.status().connected);
        let (m, mut inbox) = crate::fanout::mailbox(1, 8, usize::MAX);
        broker.group_add("room-1", &m);
        let event = GroupEvent::join(Value::int(1), "x");
        broker.group_send("room-1", event.clone());
        assert_eq!(inbox.try_recv().unwrap(), *event.frame());
        let deadline = Instant::now() + Duration::from_secs(5);
        while broker.status().publish_failures == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(broker.status().publish_failures, 1);
        assert!(RedisBroker::connect(&layer("not a url")).await.is_err());
    }
}
