//! Server-side HTML templates (minijinja, Jinja2 syntax), rendered with Django-exact escaping.
//!
//! # Where templates come from
//!
//! [`Templates::load`] reads every template file (`*.html`, `*.htm`, `*.xml`, `*.txt`; hidden
//! files and directories are skipped) under the given directory, so operators can edit them the
//! way they would edit Django templates. Names are the paths relative to that directory with `/`
//! separators, e.g. `registration/login.html`. Files in the directory override the copies that
//! are embedded in the binary at compile time (from the repository's `templates/`); any page the
//! directory does not provide falls back to its embedded copy, and when the directory does not
//! exist at all the embedded set is used as a whole, so the binary works from anywhere. Every
//! template is compiled at load time: a syntax error fails startup with an error naming the file.
//!
//! # Escaping
//!
//! Templates whose name ends in `.html`/`.htm`/`.xml` are autoescaped exactly like Django 5.2's
//! `django.utils.html.escape`: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`, `"` → `&quot;`,
//! `'` → `&#x27;`, and nothing else (minijinja's own escaper would also turn `/` into `&#x2f;`).
//! The `escape`/`e` filters use the same table. Values marked safe (`|safe`, or produced by
//! [`minijinja::Value::from_safe_string`]) are written as they are. `none` and undefined values
//! print as the empty string, and booleans print as `True`/`False` like Python. Undefined
//! variables are "chainable": `form.errors` on a missing `form` is simply undefined (falsy, empty).
//!
//! # Context contract (what the web layer passes)
//!
//! Every key is optional unless stated; pass the value with `minijinja::context!` (wrap serde
//! structs in `minijinja::value::Serde`).
//!
//! | variable | shape | used by |
//! |---|---|---|
//! | `user` | username string, or none/absent when anonymous | `base.html`: shows the POST logout form when truthy |
//! | `csrf_token` | the masked CSRF token string (64 chars) | read by `csrf_input()` on every page that shows a form |
//! | `rooms` | list of `{id: int, title: string, staff_only: bool}` in display order | `index.html` |
//! | `form` | `{username: string, errors: [string], username_errors: [string], password_errors: [string]}` | `registration/login.html` (absent on a plain GET) |
//! | `next` | string or none | `registration/login.html`: hidden `next` input when non-empty |
//! | `login_url` | string, default `/accounts/login/` | `registration/logged_out.html` |
//! | `reason` | string | `403_csrf.html` |
//!
//! Pages and what they need: `index.html` (user, csrf_token, rooms), `registration/login.html`
//! (csrf_token, form, next), `registration/logged_out.html` (login_url), `404.html`, `500.html`
//! (nothing; they still show the logout form when `user` and `csrf_token` are given), and
//! `403_csrf.html` (reason).
//!
//! # Globals available to templates
//!
//! * `static(path)` returns `/static/<path>` (a leading `/` in `path` is dropped).
//! * `csrf_input()` returns the safe markup
//!   `<input type="hidden" name="csrfmiddlewaretoken" value="…">` built from the `csrf_token`
//!   context variable (escaped), or the empty string when there is no token — the counterpart of
//!   Django's `{% csrf_token %}`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
    escape_formatter,
};

/// URL prefix of static files (Django's `STATIC_URL`).
pub const STATIC_URL: &str = "/static/";

/// The templates compiled into the binary: (name, source).
const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    (
        "registration/login.html",
        include_str!("../../templates/registration/login.html"),
    ),
    (
        "registration/logged_out.html",
        include_str!("../../templates/registration/logged_out.html"),
    ),
    ("404.html", include_str!("../../templates/404.html")),
    ("500.html", include_str!("../../templates/500.html")),
    (
        "403_csrf.html",
        include_str!("../../templates/403_csrf.html"),
    ),
];

/// File extensions picked up from the template directory.
const TEMPLATE_EXTENSIONS: &[&str] = &["html", "htm", "xml", "txt"];

/// How deep [`Templates::load`] descends into the template directory (guards against symlink
/// loops).
const MAX_DEPTH: usize = 16;

