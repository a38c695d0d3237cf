//! One line per HTTP request, in the style of Django's `runserver`
//! (`"GET /accounts/login/ HTTP/1.1" 200 1577`), and the request's span.
//!
//! Every request runs in a `request` span holding its request id and, once a handler knows
//! it, the user's id (`web::session::resolve_user`, the login view, the WebSocket handshake):
//! every line logged while handling it, and every line of a WebSocket opened by it, carries
//! both. The id is the client's `X-Request-ID` when that is a plain token (letters, digits,
//! `-`, `_`, `.`, at most 64), so a proxy's id follows the request; otherwise a random one.
//! As in `django.server`'s logger, 4xx lines are warnings and 5xx lines errors. Nothing from
//! the request but its method, path and version is logged: no cookies, no form fields.
//!
//! The same layer counts `whisper_http_requests_total` by method and status.

use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::Version;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::web::AppState;

const MAX_REQUEST_ID: usize = 64;

/// The client's `X-Request-ID` if it is a plain token, else a fresh random id.
fn request_id(request: &Request) -> String {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    match given {
        Some(id) => id.to_string(),
        None => format!("{:016x}", rand::random::<u64>()),
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

pub async fn access_log(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id(&request),
        user_id = tracing::field::Empty,
    );
    let method = request.method().clone();
    // Path and query as sent (Django's runserver logs the request line).
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |pq| pq.to_string());
    let line = format!("\"{method} {target} {}\"", version(request.version()));
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    app.metrics.http_request(&method, status);
    let bytes = response.body().size_hint().exact().unwrap_or(0);
    let duration_ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
    let _entered = span.enter();
    match status {
        500.. => tracing::error!(status, bytes, duration_ms, "{line} {status} {bytes}"),
        400..=499 => tracing::warn!(status, bytes, duration_ms, "{line} {status} {bytes}"),
        _ => tracing::info!(status, bytes, duration_ms, "{line} {status} {bytes}"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header("x-request-id", value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn a_plain_client_id_is_kept_anything_else_replaced() {
        assert_eq!(request_id(&with_header("abc-123_x.y")), "abc-123_x.y");
        for bad in ["a b", "x\"y", &"z".repeat(65), "", "é"] {
            let id = request_id(&with_header(bad));
            assert_eq!(id.len(), 16, "{bad:?} → {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
