//! Real-browser end-to-end test: two users in two headless Chromium contexts log in through the
//! real login form, join a room by clicking its pill and chat live through the real
//! `static/js/chat.js` (see `tests/e2e/chat.mjs` for every check).
//!
//! Needs Node.js (`node`, `npm`) and Debian's Chromium at `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`). `./manage test` installs Chromium and `tests/e2e/node_modules`; when either
//! is missing this test FAILS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use tokio::process::Command;

const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const E2E_TIMEOUT: Duration = Duration::from_secs(120);

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Runs a command to completion with a deadline; the child is killed if the deadline passes.
async fn run(mut cmd: Command, what: &str, deadline: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e} (is Node.js installed and on PATH?)"));
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what} did not finish within {} s", deadline.as_secs()),
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Node.js and Chromium must be there: CI installs them, so a missing one is a failure.
async fn check_prerequisites() {
    let mut node = Command::new("node");
    node.arg("--version");
    let output = run(node, "`node --version`", Duration::from_secs(30)).await;
    assert!(
        output.status.success(),
        "`node --version` failed — the browser test needs Node.js:\n{}",
        describe(&output)
    );
    let chromium = chromium_path();
    assert!(
        chromium.is_file(),
        "no Chromium at {} — the browser test needs it (apt-get install chromium, or set CHROMIUM_PATH)",
        chromium.display()
    );
}

/// `npm ci --prefix tests/e2e` when `node_modules` is missing (a fresh clone).
async fn ensure_node_modules() {
    let dir = e2e_dir();
    if dir.join("node_modules").join("playwright-core").is_dir() {
        return;
    }
    eprintln!("browser test: installing tests/e2e/node_modules (npm ci)");
    let mut npm = Command::new("npm");
    npm.arg("ci")
        .arg("--prefix")
        .arg(&dir)
        .arg("--no-audit")
        .arg("--no-fund")
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let output = run(npm, "`npm ci --prefix tests/e2e`", NPM_CI_TIMEOUT).await;
    assert!(
        output.status.success(),
        "`npm ci --prefix tests/e2e` failed:\n{}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_users_in_two_browsers_chat_live() {
    check_prerequisites().await;
    ensure_node_modules().await;

    let server = TestServer::start().await;
    server.create_user("alice", true).await;
    server.create_user("bob", false).await;
    let lobby = server.create_room("Lobby", false).await;
    let ops = server.create_room("Ops", true).await;

    let base = server.url("");
    let mut node = Command::new("node");
    node.arg(e2e_dir().join("chat.mjs"))
        .arg(&base)
        .arg("alice")
        .arg(common::PASSWORD)
        .arg("bob")
        .arg(common::PASSWORD)
        .arg(lobby.to_string())
        .arg(ops.to_string())
        .env("CHROMIUM_PATH", chromium_path())
        .current_dir(e2e_dir());
    let started = Instant::now();
    let output = run(node, "`node tests/e2e/chat.mjs`", E2E_TIMEOUT).await;
    let elapsed = started.elapsed();

    server.stop().await;

    assert!(
        output.status.success(),
        "the browser end-to-end test failed after {:.1} s:\n{}",
        elapsed.as_secs_f64(),
        describe(&output)
    );
    println!(
        "browser e2e passed in {:.1} s\n{}",
        elapsed.as_secs_f64(),
        String::from_utf8_lossy(&output.stdout)
    );
}
