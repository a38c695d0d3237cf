//! Pages and routing: the index page, `ALLOWED_HOSTS`, APPEND_SLASH, 404 and static files.

use super::*;

// ---------------------------------------------------------------------------------------------
// 7. The index page
// ---------------------------------------------------------------------------------------------

const EMPTY_ROOMS: &str = r#"<p class="empty">No chat rooms defined. Maybe make some in the <a href="/admin/">admin</a>?</p>"#;

#[tokio::test]
async fn index_lists_rooms_escaped_and_ordered() {
    let server = TestServer::start().await;
    let user = server.create_user("dave", false).await;
    let key = server.session_for(user).await;

    // Empty state.
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(EMPTY_ROOMS), "{}", page.body);
    assert!(
        page.body.contains(r#"<div id="chats"></div>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("room-link"), "{}", page.body);
    assert!(page.body.contains("<title>MultiChat Example</title>"));
    assert!(page.body.contains("<h1>MultiChat Example</h1>"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let vary = page.header_joined("vary");
    assert!(
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("cookie")),
        "{vary:?}"
    );

    // The logout form with a CSRF input whose token unmasks to the cookie set with the page.
    assert!(
        page.body
            .contains(r#"<form method="post" action="/accounts/logout/" class="logout">"#),
        "{}",
        page.body
    );
    let form_start = page.body.find(r#"action="/accounts/logout/""#).unwrap();
    let form_end = form_start + page.body[form_start..].find("</form>").unwrap();
    assert!(
        page.body[form_start..form_end].contains(r#"name="csrfmiddlewaretoken""#),
        "no CSRF input in the logout form"
    );
    let secret = check_csrf_cookie(
        page.set_cookie("csrftoken")
            .expect("csrftoken with the page"),
    );
    assert_eq!(unmask(&page.form_token()).as_deref(), Some(secret.as_str()));
    // With the cookie: same secret.
    let page = get(&server, "/", &[("sessionid", &key), ("csrftoken", &secret)]).await;
    assert_eq!(unmask(&page.form_token()).as_deref(), Some(secret.as_str()));

    // Rooms, created out of order; the staff-only one is listed to a non-staff user.
    let nasty = "Staff <room> & \"quotes\" 'x'";
    let arger = server.create_room("Ärger", false).await;
    let staff = server.create_room(nasty, true).await;
    let lobby = server.create_room("Lobby", false).await;
    let page = get(&server, "/", &[("sessionid", &key)]).await;
    assert_eq!(page.status, 200);
    let items = [
        format!(r#"<li class="room-link" data-room-id="{lobby}">Lobby</li>"#),
        format!(
            r#"<li class="room-link" data-room-id="{staff}">Staff &lt;room&gt; &amp; &quot;quotes&quot; &#x27;x&#x27;</li>"#
        ),
        format!(r#"<li class="room-link" data-room-id="{arger}">Ärger</li>"#),
    ];
    let positions: Vec<usize> = items
        .iter()
        .map(|item| {
            page.body
                .find(item.as_str())
                .unwrap_or_else(|| panic!("{item} not in:\n{}", page.body))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "rooms not ordered by title: {positions:?}\n{}",
        page.body
    );
    assert_eq!(page.body.matches("room-link").count(), 3);
    assert!(!page.body.contains(nasty), "title must be escaped");
    assert!(!page.body.contains(EMPTY_ROOMS));
    let rooms_at = page.body.find(r#"<ul class="rooms">"#).expect("rooms list");
    let chats_at = page
        .body
        .find(r#"<div id="chats"></div>"#)
        .expect("chats div");
    assert!(rooms_at < positions[0] && positions[2] < chats_at);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 14. ALLOWED_HOSTS
// ---------------------------------------------------------------------------------------------

async fn get_with_host(server: &TestServer, path: &str, host: &str) -> Resp {
    let request = raw_client()
        .get(server.url(path))
        .header(header::HOST, host);
    Resp::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn host_header_is_validated() {
    let server = TestServer::start().await;
    for host in [
        "evil.example",
        "evil.example:80",
        "localhost.evil.example",
        "bad host",
    ] {
        let resp = get_with_host(&server, "/accounts/login/", host).await;
        assert_eq!(resp.status, 400, "Host: {host}");
        assert!(resp.body.contains("Bad Request (400)"), "{}", resp.body);
        assert!(resp.set_cookie("csrftoken").is_none());
    }
    // Not only pages: every path.
    assert_eq!(
        get_with_host(&server, "/", "evil.example").await.status,
        400
    );
    for host in ["localhost", "localhost:8000", "127.0.0.1", "LOCALHOST"] {
        let resp = get_with_host(&server, "/accounts/login/", host).await;
        assert_eq!(resp.status, 200, "Host: {host}");
    }

    // The CSRF Origin check compares with the Host header.
    let (secret, token) = login_page(&server, &[]).await;
    let fields = [
        ("username", "x"),
        ("password", ""),
        ("csrfmiddlewaretoken", token.as_str()),
    ];
    let send = |origin: &'static str| {
        raw_client()
            .post(server.url("/accounts/login/"))
            .header(header::HOST, "localhost")
            .header(header::COOKIE, format!("csrftoken={secret}"))
            .header(header::ORIGIN, origin)
            .form(&fields)
            .send()
    };
    assert_eq!(send("http://localhost").await.unwrap().status(), 200);
    assert_eq!(send("http://127.0.0.1").await.unwrap().status(), 403);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 15. Routing: APPEND_SLASH, 404, static files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn routing_slashes_404_and_static() {
    let server = TestServer::start().await;
    let resp = get(&server, "/accounts/login", &[]).await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.location(), "/accounts/login/");
    let resp = get(&server, "/accounts/login?next=/x", &[]).await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.location(), "/accounts/login/?next=/x");

    let resp = get(&server, "/nope/", &[]).await;
    assert_eq!(resp.status, 404);
    assert!(resp.body.contains("Not Found"), "{}", resp.body);
    assert!(resp.body.contains("Sorry, but we can"), "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let resp = get(&server, "/nope", &[]).await;
    assert_eq!(resp.status, 404);

    let css = get(&server, "/static/css/style.css", &[]).await;
    assert_eq!(css.status, 200);
    let ct = css.header("content-type").unwrap();
    assert!(ct.starts_with("text/css"), "{ct}");
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/css/style.css"))
            .unwrap();
    assert_eq!(css.body, on_disk);
    let js = get(&server, "/static/js/chat.js", &[]).await;
    assert_eq!(js.status, 200);
    let ct = js.header("content-type").unwrap();
    assert!(ct.contains("javascript"), "{ct}");
    assert_eq!(get(&server, "/static/nope.css", &[]).await.status, 404);
    assert_eq!(get(&server, "/static/../Cargo.toml", &[]).await.status, 404);
    server.stop().await;
}
