//! The Docker test's tools (tests/docker.rs): the engine and base images (the scripts beside this
//! file), `docker` and `docker-compose` commands whose failures fail the test with their output,
//! guards that remove the test's containers and Compose project even when an assertion fails
//! (the images stay, as cache), and the phase timings the test prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Debian's docker.io client, matched to its daemon, which drives the daemon's built-in BuildKit
/// with `DOCKER_BUILDKIT=1`. A newer client earlier on PATH (this machine has one in
/// /usr/local/bin) needs a buildx plugin for BuildKit, which Debian does not package.
pub const DOCKER: &str = "/usr/bin/docker";

/// Labels every image the test builds, so the ones its later runs leave untagged can be pruned.
pub const LABEL: &str = "whisper-docker-test=1";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/docker").join(name)
}

fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// Runs a command to completion, capturing its output.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(cmd)))
}

/// Runs a command that must succeed; returns its stdout. A failure fails the test with the
/// command and both outputs.
pub fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

pub fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new(DOCKER);
    cmd.args(args);
    cmd
}

/// tests/docker/engine.sh: Debian's docker.io, debootstrap and docker-compose installed, a
/// daemon answering (started when none does). Its failure fails the test: nothing is skipped.
pub fn engine() {
    ok(Command::new("bash").arg(script("engine.sh")));
    ok(&mut docker(&["info", "--format", "{{.ServerVersion}}"]));
}

/// The base images tests/docker/base_images.sh made from Debian's packages (or found cached),
/// as build arguments: `BUILDER_IMAGE`, `RUNTIME_IMAGE`, `PYTHON_IMAGE`.
pub fn base_images() -> BTreeMap<String, String> {
    let out = ok(Command::new("bash").arg(script("base_images.sh")));
    let images: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for key in ["BUILDER_IMAGE", "RUNTIME_IMAGE", "PYTHON_IMAGE"] {
        assert!(
            images.contains_key(key),
            "base_images.sh printed no {key}: {out}"
        );
    }
    images
}

/// Keeps the disk bounded between runs, the images and the cache mounts staying: earlier runs'
/// images that these builds left untagged, and the build cache that no image holds (with the
/// vfs driver, each builder-stage snapshot is a full copy of the toolchain image, ~0.9 GB). The
/// cache mounts (target/, crates, pip) are another type of record and stay, so the next build
/// still compiles only what changed.
pub fn prune() {
    let label = format!("label={LABEL}");
    ok(&mut docker(&["image", "prune", "-f", "--filter", &label]));
    ok(&mut docker(&[
        "builder",
        "prune",
        "-f",
        "--filter",
        "type=regular",
    ]));
}

/// `docker image inspect --format FORMAT image`, trimmed.
pub fn inspect_image(image: &str, format: &str) -> String {
    ok(&mut docker(&[
        "image", "inspect", "--format", format, image,
    ]))
    .trim()
    .to_string()
}

/// A port nothing listens on now (the containers share the host's network).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A short random suffix for names that must not collide with another run's.
pub fn suffix() -> String {
    whisper::django::crypto::get_random_string(10, b"abcdefghijklmnopqrstuvwxyz0123456789")
}

/// Polls `check` every 500 ms until it returns `Some`, or fails the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({timeout:?}) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Containers (and named volumes) the test made, removed — containers with their anonymous
/// volumes — when this drops; while unwinding from a failure, the containers' logs are printed
/// first.
#[derive(Default)]
pub struct Containers {
    names: Vec<String>,
    volumes: Vec<String>,
}

impl Containers {
    /// `docker run -d --name NAME --network host ARGS…` (ARGS: options, image, command).
    pub fn start(&mut self, name: &str, args: &[&str]) {
        self.names.push(name.to_string());
        let mut cmd = docker(&["run", "-d", "--name", name, "--network", "host"]);
        ok(cmd.args(args));
    }

    /// A named volume, removed with the containers.
    pub fn volume(&mut self, name: &str) -> String {
        self.volumes.push(name.to_string());
        name.to_string()
    }

    /// The daemon's view of the container's HEALTHCHECK: starting, healthy or unhealthy.
    pub fn health(&self, name: &str) -> String {
        let format = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
        ok(&mut docker(&["inspect", "--format", format, name]))
            .trim()
            .to_string()
    }

    pub fn logs(&self, name: &str) -> String {
        let out = output(&mut docker(&["logs", name]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.names {
            if std::thread::panicking() {
                eprintln!("--- docker logs {name}\n{}", self.logs(name));
            }
            let _ = docker(&["rm", "-f", "-v", name]).output();
        }
        for volume in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", volume]).output();
        }
    }
}

/// `docker-compose -p PROJECT -f compose.yaml -f tests/docker/compose.test.yaml` with the
/// variables it interpolates; `down --volumes` when this drops (its one-shot containers, network
/// and the postgres-data volume `run` creates even with --no-deps).
pub struct Compose {
    project: String,
    env: BTreeMap<String, String>,
}

impl Compose {
    pub fn new(project: &str, env: BTreeMap<String, String>) -> Compose {
        Compose {
            project: project.to_string(),
            env,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        // Builds go through the docker CLI (BuildKit, as the Dockerfile needs), Debian's one.
        let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
        cmd.current_dir(repo())
            .env("PATH", path)
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .env("DOCKER_BUILDKIT", "1")
            .env("BUILDKIT_PROGRESS", "plain")
            .envs(&self.env)
            .args(["--ansi", "never", "-p", &self.project])
            // Not the developer's .env beside compose.yaml: only what the test sets.
            .args(["--env-file", "tests/docker/compose.test.env"])
            .args(["-f", "compose.yaml", "-f", "tests/docker/compose.test.yaml"])
            .args(args);
        cmd
    }

    /// `run --rm --no-deps -T SERVICE ARGS…` (the postgres and redis services are the
    /// machine's own here); returns stdout.
    pub fn run(&self, extra_env: &[&str], service: &str, args: &[&str]) -> String {
        let mut cmd = self.cmd(&["run", "--rm", "--no-deps", "-T"]);
        for name in extra_env {
            cmd.args(["-e", name]);
        }
        ok(cmd.arg(service).args(args))
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["down", "--volumes", "--remove-orphans", "--timeout", "5"])
            .output();
    }
}

/// Phase timings, printed as they end (`cargo test -- --nocapture` shows them).
pub struct Phases {
    start: Instant,
    last: Instant,
}

impl Phases {
    pub fn new() -> Phases {
        let now = Instant::now();
        Phases {
            start: now,
            last: now,
        }
    }

    pub fn done(&mut self, phase: &str) {
        let now = Instant::now();
        eprintln!(
            "docker test: {phase}: {:.1} s (total {:.1} s)",
            (now - self.last).as_secs_f64(),
            (now - self.start).as_secs_f64()
        );
        self.last = now;
    }
}

/// Waits until some process subscribes to the Redis pub/sub `channel` (the machine's Redis):
/// a join's acknowledgement may come before its subscription is active.
pub async fn wait_subscribed(channel: &str) {
    wait_for(
        &format!("a subscriber of {channel}"),
        Duration::from_secs(10),
        || async move {
            (crate::common::redis_server::numsub("redis://127.0.0.1:6379/0", channel).await > 0)
                .then_some(())
        },
    )
    .await;
}
