//! `CsrfViewMiddleware` for one request (django-internals §6): the secret from the
//! `csrftoken` cookie, masked tokens for forms (`get_token`), rotation at login, the request
//! check for unsafe methods, and the cookie to send back.

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};

use crate::django::cookies::{self, CookieOptions};
use crate::django::csrf::{self, CsrfRejection};
use crate::web::{AppState, security};

/// CSRF_COOKIE_AGE: 52 weeks.
const CSRF_COOKIE_AGE: u64 = 31_449_600;

pub struct Csrf {
    /// The raw cookie value, as sent.
    cookie: Option<String>,
    /// The secret in force (from a well-formed cookie, or newly made).
    secret: Option<String>,
    /// Send the cookie back (token used, rotated, or the cookie was malformed).
    send_cookie: bool,
}

impl Csrf {
    pub fn from_headers(app: &AppState, headers: &HeaderMap) -> Csrf {
        let values: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let cookie = cookies::get(values, &app.settings.csrf_cookie_name);
        let secret = cookie
            .as_deref()
            .and_then(|c| csrf::secret_from_cookie(c).ok());
        Csrf {
            send_cookie: cookie.is_some() && secret.is_none(),
            cookie,
            secret,
        }
    }

    /// `get_token()`: a freshly masked token for a form; creates the secret if needed.
    pub fn token(&mut self) -> String {
        let secret = self.secret.get_or_insert_with(csrf::new_secret);
        self.send_cookie = true;
        csrf::mask_cipher_secret(secret)
    }

    /// `rotate_token()`: a new secret (login does this).
    pub fn rotate(&mut self) {
        self.secret = Some(csrf::new_secret());
        self.send_cookie = true;
    }

    /// The check for an unsafe method: Origin (and Referer on HTTPS), then the token from the
    /// form field or the `X-CSRFToken` header against the cookie's secret.
    pub fn check(
        &self,
        app: &AppState,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), CsrfRejection> {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST).unwrap_or("");
        csrf::check_origin(
            text(header::ORIGIN),
            text(header::REFERER),
            security::is_secure(app, headers),
            host,
            &app.settings.csrf_trusted_origins,
            None,
        )?;
        let header_token = headers.get("x-csrftoken").and_then(|v| v.to_str().ok());
        csrf::check_token(self.cookie.as_deref(), form_token, header_token)
    }

    /// The `Set-Cookie` value to send, if any.
    pub fn finish(&self, app: &AppState, now: DateTime<Utc>) -> Option<String> {
        if !self.send_cookie {
            return None;
        }
        let secret = self.secret.as_deref()?;
        let opts = CookieOptions {
            max_age: Some(CSRF_COOKIE_AGE),
            domain: None,
            secure: app.settings.csrf_cookie_secure,
            http_only: false,
        };
        Some(cookies::set_cookie(
            &app.settings.csrf_cookie_name,
            secret,
            &opts,
            now,
        ))
    }
}
