//! Settings: one typed struct, loaded from environment variables (and `.env`) under Django's
//! setting names with Django's defaults. Secrets never appear in `Debug` output or logs.
//!
//! Loading is split so tests need no process-global state: [`Settings::from_lookup`] takes any
//! `name -> value` function; [`Settings::from_env`] is the real environment plus `.env`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::django::hashers::{DjangoVersion, HasherConfig};

pub mod caches;
pub mod channel_layers;
pub mod limits;
pub mod password_hashers;
pub mod user_model;
mod values;

pub use caches::{CacheBackend, CacheConfig, Caches};
pub use channel_layers::{CoreParams, LayerFormat, RedisLayer};
pub use limits::{Limits, Rate, SocketLimits};
pub use user_model::UserModel;
pub use values::{DatabaseUrl, Secret, SessionEngine, redact_url};

/// Every setting Whisper reads, under Django's name where Django has one.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `BASE_DIR`: relative paths (SQLite file, `static/`, `templates/`) resolve against it.
    pub base_dir: PathBuf,
    /// `SECRET_KEY`: `None` until resolved (see [`Settings::resolve_secret_key`]).
    pub secret_key: Option<Secret>,
    /// `SECRET_KEY_FALLBACKS` (comma-separated): still accepted for sessions and auth hashes.
    pub secret_key_fallbacks: Vec<Secret>,
    pub debug: bool,
    pub allowed_hosts: Vec<String>,
    pub database_url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: maximum connections in the pool.
    pub database_pool_size: u32,
    /// `DATABASE_TIMEOUT`: seconds to wait for a connection before answering 503.
    pub database_timeout: Duration,
    /// `CHANNEL_LAYERS` (JSON), else `REDIS_URL` + `REDIS_PREFIX` (Whisper's own format);
    /// `None`: in-process only. See [`channel_layers`].
    pub channel_layer: Option<RedisLayer>,
    pub session_engine: SessionEngine,
    /// `CACHES` (JSON) and `SESSION_CACHE_ALIAS`; see [`caches`].
    pub caches: Caches,
    pub session_cookie_name: String,
    pub session_cookie_age: u64,
    pub session_cookie_secure: bool,
    pub session_cookie_domain: Option<String>,
    pub csrf_cookie_name: String,
    pub csrf_cookie_secure: bool,
    pub csrf_trusted_origins: Vec<String>,
    pub login_url: String,
    pub login_redirect_url: String,
    pub notify_users_on_enter_or_leave_rooms: bool,
    /// `DJANGO_VERSION`: the Django release sharing the database; sets hasher parameters.
    pub django_version: DjangoVersion,
    /// `DJANGO_VERSION` + `PASSWORD_HASHERS` (JSON list of Django's dotted names), built once:
    /// what every password check and new hash uses. See [`password_hashers`].
    pub password_hashers: HasherConfig,
    /// `ROOM_CACHE_TTL` (seconds, may be fractional): how stale a cached room may be.
    pub room_cache_ttl: Duration,
    /// `WS_MAX_MESSAGE_BYTES`: larger inbound frames close the socket with 1009.
    pub ws_max_message_bytes: usize,
    /// `WS_OUTBOUND_QUEUE`: frames queued for one socket before it is closed as too slow.
    pub ws_outbound_queue: usize,
    /// `WS_OUTBOUND_QUEUE_BYTES`: bytes of frames queued for one socket before it is closed as
    /// too slow (what bounds a slow reader's memory).
    pub ws_outbound_queue_bytes: usize,
    /// `PASSWORD_HASHING_CONCURRENCY`: password checks running at once (each takes ~0.1 s of CPU).
    pub password_hashing_concurrency: usize,
    /// `AUTH_USER_MODEL`, `AUTH_USER_TABLE`, `USERNAME_FIELD`, `AUTHENTICATION_BACKENDS`.
    pub user_model: UserModel,
    /// `ROOM_PRESENCE_TIMEOUT` (the Whisper fork's setting): seconds a room's presence lives
    /// after its last change.
    pub room_presence_timeout: Duration,
    /// Per-socket, write, HTTP and shutdown limits; see [`limits`].
    pub limits: Limits,
    /// `METRICS_ADDR` (`host:port`): where `GET /metrics` is served, on a listener of its own
    /// (unset: nowhere). Not on the main port: behind a reverse proxy on the same host every
    /// public request comes from loopback, so an address check there would expose it.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `LOG_FORMAT`: `text` (default; colour only on a terminal) or `json` (one object a line).
    pub log_format: LogFormat,
}

