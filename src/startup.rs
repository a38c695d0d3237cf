//! Wiring: settings → store, templates, broker → router → `serve(listener, shutdown)`.
//!
//! `main` and every integration test go through [`serve`]; tests pass a listener bound to
//! port 0 and their own shutdown future, so many servers run in one process.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chat::presence::Presence;
use crate::config::{CacheConfig, LayerFormat, Settings};
use crate::fanout::{Broker, LocalHub, RedisBroker};
use crate::store::{DjangoCache, SessionStore, Store};
use crate::web::health::BrokerHealth;
use crate::web::templates::Templates;
use crate::web::{self, AppState};

/// Builds the shared state: resolves `SECRET_KEY`, connects the database (which must be
/// migrated, and hold the user model's table), loads the templates, prepares the session engine
/// (and its cache), starts the broker.
pub async fn build(
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<AppState> {
    Ok(build_with_health(settings, shutdown).await?.0)
}

/// [`build`], plus the broker handle `/healthz` reports on.
pub async fn build_with_health(
    mut settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(AppState, BrokerHealth)> {
    if settings.resolve_secret_key()? {
        tracing::warn!(
            "SECRET_KEY was not set: generated one and stored it in {}",
            settings
                .secret_key_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let store = Store::connect(
        &settings.database_url,
        settings.database_pool_size,
        settings.database_timeout,
        false,
    )
    .await
    .with_context(|| format!("cannot open the database {}", settings.database_url))?
    .with_user_model(&settings.user_model);
    if !store.is_migrated().await? {
        anyhow::bail!(
            "the database {} is not migrated: run ./manage migrate",
            settings.database_url
        );
    }
    // A custom user model's table is read now, so a missing one stops the start with the
    // reason (the Django project's migrate creates it).
    store
        .user_table()
        .await
        .with_context(|| format!("the database {}", settings.database_url))?;
    let templates = Templates::load(&settings.templates_dir())?;
    // A cache session engine connects to its Redis at first use: a Redis that is down at
    // startup gives 503s until it is back, like a database outage.
    let sessions = SessionStore::new(&settings, store.clone()).with_context(|| {
        format!(
            "invalid CACHES[{:?}] LOCATION",
            settings.caches.session_cache_alias
        )
    })?;
    let presence = make_presence(&settings)?;
    let (broker, health) = make_broker(&settings).await?;
    Ok((
        AppState::new(
            settings, store, sessions, presence, broker, templates, shutdown,
        ),
        health,
    ))
}

/// Where the fork's room presence lives (`chat::presence`): `CACHES["default"]` when it is a
/// Redis cache (the fork's `django.core.cache.cache`), else `REDIS_URL`'s Redis, else this
/// process. Like the session cache it connects at first use.
fn make_presence(settings: &Settings) -> anyhow::Result<Presence> {
    let timeout = settings.room_presence_timeout;
    let redis_url = settings
        .channel_layer
        .as_ref()
        .filter(|layer| layer.format == LayerFormat::Whisper)
        .and_then(|layer| Some((layer.hosts.first()?, &layer.prefix)));
    let shared = match (settings.caches.aliases.get("default"), redis_url) {
        (Some(config), _) => Some(config.clone()),
        (None, Some((url, prefix))) => Some(CacheConfig::django_defaults(
            "REDIS_URL",
            url.clone(),
            prefix.trim_end_matches(':'),
        )),
        (None, None) => None,
    };
    if let Some(config) = shared {
        let cache = DjangoCache::new(&config)
            .with_context(|| format!("invalid Redis URL for room presence ({})", config.alias))?;
        return Ok(Presence::in_cache(cache, timeout));
    }
    if let Some(backend) = settings.caches.other_backends.get("default") {
        tracing::warn!(
            backend = %backend,
            "CACHES[\"default\"] cannot be shared with Whisper: room presence (room_users) is \
             kept in this process"
        );
    }
    Ok(Presence::in_memory(timeout))
}

/// `CHANNEL_LAYERS` / `REDIS_URL` set: the Redis broker (a Redis that is down at startup only
/// degrades it to local delivery while it retries); otherwise the in-process hub.
async fn make_broker(settings: &Settings) -> anyhow::Result<(Arc<dyn Broker>, BrokerHealth)> {
    let Some(layer) = &settings.channel_layer else {
        return Ok((Arc::new(LocalHub::new()), BrokerHealth::Local));
    };
    let broker = RedisBroker::connect(layer).await.with_context(|| {
        let urls: Vec<String> = layer
            .hosts
            .iter()
            .map(|url| crate::config::redact_url(url.expose()))
            .collect();
        format!("invalid Redis URL among {}", urls.join(", "))
    })?;
    if !broker.status().connected {
        tracing::warn!("starting with Redis unreachable: local delivery only until it is back");
    }
    Ok((broker.clone(), BrokerHealth::Redis(broker)))
}

/// Serves HTTP and WebSockets on `listener` until `shutdown` resolves; open sockets are then
/// closed with 1001 after their leave notices.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (state, health) = build_with_health(settings, stop_rx).await?;
    let app = web::router(state.clone()).layer(axum::Extension(health));
    // Small chat frames must leave at once: without TCP_NODELAY a write that follows an
    // unacknowledged one waits for the peer's delayed ACK (up to 40 ms; BENCHMARKS.md).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("server error")?;
    // Upgraded sockets outlive hyper's connection tracking: give them time to send their
    // leave notices and close frames.
    if tokio::time::timeout(SOCKET_DRAIN, state.sockets_drained())
        .await
        .is_err()
    {
        tracing::warn!(
            open = state.open_sockets(),
            "sockets still open at shutdown"
        );
    }
    Ok(())
}

/// How long shutdown waits for open sockets to close.
const SOCKET_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);
