//! The WebSocket contract (spec `multichat-protocol.md` §4) against the live server: the
//! handshake (§4.1–§4.2), every row of the ordering table (§4.12), every row of the edge-case
//! matrix (§4.14) with our documented replies where the original crashed (`src/chat/protocol.rs`,
//! `src/web/socket.rs`), raw-value keying (§4.6), staff rooms, disconnect (§4.11), limits,
//! golden bytes (`json-golden.json`), the notification switch and per-sender ordering.
//!
//! This file holds the shared helpers (expected frames, handshakes, raw SQL); the tests live
//! in the topic modules.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod closing;
mod edge_cases;
mod golden;
mod handshake;
mod ordering;
mod presence;
mod revocation;
mod staff_and_notifications;

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
