//! Docker, as the seed installs it: the Dockerfile, compose.yaml and compat/Dockerfile, built
//! and run for real on this machine against its PostgreSQL (a fresh database, dropped after)
//! and Redis.
//!
//! No image can be pulled here, so the base images are made from Debian's packages with
//! debootstrap and `docker import` (tests/docker/base_images.sh) and passed as the build
//! arguments; the engine is Debian's docker.io, started by tests/docker/engine.sh when none runs
//! (`--iptables=false --bridge=none --storage-driver=vfs`), so every container uses the host's
//! network. Either failing fails the test: it never skips.
//!
//! What it checks, in order:
//! 1. `docker-compose config` accepts compose.yaml (the four services, the public base images
//!    as build defaults) and refuses it without SECRET_KEY;
//! 2. `docker build` of the Dockerfile with the made base images: a small image running as
//!    uid 10001, entrypoint `whisper`, default `runserver 0.0.0.0:8000`, a HEALTHCHECK;
//! 3. `docker-compose build` of the whisper and admin services (compose.test.yaml on top);
//! 4. as the seed's steps: `run --rm whisper migrate`, `run --rm whisper createsuperuser`
//!    (`--noinput`, DJANGO_SUPERUSER_PASSWORD) through Compose, then `createuser` and
//!    `createroom` with `docker run`; with no DATABASE_URL, `migrate` makes SQLite in a volume
//!    on /app/data;
//! 5. the server in a container: /healthz (database and Redis up), a real login through the form
//!    (CSRF cookie and token), the room list, and a chat over /chat/stream/ between two users;
//! 6. the admin in a container: Django's `migrate --check` passes on what Whisper migrated, a
//!    Django login, /admin/ and the room in its changelist, and Django's session opens
//!    Whisper's WebSocket;
//! 7. the daemon reports the container healthy; the same probe fails once the database is gone;
//!    `docker stop` ends the server cleanly (exit status 0).
//!
//! Time and cache: the images stay in Docker's store, the debootstrap tarballs in
//! /var/cache/whisper-docker/, and the Rust build's target/ and crates in BuildKit cache mounts,
//! so a warm run compiles only what changed. The phases' times are printed (`--nocapture`).

#[path = "common/mod.rs"]
mod common;
#[path = "docker/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use common::login::browser_login;
use common::pg::{Locale, PgDatabase};
use common::{PASSWORD, join, send, ws_to};
use harness::{Compose, Containers, Phases, docker, inspect_image, ok, output, suffix};

const SECRET: &str = "docker-test-secret-key-not-for-production";
const IMAGE: &str = "whisper-test/whisper:latest";
const COMPOSE_IMAGE: &str = "whisper-test/whisper:compose";
const ADMIN_IMAGE: &str = "whisper-test/admin:latest";
const ROOM: &str = "Docker room";

