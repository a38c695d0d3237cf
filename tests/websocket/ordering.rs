//! Frame ordering: every row of the ordering table (§4.12) and per-sender ordering.

use super::*;

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
    let (server, alice, bob) = lobby_with(&UNTHROTTLED).await;
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
