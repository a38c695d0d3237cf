//! The Python side: the original-like Channels app in `compat/` served by daphne (or uvicorn)
//! on a free port, killed on drop (also when a test panics); `compat/layer_tool.py` runs; and
//! the Redis database each test run uses for its channel layer.

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::SECRET;

pub(crate) const COMPAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compat");

/// Which ASGI server runs compat/.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Server {
    Daphne,
    Uvicorn,
}

/// The running Python server (daphne or uvicorn).
pub(crate) struct Daphne {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
    pub(crate) addr: SocketAddr,
}

/// The venv (from `compat/bootstrap.sh`) of a Django release that runs compat/.
pub(crate) fn venv(django: &str) -> &'static str {
    match django {
        "4.2" => ".venv42",
        "5.2" => ".venv",
        "6.1" => ".venv61",
        other => panic!("no compat/ venv runs Django {other} (compat/bootstrap.sh)"),
    }
}

impl Daphne {
    /// daphne with Django `django` (its venv) over `database_url`, channels_redis on `redis_url`.
    pub(crate) fn start(django: &str, database_url: &str, redis_url: &str, log: PathBuf) -> Daphne {
        Self::start_in(
            django,
            Server::Daphne,
            database_url,
            &[("REDIS_URL", redis_url)],
            log,
        )
    }

    /// `server` (Django 5.2) serving compat/ with `vars` added to its environment (e.g.
    /// `CHANNEL_LAYERS`).
    pub(crate) fn start_with(
        server: Server,
        database_url: &str,
        vars: &[(&str, &str)],
        log: PathBuf,
    ) -> Daphne {
        Self::start_in("5.2", server, database_url, vars, log)
    }

    fn start_in(
        django: &str,
        server: Server,
        database_url: &str,
        vars: &[(&str, &str)],
        log: PathBuf,
    ) -> Daphne {
        let compat = Path::new(COMPAT);
        let bin = compat.join(venv(django)).join(match server {
            Server::Daphne => "bin/daphne",
            Server::Uvicorn => "bin/uvicorn",
        });
        assert!(
            bin.exists(),
            "{} is missing: this test needs the Django {django} virtualenv. Create it with \
             `compat/bootstrap.sh {django}` (`./manage test` does this).",
            bin.display()
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(&bin);
        match server {
            Server::Daphne => command.args(["-b", "127.0.0.1", "-p", &port.to_string()]),
            Server::Uvicorn => command.args(["--host", "127.0.0.1", "--port", &port.to_string()]),
        };
        command
            .arg("multichat.asgi:application")
            .current_dir(compat)
            .env("DJANGO_SETTINGS_MODULE", "multichat.settings")
            .env("DATABASE_URL", database_url)
            .env("SECRET_KEY", SECRET)
            .env("ALLOWED_HOSTS", "127.0.0.1,localhost")
            .env("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", "True")
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("SECRET_KEY_FALLBACKS")
            .env_remove("SESSION_ENGINE");
        // After the defaults, so a test's own SESSION_ENGINE (and the rest) wins.
        for (k, v) in vars {
            command.env(k, v);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut daphne = Daphne { child, log, addr };
        daphne.wait_ready(Duration::from_secs(30));
        daphne
    }

    pub(crate) fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Python server exited early ({status}):\n{}",
                    self.log_text()
                );
            }
            if StdTcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if start.elapsed() > limit {
                panic!(
                    "the Python server did not accept connections on {} within {limit:?}:\n{}",
                    self.addr,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn log_text(&self) -> String {
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
pub(crate) fn redis_url(slot: u32) -> String {
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
