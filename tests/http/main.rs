//! The HTTP side against the live server (spec `multichat-protocol.md` §3,
//! `django-internals.md` §4–§6, `django-vectors.json` → `http_flow`): pages, the login and
//! logout views, CSRF, session cookies and rows, `get_user` on every request, `ALLOWED_HOSTS`,
//! `APPEND_SLASH` and static files.
//!
//! Requests go through a reqwest client *without* a cookie store; every test passes the
//! `Cookie` header itself so `Set-Cookie` headers can be checked byte for byte.
//!
//! This file holds the shared HTTP and database helpers; the tests live in the topic modules.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod error_pages;
mod login_form;
mod login_outcomes;
mod metrics;
mod pages;
mod passwords;
mod session_lifecycle;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::{self, HeaderMap};
use sqlx::SqlitePool;

use common::*;
use whisper::django::csrf::{self as django_csrf, unmask};
use whisper::django::hashers::{self, DjangoVersion, HasherConfig};
use whisper::django::sessions::{self, SESSION_SALT, SIGNED_COOKIES_SALT};
use whisper::django::signing;
use whisper::store::Db;

const INVALID_LOGIN: &str =
    "Please enter a correct username and password. Note that both fields may be case-sensitive.";
const REQUIRED: &str = "This field is required.";
const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
/// What Django sends when a request's session is emptied (logout, failed auth hash).
const DELETE_SESSION: &str =
    "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax";
const SESSION_AGE: i64 = 1_209_600;
const CSRF_AGE: i64 = 31_449_600;

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

/// A client that keeps no cookies and follows no redirects.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A finished response, body read.
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    async fn from(response: reqwest::Response) -> Resp {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Resp {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// All values of a header joined with ", " (for `Vary`).
    fn header_joined(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location (status {})", self.status))
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    /// The one `Set-Cookie` header for `name`, if any (panics on duplicates).
    fn set_cookie(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        let found: Vec<&str> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.starts_with(&prefix))
            .collect();
        assert!(found.len() <= 1, "several Set-Cookie for {name}: {found:?}");
        found.first().copied()
    }

    /// The value of the `Set-Cookie` for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        let header = self.set_cookie(name)?;
        let first = header.split("; ").next().unwrap();
        Some(first[name.len() + 1..].to_string())
    }

    /// The masked token in the page's hidden `csrfmiddlewaretoken` input.
    fn form_token(&self) -> String {
        let marker = r#"<input type="hidden" name="csrfmiddlewaretoken" value=""#;
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrfmiddlewaretoken input in:\n{}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }
}

/// `name=value; name=value` for a `Cookie` header.
fn cookie_header(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn get(server: &TestServer, path: &str, cookies: &[(&str, &str)]) -> Resp {
    let mut request = raw_client().get(server.url(path));
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookie_header(cookies));
    }
    Resp::from(request.send().await.unwrap()).await
}

async fn post(
    server: &TestServer,
    path: &str,
    cookies: &[(&str, &str)],
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut request = raw_client().post(server.url(path)).form(fields);
    if !cookies.is_empty() {
        request = request.header(header::COOKIE, cookie_header(cookies));
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    Resp::from(request.send().await.unwrap()).await
}

/// GET the login page (carrying `cookies`): `(csrf secret from the cookie, masked form token)`.
async fn login_page(server: &TestServer, cookies: &[(&str, &str)]) -> (String, String) {
    let page = get(server, "/accounts/login/", cookies).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = page
        .cookie("csrftoken")
        .expect("csrftoken cookie on the login page");
    (secret, page.form_token())
}

/// The whole browser dance: GET the form, POST it with `fields` (plus the CSRF token) while
/// carrying the session cookie `session` if any. Returns the POST's response and the CSRF
/// secret it was made with.
async fn login_with(
    server: &TestServer,
    fields: &[(&str, &str)],
    session: Option<&str>,
) -> (Resp, String) {
    let (secret, token) = login_page(server, &[]).await;
    let mut cookies = vec![("csrftoken", secret.as_str())];
    if let Some(s) = session {
        cookies.push(("sessionid", s));
    }
    let mut all = fields.to_vec();
    all.push(("csrfmiddlewaretoken", token.as_str()));
    let resp = post(server, "/accounts/login/", &cookies, &all, &[]).await;
    (resp, secret)
}

async fn login(server: &TestServer, username: &str, password: &str, session: Option<&str>) -> Resp {
    login_with(
        server,
        &[("username", username), ("password", password)],
        session,
    )
    .await
    .0
}

/// Logs in successfully and returns the new `sessionid` value.
async fn login_ok(server: &TestServer, username: &str, password: &str) -> String {
    let resp = login(server, username, password, None).await;
    assert_eq!(
        resp.status, 302,
        "login of {username:?} failed:\n{}",
        resp.body
    );
    resp.cookie("sessionid")
        .expect("sessionid cookie after login")
}

/// Splits `name=value; expires=…; rest` into `(value, expires, rest)`.
fn split_cookie<'a>(header: &'a str, name: &str) -> (&'a str, DateTime<Utc>, &'a str) {
    let (first, tail) = header.split_once("; ").unwrap();
    let value = first
        .strip_prefix(&format!("{name}="))
        .unwrap_or_else(|| panic!("{header:?} is not a {name} cookie"));
    let (expires, rest) = tail.split_once("; ").unwrap();
    let expires = expires
        .strip_prefix("expires=")
        .unwrap_or_else(|| panic!("no expires= in {header:?}"));
    let expires = NaiveDateTime::parse_from_str(expires, "%a, %d %b %Y %H:%M:%S GMT")
        .unwrap_or_else(|e| panic!("bad expires {expires:?}: {e}"))
        .and_utc();
    (value, expires, rest)
}

