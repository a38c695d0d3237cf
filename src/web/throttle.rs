//! Who may ask how often (issue 10, SECURITY.md): handshakes per client address (a token
//! bucket per address), sockets per user (counted slots) and failed logins per username and
//! per address (counted in a window, like django-axes). Every map is bounded: past its size,
//! entries that no longer limit anyone are dropped first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::chat::limits::TokenBucket;
use crate::config::Rate;

/// Keys kept at most by each map.
const MAX_KEYS: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One token bucket per key.
pub struct KeyedBuckets<K> {
    rate: Rate,
    map: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    pub fn new(rate: Rate) -> Self {
        KeyedBuckets {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or tells how long until one is there.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = lock(&self.map);
        if !map.contains_key(key) && map.len() >= MAX_KEYS {
            // A full bucket limits nobody: forget those first, then everyone (fail open).
            let burst = self.rate.burst;
            map.retain(|_, bucket| !bucket.has(burst, now));
            if map.len() >= MAX_KEYS {
                tracing::warn!("rate-limit table full: cleared");
                map.clear();
            }
        }
        let bucket = map
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.rate, now));
        if bucket.take(1.0, now) {
            Ok(())
        } else {
            Err(bucket.wait_for(1.0, now))
        }
    }
}

/// Open sockets per user, at most `max` each.
#[derive(Clone)]
pub struct UserSlots {
    max: usize,
    open: Arc<Mutex<HashMap<i64, usize>>>,
}

/// One open socket of a user; dropping it gives the slot back.
pub struct UserSlot {
    slots: UserSlots,
    user: i64,
}

impl UserSlots {
    pub fn new(max: usize) -> Self {
        UserSlots {
            max,
            open: Arc::default(),
        }
    }

    pub fn acquire(&self, user: i64) -> Option<UserSlot> {
        let mut open = lock(&self.open);
        let n = open.entry(user).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            slots: self.clone(),
            user,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.slots.open);
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Failed logins within a window, per username and per client address (django-axes' idea):
/// past either limit, the login page answers 429 without checking the password; a success
/// clears both counts.
pub struct LoginFailures {
    per_username: usize,
    per_address: usize,
    window: Duration,
    map: Mutex<HashMap<FailureKey, (usize, Instant)>>,
}

#[derive(Clone, Hash, PartialEq, Eq)]
enum FailureKey {
    Username(String),
    Address(IpAddr),
}

impl LoginFailures {
    pub fn new(per_username: usize, per_address: usize, window: Duration) -> Self {
        LoginFailures {
            per_username,
            per_address,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = FailureKey> {
        std::iter::once(FailureKey::Username(username.to_string()))
            .chain(address.map(FailureKey::Address))
    }

    fn limit(&self, key: &FailureKey) -> usize {
        match key {
            FailureKey::Username(_) => self.per_username,
            FailureKey::Address(_) => self.per_address,
        }
    }

    /// `Some(time left)` when this username or address is locked out now.
    pub fn locked(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Option<Duration> {
        let map = lock(&self.map);
        Self::keys(username, address)
            .filter_map(|key| {
                let (count, since) = map.get(&key)?;
                let left = self
                    .window
                    .checked_sub(now.saturating_duration_since(*since))?;
                (*count >= self.limit(&key) && !left.is_zero()).then_some(left)
            })
            .max()
    }

    pub fn failed(&self, username: &str, address: Option<IpAddr>, now: Instant) {
        let mut map = lock(&self.map);
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, (_, since)| now.saturating_duration_since(*since) < window);
            if map.len() >= MAX_KEYS {
                tracing::warn!("login-failure table full: cleared");
                map.clear();
            }
        }
        for key in Self::keys(username, address) {
            let entry = map.entry(key.clone()).or_insert((0, now));
            if now.saturating_duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
            // Once per lock-out, as django-axes logs it: the operator sees who is guessing.
            if entry.0 == self.limit(&key) {
                match &key {
                    FailureKey::Username(name) => {
                        tracing::warn!(username = %name, "login locked out: too many failures")
                    }
                    FailureKey::Address(ip) => {
                        tracing::warn!(address = %ip, "login locked out: too many failures")
                    }
                }
            }
        }
    }

    pub fn succeeded(&self, username: &str, address: Option<IpAddr>) {
        let mut map = lock(&self.map);
        for key in Self::keys(username, address) {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_key() {
        let t0 = Instant::now();
        let buckets = KeyedBuckets::new(Rate {
            per_second: 1.0,
            burst: 2.0,
        });
        assert!(buckets.take(&1, t0).is_ok());
        assert!(buckets.take(&1, t0).is_ok());
        assert_eq!(buckets.take(&1, t0), Err(Duration::from_secs(1)));
        assert!(
            buckets.take(&2, t0).is_ok(),
            "another key has its own bucket"
        );
        assert!(buckets.take(&1, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn user_slots_are_given_back() {
        let slots = UserSlots::new(2);
        let a = slots.acquire(7).unwrap();
        let _b = slots.acquire(7).unwrap();
        assert!(slots.acquire(7).is_none());
        assert!(slots.acquire(8).is_some());
        drop(a);
        assert!(slots.acquire(7).is_some());
    }

    #[test]
    fn failures_lock_out_per_username_and_address_within_the_window() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let failures = LoginFailures::new(3, 5, window);
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        let there: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(failures.locked("bob", Some(here), t0).is_none());
            failures.failed("bob", Some(here), t0);
        }
        assert_eq!(failures.locked("bob", Some(there), t0), Some(window));
        assert!(failures.locked("carol", Some(there), t0).is_none());
        // Two more from `here` on other names lock the address.
        failures.failed("x", Some(here), t0);
        assert!(failures.locked("carol", Some(here), t0).is_none());
        failures.failed("y", Some(here), t0);
        assert!(failures.locked("carol", Some(here), t0).is_some());
        // The window passes.
        assert!(failures.locked("bob", Some(there), t0 + window).is_none());
        // A success clears the username and the address.
        failures.succeeded("bob", Some(here));
        assert!(failures.locked("bob", Some(here), t0).is_none());
    }
}
