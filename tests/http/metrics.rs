//! `/metrics` on its own listener (`METRICS_ADDR`), scraped during real traffic (logins through
//! the form, WebSockets joining, sending, refused and closed) and parsed by the Prometheus
//! project's Python parser (`prometheus_client`, both its OpenMetrics and its classic text
//! parser): every counter must equal the traffic the test made.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::common::login::browser_login;
use super::common::python::COMPAT;
use super::common::*;

/// Prints every sample as a JSON line `[name, labels, value]`; with `classic`, through the
/// classic text-format parser (which must read the same exposition).
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic
text = open(sys.argv[1]).read()
parse = classic if sys.argv[2] == "classic" else openmetrics
for family in parse(text):
    for s in family.samples:
        print(json.dumps([s.name, s.labels, s.value]))
"#;

/// `(name, sorted labels)` → value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

async fn scrape(server: &TestServer) -> (String, Samples) {
    let addr = server.metrics_addr.expect("started with METRICS_ADDR");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let file = server.dir.path().join("scrape.txt");
    std::fs::write(&file, &text).unwrap();
    let mut parsed = Vec::new();
    for parser in ["openmetrics", "classic"] {
        let out = Command::new(format!("{COMPAT}/.venv/bin/python"))
            .args(["-c", PARSE])
            .arg(&file)
            .arg(parser)
            .output()
            .expect("compat/.venv's python (compat/bootstrap.sh)");
        assert!(
            out.status.success(),
            "the {parser} parser refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut samples = Samples::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (name, labels, value): (String, HashMap<String, String>, f64) =
                serde_json::from_str(line).unwrap();
            let mut labels: Vec<_> = labels.into_iter().collect();
            labels.sort();
            samples.insert((name, labels), value);
        }
        parsed.push(samples);
    }
    let classic = parsed.pop().unwrap();
    let openmetrics = parsed.pop().unwrap();
    for (key, value) in &openmetrics {
        // The classic parser knows no `_created`/exemplars; everything else must agree.
        if let Some(other) = classic.get(key) {
            assert_eq!(value, other, "{key:?}");
        }
    }
    assert!(classic.len() >= openmetrics.len() / 2, "{text}");
    (text, openmetrics)
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    key.sort();
    *samples
        .get(&(name.to_string(), key))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// Reads frames until the socket is quiet; returns how many text frames came.
async fn drain(ws: &mut Ws) -> u64 {
    let mut n = 0;
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(Duration::from_millis(300), ws.stream.next()).await
    {
        if let Message::Text(_) = msg {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn metrics_count_the_traffic_and_a_prometheus_parser_reads_them() {
    let server = TestServer::start_with(&[("METRICS_ADDR", "127.0.0.1:0")]).await;
    server.create_user("alice", false).await;
    server.create_user("bob", false).await;
    let room = server.create_room("Lobby", false).await.to_string();
    let base = format!("http://{}", server.addr);

    // Logins: one wrong password, then both users.
    assert_eq!(browser_login(&base, "alice", "wrong").await, Err(200));
    let alice_key = browser_login(&base, "alice", PASSWORD).await.unwrap();
    let bob_key = browser_login(&base, "bob", PASSWORD).await.unwrap();
    // A handshake without a session: 403.
    assert!(server.ws(None, None).await.is_err());

    let mut alice = server.ws(Some(&alice_key), None).await.unwrap();
    let mut bob = server.ws(Some(&bob_key), None).await.unwrap();
    alice.send(&join(&room)).await;
    let mut delivered = drain(&mut alice).await;
    bob.send(&join(&room)).await;
    // Bob is in the room before alice sends (his join ack), so every message reaches him.
    assert!(bob.recv().await.starts_with(r#"{"join""#));
    delivered += 1;
    for i in 0..5 {
        alice.send(&send(&room, &format!("\"m{i}\""))).await;
    }
    alice.send("{not json").await;
    delivered += drain(&mut alice).await + drain(&mut bob).await;

    let (text, live) = scrape(&server).await;
    let counter = |name: &str, labels: &[(&str, &str)]| value(&live, name, labels);
    assert_eq!(counter("whisper_open_sockets", &[]), 2.0, "{text}");
    assert_eq!(counter("whisper_room_memberships", &[]), 2.0);
    assert_eq!(counter("whisper_active_rooms", &[]), 1.0);
    assert_eq!(
        counter("whisper_logins_total", &[("outcome", "success")]),
        2.0
    );
    assert_eq!(
        counter(
            "whisper_logins_total",
            &[("outcome", "invalid_credentials")]
        ),
        1.0
    );
    let handshakes = "whisper_websocket_handshakes_total";
    assert_eq!(counter(handshakes, &[("outcome", "accepted")]), 2.0);
    assert_eq!(counter(handshakes, &[("outcome", "anonymous")]), 1.0);
    assert_eq!(counter("whisper_frames_received_total", &[]), 8.0);
    assert_eq!(
        counter("whisper_commands_total", &[("command", "join")]),
        2.0
    );
    assert_eq!(
        counter("whisper_commands_total", &[("command", "send")]),
        5.0
    );
    assert_eq!(
        counter("whisper_frames_refused_total", &[("error", "BAD_REQUEST")]),
        1.0
    );
    // Every frame the clients read, and nothing more, was counted as delivered.
    assert_eq!(counter("whisper_deliveries_total", &[]), delivered as f64);
    assert!(delivered > 2 + 5 * 2, "{delivered}");
    // Three password checks (the wrong one included), one fan-out per send and notice.
    assert_eq!(
        counter("whisper_password_check_duration_seconds_count", &[]),
        3.0
    );
    assert!(counter("whisper_fanout_duration_seconds_count", &[]) >= 5.0);
    assert!(counter("whisper_db_query_duration_seconds_count", &[]) >= 5.0);
    let login_posts = counter(
        "whisper_http_requests_total",
        &[("method", "POST"), ("status", "302")],
    );
    assert_eq!(login_posts, 2.0);
    assert_eq!(
        counter(
            "whisper_http_requests_total",
            &[("method", "GET"), ("status", "101")]
        ),
        2.0
    );
    assert!(counter("process_resident_memory_bytes", &[]) > 1e6);
    assert!(counter("process_open_fds", &[]) >= 4.0);
    assert!(counter("process_cpu_seconds_total", &[]) > 0.0);

    // Closes, by code and reason: a binary frame (1003), then a client's own close.
    bob.send_binary(b"\x00").await;
    assert_eq!(bob.expect_close().await.0, 1003);
    alice.close(1000).await;
    let mut closed = HashMap::new();
    for _ in 0..50 {
        let (_, after) = scrape(&server).await;
        if value(&after, "whisper_open_sockets", &[]) == 0.0 {
            closed = after;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!closed.is_empty(), "the sockets did not close");
    let closes = "whisper_websocket_closes_total";
    assert_eq!(
        value(
            &closed,
            closes,
            &[
                ("code", "1003"),
                ("reason", "binary frames are not supported")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &closed,
            closes,
            &[("code", "none"), ("reason", "client closed")]
        ),
        1.0
    );
    assert_eq!(value(&closed, "whisper_room_memberships", &[]), 0.0);

    // Not on the site's port.
    let site = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(site.status(), 404);
    server.stop().await;
}
