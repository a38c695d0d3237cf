//! Django's cache on Redis, as `django.core.cache.backends.redis.RedisCache` and
//! `django_redis.cache.RedisCache` (with its `DefaultClient`) read and write it: keys through
//! Django's key function (`<KEY_PREFIX>:<VERSION>:<key>`), plain `int`s stored as decimal text
//! and everything else pickled ([`crate::django::pickle`]), and each backend's own commands for
//! timeouts (Django: `SET … EX seconds`, `EXPIRE`; django-redis: `SET … PX milliseconds`,
//! `PEXPIRE`; both `DEL` for a timeout of 0 or less, `PERSIST` for none).
//!
//! One lazily connected, self-reconnecting multiplexed connection serves the process. A Redis
//! that cannot be reached is [`StoreError::CacheUnavailable`] (503, like a database outage).
//! Values are read with `GETRANGE 0 <cap>`, so an oversized value never crosses the wire
//! whole; what cannot be read is [`Cached::Unreadable`] with the reason, never an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use num_bigint::BigInt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::StoreError;
use crate::config::{CacheBackend, CacheConfig};
use crate::django::pickle::{self, Limits, PickleError, PyValue};

/// A timeout as Django's cache API takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// The alias' `TIMEOUT`.
    Default,
    /// No expiry (`None`).
    Never,
    /// Seconds; 0 or less deletes the key (Django: "don't cache").
    Seconds(i64),
}

/// A value found in the cache.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    /// A plain `int`, stored as decimal text.
    Int(BigInt),
    /// An unpickled value.
    Value(PyValue),
    /// A value Whisper does not read (a refused pickle, or over the size cap), and why.
    Unreadable(PickleError),
}

/// The Django cache of one `CACHES` alias.
#[derive(Clone)]
pub struct DjangoCache {
    config: CacheConfig,
    conn: ConnectionManager,
    limits: Limits,
    /// The dicts [`DjangoCache::update`] wrote last, by Redis key, with their bytes: an update
    /// that reads those bytes again starts from the dict instead of decoding them.
    written: Arc<Mutex<Written>>,
}

/// Dicts written, with their bytes, by Redis key.
type Written = HashMap<String, (Vec<u8>, PyValue)>;

/// Keys whose last written dict [`DjangoCache::update`] keeps, and the largest kept (at most
/// 16 MiB in all).
const WRITTEN_KEYS: usize = 1024;
const WRITTEN_BYTES: usize = 16 << 10;

impl fmt::Debug for DjangoCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DjangoCache({}, {})",
            self.config.alias,
            self.config.backend.path()
        )
    }
}

fn cache_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
    {
        StoreError::CacheUnavailable(e)
    } else {
        StoreError::Cache(e)
    }
}

impl DjangoCache {
    /// A client for `config`; it connects at its first command (so a process starts while
    /// Redis is down, and answers 503 until it is back). Must run inside the Tokio runtime.
    pub fn new(config: &CacheConfig) -> Result<DjangoCache, StoreError> {
        let client = redis::Client::open(config.url.expose()).map_err(StoreError::Cache)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(std::time::Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client, manager).map_err(StoreError::Cache)?;
        Ok(DjangoCache {
            config: config.clone(),
            conn,
            limits: Limits::default(),
            written: Arc::default(),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The Redis key of a cache key (`make_key`).
    pub fn key(&self, key: &str) -> String {
        self.config.make_key(key)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(cache_error)
    }

    /// One round trip (`PING`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// `cache.get(key)`: `None` when missing.
    pub async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        let cap = self.limits.max_bytes;
        // One byte more than the cap tells an oversized value from one that fits.
        let raw: Vec<u8> = self
            .query(redis::cmd("GETRANGE").arg(self.key(key)).arg(0).arg(cap))
            .await?;
        // GETRANGE gives "" for a missing key; neither backend ever stores "".
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > cap {
            return Ok(Some(Cached::Unreadable(PickleError::TooLarge {
                size: raw.len(),
                limit: cap,
            })));
        }
        Ok(Some(decode(&raw, self.limits)))
    }

    /// Which of `keys` the cache holds: one round trip (a pipeline of `EXISTS`) for them all.
    pub async fn existing(&self, keys: &[String]) -> Result<Vec<bool>, StoreError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("EXISTS").arg(self.key(key));
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(cache_error)
    }

    /// `cache.set(key, value, timeout)`.
    pub async fn set(
        &self,
        key: &str,
        value: &PyValue,
        timeout: Timeout,
    ) -> Result<(), StoreError> {
        self.store(key, value, timeout, Condition::Always)
            .await
            .map(|_| ())
    }

    /// `cache.add(key, value, timeout)`: stores only a missing key; whether it did.
    pub async fn add(
        &self,
        key: &str,
        value: &PyValue,
        timeout: Timeout,
    ) -> Result<bool, StoreError> {
        self.store(key, value, timeout, Condition::Missing).await
    }

    /// Stores only over an existing key (`SET … XX`); whether it did. The atomic form of the
    /// cache session engine's `get()` then `set()` on save.
    pub async fn replace(
        &self,
        key: &str,
        value: &PyValue,
        timeout: Timeout,
    ) -> Result<bool, StoreError> {
        self.store(key, value, timeout, Condition::Present).await
    }

    /// `cache.delete(key)`: whether a key was deleted.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let n: i64 = self.query(redis::cmd("DEL").arg(self.key(key))).await?;
        Ok(n > 0)
    }

