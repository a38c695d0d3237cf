//! Whisper beside real Django (issue 3, checks 1–4), on SQLite and on PostgreSQL.
//!
//! Real Django is the oracle: `compat/oracle.py`, run with the venvs that `compat/bootstrap.sh`
//! makes (`compat/.venv` = Django 5.2, `compat/.venv42` = Django 4.2), configured through the
//! same environment variables as Whisper (DATABASE_URL, SECRET_KEY, SESSION_ENGINE, ...). Each
//! test gets its own database: a temporary SQLite file, or a throw-away PostgreSQL database
//! `whisper_interop_<random>` on 127.0.0.1:5432 (user postgres, trust auth) dropped afterwards.
//! A missing venv or PostgreSQL fails the test; nothing is skipped.
//!
//! 1. schema: Whisper `migrate` → Django `migrate --check`/`makemigrations --check` clean and
//!    the admin works; Django `migrate` → Whisper `migrate` applies and changes nothing.
//! 2. passwords: every default Django hasher logs in through Whisper; Whisper CLI users log in
//!    to the Django admin; an upgraded hash is not rehashed again by Django 5.2 / 4.2.
//! 3. sessions both ways (db and signed_cookies engines): cookies, logout, password change,
//!    is_active, expiry, SECRET_KEY rotation with fallbacks, a non-ASCII username.
//! 4. rooms edited through Django show up in Whisper's index and join rules.
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use common::*;

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SIGNED_COOKIES: &str = "django.contrib.sessions.backends.signed_cookies";
const DB_SESSIONS: &str = "django.contrib.sessions.backends.db";
const HASHERS: [&str; 5] = [
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "scrypt",
];

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database: a temp SQLite file or a throw-away PostgreSQL database (dropped, with
/// its connections, when this guard drops, even while unwinding).
struct TestDb {
    url: String,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite:///{}", dir.path().join("db.sqlite3").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.expect(
                    "PostgreSQL must be running on 127.0.0.1:5432 with user postgres (trust auth)",
                );
                let name = format!(
                    "whisper_interop_{}",
                    whisper::django::crypto::get_random_string(
                        12,
                        b"abcdefghijklmnopqrstuvwxyz0123456789"
                    )
                );
                admin
                    .execute(AssertSqlSafe(format!(
                        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
                    )))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                TestDb {
                    url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.clone() else {
            return;
        };
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

// ---------------------------------------------------------------------------------------------
// The shared configuration: one set of variables for Whisper and Django
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Env {
    vars: Vec<(String, String)>,
    base_dir: PathBuf,
}

impl Env {
    fn new(db: &TestDb) -> Env {
        Env {
            vars: vec![
                ("DATABASE_URL".into(), db.url.clone()),
                ("SECRET_KEY".into(), SECRET.into()),
            ],
            base_dir: db.dir.path().to_path_buf(),
        }
    }

    fn with(&self, name: &str, value: &str) -> Env {
        let mut env = self.clone();
        env.vars.retain(|(k, _)| k != name);
        env.vars.push((name.into(), value.into()));
        env
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn whisper(&self) -> TestServer {
        TestServer::start_with(&self.pairs()).await
    }

    fn django(&self, version: &str) -> Django {
        Django::new(version, self.clone())
    }
}

/// Whisper's `./manage` binary with exactly `env` (BASE_DIR = the test's temp dir, so no
/// developer `.env` leaks in); `stdin` is piped in. Returns (exit code, stdout, stderr).
async fn whisper_cli(env: &Env, args: &[&str], extra: &[(&str, &str)], stdin: &str) -> CliRun {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_whisper"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BASE_DIR", &env.base_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env.pairs().into_iter().chain(extra.iter().copied()) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the whisper binary");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Shown through `Debug` in assertion messages.
#[derive(Debug)]
#[allow(dead_code)]
struct CliRun {
    code: i32,
    stdout: String,
    stderr: String,
}

// ---------------------------------------------------------------------------------------------
// Django (compat/oracle.py)
// ---------------------------------------------------------------------------------------------

/// Django as the oracle: one `oracle.py serve` process (one Django start-up) per instance,
/// started at the first command, answering one JSON line per command.
struct Django {
    python: PathBuf,
    env: Env,
    version: String,
    process: tokio::sync::Mutex<Option<Oracle>>,
}

struct Oracle {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Django {
    fn new(version: &str, env: Env) -> Django {
        let venv = match version {
            "5.2" => ".venv",
            "4.2" => ".venv42",
            other => panic!("no venv for Django {other}"),
        };
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("compat")
            .join(venv)
            .join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `bash compat/bootstrap.sh {version}` (./manage test does)",
            python.display()
        );
        Django {
            python,
            env,
            version: version.into(),
            process: tokio::sync::Mutex::new(None),
        }
    }

    fn spawn(&self) -> Oracle {
        let oracle = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat/oracle.py");
        let mut cmd = tokio::process::Command::new(&self.python);
        cmd.arg(&oracle)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BASE_DIR", &self.env.base_dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in self.env.pairs() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run compat/oracle.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs one oracle subcommand; panics with Django's traceback when it fails.
    async fn run(&self, args: &[&str]) -> Value {
        let mut guard = self.process.lock().await;
        let oracle = guard.get_or_insert_with(|| self.spawn());
        let mut line = serde_json::to_string(args).unwrap();
        line.push('\n');
        oracle
            .stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to oracle.py");
        let answer = match oracle.stdout.next_line().await.expect("read oracle.py") {
            Some(answer) => answer,
            None => {
                let status = oracle.child.wait().await;
                panic!(
                    "oracle.py (Django {}) exited ({status:?}) at {args:?}",
                    self.version
                )
            }
        };
        let value: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
            panic!(
                "oracle {args:?} (Django {}) printed no JSON ({e}): {answer}",
                self.version
            )
        });
        if let Some(err) = value.get("error") {
            panic!(
                "oracle {args:?} (Django {}) failed: {err}\n{}",
                self.version,
                value["traceback"].as_str().unwrap_or("")
            );
        }
        value
    }

    async fn create_user(&self, username: &str, password: &str, flags: &[&str]) -> Value {
        let mut args = vec![
            "create-user",
            "--username",
            username,
            "--password",
            password,
        ];
        args.extend_from_slice(flags);
        self.run(&args).await
    }

    /// Logs in through Django's login view (`path`) with CSRF enforced; the response.
    async fn login_at(&self, path: &str, username: &str, password: &str) -> Value {
        self.run(&[
            "login",
            "--username",
            username,
            "--password",
            password,
            "--path",
            path,
        ])
        .await
    }

    /// A successful login at `/accounts/login/`: the session cookie's value.
    async fn login(&self, username: &str, password: &str) -> String {
        let resp = self.login_at("/accounts/login/", username, password).await;
        assert_eq!(resp["status"], 302, "Django login of {username}: {resp}");
        assert_eq!(resp["location"], "/", "{resp}");
        resp["session"].as_str().expect("a session cookie").into()
    }

    async fn get(&self, path: &str, session: &str) -> Value {
        let cookie = format!("sessionid={session}");
        self.run(&["get", "--path", path, "--cookie", &cookie])
            .await
    }

    /// The status of `/admin/` for this session (200 = staff logged in, 302 = to the login).
    async fn admin_index(&self, session: &str) -> (u16, String) {
        let cookie = format!("sessionid={session}");
        let resp = self.run(&["admin-index", "--cookie", &cookie]).await;
        (
            resp["status"].as_u64().unwrap() as u16,
            resp["body"].as_str().unwrap_or("").to_string(),
        )
    }

    async fn logout(&self, session: &str) -> Value {
        let cookie = format!("sessionid={session}");
        self.run(&["logout", "--cookie", &cookie]).await
    }

    async fn user(&self, username: &str) -> Value {
        self.run(&["user", "--username", username]).await
    }

    async fn password_of(&self, username: &str) -> String {
        self.user(username).await["password"]
            .as_str()
            .unwrap()
            .into()
    }

    async fn check_password(&self, username: &str, password: &str) -> Value {
        self.run(&[
            "check-password",
            "--username",
            username,
            "--password",
            password,
        ])
        .await
    }

    async fn session_decode(&self, key: &str) -> Value {
        self.run(&["session-decode", "--key", key]).await["data"].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Whisper over HTTP and WebSocket
// ---------------------------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
    /// `Some(Some(v))`: sessionid set to v; `Some(None)`: deleted; `None`: untouched.
    session: Option<Option<String>>,
    csrf: Option<String>,
}

impl Page {
    async fn from(resp: reqwest::Response) -> Page {
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
    fn next_session(&self, sent: &str) -> Option<String> {
        match &self.session {
            None => Some(sent.to_string()),
            Some(s) => s.clone(),
        }
    }

    fn form_token(&self) -> String {
        let marker = r#"name="csrfmiddlewaretoken" value=""#;
        let start = self.body.find(marker).expect("a csrfmiddlewaretoken input") + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    /// `(id, title)` of the index's room links, in page order.
    fn rooms(&self) -> Vec<(i64, String)> {
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

async fn w_get(server: &TestServer, path: &str, session: Option<&str>) -> Page {
    let mut req = http().get(server.url(path));
    if let Some(s) = session {
        req = req.header("cookie", format!("sessionid={s}"));
    }
    Page::from(req.send().await.unwrap()).await
}

/// Whisper's login form, as a browser fills it (carrying `session` if given).
async fn w_login_page(
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
async fn w_login(server: &TestServer, username: &str, password: &str) -> String {
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

async fn w_logout(server: &TestServer, session: &str) -> Page {
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
async fn w_verdict(server: &TestServer, session: &str) -> (u16, Result<(), u16>) {
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

async fn assert_whisper_accepts(server: &TestServer, session: &str, what: &str) {
    let (status, ws) = w_verdict(server, session).await;
    assert_eq!(status, 200, "{what}: Whisper's index refused the session");
    assert_eq!(
        ws,
        Ok(()),
        "{what}: Whisper's WebSocket refused the session"
    );
}

async fn assert_whisper_refuses(server: &TestServer, session: &str, what: &str) {
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
async fn command(ws: &mut Ws, text: &str) -> String {
    ws.send(text).await;
    loop {
        let frame = ws.recv().await;
        if !frame.starts_with(r#"{"msg_type""#) {
            return frame;
        }
    }
}

/// The next frame that starts with `prefix` (others skipped).
async fn recv_starting(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let frame = ws.recv().await;
        if frame.starts_with(prefix) {
            return frame;
        }
    }
}

async fn django_admin_status(env: &Env, session: &str) -> u16 {
    env.django("5.2").admin_index(session).await.0
}

async fn room_id(django: &Django, title: &str, staff_only: bool) -> i64 {
    let mut args = vec!["room-create", "--title", title];
    if staff_only {
        args.push("--staff-only");
    }
    django.run(&args).await["id"].as_i64().unwrap()
}

/// `pbkdf2_sha256$<iterations>$<22-char salt>$...`?
fn assert_pbkdf2(encoded: &str, iterations: u32, what: &str) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(parts.len(), 4, "{what}: {encoded}");
    assert_eq!(parts[0], "pbkdf2_sha256", "{what}: {encoded}");
    assert_eq!(parts[1], iterations.to_string(), "{what}: {encoded}");
    assert_eq!(parts[2].len(), 22, "{what}: salt of {encoded}");
}

// ---------------------------------------------------------------------------------------------
// Test generators: every check on both backends (and both session engines)
// ---------------------------------------------------------------------------------------------

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }
        }
    )*};
}

macro_rules! on_both_backends_and_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_db() {
                super::$name(Backend::Sqlite, DB_SESSIONS).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_signed_cookies() {
                super::$name(Backend::Sqlite, SIGNED_COOKIES).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_db() {
                super::$name(Backend::Postgres, DB_SESSIONS).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_signed_cookies() {
                super::$name(Backend::Postgres, SIGNED_COOKIES).await
            }
        }
    )*};
}

on_both_backends!(
    schema_whisper_migrate_satisfies_django,
    schema_django_migrate_then_whisper_changes_nothing,
    passwords_django_hashers_log_in_to_whisper,
    passwords_whisper_cli_users_log_in_to_django_admin,
    passwords_no_rehash_ping_pong_django_5_2,
    passwords_no_rehash_ping_pong_django_4_2,
    rooms_edited_in_django_show_up_in_whisper,
    rooms_cache_ttl_expires,
);

on_both_backends_and_engines!(
    sessions_cross_login,
    sessions_logout_ends_both,
    sessions_refused_after_password_change_deactivation_expiry,
    sessions_survive_secret_key_rotation,
);

// ---------------------------------------------------------------------------------------------
// 1. Schema
// ---------------------------------------------------------------------------------------------

async fn schema_whisper_migrate_satisfies_django(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db);
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "whisper migrate: {run:?}");

    for version in ["5.2", "4.2"] {
        let check = env.django(version).run(&["migrate-check"]).await;
        assert_eq!(
            check["migrate_check"], 0,
            "Django {version} migrate --check after Whisper's migrate: {check}"
        );
        assert_eq!(
            check["makemigrations_check"], 0,
            "Django {version} makemigrations --check after Whisper's migrate: {check}"
        );
    }

    // The admin on the Whisper-migrated database, for a Whisper-made superuser.
    let run = whisper_cli(
        &env,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ],
        &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "whisper createsuperuser: {run:?}");
    let django = env.django("5.2");
    let login = django.login_at("/admin/login/", "root", PASSWORD).await;
    assert_eq!(login["status"], 302, "admin login: {login}");
    assert_eq!(login["location"], "/admin/", "{login}");
    let session = login["session"].as_str().unwrap();
    let (status, body) = django.admin_index(session).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Site administration"), "{body}");
    let room = room_id(&django, "Made in the admin", false).await;
    let list = django.get("/admin/chat/room/", session).await;
    assert_eq!(list["status"], 200, "{list}");
    assert!(
        list["body"].as_str().unwrap().contains("Made in the admin"),
        "{list}"
    );
    let change = django
        .get(&format!("/admin/chat/room/{room}/change/"), session)
        .await;
    assert_eq!(change["status"], 200, "{change}");
}

async fn schema_django_migrate_then_whisper_changes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db);
    let django = env.django("5.2");
    let migrated = django.run(&["migrate"]).await;
    assert_eq!(migrated["code"], 0, "{migrated}");
    let before = django.run(&["snapshot"]).await;

    let check = whisper_cli(&env, &["migrate", "--check"], &[], "").await;
    assert_eq!(
        check.code, 0,
        "whisper migrate --check on Django's schema: {check:?}"
    );
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("No migrations to apply."),
        "whisper migrate on Django's schema:\n{}",
        run.stdout
    );
    let after = django.run(&["snapshot"]).await;
    assert_eq!(before, after, "Whisper's migrate changed Django's database");

    // And the server starts on it (its own migrate is a no-op too).
    let server = env.whisper().await;
    let page = w_get(&server, "/accounts/login/", None).await;
    assert_eq!(page.status, 200);
    server.stop().await;
    assert_eq!(django.run(&["snapshot"]).await, before);
}

