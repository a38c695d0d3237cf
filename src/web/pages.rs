//! The HTML pages (spec §3): the room index, Django's login and logout views, the 404 /
//! `APPEND_SLASH` fallback, and `/favicon.ico`.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use tokio::time::Instant;
use unicode_normalization::UnicodeNormalization;

use crate::config::user_model::capfirst;
use crate::django::hosts;
use crate::metrics;
use crate::store::User;
use crate::web::csrf::Csrf;
use crate::web::error::WebError;
use crate::web::session::Session;
use crate::web::{AppState, security};

const REQUIRED: &str = "This field is required.";
/// `AuthenticationForm`: `username_field.max_length or 254`.
const DEFAULT_USERNAME_MAX_LENGTH: usize = 254;

/// The login field as Django's `AuthenticationForm` presents it for the user model's
/// `USERNAME_FIELD`: its label (`capfirst(verbose_name)`: "Username", "Email address"), its
/// `max_length`, and the error for bad credentials and inactive users alike.
struct LoginField {
    label: String,
    max_length: usize,
    invalid: String,
}

impl LoginField {
    async fn of(app: &AppState) -> Result<LoginField, WebError> {
        let verbose = app.settings.user_model.username_verbose_name();
        let table = app.store.user_table().await?;
        Ok(LoginField {
            label: capfirst(&verbose),
            max_length: table
                .username_max_length()
                .unwrap_or(DEFAULT_USERNAME_MAX_LENGTH),
            invalid: format!(
                "Please enter a correct {verbose} and password. Note that both fields may be \
                 case-sensitive."
            ),
        })
    }
}

