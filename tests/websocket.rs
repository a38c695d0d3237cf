//! The WebSocket contract (spec `multichat-protocol.md` §4) against the live server: the
//! handshake (§4.1–§4.2), every row of the ordering table (§4.12), every row of the edge-case
//! matrix (§4.14) with our documented replies where the original crashed (`src/chat/protocol.rs`,
//! `src/web/socket.rs`), raw-value keying (§4.6), staff rooms, disconnect (§4.11), limits,
//! golden bytes (`json-golden.json`), the notification switch and per-sender ordering.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use whisper::store::Db;

// ---------------------------------------------------------------------------------------------
// Helpers: expected frames (spec §4.7 shapes), handshakes, raw SQL.
// ---------------------------------------------------------------------------------------------

/// Shape 1: `{"join": "<id>", "title": "<title>"}` (title must be plain ASCII here).
fn ack_join(id: i64, title: &str) -> String {
    format!(r#"{{"join": "{id}", "title": "{title}"}}"#)
}

/// Shape 2.
fn ack_leave(id: i64) -> String {
    format!(r#"{{"leave": "{id}"}}"#)
}

/// Shape 3.
fn error(code: &str) -> String {
    format!(r#"{{"error": "{code}"}}"#)
}

/// Shape 4; `room` is the raw JSON text of the value used by the joiner.
fn enter(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 4, "room": {room}, "username": "{user}"}}"#)
}

/// Shape 5.
fn left(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 5, "room": {room}, "username": "{user}"}}"#)
}

/// Shape 6; `message` is JSON text.
fn chat(room: &str, user: &str, message: &str) -> String {
    format!(r#"{{"msg_type": 0, "room": {room}, "username": "{user}", "message": {message}}}"#)
}

/// A server with room 1 "Lobby" (open) and two non-staff users, alice and bob.
async fn lobby() -> (TestServer, i64, i64) {
    lobby_with(&[]).await
}

async fn lobby_with(vars: &[(&str, &str)]) -> (TestServer, i64, i64) {
    let server = TestServer::start_with(vars).await;
    assert_eq!(server.create_room("Lobby", false).await, 1);
    let alice = server.create_user("alice", false).await;
    let bob = server.create_user("bob", false).await;
    (server, alice, bob)
}

/// Both alice and bob joined to room 1 with `"1"`, bob's enter notice consumed by alice.
async fn both_in_lobby(server: &TestServer, alice: i64, bob: i64) -> (Ws, Ws) {
    let mut a = server.ws_for(alice).await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter(r#""1""#, "bob"));
    (a, b)
}

/// Opens a WebSocket on `path` with arbitrary extra headers (including `Host`, which tungstenite
/// writes from the request headers when present).
async fn connect_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("ws://{}{}", server.addr, path)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let (stream, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Ws { stream })
}

/// The HTTP status of a handshake that must have been refused.
fn refused(result: Result<Ws, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => panic!("handshake was accepted, expected a refusal"),
        Err(e) => handshake_status(&e).unwrap_or_else(|| panic!("not an HTTP refusal: {e}")),
    }
}

