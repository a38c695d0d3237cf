//! The minijinja environment: Django-exact escaping (formatter and `escape`/`e` filters),
//! Python-like value display, and the `static()`/`csrf_input()` globals.

use std::borrow::Cow;
use std::fmt;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{
    AutoEscape, Environment, Error, Output, State, UndefinedBehavior, Value, escape_formatter,
};

use super::STATIC_URL;

/// Builds an environment with the Django-like configuration (escaping, globals, whitespace).
pub(super) fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Block tags do not leave blank lines behind (Jinja's trim_blocks + lstrip_blocks).
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_formatter(django_formatter);
    env.add_filter("escape", escape_filter);
    env.add_filter("e", escape_filter);
    env.add_function("static", static_url);
    env.add_function("csrf_input", csrf_input);
    env
}

/// Writes `s` escaped exactly like Django 5.2's `django.utils.html.escape`.
fn write_django_escaped<W: fmt::Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let replacement = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        out.write_str(replacement)?;
        start = i + 1;
    }
    out.write_str(&s[start..])
}

/// Returns `s` escaped like Django's `escape`.
pub(super) fn django_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    // Writing into a String cannot fail.
    let _ = write_django_escaped(&mut out, s);
    out
}

/// How a value prints in a template (before escaping): Python-like for booleans, empty for
/// none/undefined.
fn display_text(value: &Value) -> Cow<'_, str> {
    if value.is_undefined() || value.is_none() {
        Cow::Borrowed("")
    } else if value.kind() == ValueKind::Bool {
        Cow::Borrowed(if value.is_true() { "True" } else { "False" })
    } else if let Some(s) = value.as_str() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(value.to_string())
    }
}

/// The environment's formatter: Django escaping in HTML templates, minijinja's default
/// otherwise.
fn django_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if !matches!(state.auto_escape(), AutoEscape::Html) || value.is_safe() {
        return escape_formatter(out, state, value);
    }
    write_django_escaped(out, &display_text(value)).map_err(Error::from)
}

/// `|escape` / `|e`: Django escaping; already-safe values pass unchanged.
fn escape_filter(value: &Value) -> Value {
    if value.is_safe() {
        value.clone()
    } else {
        Value::from_safe_string(django_escape(&display_text(value)))
    }
}

/// `static(path)` → `/static/<path>`.
fn static_url(path: &str) -> String {
    format!("{STATIC_URL}{}", path.trim_start_matches('/'))
}

/// `csrf_input()` → the hidden `csrfmiddlewaretoken` input for the `csrf_token` in the context.
fn csrf_input(state: &State) -> Value {
    let token = state.lookup("csrf_token").unwrap_or(Value::UNDEFINED);
    let token = display_text(&token);
    if token.is_empty() {
        return Value::from_safe_string(String::new());
    }
    let mut html = String::from(r#"<input type="hidden" name="csrfmiddlewaretoken" value=""#);
    let _ = write_django_escaped(&mut html, &token);
    html.push_str(r#"">"#);
    Value::from_safe_string(html)
}
