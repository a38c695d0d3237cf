//! Whisper beside real Django (issue 3, checks 1–4): every check on Django 6.1, 5.2 and 4.2
//! (listed once, in `per_django_version!`), each on SQLite and on PostgreSQL.
//!
//! Real Django is the oracle: `compat/oracle.py`, run with the venvs that `compat/bootstrap.sh`
//! makes (`compat/.venv61` = Django 6.1, `compat/.venv` = 5.2, `compat/.venv42` = 4.2),
//! configured through the same environment variables as Whisper (DATABASE_URL, SECRET_KEY,
//! SESSION_ENGINE, PASSWORD_HASHERS, ...); Whisper runs with `DJANGO_VERSION` set to the same
//! release. Each
//! test gets its own database: a temporary SQLite file, or a throw-away PostgreSQL database
//! `whisper_interop_<random>` on 127.0.0.1:5432 (user postgres, trust auth) dropped afterwards.
//! A missing venv or PostgreSQL fails the test; nothing is skipped.
//!
//! 1. schema: Whisper `migrate` → Django `migrate --check`/`makemigrations --check` clean and
//!    the admin works; Django `migrate` → Whisper `migrate` applies and changes nothing.
//! 2. passwords: every default Django hasher logs in through Whisper; Whisper CLI users log in
//!    to the Django admin; an upgraded hash is not rehashed again by that Django; with Argon2 or
//!    BCryptSHA256 first in PASSWORD_HASHERS, each side's upgrade is final for the other.
//! 3. sessions both ways (db and signed_cookies engines): cookies, logout, password change,
//!    is_active, expiry, SECRET_KEY rotation with fallbacks, a non-ASCII username.
//! 4. rooms edited through Django show up in Whisper's index and join rules.
//! 5. live revocation: open sockets follow a logout, password change, deactivation and lost
//!    `is_staff` made in Django (`revocation`).
//!
//! This file holds the databases, the shared configuration, the CLI runner and the test
//! generators; the Django oracle and the Whisper clients are in `django` and `whisper_client`.

#[path = "../common/mod.rs"]
mod common;
mod django;
mod whisper_client;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use common::pg::{Locale, PgDatabase};
use common::*;
use django::*;
use whisper_client::*;

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
    _pg: Option<PgDatabase>,
    dir: tempfile::TempDir,
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite:///{}", dir.path().join("db.sqlite3").display()),
                _pg: None,
                dir,
            },
            Backend::Postgres => {
                let pg = PgDatabase::create("interop", Locale::ServerDefault).await;
                TestDb {
                    url: pg.url(),
                    _pg: Some(pg),
                    dir,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared configuration: one set of variables for Whisper and Django
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Env {
    vars: Vec<(String, String)>,
    base_dir: PathBuf,
    /// The Django release on both sides: the oracle's venv and Whisper's `DJANGO_VERSION`.
    django: &'static str,
}

impl Env {
    fn new(db: &TestDb, django: &'static str) -> Env {
        Env {
            vars: vec![
                ("DATABASE_URL".into(), db.url.clone()),
                ("SECRET_KEY".into(), SECRET.into()),
                ("DJANGO_VERSION".into(), django.into()),
            ],
            base_dir: db.dir.path().to_path_buf(),
            django,
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

    /// Django (`oracle.py`) of this environment's release.
    fn django(&self) -> Django {
        Django::new(self.django, self.clone())
    }

    /// The PBKDF2 iterations of this environment's release (Whisper's table, which
    /// tests/django_vectors checks against Django's sources).
    fn pbkdf2_iterations(&self) -> u32 {
        self.django
            .parse::<whisper::django::hashers::DjangoVersion>()
            .unwrap()
            .pbkdf2_iterations()
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
// Test generators: every check on each Django release × both backends (× both session engines)
// ---------------------------------------------------------------------------------------------

/// Generates, inside `mod $check`, one module per Django release the suite runs against (the one
/// place that lists them; each needs its venv from `compat/bootstrap.sh`), each with the
/// check's tests `$tests` (`$tests` is a macro that gets the release).
macro_rules! per_django_version {
    ($check:ident, $tests:ident) => {
        mod $check {
            use super::*;
            $tests!($check, django_6_1, "6.1");
            $tests!($check, django_5_2, "5.2");
            $tests!($check, django_4_2, "4.2");
        }
    };
}

macro_rules! backend_tests {
    ($check:ident, $module:ident, $version:literal) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::super::$check(Backend::Sqlite, $version).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::super::$check(Backend::Postgres, $version).await
            }
        }
    };
}

macro_rules! backend_engine_tests {
    ($check:ident, $module:ident, $version:literal) => {
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_db() {
                super::super::$check(Backend::Sqlite, $version, DB_SESSIONS).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_signed_cookies() {
                super::super::$check(Backend::Sqlite, $version, SIGNED_COOKIES).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_db() {
                super::super::$check(Backend::Postgres, $version, DB_SESSIONS).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_signed_cookies() {
                super::super::$check(Backend::Postgres, $version, SIGNED_COOKIES).await
            }
        }
    };
}

/// `check(backend, django_version)` on every release and both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        per_django_version!($name, backend_tests);
    )*};
}

/// `check(backend, django_version, session_engine)` on every release, both backends and both
/// session engines.
macro_rules! on_both_backends_and_engines {
    ($($name:ident),* $(,)?) => {$(
        per_django_version!($name, backend_engine_tests);
    )*};
}

// ---------------------------------------------------------------------------------------------
// The checks (declared after the generators above, which they use)
// ---------------------------------------------------------------------------------------------

mod cache_sessions;
mod custom_user;
mod fork;
mod passwords;
mod revocation;
mod rooms;
mod schema;
mod sessions;
