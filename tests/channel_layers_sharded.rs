//! Issue 9: `CHANNEL_LAYERS` with several Redis hosts (channels_redis' sharding), with real
//! Python on the same config. Two private `redis-server`s, two Whisper processes and the
//! original-like consumer in compat/ (daphne on `RedisChannelLayer`, uvicorn on
//! `RedisPubSubChannelLayer`) share two rooms whose groups sit on different hosts:
//!
//! * every member sees every message of every sender, exactly once, in per-sender order, with
//!   the same bytes; Django code's `group_send` (`compat/layer_tool.py`) reaches all of them;
//! * each group's state is on the host channels_redis puts it (computed by channels_redis'
//!   own `_consistent_hash` in the venv) and absent from the other: the core layer's group sets
//!   and every queue a message was pushed to (seen through keyspace notifications), the
//!   pub/sub layer's subscriptions;
//! * leaves on disconnect reach the others and empty the groups;
//! * one host going down is reported per host by `/healthz` (`degraded`), rooms on the other
//!   host keep crossing processes (pub/sub), and the host's return is noticed by itself.
//!
//! A missing venv or redis-server fails these tests; nothing is skipped.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use common::channel_layer::{CORE, Layer, PUBSUB, frames, python_consistent_hash};
use common::python::Server;
use common::redis_server::PrivateRedis;
use common::{TestServer, Ws, healthz, join, leave, send, ws_to};

const SETTLE: Duration = Duration::from_secs(15);
/// Messages per sender per room.
const N: usize = 12;

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
}

/// How many channels the core layer's group set holds, or how many connections subscribe to
/// the pub/sub layer's group channel, on one host.
async fn group_size(url: &str, backend: &str, prefix: &str, group: &str) -> i64 {
    let mut c = conn(url).await;
    if backend == CORE {
        redis::cmd("ZCARD")
            .arg(format!("{prefix}:group:{group}"))
            .query_async(&mut c)
            .await
            .unwrap()
    } else {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{prefix}__group__{group}"))
            .query_async(&mut c)
            .await
            .unwrap();
        n
    }
}

