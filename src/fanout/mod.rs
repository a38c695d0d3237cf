//! Room membership and delivery: Channels' "channel layer" for Whisper.
//!
//! A [`Broker`] keeps groups (`room-<id>`) of [`Mailbox`]es and delivers each event's frame,
//! serialised once, to every member. Delivery never blocks and never grows memory without
//! bound: every mailbox is a bounded queue, and a member whose queue is full is flagged as
//! overflowed — its connection closes it (close code [`CLOSE_SLOW_CONSUMER`]) instead of
//! slowing the room down. [`LocalHub`] is the in-process broker; a Redis broker implements
//! the same trait for several processes.

mod local;
mod mailbox;
pub mod msgpack;
mod redis;

pub use local::LocalHub;
pub use mailbox::{ConnId, Inbox, Mailbox, OverflowSignal, mailbox};
pub use redis::{
    DEFAULT_PREFIX as DEFAULT_REDIS_PREFIX, RedisBroker, RedisStatus, ping as redis_ping,
};

use std::time::Duration;

use tokio::sync::oneshot;

use crate::chat::consumer::Effect;
use crate::chat::protocol::GroupEvent;

/// Close code sent to a member whose outbound queue overflowed ("try again later").
pub const CLOSE_SLOW_CONSUMER: u16 = 1013;

/// Channels' group API: `group_add`, `group_discard`, `group_send`. Implementations take
/// short synchronous locks only; nothing here awaits.
pub trait Broker: Send + Sync + 'static {
    fn group_add(&self, group: &str, member: &Mailbox);
    fn group_discard(&self, group: &str, member: ConnId);
    /// Delivers the event's frame to the group's members, wherever they are connected.
    fn group_send(&self, group: &str, event: GroupEvent);
    /// `Some` while events other processes publish to `group` may not reach this process yet
    /// (its Redis subscription or membership is being made); resolves once they do. The
    /// in-process hub is always ready.
    fn ready(&self, _group: &str) -> Option<oneshot::Receiver<()>> {
        None
    }
}

/// How long a join waits for its group to be ready before answering anyway.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Carries out a consumer's effects, in order, for the connection owning `mailbox`. After a
/// join it waits (at most [`READY_TIMEOUT`]) until the group is ready on every process: the
/// connection's task writes nothing meanwhile, so when the client reads the join ack, events
/// from any process reach it, as when the original's `group_add` returned before its ack.
pub async fn apply(broker: &dyn Broker, mailbox: &Mailbox, effects: Vec<Effect>) {
    let mut joined = Vec::new();
    for effect in effects {
        match effect {
            Effect::Reply(frame) => {
                mailbox.deliver(frame);
            }
            Effect::GroupSend { group, event } => broker.group_send(&group, event),
            Effect::GroupAdd(group) => {
                broker.group_add(&group, mailbox);
                joined.push(group);
            }
            Effect::GroupDiscard(group) => broker.group_discard(&group, mailbox.id()),
        }
    }
    for group in joined {
        if let Some(ready) = broker.ready(&group) {
            let _ = tokio::time::timeout(READY_TIMEOUT, ready).await;
        }
    }
}
