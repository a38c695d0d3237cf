//! Django's session for one request: load from the cookie through the session engine
//! ([`crate::store::SessionStore`], which owns every engine's storage), resolve the user like
//! `django.contrib.auth.get_user` (django-internals §5.3), log in and out like
//! `login()`/`logout()` (§5.4, §5.5), and write the `Set-Cookie` the middleware would (§4.2).

use chrono::{DateTime, Utc};

use crate::django::cookies::{self, CookieOptions};
use crate::django::sessions::{self, AuthHashCheck, SessionData};
use crate::store::{StoreError, User};
use crate::web::AppState;

/// The request's session, with what must happen to its cookie at the end.
pub struct Session {
    /// The stored session's key; `None` = nothing stored yet (or flushed).
    key: Option<String>,
    pub data: SessionData,
    had_cookie: bool,
    modified: bool,
}

impl Session {
    /// Reads the session named by the request's cookie. Missing, expired, tampered or
    /// undecodable sessions are empty (Django's behaviour); only storage trouble is an error.
    pub async fn load(
        app: &AppState,
        cookie_headers: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Session, StoreError> {
        let value = cookies::get(
            cookie_headers.iter().copied(),
            &app.settings.session_cookie_name,
        );
        let mut session = Session {
            key: None,
            data: SessionData::default(),
            had_cookie: value.is_some(),
            modified: false,
        };
        if let Some(value) = value {
            let loaded = app.sessions.load(&value, now).await?;
            session.key = loaded.key;
            session.data = loaded.data;
        }
        Ok(session)
    }

    /// The stored session's key (`None` for signed cookies, or when nothing is stored).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// `get_user(request)` for HTTP: the authenticated user, or `None`. A wrong auth hash
    /// flushes the session; a hash made with a fallback key cycles the key and stores the
    /// current hash (django-internals §5.3).
    pub async fn user(&mut self, app: &AppState) -> Result<Option<User>, StoreError> {
        let (user, check) = resolve_user(app, &self.data).await?;
        match (user, check) {
            (Some(user), AuthHashCheck::Current) => Ok(Some(user)),
            (Some(user), AuthHashCheck::Fallback) => {
                self.cycle_key(app).await?;
                let hash = sessions::session_auth_hash(&user.password, app.settings.secret());
                self.data.set_auth_hash(&hash);
                self.modified = true;
                Ok(Some(user))
            }
            (Some(_), AuthHashCheck::Mismatch) => {
                self.flush(app).await?;
                Ok(None)
            }
            (None, _) => Ok(None),
        }
    }

    /// `login(request, user)` (django-internals §5.4); the backend stored is the first of
    /// `AUTHENTICATION_BACKENDS`, the one Django's `authenticate` would have tried first.
    pub async fn login(&mut self, app: &AppState, user: &User) -> Result<(), StoreError> {
        let hash = sessions::session_auth_hash(&user.password, app.settings.secret());
        if let Some(current) = self.data.user_id() {
            let same_hash = self.data.auth_hash().is_some_and(|h| {
                crate::django::crypto::constant_time_eq(h.as_bytes(), hash.as_bytes())
            });
            if current != user.id || !same_hash {
                self.flush(app).await?;
            }
        } else {
            self.cycle_key(app).await?;
        }
        let backend = app.settings.user_model.login_backend();
        self.data.set_login_with(user.id, backend, &hash);
        self.modified = true;
        Ok(())
    }

    /// `session.flush()`: forget the data, delete the stored session (row and/or cache
    /// entry), drop the key.
    pub async fn flush(&mut self, app: &AppState) -> Result<(), StoreError> {
        self.data = SessionData::default();
        if let Some(key) = self.key.take() {
            app.sessions.delete(&key).await?;
        }
        self.modified = true;
        Ok(())
    }

    /// `cycle_key()`: same data under a new key; the old session (row and/or cache entry) is
    /// deleted (the new one is written by [`Session::finish`]).
    async fn cycle_key(&mut self, app: &AppState) -> Result<(), StoreError> {
        if let Some(key) = self.key.take() {
            app.sessions.delete(&key).await?;
        }
        self.modified = true;
        Ok(())
    }

    /// Saves a modified session and returns the `Set-Cookie` header value to send, if any
    /// (SessionMiddleware.process_response, django-internals §4.2).
    pub async fn finish(
        self,
        app: &AppState,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let settings = &app.settings;
        if self.data.is_empty() {
            // `session.is_empty()`: no row (missing, expired, flushed) and no data. A request
            // that carried the cookie gets it deleted, modified or not.
            if self.had_cookie && self.key.is_none() {
                return Ok(Some(cookies::delete_cookie(
                    &settings.session_cookie_name,
                    settings.session_cookie_domain.as_deref(),
                    settings.session_cookie_secure,
                )));
            }
            return Ok(None);
        }
        if !self.modified {
            return Ok(None);
        }
        let value = app
            .sessions
            .save(self.key.as_deref(), &self.data, now)
            .await?;
        let age = settings.session_cookie_age;
        let opts = CookieOptions {
            max_age: Some(age),
            domain: settings.session_cookie_domain.as_deref(),
            secure: settings.session_cookie_secure,
            http_only: true,
        };
        Ok(Some(cookies::set_cookie(
            &settings.session_cookie_name,
            &value,
            &opts,
            now,
        )))
    }
}

/// The user a session names and how its auth hash compares, without side effects. Anonymous
/// (`None`) when keys are missing, the backend is not in `AUTHENTICATION_BACKENDS` (every
/// listed backend resolves users as ModelBackend does), the user is gone or inactive (§5.3;
/// an inactive user's session is not flushed).
pub async fn resolve_user(
    app: &AppState,
    data: &SessionData,
) -> Result<(Option<User>, AuthHashCheck), StoreError> {
    let (Some(id), Some(backend)) = (data.user_id(), data.backend()) else {
        return Ok((None, AuthHashCheck::Mismatch));
    };
    if !app.settings.user_model.accepts_backend(&backend) {
        return Ok((None, AuthHashCheck::Mismatch));
    }
    let Some(user) = app.store.user_by_id(id).await? else {
        return Ok((None, AuthHashCheck::Mismatch));
    };
    if !user.is_active {
        return Ok((None, AuthHashCheck::Mismatch));
    }
    let stored = data.auth_hash().unwrap_or_default();
    let check = sessions::check_auth_hash(
        &stored,
        &user.password,
        app.settings.secret(),
        &app.settings.fallback_secrets(),
    );
    if check != AuthHashCheck::Mismatch {
        // The request's access-log line names its user (`web::access_log`).
        tracing::Span::current().record("user_id", user.id);
    }
    Ok((Some(user), check))
}
