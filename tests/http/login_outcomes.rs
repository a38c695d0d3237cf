//! What a login POST does: failed logins re-render the form, a successful login (cookie, row,
//! index), the `next` redirect target and non-ASCII usernames.

use super::*;

// ---------------------------------------------------------------------------------------------
// 4. Failed logins
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_failures_rerender_the_form() {
    let server = TestServer::start().await;
    let bob = server.create_user("bob", false).await;
    let idle = server.create_user("idle", false).await;
    set_active(&server, idle, false).await;

    let cases: &[(&str, &str, &str)] = &[
        ("bad password", "bob", "wrong password"),
        ("unknown user", "nobody", PASSWORD),
        ("inactive user", "idle", PASSWORD),
        ("case-sensitive username", "BOB", PASSWORD),
    ];
    for (what, username, password) in cases {
        let resp = login(&server, username, password, None).await;
        assert_eq!(resp.status, 200, "{what}: {}", resp.body);
        assert!(resp.body.contains(INVALID_LOGIN), "{what}: {}", resp.body);
        assert!(
            resp.body.contains(&format!(
                r#"<ul class="errorlist nonfield"><li>{INVALID_LOGIN}</li></ul>"#
            )),
            "{what}: {}",
            resp.body
        );
        assert!(
            resp.body
                .contains(&format!(r#"name="username" value="{username}""#)),
            "{what}: username not refilled: {}",
            resp.body
        );
        // The password is never echoed.
        assert!(
            !resp.body.contains(&format!(r#"value="{password}""#)),
            "{what}"
        );
        assert!(
            resp.set_cookie("sessionid").is_none(),
            "{what}: {:?}",
            resp.set_cookies()
        );
        // A fresh form token comes with the page.
        assert_eq!(resp.form_token().len(), 64);
    }
    assert_eq!(session_count(&server).await, 0);
    assert_eq!(
        user_row(&server, bob).await.1,
        None,
        "bob's last_login must stay NULL"
    );

    // Empty fields.
    let resp = login(&server, "", "", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 2, "{}", resp.body);
    assert!(!resp.body.contains(INVALID_LOGIN));
    let resp = login(&server, "bob", "", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 1, "{}", resp.body);
    assert!(
        resp.body.contains(r#"name="username" value="bob""#),
        "{}",
        resp.body
    );
    // A whitespace-only username is stripped to empty.
    let resp = login(&server, "   ", PASSWORD, None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.matches(REQUIRED).count(), 1, "{}", resp.body);

    // The refilled username is the raw input, as Django's BoundField.value(): not stripped,
    // not NFKC-normalised (U+FDFA is 18 characters after NFKC; 100,000 of them were a 23 MB
    // page).
    let resp = login(&server, " bob ", "wrong", None).await;
    assert!(
        resp.body.contains(r#"name="username" value=" bob ""#),
        "{}",
        resp.body
    );
    let wide = "\u{fdfa}".repeat(100_000);
    let resp = login(&server, &wide, "wrong", None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains(&wide));
    assert!(
        resp.body.len() < 2 * wide.len(),
        "{} bytes",
        resp.body.len()
    );

    // A refilled username is escaped.
    let resp = login(&server, "<b>\"x\"", "pw", None).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.body.contains(r#"value="&lt;b&gt;&quot;x&quot;""#),
        "{}",
        resp.body
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Successful login
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_success_cookie_row_and_index() {
    let server = TestServer::start().await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    let (resp, csrf_before) = login_with(
        &server,
        &[("username", "alice"), ("password", PASSWORD)],
        None,
    )
    .await;
    let started = Utc::now();
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/");
    let cache = resp.header("cache-control").unwrap_or("");
    assert!(
        cache.contains("no-cache, no-store, must-revalidate"),
        "{cache}"
    );

    // sessionid
    let key = check_session_cookie(resp.set_cookie("sessionid").expect("sessionid"));
    assert!(is_session_key(&key), "{key}");
    // csrftoken rotated
    let csrf_after = check_csrf_cookie(resp.set_cookie("csrftoken").expect("rotated csrftoken"));
    assert_ne!(csrf_after, csrf_before, "CSRF secret must rotate at login");

    // The row.
    assert_eq!(session_count(&server).await, 1);
    let (data, expire, kind) = session_row(&server, &key).await.expect("session row");
    assert_eq!(kind, "text");
    assert_close(
        parse_django_datetime(&expire),
        started + chrono::Duration::seconds(SESSION_AGE),
        "expire_date",
    );
    let (password, last_login, last_login_kind) = user_row(&server, alice).await;
    assert_eq!(
        session_json(&data, &[SECRET], SESSION_SALT, None),
        login_json(alice, &password, SECRET)
    );
    let decoded =
        sessions::decode(&data, &[SECRET], SESSION_SALT, None, now_ts()).expect("decodes");
    assert_eq!(decoded.user_id(), Some(alice));
    assert_eq!(decoded.backend().as_deref(), Some(MODEL_BACKEND));
    assert_eq!(
        decoded.auth_hash(),
        Some(sessions::session_auth_hash(&password, SECRET))
    );
    // Signed with SECRET_KEY: no other key verifies it.
    assert!(sessions::decode(&data, &["other"], SESSION_SALT, None, now_ts()).is_none());

    // last_login
    assert_eq!(last_login_kind, "text");
    let last_login = last_login.expect("last_login set");
    assert_close(parse_django_datetime(&last_login), started, "last_login");

    // The index with the cookie.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains(">Lobby</li>"), "{}", page.body);
    assert!(
        page.body.contains(r#"title="Logged in as alice""#),
        "{}",
        page.body
    );
    // Reading a session does not re-save it.
    assert!(
        page.set_cookie("sessionid").is_none(),
        "{:?}",
        page.set_cookies()
    );
    assert_eq!(session_row(&server, &key).await.unwrap().1, expire);

    // The same with a browser-like cookie-store client.
    let browser = server.client();
    let form = browser
        .get(server.url("/accounts/login/"))
        .send()
        .await
        .unwrap();
    let form = Resp::from(form).await;
    let token = form.form_token();
    let r = browser
        .post(server.url("/accounts/login/"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrfmiddlewaretoken", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = Resp::from(browser.get(server.url("/")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(">Lobby</li>"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. The `next` redirect target
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_next_is_honoured_only_when_safe() {
    let server = TestServer::start().await;
    server.create_user("nina", false).await;
    let same_host = format!("http://{}/abs", server.host());
    let cases: &[(&str, &str)] = &[
        ("/somewhere?x=1", "/somewhere?x=1"),
        (&same_host, &same_host),
        ("http://evil.example/", "/"),
        ("//evil.example", "/"),
        ("///evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ];
    for (next, expected) in cases {
        let fields = [("username", "nina"), ("password", PASSWORD), ("next", next)];
        let (resp, _) = login_with(&server, &fields, None).await;
        assert_eq!(resp.status, 302, "next={next:?}: {}", resp.body);
        assert_eq!(resp.location(), *expected, "next={next:?}");
    }

    // `next` in the query string of the POST (the form posts back to its own URL).
    let (secret, token) = login_page(&server, &[]).await;
    let resp = post(
        &server,
        "/accounts/login/?next=/from-query",
        &[("csrftoken", &secret)],
        &[
            ("username", "nina"),
            ("password", PASSWORD),
            ("csrfmiddlewaretoken", &token),
        ],
        &[],
    )
    .await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/from-query");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 16. Non-ASCII usernames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_ascii_username_login() {
    let server = TestServer::start().await;
    let id = server.create_user("Zoë", false).await;
    // Decomposed, fullwidth and padded forms all NFKC-normalise (and strip) to "Zoë".
    for typed in ["Zoe\u{308}", " \u{ff3a}\u{ff4f}\u{eb} "] {
        let resp = login(&server, typed, PASSWORD, None).await;
        assert_eq!(resp.status, 302, "{typed:?}: {}", resp.body);
        let key = resp.cookie("sessionid").unwrap();
        let (data, _, _) = session_row(&server, &key).await.unwrap();
        assert!(data.is_ascii());
        let json = session_json(&data, &[SECRET], SESSION_SALT, None);
        assert!(json.is_ascii(), "{json}");
        let password = user_row(&server, id).await.0;
        assert_eq!(json, login_json(id, &password, SECRET));

        let page = get(&server, "/", &[("sessionid", &key)]).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains(r#"title="Logged in as Zoë""#),
            "{}",
            page.body
        );
    }
    // A different user: "Zoe" is not "Zoë".
    let resp = login(&server, "Zoe", PASSWORD, None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains(INVALID_LOGIN));
    server.stop().await;
}
