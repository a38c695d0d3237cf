//! The handshake (§4.1, §4.2): cookies, sessions, users, SECRET_KEY fallbacks, paths, Origin
//! and Host.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Handshake (§4.1, §4.2)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn handshake_without_cookie_is_403() {
    let (server, _, _) = lobby().await;
    assert_eq!(refused(server.ws(None, None).await), 403);
}

#[tokio::test]
async fn handshake_with_bogus_cookie_is_403() {
    let (server, _, _) = lobby().await;
    assert_eq!(
        refused(
            server
                .ws(Some("bogusbogusbogusbogus00000000abcd"), None)
                .await
        ),
        403
    );
    // Too short to be a key at all (Django treats < 8 characters as no key).
    assert_eq!(refused(server.ws(Some("abc"), None).await), 403);
}

#[tokio::test]
async fn handshake_with_expired_session_is_403() {
    let (server, alice, _) = lobby().await;
    // A row that expired a minute ago.
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    let now = chrono::Utc::now();
    let data = server
        .store
        .load_session(&key, now)
        .await
        .unwrap()
        .expect("row");
    assert!(
        server
            .store
            .update_session(&key, &data, now - chrono::Duration::minutes(1))
            .await
            .unwrap()
    );
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);

    // A row inserted with a past expiry from the start.
    let other = "expiredsessionkey0123456789abcde";
    assert!(
        server
            .store
            .insert_session(other, &data, now - chrono::Duration::seconds(1))
            .await
            .unwrap()
    );
    assert_eq!(refused(server.ws(Some(other), None).await), 403);
}

#[tokio::test]
async fn handshake_for_inactive_user_is_403_and_keeps_the_row() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    exec(
        &server,
        "UPDATE auth_user SET is_active = FALSE WHERE id = $1",
        alice,
    )
    .await;
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
    // ModelBackend refusing an inactive user does not flush the session (internals §5.3).
    let row = server
        .store
        .load_session(&key, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        row.is_some(),
        "the session row of an inactive user must stay"
    );
}

#[tokio::test]
async fn handshake_after_password_change_is_403_and_flushes_the_session() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    assert_live(server.ws(Some(&key), None).await).await;
    let cfg =
        whisper::django::hashers::HasherConfig::new(whisper::django::hashers::DjangoVersion::V5_2);
    let encoded = whisper::django::hashers::make_password("a brand new password", &cfg);
    assert!(server.store.set_password(alice, &encoded).await.unwrap());
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
    let row = server
        .store
        .load_session(&key, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        row, None,
        "a hash mismatch must delete the session row (Channels flushes)"
    );
}

#[tokio::test]
async fn handshake_accepts_secret_key_fallbacks() {
    const OLD: &str = "old-secret-key-for-fallback";
    let server = TestServer::start_with(&[("SECRET_KEY_FALLBACKS", OLD)]).await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    // Signed with the current key, auth hash made with the fallback key.
    let key = server.session_for_keys(alice, SECRET, OLD).await;
    assert_live(server.ws(Some(&key), None).await).await;
    // Signed and hashed with the fallback key (Django 4.1+ signing accepts fallbacks).
    let key = server.session_for_keys(alice, OLD, OLD).await;
    assert_live(server.ws(Some(&key), None).await).await;
    // A key that is neither current nor fallback is refused.
    let key = server
        .session_for_keys(alice, SECRET, "some-unrelated-key")
        .await;
    assert_eq!(refused(server.ws(Some(&key), None).await), 403);
}

#[tokio::test]
async fn handshake_on_wrong_paths_is_refused() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    // Daphne answers an unrouted WebSocket path with 500 (spec §4.1); we answer it the way we
    // answer any unrouted path: 404 (the `not_found` fallback, no APPEND_SLASH redirect for an
    // upgrade request). Either way the upgrade is refused.
    for path in ["/chat/stream", "/other/", "/chat/stream/x", "/chat/"] {
        let status = refused(server.ws_path(path, Some(&key), None).await);
        assert_eq!(status, 404, "{path}");
    }
    // The query string is ignored by routing (spec §4.1).
    assert_live(
        server
            .ws_path("/chat/stream/?anything=1", Some(&key), None)
            .await,
    )
    .await;
}

