//! The in-process broker: groups live in one map guarded by a short, synchronous lock that is
//! never held across an `.await`.
//!
//! A send to a big group is delivered in chunks of [`CHUNK`] members, and its sender yields to
//! the scheduler between chunks ([`Fanout`]): every delivery wakes a member's task, and the
//! 10,000 tasks of one send to a room of 10,000 would otherwise all run before anything woken
//! after them, another room's message included (issue 12). The sender awaits its whole fan-out,
//! so its own messages still reach each member in order.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Broker, ConnId, Mailbox};
use crate::chat::protocol::{Frame, GroupEvent};

/// Members delivered to at once before a big send's sender yields.
pub const CHUNK: usize = 256;

/// What is left of a send once [`LocalHub::deliver`] returns: nothing for a group of up to
/// [`CHUNK`] members; for a bigger one the members past the first chunk, which
/// [`Fanout::finish`] reaches a chunk at a time.
#[must_use = "a big group's fan-out ends in `finish`"]
#[derive(Default)]
pub struct Fanout(Option<(Vec<Mailbox>, Frame)>);

impl Fanout {
    /// Delivers the rest, yielding to other tasks after every chunk.
    pub async fn finish(self) {
        let Some((rest, frame)) = self.0 else { return };
        for chunk in rest.chunks(CHUNK) {
            tokio::task::yield_now().await;
            for member in chunk {
                member.deliver(frame.clone());
            }
        }
    }

    /// Delivers the rest at once (where nothing may wait).
    pub fn finish_now(self) {
        if let Some((rest, frame)) = self.0 {
            for member in rest {
                member.deliver(frame.clone());
            }
        }
    }
}

#[derive(Default)]
pub struct LocalHub {
    groups: RwLock<HashMap<String, HashMap<ConnId, Mailbox>>>,
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Members of a group (for tests and the health report).
    pub fn group_size(&self, group: &str) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.get(group).map_or(0, HashMap::len)
    }

    /// Hands `frame` to the members of `group` connected to this process: to all of them, or,
    /// in a group of more than [`CHUNK`], to the first chunk, and returns the others.
    pub fn deliver(&self, group: &str, frame: &Frame) -> Fanout {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        let Some(members) = groups.get(group) else {
            return Fanout::default();
        };
        let mut members = members.values();
        // A full queue flags that member for closing; the others are unaffected.
        for member in members.by_ref().take(CHUNK) {
            member.deliver(frame.clone());
        }
        let rest: Vec<Mailbox> = members.cloned().collect();
        if rest.is_empty() {
            Fanout::default()
        } else {
            Fanout(Some((rest, frame.clone())))
        }
    }

    /// Number of groups with at least one member.
    pub fn group_count(&self) -> usize {
        self.groups.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Broker for LocalHub {
    fn group_add(&self, group: &str, member: &Mailbox) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        groups
            .entry(group.to_string())
            .or_default()
            .insert(member.id(), member.clone());
    }

    fn group_discard(&self, group: &str, member: ConnId) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups.get_mut(group) {
            members.remove(&member);
            if members.is_empty() {
                groups.remove(group);
            }
        }
    }

    fn group_send(&self, group: &str, event: GroupEvent) -> Fanout {
        self.deliver(group, event.frame())
    }

    fn membership(&self) -> (usize, usize) {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        (groups.len(), groups.values().map(HashMap::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::mailbox;

    #[test]
    fn send_reaches_members_only_and_empty_groups_vanish() {
        let hub = LocalHub::new();
        let (a, mut ia) = mailbox(1, 8, usize::MAX);
        let (b, mut ib) = mailbox(2, 8, usize::MAX);
        hub.group_add("room-1", &a);
        hub.group_add("room-1", &a);
        hub.group_add("room-2", &b);
        assert_eq!(hub.group_size("room-1"), 1);
        hub.deliver("room-1", &Frame::from_string("x".into()))
            .finish_now();
        assert_eq!(ia.try_recv().unwrap().as_str(), "x");
        assert!(ib.try_recv().is_none());
        hub.group_discard("room-1", 1);
        hub.group_discard("room-1", 1);
        assert_eq!(hub.group_count(), 1);
        hub.deliver("room-1", &Frame::from_string("y".into()))
            .finish_now();
        assert!(ia.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_big_group_gets_its_first_chunk_at_once_and_the_rest_in_order() {
        let hub = LocalHub::new();
        let n = 2 * CHUNK + 10;
        let mut inboxes: Vec<_> = (0..n as u64)
            .map(|id| {
                let (m, inbox) = mailbox(id, 8, usize::MAX);
                hub.group_add("room-1", &m);
                (inbox, Vec::new())
            })
            .collect();
        let drain = |inboxes: &mut Vec<(crate::fanout::Inbox, Vec<String>)>| {
            for (inbox, got) in inboxes.iter_mut() {
                while let Some(f) = inbox.try_recv() {
                    got.push(f.as_str().to_string());
                }
            }
        };
        let rest = hub.deliver("room-1", &Frame::from_string("a".into()));
        drain(&mut inboxes);
        assert_eq!(
            inboxes.iter().filter(|(_, got)| !got.is_empty()).count(),
            CHUNK
        );
        rest.finish().await;
        hub.deliver("room-1", &Frame::from_string("b".into()))
            .finish()
            .await;
        drain(&mut inboxes);
        assert!(inboxes.iter().all(|(_, got)| got == &["a", "b"]));
    }

    #[test]
    fn one_slow_member_does_not_stop_the_others() {
        let hub = LocalHub::new();
        let (slow, slow_inbox) = mailbox(1, 1, usize::MAX);
        let (fast, mut fast_inbox) = mailbox(2, 16, usize::MAX);
        hub.group_add("room-1", &slow);
        hub.group_add("room-1", &fast);
        for i in 0..5 {
            hub.deliver("room-1", &Frame::from_string(i.to_string()))
                .finish_now();
        }
        assert!(slow_inbox.is_overflowed());
        for i in 0..5 {
            assert_eq!(fast_inbox.try_recv().unwrap().as_str(), i.to_string());
        }
    }
}
