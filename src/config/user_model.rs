//! The user model and how sessions name their backend: `AUTH_USER_MODEL`, `AUTH_USER_TABLE`,
//! `USERNAME_FIELD` and `AUTHENTICATION_BACKENDS`, with Django's names and defaults.
//!
//! * `AUTH_USER_MODEL` (`"app_label.ModelName"`, default `auth.User`): the table is Django's
//!   default `db_table`, `app_label + "_" + modelname` (`users.User` → `users_user`), unless
//!   `AUTH_USER_TABLE` names it (for a model with `Meta.db_table`).
//! * `USERNAME_FIELD` (default `username`): the model's `USERNAME_FIELD`, i.e. the column logins
//!   look users up by and whose value is `get_username()` (what chat events show). Django reads
//!   it from the model class; Whisper cannot, so it must be given when it is not `username`.
//! * `AUTHENTICATION_BACKENDS` (comma-separated dotted paths, default
//!   `django.contrib.auth.backends.ModelBackend`): a session naming a backend outside the list is
//!   anonymous, as in Django's `get_user`; Whisper's own logins store the first one (what
//!   Django's `login()` stores when that backend authenticated). Every listed backend must
//!   resolve users as `ModelBackend.get_user` does — by primary key, refusing inactive users —
//!   which holds for ModelBackend subclasses that do not override `get_user` or
//!   `user_can_authenticate` (django-allauth's `AuthenticationBackend`, for one).
//!
//! Every name ends up in SQL, so each must be a plain identifier (ASCII letters, digits and
//! `_`, at most 63 bytes as PostgreSQL allows); anything else is refused at startup.

use super::{ConfigError, invalid};
use crate::django::sessions::MODEL_BACKEND;

/// Django's default `AUTH_USER_MODEL`.
pub const DEFAULT_USER_MODEL: &str = "auth.User";
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// Backends known to resolve users differently from `ModelBackend.get_user`.
const INCOMPATIBLE_BACKENDS: &[(&str, &str)] = &[
    (
        "django.contrib.auth.backends.AllowAllUsersModelBackend",
        "it lets inactive users in",
    ),
    (
        "django.contrib.auth.backends.AllowAllUsersRemoteUserBackend",
        "it lets inactive users in",
    ),
];

/// Columns `USERNAME_FIELD` cannot name.
const RESERVED_COLUMNS: &[&str] = &["id", "password", "last_login"];

/// The user model Django's auth uses, as far as Whisper needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserModel {
    /// `AUTH_USER_MODEL` as given (`users.User`).
    pub label: String,
    /// Its app label (`users`).
    pub app_label: String,
    /// Its `model_name` (the lowercased class name, `user`).
    pub model_name: String,
    /// The table: `AUTH_USER_TABLE`, else `app_label_modelname`.
    pub table: String,
    /// `USERNAME_FIELD`: the login column, whose value is `get_username()`.
    pub username_field: String,
    /// `AUTHENTICATION_BACKENDS`, in order (never empty).
    pub authentication_backends: Vec<String>,
}

impl Default for UserModel {
    /// Django's defaults: `auth.User` on `auth_user`, logging in by `username`, ModelBackend.
    fn default() -> Self {
        UserModel {
            label: DEFAULT_USER_MODEL.to_string(),
            app_label: "auth".to_string(),
            model_name: "user".to_string(),
            table: "auth_user".to_string(),
            username_field: "username".to_string(),
            authentication_backends: vec![MODEL_BACKEND.to_string()],
        }
    }
}

impl UserModel {
    /// True unless the model is Django's own `auth.User` (Django resolves model names
    /// case-insensitively, so `auth.user` is the same model).
    pub fn is_custom(&self) -> bool {
        !(self.app_label == "auth" && self.model_name == "user")
    }

    /// The backend Whisper's logins store in `_auth_user_backend`: the first listed.
    pub fn login_backend(&self) -> &str {
        self.authentication_backends
            .first()
            .map_or(MODEL_BACKEND, String::as_str)
    }

    /// Django's `get_user`: only a listed backend may resolve a session's user.
    pub fn accepts_backend(&self, path: &str) -> bool {
        self.authentication_backends.iter().any(|b| b == path)
    }

    /// The `verbose_name` of the `USERNAME_FIELD` field: AbstractUser's for `username` and
    /// `email`, otherwise Django's default (the field name with `_` as spaces). Used in the
    /// login form's label and error, and in the CLI prompts.
    pub fn username_verbose_name(&self) -> String {
        verbose_name(&self.username_field)
    }
}

