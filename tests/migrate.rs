//! `Store::migrate` against Django 5.2's own schema dumps (shared/spec/django-schema): exact
//! tables/indexes on SQLite, tables/columns/identities/constraints/indexes on PostgreSQL, the
//! `django_migrations` rows, the post-migrate content types and permissions, idempotence, and
//! the refusal of partial states. PostgreSQL must be running on 127.0.0.1:5432 (user
//! `postgres`, trust auth): a missing server fails these tests.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, Executor};
use whisper::config::DatabaseUrl;
use whisper::store::{Db, Store, StoreError};

const SPEC_SQLITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/spec/django-schema/sqlite.sql"
);
const SPEC_POSTGRES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/spec/django-schema/postgres.sql"
);
const SPEC_MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/spec/django-schema/migrations.txt"
);
const SPEC_ROWS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/spec/django-schema/post-migrate-rows.txt"
);
const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn read_spec(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("spec file {path} is missing: {e}"))
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Backends

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = DatabaseUrl::Sqlite(dir.path().join("db.sqlite3"));
    Store::connect(&url, 4, Duration::from_secs(5), true)
        .await
        .expect("open sqlite")
}

/// A throw-away PostgreSQL database, dropped (with its connections) when this guard drops.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> (PgDatabase, Store) {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 with user postgres (trust auth)");
        let name = format!(
            "whisper_test_{}",
            whisper::django::crypto::get_random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' \
                 LC_CTYPE 'C'"
            )))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = DatabaseUrl::Postgres(whisper::config::Secret::new(format!(
            "postgres://postgres@127.0.0.1:5432/{name}"
        )));
        let store = Store::connect(&url, 4, Duration::from_secs(5), false)
            .await
            .expect("connect to test database");
        (PgDatabase { name }, store)
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
                if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
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

