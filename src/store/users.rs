//! `auth_user`: lookups, password and `last_login` updates, and user creation exactly as
//! Django's `UserManager.create_user` / `create_superuser` write the row.

use std::fmt;

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// The columns of `auth_user` the server uses.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// The encoded hash (`pbkdf2_sha256$…`); never printed by `Debug`.
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
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
            .finish()
    }
}

/// A user to create; `password` is already encoded (`make_password` or an unusable one).
#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password", &"********")
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish()
    }
}

impl Store {
    /// The user with this primary key.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let user = dispatch!(self, pool => {
            sqlx::query_as::<_, User>(
                "SELECT CAST(id AS BIGINT) AS id, username, password, is_active, is_staff, \
                 is_superuser FROM auth_user WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(user)
    }

    /// The user with exactly this username (case-sensitive `=`, like Django's lookup).
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let user = dispatch!(self, pool => {
            sqlx::query_as::<_, User>(
                "SELECT CAST(id AS BIGINT) AS id, username, password, is_active, is_staff, \
                 is_superuser FROM auth_user WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
        });
        Ok(user)
    }

    /// Writes a new encoded password; touches only the `password` column (as Django's rehash
    /// on login does). Returns false when no such user exists.
    pub async fn set_password(&self, id: i64, encoded: &str) -> Result<bool, StoreError> {
        let done = dispatch!(self, pool => {
            sqlx::query("UPDATE auth_user SET password = $1 WHERE id = $2")
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
        let done = dispatch!(self, pool, dt => {
            sqlx::query("UPDATE auth_user SET last_login = $1 WHERE id = $2")
                .bind(dt(when))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts a user row as Django creates it: `last_login` NULL, empty first and last name,
    /// `is_active` true, `date_joined` now. A duplicate username gives
    /// [`StoreError::UsernameTaken`]. Returns the new id.
    pub async fn create_user(&self, new: &NewUser) -> Result<i64, StoreError> {
        let now = Utc::now();
        let result = dispatch!(self, pool, dt => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, \
                 last_name, email, is_staff, is_active, date_joined) \
                 VALUES ($1, NULL, $2, $3, '', '', $4, $5, $6, $7) RETURNING CAST(id AS BIGINT)",
            )
            .bind(&new.password)
            .bind(new.is_superuser)
            .bind(&new.username)
            .bind(&new.email)
            .bind(new.is_staff)
            .bind(true)
            .bind(dt(now))
            .fetch_one(pool)
            .await
        });
        match result {
            Ok(id) => Ok(id),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UsernameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Number of rows in `auth_user`.
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let n = dispatch!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM auth_user")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }
}
