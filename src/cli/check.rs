//! `check`: Django's system-check output for what Whisper depends on — the settings, the
//! `SECRET_KEY` (required with PostgreSQL), database reachability, the migration state, the
//! user model's table (`AUTH_USER_MODEL`: present, with the columns Whisper needs) and,
//! when `REDIS_URL` or `CHANNEL_LAYERS` is set, Redis reachability (a warning: the server starts
//! without it), and with a cache session engine the reachability of its cache (a warning too).
//! Prints `System check identified no issues (0 silenced).`, or the issues in Django's layout
//! (`SystemCheckError: …` on stderr and exit status 1 when any is an error), after one line
//! saying which Django release's password hashing is in use.

use std::process::ExitCode;

use crate::config::{DatabaseUrl, Settings};
use crate::store::StoreError;

use super::{CommandResult, open_store};

#[derive(clap::Args, Debug)]
pub struct Args {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Error,
    Warning,
}

#[derive(Debug)]
struct Issue {
    level: Level,
    id: &'static str,
    message: String,
    hint: Option<String>,
}

impl Issue {
    fn error(id: &'static str, message: impl Into<String>, hint: Option<&str>) -> Self {
        Issue {
            level: Level::Error,
            id,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }
}

async fn collect() -> Vec<Issue> {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            return vec![Issue::error(
                "whisper.E001",
                format!("Invalid settings: {e}"),
                Some("Fix the environment variable (or the .env file) named above."),
            )];
        }
    };
    // Which Django's hashing is in use, before the verdict (DJANGO_VERSION, PASSWORD_HASHERS).
    println!("Password hashing: {}", settings.password_hashers.describe());
    let mut issues = Vec::new();
    if settings.secret_key.is_none() && matches!(settings.database_url, DatabaseUrl::Postgres(_)) {
        issues.push(Issue::error(
            "whisper.E002",
            "SECRET_KEY is not set.",
            Some(
                "With PostgreSQL, set SECRET_KEY to the SECRET_KEY of the Django project sharing \
                 the database.",
            ),
        ));
    }
    if settings.secret_key.is_none()
        && let Some(file) = settings.secret_key_file()
        && !file.exists()
    {
        issues.push(Issue {
            level: Level::Warning,
            id: "whisper.W001",
            message: format!(
                "SECRET_KEY is not set; runserver will generate one and store it in {}.",
                file.display()
            ),
            hint: Some(
                "Set SECRET_KEY to the Django project's key if Django shares this database."
                    .to_string(),
            ),
        });
    }
    if let Some(layer) = &settings.channel_layer {
        let n = layer.hosts.len();
        for (i, url) in layer.hosts.iter().enumerate() {
            if let Err(e) = crate::fanout::redis_ping(url.expose()).await {
                let which = if n > 1 {
                    format!(" (CHANNEL_LAYERS host {} of {n})", i + 1)
                } else {
                    String::new()
                };
                issues.push(Issue {
                    level: Level::Warning,
                    id: "whisper.W002",
                    message: format!(
                        "Redis at {}{which} is not reachable: {e}",
                        crate::config::redact_url(url.expose())
                    ),
                    hint: Some(
                        "Start Redis or fix REDIS_URL / CHANNEL_LAYERS; until then each process \
                         only serves its own members in the rooms kept on that host."
                            .to_string(),
                    ),
                });
            }
        }
    }
    if settings.session_engine.uses_cache()
        && let Some(config) = settings.caches.session_cache()
    {
        let ping = match crate::store::DjangoCache::new(config) {
            Ok(cache) => cache.ping().await,
            Err(e) => Err(e),
        };
        if let Err(e) = ping {
            issues.push(Issue {
                level: Level::Warning,
                id: "whisper.W003",
                message: format!(
                    "The session cache ({}) at {} is not reachable: {e}",
                    config.alias,
                    crate::config::redact_url(config.url.expose())
                ),
                hint: Some(
                    "Start Redis or fix CACHES; until then requests with a session cookie get 503."
                        .to_string(),
                ),
            });
        }
    }
    let store = match open_store(&settings, false).await {
        Ok(store) => store,
        Err(e) => {
            issues.push(Issue::error(
                "whisper.E003",
                format!("The database is not reachable: {e}"),
                Some("Check DATABASE_URL and that the database server is running."),
            ));
            return issues;
        }
    };
    match store.unapplied_migrations().await {
        Ok(todo) if todo.is_empty() => {}
        Ok(todo) => {
            let mut apps: Vec<&str> = todo.iter().map(|(a, _)| a.as_str()).collect();
            apps.sort_unstable();
            apps.dedup();
            issues.push(Issue::error(
                "whisper.E004",
                format!(
                    "You have {} unapplied migration(s) for app(s): {}.",
                    todo.len(),
                    apps.join(", ")
                ),
                Some("Run ./manage migrate to apply them."),
            ));
        }
        Err(StoreError::Migration(msg)) => issues.push(Issue::error(
            "whisper.E004",
            msg,
            Some("Finish the migration with Django's manage.py migrate."),
        )),
        Err(e) => issues.push(Issue::error(
            "whisper.E003",
            format!("The database is not usable: {e}"),
            None,
        )),
    }
    match store.user_table().await {
        Ok(_) => {}
        Err(StoreError::UserModel(msg)) => issues.push(Issue::error(
            "whisper.E005",
            msg,
            Some("Check AUTH_USER_MODEL, AUTH_USER_TABLE and USERNAME_FIELD against the Django project."),
        )),
        Err(e) => issues.push(Issue::error(
            "whisper.E003",
            format!("The database is not usable: {e}"),
            None,
        )),
    }
    store.close().await;
    issues
}

fn summary(n: usize) -> String {
    let what = match n {
        0 => "no issues".to_string(),
        1 => "1 issue".to_string(),
        n => format!("{n} issues"),
    };
    format!("System check identified {what} (0 silenced).")
}

fn render(issues: &[Issue]) -> String {
    let mut out = String::from("System check identified some issues:\n");
    for (level, title) in [(Level::Error, "ERRORS"), (Level::Warning, "WARNINGS")] {
        let group: Vec<&Issue> = issues.iter().filter(|i| i.level == level).collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for issue in group {
            out.push_str(&format!("?: ({}) {}\n", issue.id, issue.message));
            if let Some(hint) = &issue.hint {
                out.push_str(&format!("\tHINT: {hint}\n"));
            }
        }
    }
    out.push('\n');
    out.push_str(&summary(issues.len()));
    out
}

pub async fn run(_args: &Args) -> CommandResult {
    let issues = collect().await;
    if issues.is_empty() {
        println!("{}", summary(0));
        return Ok(ExitCode::SUCCESS);
    }
    let text = render(&issues);
    if issues.iter().any(|i| i.level == Level::Error) {
        eprintln!("SystemCheckError: {text}");
        Ok(ExitCode::FAILURE)
    } else {
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_layout() {
        assert_eq!(
            summary(0),
            "System check identified no issues (0 silenced)."
        );
        let text = render(&[Issue::error("whisper.E003", "down", Some("start it"))]);
        assert_eq!(
            text,
            "System check identified some issues:\n\nERRORS:\n?: (whisper.E003) down\n\tHINT: \
             start it\n\nSystem check identified 1 issue (0 silenced)."
        );
        let warn = Issue {
            level: Level::Warning,
            id: "whisper.W001",
            message: "w".into(),
            hint: None,
        };
        assert!(render(&[warn]).contains("WARNINGS:\n?: (whisper.W001) w\n"));
    }
}
