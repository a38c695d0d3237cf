//! Room presence, as the Whisper fork keeps it (spec `multichat-protocol.md` §12; the fork's
//! `chat/utils.py`): who is or was in a room, answered by the `room_users` command.
//!
//! The fork stores, under the Django cache key `room-presence-<room>` (`<room>` = `str()` of the
//! raw value the client sent), a pickled dict
//! `{user.id: {"username": …, "name": …, "left": bool, "last_update": <epoch float>}}` with a
//! timeout of `ROOM_PRESENCE_TIMEOUT` seconds (3600). A join and every send refresh the user's
//! entry (`left` false, `last_update` now); a leave marks it `left`. Whisper keeps exactly that,
//! so Django code calling `cache.get("room-presence-1")` reads what Whisper wrote, and Whisper
//! reads what a Python fork worker wrote:
//!
//! * `CACHES["default"]` a Redis cache (the fork's `django.core.cache.cache`): there;
//! * else with `REDIS_URL`: the same pickled dict on that Redis, under the key a Django
//!   `RedisCache` with `KEY_PREFIX` = `REDIS_PREFIX` (without its trailing `:`) would use;
//! * else in this process (bounded, entries expire after the timeout).
//!
//! Where the fork crashes, Whisper does what it clearly meant (README, "Documented
//! differences"): leaving a room whose presence dict lacks the user leaves the dict alone (the
//! fork raises `KeyError`), and leaving with no dict stores nothing (the fork stores `None`).
//! Updates are read-modify-writes, as in the fork, but a concurrent Whisper writer cannot undo
//! another's (see `DjangoCache::update`). Presence is best effort: a cache that cannot be
//! reached is logged and never fails a join, leave or send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::django::pickle::{PyDict, PyValue};
use crate::django::pyjson::{self, Separators, Value};
use crate::store::{Cached, DjangoCache, StoreError, Timeout};

/// The fork's `ROOM_PRESENCE_TIMEOUT`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Rooms kept by the in-process store; past it the entries closest to expiry go first.
pub const MEMORY_CAPACITY: usize = 65_536;

/// The user a connection refreshes presence for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceUser {
    pub id: i64,
    /// What chat shows (`get_username()`).
    pub username: String,
    /// The user table's `name` column (the fork's `users.User.name`), or "".
    pub name: String,
}

/// Where presence lives; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Backend>,
    timeout: Duration,
}

enum Backend {
    Cache(DjangoCache),
    Memory(Mutex<Memory>),
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Backend::Cache(c) => write!(f, "Presence({c:?})"),
            Backend::Memory(_) => f.write_str("Presence(in process)"),
        }
    }
}

impl Presence {
    /// Presence in a Django cache on Redis.
    pub fn in_cache(cache: DjangoCache, timeout: Duration) -> Presence {
        Presence {
            inner: Arc::new(Backend::Cache(cache)),
            timeout,
        }
    }

    /// Presence in this process only.
    pub fn in_memory(timeout: Duration) -> Presence {
        Presence {
            inner: Arc::new(Backend::Memory(Mutex::new(Memory::default()))),
            timeout,
        }
    }

