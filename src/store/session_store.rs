//! `SESSION_ENGINE`: where a session lives, in one place. The web layer asks only to load a
//! session by its cookie, save it (under its key or a new one) and delete it.
//!
//! | engine | load | save | delete |
//! |---|---|---|---|
//! | `db` | the unexpired row, decoded | `UPDATE` the row, else `INSERT` a new key | the row |
//! | `signed_cookies` | the cookie, decoded (max age `SESSION_COOKIE_AGE`) | the new cookie | nothing |
//! | `cache` | the pickled dict at `…:django.contrib.sessions.cache<key>` | `SET … XX`, else `SET … NX` under a new key | the entry |
//! | `cached_db` | that entry at `…cached_db<key>`; on a miss the row, then the entry is filled with the row's remaining lifetime | the row, then the entry | the row and the entry |
//!
//! As in Django (`backends/cache.py`, `cached_db.py`, spec §4.7): storage expiry is
//! `get_expiry_age()` (§4.5); `cached_db` reads fall back to the row when the cache cannot be
//! reached or read, and a failed cache write after a saved row is logged, not an error; a
//! failed cache *delete* is an error (503), since the entry would keep a logged-out session
//! alive for Django. An unreadable cache entry (a refused pickle) is an empty session, and the
//! reason is logged once per kind of reason every ten minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::cache::{Cached, DjangoCache, Timeout};
use super::{Store, StoreError};
use crate::config::{SessionEngine, Settings};
use crate::django::sessions::{
    self, CACHE_KEY_PREFIX, CACHED_DB_KEY_PREFIX, SESSION_SALT, SIGNED_COOKIES_SALT, SessionData,
};

/// How often one kind of unreadable-session warning is logged.
const WARN_EVERY: Duration = Duration::from_secs(600);
/// Session rows kept decoded ([`SessionStore::decode_row`]), and the longest row kept.
const DECODED_ROWS: usize = 1024;
const DECODED_ROW_BYTES: usize = 4096;

/// A session as loaded for a request.
#[derive(Debug, Default)]
pub struct LoadedSession {
    /// The stored session's key; `None` when nothing is stored under the cookie (or the
    /// engine stores nothing, like `signed_cookies`).
    pub key: Option<String>,
    pub data: SessionData,
}

/// The configured session engine over the database and the cache.
pub struct SessionStore {
    engine: SessionEngine,
    store: Store,
    cache: Option<DjangoCache>,
    secret: String,
    /// `SECRET_KEY` then `SECRET_KEY_FALLBACKS`.
    keys: Vec<String>,
    cookie_age: u64,
    warned: Mutex<HashMap<&'static str, Instant>>,
    /// Rows already decoded, by their text.
    decoded: Mutex<HashMap<String, SessionData>>,
}

impl SessionStore {
    /// The engine of `settings` (whose `SECRET_KEY` is resolved) over `store`; a cache engine
    /// gets a client of `CACHES[SESSION_CACHE_ALIAS]`, which connects at first use.
    pub fn new(settings: &Settings, store: Store) -> Result<SessionStore, StoreError> {
        let cache = match (
            settings.session_engine.uses_cache(),
            settings.caches.session_cache(),
        ) {
            (true, Some(config)) => Some(DjangoCache::new(config)?),
            _ => None,
        };
        let mut keys = vec![settings.secret().to_string()];
        keys.extend(settings.fallback_secrets());
        Ok(SessionStore {
            engine: settings.session_engine,
            store,
            cache,
            secret: settings.secret().to_string(),
            keys,
            cookie_age: settings.session_cookie_age,
            warned: Mutex::new(HashMap::new()),
            decoded: Mutex::new(HashMap::new()),
        })
    }

    /// The cache the sessions use, if any.
    pub fn cache(&self) -> Option<&DjangoCache> {
        self.cache.as_ref()
    }

