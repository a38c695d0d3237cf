//! Checks `whisper::django::{crypto, hashers, signing, sessions, csrf, hosts}` against the
//! vectors produced by real Django (`shared/spec/django-vectors.json`, spec §10), plus unit
//! tests for host validation, safe redirects and the CSRF Origin/Referer rules.
//!
//! Not covered: `crypt` hashes (not implemented; the test asserts they are refused).

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
    "/../shared/spec/django-vectors.json"
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

// ------------------------------------------------------------------------------------------
// crypto

#[test]
fn salted_hmac_vectors() {
    let list = v()["salted_hmac"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    for e in list {
        let (salt, value, secret) = (s(&e["key_salt"]), s(&e["value"]), s(&e["secret"]));
        let (algo, derived) = match s(&e["algorithm"]) {
            "sha1" => (
                Algorithm::Sha1,
                hex::encode(sha1::Sha1::digest(format!("{salt}{secret}"))),
            ),
            "sha256" => (
                Algorithm::Sha256,
                hex::encode(sha2::Sha256::digest(format!("{salt}{secret}"))),
            ),
            other => panic!("algorithm {other}"),
        };
        assert_eq!(derived, s(&e["derived_key_hex"]));
        let mac = crypto::salted_hmac(salt, value.as_bytes(), secret, algo);
        assert_eq!(hex::encode(mac), s(&e["hmac_hex"]), "{e}");
    }
}

#[test]
fn base62_table() {
    let table = v()["signing"]["b62"].as_object().unwrap();
    assert_eq!(table.len(), 8);
    for (n, text) in table {
        let n: i64 = n.parse().unwrap();
        assert_eq!(crypto::base62_encode(n), s(text));
        assert_eq!(crypto::base62_decode(s(text)), Some(n));
    }
    assert_eq!(
        crypto::base62_encode(1_700_000_000),
        s(&v()["meta"]["fixed_timestamp_b62"])
    );
    assert_eq!(crypto::base62_decode(""), None);
    assert_eq!(crypto::base62_decode("a!"), None);
    assert_eq!(crypto::base62_decode("zzzzzzzzzzzzzzzzzzzzzzzz"), None);
}

#[test]
fn crypto_helpers() {
    assert!(crypto::constant_time_eq(b"abc", b"abc"));
    assert!(!crypto::constant_time_eq(b"abc", b"abd"));
    assert!(!crypto::constant_time_eq(b"abc", b"abcd"));
    let r = crypto::get_random_string(1000, crypto::RANDOM_STRING_CHARS);
    assert_eq!(r.len(), 1000);
    assert!(r.bytes().all(|b| b.is_ascii_alphanumeric()));
    // Every symbol of a small alphabet shows up.
    let r = crypto::get_random_string(2000, b"abc");
    assert!(r.contains('a') && r.contains('b') && r.contains('c'));
    assert_ne!(
        crypto::get_random_string(32, crypto::RANDOM_STRING_CHARS),
        crypto::get_random_string(32, crypto::RANDOM_STRING_CHARS)
    );
    assert_eq!(crypto::b64url_encode(b"\xfb\xff"), "-_8");
    assert_eq!(crypto::b64url_decode("-_8").unwrap(), b"\xfb\xff");
    assert_eq!(crypto::b64url_decode("-_8=").unwrap(), b"\xfb\xff");
    assert!(crypto::b64url_decode("a").is_none());
    assert!(crypto::b64url_decode("+/8").is_none());
}

// ------------------------------------------------------------------------------------------
// hashers

#[test]
fn password_hasher_vectors() {
    let cfg = vectors_cfg(DjangoVersion::V5_2);
    let cfg42 = vectors_cfg(DjangoVersion::V4_2);
    let default_cfg = HasherConfig::new(DjangoVersion::V5_2);
    let list = v()["password_hashers"].as_array().unwrap();
    assert_eq!(list.len(), 39);
    let mut reproduced = 0;
    for e in list {
        let (algorithm, password, encoded) =
            (s(&e["algorithm"]), s(&e["password"]), s(&e["encoded"]));
        let want = Verified {
            ok: e["check_password"].as_bool().unwrap(),
            must_update: e["verify_password_must_update_with_default_pbkdf2_preferred"]
                .as_bool()
                .unwrap(),
        };
        assert_eq!(
            hashers::verify_password(password, encoded, &cfg),
            want,
            "{e}"
        );
        assert_eq!(
            hashers::hasher_must_update(encoded, &cfg),
            Some(e["hasher_must_update"].as_bool().unwrap()),
            "{e}"
        );
        assert_eq!(hashers::identify_hasher(encoded, &cfg), Some(algorithm));
        // Wrong password (also exercises harden_runtime for outdated pbkdf2_sha256).
        let wrong = hashers::verify_password(&format!("{password}x"), encoded, &cfg);
        assert!(!wrong.ok, "{e}");
        // check_password: rehash exactly when Django would.
        let (ok, new) = hashers::check_password(password, encoded, &cfg);
        assert!(ok);
        assert_eq!(new.is_some(), want.must_update, "{e}");
        if let Some(new) = new {
            assert!(new.starts_with("pbkdf2_sha256$1000000$"), "{new}");
            assert_eq!(new.split('$').nth(2).unwrap().len(), 22);
            assert_eq!(
                hashers::verify_password(password, &new, &cfg),
                Verified {
                    ok: true,
                    must_update: false
                }
            );
        }
        // Plain bcrypt and md5 are not in Django's default list.
        let in_default = !matches!(algorithm, "bcrypt" | "md5");
        assert_eq!(
            hashers::verify_password(password, encoded, &default_cfg).ok,
            in_default,
            "{e}"
        );
        // make_password_with reproduces the stored string where our parameters match.
        let p = &e["params"];
        let again = match algorithm {
            "pbkdf2_sha256" | "pbkdf2_sha1" => match p["iterations"].as_u64() {
                Some(1_000_000) => Some(&cfg),
                Some(600_000) => Some(&cfg42),
                _ => None,
            }
            .map(|c| hashers::make_password_with(password, algorithm, s(&p["salt"]), c)),
            "argon2" if p["type"].is_null() => Some(hashers::make_password_with(
                password,
                algorithm,
                s(&p["salt"]),
                &cfg,
            )),
            "bcrypt" | "bcrypt_sha256" => Some(hashers::make_password_with(
                password,
                algorithm,
                s(&p["bcrypt_salt"]),
                &cfg,
            )),
            "scrypt" => {
                let c = if p["p"] == 5 { &cfg } else { &cfg42 };
                Some(hashers::make_password_with(
                    password,
                    algorithm,
                    s(&p["salt"]),
                    c,
                ))
            }
            "md5" => Some(hashers::make_password_with(
                password,
                algorithm,
                s(&p["salt"]),
                &cfg,
            )),
            _ => None,
        };
        if let Some(again) = again {
            assert_eq!(again.unwrap(), encoded, "{e}");
            reproduced += 1;
        }
    }
    assert!(reproduced >= 25, "only {reproduced} reproduced");
}

#[test]
fn hasher_defaults_5_2_and_4_2() {
    let d = &v()["password_hasher_defaults_5_2"];
    let cfg = HasherConfig::new(DjangoVersion::V5_2);
    assert_eq!(
        u64::from(cfg.pbkdf2_iterations()),
        d["pbkdf2_iterations"].as_u64().unwrap()
    );
    assert_eq!(cfg.hashers, hashers::DEFAULT_HASHERS);
    assert_eq!(
        DjangoVersion::V5_2.scrypt_parallelism(),
        d["scrypt"]["parallelism"].as_u64().unwrap() as u32
    );
    let p = &v()["probe_4_2"];
    let cfg42 = HasherConfig::new(DjangoVersion::V4_2);
    assert_eq!(
        u64::from(cfg42.pbkdf2_iterations()),
        p["pbkdf2_default_iterations"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(DjangoVersion::V4_2.scrypt_parallelism()),
        p["scrypt_default"]["p"].as_u64().unwrap()
    );
    let example = s(&p["pbkdf2_default_example"]);
    let salt = example.split('$').nth(2).unwrap();
    assert_eq!(
        hashers::make_password_with("password", "pbkdf2_sha256", salt, &cfg42).unwrap(),
        example
    );
    assert_eq!(
        hashers::verify_password("password", example, &cfg42),
        Verified {
            ok: true,
            must_update: false
        }
    );
    assert_eq!(
        hashers::verify_password("password", example, &cfg),
        Verified {
            ok: true,
            must_update: true
        }
    );
    // make_password: preferred hasher, fresh 22-char salt, exact iterations.
    let h = hashers::make_password("pässwörd✓", &cfg42);
    assert!(h.starts_with("pbkdf2_sha256$600000$"), "{h}");
    assert_eq!(h.split('$').nth(2).unwrap().len(), 22);
    assert_eq!(h.split('$').nth(3).unwrap().len(), 44);
    assert_ne!(h, hashers::make_password("pässwörd✓", &cfg42));
    assert!(hashers::check_password("pässwörd✓", &h, &cfg42).0);
    assert!(!hashers::check_password("passwörd✓", &h, &cfg42).0);
    // Version parsing.
    assert_eq!("4.2".parse::<DjangoVersion>(), Ok(DjangoVersion::V4_2));
    assert_eq!("5.2".parse::<DjangoVersion>(), Ok(DjangoVersion::V5_2));
    let err = "5.1".parse::<DjangoVersion>().unwrap_err();
    assert!(err.contains("4.2") && err.contains("5.2"), "{err}");
    assert!(HasherConfig::with_hashers(DjangoVersion::V5_2, &["crypt"]).is_err());
}

#[test]
fn legacy_hashers_4_2() {
    let cfg = HasherConfig::with_hashers(
        DjangoVersion::V4_2,
        &[
            "pbkdf2_sha256",
            "pbkdf2_sha1",
            "argon2",
            "bcrypt_sha256",
            "bcrypt",
            "md5",
            "scrypt",
            "sha1",
            "unsalted_sha1",
            "unsalted_md5",
        ],
    )
    .unwrap();
    let default52 = HasherConfig::new(DjangoVersion::V5_2);
    let list = v()["probe_4_2"]["legacy_hashers"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for e in list {
        let (algorithm, password, encoded) =
            (s(&e["algorithm"]), s(&e["password"]), s(&e["encoded"]));
        assert!(e["check_password"].as_bool().unwrap());
        let got = hashers::verify_password(password, encoded, &cfg);
        if algorithm == "crypt" {
            // crypt is deliberately not implemented: refused like an unknown algorithm.
            assert_eq!(
                got,
                Verified {
                    ok: false,
                    must_update: false
                }
            );
            continue;
        }
        assert_eq!(
            got,
            Verified {
                ok: true,
                must_update: true
            },
            "{e}"
        );
        assert!(!hashers::verify_password("wrong", encoded, &cfg).ok, "{e}");
        // Removed from Django 5.1+: a default 5.2 configuration refuses them.
        assert!(!hashers::verify_password(password, encoded, &default52).ok);
        let (ok, new) = hashers::check_password(password, encoded, &cfg);
        assert!(ok);
        assert!(new.unwrap().starts_with("pbkdf2_sha256$600000$"));
        // Re-encoding.
        let name = algorithm.split(' ').next().unwrap();
        let salt = e["salt"].as_str().unwrap_or("");
        if !encoded.starts_with("md5$$") {
            assert_eq!(
                hashers::make_password_with(password, name, salt, &cfg).unwrap(),
                encoded
            );
        }
    }
    // Salt strength rule for salted legacy hashers: 22 chars are strong enough.
    assert_eq!(
        hashers::hasher_must_update(
            "sha1$abcdefghijklmnopqrstuv$cbaef418a175a9276e6346e84db0487d24216d4d",
            &cfg
        ),
        Some(false)
    );
    assert_eq!(
        hashers::hasher_must_update("5f4dcc3b5aa765d61d8327deb882cf99", &cfg),
        Some(false)
    );
}

#[test]
fn unusable_and_malformed_passwords() {
    let u = &v()["unusable_password"];
    let cfg = HasherConfig::new(DjangoVersion::V5_2);
    let example = s(&u["example"]);
    assert_eq!(example.len() as u64, u["length"].as_u64().unwrap());
    assert!(!hashers::is_password_usable(example));
    assert!(!hashers::verify_password("password", example, &cfg).ok);
    assert_eq!(hashers::check_password("", example, &cfg), (false, None));
    let made = hashers::make_unusable_password();
    assert_eq!(made.len(), 41);
    assert!(made.starts_with('!'));
    assert!(made[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(!hashers::is_password_usable(&made));
    assert!(!hashers::is_password_usable("!"));
    assert!(hashers::is_password_usable("pbkdf2_sha256$1$a$b"));
    let no = Verified {
        ok: false,
        must_update: false,
    };
    for bad in [
        "",
        "!",
        "pbkdf2_sha256",
        "pbkdf2_sha256$x",
        "pbkdf2_sha256$1000$",
        "pbkdf2_sha256$1000$$abc",
        "pbkdf2_sha256$0$salt$abc",
        "pbkdf2_sha256$-5$salt$abc",
        "pbkdf2_sha256$99999999999999999999999$salt$abc",
        "pbkdf2_sha256$10000001$salt$abc",
        "argon2",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA",
        "argon2$argon2id$v=19$m=4194304,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$iyae5y7uKvwuvk01m1XK1snS9Vtr2i9GFxvdlTduUxQ",
        "argon2$argon2id$v=19$m=102400,t=1000,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$iyae5y7uKvwuvk01m1XK1snS9Vtr2i9GFxvdlTduUxQ",
        "argon2$argon2x$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$v8vPJSa07sIcJexLwdr9kA",
        "bcrypt_sha256$$2b$31$R9h/cIPz0gi.URNNX3kh2OHKU7Jr0U7yUFT17yst4q0HnKLEq7e4O",
        "bcrypt_sha256$$2b$17$R9h/cIPz0gi.URNNX3kh2OHKU7Jr0U7yUFT17yst4q0HnKLEq7e4O",
        "bcrypt_sha256$$2b$12$short",
        "bcrypt_sha256$$2q$12$R9h/cIPz0gi.URNNX3kh2OHKU7Jr0U7yUFT17yst4q0HnKLEq7e4O",
        "scrypt$16384$salt$8$5",
        "scrypt$16385$salt$8$5$abc",
        "scrypt$4194304$salt$8$5$abc",
        "scrypt$16384$salt$8$1000000$abc",
        "scrypt$65536$salt$1$5$abc",
        "scrypt$16384$$8$5$abc",
        "md5$$abc",
        "crypt$$abJnggxhB/yWI",
        "unknown$1$2$3",
        "sha1$abcdefghijklmnopqrstuv$cbaef418a175a9276e6346e84db0487d24216d4d",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hiSPLmmsEJ4SXtBDfUpBLIVuYXFfcubYcZtjeWt1s3U=\u{e9}",
        "pbkdf2_sha256$+1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4=",
    ] {
        let cfg_all = vectors_cfg(DjangoVersion::V5_2);
        assert_eq!(
            hashers::verify_password("password", bad, &cfg_all),
            no,
            "{bad:?}"
        );
    }
    // Refused plain bcrypt/md5 under the default list.
    assert!(
        HasherConfig::new(DjangoVersion::V5_2)
            .hashers
            .iter()
            .all(|h| *h != "bcrypt")
    );
}

#[test]
fn bcrypt_truncates_at_72_bytes() {
    assert!(s(&v()["bcrypt_over_72_bytes"]).contains("72 bytes"));
    let cfg = vectors_cfg(DjangoVersion::V5_2);
    let salt = "$2b$04$R9h/cIPz0gi.URNNX3kh2O";
    let long = "a".repeat(72);
    let longer = format!("{long}bcd");
    let h = hashers::make_password_with(&long, "bcrypt", salt, &cfg).unwrap();
    assert!(hashers::verify_password(&longer, &h, &cfg).ok);
    // bcrypt_sha256 is not truncated: the pre-hash differs.
    let h = hashers::make_password_with(&long, "bcrypt_sha256", salt, &cfg).unwrap();
    assert!(hashers::verify_password(&long, &h, &cfg).ok);
    assert!(!hashers::verify_password(&longer, &h, &cfg).ok);
    // $2a$ / $2y$ prefixes are kept.
    let h =
        hashers::make_password_with("pw", "bcrypt", "$2y$04$R9h/cIPz0gi.URNNX3kh2O", &cfg).unwrap();
    assert!(h.starts_with("bcrypt$$2y$04$"), "{h}");
    assert!(hashers::verify_password("pw", &h, &cfg).ok);
}

#[test]
fn preferred_non_pbkdf2() {
    // A site whose preferred hasher is argon2: fresh argon2id hashes with Django's params.
    let cfg =
        HasherConfig::with_hashers(DjangoVersion::V5_2, &["argon2", "pbkdf2_sha256"]).unwrap();
    let h = hashers::make_password("secret", &cfg);
    assert!(
        h.starts_with("argon2$argon2id$v=19$m=102400,t=2,p=8$"),
        "{h}"
    );
    assert_eq!(
        hashers::verify_password("secret", &h, &cfg),
        Verified {
            ok: true,
            must_update: false
        }
    );
    let cfg = HasherConfig::with_hashers(DjangoVersion::V5_2, &["bcrypt_sha256"]).unwrap();
    let h = hashers::make_password("secret", &cfg);
    assert!(h.starts_with("bcrypt_sha256$$2b$12$"), "{h}");
    assert_eq!(h.len(), "bcrypt_sha256$".len() + 60);
    assert_eq!(
        hashers::verify_password("secret", &h, &cfg),
        Verified {
            ok: true,
            must_update: false
        }
    );
}

// ------------------------------------------------------------------------------------------
// session auth hash

#[test]
fn session_auth_hash_vectors() {
    let a = &v()["session_auth_hash"];
    let field = s(&a["password_field"]);
    assert_eq!(s(&a["key_salt"]), sessions::AUTH_HASH_KEY_SALT);
    let current = sessions::session_auth_hash(field, s(&a["secret"]));
    assert_eq!(current, s(&a["sha256_hex"]));
    let old = sessions::session_auth_hash(field, s(&a["fallback_secret"]));
    assert_eq!(old, s(&a["fallback_sha256_hex"]));
    let legacy = hex::encode(crypto::salted_hmac(
        sessions::AUTH_HASH_KEY_SALT,
        field.as_bytes(),
        s(&a["secret"]),
        Algorithm::Sha1,
    ));
    assert_eq!(legacy, s(&a["legacy_sha1_hex_constructed"]));
    let fallbacks = vec![fallback().to_owned()];
    assert_eq!(
        sessions::check_auth_hash(&current, field, secret(), &fallbacks),
        AuthHashCheck::Current
    );
    assert_eq!(
        sessions::check_auth_hash(&old, field, secret(), &fallbacks),
        AuthHashCheck::Fallback
    );
    assert_eq!(
        sessions::check_auth_hash(&old, field, secret(), &[]),
        AuthHashCheck::Mismatch
    );
    // ≤3.0-style sha1 hashes are not accepted (Django ≥ 4.0).
    assert_eq!(
        sessions::check_auth_hash(&legacy, field, secret(), &fallbacks),
        AuthHashCheck::Mismatch
    );
    assert_eq!(
        sessions::check_auth_hash("", field, secret(), &fallbacks),
        AuthHashCheck::Mismatch
    );
    // A password change invalidates the session.
    assert_eq!(
        sessions::check_auth_hash(&current, &format!("{field}x"), secret(), &fallbacks),
        AuthHashCheck::Mismatch
    );
}

// ------------------------------------------------------------------------------------------
// signing

#[test]
fn signer_vectors() {
    let sg = &v()["signing"];
    let keys = [secret(), fallback()];
    let e = &sg["signer_default_salt"];
    assert_eq!(s(&e["salt"]), signing::SIGNER_SALT);
    let signer = Signer::new(&keys, signing::SIGNER_SALT);
    assert_eq!(signer.sign(s(&e["value"])), s(&e["signed"]));
    assert_eq!(signer.unsign(s(&e["signed"])), Ok(s(&e["value"])));
    assert_eq!(signer.unsign("hello"), Err(SigningError::BadSignature));
    assert_eq!(signer.unsign("hello:"), Err(SigningError::BadSignature));

    // sha1 legacy signature: rejected like Django 5.2.
    let e = &sg["signer_sha1_legacy"];
    assert!(s(&e["accepted_by_5_2_default_signer"]["error"]).starts_with("BadSignature"));
    let signer = Signer::new(&keys, s(&e["salt"]));
    assert_eq!(
        signer.unsign(s(&e["signed"])),
        Err(SigningError::BadSignature)
    );

    let e = &sg["timestamp_signer"];
    let tsigner = TimestampSigner::new(&keys, s(&e["salt"]));
    assert_eq!(tsigner.sign(s(&e["value"]), ts()), s(&e["signed"]));
    assert_eq!(tsigner.unsign(s(&e["signed"]), None, ts()), Ok("hello"));
    assert_eq!(
        tsigner.unsign(s(&e["signed"]), Some(10), ts() + 10),
        Ok("hello")
    );
    assert_eq!(
        tsigner.unsign(s(&e["signed"]), Some(10), ts() + 11),
        Err(SigningError::Expired)
    );
    // Future timestamps pass.
    assert_eq!(
        tsigner.unsign(s(&e["signed"]), Some(10), ts() - 1000),
        Ok("hello")
    );
    // A validly signed value without a timestamp is a payload error, not a crash.
    let plain = Signer::new(&keys, s(&e["salt"])).sign("hello");
    assert_eq!(
        tsigner.unsign(&plain, None, ts()),
        Err(SigningError::BadPayload)
    );
    assert_eq!(
        s(&sg["set_signed_cookie_salt_v2"]),
        "django.http.cookies.v2:0:mycookie"
    );
}

#[test]
fn dumps_loads_vectors() {
    let sg = &v()["signing"];
    let keys = [secret(), fallback()];
    for name in [
        "dumps_plain",
        "dumps_compressed",
        "dumps_compress_not_worth_it",
    ] {
        let e = &sg[name];
        let json = serde_json::to_string(&e["obj"]).unwrap();
        let compress = e["compress"].as_bool().unwrap();
        let token = s(&e["token"]);
        let loaded = signing::loads(token, &keys, signing::DUMPS_SALT, None, ts()).unwrap();
        assert_eq!(loaded, json.as_bytes(), "{name}");
        let mine = signing::dumps(
            json.as_bytes(),
            secret(),
            signing::DUMPS_SALT,
            compress,
            ts(),
        );
        assert_eq!(mine.starts_with('.'), token.starts_with('.'), "{name}");
        if mine != token {
            // zlib output may legitimately differ between implementations (§3.3); the
            // payload must still round-trip.
            assert!(compress, "{name}: {mine} != {token}");
        }
        let back = signing::loads(&mine, &keys, signing::DUMPS_SALT, None, ts()).unwrap();
        assert_eq!(back, json.as_bytes());
        if e.get("loads_max_age_ok").is_some() {
            assert_eq!(
                signing::loads(token, &keys, signing::DUMPS_SALT, Some(100), ts() + 50).unwrap(),
                json.as_bytes()
            );
            assert!(s(&e["loads_max_age_expired"]["error"]).starts_with("SignatureExpired"));
            assert_eq!(
                signing::loads(
                    token,
                    &keys,
                    signing::DUMPS_SALT,
                    Some(100),
                    ts() + 95_610_525
                ),
                Err(SigningError::Expired)
            );
        }
    }
    assert!(s(&sg["dumps_compressed"]["token"]).starts_with(".eJ"));
    let e = &sg["dumps_with_fallback_key"];
    assert_eq!(s(&e["signed_with"]), fallback());
    let token = s(&e["token"]);
    let want = serde_json::to_string(&e["loads_with_current_key_and_fallbacks"]).unwrap();
    assert_eq!(
        signing::loads(token, &keys, signing::DUMPS_SALT, None, ts()).unwrap(),
        want.as_bytes()
    );
    assert_eq!(
        signing::loads(token, &[secret()], signing::DUMPS_SALT, None, ts()),
        Err(SigningError::BadSignature)
    );
    // Signing always uses the first key.
    assert_eq!(
        signing::dumps(
            want.as_bytes(),
            fallback(),
            signing::DUMPS_SALT,
            false,
            ts()
        ),
        token
    );
    let e = &sg["tampered_token"];
    assert!(s(&e["loads"]["error"]).starts_with("BadSignature"));
    assert_eq!(
        signing::loads(s(&e["token"]), &keys, signing::DUMPS_SALT, None, ts()),
        Err(SigningError::BadSignature)
    );
    // Wrong salt.
    assert_eq!(
        signing::loads(s(&sg["dumps_plain"]["token"]), &keys, "other", None, ts()),
        Err(SigningError::BadSignature)
    );
}

#[test]
fn loads_refuses_bad_payloads_and_zip_bombs() {
    let keys = [secret()];
    let salt = signing::DUMPS_SALT;
    // A signed but corrupt compressed payload.
    let ts_signer = TimestampSigner::new(&keys, salt);
    let token = ts_signer.sign(".eJxLTEoGAA", ts());
    assert_eq!(
        signing::loads(&token, &keys, salt, None, ts()),
        Err(SigningError::BadPayload)
    );
    let token = ts_signer.sign("***", ts());
    assert_eq!(
        signing::loads(&token, &keys, salt, None, ts()),
        Err(SigningError::BadPayload)
    );
    // 8 MiB of zeros compresses to a few KiB; decompression stops at the bound.
    let big = vec![b'0'; 8 << 20];
    let token = signing::dumps(&big, secret(), salt, true, ts());
    assert!(token.len() < 64 * 1024);
    assert_eq!(
        signing::loads(&token, &keys, salt, None, ts()),
        Err(SigningError::BadPayload)
    );
    // Just under the bound is fine.
    let ok = vec![b'1'; signing::MAX_DECOMPRESSED];
    let token = signing::dumps(&ok, secret(), salt, true, ts());
    assert_eq!(signing::loads(&token, &keys, salt, None, ts()).unwrap(), ok);
}

// ------------------------------------------------------------------------------------------
// sessions

#[test]
fn session_data_vectors() {
    let ss = &v()["sessions"];
    let keys = [secret(), fallback()];
    for name in ["db_session_data_logged_in", "db_session_data_bigger"] {
        let e = &ss[name];
        assert_eq!(s(&e["salt"]), sessions::SESSION_SALT);
        let want = session_of(&e["session_dict"]);
        let data = s(&e["session_data"]);
        let got = sessions::decode(data, &keys, sessions::SESSION_SALT, None, ts()).unwrap();
        assert_eq!(got, want, "{name}");
        // Our encoding round-trips (zlib bytes may differ from CPython's; §3.3).
        let mine = sessions::encode(&want, secret(), sessions::SESSION_SALT, ts());
        assert_eq!(mine.starts_with(".eJ"), e["compressed"].as_bool().unwrap());
        assert_eq!(
            sessions::decode(&mine, &keys, sessions::SESSION_SALT, None, ts()).unwrap(),
            want
        );
        assert_eq!(got.user_id(), Some(1));
        assert_eq!(got.backend().as_deref(), Some(sessions::MODEL_BACKEND));
        assert_eq!(
            got.auth_hash().as_deref(),
            Some(s(&v()["session_auth_hash"]["sha256_hex"]))
        );
        // A db session under the wrong salt (e.g. a custom store class) is empty.
        assert!(
            sessions::decode(data, &keys, "django.contrib.sessions.MyStore", None, ts()).is_none()
        );
    }

    let e = &ss["signed_cookies_cookie_value"];
    assert_eq!(s(&e["salt"]), sessions::SIGNED_COOKIES_SALT);
    let want = session_of(&e["session_dict"]);
    let cookie = s(&e["cookie_value"]);
    let age = Some(1_209_600);
    assert_eq!(
        sessions::decode(cookie, &keys, sessions::SIGNED_COOKIES_SALT, age, ts() + 60),
        Some(want.clone())
    );
    assert_eq!(
        sessions::decode(
            cookie,
            &keys,
            sessions::SIGNED_COOKIES_SALT,
            age,
            ts() + 1_209_601
        ),
        None
    );
    assert!(sessions::decode(cookie, &keys, sessions::SESSION_SALT, None, ts()).is_none());

    // Legacy pre-3.1 format: not readable (Django ≥ 4.0 returns {}).
    let e = &ss["legacy_pre_3_1_session_data_constructed"];
    assert_eq!(e["decoded_by_django_5_2"], serde_json::json!({}));
    assert!(
        sessions::decode(
            s(&e["session_data"]),
            &keys,
            sessions::SESSION_SALT,
            None,
            ts()
        )
        .is_none()
    );
    assert!(
        sessions::decode(
            s(&v()["probe_3_2"]["legacy_session_data"]),
            &keys,
            sessions::SESSION_SALT,
            None,
            ts()
        )
        .is_none()
    );

    let e = &ss["session_data_signed_with_fallback_secret"];
    let data = s(&e["session_data"]);
    assert_eq!(
        sessions::decode(data, &keys, sessions::SESSION_SALT, None, ts()),
        Some(session_of(&e["decoded_by_django_5_2"]))
    );
    assert!(sessions::decode(data, &[secret()], sessions::SESSION_SALT, None, ts()).is_none());

    let e = &ss["empty_session_data"];
    let empty = SessionData::default();
    assert_eq!(
        sessions::encode(&empty, secret(), sessions::SESSION_SALT, ts()),
        s(&e["session_data"])
    );
    let got = sessions::decode(
        s(&e["session_data"]),
        &keys,
        sessions::SESSION_SALT,
        None,
        ts(),
    )
    .unwrap();
    assert!(got.is_empty());
    assert_eq!(got.user_id(), None);
}

#[test]
fn session_non_ascii() {
    let e = &v()["sessions"]["non_ascii_value"];
    let keys = [secret()];
    let dict = session_of(&e["session_dict"]);
    let json = pyjson::dumps(&Value::Object(dict.0.clone()), pyjson::Separators::Compact);
    assert_eq!(json, s(&e["json_bytes"]));
    assert!(json.is_ascii());
    let encoded = sessions::encode(&dict, secret(), sessions::SESSION_SALT, ts());
    assert_eq!(encoded, s(&e["session_data"]));
    assert_eq!(
        sessions::decode(&encoded, &keys, sessions::SESSION_SALT, None, ts()),
        Some(dict)
    );
    // Raw UTF-8 JSON (what a naive encoder writes) is read as latin-1, exactly like Django.
    let got = sessions::decode(
        s(&e["raw_utf8_json_signed_constructed"]),
        &keys,
        sessions::SESSION_SALT,
        None,
        ts(),
    )
    .unwrap();
    assert_eq!(got, session_of(&e["django_decodes_raw_utf8_as"]));
}

#[test]
fn session_login_helpers() {
    let key = sessions::new_session_key();
    assert_eq!(key.len(), 32);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_ne!(key, sessions::new_session_key());

    let want = session_of(&v()["sessions"]["db_session_data_logged_in"]["session_dict"]);
    let hash = s(&v()["session_auth_hash"]["sha256_hex"]);
    let mut d = SessionData::default();
    d.set_login(1, hash);
    assert_eq!(d, want);
    // Unknown keys are kept, existing keys keep their position.
    let mut d = SessionData::default();
    d.0.insert("_auth_user_hash", Value::str("old"));
    d.0.insert("cart", Value::Array(vec![]));
    d.set_login(7, "h");
    let keys: Vec<String> = d.0.iter().map(|(k, _)| k.as_string().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "_auth_user_hash",
            "cart",
            "_auth_user_id",
            "_auth_user_backend"
        ]
    );
    assert_eq!(d.user_id(), Some(7));
    assert_eq!(d.auth_hash().as_deref(), Some("h"));
    // user_id parsing like Python int().
    for (raw, want) in [
        (Value::str("42"), Some(42)),
        (Value::str(" 42 "), Some(42)),
        (Value::str("1_000"), Some(1000)),
        (Value::int(5), Some(5)),
        (Value::str("4x"), None),
        (Value::str(""), None),
        (Value::str("99999999999999999999"), None),
        (Value::Null, None),
    ] {
        let mut d = SessionData::default();
        d.0.insert(sessions::AUTH_USER_ID, raw.clone());
        assert_eq!(d.user_id(), want, "{raw:?}");
    }
    // A JSON value that is not a dict is not a session.
    let token = signing::dumps(b"[1,2]", secret(), sessions::SESSION_SALT, true, ts());
    assert!(sessions::decode(&token, &[secret()], sessions::SESSION_SALT, None, ts()).is_none());
    let token = signing::dumps(b"{bad", secret(), sessions::SESSION_SALT, true, ts());
    assert!(sessions::decode(&token, &[secret()], sessions::SESSION_SALT, None, ts()).is_none());
}

// ------------------------------------------------------------------------------------------
// CSRF

#[test]
fn csrf_vectors() {
    let c = &v()["csrf"];
    assert_eq!(s(&c["alphabet"]).as_bytes(), csrf::CSRF_ALLOWED_CHARS);
    let vectors = c["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for e in vectors {
        let (secret, mask, token) = (s(&e["secret"]), s(&e["mask"]), s(&e["masked_token"]));
        assert_eq!(csrf::mask_with(secret, mask), token);
        assert_eq!(csrf::unmask(token).as_deref(), Some(secret));
        assert!(csrf::does_token_match(token, secret));
        assert!(csrf::does_token_match(secret, secret));
        let fresh = csrf::mask_cipher_secret(secret);
        assert_eq!(fresh.len(), 64);
        assert_ne!(fresh, csrf::mask_cipher_secret(secret));
        assert_eq!(csrf::unmask(&fresh).as_deref(), Some(secret));
        assert_eq!(csrf::secret_from_cookie(token).as_deref(), Ok(secret));
        assert_eq!(csrf::secret_from_cookie(secret).as_deref(), Ok(secret));
    }
    let m = &c["does_token_match"];
    let (secret, token) = (s(&vectors[0]["secret"]), s(&vectors[0]["masked_token"]));
    let other = s(&vectors[1]["secret"]);
    assert_eq!(
        csrf::does_token_match(token, secret),
        m["masked_vs_secret"].as_bool().unwrap()
    );
    assert_eq!(
        csrf::does_token_match(secret, secret),
        m["unmasked_vs_secret"].as_bool().unwrap()
    );
    assert_eq!(
        csrf::does_token_match(token, other),
        m["other_secret"].as_bool().unwrap()
    );
    let f = &c["format_errors"];
    assert_eq!(
        s(&f["len_63"]["error"]),
        format!(
            "InvalidTokenFormat: {}",
            TokenFormatError::IncorrectLength.reason()
        )
    );
    assert_eq!(
        s(&f["bad_char"]["error"]),
        format!(
            "InvalidTokenFormat: {}",
            TokenFormatError::InvalidCharacters.reason()
        )
    );
    assert_eq!(
        csrf::check_token_format(&token[..63]),
        Err(TokenFormatError::IncorrectLength)
    );
    assert_eq!(
        csrf::check_token_format(&format!("{}!", &token[..63])),
        Err(TokenFormatError::InvalidCharacters)
    );
    assert_eq!(
        csrf::check_token_format(&format!("{}é", &token[..31])),
        Err(TokenFormatError::InvalidCharacters)
    );
    assert!(!csrf::does_token_match(&token[..63], secret));
    let s1 = csrf::new_secret();
    assert_eq!(s1.len(), 32);
    assert!(s1.bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[test]
fn csrf_token_check_reasons() {
    let secret = "abcdefghijklmnopqrstuvwxyzABCDEF";
    let token = csrf::mask_cipher_secret(secret);
    assert_eq!(csrf::check_token(Some(secret), Some(&token), None), Ok(()));
    assert_eq!(csrf::check_token(Some(&token), None, Some(secret)), Ok(()));
    assert_eq!(
        csrf::check_token(Some(secret), Some(""), Some(&token)),
        Ok(())
    );
    let r = |e: Result<(), CsrfRejection>| e.unwrap_err().reason();
    assert_eq!(
        r(csrf::check_token(None, Some(&token), None)),
        "CSRF cookie not set."
    );
    assert_eq!(
        r(csrf::check_token(Some("short"), Some(&token), None)),
        "CSRF cookie has incorrect length."
    );
    assert_eq!(
        r(csrf::check_token(Some(secret), None, None)),
        "CSRF token missing."
    );
    assert_eq!(
        r(csrf::check_token(Some(secret), Some("x"), None)),
        "CSRF token from POST has incorrect length."
    );
    assert_eq!(
        r(csrf::check_token(Some(secret), None, Some(&"!".repeat(32)))),
        "CSRF token from the 'X-Csrftoken' HTTP header has invalid characters."
    );
    assert_eq!(
        r(csrf::check_token(Some(secret), None, Some(&"a".repeat(32)))),
        "CSRF token from the 'X-Csrftoken' HTTP header incorrect."
    );
    assert_eq!(
        csrf::check_token(Some(secret), Some(&"a".repeat(64)), None),
        Err(CsrfRejection::TokenIncorrect(TokenSource::Post))
    );
}

#[test]
fn csrf_origin_and_referer() {
    let none: Vec<String> = vec![];
    let trusted: Vec<String> = vec![
        "https://trusted.example".into(),
        "https://*.wild.example".into(),
        "http://*.plain.example:8080".into(),
    ];
    let ok = |o: Option<&str>, r: Option<&str>, secure: bool, t: &[String]| {
        csrf::check_origin(o, r, secure, "example.com", t, None)
    };
    // Origin = our own scheme://host.
    assert_eq!(ok(Some("http://example.com"), None, false, &none), Ok(()));
    assert_eq!(ok(Some("https://example.com"), None, true, &none), Ok(()));
    let bad = ok(Some("http://example.com"), None, true, &none).unwrap_err();
    assert_eq!(
        bad.reason(),
        "Origin checking failed - http://example.com does not match any trusted origins."
    );
    assert!(ok(Some("null"), None, false, &none).is_err());
    assert!(
        ok(
            Some("https://evil.com"),
            Some("https://example.com/"),
            true,
            &none
        )
        .is_err()
    );
    assert!(ok(Some("http://example.com:8000"), None, false, &none).is_err());
    assert_eq!(
        csrf::check_origin(
            Some("http://example.com:8000"),
            None,
            false,
            "example.com:8000",
            &none,
            None
        ),
        Ok(())
    );
    // Trusted origins: exact and wildcard.
    assert_eq!(
        ok(Some("https://trusted.example"), None, true, &trusted),
        Ok(())
    );
    assert!(ok(Some("http://trusted.example"), None, false, &trusted).is_err());
    assert_eq!(
        ok(Some("https://a.wild.example"), None, true, &trusted),
        Ok(())
    );
    assert_eq!(
        ok(Some("https://wild.example"), None, true, &trusted),
        Ok(())
    );
    assert!(ok(Some("http://a.wild.example"), None, false, &trusted).is_err());
    assert!(ok(Some("https://a.wild.example:444"), None, true, &trusted).is_err());
    assert_eq!(
        ok(Some("http://x.plain.example:8080"), None, false, &trusted),
        Ok(())
    );
    // No Origin, plain HTTP: nothing to check.
    assert_eq!(ok(None, None, false, &none), Ok(()));
    // No Origin, HTTPS: Referer rules.
    assert_eq!(
        ok(None, None, true, &none).unwrap_err().reason(),
        "Referer checking failed - no Referer."
    );
    assert_eq!(
        ok(None, Some("nonsense"), true, &none)
            .unwrap_err()
            .reason(),
        "Referer checking failed - Referer is malformed."
    );
    assert_eq!(
        ok(None, Some("https://[::1/"), true, &none).unwrap_err(),
        CsrfRejection::MalformedReferer
    );
    assert_eq!(
        ok(None, Some("http://example.com/"), true, &none)
            .unwrap_err()
            .reason(),
        "Referer checking failed - Referer is insecure while host is secure."
    );
    assert_eq!(
        ok(None, Some("https://example.com/page?x=1"), true, &none),
        Ok(())
    );
    assert_eq!(
        ok(None, Some("https://evil.com/page"), true, &none)
            .unwrap_err()
            .reason(),
        "Referer checking failed - https://evil.com/page does not match any trusted origins."
    );
    assert_eq!(
        ok(None, Some("https://trusted.example/x"), true, &trusted),
        Ok(())
    );
    assert_eq!(
        ok(None, Some("https://deep.a.wild.example/x"), true, &trusted),
        Ok(())
    );
    // CSRF_COOKIE_DOMAIN allows subdomains when it starts with a dot.
    let cd = |r: &str, host: &str| {
        csrf::check_origin(None, Some(r), true, host, &none, Some(".example.com"))
    };
    assert_eq!(cd("https://www.example.com/", "example.com"), Ok(()));
    assert_eq!(
        cd("https://www.example.com:8443/", "example.com:8443"),
        Ok(())
    );
    assert!(cd("https://www.example.com/", "example.com:8443").is_err());
    assert!(cd("https://www.evil.com/", "example.com").is_err());
}

// ------------------------------------------------------------------------------------------
// hosts

#[test]
fn channels_origin_validator_cases() {
    let c = &v()["channels_origin_validator"];
    let cases = c["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for e in cases {
        let allowed: Vec<String> = e["allowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| s(a).to_owned())
            .collect();
        let origin = e["origin"].as_str();
        let valid = e["valid"].as_bool().unwrap();
        assert_eq!(hosts::origin_allowed_opt(origin, &allowed), valid, "{e}");
        if let Some(o) = origin {
            assert_eq!(hosts::origin_allowed(o, &allowed), valid, "{e}");
        }
    }
    let a = |list: &[&str]| list.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(!hosts::origin_allowed(
        "wss://example.com",
        &a(&["https://example.com:443"])
    ));
    assert!(hosts::origin_allowed(
        "wss://example.com",
        &a(&["wss://example.com:443"])
    ));
    assert!(hosts::origin_allowed("http://[::1]:8000", &a(&["[::1]"])));
    assert!(!hosts::origin_allowed(
        "http://evil-example.com",
        &a(&[".example.com"])
    ));
    assert!(!hosts::origin_allowed(
        "http://example.com.evil",
        &a(&["example.com"])
    ));
    assert!(!hosts::origin_allowed(
        "http://example.com:99999",
        &a(&["http://example.com"])
    ));
    // "localhost:8000" parses as scheme "localhost" in Python, so it never matches.
    assert!(!hosts::origin_allowed(
        "http://localhost:8000",
        &a(&["localhost:8000"])
    ));
}

#[test]
fn host_validation() {
    let allowed: Vec<String> = vec!["example.com".into(), ".sub.test".into(), "[::1]".into()];
    assert!(hosts::validate_host("example.com", &allowed));
    assert!(hosts::validate_host("EXAMPLE.com", &allowed));
    assert!(hosts::validate_host("example.com.", &allowed));
    assert!(!hosts::validate_host("www.example.com", &allowed));
    assert!(hosts::validate_host("sub.test", &allowed));
    assert!(hosts::validate_host("a.b.sub.test", &allowed));
    assert!(!hosts::validate_host("xsub.test", &allowed));
    assert!(hosts::validate_host("[::1]", &allowed));
    assert!(hosts::validate_host("anything", &["*".to_string()]));
    assert!(!hosts::validate_host("anything", &[]));

    assert_eq!(
        hosts::split_domain_port("Example.COM:8000"),
        ("example.com".into(), "8000".into())
    );
    assert_eq!(
        hosts::split_domain_port("example.com."),
        ("example.com".into(), "".into())
    );
    assert_eq!(
        hosts::split_domain_port("[::1]:8000"),
        ("[::1]".into(), "8000".into())
    );
    assert_eq!(
        hosts::split_domain_port("[::1]"),
        ("[::1]".into(), "".into())
    );
    assert_eq!(
        hosts::split_domain_port("[::ffff:127.0.0.1]"),
        ("[::ffff:127.0.0.1]".into(), "".into())
    );
    for bad in [
        "",
        "exa mple.com",
        "example.com:",
        "example.com:80x",
        "[::1",
        "[zz::1]",
        "a_b.com",
        "ex@mple.com",
        "[]",
        ":80",
    ] {
        assert_eq!(
            hosts::split_domain_port(bad),
            (String::new(), String::new()),
            "{bad:?}"
        );
        assert!(!hosts::is_valid_host_header(bad), "{bad:?}");
    }
    for good in [
        "example.com",
        "EXAMPLE.COM:443",
        "127.0.0.1:8000",
        "[::1]:80",
        "localhost",
    ] {
        assert!(hosts::is_valid_host_header(good), "{good:?}");
    }
    assert!(hosts::is_allowed_host("example.com:8000", &allowed, false));
    assert!(!hosts::is_allowed_host("evil.com", &allowed, false));
    assert!(!hosts::is_allowed_host("example.com/", &allowed, false));
    assert!(hosts::is_allowed_host("localhost:8000", &[], true));
    assert!(hosts::is_allowed_host("a.localhost", &[], true));
    assert!(hosts::is_allowed_host("[::1]:8000", &[], true));
    assert!(!hosts::is_allowed_host("localhost", &[], false));
}

#[test]
fn safe_redirects() {
    let allowed: Vec<String> = vec!["testserver".into(), "example.com:8000".into()];
    let ok = |u: &str| hosts::url_has_allowed_host_and_scheme(u, &allowed, false);
    for good in [
        "/",
        "/accounts/profile/",
        "/chat/?room=1#x",
        "view/?param=//example.com",
        "https://testserver/",
        "HTTPS://testserver/",
        "//testserver/",
        "http://example.com:8000/x",
        "  /padded  ",
        "/url%20with%20spaces/",
        "path/http:2222222222",
    ] {
        assert!(ok(good), "{good:?} should be safe");
    }
    for bad in [
        "",
        "   ",
        "//evil.com",
        "///evil.com",
        "\\\\evil.com",
        "\\/evil.com",
        "/\\evil.com",
        "http://evil.com",
        "https://evil.com/",
        "http:///evil.com",
        "http:/evil.com",
        "https:evil.com",
        "ftp://testserver/",
        "javascript:alert(1)",
        "\x08//evil.com",
        "\x01/testserver",
        "http://testserver\\@evil.com",
        "http://example.com/",
        "http://[::1/",
        "//testserver@evil.com",
        "http://evil.com\\@testserver",
    ] {
        assert!(!ok(bad), "{bad:?} should be unsafe");
    }
    assert!(!ok(&format!("/{}", "a".repeat(hosts::MAX_URL_LENGTH))));
    // require_https.
    assert!(!hosts::url_has_allowed_host_and_scheme(
        "http://testserver/",
        &allowed,
        true
    ));
    assert!(!hosts::url_has_allowed_host_and_scheme(
        "//testserver/",
        &allowed,
        true
    ));
    assert!(hosts::url_has_allowed_host_and_scheme(
        "https://testserver/",
        &allowed,
        true
    ));
    assert!(hosts::url_has_allowed_host_and_scheme(
        "/local", &allowed, true
    ));
    // urlsplit basics.
    let u = hosts::urlsplit(" \tHTTP://User@Host.COM:80/p?q#f").unwrap();
    assert_eq!(
        (
            u.scheme.as_str(),
            u.netloc.as_str(),
            u.path.as_str(),
            u.query.as_str(),
            u.fragment.as_str()
        ),
        ("http", "User@Host.COM:80", "/p", "q", "f")
    );
    assert_eq!(u.hostname().as_deref(), Some("host.com"));
    assert_eq!(u.port(), Ok(Some(80)));
    assert!(hosts::urlsplit("http://[::1]x/").is_err());
    assert!(hosts::urlsplit("http://[127.0.0.1]/").is_err());
    assert!(hosts::urlsplit("http://[v1.fe]/").is_ok());
}