/// `LOG_FORMAT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(raw: &str) -> Result<LogFormat, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(invalid(
                "LOG_FORMAT",
                format!("{other:?} is not \"text\" or \"json\""),
            )),
        }
    }
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("SECRET_KEY file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "SECRET_KEY is not set; with PostgreSQL set it to the SECRET_KEY of the Django project \
         sharing the database"
    )]
    MissingSecretKey,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn parse_bool(name: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(invalid(
            name,
            format!("{other:?} is not a boolean (use true or false)"),
        )),
    }
}

fn parse_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_num<T: std::str::FromStr>(name: &'static str, raw: &str) -> Result<T, ConfigError> {
    raw.trim()
        .parse()
        .map_err(|_| invalid(name, format!("{raw:?} is not a valid number")))
}

impl Settings {
    /// Reads the process environment, after loading `.env` from `BASE_DIR` (or the current
    /// directory) without overriding variables that are already set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load_dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads `BASE_DIR`'s (or the current directory's) `.env` into the environment, keeping
    /// variables already set.
    pub fn load_dotenv() {
        let base = std::env::var("BASE_DIR")
            .map(PathBuf::from)
            .or_else(|_| std::env::current_dir())
            .unwrap_or_else(|_| PathBuf::from("."));
        let _ = dotenvy::from_path(base.join(".env"));
    }