// ---------------------------------------------------------------------------------------------
// 2. Passwords
// ---------------------------------------------------------------------------------------------

async fn passwords_django_hashers_log_in_to_whisper(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db);
    let server = env.whisper().await;
    let django = env.django("5.2");

    // One user per default hasher (Django's own default parameters), plus the other ways
    // Django makes users: `createsuperuser --noinput` and `set_password`.
    let mut users: Vec<(String, Vec<&str>)> = HASHERS
        .iter()
        .map(|h| (format!("user_{h}"), vec!["--hasher", *h]))
        .collect();
    users.push(("cmd_superuser".into(), vec!["--via", "createsuperuser"]));
    users.push(("set_password".into(), vec!["--via", "set_password"]));
    for (name, flags) in &users {
        let made = django.create_user(name, PASSWORD, flags).await;
        let algorithm = made["password"]
            .as_str()
            .unwrap()
            .split('$')
            .next()
            .unwrap();
        if let Some(h) = name.strip_prefix("user_") {
            assert_eq!(algorithm, h, "{made}");
        }
    }

    for (name, _) in &users {
        let wrong = w_login_page(&server, name, "wrong password", None).await;
        assert_eq!(wrong.status, 200, "{name}: a wrong password was accepted");
        let session = w_login(&server, name, PASSWORD).await;
        assert_whisper_accepts(&server, &session, name).await;
        // Whatever the hasher was, the stored hash is now Django 5.2's preferred one, and
        // Django accepts it without rehashing; the Whisper session survives that check.
        let stored = django.password_of(name).await;
        assert_pbkdf2(&stored, 1_000_000, name);
        let check = django.check_password(name, PASSWORD).await;
        assert_eq!(check["ok"], true, "{name}: {check}");
        assert_eq!(check["changed"], false, "{name}: Django rehashed: {check}");
        assert_whisper_accepts(&server, &session, name).await;
    }
    server.stop().await;
}

