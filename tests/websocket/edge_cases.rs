//! The edge-case matrix (§4.14) with our documented replies, and raw-value keying (§4.6).

use super::*;

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
