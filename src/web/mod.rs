//! HTTP and WebSocket: the routes of the original app (spec §3, §4.1), the shared state every
//! handler sees, and the layers Django's middleware would apply (host check, security headers).
//!
//! | file | owns |
//! |---|---|
//! | `pages.rs` | index, login, logout, favicon, 404 / APPEND_SLASH redirects |
//! | `socket.rs` | `/chat/stream/`: handshake auth, the per-connection task |
//! | `conn.rs` | a socket's event loop: what woke it, the closes, writing and reading |
//! | `wire.rs` | a WebSocket after its handshake: tungstenite reads, frames written with no copy |
//! | `keepalive.rs` | the keep-alive pings of every socket, spread evenly by one wheel |
//! | `upgrade.rs` | the WebSocket opening handshake |
//! | `effects.rs` | a consumer's effects carried out through the broker |
//! | `session.rs` | Django sessions and `get_user`/`login`/`logout` for a request |
//! | `csrf.rs` | CSRF cookie, tokens and the request check |
//! | `security.rs` | `ALLOWED_HOSTS`, security headers, WebSocket `Origin` |
//! | `templates.rs` | minijinja with Django-exact escaping |
//! | `revocation.rs` | re-checks every open socket's session and user (`SESSION_RECHECK_SECONDS`) |
//! | `throttle.rs` | handshakes per address, sockets per user, failed logins |
//! | `error.rs` | the one mapping from errors to HTTP responses |
//! | `memory.rs` | hands freed memory back to the system after many sockets close |
//! | `access_log.rs` | the request span (request id, user id) and one runserver-style line per request |
//! | `health.rs` | `/healthz`, and `/metrics` on the metrics listener |
//! | `listener.rs` | the accept loop: header deadline, connection limits, bounded shutdown |

pub mod access_log;
pub mod conn;
pub mod csrf;
pub mod effects;
pub mod error;
pub mod hashing;
pub mod health;
pub mod keepalive;
pub mod listener;
pub mod memory;
pub mod pages;
pub mod revocation;
pub mod security;
pub mod session;
pub mod socket;
pub mod templates;
pub mod throttle;
pub mod upgrade;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::{any, get};
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::chat::presence::Presence;
use crate::config::Settings;
use crate::django::hashers::{self, HasherConfig};
use crate::fanout::Broker;
use crate::metrics::Metrics;
use crate::store::{RoomCache, SessionStore, Store};
use hashing::HashingPool;
use templates::Templates;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    /// `SESSION_ENGINE` over the database and the cache: load / save / delete a session.
    pub sessions: SessionStore,
    pub rooms: RoomCache,
    /// The Whisper fork's room presence (`room_users`).
    pub presence: Presence,
    pub broker: Arc<dyn Broker>,
    pub templates: Templates,
    pub hasher: HasherConfig,
    /// What `/metrics` reports (`METRICS_ADDR`).
    pub metrics: Arc<Metrics>,
    /// Password checks: `PASSWORD_HASHING_CONCURRENCY` low-priority threads.
    hashing: HashingPool,
    next_conn_id: AtomicU64,
    /// Open WebSocket connections, so shutdown can wait for their leave notices.
    open_sockets: AtomicU64,
    /// The most sockets open at once since `web::memory` last looked.
    open_peak: AtomicU64,
    sockets_closed: tokio::sync::Notify,
    /// Flips to `true` when the server shuts down; sockets then close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// `WS_HANDSHAKES_PER_MINUTE`, per client address.
    pub handshakes: throttle::KeyedBuckets<std::net::IpAddr>,
    /// `WS_MAX_SOCKETS_PER_USER`.
    pub user_sockets: throttle::UserSlots,
    /// `LOGIN_FAILURES_PER_USERNAME` / `_PER_ADDRESS` in `LOGIN_FAILURE_WINDOW`.
    pub login_failures: throttle::LoginFailures,
    /// Open sockets, re-checked by `revocation::run`.
    pub live_sockets: revocation::LiveSockets,
    /// Every socket's keep-alive turn (`WS_PING_INTERVAL`).
    pub keepalive: keepalive::PingWheel,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What [`AppState::new`] is made of, opened by `startup`.
