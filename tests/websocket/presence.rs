//! The Whisper fork's `room_users` (spec §12) with presence kept in process (no `CACHES`, no
//! `REDIS_URL`): the reply's exact shape and order, refresh on join and send, `left` on leave
//! and on disconnect, what the fork would have crashed on, staff-only rooms, and raw values no
//! join accepts. Presence in a Django cache, shared with Python, is in `tests/interop/fork.rs`.

use super::*;

fn room_users(room: &str) -> String {
    format!(r#"{{"command": "room_users", "room": {room}}}"#)
}

/// The `users` value of a `room_users` reply for `room` (checking the rest of its shape), and
/// each user's `last_update` (checked to be an epoch float of now, then blanked out).
fn users_of(reply: &str, room: &str) -> serde_json::Value {
    let prefix = format!(r#"{{"type": 6, "room": {room}, "data": {{"users": "#);
    assert!(reply.starts_with(&prefix), "{reply}");
    assert!(reply.ends_with("}}"), "{reply}");
    let mut parsed: serde_json::Value = serde_json::from_str(reply).unwrap();
    let mut users = parsed["data"]["users"].take();
    if let Some(map) = users.as_object_mut() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for entry in map.values_mut() {
            let t = entry["last_update"]
                .as_f64()
                .expect("last_update is a float");
            assert!((now - t).abs() < 60.0, "last_update {t} is not now ({now})");
            entry["last_update"] = serde_json::Value::Null;
        }
    }
    users
}

fn entry(username: &str, left: bool) -> serde_json::Value {
    serde_json::json!({"username": username, "name": "", "left": left, "last_update": null})
}

#[tokio::test]
async fn room_users_follows_joins_sends_and_leaves() {
    let (server, alice, bob) = lobby().await;
    let mut a = server.ws_for(alice).await;
    let mut b = server.ws_for(bob).await;

    // Nothing cached yet: `users` is null (the fork's cache.get miss). No membership needed.
    assert_eq!(
        a.call(&room_users("1")).await,
        r#"{"type": 6, "room": 1, "data": {"users": null}}"#
    );

    // The fork's frontend sends `room` as an integer; presence keys on str(room) = "1".
    assert_eq!(a.call(&join("1")).await, ack_join(1, "Lobby"));
    let users = users_of(&a.call(&room_users("1")).await, "1");
    assert_eq!(
        users,
        serde_json::json!({alice.to_string(): entry("alice", false)})
    );
    // The string spelling "1" names the same cache key in the fork (f"room-presence-{room}").
    let same = users_of(&b.call(&room_users(r#""1""#)).await, r#""1""#);
    assert_eq!(same, users);

    assert_eq!(b.call(&join("1")).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter("1", "bob"));
    // Insertion order is the order of first joins; the raw reply keeps it.
    let reply = b.call(&room_users("1")).await;
    let (ia, ib) = (
        reply.find(&format!(r#""{alice}": "#)).unwrap(),
        reply.find(&format!(r#""{bob}": "#)).unwrap(),
    );
    assert!(ia < ib, "{reply}");

    // Leaving marks the entry left; a send refreshes it again (after re-joining).
    assert_eq!(a.call(&leave("1")).await, ack_leave(1));
    // A subscribed leaver hears its own notice (§4.12), as does everyone else.
    assert_eq!(a.recv().await, left("1", "alice"));
    assert_eq!(b.recv().await, left("1", "alice"));
    let users = users_of(&b.call(&room_users("1")).await, "1");
    assert_eq!(users[alice.to_string()], entry("alice", true));
    assert_eq!(users[bob.to_string()], entry("bob", false));
    assert_eq!(a.call(&join("1")).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter("1", "alice"));
    let before = last_update(&b.call(&room_users("1")).await, alice);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let said = chat("1", "alice", r#""hi""#);
    assert_eq!(a.call(&send("1", r#""hi""#)).await, said);
    assert_eq!(b.recv().await, said);
    let after = last_update(&b.call(&room_users("1")).await, alice);
    assert!(
        after > before,
        "a send refreshes last_update ({before} -> {after})"
    );

    // A disconnect leaves every room: bob's entry is marked left, alice's stays.
    b.close(1000).await;
    assert_eq!(a.recv().await, left("1", "bob"));
    let users = users_of(&a.call(&room_users("1")).await, "1");
    assert_eq!(users[bob.to_string()], entry("bob", true));
    assert_eq!(users[alice.to_string()], entry("alice", false));
}

fn last_update(reply: &str, user: i64) -> f64 {
    let parsed: serde_json::Value = serde_json::from_str(reply).unwrap();
    parsed["data"]["users"][user.to_string()]["last_update"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn room_users_where_the_fork_crashed_or_leaked() {
    let server = TestServer::start().await;
    assert_eq!(server.create_room("Lobby", false).await, 1);
    assert_eq!(server.create_room("Ops", true).await, 2);
    let dana = server.create_user("dana", true).await;
    let sam = server.create_user("sam", false).await;
    let mut d = server.ws_for(dana).await;
    let mut s = server.ws_for(sam).await;

    // A missing `room` crashed the fork (KeyError): BAD_REQUEST here, like every command.
    assert_eq!(
        s.call(r#"{"command": "room_users"}"#).await,
        error("BAD_REQUEST")
    );
    // Values no join accepts name keys nothing writes: null, echoed raw as the fork does.
    for raw in ["null", "[1]", r#"{"a": 1}"#, r#""abc""#, "404"] {
        assert_eq!(
            s.call(&room_users(raw)).await,
            format!(r#"{{"type": 6, "room": {raw}, "data": {{"users": null}}}}"#),
            "{raw}"
        );
    }
    // The fork answered anyone about any room; a staff-only room's presence is staff-only here.
    assert_eq!(d.call(&join("2")).await, ack_join(2, "Ops"));
    assert_eq!(s.call(&room_users("2")).await, error("ROOM_ACCESS_DENIED"));
    let users = users_of(&d.call(&room_users("2")).await, "2");
    assert_eq!(
        users,
        serde_json::json!({dana.to_string(): entry("dana", false)})
    );

    // Leaving a room never joined (the fork: KeyError when the dict exists without the user,
    // and `None` stored when there is no dict) leaves presence as it was.
    assert_eq!(s.call(&leave("1")).await, ack_leave(1));
    assert_eq!(
        s.call(&room_users("1")).await,
        r#"{"type": 6, "room": 1, "data": {"users": null}}"#
    );
    assert_eq!(d.call(&leave("2")).await, ack_leave(2));
    assert_eq!(d.recv().await, left("2", "dana"));
    assert_eq!(s.call(&join("1")).await, ack_join(1, "Lobby"));
    assert_eq!(d.call(&leave("1")).await, ack_leave(1));
    assert_eq!(s.recv().await, left("1", "dana"));
    let users = users_of(&s.call(&room_users("1")).await, "1");
    assert_eq!(
        users,
        serde_json::json!({sam.to_string(): entry("sam", false)})
    );
    // Spellings keep their own keys, as str() does: 1.0 is "room-presence-1.0".
    assert_eq!(
        s.call(&room_users("1.0")).await,
        r#"{"type": 6, "room": 1.0, "data": {"users": null}}"#
    );
}
