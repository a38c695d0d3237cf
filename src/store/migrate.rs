//! `manage migrate` without Django: creates Django 5.2's exact schema for the apps
//! contenttypes, auth, admin, chat and sessions, records the `django_migrations` rows Django
//! would write, and adds the content-type and permission rows of Django's `post_migrate`
//! handlers — so a real Django sharing the database sees it as fully migrated.
//!
//! The DDL is the verbatim output of Django's own `migrate` (SQLite: `sqlite_master`;
//! PostgreSQL: `pg_dump --schema-only`), embedded per backend from `sql/`.
//!
//! Safe on a database Django already migrated: per app, nothing happens when all its migrations
//! are recorded; the app is created when none are recorded and none of its tables exist; every
//! other state (some migrations recorded, or tables without records, or a recorded app whose
//! dependency is not) is refused with [`StoreError::Migration`] instead of guessed at. Content
//! types and permissions are inserted only where missing; existing rows are never touched.
//! Everything runs in one transaction.
//!
//! With a custom `AUTH_USER_MODEL` the Django project owns the user model's app, and Django's
//! migration graph puts it after auth (its `0001_initial` depends on auth's groups and
//! permissions) and before admin (`django_admin_log` has a foreign key to the user table,
//! through `swappable_dependency(AUTH_USER_MODEL)`). So Whisper creates only contenttypes, auth,
//! chat and sessions, records all of their migrations as Django does (auth's migrations skip
//! the swapped-out `auth.User`: no `auth_user`, `auth_user_groups` or
//! `auth_user_user_permissions`), adds the post-migrate rows of those models (not `auth.User`'s,
//! which Django does not make for a swapped model), and leaves the user app and admin to the
//! Django project's `migrate`.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::{Postgres, Sqlite, Transaction};

use super::{Db, Store, StoreError, pg_datetime, sqlite_datetime};

const SQLITE_DDL: &str = include_str!("sql/sqlite.sql");
const POSTGRES_DDL: &str = include_str!("sql/postgres.sql");

/// The `django_migrations` rows Django 5.2 writes, in its order (`app`, `name`).
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("contenttypes", "0001_initial"),
    ("auth", "0001_initial"),
    ("admin", "0001_initial"),
    ("admin", "0002_logentry_remove_auto_add"),
    ("admin", "0003_logentry_add_action_flag_choices"),
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0002_alter_permission_name_max_length"),
    ("auth", "0003_alter_user_email_max_length"),
    ("auth", "0004_alter_user_username_opts"),
    ("auth", "0005_alter_user_last_login_null"),
    ("auth", "0006_require_contenttypes_0002"),
    ("auth", "0007_alter_validators_add_error_messages"),
    ("auth", "0008_alter_user_username_max_length"),
    ("auth", "0009_alter_user_last_name_max_length"),
    ("auth", "0010_alter_group_name_max_length"),
    ("auth", "0011_update_proxy_permissions"),
    ("auth", "0012_alter_user_first_name_max_length"),
    ("chat", "0001_initial"),
    ("sessions", "0001_initial"),
];

struct App {
    label: &'static str,
    tables: &'static [&'static str],
    depends_on: &'static [&'static str],
}

/// The apps that depend on the user model's app (left to Django with a custom user model).
const USER_DEPENDENT_APPS: &[&str] = &["admin"];
/// auth's tables for `auth.User`, which a swapped-out user model does not get.
const AUTH_USER_TABLES: &[&str] = &[
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
];

/// Apps in creation order (foreign keys point backwards only).
const APPS: &[App] = &[
    App {
        label: "contenttypes",
        tables: &["django_content_type"],
        depends_on: &[],
    },
    App {
        label: "auth",
        tables: &[
            "auth_permission",
            "auth_group",
            "auth_group_permissions",
            "auth_user",
            "auth_user_groups",
            "auth_user_user_permissions",
        ],
        depends_on: &["contenttypes"],
    },
    App {
        label: "admin",
        tables: &["django_admin_log"],
        depends_on: &["auth", "contenttypes"],
    },
    App {
        label: "chat",
        tables: &["chat_room"],
        depends_on: &[],
    },
    App {
        label: "sessions",
        tables: &["django_session"],
        depends_on: &[],
    },
];