pub struct Parts {
    pub store: Store,
    pub sessions: SessionStore,
    pub presence: Presence,
    pub broker: Arc<dyn Broker>,
    pub templates: Templates,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(settings: Settings, parts: Parts, shutdown: watch::Receiver<bool>) -> AppState {
        let Parts {
            store,
            sessions,
            presence,
            broker,
            templates,
            metrics,
        } = parts;
        let rooms = RoomCache::new(store.clone(), settings.room_cache_ttl);
        let hasher = settings.password_hashers.clone();
        let hashing = HashingPool::new(settings.password_hashing_concurrency);
        let limits = &settings.limits;
        let handshakes = throttle::KeyedBuckets::new(limits.ws_handshakes);
        let user_sockets = throttle::UserSlots::new(limits.ws_max_sockets_per_user);
        let keepalive = keepalive::PingWheel::new(limits.ws_ping_interval);
        let login_failures = throttle::LoginFailures::new(
            limits.login_failures_per_username,
            limits.login_failures_per_address,
            limits.login_failure_window,
        );
        AppState(Arc::new(Inner {
            settings,
            store,
            sessions,
            rooms,
            presence,
            broker,
            templates,
            hasher,
            metrics,
            hashing,
            next_conn_id: AtomicU64::new(1),
            open_sockets: AtomicU64::new(0),
            open_peak: AtomicU64::new(0),
            sockets_closed: tokio::sync::Notify::new(),
            shutdown,
            handshakes,
            user_sockets,
            login_failures,
            live_sockets: revocation::LiveSockets::default(),
            keepalive,
        }))
    }

    /// SECRET_KEY followed by SECRET_KEY_FALLBACKS: the keys that may verify a signature.
    pub fn secret_keys(&self) -> Vec<String> {
        let mut keys = vec![self.settings.secret().to_string()];
        keys.extend(self.settings.fallback_secrets());
        keys
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts an open socket until the guard is dropped.
    pub fn socket_opened(&self) -> SocketGuard {
        let open = self.open_sockets.fetch_add(1, Ordering::AcqRel) + 1;
        self.open_peak.fetch_max(open, Ordering::Relaxed);
        SocketGuard(self.clone())
    }

    /// The most sockets open at once since the last call (at least those open now).
    pub fn take_open_peak(&self) -> u64 {
        self.open_peak.swap(self.open_sockets(), Ordering::Relaxed)
    }

    pub fn open_sockets(&self) -> u64 {
        self.open_sockets.load(Ordering::Acquire)
    }

    /// Waits until every socket has finished (after a shutdown signal they close with 1001).
    pub async fn sockets_drained(&self) {
        loop {
            let notified = self.sockets_closed.notified();
            if self.open_sockets() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// `check_password` on the hashing threads, at most `PASSWORD_HASHING_CONCURRENCY` at
    /// once: `(matches, rehashed value to store)`.
    pub async fn check_password(
        &self,
        password: String,
        encoded: String,
    ) -> (bool, Option<String>) {
        let cfg = self.hasher.clone();
        let _timer = self.metrics.login_hash.start();
        self.hashing
            .run(move || hashers::check_password(&password, &encoded, &cfg))
            .await
            .unwrap_or((false, None))
    }

    /// What `ModelBackend` does for an unknown username: one hash, so timing does not tell.
    pub async fn run_dummy_hash(&self) {
        let cfg = self.hasher.clone();
        let _timer = self.metrics.login_hash.start();
        self.hashing
            .run(move || hashers::run_dummy_hash(&cfg))
            .await;
    }
}

/// Keeps [`AppState::open_sockets`] honest whatever ends a connection task.
pub struct SocketGuard(AppState);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.0.open_sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.sockets_closed.notify_waiters();
        }
    }
}

/// The application's routes and layers.
pub fn router(state: AppState) -> Router {
    let static_files =
        ServeDir::new(state.settings.static_dir()).append_index_html_on_directories(false);
    Router::new()
        .route("/", get(pages::index))
        .route(
            "/accounts/login/",
            get(pages::login_form).post(pages::login_submit),
        )
        .route("/accounts/logout/", any(pages::logout))
        .route("/chat/stream/", get(socket::handshake))
        .route("/healthz", get(health::healthz))
        .route("/favicon.ico", get(pages::favicon))
        .nest_service("/static", static_files)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::render_error_pages,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::django_middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access_log::access_log,
        ))
        .with_state(state)
}

/// The metrics listener's routes (`METRICS_ADDR`): `GET /metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(state)
}
