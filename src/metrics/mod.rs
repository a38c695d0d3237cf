//! Prometheus metrics: what the process counts, and the text exposition `/metrics` serves.
//!
//! A leaf module, like `config`: every layer may record into it, it depends on none. One
//! [`Metrics`] value per server (no global registry, so tests run many servers in a process),
//! built on `prometheus-client` (the Prometheus project's own Rust client). Counters are one
//! relaxed atomic add; histograms take a short lock, so they are recorded per event or per
//! query, never per delivered frame. Values that already exist elsewhere (open sockets, room
//! memberships, the Redis broker's counters, the process's memory and descriptors) are read
//! when scraped, through [`Live`], and cost nothing between scrapes.
//!
//! The label values are a fixed, small set (command names, error codes, close reasons,
//! outcomes, HTTP methods and statuses): nothing a client sends becomes a label, so the number
//! of series is bounded.

mod process;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`] (OpenMetrics 1.0 text, which Prometheus and every
/// text-format parser read).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels1 = [(&'static str, &'static str); 1];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    code: &'static str,
    reason: &'static str,
}

/// A latency histogram in seconds; cheap to clone (the clones share their buckets).
#[derive(Clone, Debug)]
pub struct Latency(Histogram);

impl Latency {
    /// Buckets from 50 µs to ~13 s (×2 each), wide enough for a cached lookup and a slow hash.
    fn new() -> Latency {
        Latency(Histogram::new(exponential_buckets(0.000_05, 2.0, 19)))
    }

    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }

    /// Observes the time until the returned guard is dropped (early returns included).
    pub fn start(&self) -> Timer<'_> {
        Timer(self, std::time::Instant::now())
    }
}

/// See [`Latency::start`].
pub struct Timer<'a>(&'a Latency, std::time::Instant);

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.0.observe(self.1.elapsed());
    }
}

/// How a WebSocket handshake ended.
#[derive(Clone, Copy, Debug)]
pub enum Handshake {
    Accepted,
    /// No session, or a session whose user is gone or whose auth hash no longer matches: 403.
    Anonymous,
    /// A browser `Origin` of another site: 403.
    ForeignOrigin,
    /// `WS_HANDSHAKES_PER_MINUTE` or `WS_MAX_SOCKETS_PER_USER`: 429.
    Throttled,
    /// The database or the session cache could not be reached: 503.
    Unavailable,
}

impl Handshake {
    fn label(self) -> &'static str {
        match self {
            Handshake::Accepted => "accepted",
            Handshake::Anonymous => "anonymous",
            Handshake::ForeignOrigin => "foreign_origin",
            Handshake::Throttled => "throttled",
            Handshake::Unavailable => "unavailable",
        }
    }
}

/// How a `POST` to the login page ended.
#[derive(Clone, Copy, Debug)]
pub enum Login {
    Success,
    /// Wrong username or password, or an inactive user.
    InvalidCredentials,
    /// A required field missing or too long (no password checked).
    InvalidForm,
    /// The username or address is locked out (`LOGIN_FAILURES_PER_*`): 429, no password checked.
    LockedOut,
}

impl Login {
    fn label(self) -> &'static str {
        match self {
            Login::Success => "success",
            Login::InvalidCredentials => "invalid_credentials",
            Login::InvalidForm => "invalid_form",
            Login::LockedOut => "locked_out",
        }
    }
}

/// The protocol's commands (spec §4), for `whisper_commands_total`.
pub const COMMANDS: [&str; 4] = ["join", "leave", "send", "room_users"];

/// One Redis broker's counters, read at scrape time (`fanout::RedisStatus`).
#[derive(Clone, Debug, Default)]
pub struct BrokerCounters {
    /// `whisper`, `pubsub` or `core` (`config::LayerFormat`).
    pub format: &'static str,
    pub published: u64,
    pub publish_failures: u64,
    pub over_capacity: u64,
    pub received: u64,
    pub ignored: u64,
    pub reconnects: u64,
    pub hosts_up: usize,
    pub hosts: usize,
}

/// What exists elsewhere and is read when `/metrics` is scraped.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub open_sockets: u64,
    /// (socket, room) pairs on this process.
    pub room_memberships: u64,
    /// Rooms with at least one member on this process.
    pub active_rooms: u64,
    pub broker: Option<BrokerCounters>,
}

/// Every metric a server records. Fields are handles: cloning one shares its value.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    handshakes: Family<Labels1, Counter>,
    logins: Family<Labels1, Counter>,
    /// Indexed like [`COMMANDS`].
    commands: [Counter; 4],
    frames_received: Counter,
    refused: Family<Labels1, Counter>,
    closes: Family<CloseLabels, Counter>,
    /// Frames written to WebSockets (replies and room events).
    pub deliveries: Counter,
    /// Each SQL statement on Django's database.
    pub db_query: Latency,
    /// A password check on the hashing threads, queueing included.
    pub login_hash: Latency,
    /// Handing one room event to every member's queue on this process (`group_send`).
    pub fanout: Latency,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("whisper");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method and status",
            http_requests.clone(),
        );
        let handshakes = Family::<Labels1, Counter>::default();
        registry.register(
            "websocket_handshakes",
            "WebSocket handshakes at /chat/stream/, by outcome",
            handshakes.clone(),
        );
        let logins = Family::<Labels1, Counter>::default();
        registry.register(
            "logins",
            "Login form submissions, by outcome",
            logins.clone(),
        );
        let command_family = Family::<Labels1, Counter>::default();
        registry.register(
            "commands",
            "Commands accepted from WebSocket clients (send = chat messages in)",
            command_family.clone(),
        );
        let commands = COMMANDS.map(|c| command_family.get_or_create(&[("command", c)]).clone());
        let frames_received = Counter::default();
        registry.register(
            "frames_received",
            "Text frames received from WebSocket clients, refused ones included",
            frames_received.clone(),
        );
        let refused = Family::<Labels1, Counter>::default();
        registry.register(
            "frames_refused",
            "Frames answered with an error, by error code (RATE_LIMITED, TOO_MANY_ROOMS, …)",
            refused.clone(),
        );
        let closes = Family::<CloseLabels, Counter>::default();
        registry.register(
            "websocket_closes",
            "WebSocket connections ended, by close code sent (none: the client closed or \
             vanished) and reason",
            closes.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Frames written to WebSocket clients (replies and room events)",
            deliveries.clone(),
        );
        let db_query = Latency::new();
        registry.register(
            "db_query_duration_seconds",
            "SQL statements on Django's database",
            db_query.0.clone(),
        );
        let login_hash = Latency::new();
        registry.register(
            "password_check_duration_seconds",
            "Password checks (login hashing), waiting for a hashing thread included",
            login_hash.0.clone(),
        );
        let fanout = Latency::new();
        registry.register(
            "fanout_duration_seconds",
            "Handing one room event to every member's queue on this process",
            fanout.0.clone(),
        );
        Metrics {
            registry,
            http_requests,
            handshakes,
            logins,
            commands,
            frames_received,
            refused,
            closes,
            deliveries,
            db_query,
            login_hash,
            fanout,
        }
    }

    pub fn http_request(&self, method: &axum::http::Method, status: u16) {
        let method = match *method {
            axum::http::Method::GET => "GET",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::POST => "POST",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels { method, status })
            .inc();
    }

    pub fn handshake(&self, outcome: Handshake) {
        self.handshakes
            .get_or_create(&[("outcome", outcome.label())])
            .inc();
    }

    pub fn login(&self, outcome: Login) {
        self.logins
            .get_or_create(&[("outcome", outcome.label())])
            .inc();
    }

    pub fn frame_received(&self) {
        self.frames_received.inc();
    }

    /// A command of [`COMMANDS`] (by index) was carried out.
    pub fn command(&self, index: usize) {
        if let Some(counter) = self.commands.get(index) {
            counter.inc();
        }
    }

    /// A frame was answered with `{"error": code}` (`chat::protocol::ClientError::code`).
    pub fn refused(&self, code: &'static str) {
        self.refused.get_or_create(&[("error", code)]).inc();
    }

    /// A connection ended; `code` is the close code the server sent, if it sent one.
    pub fn closed(&self, code: Option<u16>, reason: &'static str) {
        let code = match code {
            Some(1000) => "1000",
            Some(1001) => "1001",
            Some(1002) => "1002",
            Some(1003) => "1003",
            Some(1007) => "1007",
            Some(1009) => "1009",
            Some(1011) => "1011",
            Some(1013) => "1013",
            Some(4001) => "4001",
            Some(4002) => "4002",
            Some(4003) => "4003",
            Some(_) => "other",
            None => "none",
        };
        self.closes
            .get_or_create(&CloseLabels { code, reason })
            .inc();
    }

    /// The text exposition: the counters above, then `live`'s values and the process's.
    pub fn render(&self, live: &Live) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &live_registry(live));
        let _ = encode_registry(&mut out, &process::registry());
        let _ = encode_eof(&mut out);
        out
    }
}

/// A registry of constant values, made for one scrape.
fn live_registry(live: &Live) -> Registry {
    let mut r = Registry::with_prefix("whisper");
    r.register(
        "open_sockets",
        "WebSocket connections open now",
        ConstGauge::new(live.open_sockets as i64),
    );
    r.register(
        "room_memberships",
        "Joined (socket, room) pairs on this process",
        ConstGauge::new(live.room_memberships as i64),
    );
    r.register(
        "active_rooms",
        "Rooms with at least one member on this process",
        ConstGauge::new(live.active_rooms as i64),
    );
    if let Some(b) = &live.broker {
        let broker = r.sub_registry_with_label(("format".into(), b.format.into()));
        let counters = [
            (
                "broker_published",
                "Events the Redis broker handed to Redis",
                b.published,
            ),
            (
                "broker_publish_failures",
                "Events that never reached Redis (queue full, Redis down, a failed pipeline)",
                b.publish_failures,
            ),
            (
                "broker_over_capacity",
                "RedisChannelLayer: messages not queued because a member process's queue was full",
                b.over_capacity,
            ),
            (
                "broker_received",
                "Events from other processes handed to local members",
                b.received,
            ),
            (
                "broker_ignored",
                "Payloads from Redis that were not chat events",
                b.ignored,
            ),
            (
                "broker_reconnects",
                "Redis connections made again after they were lost",
                b.reconnects,
            ),
        ];
        for (name, help, value) in counters {
            broker.register(name, help, ConstCounter::new(value));
        }
        broker.register(
            "broker_hosts_up",
            "Redis hosts whose connections are all up",
            ConstGauge::new(b.hosts_up as i64),
        );
        broker.register(
            "broker_hosts",
            "Redis hosts configured (CHANNEL_LAYERS hosts)",
            ConstGauge::new(b.hosts as i64),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_live_values_and_the_process() {
        let m = Metrics::new();
        m.handshake(Handshake::Accepted);
        m.command(2);
        m.command(2);
        m.refused("RATE_LIMITED");
        m.closed(Some(1013), "queue_full");
        m.deliveries.inc_by(5);
        m.db_query.observe(Duration::from_millis(2));
        let text = m.render(&Live {
            open_sockets: 3,
            broker: Some(BrokerCounters {
                format: "pubsub",
                published: 7,
                ..BrokerCounters::default()
            }),
            ..Live::default()
        });
        for line in [
            "whisper_websocket_handshakes_total{outcome=\"accepted\"} 1",
            "whisper_commands_total{command=\"send\"} 2",
            "whisper_commands_total{command=\"join\"} 0",
            "whisper_frames_refused_total{error=\"RATE_LIMITED\"} 1",
            "whisper_websocket_closes_total{code=\"1013\",reason=\"queue_full\"} 1",
            "whisper_deliveries_total 5",
            "whisper_db_query_duration_seconds_count 1",
            "whisper_open_sockets 3",
            "whisper_broker_published_total{format=\"pubsub\"} 7",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_open_fds "));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