/// The `Cookie` header values of a request.
pub fn cookie_headers(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn add_set_cookie(response: &mut Response, cookie: Option<String>) {
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// `never_cache`: the headers Django's login and logout views carry.
fn never_cache(response: &mut Response, now: DateTime<Utc>) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        headers.insert(header::EXPIRES, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
}

fn vary_cookie(response: &mut Response) {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Cookie"));
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Python's `urllib.parse.quote(s, safe="/")`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/_.-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /`: the room list for a logged-in user (spec §3.2); anonymous users are sent to
/// `LOGIN_URL?next=/` like `@login_required`.
pub async fn index(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let now = Utc::now();
    let mut session = Session::load(&app, &cookie_headers(&headers), now).await?;
    let mut response = match session.user(&app).await? {
        None => redirect(
            StatusCode::FOUND,
            &format!("{}?next={}", app.settings.login_url, quote("/")),
        ),
        Some(user) => {
            let mut csrf = Csrf::from_headers(&app, &headers);
            let token = csrf.token();
            let rooms: Vec<minijinja::Value> = app
                .store
                .rooms_by_title()
                .await?
                .into_iter()
                .map(|r| context! { id => r.id, title => r.title, staff_only => r.staff_only })
                .collect();
            let html = app.templates.render(
                "index.html",
                context! { user => user.username, csrf_token => token, rooms => rooms },
            )?;
            let mut response = Html(html).into_response();
            add_set_cookie(&mut response, csrf.finish(&app, now));
            response
        }
    };
    add_set_cookie(&mut response, session.finish(&app, now).await?);
    vary_cookie(&mut response);
    Ok(response)
}

/// The fields of a login attempt, for re-rendering the form.
#[derive(Default)]
struct LoginForm {
    username: String,
    errors: Vec<String>,
    username_errors: Vec<String>,
    password_errors: Vec<&'static str>,
}

fn render_login(
    app: &AppState,
    csrf: &mut Csrf,
    field: &LoginField,
    form: Option<&LoginForm>,
    next: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Response, WebError> {
    let token = csrf.token();
    let form = form.map(|f| {
        context! {
            username => f.username.clone(),
            errors => f.errors.clone(),
            username_errors => f.username_errors.clone(),
            password_errors => f.password_errors.clone(),
        }
    });
    let html = app.templates.render(
        "registration/login.html",
        context! {
            csrf_token => token,
            form => form,
            next => next,
            username_label => field.label.clone(),
            username_max_length => field.max_length,
        },
    )?;
    let mut response = Html(html).into_response();
    add_set_cookie(&mut response, csrf.finish(app, now));
    never_cache(&mut response, now);
    vary_cookie(&mut response);
    Ok(response)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v.into_owned())
}

/// `GET /accounts/login/`: the form, with a fresh CSRF token.
pub async fn login_form(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let mut csrf = Csrf::from_headers(&app, &headers);
    let next = query_param(query.as_deref(), "next");
    let field = LoginField::of(&app).await?;
    render_login(&app, &mut csrf, &field, None, next.as_deref(), Utc::now())
}

/// `POST /accounts/login/`: Django's `LoginView` (django-internals §5.4, §5.6).
pub async fn login_submit(
    State(app): State<AppState>,
    Extension(ConnectInfo(peer)): Extension<ConnectInfo<SocketAddr>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let now = Utc::now();
    let mut csrf = Csrf::from_headers(&app, &headers);
    let mut fields = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        fields.insert(k.into_owned(), v.into_owned());
    }
    csrf.check(
        &app,
        &headers,
        fields.get("csrfmiddlewaretoken").map(String::as_str),
    )
    .map_err(WebError::Csrf)?;
    let next = fields
        .get("next")
        .cloned()
        .or_else(|| query_param(query.as_deref(), "next"));

    // UsernameField: stripped, then NFKC-normalised; the password is taken as typed. The
    // re-rendered form shows the raw input, as Django's `BoundField.value()` does (NFKC can
    // make a value 18× longer: echoing it turned a 2 MiB POST into a 23 MB page).
    let raw_username = fields.get("username").map(String::as_str).unwrap_or("");
    let username: String = raw_username.trim().nfkc().collect();
    let password = fields.get("password").cloned().unwrap_or_default();
    let mut form = LoginForm {
        username: raw_username.to_string(),
        ..LoginForm::default()
    };
    let field = LoginField::of(&app).await?;
    let max = field.max_length;
    let count = username.chars().count();
    if username.is_empty() {
        form.username_errors.push(REQUIRED.to_string());
    } else if count > max {
        form.username_errors.push(format!(
            "Ensure this value has at most {max} characters (it has {count})."
        ));
    }
    if password.is_empty() {
        form.password_errors.push(REQUIRED);
    }
    if !form.username_errors.is_empty() || !form.password_errors.is_empty() {
        app.metrics.login(metrics::Login::InvalidForm);
        return render_login(&app, &mut csrf, &field, Some(&form), next.as_deref(), now);
    }
    // Login throttling, beyond Django (django-axes' idea; SECURITY.md): a locked-out username
    // or address is answered 429 with the form, and no password is checked.
    let address = Some(security::client_ip(&app, peer.ip(), &headers));
    if let Some(left) = app
        .login_failures
        .locked(&username, address, Instant::now())
    {
        app.metrics.login(metrics::Login::LockedOut);
        let minutes = left.as_secs().div_ceil(60).max(1);
        form.errors.push(format!(
            "Too many failed login attempts. Please try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ));
        let mut response =
            render_login(&app, &mut csrf, &field, Some(&form), next.as_deref(), now)?;
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(value) = HeaderValue::from_str(&left.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let Some(user) = authenticate(&app, &username, password).await? else {
        app.metrics.login(metrics::Login::InvalidCredentials);
        app.login_failures
            .failed(&username, address, Instant::now());
        form.errors.push(field.invalid.clone());
        return render_login(&app, &mut csrf, &field, Some(&form), next.as_deref(), now);
    };
    app.login_failures.succeeded(&username, address);
    app.metrics.login(metrics::Login::Success);
    tracing::Span::current().record("user_id", user.id);

    let mut session = Session::load(&app, &cookie_headers(&headers), now).await?;
    session.login(&app, &user).await?;
    csrf.rotate();
    app.store.set_last_login(user.id, now).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Django's `url_has_allowed_host_and_scheme(..., require_https=request.is_secure())`.
    let secure = security::is_secure(&app, &headers);
    let target = next
        .filter(|n| hosts::url_has_allowed_host_and_scheme(n, std::slice::from_ref(&host), secure))
        .unwrap_or_else(|| app.settings.login_redirect_url.clone());
    let mut response = redirect(StatusCode::FOUND, &target);
    add_set_cookie(&mut response, session.finish(&app, now).await?);
    add_set_cookie(&mut response, csrf.finish(&app, now));
    never_cache(&mut response, now);
    vary_cookie(&mut response);
    tracing::info!(user = %user.username, "login");
    Ok(response)
}

/// `ModelBackend.authenticate`: the user whose `USERNAME_FIELD` is exactly `username`
/// (`get_by_natural_key`), if the password checks and the user is active. A correct password
/// under outdated parameters is rehashed, as Django does.
async fn authenticate(
    app: &AppState,
    username: &str,
    password: String,
) -> Result<Option<User>, WebError> {
    let Some(mut user) = app.store.user_by_username(username).await? else {
        app.run_dummy_hash().await;
        return Ok(None);
    };
    let (ok, rehashed) = app.check_password(password, user.password.clone()).await;
    if let (true, Some(encoded)) = (ok, rehashed) {
        app.store.set_password(user.id, &encoded).await?;
        user.password = encoded;
    }
    Ok((ok && user.is_active).then_some(user))
}

/// `/accounts/logout/`: POST only, CSRF-checked (Django ≥ 5.0); deletes the session and
/// renders the logged-out page. Open WebSockets keep working (spec §3.5).
pub async fn logout(
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let now = Utc::now();
    if method == Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return Ok(response);
    }
    if method != Method::POST {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return Ok(response);
    }
    let csrf = Csrf::from_headers(&app, &headers);
    let form_token = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "csrfmiddlewaretoken")
        .last()
        .map(|(_, v)| v.into_owned());
    csrf.check(&app, &headers, form_token.as_deref())
        .map_err(WebError::Csrf)?;
    let mut session = Session::load(&app, &cookie_headers(&headers), now).await?;
    session.flush(&app).await?;
    let html = app.templates.render(
        "registration/logged_out.html",
        context! { login_url => app.settings.login_url.clone() },
    )?;
    let mut response = Html(html).into_response();
    add_set_cookie(&mut response, session.finish(&app, now).await?);
    never_cache(&mut response, now);
    vary_cookie(&mut response);
    Ok(response)
}

/// Unknown paths: `APPEND_SLASH`'s 301 when the path plus `/` is a page, otherwise 404.
pub async fn not_found(method: Method, uri: Uri, headers: HeaderMap) -> Result<Response, WebError> {
    let path = uri.path();
    let is_upgrade = headers.contains_key(header::UPGRADE);
    if !is_upgrade
        && (method == Method::GET || method == Method::HEAD)
        && ["/accounts/login", "/accounts/logout"].contains(&path)
    {
        let location = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        return Ok(redirect(StatusCode::MOVED_PERMANENTLY, &location));
    }
    Err(WebError::NotFound)
}

/// The site icon, `static/favicon.ico` (made from `static/favicon.svg` by
/// `tests/e2e/make_favicon.mjs`), compiled in so `/favicon.ico` answers wherever the binary
/// runs.
const FAVICON: &[u8] = include_bytes!("../../static/favicon.ico");

/// `GET /favicon.ico`: what browsers ask for on every page; cached for a week.
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=604800"),
        ],
        FAVICON,
    )
        .into_response()
}
