//! Django's CSRF protection (`django.middleware.csrf`, spec §6): the 32-char secret, 64-char
//! masked tokens, token format checks, the constant-time token match, and the Origin/Referer
//! checks of `CsrfViewMiddleware` as pure functions, with Django's rejection reasons.
//!
//! CSRF does not involve `SECRET_KEY`: nothing here is signed.

use super::crypto::{RANDOM_STRING_CHARS, constant_time_eq, get_random_string};
use super::hosts::{is_same_domain, split_domain_port, urlsplit};

/// `CSRF_ALLOWED_CHARS` (= `RANDOM_STRING_CHARS`: lowercase, uppercase, digits; order matters).
pub const CSRF_ALLOWED_CHARS: &[u8] = RANDOM_STRING_CHARS;
/// Length of the secret (and of the mask).
pub const CSRF_SECRET_LENGTH: usize = 32;
/// Length of a masked token.
pub const CSRF_TOKEN_LENGTH: usize = 2 * CSRF_SECRET_LENGTH;

/// A fresh secret: 32 random characters of [`CSRF_ALLOWED_CHARS`] (what the `csrftoken` cookie
/// holds in Django ≥ 4.1, and what `rotate_token` creates).
pub fn new_secret() -> String {
    get_random_string(CSRF_SECRET_LENGTH, CSRF_ALLOWED_CHARS)
}

fn idx(c: u8) -> usize {
    CSRF_ALLOWED_CHARS
        .iter()
        .position(|&a| a == c)
        .expect("checked token characters")
}

/// `_mask_cipher_secret(secret)` with a fresh random mask: a 64-char token for forms
/// (`{% csrf_token %}`) or the `X-CSRFToken` header.
///
/// # Panics
/// If `secret` is not 32 characters of [`CSRF_ALLOWED_CHARS`].
pub fn mask_cipher_secret(secret: &str) -> String {
    mask_with(secret, &new_secret())
}

/// Deterministic masking with a given 32-char mask:
/// `mask || alphabet[(idx(secret[i]) + idx(mask[i])) mod 62]`.
///
/// # Panics
/// If `secret` or `mask` is not 32 characters of [`CSRF_ALLOWED_CHARS`].
pub fn mask_with(secret: &str, mask: &str) -> String {
    assert!(
        check_token_format(secret) == Ok(()) && secret.len() == CSRF_SECRET_LENGTH,
        "CSRF secret must be 32 alphanumeric characters"
    );
    assert!(
        check_token_format(mask) == Ok(()) && mask.len() == CSRF_SECRET_LENGTH,
        "CSRF mask must be 32 alphanumeric characters"
    );
    let n = CSRF_ALLOWED_CHARS.len();
    let mut out = String::with_capacity(CSRF_TOKEN_LENGTH);
    out.push_str(mask);
    for (s, m) in secret.bytes().zip(mask.bytes()) {
        out.push(char::from(CSRF_ALLOWED_CHARS[(idx(s) + idx(m)) % n]));
    }
    out
}

/// `_unmask_cipher_token(token)`: the secret inside a 64-char masked token; `None` if the
/// token is not 64 characters of [`CSRF_ALLOWED_CHARS`].
pub fn unmask(token: &str) -> Option<String> {
    if check_token_format(token).is_err() || token.len() != CSRF_TOKEN_LENGTH {
        return None;
    }
    let (mask, cipher) = token.split_at(CSRF_SECRET_LENGTH);
    let n = CSRF_ALLOWED_CHARS.len();
    Some(
        cipher
            .bytes()
            .zip(mask.bytes())
            .map(|(c, m)| char::from(CSRF_ALLOWED_CHARS[(idx(c) + n - idx(m)) % n]))
            .collect(),
    )
}

/// Django's `InvalidTokenFormat` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormatError {
    /// Not 32 or 64 characters: `"has incorrect length"`.
    IncorrectLength,
    /// A character outside `[a-zA-Z0-9]`: `"has invalid characters"`.
    InvalidCharacters,
}

impl TokenFormatError {
    /// Django's reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            TokenFormatError::IncorrectLength => "has incorrect length",
            TokenFormatError::InvalidCharacters => "has invalid characters",
        }
    }
}

/// `_check_token_format`: length (in characters) 32 or 64, then only `[a-zA-Z0-9]`.
pub fn check_token_format(token: &str) -> Result<(), TokenFormatError> {
    let len = token.chars().count();
    if len != CSRF_SECRET_LENGTH && len != CSRF_TOKEN_LENGTH {
        return Err(TokenFormatError::IncorrectLength);
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenFormatError::InvalidCharacters);
    }
    Ok(())
}

