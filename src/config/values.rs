//! The small value types of the settings: [`Secret`] (never printed), [`DatabaseUrl`] (Django's
//! `DATABASES["default"]` as a URL) and [`SessionEngine`] (`SESSION_ENGINE`).

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string: compared and used as-is, printed as `********`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Where the data lives: Django's `DATABASES["default"]`, as a URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (absolute path after resolving against `BASE_DIR`).
    Sqlite(PathBuf),
    /// An in-memory SQLite database (tests, experiments).
    SqliteMemory,
    /// A PostgreSQL URL, passed to the driver unchanged.
    Postgres(Secret),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            DatabaseUrl::SqliteMemory => f.write_str("SqliteMemory"),
            DatabaseUrl::Postgres(url) => write!(f, "Postgres({})", redact_url(url.expose())),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite:///{}", p.display()),
            DatabaseUrl::SqliteMemory => f.write_str("sqlite://:memory:"),
            DatabaseUrl::Postgres(url) => f.write_str(&redact_url(url.expose())),
        }
    }
}

/// `scheme://user:password@host` → `scheme://user:********@host`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:********")
            } else {
                user.to_string()
            };
            format!("{}://{}{}", &url[..scheme_end], masked, &rest[at..])
        }
        None => url.to_string(),
    }
}

impl DatabaseUrl {
    /// Parses the forms Django users write with dj-database-url (`sqlite:///relative.db`,
    /// `sqlite:////absolute.db`, `postgres://…`) and sqlx's `sqlite:path`.
    pub fn parse(raw: &str, base_dir: &Path) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let rest = rest.split('?').next().unwrap_or("");
            let path = match rest.strip_prefix("//") {
                // dj-database-url: empty authority, then one '/' before the path.
                Some(after) => after.strip_prefix('/').unwrap_or(after),
                None => rest,
            };
            if path.is_empty() || path == ":memory:" {
                return Ok(DatabaseUrl::SqliteMemory);
            }
            let p = Path::new(path);
            let abs = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            };
            return Ok(DatabaseUrl::Sqlite(abs));
        }
        for scheme in ["postgres://", "postgresql://", "pgsql://"] {
            if let Some(rest) = raw.strip_prefix(scheme) {
                return Ok(DatabaseUrl::Postgres(Secret::new(format!(
                    "postgres://{rest}"
                ))));
            }
        }
        Err(format!(
            "unsupported database URL {:?}: use sqlite:///relative.db, sqlite:////absolute/path.db, \
             sqlite:path or postgres://user:pass@host:port/name",
            redact_url(raw)
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        !matches!(self, DatabaseUrl::Postgres(_))
    }
}

/// `SESSION_ENGINE`: the Django engines whose sessions we can share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEngine {
    /// `django.contrib.sessions.backends.db`: rows in `django_session`.
    Db,
    /// `django.contrib.sessions.backends.signed_cookies`: the cookie is the session.
    SignedCookies,
    /// `django.contrib.sessions.backends.cache`: a pickled dict in the Redis cache only.
    Cache,
    /// `django.contrib.sessions.backends.cached_db`: the row, and the dict in the cache.
    CachedDb,
}

impl SessionEngine {
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "django.contrib.sessions.backends.db" | "db" => Ok(SessionEngine::Db),
            "django.contrib.sessions.backends.signed_cookies" | "signed_cookies" => {
                Ok(SessionEngine::SignedCookies)
            }
            "django.contrib.sessions.backends.cache" | "cache" => Ok(SessionEngine::Cache),
            "django.contrib.sessions.backends.cached_db" | "cached_db" => {
                Ok(SessionEngine::CachedDb)
            }
            other => Err(format!(
                "unsupported session engine {other:?}: use django.contrib.sessions.backends.db, \
                 .signed_cookies, .cache or .cached_db (the cache engines with a Redis cache in \
                 CACHES)"
            )),
        }
    }

    /// The engines that keep a `django_session` row per session.
    pub fn stores_rows(self) -> bool {
        matches!(self, SessionEngine::Db | SessionEngine::CachedDb)
    }

    /// The engines that keep sessions in `CACHES[SESSION_CACHE_ALIAS]`.
    pub fn uses_cache(self) -> bool {
        matches!(self, SessionEngine::Cache | SessionEngine::CachedDb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_forms() {
        let base = Path::new("/srv/app");
        let parse = |s| DatabaseUrl::parse(s, base).unwrap();
        assert_eq!(
            parse("sqlite:///db.sqlite3"),
            DatabaseUrl::Sqlite("/srv/app/db.sqlite3".into())
        );
        assert_eq!(
            parse("sqlite:////var/db/x.db"),
            DatabaseUrl::Sqlite("/var/db/x.db".into())
        );
        assert_eq!(
            parse("sqlite:data.db"),
            DatabaseUrl::Sqlite("/srv/app/data.db".into())
        );
        assert_eq!(
            parse("sqlite:data.db?mode=rwc"),
            DatabaseUrl::Sqlite("/srv/app/data.db".into())
        );
        assert_eq!(parse("sqlite://:memory:"), DatabaseUrl::SqliteMemory);
        assert_eq!(parse("sqlite::memory:"), DatabaseUrl::SqliteMemory);
        assert!(matches!(
            parse("postgres://u:p@h:5432/n"),
            DatabaseUrl::Postgres(_)
        ));
        assert!(matches!(
            parse("postgresql://h/n"),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse("mysql://h/n", base).is_err());
    }
}
