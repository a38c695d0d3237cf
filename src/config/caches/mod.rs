//! `CACHES` and `SESSION_CACHE_ALIAS`: the Django caches Whisper shares, for the `cache` and
//! `cached_db` session engines.
//!
//! `CACHES` is Django's own dict as JSON, with Django's names (`BACKEND`, `LOCATION`,
//! `KEY_PREFIX`, `VERSION`, `TIMEOUT`, `KEY_FUNCTION`, `OPTIONS`) and Django's rule that a
//! `default` alias exists. Two backends are understood, each with its wire format exactly:
//!
//! | `BACKEND` | writes | pickle protocol |
//! |---|---|---|
//! | `django.core.cache.backends.redis.RedisCache` | `SET key value EX seconds` | 5 (`pickle.HIGHEST_PROTOCOL`) |
//! | `django_redis.cache.RedisCache` | `SET key value PX milliseconds` | 4 (`pickle.DEFAULT_PROTOCOL` of Python 3.8–3.13), or `OPTIONS["PICKLE_VERSION"]` |
//!
//! Keys are Django's `default_key_func`: `<KEY_PREFIX>:<VERSION>:<key>`. Only the alias the
//! sessions use is checked in full; what Whisper cannot honour there is refused at startup
//! with the reason (another backend, several `LOCATION`s, a custom `KEY_FUNCTION`, a custom
//! serializer, compressor or client class, TLS). Other aliases may use any backend.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::{ConfigError, Secret, invalid};
use crate::django::pickle::Protocol;

pub const DJANGO_REDIS_CACHE: &str = "django.core.cache.backends.redis.RedisCache";
pub const DJANGO_REDIS: &str = "django_redis.cache.RedisCache";
const DEFAULT_KEY_FUNC: &str = "django.core.cache.backends.base.default_key_func";
const NAME: &str = "CACHES";
/// Redis connect and response timeouts when the options set none.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Which Python library writes the cache (they differ in how expiry is sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    /// `django.core.cache.backends.redis.RedisCache` (Django ≥ 4.0).
    Django,
    /// `django_redis.cache.RedisCache` with its `DefaultClient`.
    DjangoRedis,
}

impl CacheBackend {
    pub fn path(self) -> &'static str {
        match self {
            CacheBackend::Django => DJANGO_REDIS_CACHE,
            CacheBackend::DjangoRedis => DJANGO_REDIS,
        }
    }
}

/// One Redis cache alias, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    pub alias: String,
    pub backend: CacheBackend,
    /// The server, with `OPTIONS` credentials and `db` folded in (the URL's own win, as in
    /// redis-py's `from_url`).
    pub url: Secret,
    pub key_prefix: String,
    pub version: i64,
    /// `TIMEOUT` in seconds: `None` never expires; 0 or less means "do not cache" (Django).
    pub default_timeout: Option<i64>,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

impl CacheConfig {
    /// What `{"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
    /// "KEY_PREFIX": key_prefix}` gives: Django's own backend with its defaults.
    pub fn django_defaults(alias: &str, url: Secret, key_prefix: &str) -> CacheConfig {
        CacheConfig {
            alias: alias.to_string(),
            backend: CacheBackend::Django,
            url,
            key_prefix: key_prefix.to_string(),
            version: 1,
            default_timeout: Some(300),
            protocol: Protocol::V5,
            connect_timeout: DEFAULT_IO_TIMEOUT,
            response_timeout: DEFAULT_IO_TIMEOUT,
        }
    }

    /// Django's `default_key_func`: `"%s:%s:%s" % (key_prefix, version, key)`.
    pub fn make_key(&self, key: &str) -> String {
        format!("{}:{}:{}", self.key_prefix, self.version, key)
    }
}

/// `CACHES` (the aliases Whisper can use) and `SESSION_CACHE_ALIAS`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Caches {
    pub aliases: BTreeMap<String, CacheConfig>,
    /// `SESSION_CACHE_ALIAS` (Django's default `"default"`).
    pub session_cache_alias: String,
    /// Aliases whose `BACKEND` Whisper cannot share (alias → backend), for messages.
    pub other_backends: BTreeMap<String, String>,
}

