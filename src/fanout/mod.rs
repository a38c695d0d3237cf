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
pub use mailbox::{ConnId, Inbox, Mailbox, Signal, Wake, mailbox};
pub use redis::{RedisBroker, RedisStatus, ping as redis_ping};

use tokio::sync::oneshot;

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
    /// `(groups, memberships)` of the members connected to this process (for `/metrics`).
    fn membership(&self) -> (usize, usize);
}
