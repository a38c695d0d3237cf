//! The `./manage` commands, run as the real binary over an SQLite file in a temp dir
//! (`custom_user`: the user commands on a custom `AUTH_USER_MODEL`).

mod custom_user;
mod logs;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use sqlx::Connection;
use whisper::django::hashers::{DjangoVersion, HasherConfig, check_password};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary with a clean environment: BASE_DIR, DATABASE_URL (the temp dir's file),
/// SECRET_KEY, plus `vars`; stdin from `input` (not a terminal).
fn manage(dir: &Path, args: &[&str], vars: &[(&str, &str)], input: &str) -> Run {
    let db = format!("sqlite:///{}", dir.join("db.sqlite3").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whisper"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BASE_DIR", dir)
        .env("DATABASE_URL", db)
        .env("SECRET_KEY", "cli-test-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the whisper binary");
    let mut stdin = child.stdin.take().unwrap();
    // The command may exit before reading everything.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap().into()
}

fn migrated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = manage(dir.path(), &["migrate"], &[], "");
    assert_eq!(run.code, 0, "{run:?}");
    dir
}

struct UserRow {
    password: String,
    is_staff: bool,
    is_superuser: bool,
    is_active: bool,
    email: String,
    last_login: Option<String>,
}

async fn user_row(dir: &Path, username: &str) -> Option<UserRow> {
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let row: Option<(String, bool, bool, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT password, is_staff, is_superuser, is_active, email, last_login \
         FROM auth_user WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(&mut conn)
    .await
    .unwrap();
    row.map(
        |(password, is_staff, is_superuser, is_active, email, last_login)| UserRow {
            password,
            is_staff,
            is_superuser,
            is_active,
            email,
            last_login,
        },
    )
}

fn assert_django_hash(encoded: &str, password: &str) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(parts.len(), 4, "{encoded}");
    assert_eq!(parts[0], "pbkdf2_sha256");
    assert_eq!(parts[1], "1000000");
    assert_eq!(parts[2].len(), 22, "salt of {encoded}");
    assert!(parts[2].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(parts[3].len(), 44, "base64 sha256 of {encoded}");
    let cfg = HasherConfig::new(DjangoVersion::V5_2);
    assert!(
        check_password(password, encoded, &cfg).0,
        "hash does not verify"
    );
    assert!(!check_password("wrong", encoded, &cfg).0);
}

#[test]
fn migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = manage(dir.path(), &["migrate"], &[], "");
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.starts_with(
        "Operations to perform:\n  Apply all migrations: admin, auth, chat, contenttypes, \
         sessions\nRunning migrations:\n  Applying contenttypes.0001_initial... OK\n"
    ));
    assert_eq!(first.stdout.matches("... OK").count(), 19, "{first:?}");
    assert!(
        first
            .stdout
            .ends_with("  Applying sessions.0001_initial... OK\n")
    );
    assert!(dir.path().join("db.sqlite3").exists());

    let second = manage(dir.path(), &["migrate"], &[], "");
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second
            .stdout
            .contains("Running migrations:\n  No migrations to apply.\n")
    );

    let check = manage(dir.path(), &["migrate", "--check"], &[], "");
    assert_eq!(check.code, 0, "{check:?}");
}

#[test]
fn migrate_check_reports_unapplied() {
    let dir = tempfile::tempdir().unwrap();
    let run = manage(dir.path(), &["migrate", "--check"], &[], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        !dir.path().join("db.sqlite3").exists(),
        "--check must not create the file"
    );
}

#[tokio::test]
async fn createsuperuser_noinput() {
    let dir = migrated();
    let run = manage(
        dir.path(),
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "Admin@EXAMPLE.com",
        ],
        &[("DJANGO_SUPERUSER_PASSWORD", "s3cret pass")],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "Superuser created successfully.\n");
    let row = user_row(dir.path(), "admin").await.expect("row");
    assert!(row.is_staff && row.is_superuser && row.is_active);
    assert_eq!(row.email, "Admin@example.com");
    assert_eq!(row.last_login, None);
    assert_django_hash(&row.password, "s3cret pass");

    // Duplicate username.
    let dup = manage(
        dir.path(),
        &["createsuperuser", "--noinput", "--username", "admin"],
        &[("DJANGO_SUPERUSER_PASSWORD", "x")],
        "",
    );
    assert_eq!(dup.code, 1, "{dup:?}");
    assert_eq!(
        dup.stderr,
        "CommandError: Error: That username is already taken.\n"
    );
    assert_eq!(dup.stdout, "");
}

