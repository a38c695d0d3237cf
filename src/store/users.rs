//! The user table (`auth_user`, or a custom `AUTH_USER_MODEL`'s, see `user_table`): lookups,
//! password and `last_login` updates, and user creation as Django's `UserManager.create_user` /
//! `create_superuser` write the row.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use tokio::sync::OnceCell;

use crate::config::UserModel;

use super::user_table::{Source, UserTable};
use super::{Store, StoreError};

/// The columns of the user table the server uses.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    /// `get_username()`: the `USERNAME_FIELD` column (`username` for `auth.User`). What chat
    /// events, pages and logs show.
    pub username: String,
    /// The encoded hash (`pbkdf2_sha256$…`); never printed by `Debug`.
    pub password: String,
    /// True when the table has no `is_active` column (AbstractBaseUser's class attribute).
    pub is_active: bool,
    /// False when the table has no `is_staff` column.
    pub is_staff: bool,
    /// False when the table has no `is_superuser` column.
    pub is_superuser: bool,
    /// The `name` column of a custom user model that has one (the Whisper fork's `users.User`).
    pub name: Option<String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"********")
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .field("name", &self.name)
            .finish()
    }
}

/// A user to create; `password` is already encoded (`make_password` or an unusable one).
#[derive(Clone, Default)]
pub struct NewUser {
    /// The `USERNAME_FIELD` value (`get_username()`).
    pub username: String,
    /// The `email` column (unused when `email` is `USERNAME_FIELD` or the table has none).
    pub email: String,
    /// The `username` column when `USERNAME_FIELD` is another column (an AbstractUser that
    /// logs in by email); `None` stores Django's default for it, `''`.
    pub username_column: Option<String>,
    pub password: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("username_column", &self.username_column)
            .field("password", &"********")
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish()
    }
}

/// The configured user model and, once known, its table (read from the database on first use
/// for a custom model; an error is not kept, so a table created later is found then).
pub(crate) struct UserSource {
    pub(crate) model: UserModel,
    table: OnceCell<UserTable>,
}

impl UserSource {
    pub(crate) fn new(model: &UserModel) -> Arc<UserSource> {
        let table = if model.is_custom() {
            OnceCell::new()
        } else {
            OnceCell::new_with(Some(UserTable::auth_user()))
        };
        Arc::new(UserSource {
            model: model.clone(),
            table,
        })
    }
}

/// A bind value of a new user's row.
enum Bind<'a> {
    Text(&'a str),
    Bool(bool),
    Now,
}

impl Store {
    /// The same database with `model` as the user model (`Store::connect` starts with
    /// Django's `auth.User`). A custom model's table is read on first use, see
    /// [`Store::user_table`].
    pub fn with_user_model(mut self, model: &UserModel) -> Store {
        self.users = UserSource::new(model);
        self
    }

    /// The configured user model.
    pub fn user_model(&self) -> &UserModel {
        &self.users.model
    }

    /// The user table, read from the catalog on first use. A missing or unusable table is a
    /// [`StoreError::UserModel`] that says what to do.
    pub async fn user_table(&self) -> Result<&UserTable, StoreError> {
        self.users
            .table
            .get_or_try_init(|| self.introspect_users(&self.users.model))
            .await
    }

    async fn fetch_user(&self, sql: &Arc<str>, key: Key<'_>) -> Result<Option<User>, StoreError> {
        let user = dispatch!(self, pool => {
            let q = sqlx::query_as::<_, User>(AssertSqlSafe(sql.clone()));
            let q = match key {
                Key::Id(id) => q.bind(id),
                Key::Text(text) => q.bind(text),
            };
            q.fetch_optional(pool).await?
        });
        Ok(user)
    }

