//! Issue 3, check 5: byte-compatibility with the real Python stack.
//!
//! One SQLite database, migrated by Whisper, is shared by Whisper and by daphne serving
//! `compat/` (Django 5.2, channels 4, channels_redis over the local Redis, and the consumer in
//! `compat/chat/consumers.py`, which reproduces the original multichat `ChatConsumer`). Both get
//! the same scripted WebSocket session in lockstep: every frame is sent to both servers and every
//! frame each server emits is compared byte for byte, per socket (the order of events across
//! different sockets is not guaranteed, a single socket's sequence is).
//!
//! Covered: the worked session of spec `multichat-protocol.md` §4.13 (also checked against the
//! spec's literal bytes) and every row of §4.14 plus the §4.6 rules. Where the original crashes
//! (close 1011) or ignores a frame, Whisper answers the reply documented in README "Documented
//! differences": each such row is one assertion of both sides (Python: 1011/silence, Whisper:
//! its reply).
//!
//! Needs `compat/.venv` (made by `compat/bootstrap.sh 5.2`, which `./manage test` runs) and Redis
//! at 127.0.0.1:6379 (`INTEROP_REDIS_URL` overrides; each test picks its own database number so
//! runs do not share channel-layer groups). Runs on SQLite and on a throw-away PostgreSQL
//! database (127.0.0.1:5432, user postgres, trust auth).
//!
//! Mismatches are collected, not fatal one by one: every scenario runs, then the test fails with
//! the full list (input, Python bytes, Whisper bytes).
mod common;

use std::fmt;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SECRET, TestServer, Ws, handshake_status};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const COMPAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compat");
/// How long to wait for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a socket must stay quiet where nothing is expected.
const QUIET_MS: u64 = 300;
/// How long to wait for the original's crash close: the dying application first waits for its
/// pending channel-layer read (a Redis blocking pop) to give up, which takes up to ~5 s.
const CRASH_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// The Python side: daphne on a free port, killed on drop (also when a test panics).
// ---------------------------------------------------------------------------------------------