    /// Builds settings from any lookup function; unset names take Django's defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base_dir = match get("BASE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let database_url = DatabaseUrl::parse(
            get("DATABASE_URL")
                .as_deref()
                .unwrap_or("sqlite:///db.sqlite3"),
            &base_dir,
        )
        .map_err(|e| invalid("DATABASE_URL", e))?;
        let debug = match get("DEBUG") {
            Some(v) => parse_bool("DEBUG", &v)?,
            None => false,
        };
        let allowed_hosts = parse_list(
            get("ALLOWED_HOSTS")
                .as_deref()
                .unwrap_or("localhost,127.0.0.1,[::1]"),
        );
        let bool_or = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            get(name).map_or(Ok(default), |v| parse_bool(name, &v))
        };
        let string_or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.into());
        let csrf_trusted_origins = parse_list(get("CSRF_TRUSTED_ORIGINS").as_deref().unwrap_or(""));
        for origin in &csrf_trusted_origins {
            // Django 4.0+ requires a scheme on every entry (checks E001/4_0.E001).
            if !origin.contains("://") {
                return Err(invalid(
                    "CSRF_TRUSTED_ORIGINS",
                    format!("{origin:?} must start with a scheme (e.g. https://{origin})"),
                ));
            }
        }
        let room_cache_ttl: f64 = match get("ROOM_CACHE_TTL") {
            Some(v) => parse_num("ROOM_CACHE_TTL", &v)?,
            None => 1.0,
        };
        if !(0.0..=86_400.0).contains(&room_cache_ttl) {
            return Err(invalid(
                "ROOM_CACHE_TTL",
                "must be between 0 and 86400 seconds",
            ));
        }
        let database_timeout: f64 = match get("DATABASE_TIMEOUT") {
            Some(v) => parse_num("DATABASE_TIMEOUT", &v)?,
            None => 5.0,
        };
        if !(0.01..=600.0).contains(&database_timeout) {
            return Err(invalid(
                "DATABASE_TIMEOUT",
                "must be between 0.01 and 600 seconds",
            ));
        }
        let password_hashers = password_hashers::resolve(
            get("DJANGO_VERSION").as_deref(),
            get("PASSWORD_HASHERS").as_deref(),
        )?;
        let positive = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            let n: usize = match get(name) {
                Some(v) => parse_num(name, &v)?,
                None => default,
            };
            if n == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
            Ok(n)
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let session_engine = SessionEngine::parse(
            get("SESSION_ENGINE")
                .as_deref()
                .unwrap_or("django.contrib.sessions.backends.db"),
        )
        .map_err(|e| invalid("SESSION_ENGINE", e))?;
        let ws_max_message_bytes = positive("WS_MAX_MESSAGE_BYTES", 1024 * 1024)?;
        let settings = Settings {
            secret_key: get("SECRET_KEY").filter(|s| !s.is_empty()).map(Secret::new),
            secret_key_fallbacks: parse_list(get("SECRET_KEY_FALLBACKS").as_deref().unwrap_or(""))
                .into_iter()
                .map(Secret::new)
                .collect(),
            debug,
            allowed_hosts,
            database_url,
            database_pool_size: positive("DATABASE_POOL_SIZE", 10)? as u32,
            database_timeout: Duration::from_secs_f64(database_timeout),
            channel_layer: channel_layers::resolve(
                get("CHANNEL_LAYERS").as_deref(),
                get("REDIS_URL").filter(|s| !s.is_empty()),
                string_or("REDIS_PREFIX", channel_layers::DEFAULT_REDIS_PREFIX),
            )?,
            session_engine,
            caches: caches::parse(
                get("CACHES").as_deref(),
                get("SESSION_CACHE_ALIAS"),
                session_engine.uses_cache(),
            )?,
            session_cookie_name: string_or("SESSION_COOKIE_NAME", "sessionid"),
            session_cookie_age: match get("SESSION_COOKIE_AGE") {
                Some(v) => parse_num("SESSION_COOKIE_AGE", &v)?,
                None => 1_209_600,
            },
            session_cookie_secure: bool_or("SESSION_COOKIE_SECURE", false)?,
            session_cookie_domain: get("SESSION_COOKIE_DOMAIN").filter(|s| !s.is_empty()),
            csrf_cookie_name: string_or("CSRF_COOKIE_NAME", "csrftoken"),
            csrf_cookie_secure: bool_or("CSRF_COOKIE_SECURE", false)?,
            csrf_trusted_origins,
            login_url: string_or("LOGIN_URL", "/accounts/login/"),
            // multichat sets LOGIN_REDIRECT_URL = "/" (spec §6); Django's own default differs.
            login_redirect_url: string_or("LOGIN_REDIRECT_URL", "/"),
            notify_users_on_enter_or_leave_rooms: bool_or(
                "NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS",
                true,
            )?,
            django_version: password_hashers.version,
            password_hashers,
            room_cache_ttl: Duration::from_secs_f64(room_cache_ttl),
            ws_max_message_bytes,
            limits: Limits::from_lookup(&get, ws_max_message_bytes)?,
            ws_outbound_queue: positive("WS_OUTBOUND_QUEUE", 4096)?,
            ws_outbound_queue_bytes: positive("WS_OUTBOUND_QUEUE_BYTES", 4 << 20)?,
            password_hashing_concurrency: positive("PASSWORD_HASHING_CONCURRENCY", cores)?,
            user_model: user_model::from_lookup(&get)?,
            room_presence_timeout: Duration::from_secs(
                positive("ROOM_PRESENCE_TIMEOUT", 3600)? as u64
            ),
            metrics_addr: match get("METRICS_ADDR").filter(|v| !v.trim().is_empty()) {
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    invalid(
                        "METRICS_ADDR",
                        format!("{v:?} is not an address:port such as 127.0.0.1:9808"),
                    )
                })?),
                None => None,
            },
            log_format: LogFormat::parse(&get("LOG_FORMAT").unwrap_or_default())?,
            base_dir,
        };
        for name in [&settings.session_cookie_name, &settings.csrf_cookie_name] {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b'=')
            {
                return Err(invalid(
                    "SESSION_COOKIE_NAME/CSRF_COOKIE_NAME",
                    format!("{name:?} is not a valid cookie name"),
                ));
            }
        }
        Ok(settings)
    }

    /// The file that holds a generated `SECRET_KEY`, beside the SQLite database.
    pub fn secret_key_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            DatabaseUrl::Sqlite(path) => {
                let mut name = path.file_name()?.to_os_string();
                name.push(".secret_key");
                Some(path.with_file_name(name))
            }
            _ => None,
        }
    }

    /// Makes sure `SECRET_KEY` is set. With no key on an SQLite database, reads the key file
    /// beside it, or generates a key, writes it there (mode 0600) and returns `true` so the
    /// caller can log that once.
    pub fn resolve_secret_key(&mut self) -> Result<bool, ConfigError> {
        if self.secret_key.is_some() {
            return Ok(false);
        }
        let path = match (&self.database_url, self.secret_key_file()) {
            (DatabaseUrl::SqliteMemory, _) => {
                self.secret_key = Some(Secret::new(generate_secret_key()));
                return Ok(false);
            }
            (_, Some(path)) => path,
            _ => return Err(ConfigError::MissingSecretKey),
        };
        let io = |source| ConfigError::SecretFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(key) if !key.trim().is_empty() => {
                self.secret_key = Some(Secret::new(key.trim().to_string()));
                Ok(false)
            }
            Ok(_) => Err(io(std::io::Error::other("the file is empty"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let key = generate_secret_key();
                write_private(&path, &key).map_err(io)?;
                self.secret_key = Some(Secret::new(key));
                Ok(true)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `SECRET_KEY` (call [`Settings::resolve_secret_key`] first).
    pub fn secret(&self) -> &str {
        self.secret_key.as_ref().map_or("", Secret::expose)
    }

    /// The fallback keys, as Django's `SECRET_KEY_FALLBACKS`.
    pub fn fallback_secrets(&self) -> Vec<String> {
        self.secret_key_fallbacks
            .iter()
            .map(|s| s.expose().to_string())
            .collect()
    }

    pub fn static_dir(&self) -> PathBuf {
        self.base_dir.join("static")
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.base_dir.join("templates")
    }
}

/// 50 characters like Django's `get_random_secret_key()`.
pub fn generate_secret_key() -> String {
    crate::django::crypto::get_random_string(
        50,
        b"abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)",
    )
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn secrets_are_redacted() {
        let s = settings(&[
            ("SECRET_KEY", "topsecret"),
            ("DATABASE_URL", "postgres://bob:hunter2@db:5432/chat"),
            ("REDIS_URL", "redis://:pw@r:6379"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(":pw@"), "{shown}");
        assert_eq!(
            s.database_url.to_string(),
            "postgres://bob:********@db:5432/chat"
        );
    }

    #[test]
    fn defaults_are_djangos() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.allowed_hosts, ["localhost", "127.0.0.1", "[::1]"]);
        assert_eq!(s.session_cookie_name, "sessionid");
        assert_eq!(s.session_cookie_age, 1_209_600);
        assert_eq!(s.csrf_cookie_name, "csrftoken");
        assert_eq!(s.login_url, "/accounts/login/");
        assert_eq!(s.session_engine, SessionEngine::Db);
        assert!(s.notify_users_on_enter_or_leave_rooms);
        assert!(!s.debug);
        assert_eq!(s.ws_max_message_bytes, 1 << 20);
        assert_eq!(s.room_cache_ttl, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_are_named() {
        let err = settings(&[("DEBUG", "maybe")]).unwrap_err().to_string();
        assert!(err.contains("DEBUG"), "{err}");
        let err = settings(&[("CSRF_TRUSTED_ORIGINS", "example.com")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("scheme"), "{err}");
        let err = settings(&[("SESSION_ENGINE", "django.contrib.sessions.backends.file")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cached_db"), "{err}");
        let err = settings(&[("SESSION_ENGINE", "django.contrib.sessions.backends.cache")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CACHES"), "{err}");
        assert!(settings(&[("WS_OUTBOUND_QUEUE", "0")]).is_err());
    }

    #[test]
    fn generated_key_is_stored_beside_the_database_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:///{}", dir.path().join("db.sqlite3").display());
        let mut s = settings(&[("DATABASE_URL", &db)]).unwrap();
        assert!(s.resolve_secret_key().unwrap());
        let key = s.secret().to_string();
        assert_eq!(key.len(), 50);
        let file = dir.path().join("db.sqlite3.secret_key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut again = settings(&[("DATABASE_URL", &db)]).unwrap();
        assert!(!again.resolve_secret_key().unwrap());
        assert_eq!(again.secret(), key);
    }
}
