//! `migrate [--check]`: creates Django 5.2's schema for contenttypes, auth, admin, chat and
//! sessions (see `crate::store` migrate), printing Django's progress lines. `--check` applies
//! nothing and exits with status 1 when migrations are unapplied (Django 4.2+ semantics).

use std::process::ExitCode;

use crate::config::Settings;
use crate::store::app_labels;

use super::{CommandResult, open_store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Exit with a non-zero status if unapplied migrations exist, without applying them.
    #[arg(long = "check")]
    pub check: bool,
    /// Accepted for compatibility with Django scripts (migrate never prompts).
    #[arg(long = "noinput", visible_alias = "no-input")]
    pub noinput: bool,
}

pub async fn run(settings: &Settings, args: &Args) -> CommandResult {
    let store = open_store(settings, !args.check).await?;
    if args.check {
        let todo = store.unapplied_migrations().await?;
        store.close().await;
        return Ok(if todo.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("Operations to perform:");
    println!("  Apply all migrations: {}", app_labels().join(", "));
    println!("Running migrations:");
    let report = store.migrate().await;
    store.close().await;
    for line in report?.lines() {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
