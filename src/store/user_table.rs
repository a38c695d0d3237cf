//! The user table the store works on: Django's `auth_user` (its schema is known, nothing is
//! read), or a custom `AUTH_USER_MODEL`'s table, whose columns are read from the database
//! catalog (SQLite `pragma_table_info`, PostgreSQL `pg_attribute`) the first time users are
//! needed. The SQL for every user query is built once here, with quoted identifiers.
//!
//! Required columns: an integer primary key `id`, `password`, `last_login` and the
//! `USERNAME_FIELD` column (text). Optional ones take the class defaults Django would use when
//! the model lacks the field: `is_active` true (`AbstractBaseUser.is_active`), `is_staff` and
//! `is_superuser` false (AbstractBaseUser has neither), `name` absent (the Whisper fork's
//! `users.User` display name).

use std::sync::Arc;

use crate::config::UserModel;
use crate::config::user_model::is_plain_identifier;

use super::{Db, Store, StoreError};

/// What a column holds, as far as the user queries care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Integer,
    Bool,
    DateTime,
    Other(String),
}

/// One column of the user table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub kind: Kind,
    /// The declared type, for messages.
    pub declared: String,
    /// `varchar(n)` / `char(n)`: n.
    pub max_length: Option<usize>,
    pub not_null: bool,
    /// The database fills it when omitted (a default, an identity, SQLite's rowid alias).
    pub has_default: bool,
    pub primary_key: bool,
}

impl Column {
    fn new(name: &str, kind: Kind, max_length: Option<usize>, not_null: bool) -> Column {
        let declared = match (&kind, max_length) {
            (Kind::Text, Some(n)) => format!("varchar({n})"),
            (kind, _) => format!("{kind:?}").to_lowercase(),
        };
        Column {
            name: name.to_string(),
            kind,
            declared,
            max_length,
            not_null,
            has_default: false,
            primary_key: false,
        }
    }
}

/// Where one value of a new user's row comes from (`Store::create_user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Password,
    /// The `USERNAME_FIELD` column.
    Identifier,
    /// The `username` column when `USERNAME_FIELD` is another column.
    UsernameColumn,
    Email,
    IsStaff,
    IsSuperuser,
    True,
    Now,
    Null,
    /// `''`: Django's default for a `CharField`/`TextField` without one.
    EmptyText,
}

/// The resolved user table and its queries.
#[derive(Debug)]
pub struct UserTable {
    pub(crate) table: String,
    pub(crate) username_field: String,
    pub(crate) columns: Vec<Column>,
    /// `SELECT … FROM table` of a [`User`](super::User), without its `WHERE`.
    pub(crate) select: Arc<str>,
    pub(crate) by_id: Arc<str>,
    pub(crate) by_username: Arc<str>,
    pub(crate) set_password: Arc<str>,
    pub(crate) set_last_login: Arc<str>,
    pub(crate) count: Arc<str>,
    /// The insert statement and where each `$n` comes from, or why Whisper cannot insert.
    pub(crate) insert: Result<(Arc<str>, Vec<Source>), String>,
}

/// `"name"`: callers pass only checked plain identifiers, so no quote can occur inside.
pub(crate) fn quote(name: &str) -> String {
    debug_assert!(is_plain_identifier(name), "{name}");
    format!("\"{name}\"")
}

impl UserTable {
    /// The table's name (unquoted).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `USERNAME_FIELD`.
    pub fn username_field(&self) -> &str {
        &self.username_field
    }

    /// The login field's `max_length` (`varchar(n)`), `None` for unbounded text.
    pub fn username_max_length(&self) -> Option<usize> {
        self.column_max_length(&self.username_field)
    }

    /// A column's `max_length` (`varchar(n)`), `None` for unbounded text or no such column.
    pub fn column_max_length(&self, name: &str) -> Option<usize> {
        self.column(name).and_then(|c| c.max_length)
    }