#[tokio::test]
async fn createsuperuser_noinput_errors_and_unusable_password() {
    let dir = migrated();
    let run = manage(dir.path(), &["createsuperuser", "--noinput"], &[], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "CommandError: You must use --username with --noinput.\n"
    );

    let bad = manage(
        dir.path(),
        &["createsuperuser", "--noinput", "--username", "bad name"],
        &[],
        "",
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("Enter a valid username."), "{bad:?}");

    // No DJANGO_SUPERUSER_PASSWORD: an unusable password, as Django does.
    let run = manage(
        dir.path(),
        &["createsuperuser", "--noinput", "--username", "nopass"],
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let row = user_row(dir.path(), "nopass").await.unwrap();
    assert!(
        row.password.starts_with('!') && row.password.len() == 41,
        "{}",
        row.password
    );

    // The username may come from the environment too.
    let run = manage(
        dir.path(),
        &["createsuperuser", "--noinput"],
        &[("DJANGO_SUPERUSER_USERNAME", "envuser")],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(user_row(dir.path(), "envuser").await.is_some());

    // Interactive mode without a terminal is skipped, like Django.
    let run = manage(dir.path(), &["createsuperuser"], &[], "someone\n");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("not running in a TTY"), "{run:?}");
    assert!(user_row(dir.path(), "someone").await.is_none());
}

#[tokio::test]
async fn createuser_makes_a_plain_user() {
    let dir = migrated();
    let run = manage(
        dir.path(),
        &["createuser", "--noinput", "--username", "carol"],
        &[("DJANGO_SUPERUSER_PASSWORD", "pw-carol")],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "User created successfully.\n");
    let row = user_row(dir.path(), "carol").await.unwrap();
    assert!(!row.is_staff && !row.is_superuser && row.is_active);
    assert_eq!(row.email, "");
    assert_django_hash(&row.password, "pw-carol");
}

#[test]
fn createroom_prints_the_id() {
    let dir = migrated();
    let first = manage(dir.path(), &["createroom", "Lobby"], &[], "");
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout, "1\n");
    let second = manage(
        dir.path(),
        &["createroom", "Staff room", "--staff-only"],
        &[],
        "",
    );
    assert_eq!(second.stdout, "2\n", "{second:?}");
    let blank = manage(dir.path(), &["createroom", "   "], &[], "");
    assert_eq!(blank.code, 1, "{blank:?}");
    assert!(blank.stderr.starts_with("CommandError: "), "{blank:?}");
}

