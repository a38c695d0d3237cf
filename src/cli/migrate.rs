//! `migrate [--check]`: creates Django 5.2's schema for contenttypes, auth, admin, chat and
//! sessions (see `crate::store` migrate), printing Django's progress lines. `--check` applies
//! nothing and exits with status 1 when migrations are unapplied (Django 4.2+ semantics).
//!
//! With a custom `AUTH_USER_MODEL`, only the apps that do not depend on it (contenttypes, auth
//! without `auth_user`, chat, sessions) are Whisper's; a note says that the Django project's
//! `migrate` creates the user model's app and admin.

use std::process::ExitCode;

use crate::config::Settings;
use crate::store::{Store, StoreError, app_labels};

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
    let custom = settings.user_model.is_custom();
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
    println!("  Apply all migrations: {}", app_labels(custom).join(", "));
    println!("Running migrations:");
    let report = store.migrate().await;
    let note = match (&report, custom) {
        (Ok(_), true) => Some(user_model_note(&store).await?),
        _ => None,
    };
    store.close().await;
    for line in report?.lines() {
        println!("{line}");
    }
    if let Some(note) = note {
        println!();
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What the operator must know after migrating beside a custom user model.
async fn user_model_note(store: &Store) -> Result<String, StoreError> {
    let model = store.user_model();
    let state = match store.user_table().await {
        Ok(_) => format!("The table {} exists.", model.table),
        Err(StoreError::UserModel(_)) => format!(
            "The table {} does not exist yet: run the Django project's migrate before starting \
             Whisper.",
            model.table
        ),
        Err(e) => return Err(e),
    };
    Ok(format!(
        "Note: AUTH_USER_MODEL is {label}. Whisper migrates only {apps}\n(never auth_user); \
         the Django project's `python manage.py migrate` creates the user app\n({app}, table \
         {table}) and the apps that depend on it (admin).\n{state}",
        label = model.label,
        apps = app_labels(true).join(", "),
        app = model.app_label,
        table = model.table,
    ))
}