impl Caches {
    /// The cache the session engine uses, if it is a cache engine.
    pub fn session_cache(&self) -> Option<&CacheConfig> {
        self.aliases.get(&self.session_cache_alias)
    }
}

/// Parses `CACHES`; `sessions_use_cache` (a cache session engine) makes
/// `SESSION_CACHE_ALIAS` required to name a supported Redis cache.
pub fn parse(
    caches: Option<&str>,
    session_cache_alias: Option<String>,
    sessions_use_cache: bool,
) -> Result<Caches, ConfigError> {
    let session_cache_alias = session_cache_alias
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "default".to_string());
    let mut out = Caches {
        aliases: BTreeMap::new(),
        session_cache_alias,
        other_backends: BTreeMap::new(),
    };
    let json = caches.map(str::trim).filter(|s| !s.is_empty());
    let root: Map<String, Json> = match json {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Json::Object(map)) => map,
            Ok(_) => return Err(invalid(NAME, "must be a JSON object of aliases")),
            Err(e) => return Err(invalid(NAME, format!("not valid JSON: {e}"))),
        },
    };
    if json.is_some() && !root.contains_key("default") {
        // Django's check caches.E001.
        return Err(invalid(NAME, "Django requires a 'default' cache"));
    }
    let mut unsupported = BTreeMap::new();
    for (alias, entry) in &root {
        let entry = entry
            .as_object()
            .ok_or_else(|| invalid(NAME, format!("{alias}: must be an object")))?;
        let backend = entry
            .get("BACKEND")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid(NAME, format!("{alias}.BACKEND must be a string")))?;
        let backend = match backend {
            DJANGO_REDIS_CACHE => CacheBackend::Django,
            DJANGO_REDIS => CacheBackend::DjangoRedis,
            other => {
                unsupported.insert(alias.clone(), other.to_string());
                continue;
            }
        };
        let config = alias_config(alias, backend, entry)
            .map_err(|reason| invalid(NAME, format!("{alias}: {reason}")))?;
        out.aliases.insert(alias.clone(), config);
    }
    if sessions_use_cache && out.session_cache().is_none() {
        let alias = &out.session_cache_alias;
        let reason = match (json, unsupported.get(alias)) {
            (None, _) => format!(
                "the cache session engines need CACHES with a Redis cache (Django's default \
                 LocMemCache lives inside each Django process); use {DJANGO_REDIS_CACHE} or \
                 {DJANGO_REDIS}"
            ),
            (_, Some(backend)) => format!(
                "{alias}: BACKEND {backend:?} cannot be shared with Whisper; use \
                 {DJANGO_REDIS_CACHE} or {DJANGO_REDIS}"
            ),
            (_, None) => format!("SESSION_CACHE_ALIAS is {alias:?}, which CACHES does not define"),
        };
        return Err(invalid(NAME, reason));
    }
    out.other_backends = unsupported;
    Ok(out)
}

