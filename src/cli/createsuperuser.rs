//! `createsuperuser` (and, through [`Kind::User`], `createuser`): Django's
//! `django.contrib.auth` command, interactive or `--noinput`.
//!
//! * Interactive (stdin is a terminal): `Username: ` (or `Username (leave blank to use 'x'): `),
//!   `Email address: `, then `Password: ` / `Password (again): ` with hidden input, re-asking
//!   after each `Error: …` like Django. Not on a terminal, Django skips creation with a notice.
//! * `--noinput`: username from `--username` or `DJANGO_SUPERUSER_USERNAME`, email from
//!   `--email` or `DJANGO_SUPERUSER_EMAIL` (optional here), password from
//!   `DJANGO_SUPERUSER_PASSWORD`, else an unusable password (as Django).
//!
//! The hash is `make_password` at the configured `DJANGO_VERSION`'s parameters.

use std::process::ExitCode;

use crate::config::Settings;
use crate::django::hashers::{HasherConfig, make_password, make_unusable_password};
use crate::store::{NewUser, Store, StoreError};

use super::prompt;
use super::{CommandError, CommandResult, open_migrated_store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not prompt for input of any kind (password from DJANGO_SUPERUSER_PASSWORD, or an
    /// unusable password when it is not set).
    #[arg(long = "noinput", visible_alias = "no-input")]
    pub noinput: bool,
    /// Login name (letters, digits and @/./+/-/_ only, at most 150 characters).
    #[arg(long)]
    pub username: Option<String>,
    /// Email address (may be blank).
    #[arg(long)]
    pub email: Option<String>,
}

/// Which kind of user the command creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Superuser,
    User,
}

impl Kind {
    fn done_message(self) -> &'static str {
        match self {
            Kind::Superuser => "Superuser created successfully.",
            Kind::User => "User created successfully.",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Kind::Superuser => "createsuperuser",
            Kind::User => "createuser",
        }
    }
}

const TAKEN: &str = "Error: That username is already taken.";
const CANCELLED: &str = "Operation cancelled.";

/// Django's `_validate_username`: uniqueness first, then blank, then the field validators.
async fn check_username(store: &Store, username: &str) -> Result<Option<String>, CommandError> {
    if store
        .user_by_username(&prompt::normalize_username(username))
        .await?
        .is_some()
    {
        return Ok(Some(TAKEN.to_string()));
    }
    if username.is_empty() {
        return Ok(Some("Username cannot be blank.".to_string()));
    }
    Ok(prompt::validate_username(username).err())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub async fn run(settings: &Settings, args: &Args, kind: Kind) -> CommandResult {
    let store = open_migrated_store(settings).await?;
    let cfg = settings.password_hashers.clone();
    let result = if args.noinput {
        noninteractive(&store, args, &cfg).await
    } else if !prompt::stdin_is_tty() {
        println!(
            "{} creation skipped due to not running in a TTY. You can run `./manage {}` in your \
             project to create one manually.",
            match kind {
                Kind::Superuser => "Superuser",
                Kind::User => "User",
            },
            kind.command()
        );
        return Ok(ExitCode::SUCCESS);
    } else {
        interactive(&store, args, &cfg).await
    };
    let (username, email, password) = result?;
    let new = NewUser {
        username: prompt::normalize_username(&username),
        email: prompt::normalize_email(&email),
        password,
        is_staff: kind == Kind::Superuser,
        is_superuser: kind == Kind::Superuser,
    };
    match store.create_user(&new).await {
        Ok(_) => {
            println!("{}", kind.done_message());
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::UsernameTaken) => Err(CommandError::new(TAKEN)),
        Err(e) => Err(e.into()),
    }
}

async fn noninteractive(
    store: &Store,
    args: &Args,
    cfg: &HasherConfig,
) -> Result<(String, String, String), CommandError> {
    let username = args
        .username
        .clone()
        .or_else(|| env("DJANGO_SUPERUSER_USERNAME"))
        .ok_or_else(|| CommandError::new("You must use --username with --noinput."))?;
    if let Some(msg) = check_username(store, &username).await? {
        return Err(CommandError::new(msg));
    }
    let email = args
        .email
        .clone()
        .or_else(|| env("DJANGO_SUPERUSER_EMAIL"))
        .unwrap_or_default();
    prompt::validate_email(email.trim()).map_err(CommandError::new)?;
    let password = match env("DJANGO_SUPERUSER_PASSWORD") {
        Some(p) => make_password(&p, cfg),
        None => make_unusable_password(),
    };
    Ok((username, email, password))
}

async fn interactive(
    store: &Store,
    args: &Args,
    cfg: &HasherConfig,
) -> Result<(String, String, String), CommandError> {
    let cancelled = || CommandError::new(CANCELLED);
    // Username: a --username value is checked first; on error Django prints it and asks.
    let mut username = args.username.clone();
    if let Some(u) = &username
        && let Some(msg) = check_username(store, u).await?
    {
        eprintln!("{msg}");
        username = None;
    }
    let mut default = prompt::default_username();
    if let Some(d) = &default
        && store.user_by_username(d).await?.is_some()
    {
        default = None;
    }
    let username = match username {
        Some(u) => u,
        None => loop {
            let message = match &default {
                Some(d) => format!("Username (leave blank to use '{d}'): "),
                None => "Username: ".to_string(),
            };
            let mut raw = prompt::input(&message)?.ok_or_else(cancelled)?;
            if raw.is_empty()
                && let Some(d) = &default
            {
                raw = d.clone();
            }
            if let Err(msg) = prompt::validate_username(&raw) {
                eprintln!("Error: {msg}");
                continue;
            }
            if let Some(msg) = check_username(store, &raw).await? {
                eprintln!("{msg}");
                continue;
            }
            break raw;
        },
    };
    let email = match &args.email {
        Some(e) => {
            prompt::validate_email(e.trim()).map_err(CommandError::new)?;
            e.clone()
        }
        None => loop {
            let raw = prompt::input("Email address: ")?.ok_or_else(cancelled)?;
            match prompt::validate_email(raw.trim()) {
                Ok(()) => break raw.trim().to_string(),
                Err(msg) => eprintln!("Error: {msg}"),
            }
        },
    };
    let password = loop {
        let p1 = prompt::password("Password: ")?.ok_or_else(cancelled)?;
        let p2 = prompt::password("Password (again): ")?.ok_or_else(cancelled)?;
        if p1 != p2 {
            eprintln!("Error: Your passwords didn't match.");
            continue;
        }
        if p1.trim().is_empty() {
            eprintln!("Error: Blank passwords aren't allowed.");
            continue;
        }
        break p1;
    };
    Ok((username, email, make_password(&password, cfg)))
}
