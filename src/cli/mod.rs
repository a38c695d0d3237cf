//! The `./manage` command line: Django's management commands with Django's names, flags and
//! messages, one file per command.
//!
//! | command | does |
//! |---|---|
//! | `migrate [--check]` | creates Django 5.2's schema and records the migrations (with a custom user model, only the apps that do not depend on it) |
//! | `createsuperuser [--noinput] [--username U] [--email E]` | a staff superuser (`--<USERNAME_FIELD>` for another login field) |
//! | `createuser [--noinput] [--username U] [--email E]` | a plain user |
//! | `changepassword [USERNAME]` | sets a new password (hidden prompts, or two lines on stdin) |
//! | `createroom TITLE [--staff-only]` | a chat room; prints its id |
//! | `check` | settings, database reachability, migration state |
//! | `runserver [ADDR:PORT]` | the chat server (default `127.0.0.1:8000`) |
//! | `test` | handled by the `./manage` script itself |
//!
//! Failures print `CommandError: <message>` on stderr and exit with status 1, as Django does.
//! Settings come from the environment (and `.env`); `SECRET_KEY` is resolved only by commands
//! that need it (`runserver`).

use std::fmt;
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{DatabaseUrl, Settings};
use crate::store::{Store, StoreError};

mod changepassword;
mod check;
mod createroom;
mod createsuperuser;
mod createuser;
mod logging;
mod migrate;
pub mod prompt;
mod runserver;
mod test;
mod user_fields;

#[derive(Parser, Debug)]
#[command(
    name = "manage",
    bin_name = "./manage",
    version,
    about = "Whisper: the multichat server, managed like a Django project",
    long_about = "Whisper: the multichat server, managed like a Django project.\n\nSettings are \
                  read from the environment and from .env (DATABASE_URL, SECRET_KEY, DEBUG, \
                  ALLOWED_HOSTS, DJANGO_VERSION, ...)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Creates or updates the database schema (Django 5.2's tables and migration records).
    Migrate(migrate::Args),
    /// Creates a superuser (staff, all permissions).
    #[command(name = "createsuperuser")]
    CreateSuperuser(createsuperuser::Args),
    /// Creates a regular user (not staff, not superuser).
    #[command(name = "createuser")]
    CreateUser(createsuperuser::Args),
    /// Changes a user's password.
    #[command(name = "changepassword")]
    ChangePassword(changepassword::Args),
    /// Creates a chat room and prints its id.
    #[command(name = "createroom")]
    CreateRoom(createroom::Args),
    /// Checks settings, database connectivity and migration state.
    Check(check::Args),
    /// Starts the chat server.
    Runserver(runserver::Args),
    /// Runs the test suite (handled by the ./manage script).
    Test(test::Args),
}

/// A command failure: printed as `CommandError: <message>`, exit status 1.
#[derive(Debug)]
pub struct CommandError(pub String);

impl CommandError {
    pub fn new(message: impl Into<String>) -> Self {
        CommandError(message.into())
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        CommandError(e.to_string())
    }
}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        CommandError(e.to_string())
    }
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError(e.to_string())
    }
}

/// What a command returns: its exit status, or an error to print.
pub type CommandResult = Result<ExitCode, CommandError>;

