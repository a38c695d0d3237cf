//! The fields `createsuperuser` / `createuser` ask for, following the user model as Django's
//! command does: the `USERNAME_FIELD` first (flag `--<USERNAME_FIELD>`, environment variable
//! `DJANGO_SUPERUSER_<FIELD>`), then the `REQUIRED_FIELDS` an AbstractUser-like model has —
//! `email` (may be blank, AbstractUser's `REQUIRED_FIELDS`) when the login is another column,
//! and `username` when the table has one that is not the login (an AbstractUser logging in by
//! email must list it, since the column is unique and not null).
//!
//! Whisper cannot read a model's Python class, so the validators are AbstractUser's for the
//! columns it knows (`username`: Django's `UnicodeUsernameValidator`; `email`: `EmailValidator`)
//! and the column's length for any other login field.

use crate::config::UserModel;
use crate::config::user_model::{capfirst, verbose_name};
use crate::store::UserTable;

use super::prompt;

/// The validators of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Username,
    Email,
    Text,
}

/// One field the command asks for.
#[derive(Clone, Debug)]
pub struct Field {
    /// The model field (and column) name.
    pub name: String,
    pub verbose_name: String,
    pub rule: Rule,
    /// Whether an empty value is accepted (`blank=True`).
    pub blank: bool,
    pub max_length: usize,
}

impl Field {
    fn new(table: &UserTable, name: &str, blank: bool) -> Field {
        let (rule, default_max) = match name {
            "username" => (Rule::Username, prompt::USERNAME_MAX_LENGTH),
            "email" => (Rule::Email, prompt::EMAIL_MAX_LENGTH),
            _ => (Rule::Text, 255),
        };
        Field {
            name: name.to_string(),
            verbose_name: verbose_name(name),
            rule,
            blank,
            max_length: table.column_max_length(name).unwrap_or(default_max),
        }
    }

    /// Django's `_get_input_message`: `Username: `, `Email address: `,
    /// `Username (leave blank to use 'x'): `.
    pub fn prompt(&self, default: Option<&str>) -> String {
        match default {
            Some(d) => format!(
                "{} (leave blank to use '{d}'): ",
                capfirst(&self.verbose_name)
            ),
            None => format!("{}: ", capfirst(&self.verbose_name)),
        }
    }

    /// `field.clean(value)`: the blank rule, then the validators; messages joined with `; `.
    pub fn clean(&self, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return if self.blank {
                Ok(())
            } else {
                Err("This field cannot be blank.".to_string())
            };
        }
        match self.rule {
            Rule::Username => prompt::validate_username_max(value, self.max_length),
            Rule::Email => prompt::validate_email_max(value, self.max_length),
            Rule::Text => prompt::validate_max_length(value, self.max_length),
        }
    }

    /// What `UserManager._create_user` stores: `normalize_email` for an email, NFKC
    /// (`normalize_username`) for the login name and `username`.
    pub fn normalize(&self, value: &str) -> String {
        match self.rule {
            Rule::Email => prompt::normalize_email(value),
            Rule::Username | Rule::Text => prompt::normalize_username(value),
        }
    }

    /// `DJANGO_SUPERUSER_<NAME>`.
    pub fn env_var(&self) -> String {
        format!("DJANGO_SUPERUSER_{}", self.name.to_uppercase())
    }

    /// `Error: That username is already taken.`
    pub fn taken(&self) -> String {
        format!("Error: That {} is already taken.", self.verbose_name)
    }
}

/// The login field and the other fields to ask for, in order.
#[derive(Clone, Debug)]
pub struct UserFields {
    pub identifier: Field,
    pub required: Vec<Field>,
}

impl UserFields {
    pub fn new(model: &UserModel, table: &UserTable) -> UserFields {
        let login = &model.username_field;
        let identifier = Field::new(table, login, false);
        let required = [("username", false), ("email", true)]
            .into_iter()
            .filter(|(name, _)| name != login && table.has_column(name))
            .map(|(name, blank)| Field::new(table, name, blank))
            .collect();
        UserFields {
            identifier,
            required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_field() {
        let table = crate::store::UserTable::auth_user();
        let fields = UserFields::new(&UserModel::default(), &table);
        assert_eq!(fields.identifier.prompt(None), "Username: ");
        assert_eq!(
            fields.identifier.prompt(Some("ann")),
            "Username (leave blank to use 'ann'): "
        );
        assert_eq!(
            fields.identifier.taken(),
            "Error: That username is already taken."
        );
        assert_eq!(fields.identifier.env_var(), "DJANGO_SUPERUSER_USERNAME");
        assert_eq!(fields.required.len(), 1);
        let email = &fields.required[0];
        assert_eq!(email.prompt(None), "Email address: ");
        assert_eq!(email.clean(""), Ok(()));
        assert!(email.clean("nope").is_err());
        assert_eq!(
            fields.identifier.clean("").unwrap_err(),
            "This field cannot be blank."
        );
        assert!(fields.identifier.clean("a b").is_err());
        assert_eq!(fields.identifier.max_length, 150);
    }

    #[test]
    fn email_login() {
        let table = crate::store::UserTable::auth_user();
        let model = UserModel {
            label: "emailusers.EmailUser".into(),
            app_label: "emailusers".into(),
            model_name: "emailuser".into(),
            table: "auth_user".into(),
            username_field: "email".into(),
            ..UserModel::default()
        };
        let fields = UserFields::new(&model, &table);
        assert_eq!(fields.identifier.prompt(None), "Email address: ");
        assert_eq!(
            fields.identifier.taken(),
            "Error: That email address is already taken."
        );
        assert_eq!(
            fields.identifier.clean("").unwrap_err(),
            "This field cannot be blank."
        );
        assert_eq!(
            fields.identifier.normalize("Ann@EXAMPLE.org"),
            "Ann@example.org"
        );
        assert_eq!(fields.required.len(), 1);
        assert_eq!(fields.required[0].name, "username");
        assert!(!fields.required[0].blank);
        assert_eq!(fields.identifier.env_var(), "DJANGO_SUPERUSER_EMAIL");
    }
}