fn alias_config(
    alias: &str,
    backend: CacheBackend,
    entry: &Map<String, Json>,
) -> Result<CacheConfig, String> {
    for key in entry.keys() {
        if !matches!(
            key.as_str(),
            "BACKEND"
                | "LOCATION"
                | "KEY_PREFIX"
                | "VERSION"
                | "TIMEOUT"
                | "KEY_FUNCTION"
                | "OPTIONS"
                | "REVERSE_KEY_FUNCTION"
        ) {
            return Err(format!("unknown key {key:?}"));
        }
    }
    match entry.get("KEY_FUNCTION") {
        None | Some(Json::Null) => {}
        Some(Json::String(f)) if f == DEFAULT_KEY_FUNC => {}
        Some(other) => {
            return Err(format!(
                "KEY_FUNCTION {other} is Python code Whisper cannot run; only Django's default \
                 key function (<KEY_PREFIX>:<VERSION>:<key>) is supported"
            ));
        }
    }
    let key_prefix = match entry.get("KEY_PREFIX") {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(_) => return Err("KEY_PREFIX must be a string".into()),
    };
    let version = match entry.get("VERSION") {
        None => 1,
        Some(v) => v.as_i64().ok_or("VERSION must be an integer")?,
    };
    // BaseCache: `int(TIMEOUT)`; None = never expire.
    let default_timeout = match entry.get("TIMEOUT") {
        None => Some(300),
        Some(Json::Null) => None,
        Some(Json::Number(n)) => Some(match n.as_i64() {
            Some(i) => i,
            None => n.as_f64().ok_or("TIMEOUT must be a number")?.trunc() as i64,
        }),
        Some(_) => return Err("TIMEOUT must be a number of seconds or null".into()),
    };
    let empty = Map::new();
    let options = match entry.get("OPTIONS") {
        None | Some(Json::Null) => &empty,
        Some(Json::Object(m)) => m,
        Some(_) => return Err("OPTIONS must be an object".into()),
    };
    let location = location(backend, entry.get("LOCATION"))?;
    let opts = match backend {
        CacheBackend::Django => django_options(options)?,
        CacheBackend::DjangoRedis => django_redis_options(options)?,
    };
    Ok(CacheConfig {
        alias: alias.to_string(),
        backend,
        url: Secret::new(with_credentials(&location, &opts)),
        key_prefix,
        version,
        default_timeout,
        protocol: opts.protocol,
        connect_timeout: opts.connect_timeout.unwrap_or(DEFAULT_IO_TIMEOUT),
        response_timeout: opts.response_timeout.unwrap_or(DEFAULT_IO_TIMEOUT),
    })
}

/// `LOCATION`: exactly one server URL.
fn location(backend: CacheBackend, value: Option<&Json>) -> Result<String, String> {
    let servers: Vec<String> = match value {
        None | Some(Json::Null) => return Err("LOCATION (the Redis URL) is required".into()),
        Some(Json::String(s)) => {
            // Django splits on ';' and ',', django-redis on ','.
            let seps: &[char] = match backend {
                CacheBackend::Django => &[';', ','],
                CacheBackend::DjangoRedis => &[','],
            };
            s.split(seps).map(|p| p.trim().to_string()).collect()
        }
        Some(Json::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("LOCATION entries must be strings")?,
        Some(_) => return Err("LOCATION must be a URL string".into()),
    };
    let [url] = servers.as_slice() else {
        return Err(
            "several LOCATIONs (replicas or shards) are not supported: give one Redis URL".into(),
        );
    };
    if url.starts_with("rediss://") {
        return Err("rediss:// (TLS) is not supported: use redis:// or unix://".into());
    }
    if !(url.starts_with("redis://") || url.starts_with("unix://")) {
        return Err(format!(
            "LOCATION {:?} must be a redis:// or unix:// URL",
            super::redact_url(url)
        ));
    }
    Ok(url.clone())
}

struct Options {
    username: Option<String>,
    password: Option<String>,
    db: Option<i64>,
    protocol: Protocol,
    connect_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
}

fn string(options: &Map<String, Json>, key: &str) -> Result<Option<String>, String> {
    match options.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("OPTIONS.{key} must be a string")),
    }
}

fn seconds(options: &Map<String, Json>, key: &str) -> Result<Option<Duration>, String> {
    match options.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| *s > 0.0 && *s <= 600.0)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| format!("OPTIONS.{key} must be a number of seconds (0 to 600]")),
    }
}

/// Only this exact Python path (Whisper reads and writes what it produces).
fn only(options: &Map<String, Json>, key: &str, default: &str) -> Result<(), String> {
    match options.get(key) {
        None | Some(Json::Null) => Ok(()),
        Some(Json::String(s)) if s == default => Ok(()),
        Some(other) => Err(format!(
            "OPTIONS.{key} {other} is not supported: only {default} (the default) is"
        )),
    }
}