    /// The table has this column.
    pub fn has_column(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Django's `auth_user` (5.2's schema, the same since 3.1), without asking the database.
    pub fn auth_user() -> UserTable {
        let text = |name, n| Column::new(name, Kind::Text, Some(n), true);
        let flag = |name| Column::new(name, Kind::Bool, None, true);
        let mut id = Column::new("id", Kind::Integer, None, true);
        id.has_default = true;
        id.primary_key = true;
        let columns = vec![
            id,
            text("password", 128),
            Column::new("last_login", Kind::DateTime, None, false),
            flag("is_superuser"),
            text("username", 150),
            text("first_name", 150),
            text("last_name", 150),
            text("email", 254),
            flag("is_staff"),
            flag("is_active"),
            Column::new("date_joined", Kind::DateTime, None, true),
        ];
        UserTable::build(&UserModel::default(), columns).expect("auth_user's known schema")
    }

    /// Checks the columns and builds the queries.
    pub(crate) fn build(model: &UserModel, columns: Vec<Column>) -> Result<UserTable, String> {
        let table = &model.table;
        let what = format!("the user table {table} (AUTH_USER_MODEL {})", model.label);
        if columns.is_empty() {
            return Err(missing_table(model));
        }
        let keys: Vec<&Column> = columns.iter().filter(|c| c.primary_key).collect();
        match keys.as_slice() {
            [key] if key.name == "id" && key.kind == Kind::Integer => {}
            [key] => {
                return Err(format!(
                    "{what} has the primary key {} ({}); Whisper supports integer primary keys \
                     named id (Django's AutoField, BigAutoField or SmallAutoField).",
                    key.name, key.declared
                ));
            }
            _ => {
                return Err(format!(
                    "{what} has no single-column primary key; Whisper supports integer primary \
                     keys named id (Django's AutoField, BigAutoField or SmallAutoField)."
                ));
            }
        }
        let find = |name: &str| columns.iter().find(|c| c.name == name);
        let require = |name: &str, kind: Kind, role: &str| -> Result<(), String> {
            match find(name) {
                None => Err(format!(
                    "{what} has no {name} column ({role}); is it the table of an \
                     AbstractBaseUser subclass? Check AUTH_USER_MODEL, AUTH_USER_TABLE and \
                     USERNAME_FIELD."
                )),
                Some(c) if c.kind != kind => Err(format!(
                    "{what}: column {name} ({role}) is {}, expected {}.",
                    c.declared,
                    format!("{kind:?}").to_lowercase()
                )),
                Some(_) => Ok(()),
            }
        };
        require("password", Kind::Text, "the password hash")?;
        require("last_login", Kind::DateTime, "AbstractBaseUser.last_login")?;
        require(
            &model.username_field,
            Kind::Text,
            "USERNAME_FIELD, the login name",
        )?;
        for flag in ["is_active", "is_staff", "is_superuser"] {
            if find(flag).is_some() {
                require(flag, Kind::Bool, "a user flag")?;
            }
        }
        if find("name").is_some() {
            require("name", Kind::Text, "the display name")?;
        }

        let q = quote;
        let or = |name: &str, fallback: &str| match find(name) {
            Some(_) => q(name),
            None => fallback.to_string(),
        };
        let select = format!(
            "SELECT CAST({id} AS BIGINT) AS id, CAST({uf} AS TEXT) AS username, {pw} AS password, \
             {active} AS is_active, {staff} AS is_staff, {superuser} AS is_superuser, \
             {name} AS name FROM {t}",
            id = q("id"),
            uf = q(&model.username_field),
            pw = q("password"),
            active = or("is_active", "TRUE"),
            staff = or("is_staff", "FALSE"),
            superuser = or("is_superuser", "FALSE"),
            name = match find("name") {
                Some(_) => format!("CAST({} AS TEXT)", q("name")),
                None => "CAST(NULL AS TEXT)".to_string(),
            },
            t = q(table),
        );
        let sql = |s: String| -> Arc<str> { s.into() };
        Ok(UserTable {
            table: table.clone(),
            username_field: model.username_field.clone(),
            by_id: sql(format!("{select} WHERE {} = $1", q("id"))),
            select: sql(select.clone()),
            by_username: sql(format!("{select} WHERE {} = $1", q(&model.username_field))),
            set_password: sql(format!(
                "UPDATE {} SET {} = $1 WHERE {} = $2",
                q(table),
                q("password"),
                q("id")
            )),
            set_last_login: sql(format!(
                "UPDATE {} SET {} = $1 WHERE {} = $2",
                q(table),
                q("last_login"),
                q("id")
            )),
            count: sql(format!("SELECT COUNT(*) FROM {}", q(table))),
            insert: insert_plan(model, &columns, &what),
            columns,
        })
    }

