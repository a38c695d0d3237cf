//! The one place where errors become HTTP responses, and where every error response gets its
//! page.
//!
//! [`WebError`] turns into a status, its headers (`Retry-After`, `Sec-WebSocket-Version`) and a
//! plain fallback body, marked with the template that replaces it. [`render_error_pages`], a
//! layer with access to the templates, swaps that page in, and does the same for the bare error
//! responses the framework makes itself: 405 from method routing, 413 from a body limit, 404 and
//! friends from `ServeDir`, any response without a body or with a `text/plain` one. So every error
//! status answered over HTTP has a page from `templates/` (`400.html`, `403.html`, `404.html`,
//! `405.html`, `413.html`, `426.html`, `429.html`, `500.html`, `503.html`, `403_csrf.html`, and
//! `error.html` for any other status), as Django's handlers render `400.html`…`500.html` with
//! DEBUG off. The pages say what happened, never why: details go to the log.
//!
//! Left as they are:
//! - a WebSocket handshake refused with a bare 403 (spec §4.2: "403 Access denied" with an empty
//!   body, for an anonymous user; a foreign `Origin` is refused the same way);
//! - error responses that carry a body of their own: the login form answered with 429, the JSON
//!   of `/healthz` with 503.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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

    /// Logs the error with what the page will not say.
    fn log(&self) {
        match self {
            WebError::DisallowedHost(_) | WebError::BadRequest(_) => tracing::warn!("{self}"),
            WebError::Csrf(reason) => tracing::warn!("Forbidden (CSRF): {reason}"),
            WebError::NotFound | WebError::UpgradeRequired => {}
            WebError::TooManyRequests { what, .. } => tracing::info!("429: {what}"),
            WebError::Store(e) if e.is_unavailable() => tracing::error!("{e}"),
            WebError::Store(_) | WebError::Template(_) => {
                tracing::error!("internal error: {self}")
            }
        }
    }
}

/// Marks a response whose body a template replaces.
#[derive(Clone, Debug)]
struct ErrorPage {
    template: &'static str,
    /// The CSRF failure's reason (Django shows it on `403_csrf.html`).
    reason: Option<String>,
}

/// The project's page for a status.
fn template_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "400.html",
        403 => "403.html",
        404 => "404.html",
        405 => "405.html",
        413 => "413.html",
        426 => "426.html",
        429 => "429.html",
        500 => "500.html",
        503 => "503.html",
        _ => "error.html",
    }
}

/// Django's `ERROR_PAGE_TEMPLATE` (what it sends when the page's template is missing): the
/// body of last resort, when a template cannot be rendered.
fn plain_page(status: StatusCode) -> String {
    let title = format!(
        "{} ({})",
        status.canonical_reason().unwrap_or("Error"),
        status.as_u16()
    );
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>{title}</title>\n</head>\n<body>\n  <h1>{title}</h1><p></p>\n</body>\n</html>\n"
    )
}

