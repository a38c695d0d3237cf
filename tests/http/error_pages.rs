//! Error pages (`web::error`): every error status the server answers over HTTP carries a page
//! from `templates/` (static files and the framework's own 405 / 413 included) and keeps its
//! headers; the WebSocket handshake's bare 403 keeps its empty body (spec §4.2); 500 and 503
//! say nothing of the cause. Also `/favicon.ico`.

use super::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What every page from `templates/` has: it extends `base.html`, whose `<head>` loads our
/// stylesheet, and it is HTML.
fn assert_our_page(resp: &Resp, status: u16, title: &str, text: &str) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{title}"
    );
    assert_in_page(&resp.body, title, text);
}

fn assert_in_page(body: &str, title: &str, text: &str) {
    for part in [
        format!("<title>{title}</title>"),
        format!("<h1>{title}</h1>"),
        r#"<link rel="stylesheet" href="/static/css/style.css">"#.to_string(),
        text.to_string(),
    ] {
        assert!(body.contains(&part), "no {part:?} in:\n{body}");
    }
}

async fn send(server: &TestServer, method: reqwest::Method, path: &str) -> Resp {
    let request = raw_client().request(method, server.url(path));
    Resp::from(request.send().await.unwrap()).await
}

/// Writes `request` on a fresh connection and reads the answer to its end (the request says
/// `Connection: close`): `(head, body)`.
async fn raw(server: &TestServer, request: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server did not finish its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response head");
    (head.to_ascii_lowercase(), body.to_string())
}

const NOT_FOUND_TEXT: &str = "Sorry, but we can't find that page.";

#[tokio::test]
async fn static_files_and_unknown_paths_answer_404_with_our_page() {
    let server = TestServer::start().await;
    for path in [
        "/static/missing.css",
        "/static/css/missing.css",
        "/static/css/",
        "/static/",
        "/static/../Cargo.toml",
        "/nope/",
        "/chat/stream",
    ] {
        let resp = get(&server, path, &[]).await;
        assert_our_page(&resp, 404, "Not Found", NOT_FOUND_TEXT);
    }
    // HEAD has the page's headers and no body.
    let resp = send(&server, reqwest::Method::HEAD, "/static/missing.css").await;
    assert_eq!(resp.status, 404);
    assert_eq!(
        resp.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.body, "");
    server.stop().await;
}

