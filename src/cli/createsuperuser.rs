//! `createsuperuser` (and, through [`Kind::User`], `createuser`): Django's
//! `django.contrib.auth` command, interactive or `--noinput`, on the configured user model
//! (the fields are described in `user_fields`).
//!
//! * Interactive (stdin is a terminal): the login field (`Username: `, or
//!   `Username (leave blank to use 'x'): ` for `auth.User`; `Email address: ` for a model
//!   logging in by email), then the other required fields (`Email address: `, or `Username: `),
//!   then `Password: ` / `Password (again): ` with hidden input, re-asking after each `Error: …`
//!   like Django. Not on a terminal, Django skips creation with a notice.
//! * `--noinput`: the login from `--<USERNAME_FIELD>` or `DJANGO_SUPERUSER_<USERNAME_FIELD>`,
//!   the other fields from their flags or variables (`email` is optional here), the password
//!   from `DJANGO_SUPERUSER_PASSWORD`, else an unusable password (as Django).
//!
//! The hash is `make_password` at the configured `DJANGO_VERSION`'s parameters.

use std::process::ExitCode;

use crate::config::Settings;
use crate::django::hashers::{HasherConfig, make_password, make_unusable_password};
use crate::store::{NewUser, Store, StoreError};

use super::prompt;
use super::user_fields::{Field, UserFields};
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
    /// Email address (may be blank, unless it is the login field).
    #[arg(long)]
    pub email: Option<String>,
    /// `--<USERNAME_FIELD>` for a login field other than username and email (added to the
    /// command line when the settings name one, see `cli::parse`).
    #[arg(skip)]
    pub username_field_value: Option<String>,
}

impl Args {
    /// The value given on the command line for `field`.
    fn flag(&self, field: &str) -> Option<String> {
        match field {
            "username" => self.username.clone(),
            "email" => self.email.clone(),
            _ => self.username_field_value.clone(),
        }
    }
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

const CANCELLED: &str = "Operation cancelled.";

/// The values collected for a new user.
struct Values {
    identifier: String,
    /// `(field name, value)` of the other required fields.
    others: Vec<(String, String)>,
    password: String,
}

/// Whether a user already has this value in `field` (normalised as it would be stored).
async fn taken(store: &Store, field: &Field, value: &str) -> Result<bool, CommandError> {
    Ok(store
        .user_exists_with(&field.name, &field.normalize(value))
        .await?)
}

/// Django's `_validate_username`: uniqueness first, then blank, then the field validators.
async fn check_login(
    store: &Store,
    field: &Field,
    value: &str,
) -> Result<Option<String>, CommandError> {
    if taken(store, field, value).await? {
        return Ok(Some(field.taken()));
    }
    if value.is_empty() {
        return Ok(Some(format!(
            "{} cannot be blank.",
            crate::config::user_model::capfirst(&field.verbose_name)
        )));
    }
    Ok(field.clean(value).err())
}

/// Why a required field's value was refused.
enum Refusal {
    /// `field.clean` failed: Django prints `Error: <messages>` at the prompt and raises
    /// `CommandError(<messages>)` for a flag.
    Invalid(String),
    /// The unique `username` column already has it (Django would fail on the insert).
    Taken(String),
}

impl Refusal {
    /// The line printed before asking again.
    fn prompt_line(&self) -> String {
        match self {
            Refusal::Invalid(e) => format!("Error: {e}"),
            Refusal::Taken(e) => e.clone(),
        }
    }

