//! The HTTP side against the live server (spec `multichat-protocol.md` §3,
//! `django-internals.md` §4–§6, `django-vectors.json` → `http_flow`): pages, the login and
//! logout views, CSRF, session cookies and rows, `get_user` on every request, `ALLOWED_HOSTS`,
//! `APPEND_SLASH` and static files.
//!
//! Requests go through a reqwest client *without* a cookie store; every test passes the
//! `Cookie` header itself so `Set-Cookie` headers can be checked byte for byte.
mod common;

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

// ---------------------------------------------------------------------------------------------
// 1. Anonymous index
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_index_redirects_to_login() {
    let server = TestServer::start().await;
    let resp = get(&server, "/", &[]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert!(
        resp.set_cookie("sessionid").is_none(),
        "{:?}",
        resp.set_cookies()
    );
    // A cookie naming no row is just anonymous too.
    let resp = get(
        &server,
        "/",
        &[("sessionid", "abcdefghijklmnopqrstuvwxyz012345")],
    )
    .await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Login page
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_page_headers_cookie_and_token() {
    let server = TestServer::start().await;
    let resp = get(&server, "/accounts/login/", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let cookies = resp.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let secret = check_csrf_cookie(resp.set_cookie("csrftoken").unwrap());

    let token = resp.form_token();
    assert_eq!(token.len(), 64, "{token}");
    assert!(is_alnum(&token), "{token}");
    assert_eq!(unmask(&token).as_deref(), Some(secret.as_str()));

    let cache = resp.header("cache-control").unwrap();
    assert!(
        cache.contains("no-cache, no-store, must-revalidate"),
        "{cache}"
    );
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let vary = resp.header_joined("vary");
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("cookie")),
        "{vary:?}"
    );
    assert!(resp.header("expires").is_some());

    assert!(resp.body.contains("<title>Login</title>"), "{}", resp.body);
    assert!(resp.body.contains(r#"name="username""#));
    assert!(resp.body.contains(r#"type="password" name="password""#));
    assert!(!resp.body.contains(r#"name="next""#), "{}", resp.body);
    // Anonymous: no logout form.
    assert!(!resp.body.contains("/accounts/logout/"), "{}", resp.body);

    // With an existing well-formed cookie: same secret, fresh mask each time.
    let again = get(&server, "/accounts/login/", &[("csrftoken", &secret)]).await;
    assert_eq!(again.status, 200);
    let token2 = again.form_token();
    assert_ne!(token2, token, "the mask must be fresh");
    assert_eq!(unmask(&token2).as_deref(), Some(secret.as_str()));
    if let Some(c) = again.cookie("csrftoken") {
        assert_eq!(c, secret, "an existing secret must be kept");
    }

    // ?next= is carried as a hidden input.
    let with_next = get(&server, "/accounts/login/?next=/x", &[]).await;
    assert_eq!(with_next.status, 200);
    assert!(
        with_next
            .body
            .contains(r#"<input type="hidden" name="next" value="/x">"#),
        "{}",
        with_next.body
    );
    // …escaped.
    let nasty = get(&server, "/accounts/login/?next=%22%3E%3Cscript%3E", &[]).await;
    assert!(
        nasty
            .body
            .contains(r#"<input type="hidden" name="next" value="&quot;&gt;&lt;script&gt;">"#),
        "{}",
        nasty.body
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. CSRF on the login POST
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_post_csrf_checks() {
    let server = TestServer::start().await;
    server.create_user("carol", false).await;
    let (secret, token) = login_page(&server, &[]).await;
    let cookie = [("csrftoken", secret.as_str())];
    // Empty password: CSRF passed when the form comes back (200) without hashing anything.
    let probe = [("username", "carol"), ("password", "")];
    let with_token = |t: &'static str| {
        [
            ("username", "carol"),
            ("password", ""),
            ("csrfmiddlewaretoken", t),
        ]
    };

    // No cookie at all.
    let resp = post(
        &server,
        "/accounts/login/",
        &[],
        &[
            ("username", "carol"),
            ("password", ""),
            ("csrfmiddlewaretoken", &token),
        ],
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF cookie not set."), "{}", resp.body);
    assert!(
        resp.body
            .contains("CSRF verification failed. Request aborted.")
    );
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    // Cookie but no token.
    let resp = post(&server, "/accounts/login/", &cookie, &probe, &[]).await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF token missing."), "{}", resp.body);

    // A well-formed token for another secret.
    let other = django_csrf::mask_cipher_secret(&django_csrf::new_secret());
    let fields = [
        ("username", "carol"),
        ("password", ""),
        ("csrfmiddlewaretoken", other.as_str()),
    ];
    let resp = post(&server, "/accounts/login/", &cookie, &fields, &[]).await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains("CSRF token from POST incorrect."),
        "{}",
        resp.body
    );

    // A malformed token.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &with_token("short"),
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body
            .contains("CSRF token from POST has incorrect length."),
        "{}",
        resp.body
    );

    // Good token, foreign Origin.
    let good = [
        ("username", "carol"),
        ("password", ""),
        ("csrfmiddlewaretoken", token.as_str()),
    ];
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains(
            "Origin checking failed - http://evil.example does not match any trusted origins."
        ),
        "{}",
        resp.body
    );
    // `Origin: null` fails too.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", "null")],
    )
    .await;
    assert_eq!(resp.status, 403);

    // Good token, no Origin: passes CSRF.
    let resp = post(&server, "/accounts/login/", &cookie, &good, &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains(REQUIRED));

    // Same-origin Origin.
    let origin = format!("http://{}", server.host());
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    // Same origin but https: not the same origin.
    let https_origin = format!("https://{}", server.host());
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", &https_origin)],
    )
    .await;
    assert_eq!(resp.status, 403);

    // Token in the X-CSRFToken header (masked), no form field.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &token)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // …and the raw 32-char secret in the header.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &secret)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // A wrong header token.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &other)],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body
            .contains("CSRF token from the &#x27;X-Csrftoken&#x27; HTTP header incorrect."),
        "{}",
        resp.body
    );
    // `X-CSRF-Token` is a different header.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRF-Token", &token)],
    )
    .await;
    assert_eq!(resp.status, 403);

    // The unmasked 32-char secret in the form field: a real login succeeds.
    let fields = [
        ("username", "carol"),
        ("password", PASSWORD),
        ("csrfmiddlewaretoken", secret.as_str()),
    ];
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &fields,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/");
    assert!(resp.cookie("sessionid").is_some());

    // A masked token against a malformed cookie.
    let resp = post(
        &server,
        "/accounts/login/",
        &[("csrftoken", "bad!")],
        &good,
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains("CSRF cookie has incorrect length."),
        "{}",
        resp.body
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Failed logins
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_failures_rerender_the_form() {
    let server = TestServer::start().await;
    let bob = server.create_user("bob", false).await;
    let idle = server.create_user("idle", false).await;
    set_active(&server, idle, false).await;

    let cases: &[(&str, &str, &str)] = &[
        ("bad password", "bob", "wrong password"),
        ("unknown user", "nobody", PASSWORD),
        ("inactive user", "idle", PASSWORD),
        ("case-sensitive username", "BOB", PASSWORD),
    ];
    for (what, username, password) in cases {
        let resp = login(&server, username, password, None).await;
        assert_eq!(resp.status, 200, "{what}: {}", resp.body);
        assert!(resp.body.contains(INVALID_LOGIN), "{what}: {}", resp.body);
        assert!(
            resp.body.contains(&format!(
                r#"<ul class="errorlist nonfield"><li>{INVALID_LOGIN}</li></ul>"#
            )),
            "{what}: {}",
            resp.body
        );
        assert!(
            resp.body
                .contains(&format!(r#"name="username" value="{username}""#)),
            "{what}: username not refilled: {}",
            resp.body
        );
        // The password is never echoed.
        assert!(
            !resp.body.contains(&format!(r#"value="{password}""#)),
            "{what}"
        );
        assert!(
            resp.set_cookie("sessionid").is_none(),
            "{what}: {:?}",
            resp.set_cookies()
        );
        // A fresh form token comes with the page.
        assert_eq!(resp.form_token().len(), 64);
    }
    assert_eq!(session_count(&server).await, 0);
    assert_eq!(
        user_row(&server, bob).await.1,
        None,
        "bob's last_login must stay NULL"
    );

    // Empty fields.
    let resp = login(&server, "", "", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 2, "{}", resp.body);
    assert!(!resp.body.contains(INVALID_LOGIN));
    let resp = login(&server, "bob", "", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 1, "{}", resp.body);
    assert!(
        resp.body.contains(r#"name="username" value="bob""#),
        "{}",
        resp.body
    );
    // A whitespace-only username is stripped to empty.
    let resp = login(&server, "   ", PASSWORD, None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 1, "{}", resp.body);

    // A refilled username is escaped.
    let resp = login(&server, "<b>\"x\"", "pw", None).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.contains(r#"value="&lt;b&gt;&quot;x&quot;""#),
        "{}",
        resp.body
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Successful login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_success_cookie_row_and_index() {
    let server = TestServer::start().await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    let (resp, csrf_before) = login_with(
        &server,
        &[("username", "alice"), ("password", PASSWORD)],
        None,
    )
    .await;
    let started = Utc::now();
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/");
    let cache = resp.header("cache-control").unwrap_or("");
    assert!(
        cache.contains("no-cache, no-store, must-revalidate"),
        "{cache}"
    );

    // sessionid
    let key = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid"));
    assert!(is_session_key(&key), "{key}");
    // csrftoken rotated
    let csrf_after = check_csrf_cookie(resp.set_cookie("csrftoken").expect("rotated csrftoken"));
    assert_ne!(csrf_after, csrf_before, "CSRF secret must rotate at login");

    // The row.
    assert_eq!(session_count(&server).await, 1);
    let (data, expire, kind) = session_row(&server, &key).await.expect("session row");
    assert_eq!(kind, "text");
    assert_close(
        parse_django_datetime(&expire),
        started + chrono::Duration::seconds(SESSION_AGE),
        "expire_date",
    );
    let (password, last_login, last_login_kind) = user_row(&server, alice).await;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(alice, &password, SECRET)
    );
    let decoded =
        sessions::decode(&data, &[SECRET], SESSION_SALT, None, now_ts()).expect("decodes");
    assert_eq!(decoded.user_id(), Some(alice));
    assert_eq!(decoded.backend().as_deref(), Some(MODEL_BACKEND));
    assert_eq!(
        decoded.auth_hash(),
        Some(sessions::session_auth_hash(&password, SECRET))
    );
    // Signed with SECRET_KEY: no other key verifies it.
    assert!(sessions::decode(&data, &["other"], SESSION_SALT, None, now_ts()).is_none());

    // last_login
    assert_eq!(last_login_kind, "text");
    let last_login = last_login.expect("last_login set");
    assert_close(parse_django_datetime(&last_login), started, "last_login");

    // The index with the cookie.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains(">Lobby</li>"), "{}", page.body);
    assert!(
        page.body.contains(r#"title="Logged in as alice""#),
        "{}",
        page.body
    );
    // Reading a session does not re-save it.
    assert!(
        page.set_cookie("sessionid").is_none(),
        "{:?}",
        page.set_cookies()
    );
    assert_eq!(session_row(&server, &key).await.unwrap().1, expire);

    // The same with a browser-like cookie-store client.
    let browser = server.client();
    let form = browser
        .get(server.url("/accounts/login/"))
        .send()
        .await
        .unwrap();
    let form = Resp::from(form).await;
    let token = form.form_token();
    let r = browser
        .post(server.url("/accounts/login/"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrfmiddlewaretoken", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = Resp::from(browser.get(server.url("/")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(">Lobby</li>"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. The `next` redirect target
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_next_is_honoured_only_when_safe() {
    let server = TestServer::start().await;
    server.create_user("nina", false).await;
    let same_host = format!("http://{}/abs", server.host());
    let cases: &[(&str, &str)] = &[
        ("/somewhere?x=1", "/somewhere?x=1"),
        (&same_host, &same_host),
        ("http://evil.example/", "/"),
        ("//evil.example", "/"),
        ("///evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ];
    for (next, expected) in cases {
        let fields = [("username", "nina"), ("password", PASSWORD), ("next", next)];
        let (resp, _) = login_with(&server, &fields, None).await;
        assert_eq!(resp.status, 302, "next={next:?}: {}", resp.body);
        assert_eq!(resp.location(), *expected, "next={next:?}");
    }

    // `next` in the query string of the POST (the form posts back to its own URL).
    let (secret, token) = login_page(&server, &[]).await;
    let resp = post(
        &server,
        "/accounts/login/?next=/from-query",
        &[("csrftoken", &secret)],
        &[
            ("username", "nina"),
            ("password", PASSWORD),
            ("csrfmiddlewaretoken", &token),
        ],
        &[],
    )
    .await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/from-query");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. The index page
// ---------------------------------------------------------------------------------------------

const EMPTY_ROOMS: &str = r#"<p class="empty">No chat rooms defined. Maybe make some in the <a href="/admin/">admin</a>?</p>"#;

#[tokio::test]
async fn index_lists_rooms_escaped_and_ordered() {
    let server = TestServer::start().await;
    let user = server.create_user("dave", false).await;
    let key = server.session_for(user).await;

    // Empty state.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(EMPTY_ROOMS), "{}", page.body);
    assert!(
        page.body.contains(r#"<div id="chats"></div>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("room-link"), "{}", page.body);
    assert!(page.body.contains("<title>MultiChat Example</title>"));
    assert!(page.body.contains("<h1>MultiChat Example</h1>"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let vary = page.header_joined("vary");
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("cookie")),
        "{vary:?}"
    );

    // The logout form with a CSRF input whose token unmasks to the cookie set with the page.
    assert!(
        page.body
            .contains(r#"<form method="post" action="/accounts/logout/" class="logout">"#),
        "{}",
        page.body
    );
    let form_start = page.body.find(r#"action="/accounts/logout/""#).unwrap();
    let form_end = form_start + page.body[form_start..].find("</form>").unwrap();
    assert!(
        page.body[form_start..form_end].contains(r#"name="csrfmiddlewaretoken""#),
        "no CSRF input in the logout form"
    );
    let secret = check_csrf_cookie(
        page.set_cookie("csrftoken")
            .expect("csrftoken with the page"),
    );
    assert_eq!(unmask(&page.form_token()).as_deref(), Some(secret.as_str()));
    // With the cookie: same secret.
    let page = get(&server, "/", &[("sessionid", &key), ("csrftoken", &secret)]).await;
    assert_eq!(unmask(&page.form_token()).as_deref(), Some(secret.as_str()));

    // Rooms, created out of order; the staff-only one is listed to a non-staff user.
    let nasty = "Staff <room> & \"quotes\" 'x'";
    let arger = server.create_room("Ärger", false).await;
    let staff = server.create_room(nasty, true).await;
    let lobby = server.create_room("Lobby", false).await;
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200);
    let items = [
        format!(r#"<li class="room-link" data-room-id="{lobby}">Lobby</li>"#),
        format!(
            r#"<li class="room-link" data-room-id="{staff}">Staff &lt;room&gt; &amp; &quot;quotes&quot; &#x27;x&#x27;</li>"#
        ),
        format!(r#"<li class="room-link" data-room-id="{arger}">Ärger</li>"#),
    ];
    let positions: Vec<usize> = items
        .iter()
        .map(|item| {
            page.body
                .find(item.as_str())
                .unwrap_or_else(|| panic!("{item} not in:\n{}", page.body))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "rooms not ordered by title: {positions:?}\n{}",
        page.body
    );
    assert_eq!(page.body.matches("room-link").count(), 3);
    assert!(!page.body.contains(nasty), "title must be escaped");
    assert!(!page.body.contains(EMPTY_ROOMS));
    let rooms_at = page.body.find(r#"<ul class="rooms">"#).expect("rooms list");
    let chats_at = page
        .body
        .find(r#"<div id="chats"></div>"#)
        .expect("chats div");
    assert!(rooms_at < positions[0] && positions[2] < chats_at);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Session key cycling at login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_keeps_key_for_same_user_and_flushes_for_another() {
    let server = TestServer::start().await;
    let anna = server.create_user("anna", false).await;
    let ben = server.create_user("ben", false).await;
    let k1 = login_ok(&server, "anna", PASSWORD).await;

    // Again as anna, carrying her cookie: same key, the row kept.
    let resp = login(&server, "anna", PASSWORD, Some(&k1)).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let again = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid re-sent"));
    assert_eq!(
        again, k1,
        "re-login as the same user must keep the session key"
    );
    assert_eq!(session_count(&server).await, 1);
    let (data, _, _) = session_row(&server, &k1).await.expect("row kept");
    let password = user_row(&server, anna).await.0;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(anna, &password, SECRET)
    );

    // As ben while carrying anna's cookie: flushed, new key, anna's row deleted.
    let resp = login(&server, "ben", PASSWORD, Some(&k1)).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let k2 = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid"));
    assert!(is_session_key(&k2));
    assert_ne!(k2, k1);
    assert!(
        session_row(&server, &k1).await.is_none(),
        "anna's row must be deleted"
    );
    assert_eq!(session_count(&server).await, 1);
    let (data, _, _) = session_row(&server, &k2).await.expect("ben's row");
    let password = user_row(&server, ben).await.0;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(ben, &password, SECRET)
    );

    // An unknown cookie value is never adopted as the key (no session fixation).
    let planted = "plantedsessionkey000000000000000";
    let resp = login(&server, "anna", PASSWORD, Some(planted)).await;
    assert_eq!(resp.status, 302);
    let k3 = resp.cookie("sessionid").unwrap();
    assert_ne!(k3, planted);
    assert!(session_row(&server, planted).await.is_none());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 9. Password rehash at login
// ---------------------------------------------------------------------------------------------

/// Django 5.2's `pbkdf2_sha256` at 1000 iterations for "password" (django-vectors.json).
const PBKDF2_1000: &str =
    "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4=";

fn hasher_cfg() -> HasherConfig {
    HasherConfig::new(DjangoVersion::V5_2)
}

/// Asserts `encoded` is a fresh 5.2 `pbkdf2_sha256` hash of `password`.
fn assert_current_hash(encoded: &str, password: &str) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(parts.len(), 4, "{encoded}");
    assert_eq!(parts[0], "pbkdf2_sha256", "{encoded}");
    assert_eq!(parts[1], "1000000", "{encoded}");
    assert_eq!(parts[2].len(), 22, "{encoded}");
    assert!(is_alnum(parts[2]), "{encoded}");
    assert_ne!(
        parts[2], "abcdefghijklmnopqrstuv",
        "the salt must be new: {encoded}"
    );
    assert_eq!(
        hashers::check_password(password, encoded, &hasher_cfg()),
        (true, None),
        "{encoded}"
    );
}

#[tokio::test]
async fn login_rehashes_and_invalidates_other_sessions() {
    // `make_password_with` uses the config's iteration count, so the 1000-iteration string
    // comes from Django's vectors.
    assert!(
        hashers::make_password_with(
            "password",
            "pbkdf2_sha256",
            "abcdefghijklmnopqrstuv",
            &hasher_cfg()
        )
        .unwrap()
        .starts_with("pbkdf2_sha256$1000000$")
    );
    let server = TestServer::start().await;
    let id = server.insert_user("olga", PBKDF2_1000, false).await;
    let stale = server.session_for(id).await;
    assert_eq!(
        get(&server, "/", &[("sessionid", &stale)]).await.status,
        200
    );

    let key = login_ok(&server, "olga", "password").await;
    let (password, _, _) = user_row(&server, id).await;
    assert_current_hash(&password, "password");
    let (data, _, _) = session_row(&server, &key).await.unwrap();
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(id, &password, SECRET)
    );

    // The older session carries the hash of the old password: refused and deleted.
    let resp = get(&server, "/", &[("sessionid", &stale)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(session_row(&server, &stale).await.is_none());
    // The WebSocket refuses it too.
    let err = server.ws(Some(&stale), None).await.err().expect("refused");
    assert_eq!(handshake_status(&err), Some(403));
    // The new session works.
    assert_eq!(get(&server, "/", &[("sessionid", &key)]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn login_accepts_every_default_hasher_and_upgrades_it() {
    // Django 5.2 hashes of "password" (django-vectors.json `password_hashers`).
    let vectors = [
        (
            "argon2",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$iyae5y7uKvwuvk01m1XK1snS9Vtr2i9GFxvdlTduUxQ",
        ),
        (
            "bcrypt_sha256",
            "bcrypt_sha256$$2b$12$R9h/cIPz0gi.URNNX3kh2OHKU7Jr0U7yUFT17yst4q0HnKLEq7e4O",
        ),
        (
            "scrypt",
            "scrypt$16384$abcdefghijklmnopqrstuv$8$5$nEm7Pi7EHJjCWhbAUOPwKB9ZkBdqed/x08Sl27mc9dSFwnLRD4E8HcfCrBo/7ZEPTRlkZEGw3FuBXHxXLkBAIA==",
        ),
        (
            "pbkdf2_sha1",
            "pbkdf2_sha1$1000$abcdefghijklmnopqrstuv$Ir7AvXIdrwHyPccNzPC+G/N0xHs=",
        ),
        (
            "pbkdf2_sha256 at 260000",
            "pbkdf2_sha256$260000$abcdefghijklmnopqrstuv$9jpp8cVQt7a7ujJrWzr0KoytR5UBy9qbF8d2OUhc1SY=",
        ),
    ];
    let server = TestServer::start().await;
    for (i, (what, encoded)) in vectors.iter().enumerate() {
        let username = format!("h{i}");
        let id = server.insert_user(&username, encoded, false).await;
        let bad = login(&server, &username, "Password", None).await;
        assert_eq!(bad.status, 200, "{what}: wrong password accepted");
        assert_eq!(
            user_row(&server, id).await.0,
            *encoded,
            "{what}: rehashed on a failure"
        );
        let key = login_ok(&server, &username, "password").await;
        let (password, _, _) = user_row(&server, id).await;
        assert_current_hash(&password, "password");
        let (data, _, _) = session_row(&server, &key).await.unwrap();
        assert_eq!(
            session_json(&data, &[SECRET], SESSION_SALT, None),
            login_json(id, &password, SECRET),
            "{what}"
        );
    }
    // A current hash is left alone.
    let current =
        "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hiSPLmmsEJ4SXtBDfUpBLIVuYXFfcubYcZtjeWt1s3U=";
    let id = server.insert_user("current", current, false).await;
    login_ok(&server, "current", "password").await;
    assert_eq!(user_row(&server, id).await.0, current);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. Logout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_is_post_only_csrf_checked_and_flushes() {
    let server = TestServer::start().await;
    server.create_user("lou", false).await;
    let key = login_ok(&server, "lou", PASSWORD).await;

    let resp = get(&server, "/accounts/logout/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST, OPTIONS"));
    assert!(
        session_row(&server, &key).await.is_some(),
        "GET must not log out"
    );

    let resp = post(
        &server,
        "/accounts/logout/",
        &[("sessionid", &key)],
        &[],
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF cookie not set."), "{}", resp.body);
    assert!(
        session_row(&server, &key).await.is_some(),
        "a refused POST must not log out"
    );

    // The logout form on the index.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200);
    let secret = page.cookie("csrftoken").unwrap();
    let token = page.form_token();
    let cookies = [("sessionid", key.as_str()), ("csrftoken", secret.as_str())];
    let resp = post(&server, "/accounts/logout/", &cookies, &[], &[]).await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF token missing."), "{}", resp.body);

    let resp = post(
        &server,
        "/accounts/logout/",
        &cookies,
        &[("csrfmiddlewaretoken", &token)],
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("Logged out"), "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(
        resp.set_cookie("csrftoken").is_none(),
        "logout leaves the CSRF cookie alone"
    );
    assert!(
        !resp.body.contains("/accounts/logout/"),
        "logged out: no logout form"
    );
    assert!(session_row(&server, &key).await.is_none());
    assert_eq!(session_count(&server).await, 0);

    let resp = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    let err = server.ws(Some(&key), None).await.err().expect("refused");
    assert_eq!(handshake_status(&err), Some(403));
    server.stop().await;
}

/// Django's `SessionMiddleware` deletes the cookie of any request whose session turned out
/// empty: an unknown or deleted row makes `load()` drop the key, so `is_empty()` is true and
/// `sessionid` is in `request.COOKIES` ⇒ `delete_cookie` (django-internals §4.2).
#[tokio::test]
async fn stale_session_cookie_is_deleted_on_index() {
    let server = TestServer::start().await;
    let resp = get(
        &server,
        "/",
        &[("sessionid", "abcdefghijklmnopqrstuvwxyz012345")],
    )
    .await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. Password changed elsewhere
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_change_elsewhere_ends_sessions() {
    let server = TestServer::start().await;
    let id = server.create_user("pat", false).await;
    let key = server.session_for(id).await;
    assert_eq!(get(&server, "/", &[("sessionid", &key)]).await.status, 200);

    assert!(server.store.set_password(id, PBKDF2_1000).await.unwrap());
    let resp = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(
        session_row(&server, &key).await.is_none(),
        "row must be deleted"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 12. SECRET_KEY rotation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fallback_secret_key_session_is_cycled() {
    let server =
        TestServer::start_with(&[("SECRET_KEY", "new"), ("SECRET_KEY_FALLBACKS", "old")]).await;
    let id = server.create_user("rita", false).await;
    let password = user_row(&server, id).await.0;

    for (sign_key, hash_key) in [("old", "old"), ("new", "old"), ("old", "new")] {
        let old = server.session_for_keys(id, sign_key, hash_key).await;
        let resp = get(&server, "/", &[("sessionid", &old)]).await;
        assert_eq!(
            resp.status, 200,
            "signed {sign_key}, hash {hash_key}: {}",
            resp.body
        );
        if hash_key == "new" {
            // Only the signature used the fallback: Django re-signs on the next save only,
            // and a read does not save.
            assert!(
                resp.set_cookie("sessionid").is_none(),
                "{:?}",
                resp.set_cookies()
            );
            continue;
        }
        let new = check_session_cookie(resp.set_cookie("sessionid").expect("a new sessionid"));
        assert!(is_session_key(&new));
        assert_ne!(new, old, "the key must be cycled");
        assert!(
            session_row(&server, &old).await.is_none(),
            "the old row must be gone"
        );
        let (data, _, _) = session_row(&server, &new).await.expect("new row");
        assert_eq!(
            session_json(&data, &["new"], SESSION_SALT, None),
            login_json(id, &password, "new"),
            "signed {sign_key}, hash {hash_key}"
        );
        assert!(sessions::decode(&data, &["old"], SESSION_SALT, None, now_ts()).is_none());
        // The new cookie works and is not cycled again.
        let resp = get(&server, "/", &[("sessionid", &new)]).await;
        assert_eq!(resp.status, 200);
        assert!(resp.set_cookie("sessionid").is_none());
    }

    // A key that is neither current nor fallback: anonymous.
    let foreign = server.session_for_keys(id, "other", "other").await;
    let resp = get(&server, "/", &[("sessionid", &foreign)]).await;
    assert_eq!(resp.status, 302);
    // The signature fails: an empty session that keeps its key, the row is not deleted.
    assert!(session_row(&server, &foreign).await.is_some());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 13. Signed-cookie sessions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn signed_cookie_sessions() {
    let server = TestServer::start_with(&[(
        "SESSION_ENGINE",
        "django.contrib.sessions.backends.signed_cookies",
    )])
    .await;
    let id = server.create_user("sig", false).await;
    let resp = login(&server, "sig", PASSWORD, None).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let header = resp.set_cookie("sessionid").expect("sessionid");
    let (value, expires, rest) = split_cookie(header, "sessionid");
    assert_eq!(rest, "HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax");
    assert_close(
        expires,
        Utc::now() + chrono::Duration::seconds(SESSION_AGE),
        "expires",
    );
    let value = value.to_string();
    assert!(value.contains(':'), "{value}");
    let password = user_row(&server, id).await.0;
    assert_eq!(
        session_json(
            &value,
            &[SECRET],
            SIGNED_COOKIES_SALT,
            Some(SESSION_AGE as u64)
        ),
        login_json(id, &password, SECRET)
    );
    assert!(
        sessions::decode(
            &value,
            &[SECRET],
            SIGNED_COOKIES_SALT,
            Some(SESSION_AGE as u64),
            now_ts()
        )
        .is_some()
    );
    assert_eq!(session_count(&server).await, 0, "no django_session rows");

    let page = get(&server, "/", &[("sessionid", &value)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"title="Logged in as sig""#));
    let ws = server
        .ws(Some(&value), None)
        .await
        .expect("WebSocket accepts the signed cookie");
    ws.close(1000).await;

    // Tampered: anonymous.
    let tampered = format!("{value}x");
    assert_eq!(
        get(&server, "/", &[("sessionid", &tampered)]).await.status,
        302
    );

    // Logout deletes the cookie.
    let secret = page.cookie("csrftoken").unwrap();
    let resp = post(
        &server,
        "/accounts/logout/",
        &[("sessionid", &value), ("csrftoken", &secret)],
        &[("csrfmiddlewaretoken", &page.form_token())],
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    // Without server storage a copied cookie cannot be revoked (Django behaves the same).
    assert_eq!(
        get(&server, "/", &[("sessionid", &value)]).await.status,
        200
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 14. ALLOWED_HOSTS
// ---------------------------------------------------------------------------------------------

async fn get_with_host(server: &TestServer, path: &str, host: &str) -> Resp {
    let request = raw_client()
        .get(server.url(path))
        .header(header::HOST, host);
    Resp::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn host_header_is_validated() {
    let server = TestServer::start().await;
    for host in [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "bad host",
    ] {
        let resp = get_with_host(&server, "/accounts/login/", host).await;
        assert_eq!(resp.status, 400, "Host: {host}");
        assert!(resp.body.contains("Bad Request (400)"), "{}", resp.body);
        assert!(resp.set_cookie("csrftoken").is_none());
    }
    // Not only pages: every path.
    assert_eq!(
        get_with_host(&server, "/", "evil.example").await.status,
        400
    );
    for host in ["localhost", "localhost:8000", "127.0.0.1", "LOCALHOST"] {
        let resp = get_with_host(&server, "/accounts/login/", host).await;
        assert_eq!(resp.status, 200, "Host: {host}");
    }

    // The CSRF Origin check compares with the Host header.
    let (secret, token) = login_page(&server, &[]).await;
    let fields = [
        ("username", "x"),
        ("password", ""),
        ("csrfmiddlewaretoken", token.as_str()),
    ];
    let send = |origin: &'static str| {
        raw_client()
            .post(server.url("/accounts/login/"))
            .header(header::HOST, "localhost")
            .header(header::COOKIE, format!("csrftoken={secret}"))
            .header(header::ORIGIN, origin)
            .form(&fields)
            .send()
    };
    assert_eq!(send("http://localhost").await.unwrap().status(), 200);
    assert_eq!(send("http://127.0.0.1").await.unwrap().status(), 403);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 15. Routing: APPEND_SLASH, 404, static files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn routing_slashes_404_and_static() {
    let server = TestServer::start().await;
    let resp = get(&server, "/accounts/login", &[]).await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.location(), "/accounts/login/");
    let resp = get(&server, "/accounts/login?next=/x", &[]).await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.location(), "/accounts/login/?next=/x");

    let resp = get(&server, "/nope/", &[]).await;
    assert_eq!(resp.status, 404);
    assert!(resp.body.contains("Not Found"), "{}", resp.body);
    assert!(resp.body.contains("Sorry, but we can"), "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let resp = get(&server, "/nope", &[]).await;
    assert_eq!(resp.status, 404);

    let css = get(&server, "/static/css/style.css", &[]).await;
    assert_eq!(css.status, 200);
    let ct = css.header("content-type").unwrap();
    assert!(ct.starts_with("text/css"), "{ct}");
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/css/style.css"))
            .unwrap();
    assert_eq!(css.body, on_disk);
    let js = get(&server, "/static/js/chat.js", &[]).await;
    assert_eq!(js.status, 200);
    let ct = js.header("content-type").unwrap();
    assert!(ct.contains("javascript"), "{ct}");
    assert_eq!(get(&server, "/static/nope.css", &[]).await.status, 404);
    assert_eq!(get(&server, "/static/../Cargo.toml", &[]).await.status, 404);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 16. Non-ASCII usernames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_ascii_username_login() {
    let server = TestServer::start().await;
    let id = server.create_user("Zoë", false).await;
    // Decomposed, fullwidth and padded forms all NFKC-normalise (and strip) to "Zoë".
    for typed in ["Zoe\u{308}", " \u{ff3a}\u{ff4f}\u{eb} "] {
        let resp = login(&server, typed, PASSWORD, None).await;
        assert_eq!(resp.status, 302, "{typed:?}: {}", resp.body);
        let key = resp.cookie("sessionid").unwrap();
        let (data, _, _) = session_row(&server, &key).await.unwrap();
        assert!(data.is_ascii());
        let json = session_json(&data, &[SECRET], SESSION_SALT, None);
        assert!(json.is_ascii(), "{json}");
        let password = user_row(&server, id).await.0;
        assert_eq!(json, login_json(id, &password, SECRET));

        let page = get(&server, "/", &[("sessionid", &key)]).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains(r#"title="Logged in as Zoë""#),
            "{}",
            page.body
        );
    }
    // A different user: "Zoe" is not "Zoë".
    let resp = login(&server, "Zoe", PASSWORD, None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains(INVALID_LOGIN));
    server.stop().await;
}