fn html_content_type(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let reason = match &self {
            WebError::Csrf(reason) => Some(reason.reason()),
            _ => None,
        };
        let template = match &self {
            WebError::Csrf(_) => "403_csrf.html",
            _ => template_for(status),
        };
        let mut response = (status, plain_page(status)).into_response();
        let headers = response.headers_mut();
        html_content_type(headers);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let WebError::TooManyRequests { retry_after, .. } = &self
            && let Ok(value) = HeaderValue::from_str(&(*retry_after).max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let WebError::UpgradeRequired = self {
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
            .extensions_mut()
            .insert(ErrorPage { template, reason });
        response
    }
}

/// The response of `error` with its page rendered, for the places outside
/// [`render_error_pages`] (the `ALLOWED_HOSTS` check runs before it).
pub fn page_response(app: &AppState, error: WebError) -> Response {
    let mut response = error.into_response();
    match response.extensions_mut().remove::<ErrorPage>() {
        Some(page) => render(app, response, page, None),
        None => response,
    }
}

/// A response whose body the framework made, not a handler: none at all, or plain text (axum's
/// rejections, `ServeDir`'s errors, `StatusCode::into_response`).
fn is_bare(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"))
}

/// Whether the request asks to become a WebSocket (`Upgrade: websocket`).
fn is_websocket_handshake(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// Renders the page of every error response (see the module docs for the two kinds kept).
pub async fn render_error_pages(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let handshake = is_websocket_handshake(request.headers());
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let page = match response.extensions_mut().remove::<ErrorPage>() {
        Some(page) => page,
        None if !is_bare(&response) => return response,
        // Spec §4.2: the refused handshake is "403 Access denied" with an empty body.
        None if handshake && status == StatusCode::FORBIDDEN => return response,
        None => ErrorPage {
            template: template_for(status),
            reason: None,
        },
    };
    render(&app, response, page, Some(&method))
}

/// Replaces the body of `response` with `page`, keeping its status and headers.
fn render(
    app: &AppState,
    response: Response,
    page: ErrorPage,
    method: Option<&Method>,
) -> Response {
    let (mut parts, _) = response.into_parts();
    let status = parts.status;
    let retry_after = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let ctx = context! {
        reason => page.reason,
        retry_after => retry_after,
        method => method.map(Method::as_str),
        status => status.as_u16(),
        status_text => status.canonical_reason().unwrap_or("Error"),
    };
    let html = app
        .templates
        .render(page.template, ctx)
        .unwrap_or_else(|e| {
            tracing::error!("cannot render {}: {e}", page.template);
            plain_page(status)
        });
    parts.headers.remove(header::CONTENT_LENGTH);
    html_content_type(&mut parts.headers);
    Response::from_parts(parts, Body::from(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_the_server_answers_has_its_own_template() {
        for (code, name) in [
            (400, "400.html"),
            (403, "403.html"),
            (404, "404.html"),
            (405, "405.html"),
            (413, "413.html"),
            (426, "426.html"),
            (429, "429.html"),
            (500, "500.html"),
            (503, "503.html"),
            (416, "error.html"),
            (502, "error.html"),
        ] {
            assert_eq!(template_for(StatusCode::from_u16(code).unwrap()), name);
        }
    }

    #[test]
    fn plain_page_is_djangos_error_page_template() {
        assert_eq!(
            plain_page(StatusCode::BAD_REQUEST),
            "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n"
        );
    }

    #[test]
    fn errors_keep_their_headers_and_mark_their_page() {
        let response = WebError::UpgradeRequired.into_response();
        assert_eq!(response.status(), 426);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        let page = response.extensions().get::<ErrorPage>().unwrap();
        assert_eq!(page.template, "426.html");
        let response = WebError::TooManyRequests {
            what: "test",
            retry_after: 0,
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let page = response.extensions().get::<ErrorPage>().unwrap();
        assert_eq!(page.template, "429.html");
        let response = WebError::Csrf(CsrfRejection::NoCsrfCookie).into_response();
        let page = response.extensions().get::<ErrorPage>().unwrap();
        assert_eq!(page.template, "403_csrf.html");
        assert_eq!(page.reason.as_deref(), Some("CSRF cookie not set."));
    }

    #[test]
    fn handshakes_and_bare_responses_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_websocket_handshake(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c, WebSocket"));
        assert!(is_websocket_handshake(&headers));
        assert!(is_bare(&StatusCode::FORBIDDEN.into_response()));
        assert!(is_bare(
            &(StatusCode::PAYLOAD_TOO_LARGE, "x").into_response()
        ));
        assert!(!is_bare(
            &(StatusCode::TOO_MANY_REQUESTS, axum::response::Html("form")).into_response()
        ));
        assert!(!is_bare(
            &(StatusCode::SERVICE_UNAVAILABLE, axum::Json(1)).into_response()
        ));
    }
}