    /// `cache.touch(key, timeout)`: whether the key exists.
    pub async fn touch(&self, key: &str, timeout: Timeout) -> Result<bool, StoreError> {
        let redis_key = self.key(key);
        let n: i64 = match (self.resolve(timeout), self.config.backend) {
            (None, _) => self.query(redis::cmd("PERSIST").arg(&redis_key)).await?,
            (Some(s), CacheBackend::Django) => {
                self.query(redis::cmd("EXPIRE").arg(&redis_key).arg(s.max(0)))
                    .await?
            }
            (Some(s), CacheBackend::DjangoRedis) => {
                self.query(
                    redis::cmd("PEXPIRE")
                        .arg(&redis_key)
                        .arg(s.saturating_mul(1000)),
                )
                .await?
            }
        };
        Ok(n > 0)
    }

    /// A read-modify-write of one key that no concurrent writer through this method can undo:
    /// `change` gets what the key holds (`None` when missing) and returns the new value, or
    /// `None` to leave the key alone. The write happens only while the key still holds the
    /// bytes that were read (a Lua script compares their SHA-1 inside Redis); otherwise the
    /// read and `change` are repeated, at most [`UPDATE_ATTEMPTS`] times. Whether it wrote.
    ///
    /// The dict this method wrote last under a key is kept with its bytes (up to
    /// [`WRITTEN_KEYS`] keys): when the key still holds those bytes, the next update starts
    /// from that dict instead of decoding them again (the presence dict is updated on every
    /// message, issue 12).
    ///
    /// Python code that does `cache.get()` then `cache.set()` (the Whisper fork's presence) is
    /// not protected from itself, but it can no longer make Whisper's updates disappear
    /// between its read and its write any more than Whisper's make its own disappear.
    pub async fn update<F>(
        &self,
        key: &str,
        timeout: Timeout,
        mut change: F,
    ) -> Result<bool, StoreError>
    where
        F: FnMut(Option<Cached>) -> Option<PyValue>,
    {
        let redis_key = self.key(key);
        let cap = self.limits.max_bytes;
        let mut remembered = self.lock_written().remove(&redis_key);
        for _ in 0..UPDATE_ATTEMPTS {
            let raw: Vec<u8> = self
                .query(redis::cmd("GETRANGE").arg(&redis_key).arg(0).arg(cap))
                .await?;
            let (current, expected) = match remembered.take() {
                Some((bytes, value)) if bytes == raw => {
                    (Some(Cached::Value(value)), sha1_hex(&raw))
                }
                _ => self.judge(&raw),
            };
            let Some(value) = change(current) else {
                return Ok(false);
            };
            let seconds = self.resolve(timeout);
            if seconds.is_some_and(|s| s <= 0) {
                return self.delete(key).await;
            }
            let (unit, amount) = match (seconds, self.config.backend) {
                (None, _) => ("", 0),
                (Some(s), CacheBackend::Django) => ("EX", s),
                (Some(s), CacheBackend::DjangoRedis) => ("PX", s.saturating_mul(1000)),
            };
            let data = encode(&value, &self.config);
            let mut conn = self.conn.clone();
            let written: i64 = compare_and_set_script()
                .key(&redis_key)
                .arg(expected)
                .arg(&data)
                .arg(unit)
                .arg(amount)
                .invoke_async(&mut conn)
                .await
                .map_err(cache_error)?;
            if written == 1 {
                self.remember(redis_key, data, value);
                return Ok(true);
            }
        }
        tracing::warn!(
            key = %redis_key,
            "cache update given up after {UPDATE_ATTEMPTS} concurrent changes"
        );
        Ok(false)
    }