#[tokio::test]
async fn changepassword_from_stdin() {
    let dir = migrated();
    let run = manage(
        dir.path(),
        &["createuser", "--noinput", "--username", "dave"],
        &[("DJANGO_SUPERUSER_PASSWORD", "old password")],
        "",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let before = user_row(dir.path(), "dave").await.unwrap();

    // One mismatch, then a match.
    let run = manage(
        dir.path(),
        &["changepassword", "dave"],
        &[],
        "first\nsecond\nnew password\nnew password\n",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "Changing password for user 'dave'\nPasswords do not match. Please try again.\n\
         Password changed successfully for user 'dave'\n"
    );
    let after = user_row(dir.path(), "dave").await.unwrap();
    assert_django_hash(&after.password, "new password");
    assert_eq!(
        (
            after.email.as_str(),
            after.is_staff,
            after.last_login.as_deref()
        ),
        (
            before.email.as_str(),
            before.is_staff,
            before.last_login.as_deref()
        )
    );

    // Three mismatches abort; the password is unchanged.
    let run = manage(
        dir.path(),
        &["changepassword", "dave"],
        &[],
        "a\nb\nc\nd\ne\nf\n",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("CommandError: Aborting password change for user 'dave' after 3 attempts"),
        "{run:?}"
    );
    assert_eq!(
        user_row(dir.path(), "dave").await.unwrap().password,
        after.password
    );

    // Unknown user; default user from the OS.
    let run = manage(dir.path(), &["changepassword", "nobody"], &[], "x\nx\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "CommandError: user 'nobody' does not exist\n");
    let run = manage(
        dir.path(),
        &["changepassword"],
        &[("USER", "dave")],
        "third one\nthird one\n",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_django_hash(
        &user_row(dir.path(), "dave").await.unwrap().password,
        "third one",
    );
}

#[test]
fn check_ok_and_broken() {
    let dir = migrated();
    let ok = manage(dir.path(), &["check"], &[], "");
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(
        ok.stdout,
        "Password hashing: Django 5.2's parameters; preferred hasher \
         django.contrib.auth.hashers.PBKDF2PasswordHasher (pbkdf2_sha256, 1000000 iterations); 5 \
         hashers enabled\nSystem check identified no issues (0 silenced).\n"
    );
    // Another release and PASSWORD_HASHERS: named in the same line.
    let argon = manage(
        dir.path(),
        &["check"],
        &[
            ("DJANGO_VERSION", "6.1"),
            (
                "PASSWORD_HASHERS",
                r#"["django.contrib.auth.hashers.Argon2PasswordHasher"]"#,
            ),
        ],
        "",
    );
    assert_eq!(argon.code, 0, "{argon:?}");
    assert!(
        argon.stdout.starts_with(
            "Password hashing: Django 6.1's parameters; preferred hasher \
             django.contrib.auth.hashers.Argon2PasswordHasher (argon2, time_cost 2, memory_cost \
             102400 KiB, parallelism 8); 1 hasher enabled\n"
        ),
        "{argon:?}"
    );
    // An unknown release is refused with the valid ones.
    let bad = manage(dir.path(), &["check"], &[("DJANGO_VERSION", "3.2")], "");
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("4.2, 5.0, 5.1, 5.2, 6.0, 6.1"),
        "{bad:?}"
    );

    // Unreachable database.
    let down = manage(
        dir.path(),
        &["check"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")],
        "",
    );
    assert_eq!(down.code, 1, "{down:?}");
    assert!(
        down.stderr
            .starts_with("SystemCheckError: System check identified some issues:")
    );
    assert!(down.stderr.contains("(whisper.E003)"), "{down:?}");

    // Unsupported URL.
    let bad = manage(
        dir.path(),
        &["check"],
        &[("DATABASE_URL", "mysql://h/db")],
        "",
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("(whisper.E001)"), "{bad:?}");

    // Not migrated.
    let fresh = tempfile::tempdir().unwrap();
    let run = manage(fresh.path(), &["check"], &[], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("migrate"), "{run:?}");
}

/// Several `CHANNEL_LAYERS` hosts: each one is pinged; only the unreachable one is warned about
/// (a warning: the server starts without it).
#[test]
fn check_warns_about_each_unreachable_redis_host() {
    let dir = migrated();
    let layers = r#"{"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0", ["127.0.0.1", 1]]}}}"#;
    let run = manage(dir.path(), &["check"], &[("CHANNEL_LAYERS", layers)], "");
    assert_eq!(run.code, 0, "{run:?}");
    let out = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(out.matches("(whisper.W002)").count(), 1, "{out}");
    assert!(
        out.contains("Redis at redis://127.0.0.1:1 (CHANNEL_LAYERS host 2 of 2) is not reachable"),
        "{out}"
    );
}

#[test]
fn commands_refuse_an_unmigrated_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["createroom", "Lobby"][..],
        &["createsuperuser", "--noinput", "--username", "x"][..],
        &["changepassword", "x"][..],
    ] {
        let run = manage(dir.path(), args, &[], "");
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(run.stderr.starts_with("CommandError: "), "{run:?}");
        assert!(run.stderr.contains("Run ./manage migrate first"), "{run:?}");
        assert!(!dir.path().join("db.sqlite3").exists());
    }
    // A file that exists but is empty: same refusal.
    std::fs::write(dir.path().join("db.sqlite3"), b"").unwrap();
    let run = manage(dir.path(), &["createroom", "Lobby"], &[], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Run ./manage migrate first"), "{run:?}");
}

#[test]
fn test_command_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = manage(dir.path(), &["test"], &[], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("./manage test"), "{run:?}");

    let run = manage(dir.path(), &["frobnicate"], &[], "");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let run = manage(dir.path(), &["runserver", "not-a-port"], &[], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("is not a valid port number"), "{run:?}");
    let run = manage(dir.path(), &["migrate"], &[("DEBUG", "maybe")], "");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("CommandError: "), "{run:?}");
    assert!(run.stderr.contains("DEBUG"), "{run:?}");
}

/// `runserver 0` (a free port) over `dir` with `vars` in a clean environment, stdout read up to
/// its "Quit the server" line: `(child, port, stdout lines)`. Its stderr stays piped.
fn start_runserver(dir: &Path, vars: &[(&str, &str)]) -> (std::process::Child, u16, Vec<String>) {
    use std::io::{BufRead, BufReader};

    let db = format!("sqlite:///{}", dir.join("db.sqlite3").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whisper"));
    cmd.args(["runserver", "0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BASE_DIR", dir)
        .env("DATABASE_URL", db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut port = None;
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Starting development server at http://127.0.0.1:") {
            port = rest.trim_end_matches('/').parse::<u16>().ok();
        }
        let done = line == "Quit the server with CONTROL-C.";
        seen.push(line);
        if done {
            break;
        }
    }
    let port = port.unwrap_or_else(|| panic!("no start line in {seen:#?}"));
    (child, port, seen)
}

/// SIGTERM, then the exit status and the whole stderr (within 15 s; empty if the caller took
/// the pipe).
fn stop_runserver(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    use std::time::{Duration, Instant};

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("runserver did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    (status, stderr)
}

#[test]
fn runserver_creates_the_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port, seen) = start_runserver(dir.path(), &[]);
    assert!(
        seen.iter().any(|l| l.contains("./manage createsuperuser")),
        "{seen:#?}"
    );
    assert!(dir.path().join("db.sqlite3").exists());
    assert!(dir.path().join("db.sqlite3.secret_key").exists());
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("server accepts connections");

    let (status, stderr) = stop_runserver(child);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("SECRET_KEY was not set"), "{stderr}");
}
