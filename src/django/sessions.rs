//! Django sessions and the authentication state they carry (spec §4, §5): session keys,
//! `session_data` / signed-cookie encoding (`signing.dumps` of compact ASCII JSON, zlib),
//! decoding (any failure ⇒ empty session), the `_auth_*` keys, and the session auth hash
//! (`get_session_auth_hash`, with SECRET_KEY_FALLBACKS).
//!
//! Only the Django ≥ 3.1 format is read: the legacy pre-3.1 `base64(hexmac:json)` format is
//! refused like Django ≥ 4.0 does (§4.4), which simply logs such users out.

use chrono::{DateTime, Utc};
use num_bigint::BigInt;

use super::crypto::salted_hmac;
use super::crypto::{Algorithm, RANDOM_STRING_CHARS, constant_time_eq, get_random_string};
use super::pickle::{self, PyDict, PyValue};
use super::pyjson::{self, Object, Separators, Value};
use super::signing;

/// Salt of `session_data` for the db, cached_db, cache and file backends
/// (`"django.contrib.sessions." + "SessionStore"`; a custom store class changes it, §4.3).
pub const SESSION_SALT: &str = "django.contrib.sessions.SessionStore";
/// Cache key prefix of the `cache` session engine (`backends/cache.py` `KEY_PREFIX`, §4.7).
pub const CACHE_KEY_PREFIX: &str = "django.contrib.sessions.cache";
/// Cache key prefix of the `cached_db` session engine (`backends/cached_db.py`).
pub const CACHED_DB_KEY_PREFIX: &str = "django.contrib.sessions.cached_db";
/// Session key of a custom expiry (`set_expiry`, §4.5).
pub const SESSION_EXPIRY: &str = "_session_expiry";
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

    /// `SessionBase.get_expiry_age()` at `now` (§4.5): `_session_expiry` seconds, or the
    /// seconds until its ISO time (whole seconds, fractions dropped; negative once past), or
    /// `cookie_age` when it is absent, `None`, `0` or unreadable.
    pub fn expiry_age(&self, cookie_age: u64, now: DateTime<Utc>) -> i64 {
        let default = i64::try_from(cookie_age).unwrap_or(i64::MAX);
        match self.0.get(SESSION_EXPIRY) {
            Some(Value::Int(n)) => match i64::try_from(n) {
                Ok(0) | Err(_) => default,
                Ok(n) => n,
            },
            Some(Value::Float(f)) if *f != 0.0 && f.is_finite() => f.trunc() as i64,
            Some(Value::Str(s)) => s
                .as_string()
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                // `delta.days * 86400 + delta.seconds`: floor of the difference.
                .map(|at| {
                    (at.with_timezone(&Utc) - now)
                        .num_microseconds()
                        .map_or(default, |us| us.div_euclid(1_000_000))
                })
                .unwrap_or(default),
            _ => default,
        }
    }

    /// The session dict a cache holds (unpickled), in this JSON-based model: what Django's
    /// `JSONSerializer` would store for it in a `cached_db` row. Tuples become lists and `int`
    /// dict keys their decimal text (as `json.dumps` does); `bytes`, which JSON cannot hold, make
    /// it unusable (`Err` with the reason).
    pub fn from_pickle(dict: &PyDict) -> Result<SessionData, String> {
        Ok(SessionData(pickle::object_to_json(dict)?))
    }

    /// The session dict as a cache stores it (pickled by the cache backend).
    pub fn to_pickle(&self) -> PyValue {
        PyValue::Dict(pickle::object_from_json(&self.0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn with_expiry(value: Value) -> SessionData {
        let mut d = SessionData::new();
        d.0.insert(SESSION_EXPIRY, value);
        d
    }

    #[test]
    fn expiry_age_follows_get_expiry_age() {
        let now = Utc.with_ymd_and_hms(2026, 12, 9, 12, 0, 0).unwrap();
        assert_eq!(SessionData::new().expiry_age(1209600, now), 1209600);
        assert_eq!(with_expiry(Value::int(0)).expiry_age(60, now), 60);
        assert_eq!(with_expiry(Value::Null).expiry_age(60, now), 60);
        assert_eq!(with_expiry(Value::int(3600)).expiry_age(60, now), 3600);
        assert_eq!(with_expiry(Value::Float(90.7)).expiry_age(60, now), 90);
        let iso = with_expiry(Value::str("2026-12-09T12:34:48.077932+00:00"));
        assert_eq!(iso.expiry_age(60, now), 34 * 60 + 48);
        // Past: negative (Django's timedelta floor), so the cache drops it at once.
        let past = with_expiry(Value::str("2026-12-09T11:59:59.5+00:00"));
        assert_eq!(past.expiry_age(60, now), -1);
        assert_eq!(with_expiry(Value::str("soon")).expiry_age(60, now), 60);
    }

    #[test]
    fn pickled_dicts_map_to_the_json_model_as_django_would_store_them() {
        let mut inner = PyDict::new();
        inner.insert(7, PyValue::Tuple(vec![PyValue::int(1), PyValue::str("x")]));
        let mut dict = PyDict::new();
        dict.insert(AUTH_USER_ID, PyValue::str("42"));
        dict.insert("nested", PyValue::Dict(inner));
        dict.insert(5, PyValue::Float(0.5));
        let data = SessionData::from_pickle(&dict).unwrap();
        assert_eq!(data.user_id(), Some(42));
        assert_eq!(
            pyjson::dumps(&Value::Object(data.0.clone()), Separators::Compact),
            r#"{"_auth_user_id":"42","nested":{"7":[1,"x"]},"5":0.5}"#
        );
        // And back: a dict with str keys, tuples as lists.
        let PyValue::Dict(back) = data.to_pickle() else {
            panic!()
        };
        assert_eq!(back.get("_auth_user_id"), Some(&PyValue::str("42")));
        assert_eq!(back.len(), 3);
        let mut bytes = PyDict::new();
        bytes.insert("b", PyValue::Bytes(vec![1]));
        assert!(
            SessionData::from_pickle(&bytes)
                .unwrap_err()
                .contains("bytes")
        );
    }
}
