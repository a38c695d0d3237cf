//! `hashers`: every hasher vector, the 5.2 and 4.2 defaults, legacy hashers, unusable and
//! malformed passwords, bcrypt's 72-byte truncation and non-PBKDF2 preferred hashers.

use super::*;

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
    let err = "5.3".parse::<DjangoVersion>().unwrap_err();
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
