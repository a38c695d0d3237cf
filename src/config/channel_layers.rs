//! `CHANNEL_LAYERS`: which channel layer connects this process to the others.
//!
//! The setting is Django's own dict, given as JSON (env or `.env`), with the `default` alias:
//!
//! ```json
//! {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
//!              "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": "asgi"}}}
//! ```
//!
//! * `channels.layers.InMemoryChannelLayer`: one process, no Redis.
//! * `channels_redis.pubsub.RedisPubSubChannelLayer` and `channels_redis.core.RedisChannelLayer`:
//!   their Redis wire format exactly, so Python Channels workers configured with the same dict
//!   share rooms with Whisper. `CONFIG` takes channels_redis' names and defaults (`hosts`,
//!   `prefix` "asgi"; core also `expiry` 60, `group_expiry` 86400, `capacity` 100,
//!   `random_prefix_length` 12, `serializer_format` "msgpack"). Several `hosts` are sharded
//!   as channels_redis shards them (`fanout::redis::ring`); their order is the ring's.
//!
//! Without `CHANNEL_LAYERS`, `REDIS_URL` selects Whisper's own format (channel
//! `REDIS_PREFIX + group`, cheapest for a fleet of Whisper processes only), and no `REDIS_URL`
//! means in-process. Options this server cannot honour (sentinels, connection options beside
//! an address, `symmetric_encryption_keys`, `channel_capacity`, the JSON serializer) are
//! refused with the reason rather than ignored.

use serde_json::{Map, Value as Json};

use super::{ConfigError, Secret, invalid};

/// `REDIS_PREFIX`'s default.
pub const DEFAULT_REDIS_PREFIX: &str = "whisper:";

pub const IN_MEMORY: &str = "channels.layers.InMemoryChannelLayer";
pub const PUBSUB: &str = "channels_redis.pubsub.RedisPubSubChannelLayer";
pub const CORE: &str = "channels_redis.core.RedisChannelLayer";
/// channels_redis' default `hosts`.
const DEFAULT_HOST: &str = "redis://localhost:6379";
const NAME: &str = "CHANNEL_LAYERS";

/// How events travel between processes.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisLayer {
    /// Redis URLs, in `hosts` order (the shard ring); exactly one for `REDIS_URL`.
    pub hosts: Vec<Secret>,
    /// Channel/key prefix: `REDIS_PREFIX`, or `CONFIG["prefix"]`.
    pub prefix: String,
    pub format: LayerFormat,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LayerFormat {
    /// `REDIS_URL`: Whisper's own payloads on channel `prefix + group`.
    Whisper,
    /// `RedisPubSubChannelLayer`: msgpack events on channel `prefix + "__group__" + group`.
    PubSub,
    /// `RedisChannelLayer`: groups as sorted sets, per-process message queues.
    Core(CoreParams),
}

/// `RedisChannelLayer`'s tunables, channels_redis' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreParams {
    /// Seconds a queued message lives (`expiry`).
    pub expiry: u64,
    /// Seconds a group membership lives without being renewed (`group_expiry`).
    pub group_expiry: u64,
    /// Messages a channel queue holds before sends to it are dropped (`capacity`).
    pub capacity: u64,
    /// Random bytes in front of every queued message (`random_prefix_length`).
    pub random_prefix_length: usize,
}

impl Default for CoreParams {
    fn default() -> Self {
        CoreParams {
            expiry: 60,
            group_expiry: 86_400,
            capacity: 100,
            random_prefix_length: 12,
        }
    }
}

impl LayerFormat {
    /// The Django `BACKEND` this format speaks, for logs and `check`.
    pub fn backend(&self) -> &'static str {
        match self {
            LayerFormat::Whisper => "whisper (REDIS_URL)",
            LayerFormat::PubSub => PUBSUB,
            LayerFormat::Core(_) => CORE,
        }
    }
}

/// Resolves the layer from `CHANNEL_LAYERS`, else `REDIS_URL` + `REDIS_PREFIX`.
pub fn resolve(
    channel_layers: Option<&str>,
    redis_url: Option<String>,
    redis_prefix: String,
) -> Result<Option<RedisLayer>, ConfigError> {
    match channel_layers.map(str::trim).filter(|s| !s.is_empty()) {
        Some(json) => parse(json),
        None => Ok(redis_url.map(|url| RedisLayer {
            hosts: vec![Secret::new(url)],
            prefix: redis_prefix,
            format: LayerFormat::Whisper,
        })),
    }
}