    /// `SELECT COUNT(*) … WHERE "column" = $1`, for a column of this table.
    pub(crate) fn count_where(&self, column: &str) -> Option<Arc<str>> {
        self.column(column)?;
        Some(
            format!(
                "SELECT COUNT(*) FROM {} WHERE {} = $1",
                quote(&self.table),
                quote(column)
            )
            .into(),
        )
    }
}

/// The error for a table that is not there.
fn missing_table(model: &UserModel) -> String {
    if model.is_custom() {
        format!(
            "the user table {} of AUTH_USER_MODEL {} does not exist. The Django project owns \
             that model: run its `python manage.py migrate` (Whisper's migrate creates only the \
             apps that do not depend on the user model).",
            model.table, model.label
        )
    } else {
        "the table auth_user does not exist: run ./manage migrate".to_string()
    }
}

/// The columns of a new user's row, as Django's `UserManager.create_user` fills them for an
/// AbstractUser-like model: every column that is NOT NULL without a database default gets a
/// value; one Whisper cannot know is an error that points to Django's `createsuperuser`.
fn insert_plan(
    model: &UserModel,
    columns: &[Column],
    what: &str,
) -> Result<(Arc<str>, Vec<Source>), String> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut sources = Vec::new();
    let mut unknown = Vec::new();
    for c in columns {
        let source = if c.primary_key {
            if c.has_default {
                continue;
            }
            unknown.push(format!("{} (a primary key without a default)", c.name));
            continue;
        } else if c.name == model.username_field {
            Source::Identifier
        } else {
            match (c.name.as_str(), &c.kind) {
                ("password", _) => Source::Password,
                ("last_login", _) => Source::Null,
                ("username", Kind::Text) => Source::UsernameColumn,
                ("email", Kind::Text) => Source::Email,
                ("is_staff", Kind::Bool) => Source::IsStaff,
                ("is_superuser", Kind::Bool) => Source::IsSuperuser,
                ("is_active", Kind::Bool) => Source::True,
                ("date_joined", Kind::DateTime) => Source::Now,
                _ if !c.not_null || c.has_default => continue,
                // Django's default for a CharField/TextField without one (e.g. `name`).
                (_, Kind::Text) => Source::EmptyText,
                _ => {
                    unknown.push(format!("{} ({})", c.name, c.declared));
                    continue;
                }
            }
        };
        names.push(quote(&c.name));
        match source {
            Source::Null => values.push("NULL".to_string()),
            Source::EmptyText => values.push("''".to_string()),
            _ => {
                sources.push(source);
                values.push(format!("${}", sources.len()));
            }
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "{what} has required column(s) Whisper cannot fill: {}. Create users with the Django \
             project's `python manage.py createsuperuser` instead.",
            unknown.join(", ")
        ));
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING CAST({} AS BIGINT)",
        quote(&model.table),
        names.join(", "),
        values.join(", "),
        quote("id")
    );
    Ok((sql.into(), sources))
}

/// SQLite's declared type → kind and length (type affinity rules, plus Django's `bool` and
/// `datetime`).
fn sqlite_kind(declared: &str) -> (Kind, Option<usize>) {
    let lower = declared.to_ascii_lowercase();
    let length = lower
        .split_once('(')
        .and_then(|(_, rest)| rest.trim_end_matches(')').trim().parse().ok());
    let kind = if lower.starts_with("bool") {
        Kind::Bool
    } else if lower.contains("int") {
        Kind::Integer
    } else if lower.contains("char") || lower.contains("clob") || lower.contains("text") {
        Kind::Text
    } else if lower.starts_with("datetime") || lower.starts_with("timestamp") {
        Kind::DateTime
    } else {
        Kind::Other(declared.to_string())
    };
    (kind, length)
}

