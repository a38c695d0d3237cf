//! `Store::migrate` against Django 5.2's own schema dumps (`tests/data/django-schema`, made by
//! `compat/make_testdata.py` from a real `migrate`): exact tables/indexes on SQLite,
//! tables/columns/identities/constraints/indexes on PostgreSQL, the `django_migrations` rows,
//! the post-migrate content types and permissions, idempotence, and the refusal of partial
//! states. PostgreSQL must be running on 127.0.0.1:5432 (user
//! `postgres`, trust auth): a missing server fails these tests.
//!
//! This file holds the backends, the spec readers and the schema/row queries; the tests live in
//! `fresh` and `incomplete`.

#[path = "../common/mod.rs"]
mod common;

mod fresh;
mod incomplete;

use std::collections::BTreeSet;
use std::time::Duration;

use whisper::config::DatabaseUrl;
use whisper::store::{Db, Store, StoreError};

use common::pg::{Locale, PgDatabase};

const SPEC_SQLITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/django-schema/sqlite.sql"
);
const SPEC_POSTGRES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/django-schema/postgres.sql"
);
const SPEC_MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/django-schema/migrations.txt"
);
const SPEC_ROWS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/django-schema/post-migrate-rows.txt"
);

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
