//! Whisper over HTTP and WebSocket as the interop checks drive it: pages, login/logout,
//! session verdicts, chat commands, plus small shared lookups and hash checks.

use super::*;

// ---------------------------------------------------------------------------------------------
// Whisper over HTTP and WebSocket
// ---------------------------------------------------------------------------------------------

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
    /// `Some(Some(v))`: sessionid set to v; `Some(None)`: deleted; `None`: untouched.
    pub(crate) session: Option<Option<String>>,
    pub(crate) csrf: Option<String>,
}

impl Page {
    pub(crate) async fn from(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let mut session = None;
        let mut csrf = None;
        for header in resp.headers().get_all("set-cookie") {
            let header = header.to_str().unwrap();
            let first = header.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            let value = value.trim_matches('"').to_string();
            let deleted = value.is_empty() || header.contains("Max-Age=0");
            match name {
                "sessionid" => session = Some((!deleted).then_some(value)),
                "csrftoken" => csrf = Some(value),
                _ => {}
            }
        }
        let body = resp.text().await.unwrap();
        Page {
            status,
            location,
            body,
            session,
            csrf,
        }
    }

    /// The session the browser holds after this response, given the one it sent.
    pub(crate) fn next_session(&self, sent: &str) -> Option<String> {
        match &self.session {
            None => Some(sent.to_string()),
            Some(s) => s.clone(),
        }
    }

    pub(crate) fn form_token(&self) -> String {
        let marker = r#"name="csrfmiddlewaretoken" value=""#;
        let start = self.body.find(marker).expect("a csrfmiddlewaretoken input") + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    /// `(id, title)` of the index's room links, in page order.
    pub(crate) fn rooms(&self) -> Vec<(i64, String)> {
        self.body
            .split(r#"<li class="room-link" data-room-id=""#)
            .skip(1)
            .map(|chunk| {
                let (id, rest) = chunk.split_once('"').unwrap();
                let title = rest[1..].split("</li>").next().unwrap();
                (id.parse().unwrap(), title.to_string())
            })
            .collect()
    }
}

pub(crate) async fn w_get(server: &TestServer, path: &str, session: Option<&str>) -> Page {
    let mut req = http().get(server.url(path));
    if let Some(s) = session {
        req = req.header("cookie", format!("sessionid={s}"));
    }
    Page::from(req.send().await.unwrap()).await
}

/// Whisper's login form, as a browser fills it (carrying `session` if given).
pub(crate) async fn w_login_page(
    server: &TestServer,
    username: &str,
    password: &str,
    session: Option<&str>,
) -> Page {
    let form = w_get(server, "/accounts/login/", None).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let secret = form.csrf.clone().expect("csrftoken on the login page");
    let token = form.form_token();
    let mut cookie = format!("csrftoken={secret}");
    if let Some(s) = session {
        cookie.push_str(&format!("; sessionid={s}"));
    }
    let resp = http()
        .post(server.url("/accounts/login/"))
        .header("cookie", cookie)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrfmiddlewaretoken", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    Page::from(resp).await
}

/// A successful Whisper login: the new session cookie's value.
pub(crate) async fn w_login(server: &TestServer, username: &str, password: &str) -> String {
    let page = w_login_page(server, username, password, None).await;
    assert_eq!(
        page.status, 302,
        "Whisper login of {username:?} failed:\n{}",
        page.body
    );
    page.session
        .clone()
        .flatten()
        .expect("a sessionid cookie at login")
}

pub(crate) async fn w_logout(server: &TestServer, session: &str) -> Page {
    let secret = whisper::django::crypto::get_random_string(
        32,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    );
    let resp = http()
        .post(server.url("/accounts/logout/"))
        .header("cookie", format!("csrftoken={secret}; sessionid={session}"))
        .form(&[("csrfmiddlewaretoken", secret.as_str())])
        .send()
        .await
        .unwrap();
    Page::from(resp).await
}

/// Whisper's verdict on a session cookie: the index's status and whether the WebSocket opens.
pub(crate) async fn w_verdict(server: &TestServer, session: &str) -> (u16, Result<(), u16>) {
    let page = w_get(server, "/", Some(session)).await;
    let ws = match server.ws(Some(session), None).await {
        Ok(ws) => {
            ws.close(1000).await;
            Ok(())
        }
        Err(e) => Err(handshake_status(&e).unwrap_or(0)),
    };
    (page.status, ws)
}

pub(crate) async fn assert_whisper_accepts(server: &TestServer, session: &str, what: &str) {
    let (status, ws) = w_verdict(server, session).await;
    assert_eq!(status, 200, "{what}: Whisper's index refused the session");
    assert_eq!(
        ws,
        Ok(()),
        "{what}: Whisper's WebSocket refused the session"
    );
}

pub(crate) async fn assert_whisper_refuses(server: &TestServer, session: &str, what: &str) {
    let page = w_get(server, "/", Some(session)).await;
    assert_eq!(
        page.status, 302,
        "{what}: Whisper's index accepted the session"
    );
    assert_eq!(
        page.location.as_deref(),
        Some("/accounts/login/?next=/"),
        "{what}"
    );
    match server.ws(Some(session), None).await {
        Ok(_) => panic!("{what}: Whisper's WebSocket accepted the session"),
        Err(e) => assert_eq!(handshake_status(&e), Some(403), "{what}: {e}"),
    }
}

/// Sends a command; the first frame that is not a chat event (`msg_type` notices and messages
/// are skipped).
pub(crate) async fn command(ws: &mut Ws, text: &str) -> String {
    ws.send(text).await;
    loop {
        let frame = ws.recv().await;
        if !frame.starts_with(r#"{"msg_type""#) {
            return frame;
        }
    }
}

/// The next frame that starts with `prefix` (others skipped).
pub(crate) async fn recv_starting(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let frame = ws.recv().await;
        if frame.starts_with(prefix) {
            return frame;
        }
    }
}

pub(crate) async fn django_admin_status(env: &Env, session: &str) -> u16 {
    env.django().admin_index(session).await.0
}

pub(crate) async fn room_id(django: &Django, title: &str, staff_only: bool) -> i64 {
    let mut args = vec!["room-create", "--title", title];
    if staff_only {
        args.push("--staff-only");
    }
    django.run(&args).await["id"].as_i64().unwrap()
}

/// `pbkdf2_sha256$<iterations>$<22-char salt>$...`?
pub(crate) fn assert_pbkdf2(encoded: &str, iterations: u32, what: &str) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(parts.len(), 4, "{what}: {encoded}");
    assert_eq!(parts[0], "pbkdf2_sha256", "{what}: {encoded}");
    assert_eq!(parts[1], iterations.to_string(), "{what}: {encoded}");
    assert_eq!(parts[2].len(), 22, "{what}: salt of {encoded}");
}
