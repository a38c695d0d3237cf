//! Issue 10's attacks, each performed by a real client against a real server: the victims in
//! the same room stay connected and keep receiving.

use super::*;

/// Alice (the attacker) and bob (a victim) in room 1, carol (a second victim) too.
async fn room_of_three(vars: &[(&str, &str)]) -> (TestServer, Ws, Ws, Ws) {
    let (server, alice, bob) = lobby_with(vars).await;
    let carol = server.create_user("carol", false).await;
    let (a, mut b) = both_in_lobby(&server, alice, bob).await;
    let mut c = server.ws_for(carol).await;
    assert_eq!(c.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    let mut a = a;
    assert_eq!(a.recv().await, enter(r#""1""#, "carol"));
    assert_eq!(b.recv().await, enter(r#""1""#, "carol"));
    (server, a, b, c)
}

/// The victims still chat: a message from bob reaches carol and comes back to bob.
async fn victims_still_chat(b: &mut Ws, c: &mut Ws, text: &str) {
    let message = format!("\"{text}\"");
    let want = chat(r#""1""#, "bob", &message);
    assert_eq!(b.call(&send(r#""1""#, &message)).await, want);
    assert_eq!(c.recv().await, want);
}

/// Point 1: 400,000 × "é" (800 KB in, 2.4 MB once escaped) used to drop the whole room. It is
/// refused to the sender; the largest message that fits is delivered whole to every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_flood_does_not_disconnect_the_room() {
    let (_server, mut a, mut b, mut c) = room_of_three(&[]).await;
    let huge = format!("\"{}\"", "é".repeat(400_000));
    assert_eq!(
        a.call(&send(r#""1""#, &huge)).await,
        error("MESSAGE_TOO_LARGE")
    );
    // 170,000 × "é" is 1,020,000 bytes escaped: under WS_MAX_MESSAGE_BYTES (1 MiB), so sent.
    let big = "é".repeat(170_000);
    let want = chat(
        r#""1""#,
        "alice",
        &format!("\"{}\"", "\\u00e9".repeat(170_000)),
    );
    a.send(&send(r#""1""#, &format!("\"{big}\""))).await;
    for ws in [&mut a, &mut b, &mut c] {
        assert!(ws.recv().await == want, "the big message, whole");
    }
    victims_still_chat(&mut b, &mut c, "still here").await;
    assert_eq!(a.recv().await, chat(r#""1""#, "bob", r#""still here""#));
    // The sender's byte budget is spent: the next big one is refused, nobody is closed.
    a.send(&send(r#""1""#, &format!("\"{big}\""))).await;
    assert_eq!(a.recv().await, error("RATE_LIMITED"));
    victims_still_chat(&mut b, &mut c, "and still").await;
}

/// Point 1, second half, and point 2: a long `room` value is refused before it is echoed in
/// an enter notice or kept as a joined spelling.
#[tokio::test]
async fn long_room_values_are_refused_and_never_echoed() {
    let (_server, mut a, mut b, mut c) = room_of_three(&[]).await;
    let long = format!("\"{}1\"", " ".repeat(256 * 1024));
    for frame in [join(&long), leave(&long), send(&long, "1")] {
        assert_eq!(a.call(&frame).await, error("ROOM_INVALID"));
    }
    b.expect_silence(200).await;
    c.expect_silence(0).await;
    victims_still_chat(&mut b, &mut c, "fine").await;
}

/// Point 2: joined spellings are bounded; a disconnect sends one leave notice per spelling
/// kept, no more.
#[tokio::test]
async fn joined_spellings_are_bounded() {
    let (server, alice, bob) = lobby_with(&[("WS_MAX_ROOMS_PER_SOCKET", "3")]).await;
    let (mut a, mut b) = both_in_lobby(&server, alice, bob).await;
    for spelling in [r#"" 1""#, r#""01""#] {
        assert_eq!(a.call(&join(spelling)).await, ack_join(1, "Lobby"));
        assert_eq!(a.recv().await, enter(spelling, "alice"));
        assert_eq!(b.recv().await, enter(spelling, "alice"));
    }
    for spelling in [r#""001""#, r#""  1""#, "1"] {
        assert_eq!(a.call(&join(spelling)).await, error("TOO_MANY_ROOMS"));
    }
    b.expect_silence(100).await;
    drop(a);
    let got = recv_sorted(&mut b, 3).await;
    assert_eq!(
        got,
        sorted(vec![
            left(r#""1""#, "alice"),
            left(r#"" 1""#, "alice"),
            left(r#""01""#, "alice"),
        ])
    );
    b.expect_silence(200).await;
}

/// Point 5: a flood of frames is answered RATE_LIMITED, never closed, and the room hears
/// exactly what passed, in order. After each refusal the socket is not read until the next
/// token, so the flood costs the server at most one refusal per admitted frame (without the
/// pause, 195 of the 200 would be refused at once, each decoded and answered).
#[tokio::test]
async fn a_message_flood_is_rate_limited_without_a_close() {
    let (_server, mut a, mut b, mut c) =
        room_of_three(&[("WS_MESSAGES_PER_SECOND", "50"), ("WS_MESSAGES_BURST", "5")]).await;
    let burst: Vec<String> = (0..200).map(|i| send(r#""1""#, &i.to_string())).collect();
    a.send_all(&burst).await;
    let mut delivered = Vec::new();
    let mut limited = 0;
    for i in 0..200 {
        let got = a.recv().await;
        if got == error("RATE_LIMITED") {
            limited += 1;
        } else {
            assert_eq!(got, chat(r#""1""#, "alice", &i.to_string()));
            delivered.push(i);
        }
    }
    assert_eq!(delivered.len() + limited, 200);
    assert!(
        limited >= 1 && limited <= delivered.len() + 1,
        "{limited} refused, {} delivered: one refusal at most per token",
        delivered.len()
    );
    for ws in [&mut b, &mut c] {
        for i in &delivered {
            assert_eq!(ws.recv().await, chat(r#""1""#, "alice", &i.to_string()));
        }
        ws.expect_silence(100).await;
    }
    victims_still_chat(&mut b, &mut c, "calm").await;
}

/// Open sockets, from `/healthz`.
async fn open_sockets(server: &TestServer) -> u64 {
    healthz(server).await["open_sockets"].as_u64().unwrap()
}

/// Point 3: a member that stops reading is closed once a write has waited `WS_WRITE_TIMEOUT`,
/// even when its queue never fills; the others get its leave notice and keep chatting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_closed_after_the_write_timeout() {
    let mut vars = vec![
        ("WS_WRITE_TIMEOUT", "1"),
        ("WS_OUTBOUND_QUEUE", "1000000"),
        ("WS_OUTBOUND_QUEUE_BYTES", "1000000000"),
    ];
    vars.extend(UNTHROTTLED);
    let (server, a, mut b, mut c) = room_of_three(&vars).await;
    // Alice reads nothing from here on. Bob sends 64 KiB messages until she is gone.
    let pad = "p".repeat(64 * 1024);
    let started = std::time::Instant::now();
    let mut sent = 0;
    let left_notice = left(r#""1""#, "alice");
    let mut leave_notices = 0;
    while leave_notices < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "alice was never closed ({sent} messages sent)"
        );
        let message = format!("\"{sent} {pad}\"");
        let want = chat(r#""1""#, "bob", &message);
        b.send(&send(r#""1""#, &message)).await;
        sent += 1;
        // Bob and carol read along and are not affected; alice's leave notice comes between.
        for ws in [&mut b, &mut c] {
            loop {
                let got = ws.recv().await;
                if got == want {
                    break;
                }
                assert!(
                    got == left_notice,
                    "unexpected {got:.80} after {sent} messages"
                );
                leave_notices += 1;
            }
        }
    }
    victims_still_chat(&mut b, &mut c, "after alice").await;
    for _ in 0..50 {
        if open_sockets(&server).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open_sockets(&server).await, 2, "alice's socket is gone");
    drop(a);
}

/// Point 3: shutdown closes every socket with 1001 even while a write to one is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_blocked_write() {
    let mut vars = vec![
        ("WS_WRITE_TIMEOUT", "600"),
        ("WS_OUTBOUND_QUEUE", "1000000"),
        ("WS_OUTBOUND_QUEUE_BYTES", "1000000000"),
    ];
    vars.extend(UNTHROTTLED);
    let (server, _a, mut b, mut c) = room_of_three(&vars).await;
    // Enough for alice's (unread) TCP buffers to fill: her write then waits.
    let pad = "p".repeat(256 * 1024);
    for i in 0..64 {
        let message = format!("\"{i} {pad}\"");
        b.send(&send(r#""1""#, &message)).await;
        let want = chat(r#""1""#, "bob", &message);
        assert_eq!(b.recv().await, want);
        assert_eq!(c.recv().await, want);
    }
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    // Bob hears alice and carol leave, then his 1001.
    let mut notices = 0;
    loop {
        match tokio::time::timeout(WAIT, b.stream.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => notices += 1,
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1001);
                break;
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    assert!(notices <= 2, "{notices}");
}

/// Point 5: one user's sockets and one address's handshakes are bounded (HTTP 429, no socket);
/// other users and a socket closed meanwhile are unaffected.
#[tokio::test]
async fn sockets_per_user_and_handshakes_per_address_are_bounded() {
    let (server, alice, bob) = lobby_with(&[("WS_MAX_SOCKETS_PER_USER", "2")]).await;
    let key = server.session_for(alice).await;
    let first = server.ws(Some(&key), None).await.unwrap();
    let _second = server.ws(Some(&key), None).await.unwrap();
    let refused = server.ws(Some(&key), None).await.err().unwrap();
    assert_eq!(handshake_status(&refused), Some(429));
    let _bob = server.ws_for(bob).await;
    first.close(1000).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _third = server.ws(Some(&key), None).await.expect("a slot came back");

    let server = TestServer::start_with(&[("WS_HANDSHAKES_PER_MINUTE", "3")]).await;
    let user = server.create_user("carol", false).await;
    let key = server.session_for(user).await;
    for _ in 0..3 {
        server.ws(Some(&key), None).await.unwrap();
    }
    let refused = server.ws(Some(&key), None).await.err().unwrap();
    assert_eq!(handshake_status(&refused), Some(429));
    // Anonymous handshakes count too: they cost a session lookup.
    let refused = server.ws(None, None).await.err().unwrap();
    assert_eq!(handshake_status(&refused), Some(429));
}
