//! Django's storage: SQL on its own tables (`auth_user` or a custom `AUTH_USER_MODEL`'s table,
//! `django_session`, `chat_room`, `django_migrations`, …) for SQLite and PostgreSQL through one
//! code path, its Redis cache ([`cache`]), and the session engines on top of both
//! ([`SessionStore`]).
//!
//! The sqlx `Any` driver cannot decode Django's `bool` and datetime columns, so [`Store`] wraps an
//! enum over the two concrete pools ([`Db`]) and the private `dispatch!` macro runs the *same*
//! SQL text on whichever pool is inside (`$1` placeholders, `ON CONFLICT`, `RETURNING` and
//! `CAST(id AS BIGINT)` work on both). Per-backend SQL exists only where the dialects differ
//! (DDL, catalog queries).
//!
//! Storage rules (spec `django-internals.md` §7.3):
//! * datetimes on SQLite are naive-UTC text `YYYY-MM-DD HH:MM:SS[.ffffff]` (microseconds omitted
//!   when zero) and are compared as strings, so they are bound as a `String` formatted here;
//!   on PostgreSQL they are `timestamptz` and bound as `DateTime<Utc>` (the session time zone is
//!   UTC, like Django's connection);
//! * ids are 32-bit `integer` columns; they are read as `CAST(id AS BIGINT)` so that `i64` decodes
//!   on both backends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::config::DatabaseUrl;
use crate::metrics::Latency;

/// Runs one body on whichever pool the store holds.
///
/// `dispatch!(store, pool, dt => body)` binds `pool` to `&SqlitePool` or `&PgPool` and `dt` to a
/// function turning a `DateTime<Utc>` into that backend's bind value (Django's text on SQLite,
/// the `DateTime<Utc>` itself on PostgreSQL). The body is compiled once per backend. Its time
/// (returns by `?` included) goes into the store's query histogram, if it has one.
macro_rules! dispatch {
    ($store:expr, $pool:ident, $dt:ident => $body:expr) => {{
        let _timer = $store.query_timer();
        match $store.db() {
            $crate::store::Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $dt = $crate::store::sqlite_datetime;
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $dt = $crate::store::pg_datetime;
                $body
            }
        }
    }};
    ($store:expr, $pool:ident => $body:expr) => {{
        let _timer = $store.query_timer();
        match $store.db() {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    }};
}

pub mod cache;
mod flight;
mod migrate;
mod rooms;
mod session_store;
mod sessions;
mod user_table;
mod users;

pub use cache::{Cached, DjangoCache, Timeout};
pub use migrate::{MIGRATIONS, MigrateReport, app_labels};
pub use rooms::{Room, RoomCache};
pub use session_store::{LoadedSession, SessionStore};
pub use user_table::UserTable;
pub use users::{NewUser, User};

use users::UserSource;

/// The concrete pool behind a [`Store`].
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Cheap-to-clone handle on the database shared with Django.
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// The user model and its table (Django's `auth.User` unless
    /// [`Store::with_user_model`] says otherwise).
    users: std::sync::Arc<UserSource>,
    /// `whisper_db_query_duration_seconds` ([`Store::with_query_latency`]).
    query_latency: Option<Latency>,
    /// The reads a handshake makes, shared while in flight (`flight`).
    flights: std::sync::Arc<HandshakeReads>,
}

/// A session row by its key, a user by id.
#[derive(Default)]
struct HandshakeReads {
    sessions: flight::Flights<String, Option<String>>,
    users: flight::Flights<i64, Option<User>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.db {
            Db::Sqlite(_) => f.write_str("Store(sqlite)"),
            Db::Postgres(_) => f.write_str("Store(postgres)"),
        }
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (pool timeout, connection refused, I/O, a busy
    /// or locked SQLite file, a PostgreSQL server refusing connections). Retry later; the web
    /// layer answers 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// `create_user` with a username that already exists.
    #[error("That username is already taken.")]
    UsernameTaken,
    /// The schema is in a state `migrate` will not touch, or a statement failed.
    #[error("{0}")]
    Migration(String),
    /// The Redis of Django's cache cannot be reached (connection refused or lost, timeout).
    /// Like [`StoreError::Unavailable`]: retry later, 503.
    #[error("cache unavailable: {0}")]
    CacheUnavailable(#[source] redis::RedisError),
    /// Any other error of the cache's Redis (a wrong URL, a key of another type, …).
    #[error("cache error: {0}")]
    Cache(#[source] redis::RedisError),
    /// The user model's table is missing or not one Whisper can use (the message says why
    /// and what to do), or a new user needs a column Whisper cannot fill.
    #[error("{0}")]
    UserModel(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

impl StoreError {
    /// True for [`StoreError::Unavailable`] and [`StoreError::CacheUnavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::CacheUnavailable(_)
        )
    }
}

/// Transient / connectivity failures.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result code: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10),
                // SQLITE_CANTOPEN (14).
                matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6 | 10 | 14))
            } else {
                // SQLSTATE classes: 08 connection exception, 53 insufficient resources,
                // 57P01..57P05 shutdown / cannot connect now.
                code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
            }
        }
        _ => false,
    }
}