    /// Which of these session keys still have their entry in the session cache (the `cache`
    /// engine's only record of a session; Redis drops it when it expires). One round trip.
    pub async fn live_cache_keys(&self, keys: &[String]) -> Result<HashSet<String>, StoreError> {
        let Some(cache) = self.cache.as_ref() else {
            return Ok(HashSet::new());
        };
        let entries: Vec<String> = keys
            .iter()
            .map(|k| format!("{CACHE_KEY_PREFIX}{k}"))
            .collect();
        let found = cache.existing(&entries).await?;
        Ok(keys
            .iter()
            .zip(found)
            .filter(|(_, exists)| *exists)
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn key_strs(&self) -> Vec<&str> {
        self.keys.iter().map(String::as_str).collect()
    }

    /// `SessionStore.decode` of a stored row (no max age: the row's `expire_date` bounds it).
    /// The same text always decodes to the same data under this process's keys, so a row read
    /// again (a browser's tabs and reconnects; the ten users behind a benchmark's 10,000
    /// sockets) is verified, inflated and parsed once: that was most of a handshake's work
    /// (issue 12). At most [`DECODED_ROWS`] rows of up to [`DECODED_ROW_BYTES`] are kept.
    fn decode_row(&self, text: &str, ts: u64) -> SessionData {
        let lock = || self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(data) = lock().get(text) {
            return data.clone();
        }
        let data =
            sessions::decode(text, &self.key_strs(), SESSION_SALT, None, ts).unwrap_or_default();
        if text.len() <= DECODED_ROW_BYTES {
            let mut decoded = lock();
            if decoded.len() >= DECODED_ROWS {
                decoded.clear();
            }
            decoded.insert(text.to_string(), data.clone());
        }
        data
    }

    /// The session named by a cookie value. Missing, expired, tampered or unreadable sessions
    /// are empty (Django's behaviour); only storage trouble is an error.
    pub async fn load(
        &self,
        cookie: &str,
        now: DateTime<Utc>,
    ) -> Result<LoadedSession, StoreError> {
        let ts = now.timestamp().max(0) as u64;
        let decode = |text: &str| self.decode_row(text, ts);
        let mut loaded = LoadedSession::default();
        match self.engine {
            SessionEngine::SignedCookies => {
                let keys = self.key_strs();
                let max_age = Some(self.cookie_age);
                loaded.data = sessions::decode(cookie, &keys, SIGNED_COOKIES_SALT, max_age, ts)
                    .unwrap_or_default();
            }
            SessionEngine::Db => {
                if let Some(text) = self.store.load_session(cookie, now).await? {
                    // A row that does not decode is an empty session that keeps its key.
                    loaded.data = decode(&text);
                    loaded.key = Some(cookie.to_string());
                }
            }
            SessionEngine::Cache => {
                if usable_key(cookie)
                    && let Some(data) = self.cached(CACHE_KEY_PREFIX, cookie).await?
                {
                    loaded = LoadedSession {
                        key: Some(cookie.to_string()),
                        data,
                    };
                }
            }
            SessionEngine::CachedDb => {
                if !usable_key(cookie) {
                    return Ok(loaded);
                }
                // Django: any exception while reading the cache counts as a miss.
                let hit = match self.cached(CACHED_DB_KEY_PREFIX, cookie).await {
                    Ok(hit) => hit,
                    Err(e) => {
                        self.warn(
                            "cache-read",
                            &format!("reading the session from the row: {e}"),
                        );
                        None
                    }
                };
                if let Some(data) = hit {
                    loaded = LoadedSession {
                        key: Some(cookie.to_string()),
                        data,
                    };
                } else if let Some((text, expire)) =
                    self.store.load_session_expiry(cookie, now).await?
                {
                    let data = decode(&text);
                    // `get_expiry_age(expiry=s.expire_date)`: whole seconds left.
                    let left = (expire - now).num_seconds();
                    self.cache_write(CACHED_DB_KEY_PREFIX, cookie, &data, left)
                        .await;
                    loaded = LoadedSession {
                        key: Some(cookie.to_string()),
                        data,
                    };
                }
            }
        }
        Ok(loaded)
    }

    /// Saves `data` under `key` if that session still exists, else under a new key; the
    /// cookie value to send.
    pub async fn save(
        &self,
        key: Option<&str>,
        data: &SessionData,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let age = data.expiry_age(self.cookie_age, now);
        let ts = now.timestamp().max(0) as u64;
        match self.engine {
            SessionEngine::SignedCookies => Ok(sessions::encode(
                data,
                &self.secret,
                SIGNED_COOKIES_SALT,
                ts,
            )),
            SessionEngine::Db | SessionEngine::CachedDb => {
                let text = sessions::encode(data, &self.secret, SESSION_SALT, ts);
                let expire = now + chrono::Duration::seconds(age.clamp(-(1 << 40), 1 << 40));
                let mut saved = match key {
                    Some(key) => self
                        .store
                        .update_session(key, &text, expire)
                        .await?
                        .then(|| key.to_string()),
                    None => None,
                };
                // A new key; on the (astronomically unlikely) collision, pick another.
                while saved.is_none() {
                    let key = sessions::new_session_key();
                    if self.store.insert_session(&key, &text, expire).await? {
                        saved = Some(key);
                    }
                }
                let key = saved.expect("set by the loop");
                if self.engine == SessionEngine::CachedDb {
                    self.cache_write(CACHED_DB_KEY_PREFIX, &key, data, age)
                        .await;
                }
                Ok(key)
            }
            SessionEngine::Cache => {
                let cache = self.cache.as_ref().expect("cache engines have a cache");
                let value = data.to_pickle();
                let timeout = Timeout::Seconds(age);
                if let Some(key) = key {
                    let entry = format!("{CACHE_KEY_PREFIX}{key}");
                    if cache.replace(&entry, &value, timeout).await? {
                        return Ok(key.to_string());
                    }
                }
                // `create()`: `cache.add` under new keys until one is free.
                loop {
                    let key = sessions::new_session_key();
                    let entry = format!("{CACHE_KEY_PREFIX}{key}");
                    if cache.add(&entry, &value, timeout).await? {
                        return Ok(key);
                    }
                }
            }
        }
    }

    /// Deletes the stored session (row and/or cache entry); nothing for signed cookies.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.engine {
            SessionEngine::SignedCookies => Ok(()),
            SessionEngine::Db => self.store.delete_session(key).await,
            SessionEngine::Cache => self.cache_delete(CACHE_KEY_PREFIX, key).await,
            SessionEngine::CachedDb => {
                self.store.delete_session(key).await?;
                self.cache_delete(CACHED_DB_KEY_PREFIX, key).await
            }
        }
    }

