//! Fan-out between Whisper processes over Redis (`src/fanout/redis.rs`), against real Redis:
//! the shared one on 127.0.0.1:6379 (each test isolated by its own random `REDIS_PREFIX`) and,
//! for the restart and PUBLISH-count tests, a private `redis-server` on a free port. A missing
//! Redis fails these tests; nothing is skipped.
//!
//! Several servers in one test share ONE SQLite database (the first server's file), as real
//! processes behind a load balancer share Django's database.
mod common;

use std::time::Duration;

use common::redis_server::{PrivateRedis, command_calls, numsub};
use common::*;
use serde_json::Value;
use tokio::time::Instant;

const SHARED_REDIS: &str = "redis://127.0.0.1:6379/0";
/// How long cross-process state (subscriptions, reconnection) may take to settle.
const SETTLE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn random_prefix() -> String {
    format!("whisper-test:{:016x}:", rand::random::<u64>())
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .unwrap_or_else(|_| panic!("Redis at {url} did not answer"))
    .unwrap_or_else(|e| panic!("Redis at {url} is required for these tests: {e}"))
}

/// Waits until exactly `n` processes subscribe to `channel`.
async fn wait_numsub(url: &str, channel: &str, n: i64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = numsub(url, channel).await;
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel}: {got} subscribers, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cmdstat_publish:calls=N` from `INFO commandstats`.
async fn publish_calls(url: &str) -> u64 {
    command_calls(url, "publish").await
}

/// `n` servers on one Redis and one database (the first server's SQLite file).
async fn cluster(n: usize, redis_url: &str, prefix: &str) -> Vec<TestServer> {
    let vars = [("REDIS_URL", redis_url), ("REDIS_PREFIX", prefix)];
    let first = TestServer::start_with(&vars).await;
    let db = format!(
        "sqlite:///{}",
        first.dir.path().join("db.sqlite3").display()
    );
    let mut servers = vec![first];
    for _ in 1..n {
        let with_db = [vars[0], vars[1], ("DATABASE_URL", db.as_str())];
        servers.push(TestServer::start_with(&with_db).await);
    }
    servers
}

fn parse(frame: &str) -> Value {
    serde_json::from_str(frame).unwrap_or_else(|e| panic!("{frame}: {e}"))
}

fn ack_join(id: i64, title: &str) -> String {
    format!(r#"{{"join": "{id}", "title": "{title}"}}"#)
}

fn ack_leave(id: i64) -> String {
    format!(r#"{{"leave": "{id}"}}"#)
}

fn enter(room: i64, user: &str) -> String {
    format!(r#"{{"msg_type": 4, "room": {room}, "username": "{user}"}}"#)
}

fn left(room: i64, user: &str) -> String {
    format!(r#"{{"msg_type": 5, "room": {room}, "username": "{user}"}}"#)
}

fn chat(room: i64, user: &str, message: &str) -> String {
    format!(r#"{{"msg_type": 0, "room": {room}, "username": "{user}", "message": "{message}"}}"#)
}

async fn healthz(server: &TestServer) -> (u16, Value) {
    let response = server
        .client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/healthz` until its `redis` field is `want`.
