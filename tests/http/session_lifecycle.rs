//! A session's life: key cycling at login, logout, SECRET_KEY rotation and signed-cookie
//! sessions.

use super::*;

// ---------------------------------------------------------------------------------------------
// 8. Session key cycling at login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_keeps_key_for_same_user_and_flushes_for_another() {
    let server = TestServer::start().await;
    let anna = server.create_user("anna", false).await;
    let ben = server.create_user("ben", false).await;
    let k1 = login_ok(&server, "anna", PASSWORD).await;

    // Again as anna, carrying her cookie: same key, the row kept.
    let resp = login(&server, "anna", PASSWORD, Some(&k1)).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let again = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid re-sent"));
    assert_eq!(
        again, k1,
        "re-login as the same user must keep the session key"
    );
    assert_eq!(session_count(&server).await, 1);
    let (data, _, _) = session_row(&server, &k1).await.expect("row kept");
    let password = user_row(&server, anna).await.0;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(anna, &password, SECRET)
    );

    // As ben while carrying anna's cookie: flushed, new key, anna's row deleted.
    let resp = login(&server, "ben", PASSWORD, Some(&k1)).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let k2 = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid"));
    assert!(is_session_key(&k2));
    assert_ne!(k2, k1);
    assert!(
        session_row(&server, &k1).await.is_none(),
        "anna's row must be deleted"
    );
    assert_eq!(session_count(&server).await, 1);
    let (data, _, _) = session_row(&server, &k2).await.expect("ben's row");
    let password = user_row(&server, ben).await.0;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(ben, &password, SECRET)
    );

    // An unknown cookie value is never adopted as the key (no session fixation).
    let planted = "plantedsessionkey000000000000000";
    let resp = login(&server, "anna", PASSWORD, Some(planted)).await;
    assert_eq!(resp.status, 302);
    let k3 = resp.cookie("sessionid").unwrap();
    assert_ne!(k3, planted);
    assert!(session_row(&server, planted).await.is_none());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. Logout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_is_post_only_csrf_checked_and_flushes() {
    let server = TestServer::start().await;
    server.create_user("lou", false).await;
    let key = login_ok(&server, "lou", PASSWORD).await;

    let resp = get(&server, "/accounts/logout/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST, OPTIONS"));
    assert!(
        session_row(&server, &key).await.is_some(),
        "GET must not log out"
    );

    let resp = post(
        &server,
        "/accounts/logout/",
        &[("sessionid", &key)],
        &[],
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF cookie not set."), "{}", resp.body);
    assert!(
        session_row(&server, &key).await.is_some(),
        "a refused POST must not log out"
    );

    // The logout form on the index.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200);
    let secret = page.cookie("csrftoken").unwrap();
    let token = page.form_token();
    let cookies = [("sessionid", key.as_str()), ("csrftoken", secret.as_str())];
    let resp = post(&server, "/accounts/logout/", &cookies, &[], &[]).await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF token missing."), "{}", resp.body);

    let resp = post(
        &server,
        "/accounts/logout/",
        &cookies,
        &[("csrfmiddlewaretoken", &token)],
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("Logged out"), "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    assert!(
        resp.set_cookie("csrftoken").is_none(),
        "logout leaves the CSRF cookie alone"
    );
    assert!(
        !resp.body.contains("/accounts/logout/"),
        "logged out: no logout form"
    );
    assert!(session_row(&server, &key).await.is_none());
    assert_eq!(session_count(&server).await, 0);

    let resp = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    let err = server.ws(Some(&key), None).await.err().expect("refused");
    assert_eq!(handshake_status(&err), Some(403));
    server.stop().await;
}

