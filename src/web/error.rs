//! The one place where errors become HTTP responses.
//!
//! [`WebError`] turns into a status and a plain body; [`render_error_pages`], a layer with
//! access to the templates, then swaps in the project's page (`404.html`, `500.html`,
//! `403_csrf.html`) where one exists, as Django's handlers do.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::context;

use crate::web::AppState;

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
    #[error("not found")]
    NotFound,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    /// A WebSocket handshake of another protocol version, or on a connection that cannot be
    /// upgraded (`web::upgrade`): 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    #[error("upgrade required: WebSocket version 13 only")]
    UpgradeRequired,
    /// A limit of `web::throttle` (handshakes per address, sockets per user): 429.
    #[error("too many requests: {what}")]
    TooManyRequests {
        what: &'static str,
        retry_after: u64,
    },
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::DisallowedHost(_) | WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Csrf(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            WebError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Store(_) | WebError::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Marks a response whose body a template should replace.
#[derive(Clone)]
struct ErrorPage {
    template: &'static str,
    reason: Option<String>,
}

impl WebError {
    fn page(&self) -> Option<ErrorPage> {
        let (template, reason) = match self {
            WebError::Csrf(reason) => ("403_csrf.html", Some(reason.reason())),
            WebError::NotFound => ("404.html", None),
            WebError::Store(e) if e.is_unavailable() => return None,
            WebError::Store(_) | WebError::Template(_) => ("500.html", None),
            _ => return None,
        };
        Some(ErrorPage { template, reason })
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = self.page();
        let body = match &self {
            WebError::DisallowedHost(_) | WebError::BadRequest(_) => {
                tracing::warn!("{self}");
                // Django's plain response for a SuspiciousOperation with DEBUG off.
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n".to_string()
            }
            WebError::Csrf(reason) => {
                tracing::warn!("Forbidden (CSRF): {reason}");
                format!(
                    "CSRF verification failed. Request aborted. {}",
                    reason.reason()
                )
            }
            WebError::NotFound => "Not Found".to_string(),
            WebError::UpgradeRequired => "WebSocket version 13 only".to_string(),
            WebError::TooManyRequests { what, .. } => {
                tracing::info!("429: {what}");
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Too Many Requests (429)</title>\n</head>\n<body>\n  <h1>Too Many Requests (429)</h1><p></p>\n</body>\n</html>\n".to_string()
            }
            WebError::Store(e) if e.is_unavailable() => {
                tracing::error!("{e}");
                let what = match e {
                    StoreError::CacheUnavailable(_) => "The session cache",
                    _ => "The database",
                };
                format!(
                    "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Service Unavailable (503)</title>\n</head>\n<body>\n  <h1>Service Unavailable (503)</h1><p>{what} cannot be reached. Please try again shortly.</p>\n</body>\n</html>\n"
                )
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
        if let WebError::TooManyRequests { retry_after, .. } = &self
            && let Ok(value) = HeaderValue::from_str(&(*retry_after).max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let WebError::UpgradeRequired = self {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        if let Some(page) = page {
            response.extensions_mut().insert(page);
        }
        response
    }
}

/// Renders the template page of an error response (the plain body stays if rendering fails).
pub async fn render_error_pages(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let Some(page) = response.extensions_mut().remove::<ErrorPage>() else {
        return response;
    };
    match app
        .templates
        .render(page.template, context! { reason => page.reason })
    {
        Ok(html) => {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Body::from(html))
        }
        Err(e) => {
            tracing::error!("cannot render {}: {e}", page.template);
            response
        }
    }
}