async fn wait_redis_health(server: &TestServer, want: &str) -> (u16, Value) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, body) = healthz(server).await;
        if body["redis"] == want {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "healthz never said redis={want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// (a) three processes, one room
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_deliver_every_message_once_in_order() {
    let prefix = random_prefix();
    let servers = cluster(3, SHARED_REDIS, &prefix).await;
    let (s1, s2, s3) = (&servers[0], &servers[1], &servers[2]);
    let room = s1.create_room("Lobby", false).await;
    let channel = format!("{prefix}room-{room}");
    let names = ["alice", "bob", "carol", "dave"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(s1.create_user(name, false).await);
    }
    // alice and dave on s1 (local + remote mix), bob on s2, carol on s3.
    let mut alice = s1.ws_for(ids[0]).await;
    let mut bob = s2.ws_for(ids[1]).await;
    let mut carol = s3.ws_for(ids[2]).await;
    let mut dave = s1.ws_for(ids[3]).await;
    let r = room.to_string();

    // Enter notices cross processes; a first join gets no self-notice (§4.12 row 1).
    assert_eq!(alice.call(&join(&r)).await, ack_join(room, "Lobby"));
    wait_numsub(SHARED_REDIS, &channel, 1).await;
    assert_eq!(bob.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(alice.recv().await, enter(room, "bob"));
    wait_numsub(SHARED_REDIS, &channel, 2).await;
    assert_eq!(carol.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(alice.recv().await, enter(room, "carol"));
    assert_eq!(bob.recv().await, enter(room, "carol"));
    wait_numsub(SHARED_REDIS, &channel, 3).await;
    assert_eq!(dave.call(&join(&r)).await, ack_join(room, "Lobby"));
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(ws.recv().await, enter(room, "dave"));
    }
    // A second local member adds no subscription.
    assert_eq!(numsub(SHARED_REDIS, &channel).await, 3);

    // Everyone sends K messages, interleaved; everyone receives all 4K exactly once, each
    // sender's in order (own echo included, §4.12 "send").
    const K: usize = 25;
    let mut clients = [alice, bob, carol, dave];
    for i in 0..K {
        for (c, name) in clients.iter_mut().zip(names) {
            c.send(&send(&r, &format!("\"{name}-{i}\""))).await;
        }
    }
    for (c, me) in clients.iter_mut().zip(names) {
        let mut next = [0usize; 4];
        for _ in 0..4 * K {
            let frame = parse(&c.recv().await);
            assert_eq!(frame["msg_type"], 0, "{me}: {frame}");
            let sender = frame["username"].as_str().unwrap();
            let s = names.iter().position(|n| *n == sender).unwrap();
            assert_eq!(
                frame["message"],
                format!("{sender}-{}", next[s]),
                "{me}: out of order or duplicated from {sender}"
            );
            next[s] += 1;
        }
        assert_eq!(next, [K; 4], "{me}");
    }
    for c in clients.iter_mut() {
        c.expect_silence(300).await;
    }
    let [mut alice, mut bob, mut carol, mut dave] = clients;

    // Re-join while subscribed: ack, then the own enter notice; the others on every process
    // get the notice too (§4.12 row 2).
    assert_eq!(bob.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(bob.recv().await, enter(room, "bob"));
    for ws in [&mut alice, &mut carol, &mut dave] {
        assert_eq!(ws.recv().await, enter(room, "bob"));
    }

    // Leave while subscribed: ack, then the own leave notice (row 3). s3 has no member left:
    // it unsubscribes.
    assert_eq!(carol.call(&leave(&r)).await, ack_leave(room));
    assert_eq!(carol.recv().await, left(room, "carol"));
    for ws in [&mut alice, &mut bob, &mut dave] {
        assert_eq!(ws.recv().await, left(room, "carol"));
    }
    wait_numsub(SHARED_REDIS, &channel, 2).await;

    // Sending after leaving: an error reply only, nothing for the others (row 6).
    assert_eq!(
        carol.call(&send(&r, "\"ghost\"")).await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    // Leave while not subscribed: the ack only for carol, the notice for the others (row 4).
    assert_eq!(carol.call(&leave(&r)).await, ack_leave(room));
    for ws in [&mut alice, &mut bob, &mut dave] {
        assert_eq!(ws.recv().await, left(room, "carol"));
    }
    carol.expect_silence(300).await;

    // s3 has left the room entirely; s2 and s1 still exchange messages.
    bob.send(&send(&r, "\"from s2\"")).await;
    assert_eq!(bob.recv().await, chat(room, "bob", "from s2"));
    assert_eq!(alice.recv().await, chat(room, "bob", "from s2"));
    assert_eq!(dave.recv().await, chat(room, "bob", "from s2"));

    // A disconnect on s2 notifies the members on s1; s2 unsubscribes.
    bob.close(1000).await;
    assert_eq!(alice.recv().await, left(room, "bob"));
    assert_eq!(dave.recv().await, left(room, "bob"));
    wait_numsub(SHARED_REDIS, &channel, 1).await;
    for ws in [&mut alice, &mut carol, &mut dave] {
        ws.expect_silence(300).await;
    }
    drop((alice, carol, dave));
    for s in servers {
        s.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Redis restarted mid-test
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_keeps_local_delivery_and_resumes_cross_process() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let prefix = random_prefix();
    let servers = cluster(2, &url, &prefix).await;
    let (s1, s2) = (&servers[0], &servers[1]);
    let room = s1.create_room("Lobby", false).await;
    let channel = format!("{prefix}room-{room}");
    let r = room.to_string();
    let alice = s1.create_user("alice", false).await;
    let bob = s1.create_user("bob", false).await;
    let carol = s1.create_user("carol", false).await;
    let mut alice = s1.ws_for(alice).await;
    let mut bob = s1.ws_for(bob).await;
    let mut carol = s2.ws_for(carol).await;
    assert_eq!(carol.call(&join(&r)).await, ack_join(room, "Lobby"));
    wait_numsub(&url, &channel, 1).await;
    assert_eq!(alice.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(carol.recv().await, enter(room, "alice"));
    assert_eq!(bob.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(alice.recv().await, enter(room, "bob"));
    assert_eq!(carol.recv().await, enter(room, "bob"));
    wait_numsub(&url, &channel, 2).await;
    alice.send(&send(&r, "\"before\"")).await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(ws.recv().await, chat(room, "alice", "before"));
    }

    // Redis dies: both processes notice, local delivery goes on, nothing blocks.
    redis.kill();
    let (status, body) = wait_redis_health(s1, "down").await;
    assert_eq!(
        (status, &body["status"]),
        (200, &serde_json::json!("degraded")),
        "{body}"
    );
    wait_redis_health(s2, "down").await;
    for i in 0..5 {
        alice.send(&send(&r, &format!("\"during {i}\""))).await;
        assert_eq!(
            alice.recv().await,
            chat(room, "alice", &format!("during {i}"))
        );
        assert_eq!(
            bob.recv().await,
            chat(room, "alice", &format!("during {i}"))
        );
    }
    // A socket can still open, join (enter notice is local) and leave during the outage.
    let dave = s1.create_user("dave", false).await;
    let mut dave = s1.ws_for(dave).await;
    assert_eq!(dave.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(alice.recv().await, enter(room, "dave"));
    assert_eq!(bob.recv().await, enter(room, "dave"));
    carol.expect_silence(300).await;

    // Redis is back on the same port: both processes reconnect and resubscribe on their own.
    redis.restart().await;
    wait_numsub(&url, &channel, 2).await;
    let (status, body) = wait_redis_health(s1, "ok").await;
    assert_eq!(status, 200, "{body}");
    wait_redis_health(s2, "ok").await;
    // The first publication after the restart must not be lost on a stale connection.
    alice.send(&send(&r, "\"after\"")).await;
    assert_eq!(carol.recv().await, chat(room, "alice", "after"));
    for ws in [&mut alice, &mut bob, &mut dave] {
        assert_eq!(ws.recv().await, chat(room, "alice", "after"));
    }
    // And the other direction.
    carol.send(&send(&r, "\"back\"")).await;
    for ws in [&mut carol, &mut alice, &mut bob, &mut dave] {
        assert_eq!(ws.recv().await, chat(room, "carol", "back"));
    }
    carol.expect_silence(200).await;
    drop((alice, bob, carol, dave));
    for s in servers {
        s.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// (c) one PUBLISH per room event, whatever the number of members
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_publish_per_room_message_regardless_of_members() {
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let prefix = random_prefix();
    let servers = cluster(3, &url, &prefix).await;
    let big = servers[0].create_room("Big", false).await;
    let small = servers[0].create_room("Small", false).await;
    let big_channel = format!("{prefix}room-{big}");
    // "Big": 6 members spread 3/2/1 over the processes. "Small": 1 member.
    let mut members = Vec::new();
    for (i, server) in [0, 0, 0, 1, 1, 2].into_iter().enumerate() {
        let user = servers[0].create_user(&format!("user{i}"), false).await;
        let mut ws = servers[server].ws_for(user).await;
        assert_eq!(ws.call(&join(&big.to_string())).await, ack_join(big, "Big"));
        members.push(ws);
    }
    wait_numsub(&url, &big_channel, 3).await;
    let loner = servers[0].create_user("loner", false).await;
    let mut loner = servers[1].ws_for(loner).await;
    assert_eq!(
        loner.call(&join(&small.to_string())).await,
        ack_join(small, "Small")
    );
    // Drain the enter notices: member i saw the 5 - i later joiners.
    for (i, ws) in members.iter_mut().enumerate() {
        for _ in i + 1..6 {
            assert_eq!(parse(&ws.recv().await)["msg_type"], 4);
        }
    }
    let before = publish_calls(&url).await;

    const M: u64 = 20;
    for i in 0..M {
        let sender = &mut members[(i % 6) as usize];
        sender
            .send(&send(&big.to_string(), &format!("\"m{i}\"")))
            .await;
        loner
            .send(&send(&small.to_string(), &format!("\"s{i}\"")))
            .await;
    }
    for ws in members.iter_mut() {
        for _ in 0..M {
            assert_eq!(parse(&ws.recv().await)["msg_type"], 0);
        }
    }
    for i in 0..M {
        assert_eq!(loner.recv().await, chat(small, "loner", &format!("s{i}")));
    }
    let publishes = publish_calls(&url).await - before;
    println!(
        "PUBLISH calls: {publishes} for {M} messages to a 6-member room over 3 processes \
         + {M} to a 1-member room"
    );
    assert_eq!(publishes, 2 * M, "exactly one PUBLISH per room message");
    drop((members, loner));
    for s in servers {
        s.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// (d) /healthz
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_broker_and_redis_state() {
    // Without REDIS_URL: the local hub.
    let local = TestServer::start().await;
    let (status, body) = healthz(&local).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "database": "ok", "broker": "local", "redis": null, "open_sockets": 0})
    );
    local.stop().await;

    // The shared Redis: ok; open sockets are counted.
    let prefix = random_prefix();
    let server =
        TestServer::start_with(&[("REDIS_URL", SHARED_REDIS), ("REDIS_PREFIX", &prefix)]).await;
    let user = server.create_user("alice", false).await;
    let mut ws = server.ws_for(user).await;
    // One round trip: the socket's task is running (and counted) once it answers.
    assert_eq!(ws.call(&join("404")).await, r#"{"error": "ROOM_INVALID"}"#);
    let (status, body) = wait_redis_health(&server, "ok").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "database": "ok", "broker": "redis", "redis": "ok", "open_sockets": 1,
            "redis_hosts": ["ok"],
            "redis_counters": {"published": 0, "publish_failures": 0, "over_capacity": 0, "received": 0, "ignored": 0}})
    );
    drop(ws);
    server.stop().await;

    // Redis unreachable at startup: the server starts anyway, reports "degraded" with 200 (it
    // serves its own members; a load balancer must not pull it), and serves a room locally.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("redis://127.0.0.1:{dead_port}/0");
    let server = TestServer::start_with(&[("REDIS_URL", &dead), ("REDIS_PREFIX", &prefix)]).await;
    let (status, body) = wait_redis_health(&server, "down").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["redis_hosts"], serde_json::json!(["down"]));
    assert_eq!(body["broker"], "redis");
    assert_eq!(body["database"], "ok");
    let room = server.create_room("Lobby", false).await;
    let a = server.create_user("alice", false).await;
    let b = server.create_user("bob", false).await;
    let mut a = server.ws_for(a).await;
    let mut b = server.ws_for(b).await;
    let r = room.to_string();
    assert_eq!(a.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(b.call(&join(&r)).await, ack_join(room, "Lobby"));
    assert_eq!(a.recv().await, enter(room, "bob"));
    b.send(&send(&r, "\"local only\"")).await;
    assert_eq!(b.recv().await, chat(room, "bob", "local only"));
    assert_eq!(a.recv().await, chat(room, "bob", "local only"));

    // Redis appears on that port: the server connects by itself.
    let late = PrivateRedis::start_on(dead_port).await;
    let (status, _) = wait_redis_health(&server, "ok").await;
    assert_eq!(status, 200);
    wait_numsub(&late.url(), &format!("{prefix}room-{room}"), 1).await;
    drop((a, b));
    server.stop().await;
}

/// The fork's `room_users` with `REDIS_URL` and no `CACHES`: presence lives on that Redis, so
/// every process answers the same, under the key a Django `RedisCache` with `KEY_PREFIX` =
/// `REDIS_PREFIX` (without its `:`) would read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_presence_is_shared_through_redis_url() {
    let prefix = random_prefix();
    let servers = cluster(2, SHARED_REDIS, &prefix).await;
    let room = servers[0].create_room("Lobby", false).await;
    let alice = servers[0].create_user("alice", false).await;
    let bob = servers[0].create_user("bob", false).await;
    let mut a = servers[0].ws_for(alice).await;
    let mut b = servers[1].ws_for(bob).await;
    let r = room.to_string();
    assert_eq!(a.call(&join(&r)).await, ack_join(room, "Lobby"));

    let room_users = format!(r#"{{"command": "room_users", "room": {room}}}"#);
    let on_b = parse(&b.call(&room_users).await);
    assert_eq!(on_b["type"], 6, "{on_b}");
    let users = on_b["data"]["users"].as_object().expect("alice's presence");
    assert_eq!(users.len(), 1, "{on_b}");
    assert_eq!(users[&alice.to_string()]["username"], "alice");
    assert_eq!(users[&alice.to_string()]["left"], false);
    // The same bytes from both processes.
    assert_eq!(a.call(&room_users).await, b.call(&room_users).await);

    // Stored where Django's RedisCache(KEY_PREFIX=<REDIS_PREFIX without ':'>) reads it.
    let key = format!("{}:1:room-presence-{room}", prefix.trim_end_matches(':'));
    let mut conn = redis_conn(SHARED_REDIS).await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{key}: TTL {ttl}");
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}