#[tokio::test]
async fn handshake_origin_rules() {
    let server =
        TestServer::start_with(&[("CSRF_TRUSTED_ORIGINS", "https://chat.example.com")]).await;
    server.create_room("Lobby", false).await;
    let alice = server.create_user("alice", false).await;
    let key = server.session_for(alice).await;
    let port = server.addr.port();

    assert_eq!(
        refused(server.ws(Some(&key), Some("http://evil.example")).await),
        403
    );
    // A look-alike of a trusted origin with another scheme or host is still foreign.
    assert_eq!(
        refused(server.ws(Some(&key), Some("http://chat.example.com")).await),
        403
    );
    assert_eq!(
        refused(
            server
                .ws(Some(&key), Some("https://evil.chat.example.com"))
                .await
        ),
        403
    );
    assert_eq!(refused(server.ws(Some(&key), Some("null")).await), 403);
    // A foreign Origin is refused even without a session (the Origin check comes first).
    assert_eq!(
        refused(server.ws(None, Some("http://evil.example")).await),
        403
    );

    assert_live(
        server
            .ws(Some(&key), Some(&format!("http://localhost:{port}")))
            .await,
    )
    .await;
    assert_live(
        server
            .ws(Some(&key), Some(&format!("http://127.0.0.1:{port}")))
            .await,
    )
    .await;
    assert_live(server.ws(Some(&key), None).await).await;
    assert_live(
        server
            .ws(Some(&key), Some("https://chat.example.com"))
            .await,
    )
    .await;
}

#[tokio::test]
async fn handshake_with_disallowed_host_is_400() {
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    let cookie = format!("sessionid={key}");
    let status = refused(
        connect_with(
            &server,
            "/chat/stream/",
            &[
                ("host", "evil.example".to_string()),
                ("cookie", cookie.clone()),
            ],
        )
        .await,
    );
    assert_eq!(status, 400);
    // The same request with an allowed Host is accepted (so the 400 is about the Host only).
    let port = server.addr.port();
    assert_live(
        connect_with(
            &server,
            "/chat/stream/",
            &[("host", format!("localhost:{port}")), ("cookie", cookie)],
        )
        .await,
    )
    .await;
}

/// What `/chat/stream/` answers a request that is not a version-13 WebSocket upgrade
/// (`web::upgrade`, RFC 6455 §4.2.1–§4.4): 400, or 426 naming the version it speaks.
#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, alice, _) = lobby().await;
    let key = server.session_for(alice).await;
    let head = |extra: &str, connection: &str| {
        format!(
            "GET /chat/stream/ HTTP/1.1\r\nHost: localhost\r\nCookie: sessionid={key}\r\n{extra}Connection: {connection}\r\n\r\n"
        )
    };
    let ask = |request: String| async move {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        // The head is enough (a kept-alive connection would otherwise wait for its timeout).
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the head");
            answer.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    let plain = ask(head("", "close")).await;
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    let upgrade = "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let old = ask(head(
        &format!("{upgrade}Sec-WebSocket-Version: 8\r\n"),
        "keep-alive, Upgrade",
    ))
    .await;
    assert!(old.starts_with("HTTP/1.1 426"), "{old}");
    assert!(
        old.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{old}"
    );
    // No Connection: upgrade token (only "close"): not an upgrade.
    let no_token = ask(head(
        &format!("{upgrade}Sec-WebSocket-Version: 13\r\n"),
        "close",
    ))
    .await;
    assert!(no_token.starts_with("HTTP/1.1 400"), "{no_token}");
}
