//! `DJANGO_VERSION` and `PASSWORD_HASHERS`: which Django release's hasher parameters Whisper
//! uses, and Django's `PASSWORD_HASHERS` setting as a JSON list of its dotted class names (the
//! first one hashes new passwords; all of them verify). Built once into the
//! [`HasherConfig`] every part of Whisper uses. Anything Whisper does not know is refused at
//! startup with the valid values; nothing is assumed.

use crate::django::hashers::{self, DjangoVersion, HasherConfig};

use super::{ConfigError, invalid};

/// `DJANGO_VERSION` (default 5.2) and `PASSWORD_HASHERS` (default: that version's list).
pub fn resolve(
    version: Option<&str>,
    password_hashers: Option<&str>,
) -> Result<HasherConfig, ConfigError> {
    let version = match version {
        Some(v) => v
            .parse::<DjangoVersion>()
            .map_err(|e| invalid("DJANGO_VERSION", e))?,
        None => DjangoVersion::V5_2,
    };
    let Some(raw) = password_hashers.filter(|s| !s.trim().is_empty()) else {
        return Ok(HasherConfig::new(version));
    };
    let names = parse_list(raw)?;
    let mut algorithms = Vec::with_capacity(names.len());
    for name in &names {
        algorithms.push(algorithm(name, version)?);
    }
    if algorithms.is_empty() {
        return Err(invalid(
            "PASSWORD_HASHERS",
            format!(
                "the list is empty; Django needs at least one hasher. Valid names for Django \
                 {version}: {}",
                valid_names(version)
            ),
        ));
    }
    HasherConfig::with_hashers(version, &algorithms)
        .map_err(|e| invalid("PASSWORD_HASHERS", e.to_string()))
}

/// A JSON list of strings, as Django's setting is a list of dotted paths.
fn parse_list(raw: &str) -> Result<Vec<String>, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
        invalid(
            "PASSWORD_HASHERS",
            format!(
                "not valid JSON ({e}); write a JSON list such as \
                 [\"django.contrib.auth.hashers.Argon2PasswordHasher\", \
                 \"django.contrib.auth.hashers.PBKDF2PasswordHasher\"]"
            ),
        )
    })?;
    let list = value.as_array().ok_or_else(|| {
        invalid(
            "PASSWORD_HASHERS",
            "must be a JSON list of Django hasher class names",
        )
    })?;
    list.iter()
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                invalid(
                    "PASSWORD_HASHERS",
                    format!("{v} is not a string (a Django hasher class name)"),
                )
            })
        })
        .collect()
}

/// The algorithm of one dotted class name, if `version` ships it and Whisper implements it.
fn algorithm(name: &str, version: DjangoVersion) -> Result<&'static str, ConfigError> {
    let refuse = |why: String| {
        Err(invalid(
            "PASSWORD_HASHERS",
            format!(
                "{why}. Valid names for Django {version}: {}",
                valid_names(version)
            ),
        ))
    };
    let Some(algorithm) = hashers::algorithm_of(name.trim()) else {
        return refuse(format!("{name:?} is not a Django password hasher"));
    };
    if algorithm == "crypt" {
        return refuse(format!(
            "{name} is not supported: Unix crypt(3) hashes (deprecated in Django 4.1, removed \
             in 5.0) cannot be verified by Whisper; have those users set new passwords, then \
             remove the hasher"
        ));
    }
    if !version.shipped_hashers().contains(&algorithm) {
        return refuse(format!("Django {version} does not ship {name}"));
    }
    Ok(algorithm)
}

/// The dotted names `version` ships that Whisper implements (everything but `crypt`).
pub fn valid_names(version: DjangoVersion) -> String {
    version
        .shipped_hashers()
        .iter()
        .filter(|a| **a != "crypt")
        .filter_map(|a| hashers::class_of(a))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(version: Option<&str>, hashers: &str) -> String {
        resolve(version, Some(hashers)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_lists() {
        let cfg = resolve(None, None).unwrap();
        assert_eq!(cfg.version, DjangoVersion::V5_2);
        assert_eq!(cfg.hashers, hashers::DEFAULT_HASHERS);
        let cfg = resolve(
            Some("6.1"),
            Some(
                r#"["django.contrib.auth.hashers.Argon2PasswordHasher",
                    "django.contrib.auth.hashers.PBKDF2PasswordHasher"]"#,
            ),
        )
        .unwrap();
        assert_eq!(cfg.version, DjangoVersion::V6_1);
        assert_eq!(cfg.hashers, ["argon2", "pbkdf2_sha256"]);
        assert_eq!(cfg.preferred(), "argon2");
        let cfg = resolve(
            Some("4.2"),
            Some(r#"["django.contrib.auth.hashers.UnsaltedMD5PasswordHasher"]"#),
        )
        .unwrap();
        assert_eq!(cfg.hashers, ["unsalted_md5"]);
    }

    #[test]
    fn refusals_name_the_setting_and_the_valid_values() {
        let e = resolve(Some("5.3"), None).unwrap_err().to_string();
        assert!(e.contains("DJANGO_VERSION"), "{e}");
        assert!(e.contains("4.2, 5.0, 5.1, 5.2, 6.0, 6.1"), "{e}");
        for (version, raw, says) in [
            (None, "[]", "empty"),
            (None, "not json", "not valid JSON"),
            (None, r#"{"a": 1}"#, "JSON list"),
            (None, "[1]", "not a string"),
            (
                None,
                r#"["myapp.hashers.Fancy"]"#,
                "not a Django password hasher",
            ),
            (
                Some("5.2"),
                r#"["django.contrib.auth.hashers.SHA1PasswordHasher"]"#,
                "does not ship",
            ),
            (
                Some("4.2"),
                r#"["django.contrib.auth.hashers.CryptPasswordHasher"]"#,
                "crypt(3)",
            ),
        ] {
            let e = err(version, raw);
            assert!(e.contains("PASSWORD_HASHERS"), "{e}");
            assert!(e.contains(says), "{raw}: {e}");
        }
        let e = err(Some("6.1"), r#"["x"]"#);
        assert!(
            e.contains("django.contrib.auth.hashers.PBKDF2PasswordHasher")
                && e.contains("django.contrib.auth.hashers.MD5PasswordHasher")
                && !e.contains("hashers.SHA1PasswordHasher"),
            "{e}"
        );
    }
}
