//! Django sessions and the authentication state they carry (spec §4, §5): session keys,
//! `session_data` / signed-cookie encoding (`signing.dumps` of compact ASCII JSON, zlib),
//! decoding (any failure ⇒ empty session), the `_auth_*` keys, and the session auth hash
//! (`get_session_auth_hash`, with SECRET_KEY_FALLBACKS).
//!
//! Only the Django ≥ 3.1 format is read: the legacy pre-3.1 `base64(hexmac:json)` format is
//! refused like Django ≥ 4.0 does (§4.4), which simply logs such users out.

use num_bigint::BigInt;

use super::crypto::salted_hmac;
use super::crypto::{Algorithm, RANDOM_STRING_CHARS, constant_time_eq, get_random_string};
use super::pyjson::{self, Object, Separators, Value};
use super::signing;

/// Salt of `session_data` for the db, cached_db, cache and file backends
/// (`"django.contrib.sessions." + "SessionStore"`; a custom store class changes it, §4.3).
pub const SESSION_SALT: &str = "django.contrib.sessions.SessionStore";
/// Salt of the `signed_cookies` backend's cookie value (§4.7).
pub const SIGNED_COOKIES_SALT: &str = "django.contrib.sessions.backends.signed_cookies";
/// Session key of the user's primary key (a string).
pub const AUTH_USER_ID: &str = "_auth_user_id";
/// Session key of the authentication backend path.
pub const AUTH_USER_BACKEND: &str = "_auth_user_backend";
/// Session key of the session auth hash.
pub const AUTH_USER_HASH: &str = "_auth_user_hash";
/// Django's default authentication backend (`AUTHENTICATION_BACKENDS` may list others).
pub const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
/// `salted_hmac` key salt of the session auth hash (§5.2).
pub const AUTH_HASH_KEY_SALT: &str =
    "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash";
/// Length of a session key.
pub const SESSION_KEY_LENGTH: usize = 32;

/// A fresh session key: 32 characters of `[a-z0-9]` from a CSPRNG (§4.1).
pub fn new_session_key() -> String {
    get_random_string(SESSION_KEY_LENGTH, &RANDOM_STRING_CHARS_LOWER_DIGITS)
}

/// `a-z0-9` (Django's `VALID_KEY_CHARS`).
const RANDOM_STRING_CHARS_LOWER_DIGITS: [u8; 36] = {
    let mut out = [0u8; 36];
    let mut i = 0;
    while i < 26 {
        out[i] = RANDOM_STRING_CHARS[i];
        i += 1;
    }
    while i < 36 {
        out[i] = b'0' + (i - 26) as u8;
        i += 1;
    }
    out
};

/// `user.get_session_auth_hash()` (§5.2): hex HMAC-SHA256 of the full `auth_user.password`
/// value, keyed by `secret` (SECRET_KEY, or a fallback key). 64 hex chars.
pub fn session_auth_hash(password_field: &str, secret: &str) -> String {
    hex::encode(salted_hmac(
        AUTH_HASH_KEY_SALT,
        password_field.as_bytes(),
        secret,
        Algorithm::Sha256,
    ))
}

/// A decoded session dict; key order and unknown keys preserved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionData(pub Object);

impl SessionData {
    /// An empty session.
    pub fn new() -> Self {
        SessionData(Object::new())
    }

