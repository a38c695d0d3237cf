//! A throw-away PostgreSQL database on 127.0.0.1:5432 (user `postgres`, trust auth), shared by
//! the store, migrate and interop tests: `whisper_<kind>_<random>` is created on demand and
//! dropped WITH (FORCE) when the guard drops, even while unwinding from a failed assertion. A
//! missing server fails the test loudly; nothing is skipped.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, Executor};
use whisper::config::{DatabaseUrl, Secret};
use whisper::store::Store;

/// The maintenance database the throw-away databases are created from and dropped through.
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The locale a throw-away database is created with.
#[derive(Clone, Copy, Debug)]
pub enum Locale {
    /// `LC_COLLATE 'C' LC_CTYPE 'C'`: byte-order collation, independent of the server.
    C,
    /// Whatever the server's `template0` uses (what Django's own test databases get).
    ServerDefault,
}

/// A throw-away PostgreSQL database, dropped (with its connections) when this guard drops.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    /// Creates `whisper_<kind>_<random>` (UTF8, from `template0`) with `locale`.
    pub async fn create(kind: &str, locale: Locale) -> PgDatabase {
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 with user postgres (trust auth)");
        let name = format!(
            "whisper_{kind}_{}",
            whisper::django::crypto::get_random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        let locale = match locale {
            Locale::C => " LC_COLLATE 'C' LC_CTYPE 'C'",
            Locale::ServerDefault => "",
        };
        admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'{locale}"
            )))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        PgDatabase { name }
    }

    /// A database plus a Whisper store on it, migrated or left empty as `migrate` says.
    pub async fn with_store(kind: &str, locale: Locale, migrate: bool) -> (PgDatabase, Store) {
        let db = PgDatabase::create(kind, locale).await;
        let store = db.store().await;
        if migrate {
            store.migrate().await.expect("migrate postgres");
        }
        (db, store)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A fresh (unmigrated unless the database already is) store on this database.
    pub async fn store(&self) -> Store {
        let url = DatabaseUrl::Postgres(Secret::new(self.url()));
        Store::connect(&url, 4, Duration::from_secs(5), false)
            .await
            .expect("connect to test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Runs even while unwinding from a failed assertion; a fresh runtime on its own thread
        // because Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(ADMIN_URL).await {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}
