//! Golden bytes end to end (`json-golden.json`): message echo and room ids.

use super::*;

// ---------------------------------------------------------------------------------------------
// 8. Golden bytes end to end (json-golden.json)
// ---------------------------------------------------------------------------------------------

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/json-golden.json");

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
