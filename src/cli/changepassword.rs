//! `changepassword [USERNAME]`: Django's command. The user defaults to the OS user; the new
//! password is asked twice (hidden on a terminal; otherwise two lines are read from stdin),
//! with at most 3 tries. Only the `password` column is written.

use std::process::ExitCode;

use crate::config::Settings;
use crate::django::hashers::make_password;

use super::prompt;
use super::{CommandError, CommandResult, open_migrated_store};

const MAX_TRIES: usize = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Username to change the password for; by default, the current OS user.
    pub username: Option<String>,
}

pub async fn run(settings: &Settings, args: &Args) -> CommandResult {
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt::os_username().ok_or_else(|| {
            CommandError::new("no username given and the current OS user is unknown")
        })?,
    };
    let store = open_migrated_store(settings).await?;
    let user = store
        .user_by_username(&username)
        .await?
        .ok_or_else(|| CommandError::new(format!("user '{username}' does not exist")))?;
    println!("Changing password for user '{}'", user.username);
    let aborted = || {
        CommandError::new(format!(
            "Aborting password change for user '{}': no more input",
            user.username
        ))
    };
    let mut tries = 0;
    let mut password = None;
    while tries < MAX_TRIES {
        let p1 = prompt::password("Password: ")?.ok_or_else(aborted)?;
        let p2 = prompt::password("Password (again): ")?.ok_or_else(aborted)?;
        if p1 != p2 {
            println!("Passwords do not match. Please try again.");
            tries += 1;
            continue;
        }
        if p1.trim().is_empty() {
            eprintln!("Error: Blank passwords aren't allowed.");
            tries += 1;
            continue;
        }
        password = Some(p1);
        break;
    }
    let Some(password) = password else {
        return Err(CommandError::new(format!(
            "Aborting password change for user '{}' after {MAX_TRIES} attempts",
            user.username
        )));
    };
    let cfg = settings.password_hashers.clone();
    let encoded = make_password(&password, &cfg);
    if !store.set_password(user.id, &encoded).await? {
        return Err(CommandError::new(format!(
            "user '{}' was deleted meanwhile",
            user.username
        )));
    }
    println!("Password changed successfully for user '{}'", user.username);
    Ok(ExitCode::SUCCESS)
}
