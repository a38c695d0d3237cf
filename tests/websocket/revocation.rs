//! Live revocation (issue 10 point 6): a change made elsewhere reaches open sockets within
//! `SESSION_RECHECK_SECONDS`. The original (and Whisper before) kept them chatting.

use super::*;
use whisper::django::sessions::{self, SIGNED_COOKIES_SALT, SessionData};

const RECHECK: (&str, &str) = ("SESSION_RECHECK_SECONDS", "0.2");

/// Alice (victim of the change) and bob in room 1; returns alice's session key too.
async fn alice_and_bob(vars: &[(&str, &str)]) -> (TestServer, i64, String, Ws, Ws) {
    let mut all = vec![RECHECK];
    all.extend_from_slice(vars);
    let (server, alice, bob) = lobby_with(&all).await;
    let key = server.session_for(alice).await;
    let mut a = server.ws(Some(&key), None).await.unwrap();
    let mut b = server.ws_for(bob).await;
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter(r#""1""#, "bob"));
    (server, alice, key, a, b)
}

/// Bob hears alice leave, alice gets `code`, and bob goes on.
async fn revoked(a: &mut Ws, b: &mut Ws, code: u16) {
    assert_eq!(b.recv().await, left(r#""1""#, "alice"));
    assert_eq!(a.expect_close().await.0, code);
    assert_eq!(
        b.call(&send(r#""1""#, "1")).await,
        chat(r#""1""#, "bob", "1")
    );
}

#[tokio::test]
async fn a_deleted_session_closes_its_sockets_4001() {
    let (server, _, key, mut a, mut b) = alice_and_bob(&[]).await;
    server.store.delete_session(&key).await.unwrap();
    revoked(&mut a, &mut b, 4001).await;
}

#[tokio::test]
async fn a_password_change_closes_4002() {
    let (server, alice, _, mut a, mut b) = alice_and_bob(&[]).await;
    let cfg =
        whisper::django::hashers::HasherConfig::new(whisper::django::hashers::DjangoVersion::V5_2);
    let encoded = whisper::django::hashers::make_password("new password", &cfg);
    server.store.set_password(alice, &encoded).await.unwrap();
    revoked(&mut a, &mut b, 4002).await;
}

#[tokio::test]
async fn deactivation_closes_4003() {
    let (server, alice, _, mut a, mut b) = alice_and_bob(&[]).await;
    exec(
        &server,
        "UPDATE auth_user SET is_active = FALSE WHERE id = $1",
        alice,
    )
    .await;
    revoked(&mut a, &mut b, 4003).await;
}

#[tokio::test]
async fn losing_staff_leaves_the_staff_rooms_only() {
    let (server, alice, _, mut a, mut b) = alice_and_bob(&[]).await;
    assert_eq!(server.create_room("Ops", true).await, 2);
    exec(
        &server,
        "UPDATE auth_user SET is_staff = TRUE WHERE id = $1",
        alice,
    )
    .await;
    exec(
        &server,
        "UPDATE auth_user SET is_staff = TRUE WHERE id = $1",
        2,
    )
    .await;
    // A socket opened as staff joins the staff room, with bob (staff too).
    let key = server.session_for(alice).await;
    let mut staff = server.ws(Some(&key), None).await.unwrap();
    let mut bob_staff = server.ws_for(2).await;
    assert_eq!(bob_staff.call(&join("2")).await, ack_join(2, "Ops"));
    assert_eq!(staff.call(&join("2")).await, ack_join(2, "Ops"));
    assert_eq!(bob_staff.recv().await, enter("2", "alice"));
    assert_eq!(staff.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter(r#""1""#, "alice"));
    assert_eq!(b.recv().await, enter(r#""1""#, "alice"));
    exec(
        &server,
        "UPDATE auth_user SET is_staff = FALSE WHERE id = $1",
        alice,
    )
    .await;
    assert_eq!(staff.recv().await, ack_leave(2));
    assert_eq!(staff.recv().await, error("ROOM_ACCESS_DENIED"));
    assert_eq!(staff.recv().await, left("2", "alice"));
    assert_eq!(bob_staff.recv().await, left("2", "alice"));
    // Still in the open room, still chatting; the staff room is refused from now on.
    assert_eq!(
        staff.call(&send(r#""1""#, "2")).await,
        chat(r#""1""#, "alice", "2")
    );
    assert_eq!(staff.call(&join("2")).await, error("ROOM_ACCESS_DENIED"));
    drop(a);
}

/// A `signed_cookies` session for the user, as Django's `login()` would set it.
async fn signed_cookie(server: &TestServer, id: i64) -> String {
    let user = server.store.user_by_id(id).await.unwrap().unwrap();
    let mut data = SessionData::default();
    data.set_login(id, &sessions::session_auth_hash(&user.password, SECRET));
    let now = chrono::Utc::now().timestamp() as u64;
    sessions::encode(&data, SECRET, SIGNED_COOKIES_SALT, now)
}

#[tokio::test]
async fn signed_cookie_sessions_are_revoked_by_a_password_change() {
    let engine = (
        "SESSION_ENGINE",
        "django.contrib.sessions.backends.signed_cookies",
    );
    let (server, alice, bob) = lobby_with(&[RECHECK, engine]).await;
    let mut a = server
        .ws(Some(&signed_cookie(&server, alice).await), None)
        .await
        .unwrap();
    let mut b = server
        .ws(Some(&signed_cookie(&server, bob).await), None)
        .await
        .unwrap();
    assert_eq!(a.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(b.call(&join(r#""1""#)).await, ack_join(1, "Lobby"));
    assert_eq!(a.recv().await, enter(r#""1""#, "bob"));
    // Nothing stored to delete: the socket lives on until the user changes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        a.call(&send(r#""1""#, "0")).await,
        chat(r#""1""#, "alice", "0")
    );
    assert_eq!(b.recv().await, chat(r#""1""#, "alice", "0"));
    let cfg =
        whisper::django::hashers::HasherConfig::new(whisper::django::hashers::DjangoVersion::V5_2);
    let encoded = whisper::django::hashers::make_password("new password", &cfg);
    server.store.set_password(alice, &encoded).await.unwrap();
    revoked(&mut a, &mut b, 4002).await;
}