fn parse(json: &str) -> Result<Option<RedisLayer>, ConfigError> {
    let root: Json =
        serde_json::from_str(json).map_err(|e| invalid(NAME, format!("not valid JSON: {e}")))?;
    let default = root
        .as_object()
        .and_then(|m| m.get("default"))
        .and_then(Json::as_object)
        .ok_or_else(|| {
            invalid(
                NAME,
                "expected {\"default\": {\"BACKEND\": …, \"CONFIG\": {…}}}",
            )
        })?;
    let backend = default
        .get("BACKEND")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(NAME, "default.BACKEND must be a string"))?;
    let empty = Map::new();
    let config = match default.get("CONFIG") {
        None => &empty,
        Some(Json::Object(m)) => m,
        Some(_) => return Err(invalid(NAME, "default.CONFIG must be an object")),
    };
    let format = match backend {
        IN_MEMORY => return Ok(None),
        PUBSUB => {
            known_keys(config, &["hosts", "prefix", "serializer_format"])?;
            LayerFormat::PubSub
        }
        CORE => {
            known_keys(
                config,
                &[
                    "hosts",
                    "prefix",
                    "serializer_format",
                    "expiry",
                    "group_expiry",
                    "capacity",
                    "random_prefix_length",
                ],
            )?;
            let d = CoreParams::default();
            let params = CoreParams {
                expiry: number(config, "expiry", d.expiry)?,
                group_expiry: number(config, "group_expiry", d.group_expiry)?,
                capacity: number(config, "capacity", d.capacity)?,
                random_prefix_length: number(
                    config,
                    "random_prefix_length",
                    d.random_prefix_length as u64,
                )? as usize,
            };
            if params.expiry == 0 || params.group_expiry == 0 {
                return Err(invalid(NAME, "expiry and group_expiry must be at least 1"));
            }
            if params.random_prefix_length > 64 {
                return Err(invalid(NAME, "random_prefix_length must be at most 64"));
            }
            LayerFormat::Core(params)
        }
        other => {
            return Err(invalid(
                NAME,
                format!("unsupported BACKEND {other:?}; use {PUBSUB}, {CORE} or {IN_MEMORY}"),
            ));
        }
    };
    match config.get("serializer_format") {
        None => {}
        Some(Json::String(s)) if s == "msgpack" => {}
        Some(other) => {
            return Err(invalid(
                NAME,
                format!(
                    "serializer_format {other}: only \"msgpack\" (channels_redis' default) is supported"
                ),
            ));
        }
    }
    let prefix = match config.get("prefix") {
        None => "asgi".to_string(),
        Some(Json::String(s)) => s.clone(),
        Some(_) => return Err(invalid(NAME, "CONFIG.prefix must be a string")),
    };
    Ok(Some(RedisLayer {
        hosts: hosts(config.get("hosts"))?
            .into_iter()
            .map(Secret::new)
            .collect(),
        prefix,
        format,
    }))
}

/// Unknown or unsupported `CONFIG` keys are refused, each with the reason.
fn known_keys(config: &Map<String, Json>, known: &[&str]) -> Result<(), ConfigError> {
    for key in config.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let reason = match key.as_str() {
            "symmetric_encryption_keys" => "message encryption is not supported".to_string(),
            "channel_capacity" => {
                "per-channel capacities are not supported; use capacity".to_string()
            }
            "on_disconnect" | "on_reconnect" => format!("{key} takes Python code"),
            _ => format!("unknown CONFIG key {key:?} for this BACKEND"),
        };
        return Err(invalid(NAME, reason));
    }
    Ok(())
}

fn number(config: &Map<String, Json>, key: &str, default: u64) -> Result<u64, ConfigError> {
    match config.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid(NAME, format!("CONFIG.{key} must be a whole number"))),
    }
}