    /// What [`DjangoCache::update`] makes of the bytes a key holds (at most `cap` + 1 read):
    /// the value, and the SHA-1 its write must find (`""` for a missing key; `"*"`, write
    /// whatever is there, for a value only partly read).
    fn judge(&self, raw: &[u8]) -> (Option<Cached>, String) {
        let cap = self.limits.max_bytes;
        if raw.is_empty() {
            (None, String::new())
        } else if raw.len() > cap {
            // Only a prefix was read: its hash cannot match, so the write is unconditional.
            let too_large = PickleError::TooLarge {
                size: raw.len(),
                limit: cap,
            };
            (Some(Cached::Unreadable(too_large)), "*".to_string())
        } else {
            (Some(decode(raw, self.limits)), sha1_hex(raw))
        }
    }

    fn lock_written(&self) -> std::sync::MutexGuard<'_, Written> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a dict just written under `redis_key`, with its bytes (see
    /// [`DjangoCache::update`]).
    fn remember(&self, redis_key: String, data: Vec<u8>, value: PyValue) {
        if !matches!(value, PyValue::Dict(_)) || data.len() > WRITTEN_BYTES {
            return;
        }
        let mut written = self.lock_written();
        if written.len() >= WRITTEN_KEYS {
            written.clear();
        }
        written.insert(redis_key, (data, value));
    }

    /// `Some(seconds)` to expire, `None` for no expiry.
    fn resolve(&self, timeout: Timeout) -> Option<i64> {
        match timeout {
            Timeout::Default => self.config.default_timeout,
            Timeout::Never => None,
            Timeout::Seconds(s) => Some(s),
        }
    }

    async fn store(
        &self,
        key: &str,
        value: &PyValue,
        timeout: Timeout,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let redis_key = self.key(key);
        let data = encode(value, &self.config);
        let timeout = self.resolve(timeout);
        // A timeout of 0 or less: Django's RedisCacheClient deletes (set) or adds and deletes
        // (add); django-redis deletes (set) or answers "not there" (add).
        if let Some(s) = timeout
            && s <= 0
        {
            return match (condition, self.config.backend) {
                (Condition::Missing, CacheBackend::Django) => {
                    let added = self.set_cmd(&redis_key, &data, None, condition).await?;
                    if added {
                        self.delete(key).await?;
                    }
                    Ok(added)
                }
                (Condition::Missing, CacheBackend::DjangoRedis) => {
                    let exists: i64 = self.query(redis::cmd("EXISTS").arg(&redis_key)).await?;
                    Ok(exists == 0)
                }
                _ => self.delete(key).await,
            };
        }
        self.set_cmd(&redis_key, &data, timeout, condition).await
    }

    async fn set_cmd(
        &self,
        redis_key: &str,
        data: &[u8],
        seconds: Option<i64>,
        condition: Condition,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(redis_key).arg(data);
        match (seconds, self.config.backend) {
            (None, _) => {}
            (Some(s), CacheBackend::Django) => {
                cmd.arg("EX").arg(s);
            }
            (Some(s), CacheBackend::DjangoRedis) => {
                cmd.arg("PX").arg(s.saturating_mul(1000));
            }
        }
        match condition {
            Condition::Always => {}
            Condition::Missing => {
                cmd.arg("NX");
            }
            Condition::Present => {
                cmd.arg("XX");
            }
        }
        let reply: Option<String> = self.query(&cmd).await?;
        Ok(reply.is_some())
    }
}

