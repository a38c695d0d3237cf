//! Real-browser tests in headless Chromium:
//! - end to end: two users in two browser contexts log in through the real login form, join a
//!   room by clicking its pill and chat live through the real `static/js/chat.js` (every check
//!   in `tests/e2e/chat.mjs`);
//! - layout: the login, index, chat and 404 pages at 1280×800 and at a phone's 375×667 are
//!   screenshotted, nothing overflows, and the chat is usable on the phone
//!   (`tests/e2e/layout.mjs`).
//!
//! Screenshots are always written to `target/browser-artifacts/<test>/` (CI keeps the
//! workspace); a failing test prints their paths.
//!
//! Needs Node.js (`node`, `npm`) and Debian's Chromium at `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`). `./manage test` installs Chromium and `tests/e2e/node_modules`; when either
//! is missing these tests FAIL.

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

/// `target/browser-artifacts/<name>/`, emptied: where a script's screenshots go.
fn artifacts_dir(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp");
    let dir = target.join("browser-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The screenshots in `dir`, one path a line.
fn list_screenshots(dir: &Path) -> String {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .map(|p| format!("  {}", p.display()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        format!("  (none in {})", dir.display())
    } else {
        files.join("\n")
    }
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
    let artifacts = artifacts_dir("chat");
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
        .env("E2E_ARTIFACTS", &artifacts)
        .current_dir(e2e_dir());
    let started = Instant::now();
    let output = run(node, "`node tests/e2e/chat.mjs`", E2E_TIMEOUT).await;
    let elapsed = started.elapsed();

    server.stop().await;

    assert!(
        output.status.success(),
        "the browser end-to-end test failed after {:.1} s:\n{}\nscreenshots:\n{}",
        elapsed.as_secs_f64(),
        describe(&output),
        list_screenshots(&artifacts)
    );
    println!(
        "browser e2e passed in {:.1} s\n{}",
        elapsed.as_secs_f64(),
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Issue 11: pages that look finished. The login page, the room index, the chat with a
/// message sent and the 404 page of a missing static file, at 1280×800 and at a phone's
/// 375×667: no horizontal overflow, and on the phone the message input, the Send button, the
/// room pills and Logout are inside the viewport, tappable and uncovered, and a message typed
/// there is sent and shown. Screenshots: `target/browser-artifacts/layout/`.
#[tokio::test(flavor = "multi_thread")]
async fn pages_fit_desktop_and_phone_widths() {
    check_prerequisites().await;
    ensure_node_modules().await;

    let server = TestServer::start().await;
    let user = "rosalind";
    server.create_user(user, false).await;
    server.create_room("Lobby", false).await;
    server.create_room("Book club", false).await;
    server.create_room("Ops", true).await;
    let room = server
        .create_room("Weekend plans, trips and other long room names", false)
        .await;

    let artifacts = artifacts_dir("layout");
    let mut node = Command::new("node");
    node.arg(e2e_dir().join("layout.mjs"))
        .arg(server.url(""))
        .arg(user)
        .arg(common::PASSWORD)
        .arg(room.to_string())
        .env("CHROMIUM_PATH", chromium_path())
        .env("E2E_ARTIFACTS", &artifacts)
        .current_dir(e2e_dir());
    let started = Instant::now();
    let output = run(node, "`node tests/e2e/layout.mjs`", E2E_TIMEOUT).await;
    let elapsed = started.elapsed();
    server.stop().await;

    assert!(
        output.status.success(),
        "the layout test failed after {:.1} s:\n{}\nscreenshots (kept in the workspace):\n{}",
        elapsed.as_secs_f64(),
        describe(&output),
        list_screenshots(&artifacts)
    );
    // Every page at both widths.
    for page in ["login", "index", "chat", "404"] {
        for width in ["desktop", "phone"] {
            let shot = artifacts.join(format!("{page}-{width}.png"));
            assert!(shot.is_file(), "no screenshot {}", shot.display());
        }
    }
    println!(
        "layout test passed in {:.1} s\n{}\nscreenshots:\n{}",
        elapsed.as_secs_f64(),
        String::from_utf8_lossy(&output.stdout),
        list_screenshots(&artifacts)
    );
}