async fn passwords_whisper_cli_users_log_in_to_django_admin(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db);
    let run = whisper_cli(&env, &["migrate"], &[], "").await;
    assert_eq!(run.code, 0, "{run:?}");
    let run = whisper_cli(
        &env,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "dana",
            "--email",
            "dana@example.com",
        ],
        &[("DJANGO_SUPERUSER_PASSWORD", PASSWORD)],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let django = env.django("5.2");
    assert_pbkdf2(
        &django.password_of("dana").await,
        1_000_000,
        "createsuperuser",
    );

    let login = django.login_at("/admin/login/", "dana", PASSWORD).await;
    assert_eq!(login["status"], 302, "{login}");
    assert_eq!(login["location"], "/admin/", "{login}");
    let (status, body) = django.admin_index(login["session"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    // Django's login did not rehash Whisper's hash.
    let check = django.check_password("dana", PASSWORD).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["changed"], false, "{check}");

    let new_password = "Grüße aus Zürich ✓";
    let run = whisper_cli(
        &env,
        &["changepassword", "dana"],
        &[],
        &format!("{new_password}\n{new_password}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let old = django.login_at("/admin/login/", "dana", PASSWORD).await;
    assert_eq!(old["status"], 200, "the old password still works: {old}");
    let new = django.login_at("/admin/login/", "dana", new_password).await;
    assert_eq!(new["status"], 302, "{new}");
    let (status, _) = django.admin_index(new["session"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let check = django.check_password("dana", new_password).await;
    assert_eq!(check["changed"], false, "{check}");
}

/// A 1000-iteration hash (what an old Django left) is upgraded at a Whisper login to exactly
/// `version`'s parameters, and that Django then verifies it without rehashing: no ping-pong.
async fn no_rehash_ping_pong(backend: Backend, version: &str, iterations: u32) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db).with("DJANGO_VERSION", version);
    let server = env.whisper().await;
    let django = env.django(version);
    let made = django
        .create_user(
            "old",
            PASSWORD,
            &["--hasher", "pbkdf2_sha256", "--iterations", "1000"],
        )
        .await;
    assert_pbkdf2(made["password"].as_str().unwrap(), 1000, "made by Django");

    let session = w_login(&server, "old", PASSWORD).await;
    let upgraded = django.password_of("old").await;
    assert_pbkdf2(&upgraded, iterations, "upgraded by Whisper");

    let check = django.check_password("old", PASSWORD).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(
        check["changed"], false,
        "Django {version} rehashed Whisper's upgrade: {check}"
    );
    // Logging in on both sides again changes nothing either.
    let django_session = django.login("old", PASSWORD).await;
    let second = w_login(&server, "old", PASSWORD).await;
    assert_eq!(django.password_of("old").await, upgraded);
    // No side logged the other out.
    assert_whisper_accepts(&server, &session, "first Whisper session").await;
    assert_whisper_accepts(&server, &second, "second Whisper session").await;
    assert_whisper_accepts(&server, &django_session, "Django session").await;
    assert_eq!(django.get("/", &session).await["status"], 200);
    server.stop().await;
}

async fn passwords_no_rehash_ping_pong_django_5_2(backend: Backend) {
    no_rehash_ping_pong(backend, "5.2", 1_000_000).await;
}

async fn passwords_no_rehash_ping_pong_django_4_2(backend: Backend) {
    no_rehash_ping_pong(backend, "4.2", 600_000).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Sessions both ways
// ---------------------------------------------------------------------------------------------

/// A Whisper server and Django 5.2 sharing a database and a session engine.
async fn shared(backend: Backend, engine: &str) -> (TestDb, Env, TestServer, Django) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db).with("SESSION_ENGINE", engine);
    let server = env.whisper().await;
    let django = env.django("5.2");
    (db, env, server, django)
}

async fn sessions_cross_login(backend: Backend, engine: &str) {
    let (_db, _env, server, django) = shared(backend, engine).await;
    django.create_user("alice", PASSWORD, &["--staff"]).await;
    let zoe = django.create_user("Zoë", PASSWORD, &["--staff"]).await;
    let room = room_id(&django, "Lobby", false).await;

    // A Django login's cookie opens Whisper's index and WebSocket.
    let from_django = django.login("alice", PASSWORD).await;
    let index = w_get(&server, "/", Some(&from_django)).await;
    assert_eq!(index.status, 200, "{}", index.body);
    assert_eq!(index.rooms(), vec![(room, "Lobby".to_string())]);
    let mut ws = server
        .ws(Some(&from_django), None)
        .await
        .expect("handshake");
    assert_eq!(
        command(&mut ws, &join(&room.to_string())).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.close(1000).await;

    // A Whisper login's cookie opens the Django admin and index.
    let from_whisper = w_login(&server, "alice", PASSWORD).await;
    let (status, body) = django.admin_index(&from_whisper).await;
    assert_eq!(
        status, 200,
        "Django admin refused Whisper's session: {body}"
    );
    assert!(body.contains("Site administration"));
    let page = django.get("/", &from_whisper).await;
    assert_eq!(page["status"], 200, "{page}");
    assert!(page["body"].as_str().unwrap().contains(r#"data-room-id=""#));

    // Non-ASCII: Zoë's Django session, with a non-ASCII value added by Django, works in Whisper
    // (index, WebSocket events carry her name) ...
    let greeting = "Grüße, Zoë ✓";
    let z_django = django.login("Zoë", PASSWORD).await;
    let z_django = django
        .run(&[
            "session-set",
            "--key",
            &z_django,
            "--name",
            "greeting",
            "--value",
            greeting,
        ])
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(w_get(&server, "/", Some(&z_django)).await.status, 200);
    let mut ws = server
        .ws(Some(&z_django), None)
        .await
        .expect("Zoë's handshake");
    let r = room.to_string();
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.send(&send(&r, r#""hällo""#)).await;
    assert_eq!(
        recv_starting(&mut ws, r#"{"msg_type": 0"#).await,
        format!(
            r#"{{"msg_type": 0, "room": {r}, "username": "Zo\u00eb", "message": "h\u00e4llo"}}"#
        )
    );
    ws.close(1000).await;
    // ... and a Whisper login made on top of that session keeps the value for Django.
    let relogin = w_login_page(&server, "Zoë", PASSWORD, Some(&z_django)).await;
    assert_eq!(relogin.status, 302, "{}", relogin.body);
    let z_whisper = relogin.next_session(&z_django).unwrap();
    let data = django.session_decode(&z_whisper).await;
    assert_eq!(data["greeting"], greeting, "{data}");
    assert_eq!(data["_auth_user_id"], zoe["id"].to_string(), "{data}");
    // A fresh Whisper login of Zoë opens the admin, which greets her by name.
    let z_fresh = w_login(&server, "Zoë", PASSWORD).await;
    let (status, body) = django.admin_index(&z_fresh).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<strong>Zoë</strong>"), "{body}");
    server.stop().await;
}

async fn sessions_logout_ends_both(backend: Backend, engine: &str) {
    let (_db, _env, server, django) = shared(backend, engine).await;
    django.create_user("alice", PASSWORD, &["--staff"]).await;
    let signed = engine == SIGNED_COOKIES;

    // Logout in Whisper of a Django session.
    let d = django.login("alice", PASSWORD).await;
    assert_whisper_accepts(&server, &d, "before logout").await;
    let out = w_logout(&server, &d).await;
    assert_eq!(
        out.session,
        Some(None),
        "Whisper's logout must delete the cookie"
    );
    let (status, _) = django.admin_index(&d).await;
    if signed {
        // A signed cookie cannot be revoked: Django's own logout only deletes it in the
        // browser. Whisper must then agree with Django about the old value.
        assert_eq!(status, 200);
        assert_whisper_accepts(&server, &d, "old signed cookie after logout").await;
    } else {
        assert_eq!(
            status, 302,
            "Django still accepts a session Whisper logged out"
        );
        assert_whisper_refuses(&server, &d, "after Whisper's logout").await;
    }

    // Logout in Django of a Whisper session.
    let w = w_login(&server, "alice", PASSWORD).await;
    assert_eq!(django.admin_index(&w).await.0, 200);
    let out = django.logout(&w).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["set_cookies"]["sessionid"]["value"], "", "{out}");
    if signed {
        assert_eq!(django.get("/", &w).await["status"], 200);
        assert_whisper_accepts(&server, &w, "old signed cookie after Django's logout").await;
    } else {
        assert_eq!(django.get("/", &w).await["status"], 302);
        assert_whisper_refuses(&server, &w, "after Django's logout").await;
    }
    server.stop().await;
}

async fn sessions_refused_after_password_change_deactivation_expiry(
    backend: Backend,
    engine: &str,
) {
    let (_db, env, server, django) = shared(backend, engine).await;
    django.create_user("root", PASSWORD, &["--superuser"]).await;
    django.create_user("bob", PASSWORD, &[]).await;
    django.create_user("carol", PASSWORD, &[]).await;

    // A password change in the Django admin: Whisper refuses the old cookies (HTTP and
    // WebSocket), whichever side made them.
    let b_django = django.login("bob", PASSWORD).await;
    let b_whisper = w_login(&server, "bob", PASSWORD).await;
    assert_whisper_accepts(&server, &b_django, "bob via Django").await;
    assert_whisper_accepts(&server, &b_whisper, "bob via Whisper").await;
    let admin = django.login_at("/admin/login/", "root", PASSWORD).await;
    let admin_cookie = format!("sessionid={}", admin["session"].as_str().unwrap());
    let changed = django
        .run(&[
            "admin-password-change",
            "--cookie",
            &admin_cookie,
            "--username",
            "bob",
            "--password",
            "a brand new password",
        ])
        .await;
    assert_eq!(changed["status"], 302, "{changed}");
    assert_eq!(changed["password_changed"], true, "{changed}");
    assert_whisper_refuses(&server, &b_django, "bob's Django session after the change").await;
    assert_whisper_refuses(
        &server,
        &b_whisper,
        "bob's Whisper session after the change",
    )
    .await;
    assert_eq!(django.get("/", &b_whisper).await["status"], 302);
    let fresh = w_login(&server, "bob", "a brand new password").await;
    assert_whisper_accepts(&server, &fresh, "bob's new session").await;

    // is_active = False.
    let c_django = django.login("carol", PASSWORD).await;
    let c_whisper = w_login(&server, "carol", PASSWORD).await;
    django
        .run(&["set-active", "--username", "carol", "--active", "0"])
        .await;
    assert_whisper_refuses(&server, &c_django, "inactive carol via Django").await;
    assert_whisper_refuses(&server, &c_whisper, "inactive carol via Whisper").await;
    let again = w_login_page(&server, "carol", PASSWORD, None).await;
    assert_eq!(again.status, 200, "an inactive user logged in to Whisper");
    assert_eq!(django.get("/", &c_whisper).await["status"], 302);
    let d = django.login_at("/accounts/login/", "carol", PASSWORD).await;
    assert_eq!(d["status"], 200, "Django let an inactive user in: {d}");

    // Expired sessions.
    server.stop().await;
    if engine == SIGNED_COOKIES {
        // The cookie's signed timestamp is older than SESSION_COOKIE_AGE.
        let short = env.with("SESSION_COOKIE_AGE", "2");
        let server = short.whisper().await;
        let django = short.django("5.2");
        let d = django.login("bob", "a brand new password").await;
        let w = w_login(&server, "bob", "a brand new password").await;
        assert_whisper_accepts(&server, &d, "fresh signed cookie").await;
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_whisper_refuses(&server, &d, "expired signed cookie from Django").await;
        assert_whisper_refuses(&server, &w, "expired signed cookie from Whisper").await;
        assert_eq!(django.get("/", &w).await["status"], 302);
        server.stop().await;
    } else {
        let server = env.whisper().await;
        let d = django.login("bob", "a brand new password").await;
        let w = w_login(&server, "bob", "a brand new password").await;
        for key in [&d, &w] {
            let n = django.run(&["session-expire", "--key", key]).await;
            assert_eq!(n["updated"], 1, "{n}");
        }
        assert_whisper_refuses(&server, &d, "expired Django session").await;
        assert_whisper_refuses(&server, &w, "expired Whisper session").await;
        assert_eq!(django.get("/", &w).await["status"], 302);
        server.stop().await;
    }
}

async fn sessions_survive_secret_key_rotation(backend: Backend, engine: &str) {
    const OLD: &str = "the-old-secret-key-before-rotation";
    const NEW: &str = "the-new-secret-key-after-rotation";
    let db = TestDb::new(backend).await;
    let old_env = Env::new(&db)
        .with("SESSION_ENGINE", engine)
        .with("SECRET_KEY", OLD);
    let new_env = old_env
        .with("SECRET_KEY", NEW)
        .with("SECRET_KEY_FALLBACKS", OLD);
    let new_only = old_env.with("SECRET_KEY", NEW);

    // Sessions made under the old key, on both sides.
    let server = old_env.whisper().await;
    let old_django = old_env.django("5.2");
    old_django
        .create_user("alice", PASSWORD, &["--staff"])
        .await;
    let room = room_id(&old_django, "Lobby", false).await;
    let w = w_login(&server, "alice", PASSWORD).await;
    let d = old_django.login("alice", PASSWORD).await;
    let d2 = old_django.login("alice", PASSWORD).await;
    let w2 = w_login(&server, "alice", PASSWORD).await;
    server.stop().await;

    // Rotated, with the old key in SECRET_KEY_FALLBACKS: both sides keep them valid. Like
    // Django, Whisper may move the session to the new key (a new cookie): follow it.
    let server = new_env.whisper().await;
    let django = new_env.django("5.2");
    let page = w_get(&server, "/", Some(&d)).await;
    assert_eq!(
        page.status, 200,
        "Whisper refused an old-key Django session"
    );
    let d_next = page.next_session(&d).expect("a session after the rotation");
    // As Django's get_user: a fallback-key auth hash cycles the session key.
    assert_ne!(d_next, d, "the session was not moved to the new key");
    if engine == DB_SESSIONS {
        assert_eq!(
            django_admin_status(&new_env, &d).await,
            302,
            "the old row survived"
        );
    }
    let mut ws = server.ws(Some(&d_next), None).await.expect("handshake");
    assert_eq!(
        command(&mut ws, &join(&room.to_string())).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    ws.close(1000).await;
    assert_eq!(
        django.admin_index(&d_next).await.0,
        200,
        "Django refused the session Whisper moved to the new key"
    );
    let (status, body) = django.admin_index(&w).await;
    assert_eq!(
        status, 200,
        "Django refused an old-key Whisper session: {body}"
    );
    server.stop().await;

    // Without the fallback, old-key sessions are refused by both.
    let server = new_only.whisper().await;
    let django = new_only.django("5.2");
    assert_whisper_refuses(&server, &d2, "old-key session without fallback").await;
    assert_eq!(django.admin_index(&w2).await.0, 302);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Rooms edited through Django
// ---------------------------------------------------------------------------------------------

async fn rooms_edited_in_django_show_up_in_whisper(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db).with("ROOM_CACHE_TTL", "0");
    let server = env.whisper().await;
    let django = env.django("5.2");
    let staff = server.create_user("staffer", true).await;
    let user = server.create_user("member", false).await;
    let s_cookie = server.session_for(staff).await;
    let u_cookie = server.session_for(user).await;

    let zebra = room_id(&django, "Zebra", false).await;
    let alpha = room_id(&django, "Alpha", false).await;
    let ops = room_id(&django, "Ops", true).await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert_eq!(
        index.rooms(),
        vec![
            (alpha, "Alpha".to_string()),
            (ops, "Ops".to_string()),
            (zebra, "Zebra".to_string())
        ],
        "index order (by title, staff-only rooms listed to everyone)"
    );
    let mut member = server.ws(Some(&u_cookie), None).await.unwrap();
    let mut staffer = server.ws(Some(&s_cookie), None).await.unwrap();
    let ack = |id: i64, title: &str| format!(r#"{{"join": "{id}", "title": "{title}"}}"#);
    let denied = r#"{"error": "ROOM_ACCESS_DENIED"}"#;
    let invalid = r#"{"error": "ROOM_INVALID"}"#;
    assert_eq!(command(&mut member, &join(&ops.to_string())).await, denied);
    assert_eq!(
        command(&mut staffer, &join(&ops.to_string())).await,
        ack(ops, "Ops")
    );

    // Renamed.
    django
        .run(&[
            "room-rename",
            "--id",
            &zebra.to_string(),
            "--title",
            "Aardvark",
        ])
        .await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert_eq!(index.rooms()[0], (zebra, "Aardvark".to_string()));
    assert_eq!(
        command(&mut member, &join(&zebra.to_string())).await,
        ack(zebra, "Aardvark")
    );

    // Made staff-only, and back.
    django
        .run(&[
            "room-set-staff",
            "--id",
            &alpha.to_string(),
            "--staff_only",
            "1",
        ])
        .await;
    assert_eq!(
        command(&mut member, &join(&alpha.to_string())).await,
        denied
    );
    django
        .run(&[
            "room-set-staff",
            "--id",
            &ops.to_string(),
            "--staff_only",
            "0",
        ])
        .await;
    assert_eq!(
        command(&mut member, &join(&ops.to_string())).await,
        ack(ops, "Ops")
    );

    // Deleted.
    django
        .run(&["room-delete", "--id", &alpha.to_string()])
        .await;
    let index = w_get(&server, "/", Some(&u_cookie)).await;
    assert!(
        index.rooms().iter().all(|(id, _)| *id != alpha),
        "{:?}",
        index.rooms()
    );
    assert_eq!(
        command(&mut staffer, &join(&alpha.to_string())).await,
        invalid
    );
    member.close(1000).await;
    staffer.close(1000).await;
    server.stop().await;
}

async fn rooms_cache_ttl_expires(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = Env::new(&db).with("ROOM_CACHE_TTL", "1");
    let server = env.whisper().await;
    let django = env.django("5.2");
    let user = server.create_user("member", false).await;
    let cookie = server.session_for(user).await;
    let room = room_id(&django, "Lobby", false).await;
    let r = room.to_string();

    let mut ws = server.ws(Some(&cookie), None).await.unwrap();
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    assert_eq!(
        command(&mut ws, &leave(&r)).await,
        format!(r#"{{"leave": "{room}"}}"#)
    );
    let edited = Instant::now();
    django
        .run(&["room-set-staff", "--id", &r, "--staff_only", "1"])
        .await;
    django
        .run(&["room-rename", "--id", &r, "--title", "Staff room"])
        .await;
    // Past the TTL, the edit applies.
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(edited.elapsed())).await;
    assert_eq!(
        command(&mut ws, &join(&r)).await,
        r#"{"error": "ROOM_ACCESS_DENIED"}"#
    );
    let index = w_get(&server, "/", Some(&cookie)).await;
    assert_eq!(index.rooms(), vec![(room, "Staff room".to_string())]);
    ws.close(1000).await;
    server.stop().await;
}
