//! Whisper and Python Channels on one channel layer (`CHANNEL_LAYERS`), with real Python:
//! channels + channels_redis from the compat venv, the real Redis on 127.0.0.1:6379 (each test
//! isolated by its own random `prefix`), for both `RedisPubSubChannelLayer` and
//! `RedisChannelLayer`:
//!
//! 1. Django code calling `group_send("room-<id>", {"type": "chat.message", …})`
//!    (`compat/layer_tool.py send`) reaches Whisper's members with the original's bytes;
//! 2. Whisper's events reach Django code listening on the group (`layer_tool.py listen`) as
//!    the original's event dicts;
//! 3. a mixed fleet: two Whisper processes and the original-like consumer under uvicorn
//!    (pub/sub layer) or daphne (core layer) serve one room together: joins, messages both
//!    ways in per-sender order, exactly once, byte-identical on every side, leaves on
//!    disconnect.
//!
//! 4. one Redis command per room event (PUBLISH / the core layer's EVALSHA), and recovery
//!    after a private redis-server is killed and restarted.
//!
//! A missing venv or Redis fails these tests; nothing is skipped.

mod common;

use std::time::Duration;

use common::channel_layer::{CORE, Layer, PUBSUB, frames};
use common::python::Server;
use common::redis_server::{PrivateRedis, command_calls};
use common::{TestServer, UNTHROTTLED, healthz, join, send, ws_to};

async fn fixture(backend: &str) -> (tempfile::TempDir, Layer) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("shared.sqlite3").display());
    (dir, Layer::new(backend, &url))
}