    /// The session dict in the cache entry of `prefix + key`: `None` when missing or
    /// unreadable (the reason logged).
    async fn cached(&self, prefix: &str, key: &str) -> Result<Option<SessionData>, StoreError> {
        let cache = self.cache.as_ref().expect("cache engines have a cache");
        let found = cache.get(&format!("{prefix}{key}")).await?;
        let reason = match found {
            None => return Ok(None),
            Some(Cached::Value(value)) => match value.as_dict().map(SessionData::from_pickle) {
                Some(Ok(data)) => return Ok(Some(data)),
                Some(Err(why)) => ("unsupported", why),
                None => (
                    "not-a-dict",
                    format!("a {} instead of a dict", value.type_name()),
                ),
            },
            Some(Cached::Int(_)) => ("not-a-dict", "an int instead of a dict".to_string()),
            Some(Cached::Unreadable(e)) => (refusal_kind(&e), e.to_string()),
        };
        self.warn(
            reason.0,
            &format!(
                "a session in the cache ({}) is not readable and counts as anonymous: {}",
                cache.config().alias,
                reason.1
            ),
        );
        Ok(None)
    }

    /// `cached_db`'s cache write after the row: failures are logged, as Django does.
    async fn cache_write(&self, prefix: &str, key: &str, data: &SessionData, age: i64) {
        let cache = self.cache.as_ref().expect("cache engines have a cache");
        let entry = format!("{prefix}{key}");
        if let Err(e) = cache
            .set(&entry, &data.to_pickle(), Timeout::Seconds(age))
            .await
        {
            self.warn(
                "cache-write",
                &format!("error saving the session to the cache: {e}"),
            );
        }
    }

    async fn cache_delete(&self, prefix: &str, key: &str) -> Result<(), StoreError> {
        let cache = self.cache.as_ref().expect("cache engines have a cache");
        cache.delete(&format!("{prefix}{key}")).await.map(|_| ())
    }

    /// Logs `message` unless a warning of the same `kind` went out in the last ten minutes.
    fn warn(&self, kind: &'static str, message: &str) {
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned
            .get(kind)
            .is_some_and(|at| now.duration_since(*at) < WARN_EVERY)
        {
            return;
        }
        warned.insert(kind, now);
        tracing::warn!(kind, "{message}");
    }
}

/// Django treats keys shorter than 8 characters as no key (`_validate_session_key`).
fn usable_key(key: &str) -> bool {
    key.chars().count() >= 8
}

/// A short, stable name for the kind of a refusal (the warning throttle's key).
fn refusal_kind(e: &crate::django::pickle::PickleError) -> &'static str {
    use crate::django::pickle::PickleError as P;
    match e {
        P::Refused { .. } | P::UnknownOpcode(_) => "pickle-opcode",
        P::TooLarge { .. } | P::TooDeep(_) | P::Budget(_) => "pickle-size",
        P::BigInt | P::Unsupported(_) | P::Utf8 => "pickle-value",
        _ => "pickle-malformed",
    }
}