    /// `_auth_user_id` parsed like `AutoField.to_python` (Python `int()`): a JSON integer, or
    /// a string such as `"1"` (surrounding whitespace, a sign and `_` digit separators are
    /// accepted, as by Python). `None` if absent or not an integer that fits an `i64`.
    pub fn user_id(&self) -> Option<i64> {
        match self.0.get(AUTH_USER_ID)? {
            Value::Int(n) => i64::try_from(n).ok(),
            Value::Str(s) => py_int(&s.as_string()?),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// `_auth_user_backend`, if a string.
    pub fn backend(&self) -> Option<String> {
        self.0.get(AUTH_USER_BACKEND)?.as_str()
    }

    /// `_auth_user_hash`, if a string.
    pub fn auth_hash(&self) -> Option<String> {
        self.0.get(AUTH_USER_HASH)?.as_str()
    }

    /// What `login()` stores (§5.4): `_auth_user_id` (as a string), `_auth_user_backend`
    /// (ModelBackend) and `_auth_user_hash`, in that order for new keys; keys already present
    /// keep their position (Python dict assignment). Other keys are kept.
    pub fn set_login(&mut self, user_id: i64, hash: &str) {
        self.set_login_with(user_id, MODEL_BACKEND, hash);
    }

    /// [`SessionData::set_login`] naming another `_auth_user_backend` (the first of
    /// `AUTHENTICATION_BACKENDS`).
    pub fn set_login_with(&mut self, user_id: i64, backend: &str, hash: &str) {
        self.0
            .insert(AUTH_USER_ID, Value::str(&user_id.to_string()));
        self.0.insert(AUTH_USER_BACKEND, Value::str(backend));
        self.0.insert(AUTH_USER_HASH, Value::str(hash));
    }

    /// Store a new auth hash (after a fallback-key match, or `update_session_auth_hash`).
    pub fn set_auth_hash(&mut self, hash: &str) {
        self.0.insert(AUTH_USER_HASH, Value::str(hash));
    }

    /// No keys at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Python `int(str)` for ASCII digits: optional surrounding whitespace, optional sign, digits
/// with single `_` separators between digits.
fn py_int(text: &str) -> Option<i64> {
    let t = text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let n: BigInt = digits.replace('_', "").parse().ok()?;
    i64::try_from(if negative { -n } else { n }).ok()
}

/// `SessionStore.encode(dict)` (§4.3, §9.3) at Unix time `now`: `signing.dumps` of the compact,
/// ASCII-escaped JSON with `compress=True`. For `django_session.session_data` use
/// [`SESSION_SALT`]; for the signed-cookies backend [`SIGNED_COOKIES_SALT`].
pub fn encode(data: &SessionData, secret: &str, salt: &str, now: u64) -> String {
    let json = pyjson::dumps(&Value::Object(data.0.clone()), Separators::Compact);
    signing::dumps(json.as_bytes(), secret, salt, true, now)
}

/// `SessionStore.decode(text)`: verify with `keys` (SECRET_KEY then fallbacks), optional
/// `max_age` (the signed-cookies backend passes SESSION_COOKIE_AGE; db sessions none), then
/// decode the JSON as latin-1 text like Django. Any failure (bad signature, expired, bad
/// base64/zlib/JSON, not a dict) ⇒ `None`, which Django treats as an empty session.
pub fn decode(
    text: &str,
    keys: &[&str],
    salt: &str,
    max_age: Option<u64>,
    now: u64,
) -> Option<SessionData> {
    let bytes = signing::loads(text, keys, salt, max_age, now).ok()?;
    // JSONSerializer.loads: `json.loads(data.decode("latin-1"))`.
    let latin1: String = bytes.iter().map(|&b| char::from(b)).collect();
    match pyjson::loads(&latin1).ok()? {
        Value::Object(obj) => Some(SessionData(obj)),
        _ => None,
    }
}

/// Outcome of the per-request session auth hash check (§5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthHashCheck {
    /// Matches the hash under SECRET_KEY: authenticated.
    Current,
    /// Matches under a SECRET_KEY_FALLBACKS key: authenticated; cycle the session key and
    /// store the current hash.
    Fallback,
    /// Missing, empty or wrong: flush the session (anonymous).
    Mismatch,
}

/// §5.3: compare the session's stored `_auth_user_hash` with the hash of the user's current
/// `password` column under `secret`, then under each fallback key; all comparisons are
/// constant-time. An empty stored hash never matches.
pub fn check_auth_hash(
    stored: &str,
    password_field: &str,
    secret: &str,
    fallbacks: &[String],
) -> AuthHashCheck {
    if stored.is_empty() {
        return AuthHashCheck::Mismatch;
    }
    if constant_time_eq(
        stored.as_bytes(),
        session_auth_hash(password_field, secret).as_bytes(),
    ) {
        return AuthHashCheck::Current;
    }
    if fallbacks.iter().any(|k| {
        constant_time_eq(
            stored.as_bytes(),
            session_auth_hash(password_field, k).as_bytes(),
        )
    }) {
        return AuthHashCheck::Fallback;
    }
    AuthHashCheck::Mismatch
}