/// SQLite bind value for a datetime: Django's naive-UTC text.
pub(crate) fn sqlite_datetime(value: DateTime<Utc>) -> String {
    django_datetime_text(value)
}

/// PostgreSQL bind value for a datetime: the instant itself, at microsecond precision.
pub(crate) fn pg_datetime(value: DateTime<Utc>) -> DateTime<Utc> {
    value.trunc_subsecs(6)
}

/// Django's SQLite text for a UTC datetime: `YYYY-MM-DD HH:MM:SS` plus `.ffffff` when the
/// microseconds are not zero (sub-microsecond digits are dropped).
pub fn django_datetime_text(value: DateTime<Utc>) -> String {
    let micros = value.timestamp_subsec_micros();
    if micros == 0 {
        value.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", value.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// Opens and closes one connection, so a wrong URL or a refused connection is reported with
/// its real cause (the pool would retry until its timeout and say only "timed out").
async fn probe<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
) -> Result<(), StoreError> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

impl Store {
    /// Opens a pool on `url`.
    ///
    /// * SQLite: foreign keys on, busy timeout 5 s, the file is created only when
    ///   `create_if_missing`. An in-memory database uses one connection that is never closed.
    /// * PostgreSQL: the session time zone is UTC (Django sets the same when `USE_TZ`).
    ///
    /// `pool_size` is the maximum number of connections, `timeout` how long to wait for one.
    /// One connection is opened before returning, so a wrong URL fails here.
    pub async fn connect(
        url: &DatabaseUrl,
        pool_size: u32,
        timeout: Duration,
        create_if_missing: bool,
    ) -> Result<Store, StoreError> {
        let pool_size = pool_size.max(1);
        let db = match url {
            DatabaseUrl::Sqlite(path) => {
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(create_if_missing)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                probe::<sqlx::SqliteConnection>(&opts, timeout).await?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await?;
                Db::Sqlite(pool)
            }
            DatabaseUrl::SqliteMemory => {
                let opts = SqliteConnectOptions::new()
                    .in_memory(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await?;
                Db::Sqlite(pool)
            }
            DatabaseUrl::Postgres(secret) => {
                let opts = PgConnectOptions::from_str(secret.expose())
                    .map_err(StoreError::Database)?
                    .options([("TimeZone", "UTC")]);
                probe::<sqlx::PgConnection>(&opts, timeout).await?;
                let pool = PgPoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await?;
                Db::Postgres(pool)
            }
        };
        Ok(Store::from_db(db))
    }

    /// Wraps an existing pool (user model: Django's `auth.User`).
    pub fn from_db(db: Db) -> Store {
        Store {
            db,
            users: UserSource::new(&crate::config::UserModel::default()),
            query_latency: None,
            flights: Default::default(),
        }
    }

    /// Times every statement into `latency` (the server's metrics; commands have none).
    pub fn with_query_latency(mut self, latency: Latency) -> Store {
        self.query_latency = Some(latency);
        self
    }

    /// Used by `dispatch!`: observes until dropped.
    fn query_timer(&self) -> Option<crate::metrics::Timer<'_>> {
        self.query_latency.as_ref().map(Latency::start)
    }

    /// The pool inside (for tests and one-off SQL).
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }

    /// One round trip (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection (waits for those in use).
    pub async fn close(&self) {
        dispatch!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn django_text_format() {
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
        assert_eq!(django_datetime_text(t), "2024-01-15 10:00:00");
        let t = t + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(django_datetime_text(t), "2024-01-15 10:00:00.123456");
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap()
            + chrono::Duration::microseconds(5);
        assert_eq!(django_datetime_text(t), "2024-01-15 10:00:00.000005");
    }
}
