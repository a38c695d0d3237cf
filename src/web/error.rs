//! The one place where errors become HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::django::csrf::CsrfRejection;
use crate::store::StoreError;
use crate::web::templates::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `Host` not in `ALLOWED_HOSTS` (Django's DisallowedHost → 400).
    #[error("invalid HTTP_HOST header: {0:?}")]
    DisallowedHost(String),
    #[error("CSRF verification failed: {0}")]
    Csrf(CsrfRejection),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("template: {0}")]
    Template(#[from] TemplateError),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::DisallowedHost(_) | WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Csrf(_) => StatusCode::FORBIDDEN,
            WebError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Store(_) | WebError::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            WebError::DisallowedHost(_) | WebError::BadRequest(_) => {
                tracing::warn!("{self}");
                // Django's plain response for a SuspiciousOperation with DEBUG off.
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n".to_string()
            }
            WebError::Csrf(reason) => {
                tracing::warn!("Forbidden (CSRF): {reason}");
                csrf_page(&reason.reason())
            }
            WebError::Store(e) if e.is_unavailable() => {
                tracing::error!("database unavailable: {e}");
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Service Unavailable (503)</title>\n</head>\n<body>\n  <h1>Service Unavailable (503)</h1><p>The database cannot be reached. Please try again shortly.</p>\n</body>\n</html>\n".to_string()
            }
            _ => {
                tracing::error!("internal error: {self}");
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n".to_string()
            }
        };
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

fn csrf_page(reason: &str) -> String {
    let mut escaped = String::with_capacity(reason.len());
    for c in reason.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"UTF-8\">\n  <title>403 Forbidden</title>\n</head>\n<body>\n  <h1>Forbidden <span>(403)</span></h1>\n  <p>CSRF verification failed. Request aborted.</p>\n  <p>{escaped}</p>\n</body>\n</html>\n"
    )
}