struct Daphne {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Daphne {
    fn start(database_url: &str, redis_url: &str, log: PathBuf) -> Daphne {
        let compat = Path::new(COMPAT);
        let bin = compat.join(".venv/bin/daphne");
        assert!(
            bin.exists(),
            "{} is missing: the interop suite needs the Django 5.2 virtualenv. Create it with \
             `compat/bootstrap.sh 5.2` (`./manage test` does this).",
            bin.display()
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&bin)
            .args(["-b", "127.0.0.1", "-p", &port.to_string()])
            .arg("multichat.asgi:application")
            .current_dir(compat)
            .env("DJANGO_SETTINGS_MODULE", "multichat.settings")
            .env("DATABASE_URL", database_url)
            .env("SECRET_KEY", SECRET)
            .env("ALLOWED_HOSTS", "127.0.0.1,localhost")
            .env("REDIS_URL", redis_url)
            .env("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", "True")
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("SECRET_KEY_FALLBACKS")
            .env_remove("SESSION_ENGINE")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut daphne = Daphne { child, log, addr };
        daphne.wait_ready(Duration::from_secs(30));
        daphne
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daphne exited early ({status}):\n{}", self.log_text());
            }
            if StdTcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if start.elapsed() > limit {
                panic!(
                    "daphne did not accept connections on {} within {limit:?}:\n{}",
                    self.addr,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daphne {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis URL with a database number of its own for this run and test (channels_redis has no
/// prefix setting in `compat/multichat/settings.py`, so the database number keeps runs apart).
/// `INTEROP_REDIS_URL` (a server URL without a database) overrides the server.
fn redis_url(slot: u32) -> String {
    if let Ok(url) = std::env::var("INTEROP_REDIS_URL") {
        return format!("{}/{}", url.trim_end_matches('/'), 1 + slot);
    }
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::process::id() ^ nanos
    });
    let db = 1 + (seed.wrapping_add(slot)) % 15;
    format!("redis://127.0.0.1:6379/{db}")
}

// ---------------------------------------------------------------------------------------------
// What a socket produced next.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Got {
    Text(String),
    Close(u16),
    Silent,
    Ended,
    Error(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Text(t) => write!(f, "{t}"),
            Got::Close(c) => write!(f, "<close {c}>"),
            Got::Silent => write!(f, "<nothing>"),
            Got::Ended => write!(f, "<stream ended without close>"),
            Got::Error(e) => write!(f, "<error {e}>"),
        }
    }
}

fn text(s: &str) -> Got {
    Got::Text(s.to_string())
}

async fn next(ws: &mut Ws, wait: Duration) -> Got {
    loop {
        match tokio::time::timeout(wait, ws.stream.next()).await {
            Err(_) => return Got::Silent,
            Ok(None) => return Got::Ended,
            Ok(Some(Err(e))) => return Got::Error(e.to_string()),
            Ok(Some(Ok(msg))) => match msg {
                Message::Text(t) => return Got::Text(t.as_str().to_string()),
                Message::Close(Some(CloseFrame { code, .. })) => return Got::Close(code.into()),
                Message::Close(None) => return Got::Close(1005),
                Message::Binary(b) => return Got::Error(format!("binary frame {b:?}")),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            },
        }
    }
}

async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(Ws { stream }),
        Err(e) => Err(handshake_status(&e).unwrap_or_else(|| panic!("handshake failed: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping: comparisons made and mismatches found.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Check {
    scenario: String,
    /// Steps where both servers had to emit the same bytes.
    same: usize,
    /// Steps where Python's output was also checked against the spec's literal bytes.
    literal: usize,
    /// Rows of the documented differences (Python crash/ignore vs Whisper's reply).
    documented: usize,
    per_scenario: Vec<(String, usize, usize)>,
    failures: Vec<String>,
}

impl Check {
    fn begin(&mut self, name: &str) {
        self.scenario = name.to_string();
        self.per_scenario.push((name.to_string(), 0, 0));
    }

    fn fail(&mut self, msg: String) {
        eprintln!("MISMATCH [{}] {msg}", self.scenario);
        self.failures.push(format!("[{}] {msg}", self.scenario));
    }

    fn same(&mut self, step: &str, py: &Got, rs: &Got) {
        self.same += 1;
        self.per_scenario.last_mut().unwrap().1 += 1;
        if py != rs {
            self.fail(format!("{step}\n    python:  {py}\n    whisper: {rs}"));
        }
    }

    fn literal(&mut self, step: &str, py: &Got, want: &Got) {
        self.literal += 1;
        if py != want {
            self.fail(format!(
                "{step}: Python differs from the spec\n    python: {py}\n    spec:   {want}"
            ));
        }
    }

    fn documented(&mut self, step: &str, py: &Got, py_want: &Got, rs: &Got, rs_want: &Got) {
        self.documented += 1;
        self.per_scenario.last_mut().unwrap().2 += 1;
        if py != py_want || rs != rs_want {
            self.fail(format!(
                "{step} (documented difference)\n    python:  {py} (expected {py_want})\n    \
                 whisper: {rs} (expected {rs_want})"
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A socket pair: the same user on both servers, driven in lockstep.
// ---------------------------------------------------------------------------------------------

struct Duo {
    name: String,
    py: Ws,
    rs: Ws,
}

impl Duo {
    async fn send(&mut self, frame: &str) {
        let (a, b) = tokio::join!(
            self.py.stream.send(Message::text(frame)),
            self.rs.stream.send(Message::text(frame))
        );
        a.expect("send to python");
        b.expect("send to whisper");
    }

    async fn next_both(&mut self, wait: Duration) -> (Got, Got) {
        tokio::join!(next(&mut self.py, wait), next(&mut self.rs, wait))
    }

    /// The next frame of both servers must be the same (and `want`, if given).
    async fn recv(&mut self, ck: &mut Check, want: Option<&str>) -> Got {
        let (py, rs) = self.next_both(WAIT).await;
        let step = format!("{} <- next frame", self.name);
        if let Some(want) = want {
            ck.literal(&step, &py, &text(want));
        }
        ck.same(&step, &py, &rs);
        py
    }

    async fn call(&mut self, ck: &mut Check, frame: &str, want: Option<&str>) -> Got {
        self.send(frame).await;
        let (py, rs) = self.next_both(WAIT).await;
        let step = format!("{} -> {frame}", self.name);
        if let Some(want) = want {
            ck.literal(&step, &py, &text(want));
        }
        ck.same(&step, &py, &rs);
        py
    }

    /// `n` frames whose order between themselves is not defined (Python set order).
    async fn recv_unordered(&mut self, ck: &mut Check, n: usize) {
        let mut py = Vec::new();
        let mut rs = Vec::new();
        for _ in 0..n {
            let (a, b) = self.next_both(WAIT).await;
            py.push(a);
            rs.push(b);
        }
        py.sort();
        rs.sort();
        let step = format!("{} <- {n} frames in any order", self.name);
        ck.same(
            &step,
            &Got::Text(join_lines(&py)),
            &Got::Text(join_lines(&rs)),
        );
    }

    async fn silence(&mut self, ck: &mut Check) {
        let (py, rs) = self.next_both(Duration::from_millis(QUIET_MS)).await;
        let step = format!("{} <- nothing more", self.name);
        ck.literal(&step, &py, &Got::Silent);
        ck.same(&step, &py, &rs);
    }

    /// A row where the original crashes: Python must close 1011, Whisper must answer `rs_want`.
    async fn crash(&mut self, ck: &mut Check, frame: Option<&str>, rs_want: Got) {
        match frame {
            Some(f) => self.send(f).await,
            None => {
                let bin = br#"{"command": "join", "room": "1"}"#.to_vec();
                self.py
                    .stream
                    .send(Message::binary(bin.clone()))
                    .await
                    .unwrap();
                self.rs.stream.send(Message::binary(bin)).await.unwrap();
            }
        }
        let (py, rs) = tokio::join!(next(&mut self.py, CRASH_WAIT), next(&mut self.rs, WAIT));
        let step = format!("{} -> {}", self.name, frame.unwrap_or("<binary frame>"));
        ck.documented(&step, &py, &Got::Close(1011), &rs, &rs_want);
    }

    /// A row the original ignores: Python stays silent, Whisper answers `UNKNOWN_COMMAND`.
    async fn ignored(&mut self, ck: &mut Check, frame: &str) {
        self.send(frame).await;
        let (py, rs) = self.next_both(Duration::from_millis(QUIET_MS)).await;
        let step = format!("{} -> {frame}", self.name);
        ck.documented(
            &step,
            &py,
            &Got::Silent,
            &rs,
            &text(&err("UNKNOWN_COMMAND")),
        );
    }

    async fn close(mut self, code: u16) {
        for ws in [&mut self.py, &mut self.rs] {
            let _ = ws
                .stream
                .close(Some(CloseFrame {
                    code: code.into(),
                    reason: "bye".into(),
                }))
                .await;
        }
        tokio::join!(drain(&mut self.py), drain(&mut self.rs));
    }
}

/// Reads until the server answers the close (or gives up after [`WAIT`]).
async fn drain(ws: &mut Ws) {
    let _ = tokio::time::timeout(WAIT, async { while ws.stream.next().await.is_some() {} }).await;
}

fn join_lines(v: &[Got]) -> String {
    v.iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn err(code: &str) -> String {
    format!(r#"{{"error": "{code}"}}"#)
}

fn join(room: &str) -> String {
    format!(r#"{{"command": "join", "room": {room}}}"#)
}

fn leave(room: &str) -> String {
    format!(r#"{{"command": "leave", "room": {room}}}"#)
}

fn send(room: &str, message: &str) -> String {
    format!(r#"{{"command": "send", "room": {room}, "message": {message}}}"#)
}

fn ack_join(id: i64, title: &str) -> String {
    format!(r#"{{"join": "{id}", "title": "{title}"}}"#)
}

fn ack_leave(id: i64) -> String {
    format!(r#"{{"leave": "{id}"}}"#)
}

fn enter(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 4, "room": {room}, "username": "{user}"}}"#)
}

fn left(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 5, "room": {room}, "username": "{user}"}}"#)
}

fn chat(room: &str, user: &str, message: &str) -> String {
    format!(r#"{{"msg_type": 0, "room": {room}, "username": "{user}", "message": {message}}}"#)
}

// ---------------------------------------------------------------------------------------------
// The two servers over one database.
// ---------------------------------------------------------------------------------------------

struct Env {
    whisper: TestServer,
    daphne: Daphne,
}

impl Env {
    async fn user(&self, name: &str, staff: bool) -> i64 {
        self.whisper.create_user(name, staff).await
    }

    /// A logged-in socket pair: one Django session row, used on both servers.
    async fn duo(&self, name: &str, user_id: i64) -> Duo {
        let key = self.whisper.session_for(user_id).await;
        let cookie = format!("sessionid={key}");
        let headers = [("cookie", cookie.as_str())];
        let py = open(self.daphne.addr, "/chat/stream/", &headers)
            .await
            .unwrap_or_else(|s| panic!("python refused {name}'s handshake: HTTP {s}"));
        let rs = open(self.whisper.addr, "/chat/stream/", &headers)
            .await
            .unwrap_or_else(|s| panic!("whisper refused {name}'s handshake: HTTP {s}"));
        Duo {
            name: name.to_string(),
            py,
            rs,
        }
    }

    /// The HTTP status of a handshake on both servers (101 when accepted).
    async fn handshake(&self, path: &str, headers: &[(&str, &str)]) -> (Got, Got) {
        let status = |r: Result<Ws, u16>| match r {
            Ok(_) => Got::Close(101),
            Err(s) => Got::Close(s),
        };
        (
            status(open(self.daphne.addr, path, headers).await),
            status(open(self.whisper.addr, path, headers).await),
        )
    }
}

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A throw-away PostgreSQL database, dropped (with its connections) when this guard drops.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sqlx::{AssertSqlSafe, Connection, Executor};
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 with user postgres (trust auth)");
        let name = format!(
            "whisper_interop_{}",
            whisper::django::crypto::get_random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        admin
            .execute(AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
            )))
            .await
            .expect("create test database");
        admin.close().await.ok();
        PgDatabase { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        use sqlx::{AssertSqlSafe, Connection, Executor};
        let name = self.name.clone();
        // Drop cannot await: a runtime of its own on its own thread (also while unwinding).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_bytes_as_the_python_stack_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite:///{}", dir.path().join("db.sqlite3").display());
    same_bytes(&database_url, 0, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_bytes_as_the_python_stack_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgDatabase::create().await;
    same_bytes(&pg.url(), 1, dir.path()).await;
    drop(pg);
}

/// The whole comparison over one database (`slot` keeps the two tests of one run on different
/// Redis databases).
async fn same_bytes(database_url: &str, slot: u32, dir: &Path) {
    let started = Instant::now();
    // Whisper migrates the shared database (harness `start_with` connects to and migrates it).
    let whisper = TestServer::start_with(&[("DATABASE_URL", database_url)]).await;
    // Rooms 1..=11 are the scenarios' rooms; 12 and 13 are §4.13's.
    for i in 1..=11 {
        let id = whisper.create_room(&format!("Room {i}"), false).await;
        assert_eq!(id, i);
    }
    assert_eq!(whisper.create_room("Book club", false).await, 12);
    assert_eq!(whisper.create_room("Ops", true).await, 13);
    let redis = redis_url(slot);
    let daphne = Daphne::start(database_url, &redis, dir.join("daphne.log"));
    let env = Env { whisper, daphne };
    eprintln!(
        "python: daphne on {} (redis {redis}); whisper on {}; db {database_url}",
        env.daphne.addr, env.whisper.addr,
    );
    let mut ck = Check::default();

    // INTEROP_ONLY=<substring> runs only the matching scenarios (debugging aid).
    let only = std::env::var("INTEROP_ONLY").unwrap_or_default();
    let run = |name: &str| name.contains(only.as_str());
    if run("worked") {
        worked_session(&env, &mut ck).await;
    }
    if run("handshakes") {
        handshakes(&env, &mut ck).await;
    }
    if run("spellings") {
        room_spellings(&env, &mut ck).await;
    }
    if run("keying") {
        raw_value_keying(&env, &mut ck).await;
    }
    if run("rejoin") {
        leave_never_joined_and_rejoin(&env, &mut ck).await;
    }
    if run("messages") {
        message_values(&env, &mut ck).await;
    }
    if run("duplicates") {
        duplicate_keys(&env, &mut ck).await;
    }
    if run("titles") {
        titles_and_staff(&env, &mut ck).await;
    }
    if run("deleted") {
        deleted_room(&env, &mut ck).await;
    }
    if run("disconnect") {
        disconnect_announces_every_room(&env, &mut ck).await;
    }
    if run("pipelining") {
        pipelining_and_order(&env, &mut ck).await;
    }
    if run("ignored") {
        ignored_commands(&env, &mut ck).await;
    }
    if run("crashes") {
        crashes(&env, &mut ck).await;
    }

    eprintln!("\nscenario                                  same  documented");
    for (name, same, doc) in &ck.per_scenario {
        eprintln!("{name:<40} {same:>5} {doc:>11}");
    }
    eprintln!(
        "total: {} byte comparisons (Python == Whisper), {} checked against spec literals, {} \
         documented-difference rows; {} mismatches; {:.1?}",
        ck.same,
        ck.literal,
        ck.documented,
        ck.failures.len(),
        started.elapsed()
    );
    if !ck.failures.is_empty() {
        eprintln!("--- daphne log ---\n{}", env.daphne.log_text());
    }
    assert!(
        ck.failures.is_empty(),
        "{} mismatch(es) between the Python stack and Whisper:\n{}",
        ck.failures.len(),
        ck.failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------------------------

/// §4.13, step by step, against the spec's literal bytes and between the stacks.
async fn worked_session(env: &Env, ck: &mut Check) {
    ck.begin("4.13 worked session");
    let dana = env.user("dana", true).await;
    let sam = env.user("sam", false).await;
    let mut d = env.duo("dana", dana).await;
    let mut s = env.duo("sam", sam).await;
    let c = ck;
    d.call(
        c,
        &join(r#""12""#),
        Some(r#"{"join": "12", "title": "Book club"}"#),
    )
    .await;
    s.call(
        c,
        &join(r#""12""#),
        Some(r#"{"join": "12", "title": "Book club"}"#),
    )
    .await;
    d.recv(
        c,
        Some(r#"{"msg_type": 4, "room": "12", "username": "sam"}"#),
    )
    .await;
    let hello = r#"{"msg_type": 0, "room": "12", "username": "sam", "message": "hello \u00e9"}"#;
    s.call(c, &send(r#""12""#, r#""hello \u00e9""#), Some(hello))
        .await;
    d.recv(c, Some(hello)).await;
    s.call(c, &join(r#""13""#), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    s.call(
        c,
        &send(r#""13""#, r#""let me in""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    s.call(c, &join(r#""404""#), Some(&err("ROOM_INVALID")))
        .await;
    d.call(c, &leave(r#""12""#), Some(r#"{"leave": "12"}"#))
        .await;
    d.recv(
        c,
        Some(r#"{"msg_type": 5, "room": "12", "username": "dana"}"#),
    )
    .await;
    s.recv(
        c,
        Some(r#"{"msg_type": 5, "room": "12", "username": "dana"}"#),
    )
    .await;
    s.silence(c).await;
    s.close(1000).await;
    // Nobody left in 12 to notify.
    d.silence(c).await;
    d.close(1000).await;
}

/// A handshake case: label, path, request headers.
type Handshake<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// §4.14 rows 1–2 and §4.1: refused and accepted handshakes.
async fn handshakes(env: &Env, ck: &mut Check) {
    ck.begin("4.14 handshakes (4.1, 4.2)");
    let uid = env.user("hank", false).await;
    let key = env.whisper.session_for(uid).await;
    let good = format!("sessionid={key}");
    let cases: [Handshake; 4] = [
        ("no cookie", "/chat/stream/", vec![]),
        (
            "bogus session",
            "/chat/stream/",
            vec![("cookie", "sessionid=nosuchsession0123456789abcdefgh")],
        ),
        (
            "logged in",
            "/chat/stream/",
            vec![("cookie", good.as_str())],
        ),
        (
            "query string",
            "/chat/stream/?anything=1",
            vec![("cookie", good.as_str())],
        ),
    ];
    for (what, path, headers) in &cases {
        let (py, rs) = env.handshake(path, headers).await;
        ck.same(&format!("handshake: {what}"), &py, &rs);
    }
    // Documented differences: wrong path (500 vs 404), foreign Origin (101 vs 403), foreign
    // Host (101 vs 400: README's settings table, `ALLOWED_HOSTS` "Host header check (400
    // otherwise)"; spec §4.1 says the original accepts it).
    let (py, rs) = env
        .handshake(
            "/chat/stream/",
            &[("cookie", good.as_str()), ("host", "evil.example")],
        )
        .await;
    ck.documented(
        "handshake: foreign Host",
        &py,
        &Got::Close(101),
        &rs,
        &Got::Close(400),
    );
    let (py, rs) = env
        .handshake("/chat/stream", &[("cookie", good.as_str())])
        .await;
    ck.documented(
        "handshake: /chat/stream (no slash)",
        &py,
        &Got::Close(500),
        &rs,
        &Got::Close(404),
    );
    let (py, rs) = env
        .handshake(
            "/chat/stream/",
            &[("cookie", good.as_str()), ("origin", "http://evil.example")],
        )
        .await;
    ck.documented(
        "handshake: foreign Origin",
        &py,
        &Got::Close(101),
        &rs,
        &Got::Close(403),
    );
}

/// §4.5/§4.14: null, numeric spellings, floats, booleans, huge ints; notices carry the raw value.
async fn room_spellings(env: &Env, ck: &mut Check) {
    ck.begin("4.14 room spellings (null, \"01\", 1.5, true, huge)");
    let a_id = env.user("alice", false).await;
    let b_id = env.user("bob", false).await;
    let mut a = env.duo("alice", a_id).await;
    let mut b = env.duo("bob", b_id).await;
    let c = ck;
    a.call(c, &join(r#""1""#), Some(&ack_join(1, "Room 1")))
        .await;
    for room in [
        "null",
        "404",
        "0",
        "-1",
        r#""-1""#,
        r#""0""#,
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775808",
        "1e300",
        "0.5",
        "false",
    ] {
        b.call(c, &join(room), None).await;
        b.call(c, &leave(room), None).await;
    }
    // First join with "01": ack only for bob, enter notice for alice.
    b.call(c, &join(r#""01""#), Some(&ack_join(1, "Room 1")))
        .await;
    a.recv(c, Some(&enter(r#""01""#, "bob"))).await;
    // Subscribed now: ack, then bob's own notice; alice gets the same raw value.
    for room in [
        r#"" 1 ""#,
        "1.5",
        "true",
        r#""+1""#,
        r#""\t1\n""#,
        "1.9",
        "1e0",
        "1.0",
        "-0.5e1",
        r#""\u0661""#,
        r#""１""#,
        r#""\u00a01\u3000""#,
        "1.00000000000000000001",
    ] {
        let got = b.call(c, &join(room), None).await;
        if got != text(&ack_join(1, "Room 1")) && got != text(&err("ROOM_INVALID")) {
            c.fail(format!("join {room}: unexpected python reply {got}"));
        }
        if got == text(&ack_join(1, "Room 1")) {
            b.recv(c, None).await;
            a.recv(c, None).await;
        }
    }
    // "1_0" is room 10 (Python int() digit separators).
    b.call(c, &join(r#""1_0""#), Some(&ack_join(10, "Room 10")))
        .await;
    b.silence(c).await;
    a.silence(c).await;
    b.close(1000).await;
    // bob's set holds one raw value per Python-distinct spelling ("01", " 1 ", 1.5, true (which
    // 1e0, 1.0 and 1.000…1 equal, so true stays), "+1", 1.9, …, "1_0"): each is announced on
    // close, in set order, so the notices are compared as a multiset.
    let mut py = Vec::new();
    let mut rs = Vec::new();
    loop {
        let (p, r) = a.next_both(Duration::from_millis(QUIET_MS * 2)).await;
        if p == Got::Silent && r == Got::Silent {
            break;
        }
        py.push(p);
        rs.push(r);
    }
    py.sort();
    rs.sort();
    c.same(
        "alice <- bob's leave notices on close (any order)",
        &text(&join_lines(&py)),
        &text(&join_lines(&rs)),
    );
    a.close(1000).await;
}

/// §4.6 raw-value keying: 1 vs "1" vs 1.0/true; leaving with another spelling.
async fn raw_value_keying(env: &Env, ck: &mut Check) {
    ck.begin("4.6 raw-value keying (1 / \"1\" / 1.0 / true)");
    let a_id = env.user("carol", false).await;
    let b_id = env.user("dave", false).await;
    let mut a = env.duo("carol", a_id).await;
    let mut b = env.duo("dave", b_id).await;
    let c = ck;
    b.call(c, &join("2"), Some(&ack_join(2, "Room 2"))).await;
    a.call(c, &join(r#""2""#), Some(&ack_join(2, "Room 2")))
        .await;
    b.recv(c, Some(&enter(r#""2""#, "carol"))).await;
    // dave joined with 2: "2" is another member of the set.
    b.call(
        c,
        &send(r#""2""#, r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    b.call(
        c,
        &send(r#""02""#, r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    // 2.0 equals 2: allowed, events carry 2.0.
    b.call(
        c,
        &send("2.0", r#""float""#),
        Some(&chat("2.0", "dave", r#""float""#)),
    )
    .await;
    a.recv(c, Some(&chat("2.0", "dave", r#""float""#))).await;
    b.call(
        c,
        &send("2", r#""int""#),
        Some(&chat("2", "dave", r#""int""#)),
    )
    .await;
    a.recv(c, Some(&chat("2", "dave", r#""int""#))).await;
    // true == 1, not 2.
    b.call(
        c,
        &send("true", r#""bool""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    // Re-join with 2.0: the set keeps 2; ack then own notice with 2.0.
    b.call(c, &join("2.0"), Some(&ack_join(2, "Room 2"))).await;
    b.recv(c, Some(&enter("2.0", "dave"))).await;
    a.recv(c, Some(&enter("2.0", "dave"))).await;
    // carol joins room 1 with true and sends with 1 and 1.0.
    a.call(c, &join("true"), Some(&ack_join(1, "Room 1"))).await;
    a.call(c, &send("1", "1"), Some(&chat("1", "carol", "1")))
        .await;
    a.call(c, &send("1.0", "1.0"), Some(&chat("1.0", "carol", "1.0")))
        .await;
    a.call(c, &send(r#""1""#, "1"), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    // dave leaves with "2" (not his spelling): unsubscribed, but 2 stays in his set.
    b.call(c, &leave(r#""2""#), Some(&ack_leave(2))).await;
    b.recv(c, Some(&left(r#""2""#, "dave"))).await;
    a.recv(c, Some(&left(r#""2""#, "dave"))).await;
    // Still allowed to send with 2, but no longer hears it.
    b.send(&send("2", r#""ghost""#)).await;
    a.recv(c, Some(&chat("2", "dave", r#""ghost""#))).await;
    b.silence(c).await;
    // On close the leave procedure runs for 2: carol hears it.
    b.close(1000).await;
    a.recv(c, Some(&left("2", "dave"))).await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.6/§4.12: leave a room never joined; re-join order; leave while subscribed.
async fn leave_never_joined_and_rejoin(env: &Env, ck: &mut Check) {
    ck.begin("4.12 leave never joined, re-join order");
    let a_id = env.user("erin", false).await;
    let b_id = env.user("frank", false).await;
    let mut a = env.duo("erin", a_id).await;
    let mut b = env.duo("frank", b_id).await;
    let c = ck;
    a.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    b.silence(c).await;
    b.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    a.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    b.call(c, &join(r#""3""#), Some(&ack_join(3, "Room 3")))
        .await;
    b.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    a.recv(c, Some(&enter(r#""3""#, "frank"))).await;
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    b.recv(c, Some(&left(r#""3""#, "frank"))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    // Twice: still an ack and a notice for erin, none for frank (unsubscribed).
    b.call(c, &leave(r#""3""#), Some(&ack_leave(3))).await;
    a.recv(c, Some(&left(r#""3""#, "frank"))).await;
    b.silence(c).await;
    a.silence(c).await;
    b.close(1000).await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.4/§4.10: every JSON type as `message`, re-encoded like `json.dumps`.
async fn message_values(env: &Env, ck: &mut Check) {
    ck.begin("4.10 message values (types, numbers, unicode)");
    let a_id = env.user("gina", false).await;
    let b_id = env.user("hugo", false).await;
    let mut a = env.duo("gina", a_id).await;
    let mut b = env.duo("hugo", b_id).await;
    let c = ck;
    a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    b.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    a.recv(c, Some(&enter(r#""4""#, "hugo"))).await;
    // (sent JSON, expected re-encoding per spec §4.10)
    let values: &[(&str, &str)] = &[
        (r#""""#, r#""""#),
        (r#""see you at noon""#, r#""see you at noon""#),
        ("0", "0"),
        ("-0", "0"),
        ("42", "42"),
        ("-17", "-17"),
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        ("1.0", "1.0"),
        ("1E2", "100.0"),
        ("3e0", "3.0"),
        ("2.50", "2.5"),
        ("1e-7", "1e-07"),
        ("1.5e300", "1.5e+300"),
        ("-1e-400", "-0.0"),
        ("-0.0", "-0.0"),
        ("0.1", "0.1"),
        ("123456789.123456789", "123456789.12345679"),
        ("1e16", "1e+16"),
        ("1e15", "1000000000000000.0"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("9223372036854775807", "9223372036854775807"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("18446744073709551615", "18446744073709551615"),
        ("[]", "[]"),
        ("{}", "{}"),
        ("[1,2.5,null,true]", "[1, 2.5, null, true]"),
        (
            r#"{"b":1,"a":{"z":[{},[]],"y":"\u00e9"}}"#,
            r#"{"b": 1, "a": {"z": [{}, []], "y": "\u00e9"}}"#,
        ),
        (
            r#"[[[[[[[[[[["deep"]]]]]]]]]]]"#,
            r#"[[[[[[[[[[["deep"]]]]]]]]]]]"#,
        ),
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a": 3, "b": 2}"#),
        (r#"{"":""}"#, r#"{"": ""}"#),
        (
            r#""h\u00e9llo ☃ 😀""#,
            r#""h\u00e9llo \u2603 \ud83d\ude00""#,
        ),
        (r#""é☃😀""#, r#""\u00e9\u2603\ud83d\ude00""#),
        (r#""\ud83d\ude00""#, r#""\ud83d\ude00""#),
        (
            r#""\u0000\u001f\u007f\b\f\n\r\t""#,
            r#""\u0000\u001f\u007f\b\f\n\r\t""#,
        ),
        (r#""\/ \\ \" <&>'""#, r#""/ \\ \" <&>'""#),
        (r#""\u00C4rger""#, r#""\u00c4rger""#),
        ("\"\u{7f}\u{80}\u{ffff}\"", r#""\u007f\u0080\uffff""#),
        (
            r#"{"é": ["☃", {"😀": null}]}"#,
            r#"{"\u00e9": ["\u2603", {"\ud83d\ude00": null}]}"#,
        ),
        ("  \"padded\"  ", r#""padded""#),
    ];
    for (sent, want) in values {
        let frame = send(r#""4""#, sent);
        let want = chat(r#""4""#, "gina", want);
        a.call(c, &frame, Some(&want)).await;
        b.recv(c, Some(&want)).await;
    }
    a.silence(c).await;
    b.silence(c).await;
    a.close(1000).await;
    b.recv(c, Some(&left(r#""4""#, "gina"))).await;
    b.close(1000).await;

    // Values the spec (§4.10) says pass through, but which the real stack cannot carry over
    // channels_redis (msgpack refuses lone surrogates and integers outside 64 bits): the
    // sender's application crashes (1011) and nobody gets the message. Whisper passes them
    // through as §4.10 describes. One row each, on fresh sockets.
    let edgy: &[&str] = &[
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ude00\ud83d""#,
        "99999999999999999999",
        "-9223372036854775809",
        "18446744073709551616",
        r#"[1, 123456789012345678901234567890]"#,
        r#"{"k": -123456789012345678901234567890}"#,
    ];
    for sent in edgy {
        let mut a = env.duo("gina", a_id).await;
        let mut b = env.duo("hugo", b_id).await;
        a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
            .await;
        b.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
            .await;
        a.recv(c, Some(&enter(r#""4""#, "hugo"))).await;
        a.send(&send(r#""4""#, sent)).await;
        let echo = text(&chat(r#""4""#, "gina", sent));
        let (py_a, rs_a) = tokio::join!(next(&mut a.py, CRASH_WAIT), next(&mut a.rs, WAIT));
        let (py_b, rs_b) = b.next_both(Duration::from_millis(QUIET_MS)).await;
        c.documented(
            &format!("gina -> send message {sent} (not in README's table)"),
            &text(&format!("{py_a} / hugo {py_b}")),
            &text(&format!("{} / hugo {}", Got::Close(1011), Got::Silent)),
            &text(&format!("{rs_a} / hugo {rs_b}")),
            &text(&format!("{echo} / hugo {echo}")),
        );
        a.close(1000).await;
        b.close(1000).await;
    }
    // NaN/Infinity: the original echoes a bare NaN; Whisper refuses it (documented).
    let mut a = env.duo("gina", a_id).await;
    a.call(c, &join(r#""4""#), Some(&ack_join(4, "Room 4")))
        .await;
    for (sent, py_echo) in [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("[1, NaN]", "[1, NaN]"),
        ("1e400", "Infinity"),
        ("-1e400", "-Infinity"),
    ] {
        a.send(&send(r#""4""#, sent)).await;
        let (py, rs) = a.next_both(WAIT).await;
        c.documented(
            &format!("gina -> send message {sent}"),
            &py,
            &text(&chat(r#""4""#, "gina", py_echo)),
            &rs,
            &text(&err("BAD_REQUEST")),
        );
    }
    a.close(1000).await;
}

/// Duplicate keys at the top level: last value wins (Python dict semantics).
async fn duplicate_keys(env: &Env, ck: &mut Check) {
    ck.begin("4.3 duplicate keys");
    let a_id = env.user("ivy", false).await;
    let mut a = env.duo("ivy", a_id).await;
    let c = ck;
    a.call(
        c,
        r#"{"command": "frobnicate", "room": "nope", "command": "join", "room": "5"}"#,
        Some(&ack_join(5, "Room 5")),
    )
    .await;
    a.call(
        c,
        r#"{"message": 1, "command": "send", "room": "5", "message": 2}"#,
        Some(&chat(r#""5""#, "ivy", "2")),
    )
    .await;
    a.call(
        c,
        r#"{"command": "send", "room": "5", "message": "a", "extra": [1], "message": {"k": 1, "k": 2}}"#,
        Some(&chat(r#""5""#, "ivy", r#"{"k": 2}"#)),
    )
    .await;
    a.call(
        c,
        r#"{"command": "leave", "room": "5", "room": "404"}"#,
        Some(&err("ROOM_INVALID")),
    )
    .await;
    a.silence(c).await;
    a.close(1000).await;
}

/// §4.10 titles (non-ASCII, quotes) and §4.5 staff-only rules, with a staff member listening.
async fn titles_and_staff(env: &Env, ck: &mut Check) {
    ck.begin("4.5/4.10 titles and staff rooms");
    let staff = env.user("jill", true).await;
    let plain = env.user("kent", false).await;
    let umlaut = env.whisper.create_room("Ärger ☃ 😀", false).await;
    let quotes = env
        .whisper
        .create_room(r#"Staff <room> & "quotes" \ /"#, true)
        .await;
    let mut s = env.duo("jill", staff).await;
    let mut p = env.duo("kent", plain).await;
    let c = ck;
    let u = umlaut.to_string();
    let q = quotes.to_string();
    s.call(
        c,
        &join(&u),
        Some(&format!(
            r#"{{"join": "{umlaut}", "title": "\u00c4rger \u2603 \ud83d\ude00"}}"#
        )),
    )
    .await;
    s.call(
        c,
        &join(&q),
        Some(&format!(
            r#"{{"join": "{quotes}", "title": "Staff <room> & \"quotes\" \\ /"}}"#
        )),
    )
    .await;
    p.call(c, &join(&u), None).await;
    s.recv(c, Some(&enter(&u, "kent"))).await;
    p.call(c, &join(&q), Some(&err("ROOM_ACCESS_DENIED"))).await;
    p.call(c, &leave(&q), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    p.call(c, &send(&q, r#""hi""#), Some(&err("ROOM_ACCESS_DENIED")))
        .await;
    s.call(
        c,
        &send(&q, r#""staff only""#),
        Some(&chat(&q, "jill", r#""staff only""#)),
    )
    .await;
    p.silence(c).await;
    p.close(1000).await;
    s.recv(c, Some(&left(&u, "kent"))).await;
    s.silence(c).await;
    s.close(1000).await;
}

/// §4.14: room deleted while joined, then send / leave / join; the entry stays.
async fn deleted_room(env: &Env, ck: &mut Check) {
    ck.begin("4.14 room deleted while joined");
    let a_id = env.user("liam", false).await;
    let b_id = env.user("mona", false).await;
    let doomed = env.whisper.create_room("Doomed", false).await;
    let r = format!("\"{doomed}\"");
    let mut a = env.duo("liam", a_id).await;
    let mut b = env.duo("mona", b_id).await;
    let c = ck;
    a.call(c, &join(r#""6""#), Some(&ack_join(6, "Room 6")))
        .await;
    b.call(c, &join(r#""6""#), Some(&ack_join(6, "Room 6")))
        .await;
    a.recv(c, Some(&enter(r#""6""#, "mona"))).await;
    b.call(c, &join(&r), Some(&ack_join(doomed, "Doomed")))
        .await;
    a.call(c, &join(&r), Some(&ack_join(doomed, "Doomed")))
        .await;
    b.recv(c, Some(&enter(&r, "liam"))).await;
    assert!(env.whisper.store.delete_room(doomed).await.unwrap());
    a.call(c, &send(&r, r#""x""#), Some(&err("ROOM_INVALID")))
        .await;
    a.call(c, &leave(&r), Some(&err("ROOM_INVALID"))).await;
    a.call(c, &send(&r, r#""x""#), Some(&err("ROOM_INVALID")))
        .await;
    a.call(c, &join(&r), Some(&err("ROOM_INVALID"))).await;
    a.call(
        c,
        &send(&doomed.to_string(), r#""x""#),
        Some(&err("ROOM_ACCESS_DENIED")),
    )
    .await;
    a.silence(c).await;
    b.silence(c).await;
    // On close the deleted room is skipped silently; room 6 is announced.
    a.close(1000).await;
    b.recv(c, Some(&left(r#""6""#, "liam"))).await;
    b.silence(c).await;
    b.close(1000).await;
}

/// §4.11: a close announces every joined room (any close code), in set order (compared as a set).
async fn disconnect_announces_every_room(env: &Env, ck: &mut Check) {
    ck.begin("4.11 disconnect announces every room");
    let a_id = env.user("nina", false).await;
    let b_id = env.user("otto", false).await;
    let c = ck;
    for code in [1000u16, 4000] {
        let mut a = env.duo("nina", a_id).await;
        let mut b = env.duo("otto", b_id).await;
        for room in [r#""7""#, "8", r#""09""#] {
            b.call(c, &join(room), None).await;
            a.call(c, &join(room), None).await;
            b.recv(c, None).await;
        }
        a.close(code).await;
        b.recv_unordered(c, 3).await;
        b.silence(c).await;
        b.close(1000).await;
    }
}

/// §4.3: pipelined commands see each other's effect; one sender's messages stay in order.
async fn pipelining_and_order(env: &Env, ck: &mut Check) {
    ck.begin("4.3/4.12 pipelining and per-sender order");
    let a_id = env.user("pia", false).await;
    let b_id = env.user("quinn", false).await;
    let mut a = env.duo("pia", a_id).await;
    let mut b = env.duo("quinn", b_id).await;
    let c = ck;
    b.call(c, &join(r#""11""#), Some(&ack_join(11, "Room 11")))
        .await;
    // join + send + leave written back to back, no waiting.
    a.send(&join(r#""11""#)).await;
    for i in 0..20 {
        a.send(&send(r#""11""#, &i.to_string())).await;
    }
    a.recv(c, Some(&ack_join(11, "Room 11"))).await;
    b.recv(c, Some(&enter(r#""11""#, "pia"))).await;
    for i in 0..20 {
        let want = chat(r#""11""#, "pia", &i.to_string());
        a.recv(c, Some(&want)).await;
        b.recv(c, Some(&want)).await;
    }
    // Not pipelined: on the Python stack a command written right after a send may be handled
    // before that send's echo comes back through Redis (observed: the leave ack overtook the
    // 20th echo), so only the order within each kind is defined there.
    a.call(c, &leave(r#""11""#), Some(&ack_leave(11))).await;
    a.recv(c, Some(&left(r#""11""#, "pia"))).await;
    b.recv(c, Some(&left(r#""11""#, "pia"))).await;
    a.silence(c).await;
    b.silence(c).await;
    a.close(1000).await;
    b.close(1000).await;
}

/// §4.3 step 5: unknown or missing commands. The original ignores them; Whisper answers
/// `UNKNOWN_COMMAND` (documented).
async fn ignored_commands(env: &Env, ck: &mut Check) {
    ck.begin("4.14 unknown / missing command");
    let a_id = env.user("rita", false).await;
    let mut a = env.duo("rita", a_id).await;
    let c = ck;
    a.call(c, &join(r#""1""#), Some(&ack_join(1, "Room 1")))
        .await;
    for frame in [
        r#"{"command": "frobnicate", "room": "1"}"#,
        r#"{"command": "JOIN", "room": "1"}"#,
        r#"{"command": "Send", "room": "1", "message": "x"}"#,
        r#"{"command": " join", "room": "1"}"#,
        r#"{"room": "1"}"#,
        "{}",
        r#"{"command": 1, "room": "1"}"#,
        r#"{"command": null, "room": "1"}"#,
        r#"{"command": ["join"], "room": "1"}"#,
        r#"{"command": "frobnicate"}"#,
    ] {
        a.ignored(c, frame).await;
    }
    // Still open, still in the room.
    a.call(c, &send(r#""1""#, "1"), Some(&chat(r#""1""#, "rita", "1")))
        .await;
    a.close(1000).await;
}

/// §4.3/§4.14: every input the original crashes on (close 1011), each on a fresh socket; Whisper
/// answers its documented reply and keeps the socket.
async fn crashes(env: &Env, ck: &mut Check) {
    ck.begin("4.14 crash rows (1011 vs documented reply)");
    let a_id = env.user("sven", false).await;
    let bad = text(&err("BAD_REQUEST"));
    let invalid = text(&err("ROOM_INVALID"));
    let rows: Vec<(Option<&str>, Got)> = vec![
        (None, Got::Close(1003)),
        (Some(""), bad.clone()),
        (Some("not json"), bad.clone()),
        (Some("{"), bad.clone()),
        (
            Some(r#"{"command": "join", "room": "1"} trailing"#),
            bad.clone(),
        ),
        (Some("[1]"), bad.clone()),
        (Some("[]"), bad.clone()),
        (Some(r#""join""#), bad.clone()),
        (Some("3"), bad.clone()),
        (Some("null"), bad.clone()),
        (Some("true"), bad.clone()),
        (Some(r#"{"command": "join"}"#), bad.clone()),
        (Some(r#"{"command": "leave"}"#), bad.clone()),
        (Some(r#"{"command": "send", "message": "x"}"#), bad.clone()),
        (Some(r#"{"command": "send", "room": "1"}"#), bad.clone()),
        (
            Some("{\"command\": \"send\", \"room\": \"1\", \"message\": \"a\u{1}b\"}"),
            bad.clone(),
        ),
        (Some(r#"{"command": "join", "room": NaN}"#), bad.clone()),
        (
            Some(r#"{"command": "join", "room": Infinity}"#),
            bad.clone(),
        ),
        (
            Some(r#"{"command": "leave", "room": -Infinity}"#),
            bad.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "abc"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "leave", "room": "abc"}"#),
            invalid.clone(),
        ),
        (Some(r#"{"command": "join", "room": ""}"#), invalid.clone()),
        (
            Some(r#"{"command": "join", "room": "1.0"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "1__0"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": "\ud800"}"#),
            invalid.clone(),
        ),
        (Some(r#"{"command": "join", "room": [1]}"#), invalid.clone()),
        (
            Some(r#"{"command": "leave", "room": [1]}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "join", "room": {"id": 1}}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "send", "room": [1], "message": "x"}"#),
            invalid.clone(),
        ),
        (
            Some(r#"{"command": "send", "room": {}, "message": "x"}"#),
            invalid.clone(),
        ),
    ];
    let c = ck;
    for (frame, rs_want) in rows {
        let mut a = env.duo("sven", a_id).await;
        a.crash(c, frame, rs_want).await;
        a.close(1000).await;
    }
}
