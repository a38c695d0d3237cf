//! The state one process's broker shares with its background tasks: the local hub, the groups
//! wanted on Redis (per host of the ring), each host's link health, and the counters.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::ring::Ring;
use crate::fanout::LocalHub;

pub(super) const PROCESS_ID_LEN: usize = 16;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Groups with local members, and per host those whose Redis-side state (subscription or group
/// membership) may need changing.
pub(super) struct Wanted {
    pub groups: HashSet<String>,
    /// Indexed by host.
    dirty: Vec<HashSet<String>>,
    /// Groups whose subscription (or membership) Redis has confirmed.
    confirmed: HashSet<String>,
    /// Joins waiting for their group to be confirmed.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl Wanted {
    fn new(hosts: usize) -> Wanted {
        Wanted {
            groups: HashSet::new(),
            dirty: vec![HashSet::new(); hosts],
            confirmed: HashSet::new(),
            waiters: HashMap::new(),
        }
    }

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

    /// The connection holding `host`'s subscriptions is gone: its groups are unconfirmed (and
    /// joins waiting for them answered without waiting longer).
    pub fn unconfirm(&mut self, host: usize, ring: &Ring) {
        self.confirmed.retain(|g| ring.group_host(g) != host);
        self.waiters.retain(|g, _| ring.group_host(g) != host);
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

    /// Changes of `host`'s groups to try again (their commands failed).
    pub fn redo(&mut self, host: usize, groups: impl IntoIterator<Item = String>) {
        self.dirty[host].extend(groups);
    }

    /// The groups to add to and remove from `host` to match `active` (what that host holds):
    /// all of its wanted groups after a (re)connect (`full`), else only those whose membership
    /// changed.
    pub fn diff(
        &mut self,
        host: usize,
        ring: &Ring,
        active: &HashSet<String>,
        full: bool,
    ) -> (Vec<String>, Vec<String>) {
        let candidates: Vec<String> = if full {
            self.dirty[host].clear();
            self.groups
                .iter()
                .filter(|g| ring.group_host(g) == host)
                .chain(active.iter())
                .cloned()
                .collect()
        } else {
            self.dirty[host].drain().collect()
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

/// One host's connections.
#[derive(Default)]
struct Links {
    publisher: bool,
    receiver: bool,
    /// Each link has been up once: its next coming up is a reconnect.
    had_publisher: bool,
    had_receiver: bool,
    /// The state last logged (`None`: nothing logged yet).
    reported: Option<bool>,
}

impl Links {
    fn up(&self) -> bool {
        self.publisher && self.receiver
    }
}

#[derive(Clone, Copy)]
pub(super) enum Link {
    Publisher,
    /// The subscriber (pub/sub formats) or the queue reader (`RedisChannelLayer`).
    Receiver,
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

/// Where this process's Redis state lives.
pub(super) struct Topology {
    /// Redacted URLs, in ring order.
    pub hosts: Vec<String>,
    pub ring: Ring,
    /// The one host this process receives on (`RedisChannelLayer`: its queue's host); `None`:
    /// every host has a receiving connection of its own (pub/sub formats).
    pub inbox: Option<usize>,
}

/// State shared by the broker and its background tasks.
pub(super) struct Shared {
    pub hub: LocalHub,
    pub prefix: String,
    pub process_id: [u8; PROCESS_ID_LEN],
    pub ring: Ring,
    hosts: Vec<String>,
    inbox: Option<usize>,
    pub wanted: Mutex<Wanted>,
    /// Per host: wakes the task that mirrors that host's groups into Redis.
    wanted_changed: Vec<Notify>,
    links: Mutex<Vec<Links>>,
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    pub received: AtomicU64,
    pub ignored: AtomicU64,
    ignore_warning: Throttle,
    pub over_capacity: AtomicU64,
    /// Links (publisher or receiver, any host) up again after they were lost.
    pub reconnects: AtomicU64,
    /// Per host: groups subscribed (or joined) there right now.
    subscribed: Vec<AtomicUsize>,
    pub backend: &'static str,
}

impl Shared {
    /// Fresh state for one process: nothing wanted, nothing counted yet.
    pub fn new(
        prefix: &str,
        process_id: [u8; PROCESS_ID_LEN],
        topology: Topology,
        backend: &'static str,
    ) -> Shared {
        let n = topology.hosts.len().max(1);
        let links = (0..n)
            .map(|host| Links {
                // A host that is not the inbox has no receiving connection to wait for.
                receiver: topology.inbox.is_some_and(|inbox| inbox != host),
                ..Links::default()
            })
            .collect();
        Shared {
            hub: LocalHub::new(),
            prefix: prefix.to_string(),
            process_id,
            ring: topology.ring,
            hosts: topology.hosts,
            inbox: topology.inbox,
            wanted: Mutex::new(Wanted::new(n)),
            wanted_changed: (0..n).map(|_| Notify::new()).collect(),
            links: Mutex::new(links),
            published: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            received: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            ignore_warning: Throttle::default(),
            over_capacity: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            subscribed: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            backend,
        }
    }

    /// A single-host state for unit tests.
    #[cfg(test)]
    pub fn for_test(prefix: &str, process_id: [u8; PROCESS_ID_LEN]) -> Shared {
        let topology = Topology {
            hosts: vec![String::new()],
            ring: Ring::new(1, ""),
            inbox: None,
        };
        Shared::new(prefix, process_id, topology, "test")
    }

    pub fn host_count(&self) -> usize {
        self.wanted_changed.len()
    }

    /// Per host, in ring order: its connections are up.
    pub fn hosts_up(&self) -> Vec<bool> {
        lock(&self.links).iter().map(Links::up).collect()
    }

    /// Events for `group` can travel both ways now: its host is up, and so is the host this
    /// process receives on.
    pub fn reaches(&self, group: &str) -> bool {
        let links = lock(&self.links);
        links[self.ring.group_host(group)].up() && self.inbox.is_none_or(|i| links[i].up())
    }

    /// Records a link's state; logs each host's outage once and its recovery once.
    pub fn set_link(&self, host: usize, link: Link, up: bool, error: Option<&dyn fmt::Display>) {
        let mut links = lock(&self.links);
        let l = &mut links[host];
        let (now, had) = match link {
            Link::Publisher => (&mut l.publisher, &mut l.had_publisher),
            Link::Receiver => (&mut l.receiver, &mut l.had_receiver),
        };
        if up && !*now && *had {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *now = up;
        *had |= up;
        let url = &self.hosts[host];
        let of = self.hosts.len();
        let host = host + 1;
        if l.up() && l.reported != Some(true) {
            if l.reported.is_none() {
                tracing::info!(url = %url, host, of, prefix = %self.prefix, backend = self.backend, "connected to Redis");
            } else {
                tracing::warn!(url = %url, host, of, "Redis connection restored; cross-process delivery resumed");
            }
            l.reported = Some(true);
        } else if !up && l.reported != Some(false) {
            tracing::error!(
                url = %url,
                host,
                of,
                error = %error.map(|e| e.to_string()).unwrap_or_default(),
                "Redis unavailable: rooms on this host are served to local members only, retrying in the background"
            );
            l.reported = Some(false);
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

    /// Marks `group` for the background task that mirrors its host's memberships into Redis.
    pub fn mark(&self, wanted: &mut Wanted, group: &str) {
        let host = self.ring.group_host(group);
        wanted.dirty[host].insert(group.to_string());
        self.wanted_changed[host].notify_one();
    }

    /// Wakes `host`'s mirroring task without a particular group (a renewal is due).
    pub fn changed(&self, host: usize) -> &Notify {
        &self.wanted_changed[host]
    }

    pub fn set_subscribed(&self, host: usize, n: usize) {
        self.subscribed[host].store(n, Ordering::Relaxed);
    }

    pub fn subscribed(&self) -> usize {
        self.subscribed
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }
}