    fn command_error(self) -> CommandError {
        match self {
            Refusal::Invalid(e) | Refusal::Taken(e) => CommandError::new(e),
        }
    }
}

/// A required field's value: valid, and (for a unique `username` column) not taken.
async fn check_other(
    store: &Store,
    field: &Field,
    value: &str,
) -> Result<Option<Refusal>, CommandError> {
    if let Err(e) = field.clean(value) {
        return Ok(Some(Refusal::Invalid(e)));
    }
    if field.name == "username" && taken(store, field, value).await? {
        return Ok(Some(Refusal::Taken(field.taken())));
    }
    Ok(None)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub async fn run(settings: &Settings, args: &Args, kind: Kind) -> CommandResult {
    let store = open_migrated_store(settings).await?;
    let fields = UserFields::new(store.user_model(), store.user_table().await?);
    let cfg = settings.password_hashers.clone();
    let result = if args.noinput {
        noninteractive(&store, &fields, args, &cfg).await
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
        interactive(&store, &fields, args, &cfg).await
    };
    let values = result?;
    let mut new = NewUser {
        username: fields.identifier.normalize(&values.identifier),
        password: values.password,
        is_staff: kind == Kind::Superuser,
        is_superuser: kind == Kind::Superuser,
        ..NewUser::default()
    };
    for (name, value) in values.others {
        let field = fields.required.iter().find(|f| f.name == name);
        let value = field.map_or(value.clone(), |f| f.normalize(&value));
        match name.as_str() {
            "email" => new.email = value,
            "username" => new.username_column = Some(value),
            _ => {}
        }
    }
    match store.create_user(&new).await {
        Ok(_) => {
            println!("{}", kind.done_message());
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::UsernameTaken) => Err(CommandError::new(fields.identifier.taken())),
        Err(e) => Err(e.into()),
    }
}

async fn noninteractive(
    store: &Store,
    fields: &UserFields,
    args: &Args,
    cfg: &HasherConfig,
) -> Result<Values, CommandError> {
    let login = &fields.identifier;
    let identifier = args
        .flag(&login.name)
        .or_else(|| env(&login.env_var()))
        .ok_or_else(|| {
            CommandError::new(format!("You must use --{} with --noinput.", login.name))
        })?;
    if let Some(msg) = check_login(store, login, &identifier).await? {
        return Err(CommandError::new(msg));
    }
    let mut others = Vec::new();
    for field in &fields.required {
        let value = args
            .flag(&field.name)
            .or_else(|| env(&field.env_var()))
            .map(|v| v.trim().to_string());
        let value = match value {
            Some(v) => v,
            // Whisper is lenient where Django insists: a blank-able field may be left out.
            None if field.blank => String::new(),
            None => {
                return Err(CommandError::new(format!(
                    "You must use --{} with --noinput.",
                    field.name
                )));
            }
        };
        if let Some(refusal) = check_other(store, field, &value).await? {
            return Err(refusal.command_error());
        }
        others.push((field.name.clone(), value));
    }
    let password = match env("DJANGO_SUPERUSER_PASSWORD") {
        Some(p) => make_password(&p, cfg),
        None => make_unusable_password(),
    };
    Ok(Values {
        identifier,
        others,
        password,
    })
}

async fn interactive(
    store: &Store,
    fields: &UserFields,
    args: &Args,
    cfg: &HasherConfig,
) -> Result<Values, CommandError> {
    let cancelled = || CommandError::new(CANCELLED);
    let login = &fields.identifier;
    // The login: a flag value is checked first; on error Django prints it and asks.
    let mut identifier = args.flag(&login.name);
    if let Some(u) = &identifier
        && let Some(msg) = check_login(store, login, u).await?
    {
        eprintln!("{msg}");
        identifier = None;
    }
    // Django suggests the OS user name only for its own auth.User.
    let mut default = match store.user_model().is_custom() {
        true => None,
        false => prompt::default_username(),
    };
    if let Some(d) = &default
        && store.user_by_username(d).await?.is_some()
    {
        default = None;
    }
    let identifier = match identifier {
        Some(u) => u,
        None => loop {
            let mut raw =
                prompt::input(&login.prompt(default.as_deref()))?.ok_or_else(cancelled)?;
            if raw.is_empty()
                && let Some(d) = &default
            {
                raw = d.clone();
            }
            if let Err(msg) = login.clean(&raw) {
                eprintln!("Error: {msg}");
                continue;
            }
            if let Some(msg) = check_login(store, login, &raw).await? {
                eprintln!("{msg}");
                continue;
            }
            break raw;
        },
    };
    let mut others = Vec::new();
    for field in &fields.required {
        let value = match args.flag(&field.name) {
            Some(v) => {
                let v = v.trim().to_string();
                if let Some(refusal) = check_other(store, field, &v).await? {
                    return Err(refusal.command_error());
                }
                v
            }
            None => loop {
                let raw = prompt::input(&field.prompt(None))?.ok_or_else(cancelled)?;
                let raw = raw.trim().to_string();
                match check_other(store, field, &raw).await? {
                    None => break raw,
                    Some(refusal) => eprintln!("{}", refusal.prompt_line()),
                }
            },
        };
        others.push((field.name.clone(), value));
    }
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
    Ok(Values {
        identifier,
        others,
        password: make_password(&password, cfg),
    })
}
