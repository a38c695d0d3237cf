//! Issue 10 point 4: slow or idle HTTP clients cannot hold the server, its connection slots or
//! its shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Reads until the server closes the connection (EOF or reset); the time it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

async fn index_status(server: &TestServer) -> u16 {
    reqwest::get(server.url("/accounts/login/"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let server = TestServer::start_with(&[("HTTP_HEADER_READ_TIMEOUT", "1")]).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let writer = async {
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    closed_within(&mut slow, Duration::from_secs(3)).await;
    // An idle keep-alive connection goes the same way.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    closed_within(&mut idle, Duration::from_secs(3)).await;
    assert_eq!(index_status(&server).await, 200);
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_per_address_limit_are_closed_at_once() {
    let server = TestServer::start_with(&[("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let second = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third
        .write_all(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok();
    assert!(closed_within(&mut third, Duration::from_secs(2)).await < Duration::from_secs(1));
    // A slot given back serves again; a WebSocket holds its slot while open.
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(index_status(&server).await, 200);
    let user = server.create_user("alice", false).await;
    let _a = server.ws_for(user).await;
    let _b = server.ws_for(user).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = reqwest::get(server.url("/accounts/login/")).await;
    assert!(refused.is_err(), "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_slow_request() {
    let server = TestServer::start_with(&[
        ("HTTP_HEADER_READ_TIMEOUT", "600"),
        ("SHUTDOWN_TIMEOUT", "1"),
    ])
    .await;
    let user = server.create_user("alice", false).await;
    let mut ws = server.ws_for(user).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    assert_eq!(ws.expect_close().await.0, 1001);
    closed_within(&mut slow, Duration::from_secs(2)).await;
}

/// Point 5: 30 wrong passwords used to be followed by a working one. Past
/// `LOGIN_FAILURES_PER_USERNAME` the page answers 429 with the form and a message, and the
/// right password does not get in until the window has passed; other users still log in.
#[tokio::test]
async fn failed_logins_lock_the_username_then_the_address() {
    let server = TestServer::start_with(&[
        ("LOGIN_FAILURES_PER_USERNAME", "3"),
        ("LOGIN_FAILURES_PER_ADDRESS", "6"),
        ("LOGIN_FAILURE_WINDOW", "2"),
    ])
    .await;
    server.create_user("bob", false).await;
    server.create_user("carol", false).await;
    for _ in 0..3 {
        let resp = login(&server, "bob", "wrong", None).await;
        assert_eq!(resp.status, 200);
        assert!(resp.body.contains(INVALID_LOGIN));
    }
    let locked = login(&server, "bob", PASSWORD, None).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(
        locked.body.contains("Too many failed login attempts"),
        "{}",
        locked.body
    );
    assert!(locked.body.contains(r#"name="username" value="bob""#));
    assert!(locked.set_cookie("sessionid").is_none());
    // Carol is not locked; her success clears this address's count.
    login_ok(&server, "carol", PASSWORD).await;
    // Three failures on three other names, then three more: the address is locked.
    for name in ["x", "y", "z", "x", "y", "z"] {
        assert_eq!(login(&server, name, "wrong", None).await.status, 200);
    }
    assert_eq!(login(&server, "carol", PASSWORD, None).await.status, 429);
    // The window passes: bob's right password works, and clears his count.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    login_ok(&server, "bob", PASSWORD).await;
    server.stop().await;
}

/// Point 8: behind a TLS-terminating proxy, `SECURE_PROXY_SSL_HEADER` makes a request secure
/// as in Django, and the CSRF Referer rule for HTTPS applies; `TRUSTED_PROXIES` gives the
/// client address the per-address limits count.
#[tokio::test]
async fn a_proxy_tells_https_and_the_client_address() {
    let server = TestServer::start_with(&[
        ("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("LOGIN_FAILURES_PER_ADDRESS", "2"),
        ("LOGIN_FAILURES_PER_USERNAME", "100"),
    ])
    .await;
    server.create_user("bob", false).await;
    let host = server.host();
    let attempt = |proto: &'static str, referer: Option<String>, client: &'static str| {
        let server = &server;
        async move {
            let (secret, token) = login_page(server, &[]).await;
            let mut headers = vec![("x-forwarded-proto", proto), ("x-forwarded-for", client)];
            if let Some(r) = referer.as_deref() {
                headers.push(("referer", r));
            }
            let fields = [
                ("username", "bob"),
                ("password", "wrong"),
                ("csrfmiddlewaretoken", token.as_str()),
            ];
            post(
                server,
                "/accounts/login/",
                &[("csrftoken", &secret)],
                &fields,
                &headers,
            )
            .await
            .status
        }
    };
    // Plain HTTP through the proxy: no Referer needed.
    assert_eq!(attempt("http", None, "198.51.100.1").await, 200);
    // HTTPS: Django's rule, a Referer is required and must be https on this host.
    assert_eq!(attempt("https", None, "198.51.100.2").await, 403);
    let http_referer = Some(format!("http://{host}/accounts/login/"));
    assert_eq!(attempt("https", http_referer, "198.51.100.2").await, 403);
    let https_referer = Some(format!("https://{host}/accounts/login/"));
    assert_eq!(attempt("https", https_referer, "198.51.100.2").await, 200);
    // The failures of 198.51.100.1 (one) and .2 (one) are counted apart: a second from .1
    // locks .1 only.
    assert_eq!(attempt("http", None, "198.51.100.1").await, 200);
    assert_eq!(attempt("http", None, "198.51.100.1").await, 429);
    assert_eq!(attempt("http", None, "198.51.100.3").await, 200);
    server.stop().await;
}