/// Entry point of the `whisper` binary.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Command::Test(args) = &cli.command {
        return test::run(args);
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("CommandError: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Do not wait for lingering blocking tasks (e.g. a stdin read) on the way out.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("CommandError: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The argument id of `--<USERNAME_FIELD>` when that field is not `username` or `email`.
const USERNAME_FIELD_ARG: &str = "username_field_value";

/// Parses the command line. Like Django's `createsuperuser`, the user commands take
/// `--<USERNAME_FIELD>`: `--username` and `--email` always exist; another login field named
/// by the settings gets its flag here (settings that do not load are reported by the command).
fn parse() -> Result<Cli, clap::Error> {
    let field = Settings::from_env()
        .ok()
        .map(|s| s.user_model.username_field)
        // `username` and `email` are flags already; a field named like another flag keeps
        // only its environment variable and prompt (clap refuses duplicate flags).
        .filter(|f| !["username", "email", "noinput", "help", "version"].contains(&f.as_str()));
    let mut command = Cli::command();
    if let Some(field) = &field {
        // clap keeps flag names as `&'static str`; this runs once per process.
        let long: &'static str = Box::leak(field.clone().into_boxed_str());
        let value: &'static str = Box::leak(field.to_uppercase().into_boxed_str());
        for name in ["createsuperuser", "createuser"] {
            command = command.mut_subcommand(name, |sub| {
                sub.arg(
                    Arg::new(USERNAME_FIELD_ARG)
                        .long(long)
                        .value_name(value)
                        .help("The login field (USERNAME_FIELD)"),
                )
            });
        }
    }
    let matches = command.try_get_matches()?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Command::CreateSuperuser(args) | Command::CreateUser(args) = &mut cli.command
        && let Some((_, sub)) = matches.subcommand()
        && field.is_some()
    {
        args.username_field_value = sub.get_one::<String>(USERNAME_FIELD_ARG).cloned();
    }
    Ok(cli)
}

/// Logs to stderr ([`logging`]); `LOG_FORMAT` is read now, before the other settings, so
/// their errors are logged in it too (an invalid value is reported when they load).
fn init_logging() {
    Settings::load_dotenv();
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    logging::init(crate::config::LogFormat::parse(&format).unwrap_or_default());
}

async fn run(command: Command) -> CommandResult {
    match command {
        Command::Check(args) => check::run(&args).await,
        Command::Test(args) => Ok(test::run(&args)),
        other => {
            let settings = load_settings()?;
            match other {
                Command::Migrate(args) => migrate::run(&settings, &args).await,
                Command::CreateSuperuser(args) => {
                    createsuperuser::run(&settings, &args, createsuperuser::Kind::Superuser).await
                }
                Command::CreateUser(args) => createuser::run(&settings, &args).await,
                Command::ChangePassword(args) => changepassword::run(&settings, &args).await,
                Command::CreateRoom(args) => createroom::run(&settings, &args).await,
                Command::Runserver(args) => runserver::run(settings, &args).await,
                Command::Check(_) | Command::Test(_) => unreachable!("handled above"),
            }
        }
    }
}

/// `Settings::from_env()`, as a command error.
pub(crate) fn load_settings() -> Result<Settings, CommandError> {
    Settings::from_env().map_err(|e| CommandError(format!("invalid settings: {e}")))
}

/// Opens the database. Without `create`, a missing SQLite file is an error that says to run
/// `migrate` (Django would otherwise silently create an empty file).
pub(crate) async fn open_store(settings: &Settings, create: bool) -> Result<Store, CommandError> {
    if let DatabaseUrl::Sqlite(path) = &settings.database_url
        && !create
        && !path.exists()
    {
        return Err(CommandError(format!(
            "the database file {} does not exist. Run ./manage migrate first.",
            path.display()
        )));
    }
    let store = Store::connect(
        &settings.database_url,
        settings.database_pool_size.min(2),
        settings.database_timeout,
        create,
    )
    .await
    .map_err(|e| {
        CommandError(format!(
            "cannot open the database {}: {e}",
            settings.database_url
        ))
    })?;
    Ok(store.with_user_model(&settings.user_model))
}

/// Opens the database and refuses politely when it is not fully migrated.
pub(crate) async fn open_migrated_store(settings: &Settings) -> Result<Store, CommandError> {
    let store = open_store(settings, false).await?;
    match store.unapplied_migrations().await {
        Ok(todo) if todo.is_empty() => Ok(store),
        Ok(todo) => Err(CommandError(format!(
            "the database {} has {} unapplied migration(s). Run ./manage migrate first.",
            settings.database_url,
            todo.len()
        ))),
        Err(StoreError::Migration(msg)) => Err(CommandError(format!(
            "the database {} is not fully migrated: {msg} Run ./manage migrate first.",
            settings.database_url
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_django_style_flags() {
        let cli = Cli::try_parse_from([
            "manage",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "a@example.com",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::CreateSuperuser(_)));
        let cli = Cli::try_parse_from(["manage", "createsuperuser", "--no-input"]).unwrap();
        assert!(matches!(cli.command, Command::CreateSuperuser(_)));
        let cli = Cli::try_parse_from(["manage", "runserver", "8001"]).unwrap();
        assert!(matches!(cli.command, Command::Runserver(_)));
        let cli = Cli::try_parse_from(["manage", "createroom", "Lobby", "--staff-only"]).unwrap();
        assert!(matches!(cli.command, Command::CreateRoom(_)));
        assert!(Cli::try_parse_from(["manage", "nonsense"]).is_err());
    }
}
