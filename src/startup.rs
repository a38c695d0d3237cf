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

use crate::config::Settings;
use crate::fanout::{Broker, LocalHub, RedisBroker};
use crate::store::Store;
use crate::web::health::BrokerHealth;
use crate::web::templates::Templates;
use crate::web::{self, AppState};

/// Builds the shared state: resolves `SECRET_KEY`, connects the database (which must be
/// migrated), loads the templates, starts the broker.
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
    .with_context(|| format!("cannot open the database {}", settings.database_url))?;
    if !store.is_migrated().await? {
        anyhow::bail!(
            "the database {} is not migrated: run ./manage migrate",
            settings.database_url
        );
    }
    let templates = Templates::load(&settings.templates_dir())?;
    let (broker, health) = make_broker(&settings).await?;
    Ok((
        AppState::new(settings, store, broker, templates, shutdown),
        health,
    ))
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