/// A plain (cookie-less, redirect-less) client; cookies are passed by hand.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str, session: Option<&str>) -> (u16, String, String) {
    let mut request = client().get(url);
    if let Some(key) = session {
        request = request.header(reqwest::header::COOKIE, format!("sessionid={key}"));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

/// compose.yaml as docker-compose 1.29 reads it.
fn validate_compose(env: &BTreeMap<String, String>) {
    let compose = |with_key: bool| {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.current_dir(harness::repo())
            .env_remove("SECRET_KEY")
            .args([
                "--env-file",
                "tests/docker/compose.test.env",
                "-f",
                "compose.yaml",
            ])
            .arg("config");
        if with_key {
            cmd.env("SECRET_KEY", &env["SECRET_KEY"]);
        }
        cmd
    };
    let config = ok(&mut compose(true));
    let services = ok(compose(true).arg("--services"));
    let mut services: Vec<&str> = services.lines().collect();
    services.sort();
    assert_eq!(services, ["admin", "postgres", "redis", "whisper"]);
    for expected in [
        "BUILDER_IMAGE: rust:1.95-slim-bookworm",
        "RUNTIME_IMAGE: debian:bookworm-slim",
        "PYTHON_IMAGE: python:3.11-slim-bookworm",
        "DATABASE_URL: postgres://whisper:whisper@postgres:5432/whisper",
        "REDIS_URL: redis://redis:6379/0",
        "condition: service_healthy",
    ] {
        assert!(config.contains(expected), "no {expected:?} in:\n{config}");
    }
    let refused = output(&mut compose(false));
    assert!(
        !refused.status.success(),
        "compose.yaml accepted without SECRET_KEY"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("set SECRET_KEY"), "{stderr}");
}

/// `docker build` of the Dockerfile on the made base images, and what the image promises.
fn build_image(bases: &BTreeMap<String, String>) {
    let builder = format!("BUILDER_IMAGE={}", bases["BUILDER_IMAGE"]);
    let runtime = format!("RUNTIME_IMAGE={}", bases["RUNTIME_IMAGE"]);
    let mut cmd = docker(&["build", "--network", "host", "--progress", "plain"]);
    cmd.env("DOCKER_BUILDKIT", "1")
        .current_dir(harness::repo())
        .args(["--build-arg", &builder, "--build-arg", &runtime])
        .args(["--label", harness::LABEL, "-t", IMAGE, "."]);
    ok(&mut cmd);
    assert_eq!(inspect_image(IMAGE, "{{.Config.User}}"), "10001:10001");
    assert_eq!(
        inspect_image(IMAGE, "{{json .Config.Entrypoint}}"),
        r#"["whisper"]"#
    );
    assert_eq!(
        inspect_image(IMAGE, "{{json .Config.Cmd}}"),
        r#"["runserver","0.0.0.0:8000"]"#
    );
    let size: u64 = inspect_image(IMAGE, "{{.Size}}").parse().unwrap();
    assert!(size < 200 << 20, "the image is {} MiB", size >> 20);
    eprintln!("docker test: image {IMAGE}: {} MiB", size >> 20);
}

/// The image's HEALTHCHECK command (after `CMD`), to run it by hand with `docker exec`.
fn healthcheck_command() -> Vec<String> {
    let test = inspect_image(IMAGE, "{{json .Config.Healthcheck.Test}}");
    let test: Vec<String> = serde_json::from_str(&test).unwrap();
    assert_eq!(test.first().map(String::as_str), Some("CMD"), "{test:?}");
    assert!(test.iter().any(|a| a.contains("/healthz")), "{test:?}");
    test[1..].to_vec()
}

/// Runs the HEALTHCHECK command inside the container; whether it passed.
fn probe(name: &str, port: u16) -> bool {
    let mut cmd = docker(&["exec", "-e", &format!("HEALTHCHECK_PORT={port}"), name]);
    output(cmd.args(healthcheck_command())).status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_install_as_the_seed_does_then_login_and_chat() {
    let mut phases = Phases::new();
    harness::engine();
    phases.done("engine (docker.io, debootstrap, docker-compose, dockerd)");
    let bases = harness::base_images();
    phases.done("base images (debootstrap + docker import, or cached)");

    let run = suffix();
    let db = PgDatabase::create("docker", Locale::ServerDefault).await;
    let database_url = db.url();
    let mut env: BTreeMap<String, String> = bases.clone();
    env.insert("SECRET_KEY".into(), SECRET.into());
    env.insert("WHISPER_IMAGE".into(), COMPOSE_IMAGE.into());
    env.insert("ADMIN_IMAGE".into(), ADMIN_IMAGE.into());
    env.insert("TEST_DATABASE_URL".into(), database_url.clone());
    env.insert("DJANGO_SUPERUSER_PASSWORD".into(), PASSWORD.into());
    validate_compose(&env);
    phases.done("compose.yaml validated");

    build_image(&bases);
    phases.done("docker build");
    let compose = Compose::new(&format!("whisper-test-{run}"), env);
    ok(&mut compose.cmd(&["build", "whisper", "admin"]));
    phases.done("docker-compose build whisper admin");
    harness::prune();
    phases.done("prune");

    // The seed's steps, through Compose.
    let migrated = compose.run(&[], "whisper", &["migrate"]);
    for line in [
        "Applying auth.0001_initial... OK",
        "Applying chat.0001_initial... OK",
    ] {
        assert!(migrated.contains(line), "no {line:?} in:\n{migrated}");
    }
    let created = compose.run(
        &["DJANGO_SUPERUSER_PASSWORD"],
        "whisper",
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "dana",
            "--email",
            "dana@example.com",
        ],
    );
    assert!(
        created.contains("Superuser created successfully."),
        "{created}"
    );

    // The other management commands, with plain `docker run`.
    let manage = |args: &[&str]| {
        let db_env = format!("DATABASE_URL={database_url}");
        let pw_env = format!("DJANGO_SUPERUSER_PASSWORD={PASSWORD}");
        let mut cmd = docker(&[
            "run",
            "--rm",
            "--network",
            "host",
            "-e",
            &db_env,
            "-e",
            &pw_env,
        ]);
        ok(cmd.arg(IMAGE).args(args))
    };
    let created = manage(&["createuser", "--noinput", "--username", "erin"]);
    assert!(created.contains("User created successfully."), "{created}");
    let room: i64 = manage(&["createroom", ROOM]).trim().parse().unwrap();
    // Without DATABASE_URL: SQLite in /app/data, a volume the unprivileged user can write.
    let mut containers = Containers::default();
    let data = containers.volume(&format!("whisper-test-data-{run}"));
    let mount = format!("{data}:/app/data");
    let mut cmd = docker(&["run", "--rm", "-v", &mount, "--entrypoint", "bash", IMAGE]);
    let migrated = ok(cmd.args(["-c", "whisper migrate && ls /app/data"]));
    assert!(
        migrated.contains("Applying sessions.0001_initial... OK"),
        "{migrated}"
    );
    assert!(migrated.lines().any(|f| f == "db.sqlite3"), "{migrated}");
    phases.done("migrate, createsuperuser, createuser, createroom; SQLite in a volume");

    // The server, as compose.yaml runs it but on a free port of the host's network.
    let port = harness::free_port();
    let server = format!("whisper-test-{run}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let base = format!("http://{addr}");
    containers.start(
        &server,
        &[
            "-e",
            &format!("DATABASE_URL={database_url}"),
            "-e",
            &format!("SECRET_KEY={SECRET}"),
            "-e",
            "REDIS_URL=redis://127.0.0.1:6379/0",
            "-e",
            &format!("REDIS_PREFIX=whisper-docker-{run}:"),
            "-e",
            &format!("HEALTHCHECK_PORT={port}"),
            IMAGE,
            "runserver",
            &addr.to_string(),
        ],
    );
    let health = harness::wait_for("the server's /healthz", Duration::from_secs(30), || async {
        let response = reqwest::get(format!("{base}/healthz")).await.ok()?;
        response.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["broker"], "redis", "{health}");
    assert_eq!(health["redis"], "ok", "{health}");
    let uid = ok(&mut docker(&["exec", &server, "id", "-u"]));
    assert_eq!(uid.trim(), "10001");

    // A login as a browser does it, then the room list.
    let (status, location, _) = get(&format!("{base}/"), None).await;
    assert_eq!(
        (status, location.as_str()),
        (302, "/accounts/login/?next=/")
    );
    let dana = browser_login(&base, "dana", PASSWORD)
        .await
        .expect("dana logs in through the form");
    let erin = browser_login(&base, "erin", PASSWORD)
        .await
        .expect("erin logs in through the form");
    let (status, _, page) = get(&format!("{base}/"), Some(&dana)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(ROOM), "the room list lacks {ROOM:?}:\n{page}");

    // A chat over the WebSocket, fanned out through Redis (room ids as the official client
    // sends them: the first join of a room gets no enter notice of its own).
    let r = room.to_string();
    let joined = format!(r#"{{"join": "{room}", "title": "{ROOM}"}}"#);
    let entered = |who: &str| format!(r#"{{"msg_type": 4, "room": {room}, "username": "{who}"}}"#);
    let mut erin_ws = ws_to(addr, &erin).await;
    assert_eq!(erin_ws.call(&join(&r)).await, joined);
    harness::wait_subscribed(&format!("whisper-docker-{run}:room-{room}")).await;
    let mut dana_ws = ws_to(addr, &dana).await;
    assert_eq!(dana_ws.call(&join(&r)).await, joined);
    assert_eq!(erin_ws.recv().await, entered("dana"));
    dana_ws.send(&send(&r, r#""hello from a container""#)).await;
    let message = format!(
        r#"{{"msg_type": 0, "room": {room}, "username": "dana", "message": "hello from a container"}}"#
    );
    assert_eq!(dana_ws.recv().await, message);
    assert_eq!(erin_ws.recv().await, message);
    phases.done("server: login, room list, chat");

    // The Django admin (compose.yaml's admin service) on the same database.
    let admin_port = harness::free_port();
    let admin = format!("whisper-test-admin-{run}");
    let admin_base = format!("http://127.0.0.1:{admin_port}");
    containers.start(
        &admin,
        &[
            "-e",
            &format!("DATABASE_URL={database_url}"),
            "-e",
            &format!("SECRET_KEY={SECRET}"),
            ADMIN_IMAGE,
            "python",
            "manage.py",
            "runserver",
            &format!("127.0.0.1:{admin_port}"),
            "--noreload",
            "--insecure",
        ],
    );
    let login_url = format!("{admin_base}/accounts/login/");
    harness::wait_for(
        "the admin's login page",
        Duration::from_secs(60),
        || async {
            let response = reqwest::get(&login_url).await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    // Django itself finds every migration applied by Whisper's migrate.
    let mut cmd = docker(&["exec", &admin, "python", "manage.py", "migrate", "--check"]);
    ok(&mut cmd);
    let django = browser_login(&admin_base, "dana", PASSWORD)
        .await
        .expect("dana logs in to Django");
    let (status, _, page) = get(&format!("{admin_base}/admin/"), Some(&django)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Site administration"), "{page}");
    let (status, _, page) = get(&format!("{admin_base}/admin/chat/room/"), Some(&django)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(ROOM),
        "the admin's room list lacks {ROOM:?}:\n{page}"
    );
    // Django's session is Whisper's session.
    let mut django_ws = ws_to(addr, &django).await;
    assert_eq!(django_ws.call(&join(&r)).await, joined);
    assert_eq!(erin_ws.recv().await, entered("dana"));
    for ws in [dana_ws, erin_ws, django_ws] {
        ws.close(1000).await;
    }
    phases.done("admin: Django login, /admin/, Django's session on Whisper");

    // The daemon runs the HEALTHCHECK itself (first after its 10 s interval).
    harness::wait_for("a healthy container", Duration::from_secs(60), || async {
        let status = containers.health(&server);
        assert_ne!(status, "unhealthy", "{}", containers.logs(&server));
        (status == "healthy").then_some(())
    })
    .await;
    assert!(
        probe(&server, port),
        "the HEALTHCHECK command fails by hand"
    );
    assert!(
        !probe(&server, harness::free_port()),
        "the probe passes on a closed port"
    );
    // With the database gone /healthz answers 503, and the probe fails.
    drop(db);
    harness::wait_for(
        "the probe to fail without a database",
        Duration::from_secs(20),
        || async { (!probe(&server, port)).then_some(()) },
    )
    .await;
    phases.done("HEALTHCHECK healthy, then failing without the database");

    ok(&mut docker(&["stop", "--time", "15", &server]));
    let code = ok(&mut docker(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &server,
    ]));
    assert_eq!(code.trim(), "0", "{}", containers.logs(&server));
    drop(containers);
    drop(compose);
    phases.done("stop and clean-up");
}
