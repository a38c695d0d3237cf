//! The spec's worked session (§4.13), byte for byte, against the live server.
mod common;
use common::*;

#[tokio::test]
async fn worked_session_bytes() {
    let server = TestServer::start().await;
    // Rooms 12 and 13 as in the spec: make ids line up by creating filler rooms first.
    for i in 1..12 {
        server.create_room(&format!("filler {i}"), false).await;
    }
    assert_eq!(server.create_room("Book club", false).await, 12);
    assert_eq!(server.create_room("Ops", true).await, 13);
    let dana_id = server.create_user("dana", true).await;
    let sam_id = server.create_user("sam", false).await;
    let mut dana = server.ws_for(dana_id).await;
    let mut sam = server.ws_for(sam_id).await;

    assert_eq!(
        dana.call(r#"{"command": "join", "room": "12"}"#).await,
        r#"{"join": "12", "title": "Book club"}"#
    );
    assert_eq!(
        sam.call(r#"{"command": "join", "room": "12"}"#).await,
        r#"{"join": "12", "title": "Book club"}"#
    );
    assert_eq!(
        dana.recv().await,
        r#"{"msg_type": 4, "room": "12", "username": "sam"}"#
    );
    assert_eq!(
        sam.call(r#"{"command": "send", "room": "12", "message": "hello \u00e9"}"#)
            .await,
        r#"{"msg_type": 0, "room": "12", "username": "sam", "message": "hello \u00e9"}"#
    );
    assert_eq!(
        dana.recv().await,
        r#"{"msg_type": 0, "room": "12", "username": "sam", "message": "hello \u00e9"}"#
    );
    assert_eq!(
        sam.call(r#"{"command": "join", "room": "13"}"#).await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    assert_eq!(
        sam.call(r#"{"command": "send", "room": "13", "message": "let me in"}"#)
            .await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    assert_eq!(
        sam.call(r#"{"command": "join", "room": "404"}"#).await,
        r#"{"error": "ROOM_INVALID"}"#
    );
    assert_eq!(
        dana.call(r#"{"command": "leave", "room": "12"}"#).await,
        r#"{"leave": "12"}"#
    );
    assert_eq!(
        dana.recv().await,
        r#"{"msg_type": 5, "room": "12", "username": "dana"}"#
    );
    assert_eq!(
        sam.recv().await,
        r#"{"msg_type": 5, "room": "12", "username": "dana"}"#
    );
    sam.close(1000).await;
    dana.expect_silence(200).await;
    server.stop().await;
}