    /// After a join or a send: the user's entry becomes present, `last_update` now.
    pub async fn refresh(&self, key: &str, user: &PresenceUser) {
        let entry = entry(user, unix_now());
        let result = self
            .change(key, |dict| {
                dict.get_or_insert_default()
                    .insert(user.id, PyValue::Dict(entry.clone()));
                true
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(key, error = %e, "room presence not refreshed");
        }
    }

    /// After a leave: the user's entry, if there is one, is marked `left`.
    pub async fn mark_left(&self, key: &str, user_id: i64) {
        let result = self
            .change(key, |dict| {
                let Some(dict) = dict else {
                    return false;
                };
                let Some(PyValue::Dict(entry)) = dict.get(user_id) else {
                    return false;
                };
                let mut entry = entry.clone();
                entry.insert("left", PyValue::Bool(true));
                dict.insert(user_id, PyValue::Dict(entry));
                true
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(key, error = %e, "room presence not marked as left");
        }
    }

    /// What `cache.get(key)` gives: the stored value, `None` when missing. An unreadable
    /// value (a refused pickle) reads as missing, and is logged.
    pub async fn users(&self, key: &str) -> Result<Option<PyValue>, StoreError> {
        match &*self.inner {
            Backend::Memory(m) => Ok(lock(m)
                .get(key, Instant::now())
                .map(|d| PyValue::Dict(d.clone()))),
            Backend::Cache(cache) => match cache.get(key).await? {
                None => Ok(None),
                Some(Cached::Value(v)) => Ok(Some(v)),
                Some(Cached::Int(n)) => Ok(Some(PyValue::Int(n))),
                Some(Cached::Unreadable(e)) => {
                    tracing::warn!(key, reason = %e, "unreadable room presence ignored");
                    Ok(None)
                }
            },
        }
    }

    /// Applies `change` to the stored dict (`None` when missing or not a dict) in place;
    /// `change` returning false leaves the key alone. In process the dict is changed where it
    /// is, not copied: a copy of a room's whole dict per message was most of a send's cost
    /// in a room of 100 (issue 12's profile).
    async fn change<F>(&self, key: &str, mut change: F) -> Result<(), StoreError>
    where
        F: FnMut(&mut Option<PyDict>) -> bool,
    {
        match &*self.inner {
            Backend::Memory(m) => {
                let now = Instant::now();
                let mut memory = lock(m);
                match memory.live(key, now) {
                    Some((dict, expires)) => {
                        let mut current = Some(std::mem::take(dict));
                        let changed = change(&mut current);
                        // `change` only ever fills or edits the dict it is given.
                        *dict = current.unwrap_or_default();
                        if changed {
                            *expires = now + self.timeout;
                        }
                    }
                    None => {
                        let mut current = None;
                        if change(&mut current)
                            && let Some(dict) = current
                        {
                            memory.set(key, dict, now + self.timeout);
                        }
                    }
                }
                Ok(())
            }
            Backend::Cache(cache) => {
                let timeout = Timeout::Seconds(self.timeout.as_secs() as i64);
                cache
                    .update(key, timeout, |current| {
                        let mut dict = match current {
                            Some(Cached::Value(PyValue::Dict(d))) => Some(d),
                            Some(Cached::Unreadable(e)) => {
                                tracing::warn!(key, reason = %e, "unreadable room presence replaced");
                                None
                            }
                            _ => None,
                        };
                        if change(&mut dict) {
                            dict.map(PyValue::Dict)
                        } else {
                            None
                        }
                    })
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// The fork's entry for one user, in its key order.
fn entry(user: &PresenceUser, now: f64) -> PyDict {
    let mut e = PyDict::new();
    e.insert("username", PyValue::str(&user.username));
    e.insert("name", PyValue::str(&user.name));
    e.insert("left", PyValue::Bool(false));
    e.insert("last_update", PyValue::Float(now));
    e
}

/// `timezone.now().timestamp()`: whole microseconds over 10⁶, as Python divides them.
fn unix_now() -> f64 {
    let micros = chrono::Utc::now().timestamp_micros();
    micros as f64 / 1e6
}

/// `f"room-presence-{room}"`: `str()` of the raw room value, for the values a join or send can
/// accept (strings, numbers, booleans). Other values (`null`, lists, objects) name keys nothing
/// ever writes, since no join accepts them: `None`, and `room_users` answers `null` at once.
pub fn presence_key(raw: &Value) -> Option<String> {
    let text = match raw {
        Value::Str(s) => s.as_string()?,
        Value::Int(n) => n.to_string(),
        // str(float) is repr(float), which is what json.dumps writes for a finite float.
        Value::Float(f) if f.is_finite() => pyjson::dumps(raw, Separators::Python),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        _ => return None,
    };
    Some(format!("room-presence-{text}"))
}

/// The `users` value of a `room_users` reply: what `json.dumps` writes for the cached value
/// (`int` user ids become strings). A value `json.dumps` would refuse reads as `null`.
pub fn users_json(value: Option<&PyValue>) -> Value {
    match value.map(crate::django::pickle::to_json) {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            tracing::warn!(reason = %e, "room presence that JSON cannot hold answered as null");
            Value::Null
        }
    }
}

fn lock(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The in-process store: dicts with their expiry, at most [`MEMORY_CAPACITY`] of them.
#[derive(Default)]
struct Memory {
    rooms: HashMap<String, (PyDict, Instant)>,
}

impl Memory {
    fn get(&mut self, key: &str, now: Instant) -> Option<&PyDict> {
        if self
            .rooms
            .get(key)
            .is_some_and(|(_, expires)| *expires <= now)
        {
            self.rooms.remove(key);
        }
        self.rooms.get(key).map(|(d, _)| d)
    }

    /// A room's unexpired dict and its expiry, to change where they are.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut (PyDict, Instant)> {
        self.rooms
            .get_mut(key)
            .filter(|(_, expires)| *expires > now)
    }

    fn set(&mut self, key: &str, dict: PyDict, expires: Instant) {
        if !self.rooms.contains_key(key) && self.rooms.len() >= MEMORY_CAPACITY {
            let now = Instant::now();
            self.rooms.retain(|_, (_, e)| *e > now);
            if self.rooms.len() >= MEMORY_CAPACITY
                && let Some(oldest) = self
                    .rooms
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone())
            {
                self.rooms.remove(&oldest);
            }
        }
        self.rooms.insert(key.to_string(), (dict, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, name: &str) -> PresenceUser {
        PresenceUser {
            id,
            username: format!("user{id}"),
            name: name.into(),
        }
    }

    fn room(text: &str) -> Value {
        pyjson::loads(text).unwrap()
    }

    #[test]
    fn keys_are_str_of_the_raw_value() {
        assert_eq!(presence_key(&room("1")).as_deref(), Some("room-presence-1"));
        assert_eq!(
            presence_key(&room(r#"" 01""#)).as_deref(),
            Some("room-presence- 01")
        );
        assert_eq!(
            presence_key(&room("1.0")).as_deref(),
            Some("room-presence-1.0")
        );
        assert_eq!(
            presence_key(&room("1e3")).as_deref(),
            Some("room-presence-1000.0")
        );
        assert_eq!(
            presence_key(&room("true")).as_deref(),
            Some("room-presence-True")
        );
        for never in ["null", "[1]", r#"{"a": 1}"#] {
            assert_eq!(presence_key(&room(never)), None, "{never}");
        }
    }

    #[tokio::test]
    async fn refresh_leave_and_read_in_process() {
        let p = Presence::in_memory(DEFAULT_TIMEOUT);
        let key = "room-presence-1";
        assert_eq!(p.users(key).await.unwrap(), None);
        p.refresh(key, &user(5, "Five")).await;
        p.refresh(key, &user(2, "")).await;
        p.mark_left(key, 5).await;
        // Refreshing keeps the user's place (Python dict.update), and clears `left`.
        p.refresh(key, &user(2, "")).await;
        // Leaving with no entry changes nothing.
        p.mark_left(key, 9).await;
        p.mark_left("room-presence-404", 9).await;
        assert_eq!(p.users("room-presence-404").await.unwrap(), None);
        let users = users_json(p.users(key).await.unwrap().as_ref());
        let text = pyjson::dumps(&users, Separators::Python);
        let five = r#""5": {"username": "user5", "name": "Five", "left": true, "last_update": "#;
        assert!(text.starts_with(&format!("{{{five}")), "{text}");
        assert!(
            text.contains(r#", "2": {"username": "user2", "name": "", "left": false, "#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn entries_expire() {
        let p = Presence::in_memory(Duration::from_millis(20));
        p.refresh("room-presence-1", &user(1, "")).await;
        assert!(p.users("room-presence-1").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(p.users("room-presence-1").await.unwrap(), None);
    }

    #[test]
    fn the_in_process_store_is_bounded() {
        let mut m = Memory::default();
        let now = Instant::now();
        for i in 0..MEMORY_CAPACITY + 10 {
            m.set(
                &format!("k{i}"),
                PyDict::new(),
                now + Duration::from_secs(100 + i as u64),
            );
        }
        assert_eq!(m.rooms.len(), MEMORY_CAPACITY);
        assert!(m.get("k0", now).is_none(), "the earliest expiry goes first");
        assert!(m.get(&format!("k{}", MEMORY_CAPACITY + 9), now).is_some());
    }

    #[test]
    fn timestamps_are_whole_microseconds() {
        let t = unix_now();
        assert!(t > 1.7e9);
        let micros = (t * 1e6).round();
        assert!((micros / 1e6 - t).abs() < 1e-6);
    }
}
