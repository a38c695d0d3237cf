//! Check 3, sessions both ways (db and signed_cookies engines): cross login, logout, password
//! change, is_active, expiry and SECRET_KEY rotation with fallbacks.

use super::*;

on_both_backends_and_engines!(
    sessions_cross_login,
    sessions_logout_ends_both,
    sessions_refused_after_password_change_deactivation_expiry,
    sessions_survive_secret_key_rotation,
);

// ---------------------------------------------------------------------------------------------
// 3. Sessions both ways
// ---------------------------------------------------------------------------------------------

/// A Whisper server and Django `version` sharing a database and a session engine.
async fn shared(
    backend: Backend,
    version: &'static str,
    engine: &str,
) -> (TestDb, Env, TestServer, Django) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db, version).with("SESSION_ENGINE", engine);
    let server = env.whisper().await;
    let django = env.django();
    (db, env, server, django)
}

async fn sessions_cross_login(backend: Backend, version: &'static str, engine: &str) {
    let (_db, _env, server, django) = shared(backend, version, engine).await;
    django.create_user("alice", PASSWORD, &["--staff"]).await;
    let zoe = django.create_user("Zoë", PASSWORD, &["--staff"]).await;
    let room = room_id(&django, "Lobby", false).await;

    // A Django login's cookie opens Whisper's index and WebSocket.
    let from_django = django.login("alice", PASSWORD).await;
    let index = w_get(&server, "/", Some(&from_django)).await;
    assert_eq!(index.status, 200, "{}", index.body);
    assert_eq!(index.rooms(), vec![(room, "Lobby".to_string())]);
    let mut ws = server
        .ws(Some(&from_django), None)
        .await
        .expect("handshake");
    assert_eq!(
        command(&mut ws, &join(&room.to_string())).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.close(1000).await;

    // A Whisper login's cookie opens the Django admin and index.
    let from_whisper = w_login(&server, "alice", PASSWORD).await;
    let (status, body) = django.admin_index(&from_whisper).await;
    assert_eq!(
        status, 200,
        "Django admin refused Whisper's session: {body}"
    );
    assert!(body.contains("Site administration"));
    let page = django.get("/", &from_whisper).await;
    assert_eq!(page["status"], 200, "{page}");
    assert!(page["body"].as_str().unwrap().contains(r#"data-room-id=""#));

    // Non-ASCII: Zoë's Django session, with a non-ASCII value added by Django, works in Whisper
    // (index, WebSocket events carry her name) ...
    let greeting = "Grüße, Zoë ✓";
    let z_django = django.login("Zoë", PASSWORD).await;
    let z_django = django
        .run(&[
            "session-set",
            "--key",
            &z_django,
            "--name",
            "greeting",
            "--value",
            greeting,
        ])
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w_get(&server, "/", Some(&z_django)).await.status, 200);
    let mut ws = server
        .ws(Some(&z_django), None)
        .await
        .expect("Zoë's handshake");
    let r = room.to_string();
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.send(&send(&r, r#""hällo""#)).await;
    assert_eq!(
        recv_starting(&mut ws, r#"{"msg_type": 0"#).await,
        format!(
            r#"{{"msg_type": 0, "room": {r}, "username": "Zo\u00eb", "message": "h\u00e4llo"}}"#
        )
    );
    ws.close(1000).await;
    // ... and a Whisper login made on top of that session keeps the value for Django.
    let relogin = w_login_page(&server, "Zoë", PASSWORD, Some(&z_django)).await;
    assert_eq!(relogin.status, 302, "{}", relogin.body);
    let z_whisper = relogin.next_session(&z_django).unwrap();
    let data = django.session_decode(&z_whisper).await;
    assert_eq!(data["greeting"], greeting, "{data}");
    assert_eq!(data["_auth_user_id"], zoe["id"].to_string(), "{data}");
    // A fresh Whisper login of Zoë opens the admin, which greets her by name.
    let z_fresh = w_login(&server, "Zoë", PASSWORD).await;
    let (status, body) = django.admin_index(&z_fresh).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<strong>Zoë</strong>"), "{body}");
    server.stop().await;
}

async fn sessions_logout_ends_both(backend: Backend, version: &'static str, engine: &str) {
    let (_db, _env, server, django) = shared(backend, version, engine).await;
    django.create_user("alice", PASSWORD, &["--staff"]).await;
    let signed = engine == SIGNED_COOKIES;

    // Logout in Whisper of a Django session.
    let d = django.login("alice", PASSWORD).await;
    assert_whisper_accepts(&server, &d, "before logout").await;
    let out = w_logout(&server, &d).await;
    assert_eq!(
        out.session,
        Some(None),
        "Whisper's logout must delete the cookie"
    );
    let (status, _) = django.admin_index(&d).await;
    if signed {
        // A signed cookie cannot be revoked: Django's own logout only deletes it in the
        // browser. Whisper must then agree with Django about the old value.
        assert_eq!(status, 200);
        assert_whisper_accepts(&server, &d, "old signed cookie after logout").await;
    } else {
        assert_eq!(
            status, 302,
            "Django still accepts a session Whisper logged out"
        );
        assert_whisper_refuses(&server, &d, "after Whisper's logout").await;
    }

    // Logout in Django of a Whisper session.
    let w = w_login(&server, "alice", PASSWORD).await;
    assert_eq!(django.admin_index(&w).await.0, 200);
    let out = django.logout(&w).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["set_cookies"]["sessionid"]["value"], "", "{out}");
    if signed {
        assert_eq!(django.get("/", &w).await["status"], 200);
        assert_whisper_accepts(&server, &w, "old signed cookie after Django's logout").await;
    } else {
        assert_eq!(django.get("/", &w).await["status"], 302);
        assert_whisper_refuses(&server, &w, "after Django's logout").await;
    }
    server.stop().await;
}

async fn sessions_refused_after_password_change_deactivation_expiry(
    backend: Backend,
    version: &'static str,
    engine: &str,
) {
    let (_db, env, server, django) = shared(backend, version, engine).await;
    django.create_user("root", PASSWORD, &["--superuser"]).await;
    django.create_user("bob", PASSWORD, &[]).await;
    django.create_user("carol", PASSWORD, &[]).await;

    // A password change in the Django admin: Whisper refuses the old cookies (HTTP and
    // WebSocket), whichever side made them.
    let b_django = django.login("bob", PASSWORD).await;
    let b_whisper = w_login(&server, "bob", PASSWORD).await;
    assert_whisper_accepts(&server, &b_django, "bob via Django").await;
    assert_whisper_accepts(&server, &b_whisper, "bob via Whisper").await;
    django
        .admin_change_password("root", "bob", "a brand new password")
        .await;
    assert_whisper_refuses(&server, &b_django, "bob's Django session after the change").await;
    assert_whisper_refuses(
        &server,
        &b_whisper,
        "bob's Whisper session after the change",
    )
    .await;
    assert_eq!(django.get("/", &b_whisper).await["status"], 302);
    let fresh = w_login(&server, "bob", "a brand new password").await;
    assert_whisper_accepts(&server, &fresh, "bob's new session").await;

    // is_active = False.
    let c_django = django.login("carol", PASSWORD).await;
    let c_whisper = w_login(&server, "carol", PASSWORD).await;
    django
        .run(&["set-active", "--username", "carol", "--active", "0"])
        .await;
    assert_whisper_refuses(&server, &c_django, "inactive carol via Django").await;
    assert_whisper_refuses(&server, &c_whisper, "inactive carol via Whisper").await;
    let again = w_login_page(&server, "carol", PASSWORD, None).await;
    assert_eq!(again.status, 200, "an inactive user logged in to Whisper");
    assert_eq!(django.get("/", &c_whisper).await["status"], 302);
    let d = django.login_at("/accounts/login/", "carol", PASSWORD).await;
    assert_eq!(d["status"], 200, "Django let an inactive user in: {d}");

    // Expired sessions.
    server.stop().await;
    if engine == SIGNED_COOKIES {
        // The cookie's signed timestamp is older than SESSION_COOKIE_AGE. The age leaves room
        // for two logins (PBKDF2 at 1M iterations, each side) on a loaded machine.
        const AGE: u64 = 6;
        let short = env.with("SESSION_COOKIE_AGE", &AGE.to_string());
        let server = short.whisper().await;
        let django = short.django();
        django.run(&["rooms"]).await; // Django started before the clock runs
        let first_login = Instant::now();
        let d = django.login("bob", "a brand new password").await;
        let w = w_login(&server, "bob", "a brand new password").await;
        let signed = Instant::now();
        assert_whisper_accepts(&server, &d, "fresh signed cookie").await;
        assert!(
            first_login.elapsed() < Duration::from_secs(AGE),
            "the logins took longer than SESSION_COOKIE_AGE; the check above proved nothing"
        );
        // Both cookies were signed before `signed`; timestamps have whole seconds.
        let expired = signed + Duration::from_secs(AGE + 1) + Duration::from_millis(100);
        tokio::time::sleep_until(expired.into()).await;
        assert_whisper_refuses(&server, &d, "expired signed cookie from Django").await;
        assert_whisper_refuses(&server, &w, "expired signed cookie from Whisper").await;
        assert_eq!(django.get("/", &w).await["status"], 302);
        server.stop().await;
    } else {
        let server = env.whisper().await;
        let d = django.login("bob", "a brand new password").await;
        let w = w_login(&server, "bob", "a brand new password").await;
        for key in [&d, &w] {
            let n = django.run(&["session-expire", "--key", key]).await;
            assert_eq!(n["updated"], 1, "{n}");
        }
        assert_whisper_refuses(&server, &d, "expired Django session").await;
        assert_whisper_refuses(&server, &w, "expired Whisper session").await;
        assert_eq!(django.get("/", &w).await["status"], 302);
        server.stop().await;
    }
}

async fn sessions_survive_secret_key_rotation(
    backend: Backend,
    version: &'static str,
    engine: &str,
) {
    const OLD: &str = "the-old-secret-key-before-rotation";
    const NEW: &str = "the-new-secret-key-after-rotation";
    let db = TestDb::new(backend).await;
    let old_env = Env::new(&db, version)
        .with("SESSION_ENGINE", engine)
        .with("SECRET_KEY", OLD);
    let new_env = old_env
        .with("SECRET_KEY", NEW)
        .with("SECRET_KEY_FALLBACKS", OLD);
    let new_only = old_env.with("SECRET_KEY", NEW);

    // Sessions made under the old key, on both sides.
    let server = old_env.whisper().await;
    let old_django = old_env.django();
    old_django
        .create_user("alice", PASSWORD, &["--staff"])
        .await;
    let room = room_id(&old_django, "Lobby", false).await;
    let w = w_login(&server, "alice", PASSWORD).await;
    let d = old_django.login("alice", PASSWORD).await;
    let d2 = old_django.login("alice", PASSWORD).await;
    let w2 = w_login(&server, "alice", PASSWORD).await;
    server.stop().await;

    // Rotated, with the old key in SECRET_KEY_FALLBACKS: both sides keep them valid. Like
    // Django, Whisper may move the session to the new key (a new cookie): follow it.
    let server = new_env.whisper().await;
    let django = new_env.django();
    let page = w_get(&server, "/", Some(&d)).await;
    assert_eq!(
        page.status, 200,
        "Whisper refused an old-key Django session"
    );
    let d_next = page.next_session(&d).expect("a session after the rotation");
    // As Django's get_user: a fallback-key auth hash cycles the session key.
    assert_ne!(d_next, d, "the session was not moved to the new key");
    if engine == DB_SESSIONS {
        assert_eq!(
            django_admin_status(&new_env, &d).await,
            302,
            "the old row survived"
        );
    }
    let mut ws = server.ws(Some(&d_next), None).await.expect("handshake");
    assert_eq!(
        command(&mut ws, &join(&room.to_string())).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.close(1000).await;
    assert_eq!(
        django.admin_index(&d_next).await.0,
        200,
        "Django refused the session Whisper moved to the new key"
    );
    let (status, body) = django.admin_index(&w).await;
    assert_eq!(
        status, 200,
        "Django refused an old-key Whisper session: {body}"
    );
    server.stop().await;

    // Without the fallback, old-key sessions are refused by both.
    let server = new_only.whisper().await;
    let django = new_only.django();
    assert_whisper_refuses(&server, &d2, "old-key session without fallback").await;
    assert_eq!(django.admin_index(&w2).await.0, 302);
    server.stop().await;
}
