//! `GET /healthz`: the state of what a process depends on, for load balancers and operators;
//! and `GET /metrics`, served on the metrics listener only (`METRICS_ADDR`).
//!
//! `{"status": "ok"|"degraded"|"unavailable", "database": "ok"|"unavailable",
//! "broker": "local"|"redis", "redis": "ok"|"down"|null, "open_sockets": N}`, and with Redis
//! `"redis_hosts": ["ok"|"down", …]` (each `CHANNEL_LAYERS` host, in config order; `"redis"`
//! is `"down"` when any is) and `"redis_counters"` (events published, publish failures,
//! messages dropped at a full queue, events received, payloads ignored).
//!
//! 503 only when the database is unreachable (no login, no page, no join works). With Redis
//! down the process still serves its own members, so it answers 200 with `"degraded"`: a
//! load balancer that pulled every instance during a Redis outage would turn a split room
//! into no chat at all; monitoring reads `status`/`redis` instead.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::LayerFormat;
use crate::fanout::RedisBroker;
use crate::metrics::{self, BrokerCounters, Live};
use crate::web::AppState;

/// Which broker the process runs, given to the router as an extension by `startup::serve`
/// (absent = the in-process hub).
#[derive(Clone)]
pub enum BrokerHealth {
    Local,
    Redis(Arc<RedisBroker>),
}

/// How long the database check may take before it counts as unavailable.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz(
    State(app): State<AppState>,
    broker: Option<Extension<BrokerHealth>>,
) -> Response {
    let database_ok = matches!(
        tokio::time::timeout(DB_CHECK_TIMEOUT, app.store.ping()).await,
        Ok(Ok(()))
    );
    let redis = match broker.map(|Extension(b)| b) {
        Some(BrokerHealth::Redis(b)) => Some(b.status()),
        Some(BrokerHealth::Local) | None => None,
    };
    let redis_up = redis.as_ref().map(|s| s.connected);
    let status = match (database_ok, redis_up) {
        (false, _) => "unavailable",
        (true, Some(false)) => "degraded",
        (true, _) => "ok",
    };
    let mut body = serde_json::json!({
        "status": status,
        "database": if database_ok { "ok" } else { "unavailable" },
        "broker": if redis.is_some() { "redis" } else { "local" },
        "redis": redis_up.map(|up| if up { "ok" } else { "down" }),
        "open_sockets": app.open_sockets(),
    });
    if let Some(s) = redis {
        let hosts: Vec<&str> = s
            .hosts
            .iter()
            .map(|up| if *up { "ok" } else { "down" })
            .collect();
        body["redis_hosts"] = serde_json::json!(hosts);
        body["redis_counters"] = serde_json::json!({
            "published": s.published,
            "publish_failures": s.publish_failures,
            "over_capacity": s.over_capacity,
            "received": s.received,
            "ignored": s.ignored,
        });
    }
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /metrics` on the metrics listener (`METRICS_ADDR`): the Prometheus text exposition.
pub async fn metrics(
    State(app): State<AppState>,
    broker: Option<Extension<BrokerHealth>>,
) -> Response {
    let (rooms, memberships) = app.broker.membership();
    let format = match app.settings.channel_layer.as_ref().map(|l| &l.format) {
        Some(LayerFormat::Whisper) | None => "whisper",
        Some(LayerFormat::PubSub) => "pubsub",
        Some(LayerFormat::Core(_)) => "core",
    };
    let broker = match broker.map(|Extension(b)| b) {
        Some(BrokerHealth::Redis(b)) => {
            let s = b.status();
            Some(BrokerCounters {
                format,
                published: s.published,
                publish_failures: s.publish_failures,
                over_capacity: s.over_capacity,
                received: s.received,
                ignored: s.ignored,
                reconnects: s.reconnects,
                hosts_up: s.hosts.iter().filter(|up| **up).count(),
                hosts: s.hosts.len(),
            })
        }
        Some(BrokerHealth::Local) | None => None,
    };
    let live = Live {
        open_sockets: app.open_sockets(),
        room_memberships: memberships as u64,
        active_rooms: rooms as u64,
        broker,
    };
    let body = app.metrics.render(&live);
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(metrics::CONTENT_TYPE),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ),
        ],
        body,
    )
        .into_response()
}
