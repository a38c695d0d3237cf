//! `django_session` for the `db` and `cached_db` session engines: the statements Django's
//! `SessionStore` issues (spec `django-internals.md` §4.3). The data is the signed string;
//! encoding and decoding live in `crate::django::sessions`.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Db, Store, StoreError, pg_datetime, sqlite_datetime};

/// Django treats keys shorter than 8 characters as "no key" (`_validate_session_key`).
fn usable_key(key: &str) -> bool {
    key.chars().count() >= 8
}

impl Store {
    /// `session_data` of an unexpired row (`expire_date > now`, strict), or `None`.
    pub async fn load_session(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        if !usable_key(key) {
            return Ok(None);
        }
        let read = || async {
            Ok(dispatch!(self, pool, dt => {
                sqlx::query_scalar::<_, String>(
                    "SELECT session_data FROM django_session \
                     WHERE session_key = $1 AND expire_date > $2",
                )
                .bind(key)
                .bind(dt(now))
                .fetch_optional(pool)
                .await?
            }))
        };
        let flights = self.flights.clone();
        flights.sessions.read(&key.to_string(), read).await
    }

    /// Which of these keys name an unexpired row (the live revocation check: one statement
    /// per 500 keys).
    pub async fn live_session_keys(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut live = std::collections::HashSet::new();
        for chunk in keys.chunks(500) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT session_key FROM django_session WHERE expire_date > $1 \
                 AND session_key IN ({})",
                marks.join(", ")
            );
            let found = dispatch!(self, pool, dt => {
                let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(dt(now));
                for key in chunk {
                    q = q.bind(key.as_str());
                }
                q.fetch_all(pool).await?
            });
            live.extend(found);
        }
        Ok(live)
    }

    /// `session_data` and `expire_date` of an unexpired row (the `cached_db` engine fills its
    /// cache entry with the row's remaining lifetime).
    pub async fn load_session_expiry(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        if !usable_key(key) {
            return Ok(None);
        }
        Ok(match self.db() {
            Db::Sqlite(pool) => {
                let row = sqlx::query_as::<_, (String, String)>(
                    "SELECT session_data, CAST(expire_date AS TEXT) FROM django_session \
                     WHERE session_key = $1 AND expire_date > $2",
                )
                .bind(key)
                .bind(sqlite_datetime(now))
                .fetch_optional(pool)
                .await?;
                row.and_then(|(data, text)| {
                    let at = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
                    Some((data, at.and_utc()))
                })
            }
            Db::Postgres(pool) => {
                sqlx::query_as::<_, (String, DateTime<Utc>)>(
                    "SELECT session_data, expire_date FROM django_session \
                     WHERE session_key = $1 AND expire_date > $2",
                )
                .bind(key)
                .bind(pg_datetime(now))
                .fetch_optional(pool)
                .await?
            }
        })
    }

    /// Forced insert of a new row. `false` when the key already exists (Django then picks
    /// another key and tries again).
    pub async fn insert_session(
        &self,
        key: &str,
        data: &str,
        expire: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, pool, dt => {
            sqlx::query(
                "INSERT INTO django_session (session_key, session_data, expire_date) \
                 VALUES ($1, $2, $3) ON CONFLICT (session_key) DO NOTHING",
            )
            .bind(key)
            .bind(data)
            .bind(dt(expire))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Rewrites data and expiry of an existing row. Returns false when the row is gone
    /// (Django then raises `UpdateError`, i.e. the session was deleted meanwhile).
    pub async fn update_session(
        &self,
        key: &str,
        data: &str,
        expire: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, pool, dt => {
            sqlx::query(
                "UPDATE django_session SET session_data = $1, expire_date = $2 \
                 WHERE session_key = $3",
            )
            .bind(data)
            .bind(dt(expire))
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Deletes the row (no error when it does not exist).
    pub async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            sqlx::query("DELETE FROM django_session WHERE session_key = $1")
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