/// A field's `verbose_name`: AbstractUser's known ones, else Django's default.
pub fn verbose_name(field: &str) -> String {
    match field {
        "email" => "email address".to_string(),
        "first_name" => "first name".to_string(),
        "last_name" => "last name".to_string(),
        other => other.replace('_', " "),
    }
}

/// Django's `capfirst`.
pub fn capfirst(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// ASCII letter or `_`, then letters, digits and `_`; at most 63 bytes.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_IDENTIFIER
}

fn identifier(name: &'static str, raw: &str, what: &str) -> Result<String, ConfigError> {
    if is_plain_identifier(raw) {
        Ok(raw.to_string())
    } else {
        Err(invalid(
            name,
            format!(
                "{raw:?} is not a plain identifier for {what} (ASCII letters, digits and _, not \
                 starting with a digit, at most {MAX_IDENTIFIER} characters)"
            ),
        ))
    }
}

/// Reads the four settings from `get` (unset names take Django's defaults).
pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<UserModel, ConfigError> {
    let value = |name: &str| {
        get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let label = value("AUTH_USER_MODEL").unwrap_or_else(|| DEFAULT_USER_MODEL.to_string());
    let form = || {
        invalid(
            "AUTH_USER_MODEL",
            format!("{label:?} must be of the form 'app_label.ModelName' (e.g. users.User)"),
        )
    };
    let (app, model) = label.split_once('.').ok_or_else(form)?;
    if app.is_empty() || model.is_empty() || model.contains('.') {
        return Err(form());
    }
    let app_label = identifier("AUTH_USER_MODEL", app, "the app label")?;
    let model_name = identifier("AUTH_USER_MODEL", model, "the model name")?.to_lowercase();
    let mut user_model = UserModel {
        table: format!("{app_label}_{model_name}"),
        label: label.clone(),
        app_label,
        model_name,
        ..UserModel::default()
    };
    let custom = user_model.is_custom();
    if let Some(table) = value("AUTH_USER_TABLE") {
        let table = identifier("AUTH_USER_TABLE", &table, "a table name")?;
        if !custom && table != "auth_user" {
            return Err(invalid(
                "AUTH_USER_TABLE",
                format!(
                    "{table:?} cannot be the table of auth.User, which is always auth_user; set \
                     AUTH_USER_MODEL to the custom model that uses it"
                ),
            ));
        }
        user_model.table = table;
    } else if user_model.table.len() > MAX_IDENTIFIER {
        return Err(invalid(
            "AUTH_USER_MODEL",
            format!(
                "the table name {:?} is longer than {MAX_IDENTIFIER} characters (Django shortens \
                 it with a hash): set AUTH_USER_TABLE to the table's real name",
                user_model.table
            ),
        ));
    }
    if let Some(field) = value("USERNAME_FIELD") {
        let field = identifier("USERNAME_FIELD", &field, "a column name")?;
        if RESERVED_COLUMNS.contains(&field.as_str()) {
            return Err(invalid(
                "USERNAME_FIELD",
                format!("{field:?} cannot be the login field (use the model's USERNAME_FIELD)"),
            ));
        }
        if !custom && field != "username" {
            return Err(invalid(
                "USERNAME_FIELD",
                format!(
                    "{field:?}: auth.User logs in by username; set AUTH_USER_MODEL to the custom \
                     model whose USERNAME_FIELD is {field}"
                ),
            ));
        }
        user_model.username_field = field;
    }
    if let Some(raw) = get("AUTHENTICATION_BACKENDS") {
        user_model.authentication_backends = parse_backends(&raw)?;
    }
    Ok(user_model)
}

/// A comma-separated list of dotted Python paths, none known to resolve users differently.
fn parse_backends(raw: &str) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "AUTHENTICATION_BACKENDS";
    let backends: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if backends.is_empty() {
        return Err(invalid(
            NAME,
            format!("is empty; list at least one backend (Django's default is {MODEL_BACKEND})"),
        ));
    }
    for path in &backends {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.len() < 2 || !parts.iter().all(|p| is_plain_identifier(p)) {
            return Err(invalid(
                NAME,
                format!(
                    "{path:?} is not a dotted Python path (e.g. {MODEL_BACKEND}); separate \
                     backends with commas"
                ),
            ));
        }
        if let Some((_, why)) = INCOMPATIBLE_BACKENDS.iter().find(|(p, _)| p == path) {
            return Err(invalid(
                NAME,
                format!(
                    "{path} cannot be honoured: {why}, while Whisper resolves every session's \
                     user as ModelBackend.get_user does (by primary key, refusing inactive users)"
                ),
            ));
        }
    }
    Ok(backends)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<UserModel, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(&|k| map.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_djangos() {
        let m = load(&[]).unwrap();
        assert_eq!(m, UserModel::default());
        assert!(!m.is_custom());
        assert_eq!(m.table, "auth_user");
        assert_eq!(m.login_backend(), MODEL_BACKEND);
        assert!(m.accepts_backend(MODEL_BACKEND));
        assert!(!m.accepts_backend("allauth.account.auth_backends.AuthenticationBackend"));
        assert_eq!(m.username_verbose_name(), "username");
        // Django's model lookup is case-insensitive.
        assert!(
            !load(&[("AUTH_USER_MODEL", "auth.user")])
                .unwrap()
                .is_custom()
        );
    }

    #[test]
    fn the_forks_model() {
        let m = load(&[
            ("AUTH_USER_MODEL", "users.User"),
            (
                "AUTHENTICATION_BACKENDS",
                "django.contrib.auth.backends.ModelBackend, \
                 allauth.account.auth_backends.AuthenticationBackend",
            ),
        ])
        .unwrap();
        assert!(m.is_custom());
        assert_eq!(
            (m.app_label.as_str(), m.model_name.as_str()),
            ("users", "user")
        );
        assert_eq!(m.table, "users_user");
        assert_eq!(m.username_field, "username");
        assert_eq!(m.login_backend(), MODEL_BACKEND);
        assert!(m.accepts_backend("allauth.account.auth_backends.AuthenticationBackend"));
    }

    #[test]
    fn email_login_and_table_override() {
        let m = load(&[
            ("AUTH_USER_MODEL", "accounts.EmailUser"),
            ("AUTH_USER_TABLE", "people"),
            ("USERNAME_FIELD", "email"),
        ])
        .unwrap();
        assert_eq!(m.table, "people");
        assert_eq!(m.username_field, "email");
        assert_eq!(m.username_verbose_name(), "email address");
        assert_eq!(capfirst(&m.username_verbose_name()), "Email address");
        assert_eq!(verbose_name("phone_number"), "phone number");
    }

    #[test]
    fn bad_values_are_named() {
        for (vars, name, needle) in [
            (
                vec![("AUTH_USER_MODEL", "users")],
                "AUTH_USER_MODEL",
                "app_label.ModelName",
            ),
            (
                vec![("AUTH_USER_MODEL", "a.b.C")],
                "AUTH_USER_MODEL",
                "app_label.ModelName",
            ),
            (
                vec![("AUTH_USER_MODEL", ".User")],
                "AUTH_USER_MODEL",
                "app_label.ModelName",
            ),
            (
                vec![("AUTH_USER_MODEL", "users.Us\"er")],
                "AUTH_USER_MODEL",
                "identifier",
            ),
            (
                vec![("AUTH_USER_MODEL", "1users.User")],
                "AUTH_USER_MODEL",
                "identifier",
            ),
            (
                vec![
                    ("AUTH_USER_MODEL", "users.User"),
                    ("AUTH_USER_TABLE", "x; DROP"),
                ],
                "AUTH_USER_TABLE",
                "identifier",
            ),
            (
                vec![("AUTH_USER_TABLE", "people")],
                "AUTH_USER_TABLE",
                "auth_user",
            ),
            (
                vec![("USERNAME_FIELD", "email")],
                "USERNAME_FIELD",
                "auth.User",
            ),
            (
                vec![
                    ("AUTH_USER_MODEL", "users.User"),
                    ("USERNAME_FIELD", "password"),
                ],
                "USERNAME_FIELD",
                "login field",
            ),
            (
                vec![
                    ("AUTH_USER_MODEL", "users.User"),
                    ("USERNAME_FIELD", "e-mail"),
                ],
                "USERNAME_FIELD",
                "identifier",
            ),
            (
                vec![("AUTHENTICATION_BACKENDS", " , ")],
                "AUTHENTICATION_BACKENDS",
                "empty",
            ),
            (
                vec![("AUTHENTICATION_BACKENDS", "ModelBackend")],
                "AUTHENTICATION_BACKENDS",
                "dotted",
            ),
            (
                vec![(
                    "AUTHENTICATION_BACKENDS",
                    "django.contrib.auth.backends.AllowAllUsersModelBackend",
                )],
                "AUTHENTICATION_BACKENDS",
                "inactive",
            ),
        ] {
            let err = load(&vars).unwrap_err();
            assert!(
                err.contains(name) && err.contains(needle),
                "{vars:?}: {err}"
            );
        }
        let long = format!("users.{}", "U".repeat(60));
        let err = load(&[("AUTH_USER_MODEL", &long)]).unwrap_err();
        assert!(err.contains("AUTH_USER_TABLE"), "{err}");
    }
}