/// Waits until `group` has `n` members on `hosts[on]` and none on the other host.
async fn wait_group(
    hosts: &[String; 2],
    on: usize,
    backend: &str,
    prefix: &str,
    group: &str,
    n: i64,
) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let here = group_size(&hosts[on], backend, prefix, group).await;
        let there = group_size(&hosts[1 - on], backend, prefix, group).await;
        if (here, there) == (n, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group}: {here} members on host {on} and {there} on host {}, expected {n} and 0",
            1 - on
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records the keys under `prefix` that sorted-set commands touched on one host (keyspace
/// notifications), until dropped.
struct KeyWatch {
    seen: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyWatch {
    async fn start(url: &str, prefix: &str) -> KeyWatch {
        let mut c = conn(url).await;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Kz")
            .query_async::<()>(&mut c)
            .await
            .unwrap();
        let mut pubsub = redis::Client::open(url)
            .unwrap()
            .get_async_pubsub()
            .await
            .unwrap();
        let channel_prefix = "__keyspace@0__:";
        pubsub
            .psubscribe(format!("{channel_prefix}{prefix}*"))
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let key = msg.get_channel_name().trim_start_matches(channel_prefix);
                record.lock().unwrap().insert(key.to_string());
            }
        });
        KeyWatch { seen, task }
    }

    fn keys(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `/healthz` until its per-host states are `want`.
async fn wait_hosts(server: &TestServer, want: [&str; 2]) -> serde_json::Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let body = healthz(server).await;
        if body["redis_hosts"] == serde_json::json!(want) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never said redis_hosts={want:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat(room: i64, user: &str, message: &str) -> String {
    format!(r#"{{"msg_type": 0, "room": {room}, "username": "{user}", "message": {message}}}"#)
}

fn notice(kind: u8, room: i64, user: &str) -> String {
    format!(r#"{{"msg_type": {kind}, "room": {room}, "username": "{user}"}}"#)
}

/// Sorts frames that come from different rooms (different hosts: no order between them).
async fn sorted_frames(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut got = frames(ws, n).await;
    got.sort();
    got
}

async fn sharded_fleet(backend: &str, server: Server) {
    let mut redis = [PrivateRedis::start().await, PrivateRedis::start().await];
    let hosts = [redis[0].url(), redis[1].url()];
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:///{}", dir.path().join("shared.sqlite3").display());
    let layer = Layer::sharded(&[&hosts[0], &hosts[1]], backend, &db);
    let prefix = layer.prefix.clone();
    let w1 = layer.whisper().await;
    let w2 = layer.whisper().await;
    let body = wait_hosts(&w1, ["ok", "ok"]).await;
    assert_eq!(
        (&body["status"], &body["redis"]),
        (&"ok".into(), &"ok".into())
    );

    // Rooms until one group sits on each host, as channels_redis places them: the core layer
    // hashes the group name, the pub/sub layer the group's whole channel name.
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(w1.create_room(&format!("Room {i}"), false).await);
    }
    let hashed: Vec<String> = ids
        .iter()
        .map(|id| match backend {
            CORE => format!("room-{id}"),
            _ => format!("{prefix}__group__room-{id}"),
        })
        .collect();
    let placed = python_consistent_hash(&hashed, 2);
    let room_on = |host: usize| {
        ids.iter()
            .zip(&placed)
            .find(|(_, h)| **h == host)
            .map(|(id, _)| *id)
            .expect("eight rooms on one host only")
    };
    let rooms = [room_on(0), room_on(1)];

    let (alice, bob, carol) = (
        w1.create_user("alice", false).await,
        w1.create_user("bob", false).await,
        w1.create_user("carol", false).await,
    );
    let python = layer.python_server(server, dir.path().join("python.log"));
    let mut a = w1.ws_for(alice).await;
    let mut b = ws_to(python.addr, &w1.session_for(bob).await).await;
    let mut c = w2.ws_for(carol).await;
    for room in rooms {
        let r = room.to_string();
        let ack = format!(
            r#"{{"join": "{r}", "title": "Room {}"}}"#,
            ids.iter().position(|i| *i == room).unwrap()
        );
        assert_eq!(a.call(&join(&r)).await, ack);
        assert_eq!(b.call(&join(&r)).await, ack);
        assert_eq!(a.recv().await, notice(4, room, "bob"));
        assert_eq!(c.call(&join(&r)).await, ack);
        assert_eq!(a.recv().await, notice(4, room, "carol"));
        assert_eq!(
            b.recv().await,
            notice(4, room, "carol"),
            "python: {}",
            python.log_text()
        );
    }
    for (host, room) in rooms.iter().enumerate() {
        wait_group(&hosts, host, backend, &prefix, &format!("room-{room}"), 3).await;
    }

    // Everyone talks in both rooms at once.
    let watches = [
        KeyWatch::start(&hosts[0], &prefix).await,
        KeyWatch::start(&hosts[1], &prefix).await,
    ];
    let body = |who: &str, i: usize| format!(r#"{{"from": "{who}", "i": {i}, "t": "h\u00e9"}}"#);
    for i in 0..N {
        for room in rooms {
            let r = room.to_string();
            a.send(&send(&r, &body("alice", i))).await;
            b.send(&send(&r, &body("bob", i))).await;
            c.send(&send(&r, &body("carol", i))).await;
        }
    }
    let seen = [
        frames(&mut a, 6 * N).await,
        frames(&mut b, 6 * N).await,
        frames(&mut c, 6 * N).await,
    ];
    for (who, got) in ["alice", "bob", "carol"].iter().zip(&seen) {
        for room in rooms {
            for sender in ["alice", "bob", "carol"] {
                let want: Vec<String> = (0..N)
                    .map(|i| chat(room, sender, &body(sender, i)))
                    .collect();
                let mine: Vec<&String> = got
                    .iter()
                    .filter(|f| f.contains(&format!(r#""room": {room}, "username": "{sender}""#)))
                    .collect();
                assert_eq!(
                    mine,
                    want.iter().collect::<Vec<_>>(),
                    "{who}'s view of {sender} in room {room}"
                );
            }
        }
    }

    // Django code reaches every member, in both rooms.
    for room in rooms {
        let event = format!(
            r#"{{"type": "chat.message", "room_id": {room}, "username": "bot", "message": "deployed"}}"#
        );
        layer.group_send(&format!("room-{room}"), &[&event]).await;
        for ws in [&mut a, &mut b, &mut c] {
            assert_eq!(ws.recv().await, chat(room, "bot", r#""deployed""#));
        }
    }

    if backend == CORE {
        // Every queue a message was pushed to is on the host channels_redis reads it from:
        // `receive_single` hashes the channel's non-local name, without prefix.
        let mut queues: HashMap<String, usize> = HashMap::new();
        for (host, watch) in watches.iter().enumerate() {
            for key in watch.keys() {
                // channels_redis' reader keeps a backup of what it popped beside its queue.
                let Some(name) = key
                    .strip_prefix(&prefix)
                    .filter(|n| n.starts_with("specific."))
                    .map(|n| n.trim_end_matches("$inflight"))
                else {
                    continue;
                };
                if let Some(other) = queues.insert(name.to_string(), host) {
                    assert_eq!(other, host, "{name} on both hosts");
                }
            }
        }
        // alice's, bob's and carol's processes all received.
        assert_eq!(queues.len(), 3, "{queues:?}");
        let names: Vec<String> = queues.keys().cloned().collect();
        let want = python_consistent_hash(&names, 2);
        for (name, host) in names.iter().zip(want) {
            assert_eq!(queues[name], host, "queue {name}");
        }
    }
    drop(watches);

    // bob leaves one room, then his Python socket goes away; carol's Whisper socket goes away
    // from both. The others hear every leave; the groups empty on their hosts down to alice's
    // process. (The original loses leaves on a disconnect that finds an event still on its way
    // to the socket — sending it to the closed socket raises and ends the consumer before its
    // `disconnect` — and, under uvicorn, after the first room, whose leave ack raises the same
    // way: so bob is in one room when he goes, and whatever was on its way to him has arrived.)
    let r1 = rooms[1].to_string();
    assert_eq!(b.call(&leave(&r1)).await, format!(r#"{{"leave": "{r1}"}}"#));
    for ws in [&mut a, &mut c] {
        assert_eq!(ws.recv().await, notice(5, rooms[1], "bob"));
    }
    // His own leave notice reaches him on the core layer (the group still held him when it was
    // sent); on the pub/sub layer it usually finds him unsubscribed.
    if let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(500), b.stream.next()).await
    {
        assert_eq!(frame.to_text().unwrap(), notice(5, rooms[1], "bob"));
    }
    b.close(1000).await;
    for ws in [&mut a, &mut c] {
        assert_eq!(ws.recv().await, notice(5, rooms[0], "bob"));
    }
    let leaves = |user| {
        let mut l: Vec<String> = rooms.iter().map(|r| notice(5, *r, user)).collect();
        l.sort();
        l
    };
    c.close(1000).await;
    assert_eq!(sorted_frames(&mut a, 2).await, leaves("carol"));
    for (host, room) in rooms.iter().enumerate() {
        wait_group(&hosts, host, backend, &prefix, &format!("room-{room}"), 1).await;
    }
    a.expect_silence(200).await;

    // Host 1 goes down: reported per host, the process degraded but serving.
    redis[1].kill();
    for w in [&w1, &w2] {
        let body = wait_hosts(w, ["ok", "down"]).await;
        assert_eq!(
            (&body["status"], &body["redis"]),
            (&"degraded".into(), &"down".into())
        );
    }
    if backend == PUBSUB {
        // Each host has its own connections: the room on host 0 still crosses processes.
        let dave = w1.create_user("dave", false).await;
        let mut d = w2.ws_for(dave).await;
        let r = rooms[0].to_string();
        d.call(&join(&r)).await;
        assert_eq!(a.recv().await, notice(4, rooms[0], "dave"));
        a.send(&send(&r, r#""still here""#)).await;
        assert_eq!(d.recv().await, chat(rooms[0], "alice", r#""still here""#));
        assert_eq!(a.recv().await, chat(rooms[0], "alice", r#""still here""#));
    }
    redis[1].restart().await;
    for w in [&w1, &w2] {
        wait_hosts(w, ["ok", "ok"]).await;
    }
    drop(python);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_layer_on_two_hosts_with_daphne() {
    sharded_fleet(CORE, Server::Daphne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pubsub_layer_on_two_hosts_with_uvicorn() {
    sharded_fleet(PUBSUB, Server::Uvicorn).await;
}
