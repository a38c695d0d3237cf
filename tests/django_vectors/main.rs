//! Checks `whisper::django::{crypto, hashers, signing, sessions, csrf, hosts}` against the
//! vectors produced by real Django (`tests/data/django-vectors.json` and `django-hashers.json`,
//! made by `compat/make_testdata.py`), plus unit tests for host validation, safe redirects and the CSRF Origin/Referer rules.
//!
//! Not covered: `crypt` hashes (not implemented; the test asserts they are refused).
//!
//! This file holds the vector loading and conversion helpers; the tests live in one module per
//! `whisper::django` area.

mod crypto_primitives;
mod csrf_tokens;
mod host_checks;
mod password_hashing;
mod session_data;
mod signed_data;
mod versions;

use std::sync::OnceLock;

use num_bigint::BigInt;
use serde_json::Value as J;
use sha2::Digest;

use whisper::django::crypto::{self, Algorithm};
use whisper::django::csrf::{self, CsrfRejection, TokenFormatError, TokenSource};
use whisper::django::hashers::{self, DjangoVersion, HasherConfig, Verified};
use whisper::django::hosts;
use whisper::django::pyjson::{self, Object, Value};
use whisper::django::sessions::{self, AuthHashCheck, SessionData};
use whisper::django::signing::{self, Signer, SigningError, TimestampSigner};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/django-vectors.json"
);

fn v() -> &'static J {
    static V: OnceLock<J> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(VECTORS)
            .unwrap_or_else(|e| panic!("cannot read {VECTORS}: {e}"));
        serde_json::from_str(&text).expect("vectors are JSON")
    })
}

fn s(j: &J) -> &str {
    j.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {j}"))
}

fn secret() -> &'static str {
    s(&v()["meta"]["secret_key"])
}

fn fallback() -> &'static str {
    s(&v()["meta"]["secret_key_fallbacks"][0])
}

fn ts() -> u64 {
    v()["meta"]["fixed_timestamp"].as_u64().unwrap()
}

/// The hashers the vector script enabled for Django 5.2 (bcrypt and md5 added).
fn vectors_cfg(version: DjangoVersion) -> HasherConfig {
    HasherConfig::with_hashers(
        version,
        &[
            "pbkdf2_sha256",
            "pbkdf2_sha1",
            "argon2",
            "bcrypt_sha256",
            "bcrypt",
            "scrypt",
            "md5",
        ],
    )
    .unwrap()
}

/// serde_json → pyjson, keeping key order.
fn to_py(j: &J) -> Value {
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(BigInt::from(i)),
            None => Value::Float(n.as_f64().unwrap()),
        },
        J::String(t) => Value::str(t),
        J::Array(a) => Value::Array(a.iter().map(to_py).collect()),
        J::Object(o) => {
            let mut obj = Object::new();
            for (k, val) in o {
                obj.insert(k.as_str(), to_py(val));
            }
            Value::Object(obj)
        }
    }
}

fn session_of(j: &J) -> SessionData {
    match to_py(j) {
        Value::Object(o) => SessionData(o),
        other => panic!("not a dict: {other:?}"),
    }
}