/// `OPTIONS` of Django's `RedisCache`: `RedisCacheClient` arguments, the rest going to
/// redis-py's connection pool.
fn django_options(options: &Map<String, Json>) -> Result<Options, String> {
    for key in options.keys() {
        match key.as_str() {
            "serializer" | "db" | "username" | "password" => {}
            // Python-side connection tuning: no effect on what is stored.
            "pool_class"
            | "parser_class"
            | "socket_timeout"
            | "socket_connect_timeout"
            | "retry_on_timeout"
            | "health_check_interval"
            | "max_connections"
            | "client_name"
            | "socket_keepalive" => {}
            other => {
                return Err(format!(
                    "unknown OPTIONS key {other:?} for {DJANGO_REDIS_CACHE}"
                ));
            }
        }
    }
    only(
        options,
        "serializer",
        "django.core.cache.backends.redis.RedisSerializer",
    )?;
    Ok(Options {
        username: string(options, "username")?,
        password: string(options, "password")?,
        db: match options.get("db") {
            None | Some(Json::Null) => None,
            Some(v) => Some(v.as_i64().ok_or("OPTIONS.db must be an integer")?),
        },
        protocol: Protocol::V5,
        connect_timeout: seconds(options, "socket_connect_timeout")?,
        response_timeout: seconds(options, "socket_timeout")?,
    })
}

/// `OPTIONS` of django-redis with its `DefaultClient`.
fn django_redis_options(options: &Map<String, Json>) -> Result<Options, String> {
    for key in options.keys() {
        match key.as_str() {
            "CLIENT_CLASS"
            | "SERIALIZER"
            | "COMPRESSOR"
            | "PICKLE_VERSION"
            | "USERNAME"
            | "PASSWORD"
            | "SOCKET_TIMEOUT"
            | "SOCKET_CONNECT_TIMEOUT"
            | "IGNORE_EXCEPTIONS" => {}
            "CONNECTION_POOL_KWARGS" | "PARSER_CLASS" | "REPLICA_READ_ONLY" => {}
            other => return Err(format!("unknown OPTIONS key {other:?} for {DJANGO_REDIS}")),
        }
    }
    only(options, "CLIENT_CLASS", "django_redis.client.DefaultClient")?;
    only(
        options,
        "SERIALIZER",
        "django_redis.serializers.pickle.PickleSerializer",
    )?;
    only(
        options,
        "COMPRESSOR",
        "django_redis.compressors.identity.IdentityCompressor",
    )?;
    if options
        .get("IGNORE_EXCEPTIONS")
        .is_some_and(|v| v != &Json::Bool(false))
    {
        return Err(
            "OPTIONS.IGNORE_EXCEPTIONS is not supported: Whisper answers 503 while Redis is \
             unreachable instead of treating every session as missing"
                .into(),
        );
    }
    let protocol = match options.get("PICKLE_VERSION") {
        None | Some(Json::Null) => Protocol::V4,
        Some(v) => match v.as_i64() {
            Some(-1 | 5) => Protocol::V5,
            Some(4) => Protocol::V4,
            _ => return Err("OPTIONS.PICKLE_VERSION must be 4, 5 or -1".into()),
        },
    };
    Ok(Options {
        username: string(options, "USERNAME")?,
        password: string(options, "PASSWORD")?,
        db: None,
        protocol,
        connect_timeout: seconds(options, "SOCKET_CONNECT_TIMEOUT")?,
        response_timeout: seconds(options, "SOCKET_TIMEOUT")?,
    })
}

/// Folds `OPTIONS` credentials and `db` into a `redis://` URL that has none of its own.
fn with_credentials(url: &str, opts: &Options) -> String {
    let Some(rest) = url.strip_prefix("redis://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut out = String::from("redis://");
    if !authority.contains('@') && (opts.username.is_some() || opts.password.is_some()) {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        out.push_str(&enc(opts.username.as_deref().unwrap_or("")));
        if let Some(p) = &opts.password {
            out.push(':');
            out.push_str(&enc(p));
        }
        out.push('@');
    }
    out.push_str(authority);
    let has_db = path
        .trim_start_matches('/')
        .split('?')
        .next()
        .is_some_and(|d| !d.is_empty());
    match (opts.db, has_db) {
        (Some(db), false) => {
            let query = path.find('?').map_or("", |i| &path[i..]);
            out.push_str(&format!("/{db}{query}"));
        }
        _ => out.push_str(path),
    }
    out
}

#[cfg(test)]
mod tests;
