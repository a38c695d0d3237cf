//! Django as the oracle: `compat/oracle.py serve` run with a bootstrap venv (6.1, 5.2 or 4.2),
//! one process per instance, one JSON line per command.

use super::*;

// ---------------------------------------------------------------------------------------------
// Django (compat/oracle.py)
// ---------------------------------------------------------------------------------------------

/// Django as the oracle: one `oracle.py serve` process (one Django start-up) per instance,
/// started at the first command, answering one JSON line per command.
pub(crate) struct Django {
    python: PathBuf,
    env: Env,
    version: String,
    process: tokio::sync::Mutex<Option<Oracle>>,
}

pub(crate) struct Oracle {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Django {
    pub(crate) fn new(version: &str, env: Env) -> Django {
        let venv = match version {
            "6.1" => ".venv61",
            "5.2" => ".venv",
            "4.2" => ".venv42",
            other => panic!("no venv for Django {other}"),
        };
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("compat")
            .join(venv)
            .join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `bash compat/bootstrap.sh {version}` (./manage test does)",
            python.display()
        );
        Django {
            python,
            env,
            version: version.into(),
            process: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn spawn(&self) -> Oracle {
        let oracle = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat/oracle.py");
        let mut cmd = tokio::process::Command::new(&self.python);
        cmd.arg(&oracle)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BASE_DIR", &self.env.base_dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in self.env.pairs() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run compat/oracle.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs one oracle subcommand; panics with Django's traceback when it fails.
    pub(crate) async fn run(&self, args: &[&str]) -> Value {
        let mut guard = self.process.lock().await;
        let oracle = guard.get_or_insert_with(|| self.spawn());
        let mut line = serde_json::to_string(args).unwrap();
        line.push('\n');
        oracle
            .stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to oracle.py");
        let answer = match oracle.stdout.next_line().await.expect("read oracle.py") {
            Some(answer) => answer,
            None => {
                let status = oracle.child.wait().await;
                panic!(
                    "oracle.py (Django {}) exited ({status:?}) at {args:?}",
                    self.version
                )
            }
        };
        let value: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
            panic!(
                "oracle {args:?} (Django {}) printed no JSON ({e}): {answer}",
                self.version
            )
        });
        if let Some(err) = value.get("error") {
            panic!(
                "oracle {args:?} (Django {}) failed: {err}\n{}",
                self.version,
                value["traceback"].as_str().unwrap_or("")
            );
        }
        value
    }

    pub(crate) async fn create_user(
        &self,
        username: &str,
        password: &str,
        flags: &[&str],
    ) -> Value {
        let mut args = vec![
            "create-user",
            "--username",
            username,
            "--password",
            password,
        ];
        args.extend_from_slice(flags);
        self.run(&args).await
    }

    /// Logs in through Django's login view (`path`) with CSRF enforced; the response.
    pub(crate) async fn login_at(&self, path: &str, username: &str, password: &str) -> Value {
        self.run(&[
            "login",
            "--username",
            username,
            "--password",
            password,
            "--path",
            path,
        ])
        .await
    }

    /// A successful login at `/accounts/login/`: the session cookie's value.
    pub(crate) async fn login(&self, username: &str, password: &str) -> String {
        let resp = self.login_at("/accounts/login/", username, password).await;
        assert_eq!(resp["status"], 302, "Django login of {username}: {resp}");
        assert_eq!(resp["location"], "/", "{resp}");
        resp["session"].as_str().expect("a session cookie").into()
    }

    pub(crate) async fn get(&self, path: &str, session: &str) -> Value {
        let cookie = format!("sessionid={session}");
        self.run(&["get", "--path", path, "--cookie", &cookie])
            .await
    }

    /// The status of `/admin/` for this session (200 = staff logged in, 302 = to the login).
    pub(crate) async fn admin_index(&self, session: &str) -> (u16, String) {
        let cookie = format!("sessionid={session}");
        let resp = self.run(&["admin-index", "--cookie", &cookie]).await;
        (
            resp["status"].as_u64().unwrap() as u16,
            resp["body"].as_str().unwrap_or("").to_string(),
        )
    }

    pub(crate) async fn logout(&self, session: &str) -> Value {
        let cookie = format!("sessionid={session}");
        self.run(&["logout", "--cookie", &cookie]).await
    }

    /// `admin` logs in to the admin and changes `username`'s password with the admin's form;
    /// asserts both succeeded (302s, and Django's `check_password` agrees).
    pub(crate) async fn admin_change_password(&self, admin: &str, username: &str, password: &str) {
        let login = self.login_at("/admin/login/", admin, PASSWORD).await;
        assert_eq!(login["status"], 302, "admin login of {admin}: {login}");
        let cookie = format!("sessionid={}", login["session"].as_str().unwrap());
        let changed = self
            .run(&[
                "admin-password-change",
                "--cookie",
                &cookie,
                "--username",
                username,
                "--password",
                password,
            ])
            .await;
        assert_eq!(changed["status"], 302, "{changed}");
        assert_eq!(changed["password_changed"], true, "{changed}");
    }

    pub(crate) async fn user(&self, username: &str) -> Value {
        self.run(&["user", "--username", username]).await
    }

    pub(crate) async fn password_of(&self, username: &str) -> String {
        self.user(username).await["password"]
            .as_str()
            .unwrap()
            .into()
    }

    pub(crate) async fn check_password(&self, username: &str, password: &str) -> Value {
        self.run(&[
            "check-password",
            "--username",
            username,
            "--password",
            password,
        ])
        .await
    }

    pub(crate) async fn session_decode(&self, key: &str) -> Value {
        self.run(&["session-decode", "--key", key]).await["data"].clone()
    }
}