/// Errors from loading or rendering templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template directory (or a file in it) could not be read.
    #[error("cannot read templates at {}: {error}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },
    /// The template path exists but is not a directory.
    #[error("template path {} is not a directory", path.display())]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// A template file is not valid UTF-8.
    #[error("template file {} is not valid UTF-8", path.display())]
    NotUtf8 {
        /// The offending file.
        path: PathBuf,
    },
    /// A template failed to compile.
    #[error("syntax error in template file {file}: {error}")]
    Syntax {
        /// The file (or `<embedded>/name` for a built-in template).
        file: String,
        /// minijinja's description, including the line.
        error: Error,
    },
    /// No template with this name is loaded.
    #[error("template {name} not found")]
    NotFound {
        /// The requested name.
        name: String,
    },
    /// Rendering failed at runtime.
    #[error("cannot render template {name}: {error}")]
    Render {
        /// The requested name.
        name: String,
        /// minijinja's description.
        error: Error,
    },
}

/// The compiled template set. Cheap to share behind an `Arc`; rendering takes `&self`.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    dir: Option<PathBuf>,
}

impl Templates {
    /// Loads every template from `dir` (so users can edit them like Django templates); when
    /// `dir` does not exist, falls back to copies embedded at compile time with `include_str!`
    /// from the repo's `templates/` (so the binary works anywhere). Templates missing from an
    /// existing `dir` also fall back to their embedded copies. Fails at startup (not at first
    /// request) on a syntax error, naming the file.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let use_dir = match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => true,
            Ok(_) => {
                return Err(TemplateError::NotADirectory {
                    path: dir.to_path_buf(),
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => {
                return Err(TemplateError::Io {
                    path: dir.to_path_buf(),
                    error,
                });
            }
        };

        // name -> (where it came from, source)
        let mut sources: BTreeMap<String, (String, Cow<'static, str>)> = EMBEDDED
            .iter()
            .map(|&(name, src)| {
                (
                    name.to_owned(),
                    (format!("<embedded>/{name}"), Cow::Borrowed(src)),
                )
            })
            .collect();
        if use_dir {
            collect_dir(dir, "", 0, &mut sources)?;
        }

        let mut env = new_environment();
        for (name, (file, source)) in sources {
            env.add_template_owned(name, source)
                .map_err(|error| TemplateError::Syntax { file, error })?;
        }
        Ok(Templates {
            env,
            dir: use_dir.then(|| dir.to_path_buf()),
        })
    }

    /// The directory the templates were read from, or `None` when only the embedded copies are
    /// in use (useful for a startup log line).
    pub fn source_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Renders template `name` (e.g. `"registration/login.html"`) with the context `ctx` (see
    /// the module docs for the variables each page reads).
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|error| {
            if error.kind() == ErrorKind::TemplateNotFound {
                TemplateError::NotFound {
                    name: name.to_owned(),
                }
            } else {
                TemplateError::Render {
                    name: name.to_owned(),
                    error,
                }
            }
        })?;
        template.render(ctx).map_err(|error| TemplateError::Render {
            name: name.to_owned(),
            error,
        })
    }
}

/// Recursively adds the template files under `dir` to `sources`, keyed by their `/`-separated
/// path relative to the root (`prefix` is the part already walked).
fn collect_dir(
    dir: &Path,
    prefix: &str,
    depth: usize,
    sources: &mut BTreeMap<String, (String, Cow<'static, str>)>,
) -> Result<(), TemplateError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let io_err = |error| TemplateError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(io_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    entries.sort_by_key(|entry| entry.file_name());

    for entry in entries {
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not representable as a template name
        };
        if file_name.starts_with('.') {
            continue;
        }
        // Follow symlinks, like Django's filesystem loader does.
        let meta = fs::metadata(&path).map_err(|error| TemplateError::Io {
            path: path.clone(),
            error,
        })?;
        let name = format!("{prefix}{file_name}");
        if meta.is_dir() {
            collect_dir(&path, &format!("{name}/"), depth + 1, sources)?;
            continue;
        }
        let wanted = Path::new(&file_name)
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| TEMPLATE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
        if !meta.is_file() || !wanted {
            continue;
        }
        let bytes = fs::read(&path).map_err(|error| TemplateError::Io {
            path: path.clone(),
            error,
        })?;
        let source =
            String::from_utf8(bytes).map_err(|_| TemplateError::NotUtf8 { path: path.clone() })?;
        sources.insert(name, (path.display().to_string(), Cow::Owned(source)));
    }
    Ok(())
}

/// Builds an environment with the Django-like configuration (escaping, globals, whitespace).
fn new_environment() -> Environment<'static> {
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
fn django_escape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;
    use minijinja::value::Serde;
    use serde::Serialize;