async fn django_code_reaches_whisper_members(backend: &str) {
    let (_dir, layer) = fixture(backend).await;
    let whisper = layer.whisper().await;
    let room = whisper.create_room("Lobby", false).await;
    let mut members = Vec::new();
    for name in ["ann", "ben"] {
        let id = whisper.create_user(name, false).await;
        let mut ws = whisper.ws_for(id).await;
        assert_eq!(
            ws.call(&join(&room.to_string())).await,
            format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
        );
        members.push(ws);
    }
    // ben's enter notice reached ann.
    assert_eq!(
        members[0].recv().await,
        format!(r#"{{"msg_type": 4, "room": {room}, "username": "ben"}}"#)
    );
    let group = format!("room-{room}");
    layer
        .group_send(
            &group,
            &[
                r#"{"type": "chat.join", "room_id": 7, "username": "bot"}"#,
                r#"{"type": "chat.message", "room_id": "7", "username": "bot", "message": {"text": "caf\u00e9 \u2603", "n": [1, 2.5, null, true]}}"#,
                // No handler in the original consumer: Whisper skips it, the socket lives on.
                r#"{"type": "chat.shout", "room_id": 7, "username": "bot"}"#,
                r#"{"type": "chat.message", "room_id": 7, "username": "bot"}"#,
                r#"{"type": "chat.leave", "room_id": 7, "username": "bot", "extra": 1}"#,
            ],
        )
        .await;
    for ws in &mut members {
        assert_eq!(
            ws.recv().await,
            r#"{"msg_type": 4, "room": 7, "username": "bot"}"#
        );
        assert_eq!(
            ws.recv().await,
            r#"{"msg_type": 0, "room": "7", "username": "bot", "message": {"text": "caf\u00e9 \u2603", "n": [1, 2.5, null, true]}}"#
        );
        assert_eq!(
            ws.recv().await,
            r#"{"msg_type": 5, "room": 7, "username": "bot"}"#
        );
    }
    // Still serving.
    let hello = send(&room.to_string(), r#""still here""#);
    members[0].send(&hello).await;
    for ws in &mut members {
        assert!(ws.recv().await.contains("still here"));
    }
}

async fn whisper_events_reach_django_code(backend: &str) {
    let (_dir, layer) = fixture(backend).await;
    let whisper = layer.whisper().await;
    let room = whisper.create_room("Lobby", false).await;
    let ann = whisper.create_user("ann", false).await;
    let mut listener = layer.listen(&format!("room-{room}"), 3).await;
    let mut ws = whisper.ws_for(ann).await;
    ws.call(&format!(r#"{{"command": "join", "room": "{room}"}}"#))
        .await;
    ws.send(&send(
        &format!("\"{room}\""),
        r#"{"a": [1, -2, 3.5e300, "\u00fc"]}"#,
    ))
    .await;
    ws.recv().await;
    ws.call(&format!(r#"{{"command": "leave", "room": "{room}"}}"#))
        .await;
    let id = room.to_string();
    let expect = [
        serde_json::json!({"type": "chat.join", "room_id": id, "username": "ann"}),
        serde_json::json!({"type": "chat.message", "room_id": id, "username": "ann",
            "message": {"a": [1, -2, 3.5e300, "ü"]}}),
        serde_json::json!({"type": "chat.leave", "room_id": id, "username": "ann"}),
    ];
    for want in expect {
        let mut got = listener.next().await;
        // Whisper's own marker (bytes) rides along on the pub/sub layer; handlers ignore it.
        if backend == PUBSUB {
            let marker = got.as_object_mut().unwrap().remove("__whisper__");
            assert_eq!(marker, Some(serde_json::json!({"__bytes__": 16})));
        }
        assert_eq!(got, want);
    }
}

async fn mixed_fleet(backend: &str, server: Server) {
    let (dir, layer) = fixture(backend).await;
    let w1 = layer.whisper().await;
    let w2 = layer.whisper().await;
    let room = w1.create_room("Lobby", false).await;
    let (alice, bob, carol) = (
        w1.create_user("alice", false).await,
        w1.create_user("bob", false).await,
        w1.create_user("carol", false).await,
    );
    let python = layer.python_server(server, dir.path().join("python.log"));
    let r = room.to_string();

    let mut a = w1.ws_for(alice).await;
    assert_eq!(
        a.call(&join(&r)).await,
        format!(r#"{{"join": "{r}", "title": "Lobby"}}"#)
    );
    // bob, on the Python process, joins with the room as a string.
    let mut b = ws_to(python.addr, &w1.session_for(bob).await).await;
    assert_eq!(
        b.call(&join(&format!("\"{r}\""))).await,
        format!(r#"{{"join": "{r}", "title": "Lobby"}}"#)
    );
    assert_eq!(
        a.recv().await,
        format!(r#"{{"msg_type": 4, "room": "{r}", "username": "bob"}}"#)
    );
    let mut c = w2.ws_for(carol).await;
    c.call(&join(&r)).await;
    let carol_enter = format!(r#"{{"msg_type": 4, "room": {r}, "username": "carol"}}"#);
    assert_eq!(a.recv().await, carol_enter);
    assert_eq!(b.recv().await, carol_enter, "python: {}", python.log_text());

    // Everyone talks at once.
    const N: usize = 25;
    let body =
        |who: &str, i: usize| format!(r#"{{"from": "{who}", "i": {i}, "t": "h\u00e9 \u2603"}}"#);
    for i in 0..N {
        a.send(&send(&r, &body("alice", i))).await;
        b.send(&send(&format!("\"{r}\""), &body("bob", i))).await;
        c.send(&send(&r, &body("carol", i))).await;
    }
    let seen = [
        frames(&mut a, 3 * N).await,
        frames(&mut b, 3 * N).await,
        frames(&mut c, 3 * N).await,
    ];
    for (who, got) in ["alice", "bob", "carol"].iter().zip(&seen) {
        for sender in ["alice", "bob", "carol"] {
            let room_json = if sender == "bob" {
                format!("\"{r}\"")
            } else {
                r.clone()
            };
            let want: Vec<String> = (0..N)
                .map(|i| {
                    format!(
                        r#"{{"msg_type": 0, "room": {room_json}, "username": "{sender}", "message": {{"from": "{sender}", "i": {i}, "t": "h\u00e9 \u2603"}}}}"#
                    )
                })
                .collect();
            let from_sender: Vec<String> = got
                .iter()
                .filter(|f| f.contains(&format!(r#""username": "{sender}""#)))
                .cloned()
                .collect();
            assert_eq!(
                from_sender, want,
                "{who}'s view of {sender}'s messages (exactly once, in order, same bytes)"
            );
        }
    }

    // bob's Python socket goes away: the Whisper side hears the leave.
    b.close(1000).await;
    let bob_leave = format!(r#"{{"msg_type": 5, "room": "{r}", "username": "bob"}}"#);
    assert_eq!(a.recv().await, bob_leave);
    assert_eq!(c.recv().await, bob_leave);
    // carol's process (w2) stops: alice hears carol leave.
    c.close(1000).await;
    assert_eq!(
        a.recv().await,
        format!(r#"{{"msg_type": 5, "room": {r}, "username": "carol"}}"#)
    );
    a.expect_silence(300).await;
    drop(python);
}

/// `/healthz`'s channel-layer counters.
async fn redis_counters(server: &TestServer) -> serde_json::Value {
    healthz(server).await["redis_counters"].clone()
}

/// Polls `/healthz` until its `redis` field says `want`.
async fn wait_redis(server: &TestServer, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body: serde_json::Value = reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["redis"] == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz never said redis={want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two processes, four members: one Redis command per room event (`PUBLISH` on the pub/sub
/// layer, the send script's `EVALSHA` on the core layer), whatever the number of members; then
/// Redis restarts: local delivery never stops, cross-process delivery resumes by itself.
async fn one_command_per_event_and_restart(backend: &str, command: &str) {
    let mut redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:///{}", dir.path().join("shared.sqlite3").display());
    let layer = Layer::on(&redis.url(), backend, &db);
    let servers = [layer.whisper().await, layer.whisper().await];
    let room = servers[0].create_room("Lobby", false).await;
    let r = room.to_string();
    let mut members = Vec::new();
    for (i, server) in [0, 0, 1, 1].into_iter().enumerate() {
        let user = servers[0].create_user(&format!("user{i}"), false).await;
        let mut ws = servers[server].ws_for(user).await;
        ws.call(&join(&r)).await;
        members.push(ws);
    }
    for (i, ws) in members.iter_mut().enumerate() {
        for _ in i + 1..4 {
            assert!(ws.recv().await.starts_with(r#"{"msg_type": 4"#));
        }
    }
    let before = command_calls(&redis.url(), command).await;
    const M: usize = 20;
    for i in 0..M {
        members[i % 4].send(&send(&r, &format!("\"m{i}\""))).await;
    }
    for ws in members.iter_mut() {
        let got = frames(ws, M).await;
        assert!(
            got.iter().all(|f| f.starts_with(r#"{"msg_type": 0"#)),
            "{got:?}"
        );
    }
    let calls = command_calls(&redis.url(), command).await - before;
    println!("{backend}: {calls} {command} calls for {M} messages to 4 members on 2 processes");
    assert_eq!(calls, M as u64, "one {command} per room message");

    redis.kill();
    for s in &servers {
        wait_redis(s, "down").await;
    }
    members[0].send(&send(&r, "\"during\"")).await;
    for ws in &mut members[..2] {
        assert!(ws.recv().await.contains("during"));
    }
    members[2].expect_silence(300).await;

    redis.restart().await;
    for s in &servers {
        wait_redis(s, "ok").await;
    }
    members[0].send(&send(&r, "\"after\"")).await;
    members[3].send(&send(&r, "\"back\"")).await;
    for ws in members.iter_mut() {
        let mut got = frames(ws, 2).await;
        got.sort();
        assert!(
            got[0].contains("\"after\"") && got[1].contains("\"back\""),
            "{got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_layer_one_publish_per_event_and_redis_restart() {
    one_command_per_event_and_restart(PUBSUB, "publish").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_one_evalsha_per_event_and_redis_restart() {
    one_command_per_event_and_restart(CORE, "evalsha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_layer_django_code_reaches_whisper_members() {
    django_code_reaches_whisper_members(PUBSUB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_django_code_reaches_whisper_members() {
    django_code_reaches_whisper_members(CORE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_layer_whisper_events_reach_django_code() {
    whisper_events_reach_django_code(PUBSUB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_whisper_events_reach_django_code() {
    whisper_events_reach_django_code(CORE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_layer_mixed_fleet_with_uvicorn() {
    mixed_fleet(PUBSUB, Server::Uvicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_mixed_fleet_with_daphne() {
    mixed_fleet(CORE, Server::Daphne).await;
}

/// The largest `ZCARD` of any process queue (`prefix + "specific.*"`) until `stop` says so,
/// polled back to back (one script per poll, so each reading is one consistent moment).
async fn peak_queue(url: String, prefix: String, stop: tokio::sync::watch::Receiver<bool>) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let script = "local m = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  local n = redis.call('ZCARD', k) if n > m then m = n end end return m";
    let mut peak = 0;
    while !*stop.borrow() {
        let n: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .arg(format!("{prefix}specific.*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        peak = peak.max(n);
    }
    peak
}

/// Issue 9: with the default `capacity` (100), a burst of 1,000 messages from one sender
/// reaches the members on another process, all of them, in order; no process counts a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_burst_of_1000_crosses_processes_without_loss() {
    let redis = PrivateRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:///{}", dir.path().join("shared.sqlite3").display());
    let layer = Layer::on(&redis.url(), CORE, &db);
    // Room lookups cached, as in production: the burst reaches Redis as fast as Whisper can go.
    let [a, b, c] = UNTHROTTLED;
    let vars = [("ROOM_CACHE_TTL", "10"), a, b, c];
    let w1 = layer.whisper_with(&vars).await;
    let w2 = layer.whisper_with(&vars).await;
    let room = w1.create_room("Lobby", false).await;
    let r = room.to_string();
    let mut sender = w1.ws_for(w1.create_user("alice", false).await).await;
    sender.call(&join(&r)).await;
    let mut members = Vec::new();
    for name in ["bob", "carol"] {
        let mut ws = w2.ws_for(w1.create_user(name, false).await).await;
        ws.call(&join(&r)).await;
        members.push(ws);
    }
    frames(&mut sender, 2).await;
    frames(&mut members[0], 1).await;

    const N: usize = 1000;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(peak_queue(redis.url(), layer.prefix.clone(), stopped));
    let burst: Vec<String> = (0..N).map(|i| send(&r, &format!("\"m{i}\""))).collect();
    sender.send_all(&burst).await;
    for ws in members.iter_mut().chain([&mut sender]) {
        let got = frames(ws, N).await;
        for (i, frame) in got.iter().enumerate() {
            assert_eq!(
                *frame,
                format!(
                    r#"{{"msg_type": 0, "room": {r}, "username": "alice", "message": "m{i}"}}"#
                )
            );
        }
    }
    stop.send(true).unwrap();
    let peak = poller.await.unwrap();
    println!(
        "core layer: a burst of {N} crossed processes; peak queue length {peak} (capacity 100)"
    );
    for server in [&w1, &w2] {
        let counters = redis_counters(server).await;
        assert_eq!(counters["over_capacity"], 0, "{counters}");
        assert_eq!(counters["publish_failures"], 0, "{counters}");
    }
}
