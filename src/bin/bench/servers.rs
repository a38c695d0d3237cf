//! Target processes: starts one (Whisper's `runserver`, uvicorn or daphne on the compat app,
//! or the bare server), waits until it answers, reads its RSS from `/proc`, and stops it. Each
//! server is a direct child of the bench (no shell in between), so its pid is the one measured
//! and the only one killed.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::Target;
use crate::setup::{Run, log_path};

pub struct Server {
    pub target: Target,
    pub addr: SocketAddr,
    child: Child,
    log: std::path::PathBuf,
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `target` with the run's settings plus `extra` environment variables.
    pub async fn start(
        run: &Run,
        target: Target,
        extra: &[(&str, String)],
        tag: &str,
    ) -> anyhow::Result<Server> {
        let wrap: &[String] = if target == Target::Whisper {
            &run.whisper_wrap
        } else {
            &[]
        };
        Server::start_wrapped(run, target, extra, tag, wrap, Duration::from_secs(60)).await
    }

    /// `start` with `wrap` (a profiler command line) before the Whisper or bare server, and
    /// `ready` to answer in.
    pub async fn start_wrapped(
        run: &Run,
        target: Target,
        extra: &[(&str, String)],
        tag: &str,
        wrap: &[String],
        ready: Duration,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let venv = run.compat.join(".venv/bin");
        let mut cmd = match target {
            Target::Whisper => {
                let mut c = match wrap.split_first() {
                    Some((program, args)) => {
                        let mut c = Command::new(program);
                        c.args(args).arg(&run.whisper);
                        c
                    }
                    None => Command::new(&run.whisper),
                };
                c.arg("runserver")
                    .arg(addr.to_string())
                    .current_dir(&run.dir);
                c
            }
            Target::Uvicorn => {
                let mut c = Command::new(venv.join("uvicorn"));
                c.args([
                    "multichat.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                ])
                .arg(port.to_string())
                .args(["--log-level", "warning", "--no-access-log"])
                .current_dir(&run.compat);
                c
            }
            Target::Daphne => {
                let mut c = Command::new(venv.join("daphne"));
                c.args(["-b", "127.0.0.1", "-p"])
                    .arg(port.to_string())
                    .args(["-v", "0", "multichat.asgi:application"])
                    .current_dir(&run.compat);
                c
            }
            Target::Bare => {
                let mut c = match wrap.split_first() {
                    Some((program, args)) => {
                        let mut c = Command::new(program);
                        c.args(args).arg(&run.bench);
                        c
                    }
                    None => Command::new(&run.bench),
                };
                c.arg("serve-bare").arg(port.to_string());
                c
            }
        };
        cmd.envs(run.env());
        match target {
            Target::Uvicorn | Target::Daphne => {
                let backend = if target == Target::Uvicorn {
                    "pubsub"
                } else {
                    "core"
                };
                cmd.env("REDIS_URL", &run.redis_url)
                    .env("CHANNEL_LAYER_BACKEND", backend)
                    .env("CHANNEL_LAYER_PREFIX", format!("{}{}", run.prefix, tag))
                    .env("PYTHONUNBUFFERED", "1");
            }
            Target::Whisper | Target::Bare => {
                cmd.env_remove("REDIS_URL");
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // The bare server sends notices when Whisper is asked to (scenario 8).
        if target == Target::Bare
            && extra
                .iter()
                .any(|(k, v)| *k == "NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS" && v == "true")
        {
            cmd.arg("--notices");
        }
        let log = log_path(&run.dir, tag);
        let file = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", target.name()))?;
        let mut server = Server {
            target,
            addr,
            child,
            log,
        };
        server.wait_ready(ready).await?;
        Ok(server)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_ready(&mut self, ready: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + ready;
        let http = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}): {}",
                    self.target.name(),
                    self.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                if self.target == Target::Bare {
                    return Ok(());
                }
                let url = format!("{}/accounts/login/", self.base_url());
                if let Ok(resp) = http.get(&url).send().await
                    && resp.status().is_success()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within {} s: {}",
                    self.target.name(),
                    ready.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib_of(self.pid().context("server already exited")?)
    }

    /// Stops the process (our own child, by pid): SIGTERM, so a profiler around Whisper can
    /// write its output, then SIGKILL after 10 s; and reaps it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// CPU time a process has used so far (user + system, `/proc/<pid>/stat`), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .context("no ')' in /proc/<pid>/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/<pid>/stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / per_sec)
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// A target's `/healthz` body (Whisper: loss counters, open sockets).
pub async fn healthz(base_url: &str) -> anyhow::Result<serde_json::Value> {
    let body = crate::login::http_client()
        .get(format!("{base_url}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    Ok(body)
}
