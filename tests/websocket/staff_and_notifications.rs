//! Staff-only rooms and the user snapshot (§4.5 step 3, §4.2 point 5), and
//! NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS=false.

use super::*;

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