    const TOKEN: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01";
    const NASTY: &str = r#"Staff <room> & "quotes" 'x'"#;
    const NASTY_ESCAPED: &str = "Staff &lt;room&gt; &amp; &quot;quotes&quot; &#x27;x&#x27;";

    #[derive(Serialize)]
    struct Room {
        id: i64,
        title: &'static str,
        staff_only: bool,
    }

    fn embedded() -> Templates {
        Templates::load(Path::new("/nonexistent/whisper-templates-dir")).expect("embedded load")
    }

    #[test]
    fn missing_dir_falls_back_to_embedded_templates() {
        let t = embedded();
        assert!(t.source_dir().is_none());
        for (name, _) in EMBEDDED {
            let html = t
                .render(name, context! {})
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(html.starts_with("<!DOCTYPE html>\n"), "{name}: {html}");
            assert!(html.contains(r#"<meta charset="UTF-8">"#), "{name}");
        }
    }

    #[test]
    fn django_escape_table() {
        assert_eq!(django_escape(NASTY), NASTY_ESCAPED);
        assert_eq!(django_escape("a/b </script>"), "a/b &lt;/script&gt;");
        assert_eq!(django_escape("Ärger ☃"), "Ärger ☃");
        assert_eq!(django_escape(""), "");
    }

    #[test]
    fn index_lists_rooms_escaped() {
        let rooms = vec![
            Room {
                id: 1,
                title: "Lobby",
                staff_only: false,
            },
            Room {
                id: 7,
                title: NASTY,
                staff_only: true,
            },
        ];
        let html = embedded()
            .render(
                "index.html",
                context! { user => "bob", csrf_token => TOKEN, rooms => Serde(&rooms) },
            )
            .unwrap();
        assert!(html.contains("<title>MultiChat Example</title>"), "{html}");
        assert!(html.contains("<h1>MultiChat Example</h1>"), "{html}");
        assert!(html.contains(r#"<ul class="rooms">"#));
        assert!(html.contains(r#"<li class="room-link" data-room-id="1">Lobby</li>"#));
        assert!(html.contains(&format!(
            r#"<li class="room-link" data-room-id="7">{NASTY_ESCAPED}</li>"#
        )));
        assert!(!html.contains("class=\"empty\""));
        assert!(html.contains(r#"<div id="chats"></div>"#));
        assert!(html.contains(r#"<script src="/static/js/chat.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/static/css/style.css">"#));
        assert!(!html.contains("<script>"), "no inline script");
        // logged in: POST logout form with the CSRF input
        assert!(html.contains(r#"<form method="post" action="/accounts/logout/" class="logout">"#));
        assert!(html.contains(&format!(
            r#"<input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}">"#
        )));
        assert!(html.contains(r#"<button type="submit" title="Logged in as bob">Logout</button>"#));
    }

    #[test]
    fn index_empty_state() {
        let rooms: Vec<Room> = Vec::new();
        let html = embedded()
            .render(
                "index.html",
                context! { user => "bob", csrf_token => TOKEN, rooms => Serde(&rooms) },
            )
            .unwrap();
        assert!(html.contains(
            r#"<p class="empty">No chat rooms defined. Maybe make some in the <a href="/admin/">admin</a>?</p>"#
        ));
        let ul = html.find(r#"<ul class="rooms">"#).unwrap();
        let p = html.find(r#"<p class="empty">"#).unwrap();
        let end = html.find("</ul>").unwrap();
        assert!(ul < p && p < end, "empty text sits inside the ul");
        assert!(!html.contains("room-link"));
    }

    #[test]
    fn anonymous_pages_have_no_logout_form() {
        let html = embedded().render("404.html", context! {}).unwrap();
        assert!(!html.contains("logout"));
        assert!(html.contains("<title>Not Found</title>"));
        assert!(html.contains("<h1>Not Found</h1>"));
        assert!(html.contains("<p>Sorry, but we can't find that page.</p>"));
        let html = embedded()
            .render(
                "index.html",
                context! { user => (), rooms => Vec::<Value>::new() },
            )
            .unwrap();
        assert!(!html.contains("logout"));
    }

    #[test]
    fn username_in_header_is_escaped() {
        let html = embedded()
            .render("500.html", context! { user => NASTY, csrf_token => TOKEN })
            .unwrap();
        assert!(html.contains(&format!(r#"title="Logged in as {NASTY_ESCAPED}""#)));
        assert!(html.contains("<h1>Server Error</h1>"));
        assert!(html.contains(
            "<p>The server has encountered an internal error. Please try again later.</p>"
        ));
    }

    #[test]
    fn login_plain_get() {
        let html = embedded()
            .render("registration/login.html", context! { csrf_token => TOKEN })
            .unwrap();
        assert!(html.contains("<title>Login</title>"));
        assert!(html.contains("<h1>Login</h1>"));
        assert!(html.contains(r#"<form action="" method="post" class="login">"#));
        assert!(html.contains(r#"<label for="id_username">Username:</label>"#));
        assert!(html.contains(
            r#"<input type="text" name="username" autofocus autocapitalize="none" autocomplete="username" maxlength="150" required id="id_username">"#
        ));
        assert!(html.contains(r#"<label for="id_password">Password:</label>"#));
        assert!(html.contains(
            r#"<input type="password" name="password" autocomplete="current-password" required id="id_password">"#
        ));
        assert!(html.contains(&format!(
            r#"<input type="hidden" name="csrfmiddlewaretoken" value="{TOKEN}">"#
        )));
        assert!(html.contains(r#"<button type="submit">Login</button>"#));
        assert!(!html.contains("errorlist"));
        assert!(!html.contains(r#"name="next""#));
    }

    #[test]
    fn login_with_errors_and_next() {
        let message = "Please enter a correct username and password. Note that both fields may be case-sensitive.";
        let html = embedded()
            .render(
                "registration/login.html",
                context! {
                    csrf_token => TOKEN,
                    next => "/?a=1&b=\"2\"",
                    form => context! {
                        username => NASTY,
                        errors => vec![message],
                        username_errors => Vec::<String>::new(),
                        password_errors => vec!["This field is required."],
                    },
                },
            )
            .unwrap();
        assert!(html.contains(&format!(
            r#"<ul class="errorlist nonfield"><li>{message}</li></ul>"#
        )));
        assert!(html.contains(&format!(
            r#"<input type="text" name="username" value="{NASTY_ESCAPED}" autofocus autocapitalize="none" autocomplete="username" maxlength="150" required id="id_username">"#
        )));
        let err = html
            .find(r#"<ul class="errorlist"><li>This field is required.</li></ul>"#)
            .expect("password error");
        let field = html.find(r#"name="password""#).unwrap();
        assert!(err < field, "errors precede the field");
        assert!(html.contains(
            r#"<input type="password" name="password" autocomplete="current-password" required aria-invalid="true" id="id_password">"#
        ));
        assert!(
            html.contains(r#"<input type="hidden" name="next" value="/?a=1&amp;b=&quot;2&quot;">"#)
        );
    }

    #[test]
    fn login_username_required_error() {
        let html = embedded()
            .render(
                "registration/login.html",
                context! {
                    csrf_token => TOKEN,
                    next => (),
                    form => context! {
                        username => "",
                        errors => Vec::<String>::new(),
                        username_errors => vec!["This field is required."],
                        password_errors => vec!["This field is required."],
                    },
                },
            )
            .unwrap();
        assert_eq!(
            html.matches(r#"<ul class="errorlist"><li>This field is required.</li></ul>"#)
                .count(),
            2
        );
        assert!(!html.contains("nonfield"));
        assert!(!html.contains(r#"value="""#));
        assert!(!html.contains(r#"name="next""#));
    }

    #[test]
    fn logged_out_page() {
        let t = embedded();
        let html = t
            .render("registration/logged_out.html", context! {})
            .unwrap();
        assert!(html.contains("<h1>Logged out</h1>"));
        assert!(html.contains("Thanks for spending some quality time with the web site today."));
        assert!(html.contains(r#"<a href="/accounts/login/">Log in again</a>"#));
        let html = t
            .render(
                "registration/logged_out.html",
                context! { login_url => "/login/?x=1&y=2" },
            )
            .unwrap();
        assert!(html.contains(r#"<a href="/login/?x=1&amp;y=2">Log in again</a>"#));
    }

    #[test]
    fn csrf_failure_page() {
        let html = embedded()
            .render(
                "403_csrf.html",
                context! { reason => "CSRF token from POST <missing>." },
            )
            .unwrap();
        assert!(html.contains("<title>Forbidden (403)</title>"));
        assert!(html.contains("<h1>Forbidden (403)</h1>"));
        assert!(html.contains("CSRF verification failed. Request aborted."));
        assert!(html.contains("CSRF token from POST &lt;missing&gt;."));
    }

    #[test]
    fn formatter_details() {
        let mut env = new_environment();
        env.add_template(
            "x.html",
            "{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e|safe }}|{{ e|escape }}|{{ n }}|{{ missing.attr }}|{{ static('/css/x.css') }}",
        )
        .unwrap();
        env.add_template("x.txt", "{{ e }}").unwrap();
        let ctx = context! { a => "a/b", b => true, c => 3, d => (), e => "<&>" , n => 1.5 };
        assert_eq!(
            env.get_template("x.html")
                .unwrap()
                .render(ctx.clone())
                .unwrap(),
            "a/b|True|3||<&>|&lt;&amp;&gt;|1.5||/static/css/x.css"
        );
        assert_eq!(
            env.get_template("x.txt").unwrap().render(ctx).unwrap(),
            "<&>"
        );
    }

    #[test]
    fn csrf_input_escapes_and_handles_missing_token() {
        let mut env = new_environment();
        env.add_template("f.html", "[{{ csrf_input() }}]").unwrap();
        let t = env.get_template("f.html").unwrap();
        assert_eq!(t.render(context! {}).unwrap(), "[]");
        assert_eq!(
            t.render(context! { csrf_token => "a\"b" }).unwrap(),
            r#"[<input type="hidden" name="csrfmiddlewaretoken" value="a&quot;b">]"#
        );
    }

    #[test]
    fn render_unknown_template_is_not_found() {
        match embedded().render("nope.html", context! {}) {
            Err(TemplateError::NotFound { name }) => assert_eq!(name, "nope.html"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn directory_overrides_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("registration")).unwrap();
        fs::write(
            dir.path().join("404.html"),
            "{% extends 'base.html' %}{% block content %}custom {{ 'x' }}{% endblock %}",
        )
        .unwrap();
        fs::write(dir.path().join("registration/extra.txt"), "plain <{{ v }}>").unwrap();
        fs::write(dir.path().join(".hidden.html"), "{% broken").unwrap();
        fs::write(dir.path().join("notes.md"), "{% broken").unwrap();
        let t = Templates::load(dir.path()).unwrap();
        assert_eq!(t.source_dir(), Some(dir.path()));
        assert!(
            t.render("404.html", context! {})
                .unwrap()
                .contains("custom x")
        );
        assert_eq!(
            t.render("registration/extra.txt", context! { v => "&" })
                .unwrap(),
            "plain <&>"
        );
        // not in the directory: embedded copy
        assert!(
            t.render("500.html", context! {})
                .unwrap()
                .contains("Server Error")
        );
    }

    #[test]
    fn syntax_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("registration")).unwrap();
        fs::write(
            dir.path().join("registration/login.html"),
            "<p>\n{% if form %}\n",
        )
        .unwrap();
        let err = Templates::load(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TemplateError::Syntax { .. }), "{text}");
        assert!(text.contains("registration/login.html"), "{text}");
    }

    #[test]
    fn templates_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Templates>();
    }

    #[test]
    fn path_that_is_a_file_is_rejected() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            Templates::load(file.path()),
            Err(TemplateError::NotADirectory { .. })
        ));
    }
}
