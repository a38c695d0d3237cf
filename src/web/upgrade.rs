//! The WebSocket opening handshake (RFC 6455 §4.2), in place of axum's `WebSocketUpgrade`: it
//! hands the connection over as a [`Wire`], on the TCP stream itself when the connection is
//! one of the listener's (hyper's upgraded stream, a box around it with buffers of its own,
//! is taken apart: about 1.3 KB less per member, issue 12).
//!
//! Refusals go through `WebError`: a request that is not a WebSocket upgrade → 400, a version
//! other than 13 or a connection that cannot be upgraded → 426 with `Sec-WebSocket-Version: 13`.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tungstenite::protocol::WebSocketConfig;

use crate::web::error::WebError;
use crate::web::wire::{Io, Wire};

/// A request that asked to become a WebSocket, checked; [`Upgrade::finish`] answers it.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    accept: HeaderValue,
    config: WebSocketConfig,
}

/// Whether a comma-separated header holds `token` (case-insensitive), as `Connection: keep-alive,
/// Upgrade` does.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, WebError> {
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
        {
            return Err(WebError::BadRequest("not a WebSocket upgrade"));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(WebError::UpgradeRequired);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|k| !k.is_empty())
            .ok_or(WebError::BadRequest("no Sec-WebSocket-Key"))?;
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(WebError::UpgradeRequired)?;
        Ok(Upgrade {
            on_upgrade,
            accept: HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
            config: WebSocketConfig::default(),
        })
    }
}

impl Upgrade {
    /// The protocol settings the socket will use.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Answers 101 and runs `handle` on the socket once hyper hands the connection over (a
    /// connection that fails the switch is dropped and logged). The socket gets a task of its
    /// own, which holds nothing of the wait for the switch.
    pub fn finish<F, Fut>(self, handle: F) -> Response
    where
        F: FnOnce(Wire) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade {
            on_upgrade,
            accept,
            config,
        } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (io, leftover) = Io::from_upgraded(upgraded);
                    tokio::spawn(handle(Wire::new(io, leftover, config)));
                }
                Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = response.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}
