//! Test harness: a real Whisper server on port 0 over a temporary SQLite file, real HTTP
//! clients (cookies, CSRF) and real WebSocket clients.
#![allow(dead_code)]

pub mod channel_layer;
pub mod login;
pub mod pg;
pub mod python;
pub mod redis_server;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use whisper::config::Settings;
use whisper::django::hashers::{self, HasherConfig};
use whisper::django::sessions::{self, SESSION_SALT, SessionData};
use whisper::store::{NewUser, Store};

/// Settings for tests that measure throughput or ordering with bursts far above a person's
/// typing: the per-socket rate limits (`WS_MESSAGES_PER_SECOND`, `WS_BYTES_PER_SECOND`) lifted.
pub const UNTHROTTLED: [(&str, &str); 3] = [
    ("WS_MESSAGES_PER_SECOND", "1000000"),
    ("WS_MESSAGES_BURST", "1000000"),
    ("WS_BYTES_PER_SECOND", "1000000000000"),
];

pub const SECRET: &str = "test-secret-key-for-whisper";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub addr: SocketAddr,
    /// The metrics listener, when the server was started with `METRICS_ADDR` (port 0 works).
    pub metrics_addr: Option<SocketAddr>,
    pub store: Store,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// A server whose settings are the defaults plus `vars` (Django setting names).
    pub async fn start_with(vars: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:///{}", dir.path().join("db.sqlite3").display());
        let mut map: std::collections::HashMap<String, String> = [
            ("BASE_DIR", env!("CARGO_MANIFEST_DIR").to_string()),
            ("DATABASE_URL", db),
            ("SECRET_KEY", SECRET.to_string()),
            ("ROOM_CACHE_TTL", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in vars {
            map.insert(k.to_string(), v.to_string());
        }
        let settings = Settings::from_lookup(|k| map.get(k).cloned()).expect("settings");
        let store = Store::connect(&settings.database_url, 5, Duration::from_secs(5), true)
            .await
            .expect("open sqlite")
            .with_user_model(&settings.user_model);
        store.migrate().await.expect("migrate");
        let listener = whisper::web::listener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = match settings.metrics_addr {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.unwrap()),
            None => None,
        };
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = whisper::startup::Listeners {
            http: listener,
            metrics,
        };
        let task = tokio::spawn(whisper::startup::serve(settings, listeners, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            store,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Creates a user the way `createsuperuser`/`createuser` would (5.2 parameters).
    pub async fn create_user(&self, username: &str, is_staff: bool) -> i64 {
        let cfg = HasherConfig::new(hashers::DjangoVersion::V5_2);
        let password = hashers::make_password(PASSWORD, &cfg);
        self.insert_user(username, &password, is_staff).await
    }

    pub async fn insert_user(&self, username: &str, encoded: &str, is_staff: bool) -> i64 {
        self.store
            .create_user(&NewUser {
                username: username.to_string(),
                email: format!("{username}@example.com"),
                password: encoded.to_string(),
                is_staff,
                is_superuser: is_staff,
                ..NewUser::default()
            })
            .await
            .expect("create user")
    }

    pub async fn create_room(&self, title: &str, staff_only: bool) -> i64 {
        self.store.create_room(title, staff_only).await.unwrap()
    }

    /// Like Django's `Client.force_login`: a db session row for the user, signed with `key`
    /// and carrying the auth hash made with `hash_key`. Returns the cookie value.
    pub async fn session_for_keys(&self, user_id: i64, key: &str, hash_key: &str) -> String {
        let user = self.store.user_by_id(user_id).await.unwrap().unwrap();
        let mut data = SessionData::default();
        data.set_login(
            user_id,
            &sessions::session_auth_hash(&user.password, hash_key),
        );
        let now = chrono::Utc::now();
        let text = sessions::encode(&data, key, SESSION_SALT, now.timestamp() as u64);
        let session_key = sessions::new_session_key();
        assert!(
            self.store
                .insert_session(&session_key, &text, now + chrono::Duration::days(14))
                .await
                .unwrap()
        );
        session_key
    }

    pub async fn session_for(&self, user_id: i64) -> String {
        self.session_for_keys(user_id, SECRET, SECRET).await
    }

    /// A logged-in WebSocket for a user (session made directly, no password hashing).
    pub async fn ws_for(&self, user_id: i64) -> Ws {
        let key = self.session_for(user_id).await;
        self.ws(Some(&key), None).await.expect("handshake")
    }

    /// Opens `/chat/stream/` with an optional session cookie and Origin.
    pub async fn ws(
        &self,
        session: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        self.ws_path("/chat/stream/", session, origin).await
    }

    pub async fn ws_path(
        &self,
        path: &str,
        session: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let mut request = format!("ws://{}{}", self.addr, path)
            .into_client_request()
            .unwrap();
        if let Some(key) = session {
            request
                .headers_mut()
                .insert("cookie", format!("sessionid={key}").parse().unwrap());
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws { stream })
    }

    /// An HTTP client with a cookie store and no redirects followed.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `/healthz` of a server, as JSON.
pub async fn healthz(server: &TestServer) -> serde_json::Value {
    reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The HTTP status of a refused handshake (403, 404, 400 …).
pub fn handshake_status(err: &tungstenite::Error) -> Option<u16> {
    match err {
        tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// A real WebSocket client.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl Ws {
    pub async fn send(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// Sends every frame, flushed once: a burst as fast as the socket takes it.
    pub async fn send_all(&mut self, texts: &[String]) {
        for text in texts {
            self.stream
                .feed(Message::text(text.as_str()))
                .await
                .unwrap();
        }
        self.stream.flush().await.unwrap();
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.stream
            .send(Message::binary(data.to_vec()))
            .await
            .unwrap();
    }

    /// The next text frame (pings/pongs skipped); panics on timeout or close.
    pub async fn recv(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("stream ended")
                .expect("read error");
            match msg {
                Message::Text(t) => return t.as_str().to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a command and returns the next frame.
    pub async fn call(&mut self, text: &str) -> String {
        self.send(text).await;
        self.recv().await
    }

    /// Asserts nothing arrives within `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        match tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }

    /// Reads until the server's close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return (u16::from(code), reason.as_str().to_string());
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("read error before close: {e}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    pub async fn close(mut self, code: u16) {
        let _ = self
            .stream
            .close(Some(CloseFrame {
                code: code.into(),
                reason: "bye".into(),
            }))
            .await;
        // Drain until the server answers the close.
        let _ =
            tokio::time::timeout(WAIT, async { while self.stream.next().await.is_some() {} }).await;
    }
}

/// `join` frame as the official client sends it.
pub fn join(room: &str) -> String {
    format!(r#"{{"command": "join", "room": {room}}}"#)
}

pub fn leave(room: &str) -> String {
    format!(r#"{{"command": "leave", "room": {room}}}"#)
}

pub fn send(room: &str, message: &str) -> String {
    format!(r#"{{"command": "send", "room": {room}, "message": {message}}}"#)
}

/// A logged-in WebSocket to any server sharing the database (e.g. the Python app in compat/).
pub async fn ws_to(addr: SocketAddr, session: &str) -> Ws {
    let mut request = format!("ws://{addr}/chat/stream/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("sessionid={session}").parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("handshake with {addr} failed: {e}"));
    Ws { stream }
}
