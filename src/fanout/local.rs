//! The in-process broker: groups live in one map guarded by a short, synchronous lock that is
//! never held across an `.await`.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Broker, ConnId, Mailbox};
use crate::chat::protocol::{Frame, GroupEvent};

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

    /// Hands `frame` to every member of `group` connected to this process.
    pub fn deliver(&self, group: &str, frame: &Frame) {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups.get(group) {
            for member in members.values() {
                // A full queue flags that member for closing; the others are unaffected.
                member.deliver(frame.clone());
            }
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

    fn group_send(&self, group: &str, event: GroupEvent) {
        self.deliver(group, event.frame());
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
        hub.deliver("room-1", &Frame::from_string("x".into()));
        assert_eq!(ia.try_recv().unwrap().as_str(), "x");
        assert!(ib.try_recv().is_none());
        hub.group_discard("room-1", 1);
        hub.group_discard("room-1", 1);
        assert_eq!(hub.group_count(), 1);
        hub.deliver("room-1", &Frame::from_string("y".into()));
        assert!(ia.try_recv().is_none());
    }

    #[test]
    fn one_slow_member_does_not_stop_the_others() {
        let hub = LocalHub::new();
        let (slow, slow_inbox) = mailbox(1, 1, usize::MAX);
        let (fast, mut fast_inbox) = mailbox(2, 16, usize::MAX);
        hub.group_add("room-1", &slow);
        hub.group_add("room-1", &fast);
        for i in 0..5 {
            hub.deliver("room-1", &Frame::from_string(i.to_string()));
        }
        assert!(slow_inbox.is_overflowed());
        for i in 0..5 {
            assert_eq!(fast_inbox.try_recv().unwrap().as_str(), i.to_string());
        }
    }
}
