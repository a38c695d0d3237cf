//! Issue 3, check 5: byte-compatibility with the real Python stack.
//!
//! One database (SQLite or PostgreSQL), migrated by Whisper, is shared by Whisper and by daphne
//! serving `compat/` (Django 5.2 or 6.1, channels 4, channels_redis over the local Redis, and the
//! consumer in `compat/chat/consumers.py`, which reproduces the original multichat
//! `ChatConsumer`). Both get the same scripted WebSocket session in lockstep: every frame is sent
//! to both servers and every frame each server emits is compared byte for byte, per socket (the
//! order of events across different sockets is not guaranteed, a single socket's sequence is).
//!
//! Covered: the worked session of spec `multichat-protocol.md` §4.13 (also checked against the
//! spec's literal bytes) and every row of §4.14 plus the §4.6 rules. Where the original crashes
//! (close 1011) or ignores a frame, Whisper answers the reply documented in README "Documented
//! differences": each such row is one assertion of both sides (Python: 1011/silence, Whisper:
//! its reply).
//!
//! Needs `compat/.venv` and `compat/.venv61` (made by `compat/bootstrap.sh 5.2 6.1`, which
//! `./manage test` runs) and Redis at 127.0.0.1:6379 (`INTEROP_REDIS_URL` overrides; each test
//! picks its own database number so runs do not share channel-layer groups). Runs on SQLite and
//! on a throw-away PostgreSQL database (127.0.0.1:5432, user postgres, trust auth).
//!
//! Mismatches are collected, not fatal one by one: every scenario runs, then the test fails with
//! the full list (input, Python bytes, Whisper bytes).
//!
//! This file holds the tests, the two servers over one database (`Env`) and the scenario runner;
//! the daphne guard is in `common::python`, the comparison machinery in `lockstep`, and the scenarios in
//! `connection`, `rooms` and `frames`.

#[path = "../common/mod.rs"]
mod common;
mod connection;
mod frames;
mod lockstep;
mod rooms;

use std::path::Path;
use std::time::Instant;

use common::pg::{Locale, PgDatabase};
use common::python::{Daphne, redis_url};
use common::{TestServer, Ws};
use connection::*;
use frames::*;
use lockstep::*;
use rooms::*;

// ---------------------------------------------------------------------------------------------
// The two servers over one database.
// ---------------------------------------------------------------------------------------------

pub(crate) struct Env {
    pub(crate) whisper: TestServer,
    pub(crate) daphne: Daphne,
}

impl Env {
    pub(crate) async fn user(&self, name: &str, staff: bool) -> i64 {
        self.whisper.create_user(name, staff).await
    }

    /// A logged-in socket pair: one Django session row, used on both servers.
    pub(crate) async fn duo(&self, name: &str, user_id: i64) -> Duo {
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
    pub(crate) async fn handshake(&self, path: &str, headers: &[(&str, &str)]) -> (Got, Got) {
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

/// The Python stack on each Django release (its venv), on SQLite and PostgreSQL; `$slot` keeps
/// the tests of one run on different Redis databases.
macro_rules! same_bytes_on {
    ($($module:ident => $django:literal, $slot:literal);* $(;)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn same_bytes_as_the_python_stack_sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let database_url =
                    format!("sqlite:///{}", dir.path().join("db.sqlite3").display());
                same_bytes($django, &database_url, $slot, dir.path()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn same_bytes_as_the_python_stack_postgres() {
                let dir = tempfile::tempdir().unwrap();
                let pg = PgDatabase::create("interop", Locale::ServerDefault).await;
                same_bytes($django, &pg.url(), $slot + 1, dir.path()).await;
                drop(pg);
            }
        }
    )*};
}

same_bytes_on!(
    django_5_2 => "5.2", 0;
    django_6_1 => "6.1", 2;
);

/// The whole comparison over one database, with daphne running Django `django`.
async fn same_bytes(django: &str, database_url: &str, slot: u32, dir: &Path) {
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
    let daphne = Daphne::start(django, database_url, &redis, dir.join("daphne.log"));
    let env = Env { whisper, daphne };
    eprintln!(
        "python: daphne (Django {django}) on {} (redis {redis}); whisper on {}; db {database_url}",
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