/// `(app_label, model, verbose_name)` in the order Django's `post_migrate` creates them: app by
/// app in multichat's `INSTALLED_APPS` order (admin, auth, contenttypes, sessions, chat), as
/// recorded from a real `migrate` in `tests/data/django-schema/post-migrate-rows.txt`.
const CONTENT_TYPES: &[(&str, &str, &str)] = &[
    ("admin", "logentry", "log entry"),
    ("auth", "permission", "permission"),
    ("auth", "group", "group"),
    ("auth", "user", "user"),
    ("contenttypes", "contenttype", "content type"),
    ("sessions", "session", "session"),
    ("chat", "room", "room"),
];

/// Django's default permissions per model, in order.
const ACTIONS: &[&str] = &["add", "change", "delete", "view"];

/// What one `migrate` run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Migrations recorded by this run, as `(app, name)`, in application order.
    pub applied: Vec<(String, String)>,
    /// Rows added to `django_content_type`.
    pub content_types_created: u64,
    /// Rows added to `auth_permission`.
    pub permissions_created: u64,
}

impl MigrateReport {
    /// True when the run changed nothing.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.content_types_created == 0 && self.permissions_created == 0
    }

    /// Django's progress lines: `  Applying auth.0001_initial... OK` for each migration, or
    /// `  No migrations to apply.`.
    pub fn lines(&self) -> Vec<String> {
        if self.applied.is_empty() {
            return vec!["  No migrations to apply.".to_string()];
        }
        self.applied
            .iter()
            .map(|(app, name)| format!("  Applying {app}.{name}... OK"))
            .collect()
    }
}

/// What `migrate` manages: everything, or (custom user model) what does not depend on it.
#[derive(Clone, Copy)]
struct Scope {
    custom_user_model: bool,
}

impl Scope {
    fn apps(self) -> impl Iterator<Item = &'static App> {
        APPS.iter()
            .filter(move |a| !(self.custom_user_model && USER_DEPENDENT_APPS.contains(&a.label)))
    }

    fn tables(self, app: &App) -> impl Iterator<Item = &'static str> {
        app.tables
            .iter()
            .copied()
            .filter(move |t| !(self.custom_user_model && AUTH_USER_TABLES.contains(t)))
    }

    /// The app's DDL statements, without those on `auth.User`'s tables when it is swapped out
    /// (every such statement, and only those, names a table starting with `auth_user`).
    fn statements(self, ddl: &'static str, label: &str) -> Vec<&'static str> {
        section(ddl, label)
            .into_iter()
            .filter(|stmt| !(self.custom_user_model && stmt.contains("auth_user")))
            .collect()
    }

    fn content_types(
        self,
    ) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
        CONTENT_TYPES.iter().filter(move |(app, model, _)| {
            !(self.custom_user_model
                && ((*app == "auth" && *model == "user") || USER_DEPENDENT_APPS.contains(app)))
        })
    }
}

/// The app labels `migrate` manages, sorted like Django's "Apply all migrations:" line; with a
/// custom user model, without the apps that depend on it.
pub fn app_labels(custom_user_model: bool) -> Vec<&'static str> {
    let mut labels: Vec<&str> = Scope { custom_user_model }
        .apps()
        .map(|a| a.label)
        .collect();
    labels.sort_unstable();
    labels
}

/// One statement per item, grouped by `-- app: <label>` sections.
fn section(ddl: &'static str, label: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut current: Option<&str> = None;
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in ddl.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        if start.is_none() {
            if let Some(name) = trimmed.strip_prefix("-- app: ") {
                current = Some(name.trim());
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
            start = Some(line_start);
        }
        if trimmed.ends_with(';')
            && let Some(s) = start.take()
            && current == Some(label)
        {
            out.push(ddl[s..line_start + trimmed.len()].trim());
        }
    }
    out
}

enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs one body on the transaction's connection; `dt` as in `dispatch!`.
macro_rules! on_tx {
    ($tx:expr, $conn:ident, $dt:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite(t) => {
                #[allow(unused_variables)]
                let $dt = sqlite_datetime;
                let $conn = &mut **t;
                $body
            }
            Tx::Postgres(t) => {
                #[allow(unused_variables)]
                let $dt = pg_datetime;
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Tx {
    fn ddl(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => SQLITE_DDL,
            Tx::Postgres(_) => POSTGRES_DDL,
        }
    }

    async fn table_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = match self {
            Tx::Sqlite(t) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(name)
                .fetch_one(&mut **t)
                .await?
            }
            Tx::Postgres(t) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM pg_catalog.pg_class c \
                     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname = $1 \
                     AND pg_catalog.pg_table_is_visible(c.oid)",
                )
                .bind(name)
                .fetch_one(&mut **t)
                .await?
            }
        };
        Ok(n > 0)
    }

    async fn recorded(&mut self) -> Result<HashSet<(String, String)>, StoreError> {
        if !self.table_exists("django_migrations").await? {
            return Ok(HashSet::new());
        }
        let rows = on_tx!(self, conn, dt => {
            sqlx::query_as::<_, (String, String)>("SELECT app, name FROM django_migrations")
                .fetch_all(conn)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    async fn run_section(&mut self, scope: Scope, label: &str) -> Result<(), StoreError> {
        for stmt in scope.statements(self.ddl(), label) {
            let result = on_tx!(self, conn, dt => {
                sqlx::raw_sql(stmt).execute(conn).await.map(|_| ())
            });
            result.map_err(|e| {
                StoreError::Migration(format!("{label}: statement failed: {e}\n{stmt}"))
            })?;
        }
        Ok(())
    }

    /// Migrations to apply, or an error for states that must not be guessed at.
    async fn plan(&mut self, scope: Scope) -> Result<Vec<&'static App>, StoreError> {
        let recorded = self.recorded().await?;
        let mut complete: HashSet<&str> = HashSet::new();
        let mut todo = Vec::new();
        for app in scope.apps() {
            let known: Vec<&str> = MIGRATIONS
                .iter()
                .filter(|(a, _)| *a == app.label)
                .map(|(_, n)| *n)
                .collect();
            let done: Vec<&str> = known
                .iter()
                .copied()
                .filter(|n| recorded.contains(&(app.label.to_string(), n.to_string())))
                .collect();
            if done.len() == known.len() {
                complete.insert(app.label);
                continue;
            }
            if !done.is_empty() {
                let missing: Vec<&str> = known
                    .iter()
                    .copied()
                    .filter(|n| !done.contains(n))
                    .collect();
                return Err(StoreError::Migration(format!(
                    "app '{}' is partially migrated (recorded: {}; missing: {}). Refusing to \
                     guess: finish with Django's `manage.py migrate`.",
                    app.label,
                    done.join(", "),
                    missing.join(", ")
                )));
            }
            let mut existing = Vec::new();
            for table in scope.tables(app) {
                if self.table_exists(table).await? {
                    existing.push(table);
                }
            }
            if !existing.is_empty() {
                return Err(StoreError::Migration(format!(
                    "table(s) {} of app '{}' exist, but django_migrations records none of its \
                     migrations. Refusing to guess: check the database, or let Django adopt the \
                     tables with `manage.py migrate --fake-initial`.",
                    existing.join(", "),
                    app.label
                )));
            }
            todo.push(app);
        }
        for app in scope.apps().filter(|a| complete.contains(a.label)) {
            for dep in app.depends_on {
                if !complete.contains(dep) {
                    return Err(StoreError::Migration(format!(
                        "inconsistent migration history: app '{}' is migrated but its \
                         dependency '{dep}' is not.",
                        app.label
                    )));
                }
            }
        }
        Ok(todo)
    }

    async fn begin(store: &Store) -> Result<Tx, StoreError> {
        Ok(match store.db() {
            Db::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

fn migrations_of(apps: &[&App]) -> Vec<(String, String)> {
    MIGRATIONS
        .iter()
        .filter(|(a, _)| apps.iter().any(|app| app.label == *a))
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect()
}

impl Store {
    fn migrate_scope(&self) -> Scope {
        Scope {
            custom_user_model: self.user_model().is_custom(),
        }
    }

    /// Migrations `migrate` would apply (`(app, name)`, in order); an error for a partial or
    /// inconsistent state. With a custom user model, only the apps Whisper creates count.
    pub async fn unapplied_migrations(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let plan = tx.plan(self.migrate_scope()).await;
        tx.rollback().await?;
        Ok(migrations_of(&plan?))
    }

    /// True when every migration is recorded (false also for partial states).
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        match self.unapplied_migrations().await {
            Ok(todo) => Ok(todo.is_empty()),
            Err(StoreError::Migration(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Brings the schema to Django 5.2's for the five apps, or the four that do not depend on
    /// a custom user model (see the module docs).
    pub async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        let mut tx = Tx::begin(self).await?;
        match migrate_in(&mut tx, self.migrate_scope()).await {
            Ok(report) => {
                tx.commit().await?;
                Ok(report)
            }
            Err(e) => {
                // Dropping the transaction rolls back too; an explicit rollback reports nothing new.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

async fn migrate_in(tx: &mut Tx, scope: Scope) -> Result<MigrateReport, StoreError> {
    let mut report = MigrateReport::default();
    let todo = tx.plan(scope).await?;
    if !tx.table_exists("django_migrations").await? {
        tx.run_section(scope, "django_migrations").await?;
    }
    for app in &todo {
        tx.run_section(scope, app.label).await?;
    }
    for (app, name) in migrations_of(&todo) {
        let now = Utc::now();
        on_tx!(tx, conn, dt => {
            sqlx::query("INSERT INTO django_migrations (app, name, applied) VALUES ($1, $2, $3)")
                .bind(&app)
                .bind(&name)
                .bind(dt(now))
                .execute(conn)
                .await?;
        });
        report.applied.push((app, name));
    }
    for (app_label, model, _) in scope.content_types() {
        let n = on_tx!(tx, conn, dt => {
            sqlx::query(
                "INSERT INTO django_content_type (app_label, model) SELECT $1, $2 \
                 WHERE NOT EXISTS (SELECT 1 FROM django_content_type \
                 WHERE app_label = $1 AND model = $2)",
            )
            .bind(*app_label)
            .bind(*model)
            .execute(conn)
            .await?
            .rows_affected()
        });
        report.content_types_created += n;
    }
    for (app_label, model, verbose) in scope.content_types() {
        for action in ACTIONS {
            let codename = format!("{action}_{model}");
            let name = format!("Can {action} {verbose}");
            let n = on_tx!(tx, conn, dt => {
                sqlx::query(
                    "INSERT INTO auth_permission (name, content_type_id, codename) \
                     SELECT $1, ct.id, $2 FROM django_content_type ct \
                     WHERE ct.app_label = $3 AND ct.model = $4 AND NOT EXISTS \
                     (SELECT 1 FROM auth_permission p \
                      WHERE p.content_type_id = ct.id AND p.codename = $2)",
                )
                .bind(&name)
                .bind(&codename)
                .bind(*app_label)
                .bind(*model)
                .execute(conn)
                .await?
                .rows_affected()
            });
            report.permissions_created += n;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTIONS: [&str; 6] = [
        "django_migrations",
        "contenttypes",
        "auth",
        "admin",
        "chat",
        "sessions",
    ];

    #[test]
    fn sections_split_statements() {
        let all: usize = SECTIONS.iter().map(|l| section(SQLITE_DDL, l).len()).sum();
        assert_eq!(all, 26);
        assert_eq!(section(SQLITE_DDL, "chat").len(), 1);
        let pg: usize = SECTIONS
            .iter()
            .map(|l| section(POSTGRES_DDL, l).len())
            .sum();
        assert_eq!(pg, 61);
        for stmt in section(POSTGRES_DDL, "auth") {
            assert!(stmt.ends_with(';'), "{stmt}");
            assert!(!stmt.contains("public."), "{stmt}");
        }
    }

    #[test]
    fn custom_user_model_scope() {
        let custom = Scope {
            custom_user_model: true,
        };
        let full = Scope {
            custom_user_model: false,
        };
        assert_eq!(
            app_labels(true),
            ["auth", "chat", "contenttypes", "sessions"]
        );
        assert_eq!(
            app_labels(false),
            ["admin", "auth", "chat", "contenttypes", "sessions"]
        );
        for (ddl, kept, dropped) in [(SQLITE_DDL, 8, 9), (POSTGRES_DDL, 19, 21)] {
            let all = full.statements(ddl, "auth");
            let ours = custom.statements(ddl, "auth");
            assert_eq!((ours.len(), all.len() - ours.len()), (kept, dropped));
            // What is left creates only the group and permission tables.
            for stmt in &ours {
                assert!(
                    ["auth_permission", "auth_group"]
                        .iter()
                        .any(|t| stmt.contains(t)),
                    "{stmt}"
                );
            }
            for stmt in all.iter().filter(|s| !ours.contains(s)) {
                assert!(AUTH_USER_TABLES.iter().any(|t| stmt.contains(t)), "{stmt}");
            }
        }
        let cts: Vec<(&str, &str)> = custom.content_types().map(|(a, m, _)| (*a, *m)).collect();
        assert_eq!(
            cts,
            [
                ("auth", "permission"),
                ("auth", "group"),
                ("contenttypes", "contenttype"),
                ("sessions", "session"),
                ("chat", "room")
            ]
        );
    }

    #[test]
    fn report_lines() {
        assert_eq!(
            MigrateReport::default().lines(),
            ["  No migrations to apply."]
        );
        let r = MigrateReport {
            applied: vec![("auth".into(), "0001_initial".into())],
            ..Default::default()
        };
        assert_eq!(r.lines(), ["  Applying auth.0001_initial... OK"]);
    }
}
