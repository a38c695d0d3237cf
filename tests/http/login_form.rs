//! The way in: the anonymous index redirect, the login page (headers, cookie, token) and the
//! CSRF checks on the login POST.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Anonymous index
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_index_redirects_to_login() {
    let server = TestServer::start().await;
    let resp = get(&server, "/", &[]).await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    assert!(
        resp.set_cookie("sessionid").is_none(),
        "{:?}",
        resp.set_cookies()
    );
    // A cookie naming no row is just anonymous too.
    let resp = get(
        &server,
        "/",
        &[("sessionid", "abcdefghijklmnopqrstuvwxyz012345")],
    )
    .await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.location(), "/accounts/login/?next=/");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Login page
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_page_headers_cookie_and_token() {
    let server = TestServer::start().await;
    let resp = get(&server, "/accounts/login/", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let cookies = resp.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let secret = check_csrf_cookie(resp.set_cookie("csrftoken").unwrap());

    let token = resp.form_token();
    assert_eq!(token.len(), 64, "{token}");
    assert!(is_alnum(&token), "{token}");
    assert_eq!(unmask(&token).as_deref(), Some(secret.as_str()));

    let cache = resp.header("cache-control").unwrap();
    assert!(
        cache.contains("no-cache, no-store, must-revalidate"),
        "{cache}"
    );
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let vary = resp.header_joined("vary");
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("cookie")),
        "{vary:?}"
    );
    assert!(resp.header("expires").is_some());

    assert!(resp.body.contains("<title>Login</title>"), "{}", resp.body);
    assert!(resp.body.contains(r#"name="username""#));
    assert!(resp.body.contains(r#"type="password" name="password""#));
    assert!(!resp.body.contains(r#"name="next""#), "{}", resp.body);
    // Anonymous: no logout form.
    assert!(!resp.body.contains("/accounts/logout/"), "{}", resp.body);

    // With an existing well-formed cookie: same secret, fresh mask each time.
    let again = get(&server, "/accounts/login/", &[("csrftoken", &secret)]).await;
    assert_eq!(again.status, 200);
    let token2 = again.form_token();
    assert_ne!(token2, token, "the mask must be fresh");
    assert_eq!(unmask(&token2).as_deref(), Some(secret.as_str()));
    if let Some(c) = again.cookie("csrftoken") {
        assert_eq!(c, secret, "an existing secret must be kept");
    }

    // ?next= is carried as a hidden input.
    let with_next = get(&server, "/accounts/login/?next=/x", &[]).await;
    assert_eq!(with_next.status, 200);
    assert!(
        with_next
            .body
            .contains(r#"<input type="hidden" name="next" value="/x">"#),
        "{}",
        with_next.body
    );
    // …escaped.
    let nasty = get(&server, "/accounts/login/?next=%22%3E%3Cscript%3E", &[]).await;
    assert!(
        nasty
            .body
            .contains(r#"<input type="hidden" name="next" value="&quot;&gt;&lt;script&gt;">"#),
        "{}",
        nasty.body
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. CSRF on the login POST
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_post_csrf_checks() {
    let server = TestServer::start().await;
    server.create_user("carol", false).await;
    let (secret, token) = login_page(&server, &[]).await;
    let cookie = [("csrftoken", secret.as_str())];
    // Empty password: CSRF passed when the form comes back (200) without hashing anything.
    let probe = [("username", "carol"), ("password", "")];
    let with_token = |t: &'static str| {
        [
            ("username", "carol"),
            ("password", ""),
            ("csrfmiddlewaretoken", t),
        ]
    };

    // No cookie at all.
    let resp = post(
        &server,
        "/accounts/login/",
        &[],
        &[
            ("username", "carol"),
            ("password", ""),
            ("csrfmiddlewaretoken", &token),
        ],
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF cookie not set."), "{}", resp.body);
    assert!(
        resp.body
            .contains("CSRF verification failed. Request aborted.")
    );
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    // Cookie but no token.
    let resp = post(&server, "/accounts/login/", &cookie, &probe, &[]).await;
    assert_eq!(resp.status, 403);
    assert!(resp.body.contains("CSRF token missing."), "{}", resp.body);

    // A well-formed token for another secret.
    let other = django_csrf::mask_cipher_secret(&django_csrf::new_secret());
    let fields = [
        ("username", "carol"),
        ("password", ""),
        ("csrfmiddlewaretoken", other.as_str()),
    ];
    let resp = post(&server, "/accounts/login/", &cookie, &fields, &[]).await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains("CSRF token from POST incorrect."),
        "{}",
        resp.body
    );

    // A malformed token.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &with_token("short"),
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body
            .contains("CSRF token from POST has incorrect length."),
        "{}",
        resp.body
    );

    // Good token, foreign Origin.
    let good = [
        ("username", "carol"),
        ("password", ""),
        ("csrfmiddlewaretoken", token.as_str()),
    ];
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains(
            "Origin checking failed - http://evil.example does not match any trusted origins."
        ),
        "{}",
        resp.body
    );
    // `Origin: null` fails too.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", "null")],
    )
    .await;
    assert_eq!(resp.status, 403);

    // Good token, no Origin: passes CSRF.
    let resp = post(&server, "/accounts/login/", &cookie, &good, &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains(REQUIRED));

    // Same-origin Origin.
    let origin = format!("http://{}", server.host());
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    // Same origin but https: not the same origin.
    let https_origin = format!("https://{}", server.host());
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &good,
        &[("origin", &https_origin)],
    )
    .await;
    assert_eq!(resp.status, 403);

    // Token in the X-CSRFToken header (masked), no form field.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &token)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // …and the raw 32-char secret in the header.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &secret)],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // A wrong header token.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRFToken", &other)],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body
            .contains("CSRF token from the &#x27;X-Csrftoken&#x27; HTTP header incorrect."),
        "{}",
        resp.body
    );
    // `X-CSRF-Token` is a different header.
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &probe,
        &[("X-CSRF-Token", &token)],
    )
    .await;
    assert_eq!(resp.status, 403);

    // The unmasked 32-char secret in the form field: a real login succeeds.
    let fields = [
        ("username", "carol"),
        ("password", PASSWORD),
        ("csrfmiddlewaretoken", secret.as_str()),
    ];
    let resp = post(
        &server,
        "/accounts/login/",
        &cookie,
        &fields,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(resp.status, 302, "{}", resp.body);
    assert_eq!(resp.location(), "/");
    assert!(resp.cookie("sessionid").is_some());

    // A masked token against a malformed cookie.
    let resp = post(
        &server,
        "/accounts/login/",
        &[("csrftoken", "bad!")],
        &good,
        &[],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.body.contains("CSRF cookie has incorrect length."),
        "{}",
        resp.body
    );
    server.stop().await;
}