/// Django's `SessionMiddleware` deletes the cookie of any request whose session turned out
/// empty: an unknown or deleted row makes `load()` drop the key, so `is_empty()` is true and
/// `sessionid` is in `request.COOKIES` ⇒ `delete_cookie` (django-internals §4.2).
#[tokio::test]
async fn stale_session_cookie_is_deleted_on_index() {
    let server = TestServer::start().await;
    let resp = get(
        &server,
        "/",
        &[("sessionid", "abcdefghijklmnopqrstuvwxyz012345")],
    )
    .await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 12. SECRET_KEY rotation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fallback_secret_key_session_is_cycled() {
    let server =
        TestServer::start_with(&[("SECRET_KEY", "new"), ("SECRET_KEY_FALLBACKS", "old")]).await;
    let id = server.create_user("rita", false).await;
    let password = user_row(&server, id).await.0;

    for (sign_key, hash_key) in [("old", "old"), ("new", "old"), ("old", "new")] {
        let old = server.session_for_keys(id, sign_key, hash_key).await;
        let resp = get(&server, "/", &[("sessionid", &old)]).await;
        assert_eq!(
            resp.status, 200,
            "signed {sign_key}, hash {hash_key}: {}",
            resp.body
        );
        if hash_key == "new" {
            // Only the signature used the fallback: Django re-signs on the next save only,
            // and a read does not save.
            assert!(
                resp.set_cookie("sessionid").is_none(),
                "{:?}",
                resp.set_cookies()
            );
            continue;
        }
        let new = check_session_cookie(resp.set_cookie("sessionid").expect("a new sessionid"));
        assert!(is_session_key(&new));
        assert_ne!(new, old, "the key must be cycled");
        assert!(
            session_row(&server, &old).await.is_none(),
            "the old row must be gone"
        );
        let (data, _, _) = session_row(&server, &new).await.expect("new row");
        assert_eq!(
            session_json(&data, &["new"], SESSION_SALT, None),
            login_json(id, &password, "new"),
            "signed {sign_key}, hash {hash_key}"
        );
        assert!(sessions::decode(&data, &["old"], SESSION_SALT, None, now_ts()).is_none());
        // The new cookie works and is not cycled again.
        let resp = get(&server, "/", &[("sessionid", &new)]).await;
        assert_eq!(resp.status, 200);
        assert!(resp.set_cookie("sessionid").is_none());
    }

    // A key that is neither current nor fallback: anonymous.
    let foreign = server.session_for_keys(id, "other", "other").await;
    let resp = get(&server, "/", &[("sessionid", &foreign)]).await;
    assert_eq!(resp.status, 302);
    // The signature fails: an empty session that keeps its key, the row is not deleted.
    assert!(session_row(&server, &foreign).await.is_some());
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 13. Signed-cookie sessions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn signed_cookie_sessions() {
    let server = TestServer::start_with(&[(
        "SESSION_ENGINE",
        "django.contrib.sessions.backends.signed_cookies",
    )])
    .await;
    let id = server.create_user("sig", false).await;
    let resp = login(&server, "sig", PASSWORD, None).await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    let header = resp.set_cookie("sessionid").expect("sessionid");
    let (value, expires, rest) = split_cookie(header, "sessionid");
    assert_eq!(rest, "HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax");
    assert_close(
        expires,
        Utc::now() + chrono::Duration::seconds(SESSION_AGE),
        "expires",
    );
    let value = value.to_string();
    assert!(value.contains(':'), "{value}");
    let password = user_row(&server, id).await.0;
    assert_eq!(
        session_json(
            &value,
            &[SECRET],
            SIGNED_COOKIES_SALT,
            Some(SESSION_AGE as u64)
        ),
        login_json(id, &password, SECRET)
    );
    assert!(
        sessions::decode(
            &value,
            &[SECRET],
            SIGNED_COOKIES_SALT,
            Some(SESSION_AGE as u64),
            now_ts()
        )
        .is_some()
    );
    assert_eq!(session_count(&server).await, 0, "no django_session rows");

    let page = get(&server, "/", &[("sessionid", &value)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"title="Logged in as sig""#));
    let ws = server
        .ws(Some(&value), None)
        .await
        .expect("WebSocket accepts the signed cookie");
    ws.close(1000).await;

    // Tampered: anonymous.
    let tampered = format!("{value}x");
    assert_eq!(
        get(&server, "/", &[("sessionid", &tampered)]).await.status,
        302
    );

    // Logout deletes the cookie.
    let secret = page.cookie("csrftoken").unwrap();
    let resp = post(
        &server,
        "/accounts/logout/",
        &[("sessionid", &value), ("csrftoken", &secret)],
        &[("csrfmiddlewaretoken", &page.form_token())],
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.set_cookie("sessionid"), Some(DELETE_SESSION));
    // Without server storage a copied cookie cannot be revoked (Django behaves the same).
    assert_eq!(
        get(&server, "/", &[("sessionid", &value)]).await.status,
        200
    );
    server.stop().await;
}