/// Reads before giving up in [`DjangoCache::update`].
pub const UPDATE_ATTEMPTS: usize = 5;

/// `SET key value [EX|PX n]` only while the key holds what was read: `ARGV[1]` is the SHA-1 of
/// those bytes (`""` = the key was missing, `"*"` = write whatever it holds).
fn compare_and_set_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        redis::Script::new(
            r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] ~= '*' then
  local seen = ''
  if current then seen = redis.sha1hex(current) end
  if seen ~= ARGV[1] then return 0 end
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4])
end
return 1
",
        )
    })
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(<sha1::Sha1 as sha1::Digest>::digest(data))
}

#[derive(Clone, Copy)]
enum Condition {
    Always,
    Missing,
    Present,
}

/// Both serializers' `dumps`: a plain `int` as its decimal text, anything else pickled at the
/// backend's protocol.
pub fn encode(value: &PyValue, config: &CacheConfig) -> Vec<u8> {
    match value {
        PyValue::Int(n) => n.to_string().into_bytes(),
        other => pickle::dumps(other, config.protocol),
    }
}

/// Both serializers' `loads`: `int(data)` if that parses, else `pickle.loads(data)`.
pub fn decode(data: &[u8], limits: Limits) -> Cached {
    if let Some(n) = python_int(data) {
        return Cached::Int(n);
    }
    match pickle::loads_with(data, limits) {
        Ok(value) => Cached::Value(value),
        Err(e) => Cached::Unreadable(e),
    }
}

/// Python's `int(bytes)`: ASCII whitespace around, an optional sign, digits with single `_`
/// between them.
fn python_int(data: &[u8]) -> Option<BigInt> {
    let text = std::str::from_utf8(data)
        .ok()?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' | b'+' => text.split_at(1),
        _ => ("", text),
    };
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !ok || digits.len() > 4300 {
        return None;
    }
    format!("{sign}{}", digits.replace('_', "")).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::django::pickle::{Protocol, PyDict};

    fn config(backend: CacheBackend, protocol: Protocol) -> CacheConfig {
        CacheConfig {
            alias: "default".into(),
            backend,
            url: Secret::new("redis://127.0.0.1:6379/0"),
            key_prefix: "whisper".into(),
            version: 1,
            default_timeout: Some(300),
            protocol,
            connect_timeout: std::time::Duration::from_secs(1),
            response_timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn ints_are_raw_and_the_rest_pickled() {
        let c = config(CacheBackend::Django, Protocol::V5);
        assert_eq!(encode(&PyValue::int(-42), &c), b"-42");
        assert_eq!(encode(&PyValue::Bool(true), &c), b"\x80\x05\x88.");
        let mut d = PyDict::new();
        d.insert("a", PyValue::int(1));
        assert_eq!(
            encode(&PyValue::Dict(d.clone()), &c),
            b"\x80\x05\x95\x0a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."
        );
        let c = config(CacheBackend::DjangoRedis, Protocol::V4);
        assert_eq!(encode(&PyValue::Dict(d.clone()), &c)[1], 4);
        assert_eq!(
            decode(b" 1_000 ", Limits::default()),
            Cached::Int(1000.into())
        );
        assert_eq!(decode(b"-7", Limits::default()), Cached::Int((-7).into()));
        assert_eq!(
            decode(&encode(&PyValue::Dict(d.clone()), &c), Limits::default()),
            Cached::Value(PyValue::Dict(d))
        );
        assert!(matches!(
            decode(b"cos\nsystem\n(S'id'\ntR.", Limits::default()),
            Cached::Unreadable(PickleError::Refused { .. })
        ));
        assert!(python_int(b"1__0").is_none() && python_int(b"_1").is_none());
    }

    #[test]
    fn keys_follow_djangos_key_function() {
        let c = config(CacheBackend::DjangoRedis, Protocol::V4);
        assert_eq!(c.make_key("room-presence-7"), "whisper:1:room-presence-7");
    }
}
