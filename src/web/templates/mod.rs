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
//! | `username_label`, `username_max_length` | string (default `Username`), int (default 150) | `registration/login.html`: the login field's label and `maxlength`, from `USERNAME_FIELD` |
//! | `login_url` | string, default `/accounts/login/` | `registration/logged_out.html` |
//! | `reason` | string | `403_csrf.html` |
//! | `status`, `status_text`, `method`, `retry_after` | int, string, string, int | the error pages (`web::error`): `error.html` (status, status_text), `405.html` (method), `429.html` (retry_after) |
//!
//! Pages and what they need: `index.html` (user, csrf_token, rooms), `registration/login.html`
//! (csrf_token, form, next, username_label, username_max_length), `registration/logged_out.html`
//! (login_url), the error pages `400.html`, `403.html`, `404.html`, `405.html`, `413.html`,
//! `426.html`, `429.html`, `500.html`, `503.html` and `error.html` (any other status) (nothing
//! required; they still show the logout form when `user` and `csrf_token` are given), and
//! `403_csrf.html` (reason).
//!
//! # Globals available to templates
//!
//! * `static(path)` returns `/static/<path>` (a leading `/` in `path` is dropped).
//! * `csrf_input()` returns the safe markup
//!   `<input type="hidden" name="csrfmiddlewaretoken" value="…">` built from the `csrf_token`
//!   context variable (escaped), or the empty string when there is no token — the counterpart of
//!   Django's `{% csrf_token %}`.
//!
//! # Layout
//!
//! This file owns the public surface ([`Templates`], [`TemplateError`], [`STATIC_URL`]);
//! `loader.rs` gathers the sources (embedded copies and the directory walk) and `environment.rs`
//! configures minijinja (Django escaping, formatter, filters, globals).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use minijinja::{Environment, Error, ErrorKind, Value};

use self::environment::new_environment;
use self::loader::{EMBEDDED, collect_dir};

mod environment;
mod loader;
#[cfg(test)]
mod tests;

/// URL prefix of static files (Django's `STATIC_URL`).
pub const STATIC_URL: &str = "/static/";

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