#[tokio::test]
async fn wrong_methods_answer_405_with_our_page_and_keep_allow() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let user = server.create_user("mia", false).await;
    let key = server.session_for(user).await;
    let cases = [
        (Method::POST, "/", "GET,HEAD"),
        (Method::DELETE, "/accounts/login/", "GET,HEAD,POST"),
        (Method::POST, "/static/css/style.css", "GET,HEAD"),
        (Method::PUT, "/favicon.ico", "GET,HEAD"),
        (Method::POST, "/healthz", "GET,HEAD"),
    ];
    for (method, path, allow) in cases {
        let resp = send(&server, method.clone(), path).await;
        assert_our_page(
            &resp,
            405,
            "Method Not Allowed (405)",
            &format!("This page does not accept {method} requests."),
        );
        let got = resp.header("allow").unwrap_or_default().replace(' ', "");
        assert_eq!(got, allow, "{method} {path}");
    }
    // Django ≥ 5.0's LogoutView refuses GET (spec §3.5); the session survives it.
    let resp = get(&server, "/accounts/logout/", &[("sessionid", &key)]).await;
    assert_our_page(
        &resp,
        405,
        "Method Not Allowed (405)",
        "This page does not accept GET requests.",
    );
    assert_eq!(resp.header("allow"), Some("POST, OPTIONS"));
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_body_answers_413_with_our_page() {
    let server = TestServer::start().await;
    // One byte past axum's 2 MiB limit, all of it sent (so the server has read everything
    // when it answers, and closing the connection loses nothing).
    let size = 2 * 1024 * 1024 + 1;
    let request = format!(
        "POST /accounts/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n{}",
        "a".repeat(size)
    );
    let (head, body) = raw(&server, &request).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert_in_page(
        &body,
        "Request Too Large (413)",
        "The request is larger than the server accepts.",
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_and_old_websocket_versions_get_our_400_and_426() {
    let server = TestServer::start().await;
    // Django's DisallowedHost, answered before the routes.
    let resp = Resp::from(
        raw_client()
            .get(server.url("/accounts/login/"))
            .header(header::HOST, "evil.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_our_page(
        &resp,
        400,
        "Bad Request (400)",
        "The server could not understand this request.",
    );
    assert!(!resp.body.contains("evil.example"), "{}", resp.body);
    // `/chat/stream/` asked for without an upgrade.
    let resp = get(&server, "/chat/stream/", &[]).await;
    assert_our_page(
        &resp,
        400,
        "Bad Request (400)",
        "The server could not understand this request.",
    );
    // Another WebSocket version: 426, still naming the one spoken.
    let (head, body) = raw(
        &server,
        "GET /chat/stream/ HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
    assert_in_page(
        &body,
        "Upgrade Required (426)",
        "This address speaks the WebSocket protocol, version 13, only.",
    );
    server.stop().await;
}

fn handshake_request(server: &TestServer, cookie: Option<&str>, origin: Option<&str>) -> String {
    let mut request = format!(
        "GET /chat/stream/ HTTP/1.1\r\nHost: localhost:{}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        server.addr.port()
    );
    if let Some(key) = cookie {
        request.push_str(&format!("Cookie: sessionid={key}\r\n"));
    }
    if let Some(origin) = origin {
        request.push_str(&format!("Origin: {origin}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Spec §4.2: an anonymous handshake is refused with 403 and an empty body, and a foreign
/// `Origin` the same way (Channels' origin validator's refusal); a throttled one gets our 429.
#[tokio::test]
async fn handshake_403_keeps_its_empty_body_and_429_has_our_page() {
    let server = TestServer::start_with(&[("WS_HANDSHAKES_PER_MINUTE", "1")]).await;
    let user = server.create_user("hal", false).await;
    let key = server.session_for(user).await;
    let empty_403 = |head: &str, body: &str| {
        assert!(head.starts_with("http/1.1 403"), "{head}");
        assert!(head.contains("content-length: 0"), "{head}");
        assert!(!head.contains("\ncontent-type:"), "{head}");
        assert_eq!(body, "");
    };
    let (head, body) = raw(&server, &handshake_request(&server, None, None)).await;
    empty_403(&head, &body);
    let foreign = handshake_request(&server, Some(&key), Some("http://evil.example"));
    let (head, body) = raw(&server, &foreign).await;
    empty_403(&head, &body);
    let (head, body) = raw(&server, &handshake_request(&server, Some(&key), None)).await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    let retry: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{head}");
    assert_in_page(
        &body,
        "Too Many Requests (429)",
        &format!("Please try again in {retry} second"),
    );
    server.stop().await;
}

#[tokio::test]
async fn csrf_failures_get_the_csrf_page_with_its_reason() {
    let server = TestServer::start().await;
    let resp = post(
        &server,
        "/accounts/login/",
        &[],
        &[("username", "x"), ("password", "y")],
        &[],
    )
    .await;
    assert_our_page(
        &resp,
        403,
        "Forbidden (403)",
        "<p>CSRF verification failed. Request aborted.</p>",
    );
    assert!(
        resp.body
            .contains("Reason given for failure: CSRF cookie not set."),
        "{}",
        resp.body
    );
    server.stop().await;
}

/// A database error is a 500 and an unreachable session cache a 503: our pages, which name
/// neither the table nor the service.
#[tokio::test]
async fn server_errors_get_pages_that_leak_nothing() {
    let server = TestServer::start().await;
    let user = server.create_user("ivy", false).await;
    let key = server.session_for(user).await;
    sqlx::query("DROP TABLE chat_room")
        .execute(pool(&server))
        .await
        .unwrap();
    let resp = get(&server, "/", &[("sessionid", &key)]).await;
    assert_our_page(
        &resp,
        500,
        "Server Error",
        "The server has encountered an internal error. Please try again later.",
    );
    for leak in ["chat_room", "table", "sqlite", "SQL"] {
        assert!(!resp.body.contains(leak), "{leak}:\n{}", resp.body);
    }
    server.stop().await;

    // Nothing listens on port 1.
    let caches = r#"{"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}"#;
    let server = TestServer::start_with(&[
        ("SESSION_ENGINE", "django.contrib.sessions.backends.cache"),
        ("CACHES", caches),
    ])
    .await;
    let resp = get(
        &server,
        "/",
        &[("sessionid", "abcdefgh12345678abcdefgh12345678")],
    )
    .await;
    assert_our_page(
        &resp,
        503,
        "Service Unavailable (503)",
        "The server cannot handle requests right now. Please try again shortly.",
    );
    assert_eq!(resp.header("retry-after"), Some("5"));
    for leak in ["cache", "Cache", "redis", "Redis", "127.0.0.1"] {
        assert!(!resp.body.contains(leak), "{leak}:\n{}", resp.body);
    }
    server.stop().await;
}

/// A status without a page of its own gets `error.html`, named by its code and reason.
#[tokio::test]
async fn other_statuses_get_the_generic_page() {
    let server = TestServer::start().await;
    let resp = Resp::from(
        raw_client()
            .get(server.url("/static/css/style.css"))
            .header(header::RANGE, "bytes=999999999-")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_our_page(
        &resp,
        416,
        "Range Not Satisfiable (416)",
        "The server could not complete this request.",
    );
    assert!(resp.header("content-range").is_some());
    server.stop().await;
}

/// The ICO directory: `(width, height, PNG bytes)` of each entry.
fn ico_entries(ico: &[u8]) -> Vec<(u32, u32, &[u8])> {
    let u16_at = |at: usize| u16::from_le_bytes([ico[at], ico[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(ico[at..at + 4].try_into().unwrap());
    assert_eq!((u16_at(0), u16_at(2)), (0, 1), "not an ICO header");
    (0..usize::from(u16_at(4)))
        .map(|i| {
            let entry = 6 + 16 * i;
            let size = |b: u8| if b == 0 { 256 } else { u32::from(b) };
            let (len, offset) = (u32_at(entry + 8) as usize, u32_at(entry + 12) as usize);
            (
                size(ico[entry]),
                size(ico[entry + 1]),
                &ico[offset..offset + len],
            )
        })
        .collect()
}

#[tokio::test]
async fn favicon_is_served_as_a_cached_icon() {
    let server = TestServer::start().await;
    let resp = raw_client()
        .get(server.url("/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "image/x-icon");
    let cache = headers["cache-control"].to_str().unwrap();
    let max_age: u64 = cache
        .split(", ")
        .find_map(|d| d.strip_prefix("max-age="))
        .expect("max-age")
        .parse()
        .unwrap();
    assert!(max_age >= 86_400, "{cache}");
    assert!(cache.contains("public"), "{cache}");
    let ico = resp.bytes().await.unwrap();
    let on_disk =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/favicon.ico")).unwrap();
    assert_eq!(ico.as_ref(), on_disk.as_slice());
    let entries = ico_entries(&ico);
    let sizes: Vec<(u32, u32)> = entries.iter().map(|(w, h, _)| (*w, *h)).collect();
    assert_eq!(sizes, [(16, 16), (32, 32), (48, 48)]);
    for (w, _, png) in entries {
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{w} px entry is not a PNG"
        );
        // The IHDR's width.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), w);
    }
    // Its source is a static file too.
    let svg = get(&server, "/static/favicon.svg", &[]).await;
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.body.starts_with("<svg "), "{}", svg.body);
    server.stop().await;
}
