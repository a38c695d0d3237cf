//! What Django's `SecurityMiddleware`, `CommonMiddleware` (host validation) and
//! `XFrameOptionsMiddleware` do for every response, the WebSocket `Origin` rule, and what a
//! proxy in front tells: `is_secure` (`SECURE_PROXY_SSL_HEADER`) and the client address
//! (`TRUSTED_PROXIES`).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::django::hosts;
use crate::web::AppState;
use crate::web::error::{self, WebError};

/// Rejects a `Host` outside `ALLOWED_HOSTS` with 400 (Django's `DisallowedHost`), then adds
/// Django's default security headers to the response.
pub async fn django_middleware(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host_allowed(&app, host) {
        let error = WebError::DisallowedHost(host.chars().take(200).collect());
        return error::page_response(&app, error);
    }
    // The access line is `web::access_log`'s.
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

fn host_allowed(app: &AppState, host: &str) -> bool {
    hosts::is_valid_host_header(host)
        && hosts::is_allowed_host(host, &app.settings.allowed_hosts, app.settings.debug)
}

/// A browser's WebSocket `Origin` must name one of `ALLOWED_HOSTS` (Channels'
/// `AllowedHostsOriginValidator` rule) or an exact `CSRF_TRUSTED_ORIGINS` entry. No header
/// (a non-browser client) is allowed: such a client still needs a valid session cookie.
pub fn websocket_origin_allowed(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let settings = &app.settings;
    if settings.csrf_trusted_origins.iter().any(|o| o == origin) {
        return true;
    }
    let allowed: Vec<String> = if settings.debug && settings.allowed_hosts.is_empty() {
        vec![".localhost".into(), "127.0.0.1".into(), "[::1]".into()]
    } else {
        settings.allowed_hosts.clone()
    };
    hosts::origin_allowed(origin, &allowed)
}

/// Django's `request.is_secure()`: Whisper serves plain HTTP, so a request is secure only when
/// `SECURE_PROXY_SSL_HEADER` names a header the proxy set to its value (the first of a
/// comma-separated list, as Django reads it).
pub fn is_secure(app: &AppState, headers: &HeaderMap) -> bool {
    let Some((meta, want)) = &app.settings.limits.secure_proxy_ssl_header else {
        return false;
    };
    let name = meta["HTTP_".len()..].replace('_', "-").to_ascii_lowercase();
    headers
        .get(name.as_str())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim() == want)
}

/// The client address for the per-address limits: the peer, or, when the peer is one of
/// `TRUSTED_PROXIES`, the last `X-Forwarded-For` entry that is not a trusted proxy.
pub fn client_ip(app: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = &app.settings.limits.trusted_proxies;
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}