/// The socket was accepted and works: a leave of room 1 (never joined) is acknowledged.
async fn assert_live(result: Result<Ws, tungstenite::Error>) {
    let mut ws = match result {
        Ok(ws) => ws,
        Err(e) => panic!("handshake refused: {e} (status {:?})", handshake_status(&e)),
    };
    assert_eq!(ws.call(&leave(r#""1""#)).await, ack_leave(1));
    ws.close(1000).await;
}

/// One statement with one integer parameter, on whichever pool the store uses.
async fn exec(server: &TestServer, sql: &'static str, id: i64) {
    let rows = match server.store.db() {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(rows, 1, "{sql}");
}

/// Receives `n` frames and returns them sorted (for events whose order is not guaranteed).
async fn recv_sorted(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(ws.recv().await);
    }
    got.sort();
    got
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Handshake (§4.1, §4.2)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn handshake_without_cookie_is_403() {
    let (server, _, _) = lobby().await;
    assert_eq!(refused(server.ws(None, None).await), 403);
}

#[tokio::test]
async fn handshake_with_bogus_cookie_is_403() {
    let (server, _, _) = lobby().await;
    assert_eq!(
        refused(
            server
                .ws(Some("bogusbogusbogusbogus00000000abcd"), None)
                .await
        ),
        403
    );
    // Too short to be a key at all (Django treats < 8 characters as no key).
    assert_eq!(refused(server.ws(Some("abc"), None).await), 403);
}

#[tokio::test]
async fn handshake_with_expired_session_is_403() {
    let (server, alice, _) = lobby().await;
    // A row that expired a minute ago.
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    let now = chrono::Utc::now();
    let data = server
        .store
        .load_session(&key, now)
        .await
        .unwrap()
        .expect("row");
    assert!(
        server
            .store
            .update_session(&key, &data, now - chrono::Duration::minutes(1))
            .await
            .unwrap()
    );
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);

    // A row inserted with a past expiry from the start.
    let other = "expiredsessionkey0123456789abcde";
    assert!(
        server
            .store
            .insert_session(other, &data, now - chrono::Duration::seconds(1))
            .await
            .unwrap()
    );
    assert_eq!(refused(server.ws(Some(other), None).await), 403);
}

#[tokio::test]
async fn handshake_for_inactive_user_is_403_and_keeps_the_row() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    exec(
        &server,
        "UPDATE auth_user SET is_active = FALSE WHERE id = $1",
        alice,
    )
    .await;
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
    // ModelBackend refusing an inactive user does not flush the session (internals §5.3).
    let row = server
        .store
        .load_session(&key, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        row.is_some(),
        "the session row of an inactive user must stay"
    );
}

#[tokio::test]
async fn handshake_after_password_change_is_403_and_flushes_the_session() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    let cfg =
        whisper::django::hashers::HasherConfig::new(whisper::django::hashers::DjangoVersion::V5_2);
    let encoded = whisper::django::hashers::make_password("a brand new password", &cfg);
    assert!(server.store.set_password(alice, &encoded).await.unwrap());
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
    let row = server
        .store
        .load_session(&key, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        row, None,
        "a hash mismatch must delete the session row (Channels flushes)"
    );
}

#[tokio::test]
async fn handshake_accepts_secret_key_fallbacks() {
    const OLD: &str = "old-secret-key-for-fallback";
    let server = TestServer::start_with(&[("SECRET_KEY_FALLBACKS", OLD)]).await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    // Signed with the current key, auth hash made with the fallback key.
    let key = server.session_for_keys(alice, SECRET, OLD).await;
    assert_live(server.ws(Some(&key), None).await).await;
    // Signed and hashed with the fallback key (Django 4.1+ signing accepts fallbacks).
    let key = server.session_for_keys(alice, OLD, OLD).await;
    assert_live(server.ws(Some(&key), None).await).await;
    // A key that is neither current nor fallback is refused.
    let key = server
        .session_for_keys(alice, SECRET, "some-unrelated-key")
        .await;
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
}

#[tokio::test]
async fn handshake_on_wrong_paths_is_refused() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    // Daphne answers an unrouted WebSocket path with 500 (spec §4.1); we answer it the way we
    // answer any unrouted path: 404 (the `not_found` fallback, no APPEND_SLASH redirect for an
    // upgrade request). Either way the upgrade is refused.
    for path in ["/chat/stream", "/other/", "/chat/stream/x", "/chat/"] {
        let status = refused(server.ws_path(path, Some(&key), None).await);
        assert_eq!(status, 404, "{path}");
    }
    // The query string is ignored by routing (spec §4.1).
    assert_live(
        server
            .ws_path("/chat/stream/?anything=1", Some(&key), None)
            .await,
    )
    .await;
}

#[tokio::test]
async fn handshake_origin_rules() {
    let server =
        TestServer::start_with(&[("CSRF_TRUSTED_ORIGINS", "https://chat.example.com")]).await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    let key = server.session_for(alice).await;
    let port = server.addr.port();

    assert_eq!(
        refused(server.ws(Some(&key), Some("http://evil.example")).await),
        403
    );
    // A look-alike of a trusted origin with another scheme or host is still foreign.
    assert_eq!(
        refused(server.ws(Some(&key), Some("http://chat.example.com")).await),
        403
    );
    assert_eq!(
        refused(
            server
                .ws(Some(&key), Some("https://evil.chat.example.com"))
                .await
        ),
        403
    );
    assert_eq!(refused(server.ws(Some(&key), Some("null")).await), 403);
    // A foreign Origin is refused even without a session (the Origin check comes first).
    assert_eq!(
        refused(server.ws(None, Some("http://evil.example")).await),
        403
    );

    assert_live(
        server
            .ws(Some(&key), Some(&format!("http://localhost:{port}")))
            .await,
    )
    .await;
    assert_live(
        server
            .ws(Some(&key), Some(&format!("http://127.0.0.1:{port}")))
            .await,
    )
    .await;
    assert_live(server.ws(Some(&key), None).await).await;
    assert_live(
        server
            .ws(Some(&key), Some("https://chat.example.com"))
            .await,
    )
    .await;
}

