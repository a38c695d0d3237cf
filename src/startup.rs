//! Wiring: settings → store, templates, broker → router → `serve(listener, shutdown)`.
//!
//! `main` and every integration test go through [`serve`]; tests pass a listener bound to
//! port 0 and their own shutdown future, so many servers run in one process.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chat::presence::Presence;
use crate::config::{CacheConfig, LayerFormat, Settings};
use crate::fanout::{Broker, LocalHub, RedisBroker};
use crate::metrics::Metrics;
use crate::store::{DjangoCache, SessionStore, Store, StoreError};
use crate::web::health::BrokerHealth;
use crate::web::listener::{self, ListenLimits};
use crate::web::templates::Templates;
use crate::web::{self, AppState, Parts};

/// What is opened once at startup and passed on: the settings with `SECRET_KEY` resolved, and
/// the database, checked to be migrated and to hold the user model's table.
pub struct Opened {
    pub settings: Settings,
    pub store: Store,
    /// `SECRET_KEY` was generated now (and stored beside the SQLite file); the caller says so.
    pub generated_secret_key: bool,
}

/// Resolves `SECRET_KEY` and opens the database: each once, for `runserver` and [`serve`].
pub async fn open(mut settings: Settings) -> anyhow::Result<Opened> {
    let generated_secret_key = settings.resolve_secret_key()?;
    let store = Store::connect(
        &settings.database_url,
        settings.database_pool_size,
        settings.database_timeout,
        false,
    )
    .await
    .with_context(|| format!("cannot open the database {}", settings.database_url))?
    .with_user_model(&settings.user_model);
    match store.unapplied_migrations().await {
        Ok(todo) if todo.is_empty() => {}
        Ok(todo) => anyhow::bail!(
            "the database {} has {} unapplied migration(s): run ./manage migrate",
            settings.database_url,
            todo.len()
        ),
        Err(StoreError::Migration(msg)) => anyhow::bail!(
            "the database {} is not migrated ({msg}): run ./manage migrate",
            settings.database_url
        ),
        Err(e) => return Err(e.into()),
    }
    // A custom user model's table is read now, so a missing one stops the start with the
    // reason (the Django project's migrate creates it).
    store
        .user_table()
        .await
        .with_context(|| format!("the database {}", settings.database_url))?;
    Ok(Opened {
        settings,
        store,
        generated_secret_key,
    })
}

/// Builds the shared state from settings: [`open`], then [`build_opened`].
pub async fn build(
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<AppState> {
    Ok(build_opened(open(settings).await?, shutdown).await?.0)
}

/// Loads the templates, prepares the session engine (and its cache) and the presence, starts
/// the broker; also returns the broker handle `/healthz` reports on.
pub async fn build_opened(
    opened: Opened,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(AppState, BrokerHealth)> {
    let Opened {
        settings, store, ..
    } = opened;
    let metrics = Arc::new(Metrics::new());
    let store = store.with_query_latency(metrics.db_query.clone());
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
            settings,
            Parts {
                store,
                sessions,
                presence,
                broker,
                templates,
                metrics,
            },
            shutdown,
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

/// The sockets a server listens on: the site, and `/metrics` if `METRICS_ADDR` is set.
pub struct Listeners {
    pub http: TcpListener,
    /// Bound by the caller (tests bind port 0); `None` with `METRICS_ADDR` set: bound here.
    pub metrics: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(http: TcpListener) -> Listeners {
        Listeners {
            http,
            metrics: None,
        }
    }
}

/// Serves HTTP and WebSockets on `listener` until `shutdown` resolves; open sockets are then
/// closed with 1001 after their leave notices, within `SHUTDOWN_TIMEOUT`.
pub async fn serve(
    settings: Settings,
    listener: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let opened = open(settings).await?;
    if opened.generated_secret_key {
        tracing::warn!(
            "SECRET_KEY was not set: generated one and stored it in {}",
            opened
                .settings
                .secret_key_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    serve_opened(opened, listener, shutdown).await
}

/// [`serve`] on what the caller already opened.
pub async fn serve_opened(
    opened: Opened,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners {
        http: listener,
        metrics,
    } = listeners.into();
    let metrics = match (metrics, opened.settings.metrics_addr) {
        (Some(bound), _) => Some(bound),
        (None, Some(addr)) => Some(
            web::listener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on METRICS_ADDR {addr}"))?,
        ),
        (None, None) => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (state, health) = build_opened(opened, stop_rx).await?;
    tokio::spawn(web::revocation::run(state.clone()));
    tokio::spawn(web::keepalive::run(state.clone()));
    tokio::spawn(web::memory::run(state.clone()));
    if let Some(listener) = metrics {
        let router = web::metrics_router(state.clone()).layer(axum::Extension(health.clone()));
        let mut stop = state.shutdown.clone();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
        }
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let app = web::router(state.clone()).layer(axum::Extension(health));
    let limits = &state.settings.limits;
    let listen = ListenLimits::of(limits);
    let shutdown = async move {
        shutdown.await;
        // Open sockets start their leave notices and 1001 closes at once
        // (`revocation::run` tells each).
        let _ = stop_tx.send(true);
    };
    // On a worker of its own, not on the thread that awaits this (`runserver`'s main thread
    // under `block_on`): there every accepted connection was a wake across threads, which held
    // a connect storm to about one core (issue 12).
    let accepting = listener::serve(listener, app, listen, shutdown, limits.shutdown_timeout);
    let deadline = tokio::spawn(accepting)
        .await
        .context("the accept loop failed")?;
    // Upgraded sockets outlive hyper's connections: they share the deadline to send their
    // leave notices and close frames.
    if tokio::time::timeout_at(deadline, state.sockets_drained())
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
