//! One channel layer shared by Whisper processes and real Python (channels + channels_redis
//! from compat/.venv): its `CHANNEL_LAYERS` JSON with a prefix of its own, Whisper servers and
//! daphne/uvicorn on it, and `compat/layer_tool.py` as the Django code that calls `group_send`
//! or listens on a group.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::python::{COMPAT, Daphne, Server};
use super::{SECRET, TestServer, Ws};

pub const REDIS: &str = "redis://127.0.0.1:6379/0";
pub const PUBSUB: &str = "channels_redis.pubsub.RedisPubSubChannelLayer";
pub const CORE: &str = "channels_redis.core.RedisChannelLayer";

fn venv_python() -> String {
    let python = format!("{COMPAT}/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run compat/bootstrap.sh 5.2 (./manage test does)"
    );
    python
}

/// One test's layer: its backend and a prefix no other test uses.
pub struct Layer {
    pub json: String,
    pub prefix: String,
    pub database_url: String,
}

impl Layer {
    /// On the shared Redis at 127.0.0.1:6379.
    pub fn new(backend: &str, database_url: &str) -> Layer {
        Self::on(REDIS, backend, database_url)
    }

    pub fn on(redis: &str, backend: &str, database_url: &str) -> Layer {
        Self::sharded(&[redis], backend, database_url)
    }

    /// `hosts` in this order: channels_redis shards over them.
    pub fn sharded(hosts: &[&str], backend: &str, database_url: &str) -> Layer {
        let prefix = format!("wt{:016x}", rand::random::<u64>());
        let hosts = serde_json::to_string(hosts).unwrap();
        Layer {
            json: format!(
                r#"{{"default": {{"BACKEND": "{backend}", "CONFIG": {{"hosts": {hosts}, "prefix": "{prefix}"}}}}}}"#
            ),
            prefix,
            database_url: database_url.to_string(),
        }
    }

    pub async fn whisper(&self) -> TestServer {
        self.whisper_with(&[]).await
    }

    pub async fn whisper_with(&self, vars: &[(&str, &str)]) -> TestServer {
        let mut all = vec![
            ("DATABASE_URL", self.database_url.as_str()),
            ("CHANNEL_LAYERS", self.json.as_str()),
        ];
        all.extend_from_slice(vars);
        TestServer::start_with(&all).await
    }

    pub fn python_server(&self, server: Server, log: std::path::PathBuf) -> Daphne {
        Daphne::start_with(
            server,
            &self.database_url,
            &[("CHANNEL_LAYERS", &self.json)],
            log,
        )
    }

    pub fn tool(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(venv_python());
        cmd.arg("layer_tool.py")
            .args(args)
            .current_dir(COMPAT)
            .env("CHANNEL_LAYERS", &self.json)
            .env("DATABASE_URL", &self.database_url)
            .env("SECRET_KEY", SECRET)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Django code's `group_send`, one call per event, in order.
    pub async fn group_send(&self, group: &str, events: &[&str]) {
        let mut args = vec!["send", group];
        args.extend_from_slice(events);
        let out = self.tool(&args).output().await.unwrap();
        assert!(
            out.status.success(),
            "layer_tool send failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("sent {}", events.len())
        );
    }

    /// Django code listening on `group`; returns once its `group_add` is done.
    pub async fn listen(&self, group: &str, count: usize) -> Listener {
        let mut child = self
            .tool(&["listen", group, &count.to_string(), "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("layer_tool listen did not start")
            .unwrap();
        assert_eq!(
            first.as_deref(),
            Some("ready"),
            "layer_tool listen: {first:?}"
        );
        Listener {
            _child: child,
            lines,
        }
    }
}

pub struct Listener {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Listener {
    /// The next event Django code received, as a JSON value.
    pub async fn next(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("no event reached the Python listener")
            .unwrap()
            .expect("listener ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }
}

/// Reads `n` frames; panics on anything unexpected.
pub async fn frames(ws: &mut Ws, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ws.recv().await);
    }
    out
}

/// channels_redis' own answer (`channels_redis.utils._consistent_hash`, run by the venv's
/// Python): the host index of each name on a ring of `ring_size` hosts.
pub fn python_consistent_hash(names: &[String], ring_size: usize) -> Vec<usize> {
    let out = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(
            "import json, sys\nfrom channels_redis.utils import _consistent_hash\n\
             names, n = json.loads(sys.argv[1]), int(sys.argv[2])\n\
             print(json.dumps([_consistent_hash(name, n) for name in names]))",
        )
        .arg(serde_json::to_string(names).unwrap())
        .arg(ring_size.to_string())
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