    /// The user with this primary key.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = self.user_table().await?.by_id.clone();
        let flights = self.flights.clone();
        flights
            .users
            .read(&id, || self.fetch_user(&sql, Key::Id(id)))
            .await
    }

    /// The users with these primary keys, in statements of at most 500 ids (the live
    /// revocation check's one query per interval).
    pub async fn users_by_ids(&self, ids: &[i64]) -> Result<Vec<User>, StoreError> {
        let table = self.user_table().await?;
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("{} WHERE id IN ({})", table.select, marks.join(", "));
            let found = dispatch!(self, pool => {
                let mut q = sqlx::query_as::<_, User>(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(pool).await?
            });
            users.extend(found);
        }
        Ok(users)
    }

    /// The user whose `USERNAME_FIELD` is exactly this (`=`, case-sensitive, as ModelBackend's
    /// `get_by_natural_key`).
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = self.user_table().await?.by_username.clone();
        self.fetch_user(&sql, Key::Text(username)).await
    }

    /// Whether a user has exactly `value` in `column` (false when the table has no such
    /// column).
    pub async fn user_exists_with(&self, column: &str, value: &str) -> Result<bool, StoreError> {
        let Some(sql) = self.user_table().await?.count_where(column) else {
            return Ok(false);
        };
        let n = dispatch!(self, pool => {
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .bind(value)
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    /// Writes a new encoded password; touches only the `password` column (as Django's rehash
    /// on login does). Returns false when no such user exists.
    pub async fn set_password(&self, id: i64, encoded: &str) -> Result<bool, StoreError> {
        let sql = self.user_table().await?.set_password.clone();
        let done = dispatch!(self, pool => {
            sqlx::query(AssertSqlSafe(sql))
                .bind(encoded)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Sets `last_login` (Django's `update_last_login` signal handler).
    pub async fn set_last_login(&self, id: i64, when: DateTime<Utc>) -> Result<bool, StoreError> {
        let sql = self.user_table().await?.set_last_login.clone();
        let done = dispatch!(self, pool, dt => {
            sqlx::query(AssertSqlSafe(sql))
                .bind(dt(when))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts a user row as Django creates it: `last_login` NULL, empty first and last name
    /// (and any other required text column, such as a custom model's `name`), `is_active` true,
    /// `date_joined` now. A duplicate username gives [`StoreError::UsernameTaken`]; a required
    /// column Whisper cannot fill gives [`StoreError::UserModel`]. Returns the new id.
    pub async fn create_user(&self, new: &NewUser) -> Result<i64, StoreError> {
        let (sql, sources) = self
            .user_table()
            .await?
            .insert
            .clone()
            .map_err(StoreError::UserModel)?;
        let binds: Vec<Bind> = sources
            .iter()
            .map(|source| match source {
                Source::Password => Bind::Text(&new.password),
                Source::Identifier => Bind::Text(&new.username),
                Source::UsernameColumn => Bind::Text(new.username_column.as_deref().unwrap_or("")),
                Source::Email => Bind::Text(&new.email),
                Source::IsStaff => Bind::Bool(new.is_staff),
                Source::IsSuperuser => Bind::Bool(new.is_superuser),
                Source::True => Bind::Bool(true),
                Source::Now => Bind::Now,
                // Written as literals in the statement.
                Source::Null | Source::EmptyText => Bind::Text(""),
            })
            .collect();
        let now = Utc::now();
        let result = dispatch!(self, pool, dt => {
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            for bind in &binds {
                q = match bind {
                    Bind::Text(s) => q.bind(*s),
                    Bind::Bool(b) => q.bind(*b),
                    Bind::Now => q.bind(dt(now)),
                };
            }
            q.fetch_one(pool).await
        });
        match result {
            Ok(id) => Ok(id),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UsernameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Number of rows in the user table.
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let sql = self.user_table().await?.count.clone();
        let n = dispatch!(self, pool => {
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }
}

/// The key of a user lookup.
#[derive(Clone, Copy)]
enum Key<'a> {
    Id(i64),
    Text(&'a str),
}
