//! The WebSocket opening handshake (RFC 6455 §4.2) and the socket type it yields, in place of
//! axum's `WebSocketUpgrade`: the connection is tokio-tungstenite's own stream, so the writer
//! can send a large message as fragments ([`send_text`]). tungstenite copies each frame whole
//! into a per-socket write buffer that never shrinks; sent whole, one 1 MiB message left 1 MiB
//! behind in every member's socket (100 MiB for a room of 100, issue 10). In fragments of
//! [`FRAGMENT_BYTES`] the buffer stays near its setting whatever the message size.
//!
//! Refusals go through `WebError`: a request that is not a WebSocket upgrade → 400, a version
//! other than 13 or a connection that cannot be upgraded → 426 with `Sec-WebSocket-Version: 13`.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use crate::web::error::WebError;

/// An upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Text messages longer than this go out as fragments of this size.
pub const FRAGMENT_BYTES: usize = 8 * 1024;

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
    /// connection that fails the switch is dropped and logged).
    pub fn finish<F, Fut>(self, handle: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
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
                    let io = TokioIo::new(upgraded);
                    let socket =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    handle(socket).await;
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

/// Queues one text message: whole up to [`FRAGMENT_BYTES`], in fragments past it (RFC 6455
/// §5.4; the payload is shared, not copied, until tungstenite writes each fragment). Flushing
/// is the caller's.
pub async fn send_text(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), tungstenite::Error> {
    if text.len() <= FRAGMENT_BYTES {
        return socket.feed(Message::Text(text)).await;
    }
    let bytes = bytes::Bytes::from(text);
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + FRAGMENT_BYTES).min(bytes.len());
        let opcode = if at == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(bytes.slice(at..end), opcode, end == bytes.len());
        socket.feed(Message::Frame(frame)).await?;
        at = end;
    }
    Ok(())
}