#[tokio::test]
async fn handshake_with_disallowed_host_is_400() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    let cookie = format!("sessionid={key}");
    let status = refused(
        connect_with(
            &server,
            "/chat/stream/",
            &[
                ("host", "evil.example".to_string()),
                ("cookie", cookie.clone()),
            ],
        )
        .await,
    );
    assert_eq!(status, 400);
    // The same request with an allowed Host is accepted (so the 400 is about the Host only).
    let port = server.addr.port();
    assert_live(
        connect_with(
            &server,
            "/chat/stream/",
            &[("host", format!("localhost:{port}")), ("cookie", cookie)],
        )
        .await,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. The ordering table (§4.12)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn table_first_join_acks_me_and_notifies_others() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter(r#""1""#, "alice"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn table_rejoin_acks_then_own_notice() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter(r#""1""#, "alice"));
    assert_eq!(b.recv().await, enter(r#""1""#, "alice"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn table_leave_while_subscribed_acks_then_own_notice() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(a.call(&leave(r#""1""#)).await, ack_leave(1));
    assert_eq!(a.recv().await, left(r#""1""#, "alice"));
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
    // Now unsubscribed: bob's messages no longer reach alice.
    assert_eq!(
        b.call(&send(r#""1""#, r#""hi""#)).await,
        chat(r#""1""#, "bob", r#""hi""#)
    );
    a.expect_silence(200).await;
}

#[tokio::test]
async fn table_leave_while_not_subscribed_acks_only() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    // Never joined: membership is not checked, everyone is still told alice left.
    assert_eq!(a.call(&leave(r#""1""#)).await, ack_leave(1));
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    a.expect_silence(200).await;
    // Joined then left: a second leave is again an ack only, and bob is told again.
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter(r#""1""#, "alice"));
    assert_eq!(a.call(&leave(r#""1""#)).await, ack_leave(1));
    assert_eq!(a.recv().await, left(r#""1""#, "alice"));
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    assert_eq!(a.call(&leave(r#""1""#)).await, ack_leave(1));
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn table_send_echoes_to_me_and_others() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    let want = chat(r#""1""#, "alice", r#""see you at noon""#);
    assert_eq!(a.call(&send(r#""1""#, r#""see you at noon""#)).await, want);
    assert_eq!(b.recv().await, want);
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn table_error_reaches_only_me() {
    let (server, alice, bob) = lobby().await;
    assert_eq!(server.create_room("Ops", true).await, 2);
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    let cases = [
        (join(r#""404""#), "ROOM_INVALID"),
        (leave(r#""404""#), "ROOM_INVALID"),
        (join(r#""2""#), "ROOM_ACCESS_DENIED"),
        (leave(r#""2""#), "ROOM_ACCESS_DENIED"),
        (send(r#""2""#, r#""x""#), "ROOM_ACCESS_DENIED"),
        (send("1", r#""x""#), "ROOM_ACCESS_DENIED"),
        ("nope".to_string(), "BAD_REQUEST"),
        (
            r#"{"command": "frobnicate"}"#.to_string(),
            "UNKNOWN_COMMAND",
        ),
    ];
    for (frame, code) in &cases {
        assert_eq!(a.call(frame).await, error(code), "{frame}");
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

// ---------------------------------------------------------------------------------------------
// 3. The edge-case matrix (§4.14), with our documented replies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn binary_frame_closes_1003_and_announces_every_room() {
    let (server, alice, bob) = lobby().await;
    assert_eq!(server.create_room("Garden", false).await, 2);
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(b.call(&join("2")).await, ack_join(2, "Garden"));
    assert_eq!(a.call(&join("2")).await, ack_join(2, "Garden"));
    assert_eq!(b.recv().await, enter("2", "alice"));
    a.send_binary(br#"{"command": "join", "room": "1"}"#).await;
    assert_eq!(a.expect_close().await.0, 1003);
    // Leave notices carry the raw values alice joined with ("1" and 2).
    assert_eq!(
        recv_sorted(&mut b, 2).await,
        sorted(vec![left(r#""1""#, "alice"), left("2", "alice")])
    );
    b.expect_silence(200).await;
}

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_socket_keeps_working() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    let bad = [
        "",
        "not json",
        "{",
        r#"{"command": "join", "room": "1"} trailing"#,
        "[1]",
        "[]",
        r#""join""#,
        "3",
        "null",
        "true",
        r#"{"command": "join"}"#,
        r#"{"command": "leave"}"#,
        r#"{"command": "send", "message": "x"}"#,
        r#"{"command": "send", "room": "1"}"#,
        r#"{"command": "join", "room": NaN}"#,
        r#"{"command": "join", "room": Infinity}"#,
        r#"{"command": "leave", "room": -Infinity}"#,
        r#"{"command": "send", "room": "1", "message": NaN}"#,
        r#"{"command": "send", "room": "1", "message": Infinity}"#,
        r#"{"command": "send", "room": "1", "message": [1, -Infinity]}"#,
        // A raw control character inside a string (Python's json.loads rejects it).
        "{\"command\": \"send\", \"room\": \"1\", \"message\": \"a\u{1}b\"}",
    ];
    for frame in bad {
        assert_eq!(a.call(frame).await, error("BAD_REQUEST"), "{frame:?}");
        // Still open and in the room: a re-join is an ack then the own notice. Anything the bad
        // frame had produced for bob would arrive before his notice.
        assert_eq!(
            a.call(&join(r#""1""#)).await,
            ack_join(1, "Lobby"),
            "after {frame:?}"
        );
        assert_eq!(a.recv().await, enter(r#""1""#, "alice"), "after {frame:?}");
        assert_eq!(b.recv().await, enter(r#""1""#, "alice"), "after {frame:?}");
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn non_integer_rooms_are_room_invalid() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    for room in [
        r#""abc""#,
        "[1]",
        r#"{"a": 1}"#,
        "null",
        "99999999999999999999",
        "-99999999999999999999",
        "404",
        "-1",
        r#""-1""#,
        r#""1.0""#,
        r#""1__0""#,
        r#""""#,
    ] {
        assert_eq!(
            a.call(&join(room)).await,
            error("ROOM_INVALID"),
            "join {room}"
        );
        assert_eq!(
            a.call(&leave(room)).await,
            error("ROOM_INVALID"),
            "leave {room}"
        );
    }
    // send: membership first. An unhashable value can never be a member: ROOM_INVALID. Any other
    // value not joined: ROOM_ACCESS_DENIED, before the lookup.
    for room in ["[1]", r#"{"a": 1}"#, "[]"] {
        assert_eq!(
            a.call(&send(room, r#""x""#)).await,
            error("ROOM_INVALID"),
            "send {room}"
        );
    }
    for room in [r#""abc""#, "null", "404", "99999999999999999999"] {
        assert_eq!(
            a.call(&send(room, r#""x""#)).await,
            error("ROOM_ACCESS_DENIED"),
            "send {room}"
        );
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn numeric_spellings_join_room_1_and_notices_carry_the_raw_value() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    // First join: ack only for alice.
    assert_eq!(a.call(&join(r#""01""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter(r#""01""#, "alice"));
    // Already subscribed: ack, then alice's own notice with the raw value.
    for room in [
        r#"" 1 ""#,
        "1.5",
        "true",
        r#""+1""#,
        r#""\t1\n""#,
        "1.9",
        "1e0",
    ] {
        assert_eq!(a.call(&join(room)).await, ack_join(1, "Lobby"), "{room}");
        // Python float repr of the re-encoded value.
        let echoed = if room == "1e0" { "1.0" } else { room };
        assert_eq!(a.recv().await, enter(echoed, "alice"), "{room}");
        assert_eq!(b.recv().await, enter(echoed, "alice"), "{room}");
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn unknown_or_missing_command_is_unknown_command() {
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    for frame in [
        r#"{"command": "frobnicate", "room": "1"}"#,
        r#"{"command": "JOIN", "room": "1"}"#,
        r#"{"command": "Send", "room": "1", "message": "x"}"#,
        r#"{"command": " join", "room": "1"}"#,
        r#"{"room": "1"}"#,
        r#"{"room": "1", "message": "x"}"#,
        "{}",
        r#"{"command": 1, "room": "1"}"#,
        r#"{"command": null, "room": "1"}"#,
        r#"{"command": ["join"], "room": "1"}"#,
        // The command is looked at before the other keys: no BAD_REQUEST for a missing room.
        r#"{"command": "frobnicate"}"#,
    ] {
        assert_eq!(a.call(frame).await, error("UNKNOWN_COMMAND"), "{frame}");
    }
    // The socket still works.
    assert_eq!(
        a.call(&send(r#""1""#, "1")).await,
        chat(r#""1""#, "alice", "1")
    );
    assert_eq!(b.recv().await, chat(r#""1""#, "alice", "1"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn room_deleted_while_joined_is_room_invalid_and_the_entry_stays() {
    let (server, alice, bob) = lobby().await;
    assert_eq!(server.create_room("Doomed", false).await, 2);
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(b.call(&join(r#""2""#)).await, ack_join(2, "Doomed"));
    assert_eq!(a.call(&join(r#""2""#)).await, ack_join(2, "Doomed"));
    assert_eq!(b.recv().await, enter(r#""2""#, "alice"));
    assert!(server.store.delete_room(2).await.unwrap());

    assert_eq!(
        a.call(&send(r#""2""#, r#""x""#)).await,
        error("ROOM_INVALID")
    );
    assert_eq!(a.call(&leave(r#""2""#)).await, error("ROOM_INVALID"));
    // The failed leave kept the entry: a send is still ROOM_INVALID, not ROOM_ACCESS_DENIED.
    assert_eq!(
        a.call(&send(r#""2""#, r#""x""#)).await,
        error("ROOM_INVALID")
    );
    assert_eq!(a.call(&join(r#""2""#)).await, error("ROOM_INVALID"));
    // Any other unjoined spelling is still refused on membership first.
    assert_eq!(
        a.call(&send("2", r#""x""#)).await,
        error("ROOM_ACCESS_DENIED")
    );
    a.expect_silence(200).await;
    b.expect_silence(50).await;

    // On disconnect the deleted room is skipped silently; the lobby is announced.
    a.close(1000).await;
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    b.expect_silence(200).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Raw-value keying (§4.6)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn raw_keying_int_and_string_are_different_members() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join("1")).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    assert_eq!(a.call(&join("1")).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter("1", "alice"));
    assert_eq!(
        a.call(&send(r#""1""#, r#""x""#)).await,
        error("ROOM_ACCESS_DENIED")
    );
    assert_eq!(
        a.call(&send(r#""01""#, r#""x""#)).await,
        error("ROOM_ACCESS_DENIED")
    );
    assert_eq!(
        a.call(&send("1.5", r#""x""#)).await,
        error("ROOM_ACCESS_DENIED")
    );
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn raw_keying_equal_numbers_are_one_member_and_echo_the_senders_spelling() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    assert_eq!(a.call(&join("1")).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter("1", "alice"));
    for (room, echoed) in [
        ("1", "1"),
        ("1.0", "1.0"),
        ("true", "true"),
        ("1e0", "1.0"),
        ("10e-1", "1.0"),
    ] {
        let want = chat(echoed, "alice", r#""m""#);
        assert_eq!(a.call(&send(room, r#""m""#)).await, want, "{room}");
        assert_eq!(b.recv().await, want, "{room}");
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}

#[tokio::test]
async fn raw_keying_leave_with_another_spelling_keeps_the_original() {
    let (server, alice, bob) = lobby().await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.recv().await, enter(r#""1""#, "alice"));
    // Leave with 1: still subscribed at publish time, so alice hears her own notice (raw 1).
    assert_eq!(a.call(&leave("1")).await, ack_leave(1));
    assert_eq!(a.recv().await, left("1", "alice"));
    assert_eq!(b.recv().await, left("1", "alice"));
    // "1" is still in alice's set: the send is allowed, bob gets it, alice (unsubscribed) not.
    a.send(&send(r#""1""#, r#""still here""#)).await;
    assert_eq!(b.recv().await, chat(r#""1""#, "alice", r#""still here""#));
    a.expect_silence(200).await;
    // 1 itself was never a member.
    assert_eq!(
        a.call(&send("1", r#""x""#)).await,
        error("ROOM_ACCESS_DENIED")
    );
    // Bob's messages no longer reach alice.
    assert_eq!(
        b.call(&send(r#""1""#, r#""yo""#)).await,
        chat(r#""1""#, "bob", r#""yo""#)
    );
    a.expect_silence(200).await;
    // On disconnect the remaining entry "1" is announced.
    a.close(1000).await;
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    b.expect_silence(200).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Staff-only rooms (§4.5 step 3, §4.2 point 5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn staff_rooms_and_the_user_snapshot() {
    let server = TestServer::start().await;
    assert_eq!(server.create_room("Lobby", false).await, 1);
    assert_eq!(server.create_room("Ops", true).await, 2);
    let dana = server.create_user("dana", true).await;
    let sam = server.create_user("sam", false).await;
    let mut d = server.ws_for(dana).await;
    let sam_key = server.session_for(sam).await;
    let mut s = server.ws(Some(&sam_key), None).await.expect("handshake");

    assert_eq!(d.call(&join(r#""2""#)).await, ack_join(2, "Ops"));
    assert_eq!(s.call(&join(r#""2""#)).await, error("ROOM_ACCESS_DENIED"));
    assert_eq!(s.call(&leave(r#""2""#)).await, error("ROOM_ACCESS_DENIED"));
    assert_eq!(s.call(&join("2.5")).await, error("ROOM_ACCESS_DENIED"));
    d.expect_silence(200).await;

    // Promoted after connecting: the old socket keeps the snapshot, a new one gets in.
    exec(
        &server,
        "UPDATE auth_user SET is_staff = TRUE WHERE id = $1",
        sam,
    )
    .await;
    assert_eq!(s.call(&join(r#""2""#)).await, error("ROOM_ACCESS_DENIED"));
    let mut s2 = server.ws(Some(&sam_key), None).await.expect("handshake");
    assert_eq!(s2.call(&join(r#""2""#)).await, ack_join(2, "Ops"));
    assert_eq!(d.recv().await, enter(r#""2""#, "sam"));

    // Demoted after connecting: dana's old socket keeps working (send re-checks with the snapshot).
    exec(
        &server,
        "UPDATE auth_user SET is_staff = FALSE WHERE id = $1",
        dana,
    )
    .await;
    let want = chat(r#""2""#, "dana", r#""still staff here""#);
    assert_eq!(d.call(&send(r#""2""#, r#""still staff here""#)).await, want);
    assert_eq!(s2.recv().await, want);
    s.expect_silence(100).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Disconnect (§4.11)
// ---------------------------------------------------------------------------------------------

enum Departure {
    Close(u16),
    Drop,
}

async fn disconnect_announces_every_room(how: Departure) {
    let (server, alice, bob) = lobby().await;
    assert_eq!(server.create_room("Garden", false).await, 2);
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    assert_eq!(b.call(&join(r#""2""#)).await, ack_join(2, "Garden"));
    assert_eq!(a.call(&join("2.0")).await, ack_join(2, "Garden"));
    assert_eq!(b.recv().await, enter("2.0", "alice"));
    match how {
        Departure::Close(code) => a.close(code).await,
        Departure::Drop => drop(a),
    }
    assert_eq!(
        recv_sorted(&mut b, 2).await,
        sorted(vec![left(r#""1""#, "alice"), left("2.0", "alice")])
    );
    b.expect_silence(200).await;
    // Bob is alone now: his own message comes back and nothing else.
    assert_eq!(
        b.call(&send(r#""2""#, "null")).await,
        chat(r#""2""#, "bob", "null")
    );
}

#[tokio::test]
async fn disconnect_with_1000_announces_every_room() {
    disconnect_announces_every_room(Departure::Close(1000)).await;
}

#[tokio::test]
async fn disconnect_with_4000_announces_every_room() {
    disconnect_announces_every_room(Departure::Close(4000)).await;
}

#[tokio::test]
async fn tcp_drop_announces_every_room() {
    disconnect_announces_every_room(Departure::Drop).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_frame_closes_1009_and_announces() {
    let (server, alice, bob) = lobby_with(&[("WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    // Under the limit: delivered.
    let text = "y".repeat(900);
    let want = chat(r#""1""#, "alice", &format!("\"{text}\""));
    assert_eq!(a.call(&send(r#""1""#, &format!("\"{text}\""))).await, want);
    assert_eq!(b.recv().await, want);
    // Over it: closed with 1009.
    let frame = send(r#""1""#, &format!("\"{}\"", "z".repeat(2000)));
    assert!(frame.len() > 2000);
    a.send(&frame).await;
    assert_eq!(a.expect_close().await.0, 1009);
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    b.expect_silence(200).await;
}

#[tokio::test]
async fn slow_reader_is_closed_1013_and_the_sender_is_not() {
    const COUNT: usize = 2000;
    let (server, alice, bob) = lobby_with(&[("WS_OUTBOUND_QUEUE", "8")]).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    // From here on alice reads nothing while bob sends ~16 MiB.
    let pad = "p".repeat(8 * 1024);
    let leave_notice = left(r#""1""#, "alice");
    let mut b_saw_leave = 0;
    for i in 0..COUNT {
        let message = format!("\"{i:05} {pad}\"");
        let want = chat(r#""1""#, "bob", &message);
        b.send(&send(r#""1""#, &message)).await;
        loop {
            let got = b.recv().await;
            if got == want {
                break;
            }
            assert_eq!(
                got, leave_notice,
                "bob got an unexpected frame at message {i}"
            );
            b_saw_leave += 1;
        }
    }
    // Alice now reads: whatever was queued (bob's messages, in order, some dropped), then 1013.
    let mut texts = 0usize;
    let mut last_index: Option<usize> = None;
    let code = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), a.stream.next())
            .await
            .expect("timed out reading the slow reader")
            .expect("stream ended without a close frame")
            .expect("read error before the close frame");
        match msg {
            Message::Text(t) => {
                texts += 1;
                let t = t.as_str();
                let prefix = r#"{"msg_type": 0, "room": "1", "username": "bob", "message": ""#;
                let rest = t
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("unexpected frame {:.120}", t));
                let index: usize = rest[..5].parse().unwrap();
                assert!(
                    last_index.is_none_or(|l| index > l),
                    "out of order: {index} after {last_index:?}"
                );
                last_index = Some(index);
            }
            Message::Close(Some(CloseFrame { code, .. })) => break u16::from(code),
            Message::Close(None) => break 1005,
            _ => {}
        }
    };
    assert_eq!(code, 1013, "after {texts} text frames");
    assert!(
        texts < COUNT,
        "the slow reader cannot have received all {COUNT} messages"
    );
    // Bob gets alice's leave notice exactly once, stays open and still gets his echoes.
    if b_saw_leave == 0 {
        assert_eq!(b.recv().await, leave_notice);
    } else {
        assert_eq!(b_saw_leave, 1);
    }
    assert_eq!(
        b.call(&send(r#""1""#, r#""done""#)).await,
        chat(r#""1""#, "bob", r#""done""#)
    );
    b.expect_silence(200).await;
}

// ---------------------------------------------------------------------------------------------
// 8. Golden bytes end to end (json-golden.json)
// ---------------------------------------------------------------------------------------------

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/spec/json-golden.json"
);

fn golden_cases(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("golden file {GOLDEN} is required: {e}"));
    let golden: serde_json::Value = serde_json::from_str(&text).expect("golden file is JSON");
    let list = golden[name]
        .as_array()
        .unwrap_or_else(|| panic!("no {name} list"))
        .clone();
    assert!(!list.is_empty(), "{name} is empty");
    list
}

fn field<'a>(case: &'a serde_json::Value, name: &str) -> &'a str {
    case[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {case}"))
}

#[tokio::test]
async fn golden_message_echo_bytes() {
    let server = TestServer::start().await;
    assert_eq!(server.create_room("Lobby", false).await, 1);
    let u = server.create_user("u", false).await;
    let listener = server.create_user("listener", false).await;
    let mut l = server.ws_for(listener).await;
    assert_eq!(l.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut ws = server.ws_for(u).await;
    assert_eq!(ws.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(l.recv().await, enter(r#""1""#, "u"));
    let (mut strict, mut refused_count) = (0, 0);
    for case in golden_cases("message_echo") {
        let frame = field(&case, "client_frame");
        let want = field(&case, "server_frame");
        if case["strict_json"].as_bool().expect("strict_json") {
            assert_eq!(ws.call(frame).await, want, "{frame}");
            assert_eq!(l.recv().await, want, "listener, {frame}");
            strict += 1;
        } else {
            assert_eq!(ws.call(frame).await, error("BAD_REQUEST"), "{frame}");
            refused_count += 1;
        }
    }
    assert!(
        strict > 0 && refused_count > 0,
        "{strict} strict, {refused_count} refused"
    );
    ws.expect_silence(200).await;
    l.expect_silence(50).await;
}

/// Every `room_id` vector joined on a fresh socket: rooms 1..=12 exist, so an integer in that
/// range is an ack with the canonical id and a following send echoes the raw value; anything
/// else (another integer, null, or where Python's `int()` raises) is ROOM_INVALID.
#[tokio::test]
async fn golden_room_ids_end_to_end() {
    let server = TestServer::start().await;
    for i in 1..=12 {
        assert_eq!(server.create_room(&format!("Room {i}"), false).await, i);
    }
    let u = server.create_user("u", false).await;
    let key = server.session_for(u).await;
    for case in golden_cases("room_id") {
        let room = field(&case, "room_json");
        let mut ws = server.ws(Some(&key), None).await.expect("handshake");
        match case["lookup"].as_i64().filter(|n| (1..=12).contains(n)) {
            Some(id) => {
                assert_eq!(
                    ws.call(&join(room)).await,
                    ack_join(id, &format!("Room {id}")),
                    "{room}"
                );
                let echoed = field(&case, "echoed_room_field");
                assert_eq!(
                    ws.call(&send(room, "0")).await,
                    chat(echoed, "u", "0"),
                    "{room}"
                );
            }
            None => {
                assert_eq!(ws.call(&join(room)).await, error("ROOM_INVALID"), "{room}");
                assert_eq!(
                    ws.call(&send(room, "0")).await,
                    error("ROOM_ACCESS_DENIED"),
                    "{room}"
                );
            }
        }
        ws.close(1000).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 9. NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS=false
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_notifications_only_acks_and_messages_flow() {
    let (server, alice, bob) =
        lobby_with(&[("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", "false")]).await;
    let mut b = server.ws_for(bob).await;
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = server.ws_for(alice).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    // Re-join: ack only, no own notice.
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
    let want = chat(r#""1""#, "alice", r#""quiet""#);
    assert_eq!(a.call(&send(r#""1""#, r#""quiet""#)).await, want);
    assert_eq!(b.recv().await, want);
    // Leave while subscribed: ack only, nothing for anyone.
    assert_eq!(a.call(&leave(r#""1""#)).await, ack_leave(1));
    a.expect_silence(200).await;
    b.expect_silence(50).await;
    // Rejoin, then disconnect: still no notice.
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    a.close(1000).await;
    b.expect_silence(300).await;
    assert_eq!(
        b.call(&send(r#""1""#, "2")).await,
        chat(r#""1""#, "bob", "2")
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Per-sender ordering
// ---------------------------------------------------------------------------------------------

/// Sends `n` chat messages `"<tag><i>"` to room `"1"`, yielding between frames so that two
/// senders driven by one `join!` interleave.
async fn send_many(ws: &mut Ws, tag: &str, n: usize) {
    for i in 0..n {
        ws.send(&send(r#""1""#, &format!("\"{tag}{i}\""))).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_sender_order_is_kept() {
    const N: usize = 200;
    let (server, alice, bob) = lobby().await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    tokio::join!(send_many(&mut a, "a", N), send_many(&mut b, "b", N));
    for (ws, name) in [(&mut a, "alice"), (&mut b, "bob")] {
        let (mut next_a, mut next_b) = (0, 0);
        for _ in 0..2 * N {
            let got = ws.recv().await;
            if got == chat(r#""1""#, "alice", &format!("\"a{next_a}\"")) {
                next_a += 1;
            } else if got == chat(r#""1""#, "bob", &format!("\"b{next_b}\"")) {
                next_b += 1;
            } else {
                panic!("{name} got {got} while expecting a{next_a} or b{next_b}");
            }
        }
        assert_eq!((next_a, next_b), (N, N), "{name}");
    }
    a.expect_silence(200).await;
    b.expect_silence(50).await;
}