/// `hosts`: a list of entries in any of channels_redis' spellings (`utils.decode_hosts`):
/// `"redis://…"`, `["host", port]`, `{"address": "redis://…"}` or `{"host": …, "port": …,
/// "db": …}`; none means channels_redis' default host.
fn hosts(hosts: Option<&Json>) -> Result<Vec<String>, ConfigError> {
    let list = match hosts {
        None | Some(Json::Null) => return Ok(vec![DEFAULT_HOST.to_string()]),
        Some(Json::Array(list)) => list,
        Some(Json::String(_)) => {
            // channels_redis: "You must pass a list of Redis hosts, even if there is only one."
            return Err(invalid(
                NAME,
                "CONFIG.hosts must be a list, even for one host",
            ));
        }
        Some(_) => return Err(invalid(NAME, "CONFIG.hosts must be a list")),
    };
    if list.is_empty() {
        return Ok(vec![DEFAULT_HOST.to_string()]);
    }
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            host(entry).map_err(|reason| {
                let which = if list.len() > 1 {
                    format!("CONFIG.hosts[{i}]")
                } else {
                    "CONFIG.hosts".to_string()
                };
                invalid(NAME, format!("{which}: {reason}"))
            })
        })
        .collect()
}

/// One `hosts` entry as a URL.
fn host(entry: &Json) -> Result<String, String> {
    let url = |h: &str, port: u64, db: Option<u64>| {
        let h = if h.contains(':') {
            format!("[{h}]")
        } else {
            h.to_string()
        };
        match db {
            Some(db) => format!("redis://{h}:{port}/{db}"),
            None => format!("redis://{h}:{port}"),
        }
    };
    let port = |p: &Json| match p {
        Json::Number(n) => n.as_u64().filter(|p| *p <= 65_535),
        Json::String(s) => s.parse::<u16>().ok().map(u64::from),
        _ => None,
    };
    match entry {
        Json::String(address) => Ok(address.clone()),
        Json::Array(pair) => match (pair.as_slice(), pair.get(1).and_then(port)) {
            ([Json::String(h), _], Some(p)) => Ok(url(h, p, None)),
            _ => Err("a hosts entry as a list must be [\"host\", port]".to_string()),
        },
        Json::Object(entry) => {
            if entry.contains_key("sentinels") || entry.contains_key("master_name") {
                return Err("Redis Sentinel is not supported; list the Redis hosts".to_string());
            }
            let unsupported = || {
                "a hosts entry as a dict must be {\"address\": \"redis://…\"} or {\"host\": …, \
                 \"port\": …, \"db\": …} (connection options are not supported; put them in \
                 the address URL)"
                    .to_string()
            };
            if let Some(address) = entry.get("address") {
                return match (address, entry.len()) {
                    (Json::String(a), 1) => Ok(a.clone()),
                    _ => Err(unsupported()),
                };
            }
            if entry
                .keys()
                .any(|k| !["host", "port", "db"].contains(&k.as_str()))
            {
                return Err(unsupported());
            }
            let h = match entry.get("host") {
                None => "localhost",
                Some(Json::String(h)) => h.as_str(),
                Some(_) => return Err(unsupported()),
            };
            let p = match entry.get("port") {
                None => Some(6379),
                Some(p) => port(p),
            };
            let db = match entry.get("db") {
                None => Ok(None),
                Some(db) => db.as_u64().map(Some).ok_or(()),
            };
            match (p, db) {
                (Some(p), Ok(db)) => Ok(url(h, p, db)),
                _ => Err(unsupported()),
            }
        }
        _ => Err("a hosts entry must be a URL, [host, port] or {\"address\": URL}".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(json: &str) -> Result<Option<RedisLayer>, ConfigError> {
        resolve(Some(json), None, "whisper:".into())
    }

    fn urls(l: &RedisLayer) -> Vec<&str> {
        l.hosts.iter().map(Secret::expose).collect()
    }

    #[test]
    fn several_hosts_in_every_spelling_keep_their_order() {
        let l = layer(&format!(
            r#"{{"default": {{"BACKEND": "{CORE}", "CONFIG": {{"hosts": [
                "redis://:pw@a:6379/0", ["b", 6380], ["::1", "6381"], {{"address": "redis://c/2"}},
                {{"host": "d", "port": 6390, "db": 3}}, {{"host": "e"}}]}}}}}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            urls(&l),
            [
                "redis://:pw@a:6379/0",
                "redis://b:6380",
                "redis://[::1]:6381",
                "redis://c/2",
                "redis://d:6390/3",
                "redis://e:6379",
            ]
        );
        assert!(!format!("{l:?}").contains("pw"));
    }

    #[test]
    fn redis_url_alone_selects_whispers_format() {
        let l = resolve(None, Some("redis://r/1".into()), "p:".into())
            .unwrap()
            .unwrap();
        assert_eq!(urls(&l), ["redis://r/1"]);
        assert_eq!(l.prefix, "p:");
        assert_eq!(l.format, LayerFormat::Whisper);
        assert_eq!(resolve(Some("  "), None, "p:".into()).unwrap(), None);
    }

    #[test]
    fn channels_redis_dicts() {
        let l = layer(&format!(r#"{{"default": {{"BACKEND": "{PUBSUB}"}}}}"#))
            .unwrap()
            .unwrap();
        assert_eq!(urls(&l), ["redis://localhost:6379"]);
        assert_eq!(
            (l.prefix.as_str(), &l.format),
            ("asgi", &LayerFormat::PubSub)
        );
        let l = layer(&format!(
            r#"{{"default": {{"BACKEND": "{CORE}", "CONFIG": {{"hosts": [["10.0.0.5", 6380]],
                "prefix": "chat", "capacity": 1000, "expiry": 10}}}}}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(urls(&l), ["redis://10.0.0.5:6380"]);
        assert_eq!(l.prefix, "chat");
        let LayerFormat::Core(p) = l.format else {
            panic!("core expected")
        };
        assert_eq!((p.capacity, p.expiry, p.group_expiry), (1000, 10, 86_400));
        let l = layer(&format!(
            r#"{{"default": {{"BACKEND": "{PUBSUB}", "CONFIG": {{"hosts": [{{"address": "redis://h:1/2"}}]}}}}}}"#
        ))
        .unwrap()
        .unwrap();
        assert_eq!(urls(&l), ["redis://h:1/2"]);
        assert_eq!(
            layer(&format!(r#"{{"default": {{"BACKEND": "{IN_MEMORY}"}}}}"#)).unwrap(),
            None
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        for (config, reason) in [
            (r#""BACKEND": "x.Layer""#, "unsupported BACKEND"),
            (
                &format!(
                    r#""BACKEND": "{CORE}", "CONFIG": {{"hosts": ["redis://a", {{"sentinels": [["s", 26379]], "master_name": "m"}}]}}"#
                ),
                "hosts[1]: Redis Sentinel is not supported",
            ),
            (
                &format!(
                    r#""BACKEND": "{PUBSUB}", "CONFIG": {{"hosts": [{{"address": "rediss://a", "ssl_cert_reqs": null}}]}}"#
                ),
                "connection options are not supported",
            ),
            (
                &format!(r#""BACKEND": "{CORE}", "CONFIG": {{"hosts": [["a", 70000]]}}"#),
                "[\"host\", port]",
            ),
            (
                &format!(r#""BACKEND": "{CORE}", "CONFIG": {{"hosts": "redis://a"}}"#),
                "even for one host",
            ),
            (
                &format!(
                    r#""BACKEND": "{PUBSUB}", "CONFIG": {{"symmetric_encryption_keys": ["k"]}}"#
                ),
                "encryption",
            ),
            (
                &format!(r#""BACKEND": "{CORE}", "CONFIG": {{"serializer_format": "json"}}"#),
                "msgpack",
            ),
            (
                &format!(r#""BACKEND": "{PUBSUB}", "CONFIG": {{"capacity": 5}}"#),
                "unknown CONFIG key",
            ),
            (
                &format!(r#""BACKEND": "{CORE}", "CONFIG": {{"expiry": -1}}"#),
                "whole number",
            ),
        ] {
            let err = layer(&format!(r#"{{"default": {{{config}}}}}"#))
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{config}: {err}");
        }
        assert!(layer("{nope").unwrap_err().to_string().contains("JSON"));
    }
}
