//! One run's isolated world: a fresh directory with a throw-away SQLite database that Whisper
//! and the Python app share (migrated by `whisper migrate`), the bench users and rooms made with
//! Whisper's CLI, and a Redis prefix no other run uses (channel-layer keys and pub/sub channels).
//! Checks the prerequisites up front and fails — never skips — when one is missing.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::{Args, Sizes, Target};

/// The password of every bench user (hashed by Whisper at Django 5.2's 1,000,000 iterations).
pub const PASSWORD: &str = "bench-Password-1";

pub struct Run {
    pub dir: PathBuf,
    pub db_path: PathBuf,
    pub whisper: PathBuf,
    pub compat: PathBuf,
    pub bench: PathBuf,
    pub secret_key: String,
    pub redis_url: String,
    /// Unique per run: `REDIS_PREFIX` and `CHANNEL_LAYER_PREFIX` start with it.
    pub prefix: String,
    pub users: Vec<String>,
    pub rooms: Vec<i64>,
    /// Profiler command line put before the Whisper server (`--whisper-wrap`).
    pub whisper_wrap: Vec<String>,
}

impl Run {
    /// Checks prerequisites and builds the database, users and rooms.
    pub async fn prepare(args: &Args, sizes: &Sizes, targets: &[Target]) -> anyhow::Result<Run> {
        let whisper = std::path::absolute(&args.whisper)?;
        if !whisper.is_file() {
            bail!(
                "no Whisper binary at {} (cargo build --release, or --whisper PATH)",
                whisper.display()
            );
        }
        let compat = std::path::absolute(&args.compat)?;
        if targets.iter().any(|t| t.is_python()) {
            for tool in ["uvicorn", "daphne"] {
                let path = compat.join(".venv/bin").join(tool);
                if !path.is_file() {
                    bail!("{} is missing: run compat/bootstrap.sh 5.2", path.display());
                }
            }
        }
        redis_ping(&args.redis_url).await.with_context(|| {
            format!(
                "Redis at {} is required (channel layers, scenario 6)",
                args.redis_url
            )
        })?;

        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let tag = format!("{}-{}", std::process::id(), nanos % 1_000_000_000);
        let dir = std::env::temp_dir().join(format!("whisper-bench-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let run = Run {
            db_path: dir.join("bench.sqlite3"),
            dir,
            whisper,
            compat,
            bench: std::env::current_exe()?,
            secret_key: format!("bench-secret-{tag}-0123456789abcdefghijklmnopqrstuvwxyz"),
            redis_url: args.redis_url.clone(),
            prefix: format!("whisper-bench-{tag}-"),
            users: (0..sizes.users.max(1))
                .map(|i| format!("bench{i}"))
                .collect(),
            rooms: Vec::new(),
            whisper_wrap: args
                .whisper_wrap
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        };
        run.populate(sizes).await
    }

    async fn populate(mut self, sizes: &Sizes) -> anyhow::Result<Run> {
        self.manage(&["migrate"]).await?;
        // Two at a time: each hashes a password at 1,000,000 PBKDF2 iterations.
        let this = &self;
        for pair in this.users.chunks(2) {
            let jobs = pair.iter().map(|name| async move {
                this.manage(&["createuser", "--noinput", "--username", name])
                    .await
            });
            for result in futures_util::future::join_all(jobs).await {
                result?;
            }
        }
        // Scenario 1–7's rooms, scenario 8's (`member_rooms`, 0 unless it runs) and scenario 9's
        // two; made 8 at a time.
        let count = sizes.rooms.max(sizes.member_rooms).max(2);
        let titles: Vec<String> = (0..count).map(|i| format!("Bench room {i}")).collect();
        for chunk in titles.chunks(8) {
            let this = &self;
            let jobs = chunk
                .iter()
                .map(|title| async move { this.manage(&["createroom", title.as_str()]).await });
            let outs = futures_util::future::join_all(jobs).await;
            let mut ids = Vec::new();
            for (title, out) in chunk.iter().zip(outs) {
                let out = out?;
                let id = out
                    .split_whitespace()
                    .filter_map(|w| w.parse::<i64>().ok())
                    .next_back()
                    .with_context(|| format!("createroom {title:?} printed no id: {out:?}"))?;
                ids.push(id);
            }
            self.rooms.extend(ids);
        }
        Ok(self)
    }

    /// The settings both Whisper and the compat app read (README settings table).
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs = [
            (
                "DATABASE_URL",
                format!("sqlite:///{}", self.db_path.display()),
            ),
            ("SECRET_KEY", self.secret_key.clone()),
            ("BASE_DIR", self.dir.display().to_string()),
            ("ALLOWED_HOSTS", "127.0.0.1,localhost".to_string()),
            ("DEBUG", "false".to_string()),
            ("DJANGO_VERSION", "5.2".to_string()),
            // 10,000 joins would otherwise broadcast ~50 million enter notices.
            ("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", "false".to_string()),
            ("RUST_LOG", "warn".to_string()),
            ("DJANGO_SUPERUSER_PASSWORD", PASSWORD.to_string()),
            // The load comes from one address, 10 users hold 10,000 sockets and senders go far
            // faster than a person: Whisper's per-socket rate, per-address and per-user limits
            // (SECURITY.md) are lifted, so the bench measures delivery, not the limits. Python
            // has no such limits.
            ("WS_MESSAGES_PER_SECOND", "10000000".to_string()),
            ("WS_MESSAGES_BURST", "10000000".to_string()),
            ("WS_BYTES_PER_SECOND", "10000000000".to_string()),
            ("HTTP_MAX_CONNECTIONS", "1000000".to_string()),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1000000".to_string()),
            ("WS_HANDSHAKES_PER_MINUTE", "100000000".to_string()),
            ("WS_MAX_SOCKETS_PER_USER", "1000000".to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Runs a Whisper management command on the run's database; returns its stdout.
    async fn manage(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.whisper)
            .args(args)
            .envs(self.env())
            .current_dir(&self.dir)
            .output()
            .await
            .with_context(|| format!("running {}", self.whisper.display()))?;
        if !out.status.success() {
            bail!(
                "whisper {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Removes the run directory and the run's Redis keys.
    pub async fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = redis_delete_prefix(&self.redis_url, &self.prefix).await;
    }
}

async fn redis_ping(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("timed out")??;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(())
}

/// Deletes what the channel layers left under the run's prefix (group sets live a day).
async fn redis_delete_prefix(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// A path for a server's log inside the run directory.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}