fn assert_close(actual: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    let diff = (actual - expected).num_seconds().abs();
    assert!(diff <= 60, "{what}: {actual} is not ≈ {expected}");
}

fn is_alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_session_key(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Checks a `sessionid` Set-Cookie is Django's exact shape; returns the key.
fn check_session_cookie(header: &str) -> String {
    let (value, expires, rest) = split_cookie(header, "sessionid");
    assert_eq!(
        rest, "HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax",
        "{header}"
    );
    assert_close(
        expires,
        Utc::now() + chrono::Duration::seconds(SESSION_AGE),
        "sessionid expires",
    );
    value.to_string()
}

/// Checks a `csrftoken` Set-Cookie is Django's exact shape; returns the secret.
fn check_csrf_cookie(header: &str) -> String {
    let (value, expires, rest) = split_cookie(header, "csrftoken");
    assert_eq!(rest, "Max-Age=31449600; Path=/; SameSite=Lax", "{header}");
    assert!(!header.contains("HttpOnly"), "{header}");
    assert_close(
        expires,
        Utc::now() + chrono::Duration::seconds(CSRF_AGE),
        "csrftoken expires",
    );
    assert_eq!(value.len(), 32, "{header}");
    assert!(is_alnum(value), "{header}");
    value.to_string()
}

// ---------------------------------------------------------------------------------------------
// Database helpers
// ---------------------------------------------------------------------------------------------

fn pool(server: &TestServer) -> &SqlitePool {
    match server.store.db() {
        Db::Sqlite(pool) => pool,
        _ => panic!("tests run on SQLite"),
    }
}

/// `(session_data, expire_date as stored, typeof(expire_date))` of a row.
async fn session_row(server: &TestServer, key: &str) -> Option<(String, String, String)> {
    sqlx::query_as::<_, (String, String, String)>(
        "SELECT session_data, CAST(expire_date AS TEXT), typeof(expire_date) \
         FROM django_session WHERE session_key = ?",
    )
    .bind(key)
    .fetch_optional(pool(server))
    .await
    .unwrap()
}

async fn session_count(server: &TestServer) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM django_session")
        .fetch_one(pool(server))
        .await
        .unwrap()
}

/// `(password, last_login as text, typeof(last_login))` of a user.
async fn user_row(server: &TestServer, id: i64) -> (String, Option<String>, String) {
    sqlx::query_as::<_, (String, Option<String>, String)>(
        "SELECT password, CAST(last_login AS TEXT), typeof(last_login) FROM auth_user WHERE id = ?",
    )
    .bind(id)
    .fetch_one(pool(server))
    .await
    .unwrap()
}

async fn set_active(server: &TestServer, id: i64, active: bool) {
    sqlx::query("UPDATE auth_user SET is_active = ? WHERE id = ?")
        .bind(active)
        .bind(id)
        .execute(pool(server))
        .await
        .unwrap();
}

/// Django's SQLite datetime text: `YYYY-MM-DD HH:MM:SS.ffffff` (the fraction is omitted when
/// the microseconds are exactly zero, as `datetime.isoformat` does).
fn parse_django_datetime(text: &str) -> DateTime<Utc> {
    let b = text.as_bytes();
    let shape_ok = (text.len() == 26 && b[19] == b'.' && b[20..].iter().all(u8::is_ascii_digit))
        || text.len() == 19;
    assert!(shape_ok, "not Django's datetime text: {text:?}");
    assert_eq!(b[10], b' ', "{text:?}");
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .and_utc()
}

fn now_ts() -> u64 {
    Utc::now().timestamp() as u64
}

/// The exact JSON inside a signed session string, verified with `keys`.
fn session_json(text: &str, keys: &[&str], salt: &str, max_age: Option<u64>) -> String {
    let bytes = signing::loads(text, keys, salt, max_age, now_ts())
        .unwrap_or_else(|e| panic!("session {text:?} does not verify: {e:?}"));
    String::from_utf8(bytes).unwrap()
}

fn login_json(user_id: i64, password_field: &str, secret: &str) -> String {
    format!(
        r#"{{"_auth_user_id":"{user_id}","_auth_user_backend":"{MODEL_BACKEND}","_auth_user_hash":"{}"}}"#,
        sessions::session_auth_hash(password_field, secret)
    )
}