/// Runs one statement on whichever backend.
async fn exec(store: &Store, sql: &'static str) {
    match store.db() {
        Db::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
        Db::Postgres(p) => {
            sqlx::raw_sql(sql).execute(p).await.unwrap();
        }
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    match store.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

async fn migration_rows(store: &Store) -> Vec<(String, String)> {
    let sql = "SELECT app, name FROM django_migrations ORDER BY id";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn content_types(store: &Store) -> Vec<(i64, String, String)> {
    let sql = "SELECT CAST(id AS BIGINT), app_label, model FROM django_content_type ORDER BY id";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn permissions(store: &Store) -> Vec<(i64, i64, String, String)> {
    let sql = "SELECT CAST(id AS BIGINT), CAST(content_type_id AS BIGINT), codename, name \
               FROM auth_permission ORDER BY id";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

async fn applied_texts(store: &Store) -> Vec<String> {
    let sql = "SELECT CAST(applied AS TEXT) FROM django_migrations ORDER BY id";
    match store.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Expected values from the spec files

fn expected_migrations() -> Vec<(String, String)> {
    read_spec(SPEC_MIGRATIONS)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (app, name) = l.split_once('|').expect("app|name");
            (app.to_string(), name.to_string())
        })
        .collect()
}

type ContentTypes = Vec<(i64, String, String)>;
type Permissions = Vec<(i64, i64, String, String)>;

fn expected_rows() -> (ContentTypes, Permissions) {
    let text = read_spec(SPEC_ROWS);
    let (mut cts, mut perms) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("## ") {
            section = if s.starts_with("django_content_type") {
                "ct"
            } else {
                "perm"
            };
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        match section {
            "ct" => cts.push((f[0].parse().unwrap(), f[1].into(), f[2].into())),
            "perm" => perms.push((
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].into(),
                f[3].into(),
            )),
            _ => panic!("row outside a section: {line}"),
        }
    }
    assert_eq!(cts.len(), 7, "spec content types");
    assert_eq!(perms.len(), 28, "spec permissions");
    (cts, perms)
}

/// `(type, name, sql)` of every CREATE statement in the SQLite dump.
fn expected_sqlite_objects() -> BTreeSet<(String, String, String)> {
    let text = read_spec(SPEC_SQLITE);
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("CREATE ")) {
        let sql = line.trim().trim_end_matches(';');
        let kind = if sql.starts_with("CREATE TABLE") {
            "table"
        } else {
            "index"
        };
        let name = sql.split('"').nth(1).expect("quoted name");
        out.insert((kind.to_string(), name.to_string(), squash(sql)));
    }
    assert_eq!(out.len(), 26, "statements in {SPEC_SQLITE}");
    out
}

/// What the PostgreSQL dump says, in comparable form.
#[derive(Debug, Default, PartialEq)]
struct PgSchema {
    /// `table.column type [NOT NULL]` in column order.
    columns: Vec<String>,
    /// `table.column` of identity columns.
    identities: BTreeSet<String>,
    /// `name: definition`.
    constraints: BTreeSet<String>,
    /// `name: CREATE INDEX …` (indexes not backing a constraint).
    indexes: BTreeSet<String>,
}

fn expected_pg_schema() -> PgSchema {
    let text = read_spec(SPEC_POSTGRES).replace("public.", "");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('\\') && !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut schema = PgSchema::default();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for stmt in body.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let stmt = stmt.trim_end_matches(';');
        if let Some(rest) = stmt.strip_prefix("CREATE TABLE ") {
            let (table, cols) = rest.split_once(" (").unwrap();
            let cols = cols.trim().trim_end_matches(')');
            let mut list = Vec::new();
            for col in cols.lines().map(|l| l.trim().trim_end_matches(',')) {
                if col.is_empty() {
                    continue;
                }
                if let Some(c) = col.strip_prefix("CONSTRAINT ") {
                    let (name, def) = c.split_once(' ').unwrap();
                    schema
                        .constraints
                        .insert(format!("{name}: {}", squash(def)));
                    continue;
                }
                list.push(format!("{table}.{}", squash(col)));
            }
            tables.push((table.to_string(), list));
        } else if stmt.contains("ADD GENERATED BY DEFAULT AS IDENTITY") {
            let table = stmt.split_whitespace().nth(2).unwrap();
            let column = stmt.split_whitespace().nth(5).unwrap();
            schema.identities.insert(format!("{table}.{column}"));
        } else if stmt.starts_with("ALTER TABLE ONLY") {
            let def = squash(stmt.split_once("ADD CONSTRAINT ").unwrap().1);
            let (name, def) = def.split_once(' ').unwrap();
            schema.constraints.insert(format!("{name}: {def}"));
        } else if stmt.starts_with("CREATE INDEX") || stmt.starts_with("CREATE UNIQUE INDEX") {
            let name = stmt.split_whitespace().nth(2).unwrap();
            schema.indexes.insert(format!("{name}: {}", squash(stmt)));
        } else {
            panic!("unexpected statement in {SPEC_POSTGRES}: {stmt}");
        }
    }
    tables.sort();
    schema.columns = tables.into_iter().flat_map(|(_, c)| c).collect();
    schema
}

async fn actual_pg_schema(store: &Store) -> PgSchema {
    let Db::Postgres(pool) = store.db() else {
        panic!("not postgres")
    };
    let cols: Vec<(String, String, String, bool, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
         a.attnotnull, a.attidentity::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname = current_schema() AND a.attnum > 0 \
         AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = PgSchema::default();
    for (table, column, ty, not_null, identity) in cols {
        let mut line = format!("{table}.{column} {ty}");
        if not_null {
            line.push_str(" NOT NULL");
        }
        schema.columns.push(line);
        if identity == "d" {
            schema.identities.insert(format!("{table}.{column}"));
        }
    }
    let cons: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = current_schema()::regnamespace AND contype IN ('p','u','f','c')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let constraint_names: BTreeSet<String> = cons.iter().map(|(n, _)| n.clone()).collect();
    schema.constraints = cons
        .into_iter()
        .map(|(n, d)| format!("{n}: {}", squash(&d)))
        .collect();
    let idx: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    schema.indexes = idx
        .into_iter()
        .filter(|(n, _)| !constraint_names.contains(n))
        .map(|(n, d)| format!("{n}: {}", squash(&d.replace("public.", ""))))
        .collect();
    schema
}

async fn sqlite_objects(store: &Store) -> BTreeSet<(String, String, String)> {
    let Db::Sqlite(pool) = store.db() else {
        panic!("not sqlite")
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(t, n, s)| (t, n, squash(&s)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks shared by both backends

/// Fresh database: schema (checked by the caller), rows, report, idempotence.
async fn fresh_migrate_rows_and_idempotence(store: &Store) {
    assert!(!store.is_migrated().await.unwrap());
    assert_eq!(
        store.unapplied_migrations().await.unwrap(),
        expected_migrations()
    );

    let report = store.migrate().await.expect("first migrate");
    assert_eq!(report.applied, expected_migrations());
    assert_eq!(report.content_types_created, 7);
    assert_eq!(report.permissions_created, 28);
    assert_eq!(
        report.lines()[0],
        "  Applying contenttypes.0001_initial... OK"
    );

    assert_eq!(migration_rows(store).await, expected_migrations());
    let (cts, perms) = expected_rows();
    assert_eq!(content_types(store).await, cts);
    assert_eq!(permissions(store).await, perms);
    assert!(store.is_migrated().await.unwrap());
    assert!(store.unapplied_migrations().await.unwrap().is_empty());

    if store.is_sqlite() {
        for text in applied_texts(store).await {
            assert!(is_django_sqlite_datetime(&text), "applied = {text:?}");
        }
    }

    // Second run: nothing changes.
    let again = store.migrate().await.expect("second migrate");
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again.lines(), ["  No migrations to apply."]);
    assert_eq!(migration_rows(store).await, expected_migrations());
    assert_eq!(content_types(store).await, cts);
    assert_eq!(permissions(store).await, perms);
}

fn is_django_sqlite_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    let base = b.len() >= 19
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    base && (b.len() == 19 || (b.len() == 26 && b[19] == b'.' && digits(20..26)))
}

/// A Django-migrated database where one app is missing entirely: only that app is applied;
/// existing rows keep their ids and values, new content types / permissions are appended.
async fn missing_app_is_applied_alone(store: &Store) {
    store.migrate().await.unwrap();
    exec(store, "DROP TABLE chat_room").await;
    exec(store, "DELETE FROM django_migrations WHERE app = 'chat'").await;
    exec(
        store,
        "DELETE FROM auth_permission WHERE content_type_id IN \
         (SELECT id FROM django_content_type WHERE app_label = 'chat')",
    )
    .await;
    exec(
        store,
        "DELETE FROM django_content_type WHERE app_label = 'chat'",
    )
    .await;
    // A row Django's admin might have renamed: migrate must not touch it.
    exec(
        store,
        "UPDATE auth_permission SET name = 'Can add a user (custom)' WHERE codename = 'add_user'",
    )
    .await;

    assert!(!store.is_migrated().await.unwrap());
    let report = store.migrate().await.unwrap();
    assert_eq!(
        report.applied,
        [("chat".to_string(), "0001_initial".to_string())]
    );
    assert_eq!(report.content_types_created, 1);
    assert_eq!(report.permissions_created, 4);
    let cts = content_types(store).await;
    assert_eq!(cts.len(), 7);
    assert_eq!(cts.last().unwrap().1, "chat");
    assert_eq!(cts.last().unwrap().0, 8, "a new id, existing ids untouched");
    let perms = permissions(store).await;
    assert_eq!(perms.len(), 28);
    assert!(
        perms
            .iter()
            .any(|p| p.2 == "add_user" && p.3 == "Can add a user (custom)")
    );
    // chat's row went to the end of django_migrations.
    assert_eq!(migration_rows(store).await.last().unwrap().0, "chat");
    assert_eq!(count(store, "SELECT COUNT(*) FROM chat_room").await, 0);
    assert!(store.is_migrated().await.unwrap());
}

/// Partial states are refused and leave the database as it was.
async fn partial_states_are_refused(store: &Store) {
    // Tables without migration records.
    exec(
        store,
        "CREATE TABLE chat_room (id integer NOT NULL PRIMARY KEY, title varchar(255) NOT NULL, \
         staff_only bool NOT NULL)",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    let StoreError::Migration(msg) = &err else {
        panic!("expected a Migration error, got {err:?}")
    };
    assert!(msg.contains("chat_room"), "{msg}");
    assert!(!store.is_migrated().await.unwrap());
    assert!(matches!(
        store.unapplied_migrations().await,
        Err(StoreError::Migration(_))
    ));
    // Nothing was created (the transaction rolled back).
    let tables = if store.is_sqlite() {
        count(
            store,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .await
    } else {
        count(
            store,
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()",
        )
        .await
    };
    assert_eq!(tables, 1);
    exec(store, "DROP TABLE chat_room").await;

    // Some of an app's migrations recorded.
    store.migrate().await.unwrap();
    exec(
        store,
        "DELETE FROM django_migrations WHERE app = 'auth' AND name = '0012_alter_user_first_name_max_length'",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    let StoreError::Migration(msg) = &err else {
        panic!("expected a Migration error, got {err:?}")
    };
    assert!(msg.contains("partially"), "{msg}");
    assert!(
        msg.contains("0012_alter_user_first_name_max_length"),
        "{msg}"
    );
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM django_migrations").await,
        18
    );
    assert!(!store.is_migrated().await.unwrap());

    // A migrated app whose dependency is not recorded (inconsistent history).
    exec(store, "DELETE FROM django_migrations WHERE app = 'auth'").await;
    exec(
        store,
        "DELETE FROM django_migrations WHERE app = 'contenttypes'",
    )
    .await;
    let err = store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Migration(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// SQLite

#[tokio::test]
async fn sqlite_fresh_schema_matches_django_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    fresh_migrate_rows_and_idempotence(&store).await;
    let actual = sqlite_objects(&store).await;
    let expected = expected_sqlite_objects();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nextra: {extra:#?}"
    );
}

#[tokio::test]
async fn sqlite_missing_app_is_applied_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    missing_app_is_applied_alone(&store).await;
}

#[tokio::test]
async fn sqlite_partial_states_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    partial_states_are_refused(&store).await;
}

#[tokio::test]
async fn sqlite_in_memory_migrates() {
    let store = Store::connect(&DatabaseUrl::SqliteMemory, 4, Duration::from_secs(5), true)
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap().applied.len(), 19);
    assert!(store.is_migrated().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[tokio::test]
async fn postgres_fresh_schema_matches_django() {
    let (_db, store) = PgDatabase::create().await;
    fresh_migrate_rows_and_idempotence(&store).await;
    let actual = actual_pg_schema(&store).await;
    let expected = expected_pg_schema();
    assert_eq!(actual.columns, expected.columns);
    assert_eq!(actual.identities, expected.identities);
    assert_eq!(actual.constraints, expected.constraints);
    assert_eq!(actual.indexes, expected.indexes);
    assert_eq!(expected.indexes.len(), 13);
    assert_eq!(expected.constraints.len(), 28);
    store.close().await;
}

#[tokio::test]
async fn postgres_missing_app_is_applied_alone() {
    let (_db, store) = PgDatabase::create().await;
    missing_app_is_applied_alone(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_partial_states_are_refused() {
    let (_db, store) = PgDatabase::create().await;
    partial_states_are_refused(&store).await;
    store.close().await;
}
