//! What `runserver` writes to stderr when it is not a terminal: `LOG_FORMAT=json` lines an
//! operator's pipeline can parse (request id, user id, socket id, room), an access line per
//! request, one line per WebSocket close with its code and reason, no secrets; and the text
//! format without colour codes.

use std::io::Read;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::{manage, migrated, start_runserver, stop_runserver};

#[path = "../common/login.rs"]
mod login;

const SECRET: &str = "log-test-secret-key-never-printed";
const PASSWORD: &str = "a password nobody may read";

/// Traffic through a running server: a failed and a good login, a WebSocket that joins room
/// `room`, sends, and closes with 1000. Returns the session key (which must not be logged).
async fn traffic(port: u16, room: &str) -> String {
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        login::browser_login(&base, "carol", "wrong password").await,
        Err(200)
    );
    let session = login::browser_login(&base, "carol", PASSWORD)
        .await
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/chat/stream/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("sessionid={session}").parse().unwrap());
    request
        .headers_mut()
        .insert("x-request-id", "handshake-42".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let frames = [
        format!(r#"{{"command": "join", "room": {room}}}"#),
        format!(r#"{{"command": "send", "room": {room}, "message": "hello"}}"#),
    ];
    for frame in frames {
        ws.send(Message::text(frame)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap();
    }
    let bye = CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    };
    ws.close(Some(bye)).await.unwrap();
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
    session
}

/// Starts `runserver` with `vars`, runs [`traffic`], stops it: `(stderr, session key)`.
fn run_with(vars: &[(&str, &str)]) -> (String, String) {
    let dir = migrated();
    let secret = [("SECRET_KEY", SECRET)];
    let run = manage(
        dir.path(),
        &["createuser", "--username", "carol", "--noinput"],
        &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = manage(dir.path(), &["createroom", "Lobby"], &[], "");
    assert_eq!(run.code, 0, "{run:?}");
    let room = run.stdout.trim().to_string();
    let mut all = secret.to_vec();
    all.extend_from_slice(vars);
    let (mut child, port, _) = start_runserver(dir.path(), &all);
    // Drained meanwhile, so a full pipe never blocks the server.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let session = runtime.block_on(traffic(port, &room));
    let (status, _) = stop_runserver(child);
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    for secret in [SECRET, PASSWORD, session.as_str()] {
        assert!(!stderr.contains(secret), "{secret:?} logged:\n{stderr}");
    }
    (stderr, session)
}

#[test]
fn json_logs_carry_ids_access_lines_and_closes() {
    let (stderr, _) = run_with(&[("LOG_FORMAT", "json"), ("RUST_LOG", "info,whisper=debug")]);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "message"] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
    }
    let find = |what: &dyn Fn(&Value) -> bool, name: &str| -> Value {
        lines
            .iter()
            .find(|l| what(l))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} line in:\n{stderr}"))
    };
    let message = |l: &Value| l["message"].as_str().unwrap_or("").to_string();
    let form = find(
        &|l| message(l).starts_with("\"GET /accounts/login/ HTTP/1.1\" 200 "),
        "login form access",
    );
    assert_eq!(form["level"], "INFO");
    assert_eq!(form["status"], 200);
    assert!(form["request_id"].as_str().unwrap().len() == 16, "{form}");
    assert!(form.get("user_id").is_none(), "{form}");
    let good = find(
        &|l| message(l).starts_with("\"POST /accounts/login/ HTTP/1.1\" 302 "),
        "successful login access",
    );
    assert!(good["user_id"].as_u64().is_some(), "{good}");
    let user = good["user_id"].clone();
    find(
        &|l| message(l).starts_with("\"POST /accounts/login/ HTTP/1.1\" 200 "),
        "failed login access",
    );
    let upgrade = find(
        &|l| message(l).starts_with("\"GET /chat/stream/ HTTP/1.1\" 101 "),
        "handshake access",
    );
    assert_eq!(upgrade["request_id"], "handshake-42");
    assert_eq!(upgrade["user_id"], user);
    let joined = find(&|l| l.get("room").is_some(), "room");
    assert_eq!(joined["request_id"], "handshake-42");
    assert!(joined["socket_id"].as_u64().is_some(), "{joined}");
    let closed = find(&|l| message(l) == "WebSocket closed", "WebSocket closed");
    assert_eq!(closed["level"], "INFO");
    assert_eq!(closed["reason"], "client closed");
    assert_eq!(closed["request_id"], "handshake-42");
    assert_eq!(closed["user_id"], user);
    assert_eq!(closed["socket_id"], joined["socket_id"]);
    assert!(closed["duration_s"].as_f64().is_some(), "{closed}");
    let client = find(&|l| l.get("client_code").is_some(), "client close");
    assert_eq!(client["client_code"], 1000);
    assert_eq!(client["client_reason"], "bye");
}

#[test]
fn text_logs_have_no_colour_codes_in_a_pipe() {
    let (stderr, _) = run_with(&[]);
    assert!(!stderr.contains('\x1b'), "escape codes in:\n{stderr}");
    assert!(
        stderr.contains("\"GET /accounts/login/ HTTP/1.1\" 200 "),
        "{stderr}"
    );
    assert!(stderr.contains("WebSocket closed"), "{stderr}");
}