/// PostgreSQL's type name → kind.
fn pg_kind(typname: &str) -> Kind {
    match typname {
        "varchar" | "text" | "bpchar" | "citext" => Kind::Text,
        "int2" | "int4" | "int8" => Kind::Integer,
        "bool" => Kind::Bool,
        "timestamptz" | "timestamp" => Kind::DateTime,
        other => Kind::Other(other.to_string()),
    }
}

type SqliteColumn = (String, String, i64, Option<String>, i64);
type PgColumn = (String, String, String, Option<i32>, bool, bool, bool);

impl Store {
    /// Reads the columns of `model`'s table and builds its [`UserTable`].
    pub(crate) async fn introspect_users(
        &self,
        model: &UserModel,
    ) -> Result<UserTable, StoreError> {
        let columns = match self.db() {
            Db::Sqlite(pool) => {
                let rows: Vec<SqliteColumn> = sqlx::query_as(
                    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1)",
                )
                .bind(&model.table)
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|(name, declared, not_null, default, pk)| {
                        let (kind, max_length) = sqlite_kind(&declared);
                        // `INTEGER PRIMARY KEY` is the rowid: SQLite numbers it.
                        let rowid = pk > 0 && declared.eq_ignore_ascii_case("integer");
                        Column {
                            name,
                            kind,
                            declared,
                            max_length,
                            not_null: not_null != 0 || pk > 0,
                            has_default: default.is_some() || rowid,
                            primary_key: pk > 0,
                        }
                    })
                    .collect()
            }
            Db::Postgres(pool) => {
                let rows: Vec<PgColumn> = sqlx::query_as(
                    "SELECT a.attname::text, t.typname::text, \
                     pg_catalog.format_type(a.atttypid, a.atttypmod), \
                     CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod > 4 \
                          THEN a.atttypmod - 4 END, \
                     a.attnotnull, (a.atthasdef OR a.attidentity <> ''), \
                     EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid \
                             AND i.indisprimary AND a.attnum = ANY (i.indkey)) \
                     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                     WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 \
                     AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(&model.table)
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(
                        |(name, typname, declared, max_length, not_null, has_default, pk)| Column {
                            name,
                            kind: pg_kind(&typname),
                            declared,
                            max_length: max_length.and_then(|n| usize::try_from(n).ok()),
                            not_null,
                            has_default,
                            primary_key: pk,
                        },
                    )
                    .collect()
            }
        };
        UserTable::build(model, columns).map_err(StoreError::UserModel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(table: &str, field: &str) -> UserModel {
        UserModel {
            label: "users.User".into(),
            app_label: "users".into(),
            model_name: "user".into(),
            table: table.into(),
            username_field: field.into(),
            ..UserModel::default()
        }
    }

    #[test]
    fn auth_user_queries() {
        let t = UserTable::auth_user();
        assert_eq!(
            &*t.by_id,
            "SELECT CAST(\"id\" AS BIGINT) AS id, CAST(\"username\" AS TEXT) AS username, \
             \"password\" AS password, \"is_active\" AS is_active, \"is_staff\" AS is_staff, \
             \"is_superuser\" AS is_superuser, CAST(NULL AS TEXT) AS name FROM \"auth_user\" \
             WHERE \"id\" = $1"
        );
        let (insert, sources) = t.insert.as_ref().unwrap();
        assert_eq!(
            &**insert,
            "INSERT INTO \"auth_user\" (\"password\", \"last_login\", \"is_superuser\", \
             \"username\", \"first_name\", \"last_name\", \"email\", \"is_staff\", \
             \"is_active\", \"date_joined\") VALUES ($1, NULL, $2, $3, '', '', $4, $5, $6, $7) \
             RETURNING CAST(\"id\" AS BIGINT)"
        );
        assert_eq!(
            sources,
            &[
                Source::Password,
                Source::IsSuperuser,
                Source::Identifier,
                Source::Email,
                Source::IsStaff,
                Source::True,
                Source::Now
            ]
        );
        assert_eq!(t.username_max_length(), Some(150));
    }

    #[test]
    fn abstract_base_user_defaults() {
        // An AbstractBaseUser subclass: no flags, login by email, a required `name`.
        let mut id = Column::new("id", Kind::Integer, None, true);
        id.primary_key = true;
        id.has_default = true;
        let columns = vec![
            id,
            Column::new("password", Kind::Text, Some(128), true),
            Column::new("last_login", Kind::DateTime, None, false),
            Column::new("email", Kind::Text, Some(254), true),
            Column::new("name", Kind::Text, Some(255), true),
        ];
        let t = UserTable::build(&model("people", "email"), columns).unwrap();
        assert!(
            t.by_username
                .contains("TRUE AS is_active, FALSE AS is_staff")
        );
        assert!(
            t.by_username
                .ends_with("FROM \"people\" WHERE \"email\" = $1")
        );
        assert!(t.by_username.contains("CAST(\"name\" AS TEXT) AS name"));
        let (insert, sources) = t.insert.as_ref().unwrap();
        assert!(insert.contains("VALUES ($1, NULL, $2, '')"), "{insert}");
        assert_eq!(sources, &[Source::Password, Source::Identifier]);
    }

    #[test]
    fn refusals_say_why() {
        let text = |n: &str| Column::new(n, Kind::Text, Some(100), true);
        let base = || {
            vec![
                text("password"),
                Column::new("last_login", Kind::DateTime, None, false),
                text("username"),
            ]
        };
        let err = UserTable::build(&model("users_user", "username"), vec![]).unwrap_err();
        assert!(
            err.contains("manage.py migrate") && err.contains("users_user"),
            "{err}"
        );

        let mut uuid = Column::new("id", Kind::Other("uuid".into()), None, true);
        uuid.primary_key = true;
        let mut cols = base();
        cols.insert(0, uuid);
        let err = UserTable::build(&model("t", "username"), cols).unwrap_err();
        assert!(err.contains("integer primary keys"), "{err}");

        let mut id = Column::new("id", Kind::Integer, None, true);
        id.primary_key = true;
        id.has_default = true;
        let mut cols = base();
        cols.insert(0, id.clone());
        let err = UserTable::build(&model("t", "email"), cols.clone()).unwrap_err();
        assert!(err.contains("no email column"), "{err}");

        cols.push(Column::new(
            "birthday",
            Kind::Other("date".into()),
            None,
            true,
        ));
        let t = UserTable::build(&model("t", "username"), cols).unwrap();
        let err = t.insert.unwrap_err();
        assert!(
            err.contains("birthday") && err.contains("createsuperuser"),
            "{err}"
        );

        let mut cols = base();
        cols.insert(0, id);
        cols.push(Column::new("is_staff", Kind::Text, None, true));
        let err = UserTable::build(&model("t", "username"), cols).unwrap_err();
        assert!(err.contains("is_staff"), "{err}");
    }

    #[test]
    fn sqlite_types() {
        assert_eq!(sqlite_kind("varchar(150)"), (Kind::Text, Some(150)));
        assert_eq!(sqlite_kind("text"), (Kind::Text, None));
        assert_eq!(sqlite_kind("bool"), (Kind::Bool, None));
        assert_eq!(sqlite_kind("datetime"), (Kind::DateTime, None));
        assert_eq!(sqlite_kind("integer"), (Kind::Integer, None));
        assert_eq!(sqlite_kind("bigint"), (Kind::Integer, None));
        assert_eq!(sqlite_kind("char(32)"), (Kind::Text, Some(32)));
        assert_eq!(sqlite_kind("date").0, Kind::Other("date".into()));
    }
}