/// `_does_token_match(request_token, secret)`: a well-formed 32-char token (raw secret) or
/// 64-char token (masked; unmasked first) compared in constant time with the secret. Tokens
/// failing [`check_token_format`] never match.
pub fn does_token_match(request_token: &str, secret: &str) -> bool {
    if check_token_format(request_token).is_err() {
        return false;
    }
    let unmasked;
    let candidate = if request_token.len() == CSRF_TOKEN_LENGTH {
        unmasked = unmask(request_token).unwrap_or_default();
        unmasked.as_str()
    } else {
        request_token
    };
    constant_time_eq(candidate.as_bytes(), secret.as_bytes())
}

/// `_get_secret` for the cookie value: checks the format and unmasks a 64-char (Django ≤ 4.0
/// style) cookie; `Err` is Django's `"CSRF cookie <reason>."` rejection (a malformed cookie is
/// also replaced by a new one in the response).
pub fn secret_from_cookie(cookie: &str) -> Result<String, TokenFormatError> {
    check_token_format(cookie)?;
    Ok(if cookie.len() == CSRF_TOKEN_LENGTH {
        unmask(cookie).expect("format checked")
    } else {
        cookie.to_owned()
    })
}

/// Where the request token came from (for the rejection message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The `csrfmiddlewaretoken` form field.
    Post,
    /// The `X-CSRFToken` header.
    Header,
}

/// A 403 from `CsrfViewMiddleware`, with Django's reason text ([`CsrfRejection::reason`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsrfRejection {
    /// `Origin` present and not trusted (carries the header value).
    BadOrigin(String),
    /// HTTPS request without `Origin` and without `Referer`.
    NoReferer,
    /// `Referer` unparsable or without scheme/host.
    MalformedReferer,
    /// `Referer` not https on an https request.
    InsecureReferer,
    /// `Referer` host not trusted (carries `referer.geturl()`).
    BadReferer(String),
    /// No CSRF secret (cookie or session).
    NoCsrfCookie,
    /// The cookie is malformed.
    BadCookie(TokenFormatError),
    /// Neither form field nor header.
    TokenMissing,
    /// The request token is malformed.
    BadTokenFormat(TokenSource, TokenFormatError),
    /// Well-formed token that does not match the secret.
    TokenIncorrect(TokenSource),
}

impl CsrfRejection {
    /// The exact reason string Django logs and passes to the 403 view.
    pub fn reason(&self) -> String {
        fn source(s: TokenSource) -> &'static str {
            match s {
                TokenSource::Post => "POST",
                // HttpHeaders.parse_header_name("HTTP_X_CSRFTOKEN") == "X-Csrftoken".
                TokenSource::Header => "the 'X-Csrftoken' HTTP header",
            }
        }
        match self {
            CsrfRejection::BadOrigin(o) => {
                format!("Origin checking failed - {o} does not match any trusted origins.")
            }
            CsrfRejection::NoReferer => "Referer checking failed - no Referer.".to_owned(),
            CsrfRejection::MalformedReferer => {
                "Referer checking failed - Referer is malformed.".to_owned()
            }
            CsrfRejection::InsecureReferer => {
                "Referer checking failed - Referer is insecure while host is secure.".to_owned()
            }
            CsrfRejection::BadReferer(r) => {
                format!("Referer checking failed - {r} does not match any trusted origins.")
            }
            CsrfRejection::NoCsrfCookie => "CSRF cookie not set.".to_owned(),
            CsrfRejection::BadCookie(e) => format!("CSRF cookie {}.", e.reason()),
            CsrfRejection::TokenMissing => "CSRF token missing.".to_owned(),
            CsrfRejection::BadTokenFormat(s, e) => {
                format!("CSRF token from {} {}.", source(*s), e.reason())
            }
            CsrfRejection::TokenIncorrect(s) => {
                format!("CSRF token from {} incorrect.", source(*s))
            }
        }
    }
}

impl std::fmt::Display for CsrfRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for CsrfRejection {}

