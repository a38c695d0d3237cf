//! Shared command-line helpers: prompting (visible and hidden input), and Django's username and
//! email validation / normalisation as `createsuperuser` applies them.

use std::io::{self, BufRead, IsTerminal, Write};

use unicode_normalization::UnicodeNormalization;

/// Django's `AbstractUser.username` limit.
pub const USERNAME_MAX_LENGTH: usize = 150;
/// Django's `AbstractUser.email` limit (`EmailField` default).
pub const EMAIL_MAX_LENGTH: usize = 254;

const INVALID_USERNAME: &str = "Enter a valid username. This value may contain only letters, \
                                numbers, and @/./+/-/_ characters.";

/// Is stdin a terminal (interactive prompts possible)?
pub fn stdin_is_tty() -> bool {
    io::stdin().is_terminal()
}

/// One line from stdin without its line ending; `None` at end of input.
pub fn read_stdin_line() -> io::Result<Option<String>> {
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Python's `input(prompt)`: the prompt on stdout, one line from stdin; `None` at end of input.
pub fn input(prompt: &str) -> io::Result<Option<String>> {
    let mut out = io::stdout().lock();
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    drop(out);
    read_stdin_line()
}

/// Python's `getpass.getpass(prompt)`: hidden input on a terminal; otherwise (pipes, tests) one
/// plain line from stdin. `None` at end of input.
pub fn password(prompt: &str) -> io::Result<Option<String>> {
    if stdin_is_tty() {
        match rpassword::prompt_password(prompt) {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    } else {
        read_stdin_line()
    }
}

/// Django's `UnicodeUsernameValidator` (`^[\w.@+-]+\Z`) plus the 150-character limit, in
/// Django's order; the messages are joined with `"; "` like `createsuperuser` does.
/// An empty name gives Django's form message `This field cannot be blank.`.
pub fn validate_username(username: &str) -> Result<(), String> {
    validate_username_max(username, USERNAME_MAX_LENGTH)
}

/// [`validate_username`] for a `username` column of another length.
pub fn validate_username_max(username: &str, max_length: usize) -> Result<(), String> {
    if username.is_empty() {
        return Err("This field cannot be blank.".to_string());
    }
    let mut errors = Vec::new();
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'))
    {
        errors.push(INVALID_USERNAME.to_string());
    }
    if let Err(e) = validate_max_length(username, max_length) {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Django's `MaxLengthValidator` message.
pub fn validate_max_length(value: &str, max_length: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max_length {
        return Err(format!(
            "Ensure this value has at most {max_length} characters (it has {n})."
        ));
    }
    Ok(())
}

/// `AbstractBaseUser.normalize_username`: NFKC.
pub fn normalize_username(username: &str) -> String {
    username.nfkc().collect()
}

/// A pragmatic subset of Django's `EmailValidator`: `local@domain`, no whitespace, a domain that
/// is `localhost` or has a dot between non-empty labels. The empty string is valid (the field is
/// `blank=True`).
pub fn validate_email(email: &str) -> Result<(), String> {
    validate_email_max(email, EMAIL_MAX_LENGTH)
}

/// [`validate_email`] for an `email` column of another length.
pub fn validate_email_max(email: &str, max_length: usize) -> Result<(), String> {
    const MESSAGE: &str = "Enter a valid email address.";
    if email.is_empty() {
        return Ok(());
    }
    if let Err(e) = validate_max_length(email, max_length) {
        return Err(format!("{MESSAGE}; {e}"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(MESSAGE.into());
    };
    let bad_chars = |s: &str| s.chars().any(|c| c.is_whitespace() || c.is_control());
    if local.is_empty() || domain.is_empty() || bad_chars(local) || bad_chars(domain) {
        return Err(MESSAGE.into());
    }
    let domain_ok = domain.eq_ignore_ascii_case("localhost")
        || (domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            }))
        || (domain.starts_with('[') && domain.ends_with(']'));
    if !domain_ok || local.contains('@') && !local.starts_with('"') {
        return Err(MESSAGE.into());
    }
    Ok(())
}

/// `BaseUserManager.normalize_email`: strip, lowercase the domain part.
pub fn normalize_email(email: &str) -> String {
    let email = email.trim();
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_string(),
    }
}

/// Python's `getpass.getuser()`: `LOGNAME`, `USER`, `LNAME`, `USERNAME`.
pub fn os_username() -> Option<String> {
    ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.is_empty())
}

/// Django's `get_default_username` without the database part: the OS user name folded to
/// ASCII, without spaces, lowercased; `None` when that is not a valid username.
pub fn default_username() -> Option<String> {
    let raw = os_username()?;
    let folded: String = raw
        .nfkd()
        .filter(char::is_ascii)
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_lowercase();
    validate_username(&folded).ok().map(|_| folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_like_django() {
        for ok in ["alice", "a.b@c+d-e_f", "Ärger", "用户", "x1"] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        for bad in ["with space", "semi;colon", "tab\t", "new\nline", "slash/"] {
            assert_eq!(
                validate_username(bad).unwrap_err(),
                INVALID_USERNAME,
                "{bad}"
            );
        }
        assert_eq!(
            validate_username("").unwrap_err(),
            "This field cannot be blank."
        );
        let long = "a".repeat(151);
        assert_eq!(
            validate_username(&long).unwrap_err(),
            "Ensure this value has at most 150 characters (it has 151)."
        );
        assert!(validate_username(&"a".repeat(150)).is_ok());
        let both = format!("{} x", "a".repeat(150));
        assert_eq!(
            validate_username(&both).unwrap_err(),
            format!(
                "{INVALID_USERNAME}; Ensure this value has at most 150 characters (it has 152)."
            )
        );
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_username("ｆｕｌｌ"), "full");
        assert_eq!(normalize_email(" Bob@EXAMPLE.Com "), "Bob@example.com");
    }

    #[test]
    fn emails() {
        for ok in [
            "",
            "a@example.com",
            "a.b+c@sub.example.org",
            "root@localhost",
        ] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@example",
            "a@.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
