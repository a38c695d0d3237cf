//! Where template sources come from: the copies embedded at compile time and the recursive walk
//! of the template directory that overrides them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::TemplateError;

/// The templates compiled into the binary: (name, source).
pub(super) const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("index.html", include_str!("../../../templates/index.html")),
    (
        "registration/login.html",
        include_str!("../../../templates/registration/login.html"),
    ),
    (
        "registration/logged_out.html",
        include_str!("../../../templates/registration/logged_out.html"),
    ),
    ("400.html", include_str!("../../../templates/400.html")),
    ("403.html", include_str!("../../../templates/403.html")),
    ("404.html", include_str!("../../../templates/404.html")),
    ("405.html", include_str!("../../../templates/405.html")),
    ("413.html", include_str!("../../../templates/413.html")),
    ("426.html", include_str!("../../../templates/426.html")),
    ("429.html", include_str!("../../../templates/429.html")),
    ("500.html", include_str!("../../../templates/500.html")),
    ("503.html", include_str!("../../../templates/503.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    (
        "403_csrf.html",
        include_str!("../../../templates/403_csrf.html"),
    ),
];

/// File extensions picked up from the template directory.
const TEMPLATE_EXTENSIONS: &[&str] = &["html", "htm", "xml", "txt"];

/// How deep [`Templates::load`](super::Templates::load) descends into the template directory
/// (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// Recursively adds the template files under `dir` to `sources`, keyed by their `/`-separated
/// path relative to the root (`prefix` is the part already walked).
pub(super) fn collect_dir(
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