/// §6.2 steps 1–2 for an unsafe method (POST, …):
///
/// 1. `Origin` present: accept if it equals `"<scheme>://<host>"` (scheme `https` when
///    `is_secure`), or an exact `CSRF_TRUSTED_ORIGINS` entry, or matches a wildcard entry
///    `scheme://*.domain[:port]` (same scheme, netloc = domain or a subdomain).
/// 2. Else on HTTPS: `Referer` must exist, parse, be `https`, and its netloc match a trusted
///    origin's netloc (leading `*` = subdomains), or `cookie_domain` (`CSRF_COOKIE_DOMAIN`, with
///    `:port` appended when the port is not 80/443), or else `host`.
///
/// `host` is the already validated `request.get_host()` (Host header incl. port). For the
/// `cookie_domain` case Django appends the *server* port; here the port is taken from `host`
/// (or 443/80 by `is_secure` when it has none), which is the same behind a normal proxy.
pub fn check_origin(
    origin: Option<&str>,
    referer: Option<&str>,
    is_secure: bool,
    host: &str,
    trusted_origins: &[String],
    cookie_domain: Option<&str>,
) -> Result<(), CsrfRejection> {
    if let Some(origin) = origin {
        return if origin_verified(origin, is_secure, host, trusted_origins) {
            Ok(())
        } else {
            Err(CsrfRejection::BadOrigin(origin.to_owned()))
        };
    }
    if is_secure {
        check_referer(referer, host, trusted_origins, cookie_domain)?;
    }
    Ok(())
}

fn origin_verified(origin: &str, is_secure: bool, host: &str, trusted: &[String]) -> bool {
    let scheme = if is_secure { "https" } else { "http" };
    if !host.is_empty() && origin == format!("{scheme}://{host}") {
        return true;
    }
    if trusted.iter().any(|t| !t.contains('*') && t == origin) {
        return true;
    }
    let Ok(parsed) = urlsplit(origin) else {
        return false;
    };
    trusted.iter().filter(|t| t.contains('*')).any(|t| {
        urlsplit(t).is_ok_and(|p| {
            p.scheme == parsed.scheme
                && is_same_domain(&parsed.netloc, p.netloc.trim_start_matches('*'))
        })
    })
}

fn check_referer(
    referer: Option<&str>,
    host: &str,
    trusted: &[String],
    cookie_domain: Option<&str>,
) -> Result<(), CsrfRejection> {
    let referer = referer.ok_or(CsrfRejection::NoReferer)?;
    let parsed = urlsplit(referer).map_err(|_| CsrfRejection::MalformedReferer)?;
    if parsed.scheme.is_empty() || parsed.netloc.is_empty() {
        return Err(CsrfRejection::MalformedReferer);
    }
    if parsed.scheme != "https" {
        return Err(CsrfRejection::InsecureReferer);
    }
    let trusted_match = trusted.iter().any(|t| {
        urlsplit(t).is_ok_and(|p| is_same_domain(&parsed.netloc, p.netloc.trim_start_matches('*')))
    });
    if trusted_match {
        return Ok(());
    }
    let good = match cookie_domain {
        None => {
            if host.is_empty() {
                return Err(CsrfRejection::BadReferer(parsed.geturl()));
            }
            host.to_owned()
        }
        Some(domain) => {
            // Only reached on HTTPS, so a host without a port means 443.
            let (_, port) = split_domain_port(host);
            if port.is_empty() || port == "443" || port == "80" {
                domain.to_owned()
            } else {
                format!("{domain}:{port}")
            }
        }
    };
    if is_same_domain(&parsed.netloc, &good) {
        Ok(())
    } else {
        Err(CsrfRejection::BadReferer(parsed.geturl()))
    }
}

/// §6.2 steps 3–5: secret from the cookie (`None` = no cookie), token from the POST field
/// (used if non-empty) or else the `X-CSRFToken` header, format check, constant-time match.
pub fn check_token(
    cookie: Option<&str>,
    post_token: Option<&str>,
    header_token: Option<&str>,
) -> Result<(), CsrfRejection> {
    let secret = match cookie {
        None => return Err(CsrfRejection::NoCsrfCookie),
        Some(c) => secret_from_cookie(c).map_err(CsrfRejection::BadCookie)?,
    };
    let (token, source) = match post_token {
        Some(t) if !t.is_empty() => (t, TokenSource::Post),
        _ => match header_token {
            Some(t) => (t, TokenSource::Header),
            None => return Err(CsrfRejection::TokenMissing),
        },
    };
    check_token_format(token).map_err(|e| CsrfRejection::BadTokenFormat(source, e))?;
    if does_token_match(token, &secret) {
        Ok(())
    } else {
        Err(CsrfRejection::TokenIncorrect(source))
    }
}
