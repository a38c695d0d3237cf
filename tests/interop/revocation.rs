//! Live revocation with real Django making the change (issue 10 point 6): open Whisper sockets
//! of sessions Django made hear about a logout, a password change in the admin, a
//! deactivation and a lost `is_staff` within `SESSION_RECHECK_SECONDS`, on both backends and
//! both engines. A signed cookie cannot be logged out server-side (Django's own logout only
//! deletes it in the browser), so that socket stays open, as Django keeps accepting the cookie.

use super::*;

on_both_backends_and_engines!(open_sockets_follow_changes_made_in_django);

/// Reads frames until a close; its code.
async fn close_code(ws: &mut Ws) -> u16 {
    ws.expect_close().await.0
}

async fn open_sockets_follow_changes_made_in_django(
    backend: Backend,
    version: &'static str,
    engine: &str,
) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version)
        .with("SESSION_ENGINE", engine)
        .with("SESSION_RECHECK_SECONDS", "0.2");
    let server = env.whisper().await;
    let django = env.django();
    django.create_user("root", PASSWORD, &["--superuser"]).await;
    for name in ["alice", "bob", "carol"] {
        django.create_user(name, PASSWORD, &[]).await;
    }
    django.create_user("dave", PASSWORD, &["--staff"]).await;
    let lobby = room_id(&django, "Lobby", false).await;
    let ops = room_id(&django, "Ops", true).await;
    let r = lobby.to_string();
    let join_frame = |room: i64| format!(r#"{{"command": "join", "room": {room}}}"#);

    // Logout in Django.
    let a = django.login("alice", PASSWORD).await;
    let mut ws = ws_to(server.addr, &a).await;
    ws.call(&join_frame(lobby)).await;
    assert_eq!(django.logout(&a).await["status"], 200);
    if engine == SIGNED_COOKIES {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let echo = ws.call(&send(&r, "1")).await;
        assert!(echo.contains(r#""username": "alice""#), "{echo}");
    } else {
        assert_eq!(
            close_code(&mut ws).await,
            4001,
            "alice after Django's logout"
        );
    }

    // A password change in the admin.
    let b = django.login("bob", PASSWORD).await;
    let mut ws = ws_to(server.addr, &b).await;
    ws.call(&join_frame(lobby)).await;
    django
        .admin_change_password("root", "bob", "a brand new password")
        .await;
    assert_eq!(
        close_code(&mut ws).await,
        4002,
        "bob after the admin's change"
    );

    // Deactivation.
    let c = django.login("carol", PASSWORD).await;
    let mut ws = ws_to(server.addr, &c).await;
    ws.call(&join_frame(lobby)).await;
    django
        .run(&["set-active", "--username", "carol", "--active", "0"])
        .await;
    assert_eq!(close_code(&mut ws).await, 4003, "carol deactivated");

    // is_staff lost: the staff room is left, the open one kept.
    let d = django.login("dave", PASSWORD).await;
    let mut ws = ws_to(server.addr, &d).await;
    assert_eq!(
        ws.call(&join_frame(ops)).await,
        format!(r#"{{"join": "{ops}", "title": "Ops"}}"#)
    );
    ws.call(&join_frame(lobby)).await;
    django
        .run(&["set-staff", "--username", "dave", "--value", "0"])
        .await;
    assert_eq!(ws.recv().await, format!(r#"{{"leave": "{ops}"}}"#));
    assert_eq!(ws.recv().await, r#"{"error": "ROOM_ACCESS_DENIED"}"#);
    assert_eq!(
        ws.recv().await,
        format!(r#"{{"msg_type": 5, "room": {ops}, "username": "dave"}}"#)
    );
    let echo = ws.call(&send(&r, "2")).await;
    assert!(echo.contains(r#""username": "dave""#), "{echo}");
    server.stop().await;
}
