//! `hashers` × every supported Django release (`django-hashers.json`): each release's
//! parameters, default `PASSWORD_HASHERS` and hasher classes as read from its installed source,
//! a known-answer hash per hasher (what Django writes when that hasher comes first), and each
//! release's `must_update` verdicts over every other release's hashes — so Whisper's table in
//! `whisper::django::hashers` cannot drift from Django's sources.

use super::*;

fn hashers_json() -> &'static J {
    static V: OnceLock<J> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/django-hashers.json"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        serde_json::from_str(&text).expect("django-hashers.json is JSON")
    })
}

fn record(version: DjangoVersion) -> &'static J {
    let r = &hashers_json()["versions"][version.to_string()];
    assert!(r.is_object(), "no record for Django {version}");
    r
}

/// Every hasher `version` ships and Whisper implements, its default list first (Django with
/// all of them enabled, as the data script configures it).
fn all_enabled(version: DjangoVersion) -> HasherConfig {
    let mut list: Vec<&str> = version.default_hashers().to_vec();
    for h in version.shipped_hashers() {
        if !list.contains(h) && *h != "crypt" {
            list.push(h);
        }
    }
    HasherConfig::with_hashers(version, &list).unwrap()
}

fn u(j: &J) -> u64 {
    j.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {j}"))
}

#[test]
fn every_recorded_release_is_supported_and_nothing_else() {
    let recorded: Vec<String> = hashers_json()["versions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let ours: Vec<String> = DjangoVersion::ALL.iter().map(|v| v.to_string()).collect();
    assert_eq!(recorded, ours);
    for v in DjangoVersion::ALL {
        assert_eq!(v.to_string().parse::<DjangoVersion>(), Ok(v));
        let full = s(&record(v)["django_version"]);
        assert!(full.starts_with(&format!("{v}.")), "{v}: {full}");
    }
    let err = "5.3".parse::<DjangoVersion>().unwrap_err();
    assert!(err.contains("4.2, 5.0, 5.1, 5.2, 6.0, 6.1"), "{err}");
}

fn parameters_classes_and_known_answers(version: DjangoVersion) {
    let r = record(version);
    let p = &r["parameters"];
    let ours = version.params();
    assert_eq!(
        u64::from(ours.pbkdf2_iterations),
        u(&p["pbkdf2_sha256_iterations"])
    );
    assert_eq!(
        u64::from(ours.pbkdf2_iterations),
        u(&p["pbkdf2_sha1_iterations"])
    );
    assert_eq!(u64::from(ours.salt_entropy), u(&p["salt_entropy"]));
    assert_eq!(hashers::SALT_LENGTH as u64, u(&p["salt_length_chars"]));
    assert_eq!(
        u64::from(ours.argon2_time_cost),
        u(&p["argon2"]["time_cost"])
    );
    assert_eq!(
        u64::from(ours.argon2_memory_cost),
        u(&p["argon2"]["memory_cost"])
    );
    assert_eq!(
        u64::from(ours.argon2_parallelism),
        u(&p["argon2"]["parallelism"])
    );
    assert_eq!(u64::from(ours.bcrypt_rounds), u(&p["bcrypt_sha256_rounds"]));
    assert_eq!(u64::from(ours.bcrypt_rounds), u(&p["bcrypt_rounds"]));
    assert_eq!(ours.scrypt_work_factor, u(&p["scrypt"]["work_factor"]));
    assert_eq!(
        u64::from(ours.scrypt_block_size),
        u(&p["scrypt"]["block_size"])
    );
    assert_eq!(
        u64::from(ours.scrypt_parallelism),
        u(&p["scrypt"]["parallelism"])
    );
    // Django passes maxmem=0 (OpenSSL's 32 MiB default), which Whisper's caps assume.
    assert_eq!(u(&p["scrypt"]["maxmem"]), 0);

    // The default PASSWORD_HASHERS and the shipped classes, by Django's dotted names.
    let defaults: Vec<&str> = r["default_password_hashers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| hashers::algorithm_of(s(n)).unwrap_or_else(|| panic!("unknown class {n}")))
        .collect();
    assert_eq!(defaults, version.default_hashers());
    assert_eq!(HasherConfig::new(version).hashers, defaults);
    let mut shipped: Vec<&str> = r["hasher_classes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(class, algorithm)| {
            assert_eq!(hashers::algorithm_of(class), Some(s(algorithm)), "{class}");
            s(algorithm)
        })
        .collect();
    let mut ours: Vec<&str> = version.shipped_hashers().to_vec();
    shipped.sort_unstable();
    ours.sort_unstable();
    assert_eq!(shipped, ours, "hasher classes of Django {version}");

    // Known answers: the same string from make_password_with, the same verify_password and
    // must_update verdicts (all hashers enabled, the default first), and with the hasher first
    // in PASSWORD_HASHERS a fresh make_password that Django would not rehash.
    let cfg = all_enabled(version);
    let answers = r["known_answers"].as_array().unwrap();
    assert_eq!(
        answers.len(),
        ours.iter().filter(|a| **a != "crypt").count()
    );
    for a in answers {
        let (algorithm, password, salt, encoded) = (
            s(&a["algorithm"]),
            s(&a["password"]),
            s(&a["salt"]),
            s(&a["encoded"]),
        );
        assert_eq!(hashers::algorithm_of(s(&a["hasher"])), Some(algorithm));
        let first = HasherConfig::with_hashers(version, &[algorithm]).unwrap();
        assert_eq!(
            hashers::make_password_with(password, algorithm, salt, &first).unwrap(),
            encoded,
            "Django {version} {algorithm}"
        );
        let want = Verified {
            ok: a["verify_password"]["ok"].as_bool().unwrap(),
            must_update: a["verify_password"]["must_update"].as_bool().unwrap(),
        };
        assert_eq!(
            hashers::verify_password(password, encoded, &cfg),
            want,
            "{a}"
        );
        assert_eq!(
            hashers::hasher_must_update(encoded, &cfg),
            Some(a["hasher_must_update"].as_bool().unwrap()),
            "{a}"
        );
        if let Some(n) = a["fresh_salt_length"].as_u64() {
            assert_eq!(n, hashers::SALT_LENGTH as u64);
        }
        let fresh = hashers::make_password(password, &first);
        assert_eq!(
            fresh.split('$').next(),
            encoded.split('$').next(),
            "{fresh}"
        );
        assert_eq!(
            hashers::verify_password(password, &fresh, &first),
            Verified {
                ok: true,
                must_update: false
            },
            "Django {version} would rehash Whisper's fresh {algorithm}: {fresh}"
        );
    }
}

macro_rules! per_release {
    ($($name:ident => $version:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            parameters_classes_and_known_answers($version);
        }
    )*};
}

per_release!(
    django_4_2_hashers => DjangoVersion::V4_2,
    django_5_0_hashers => DjangoVersion::V5_0,
    django_5_1_hashers => DjangoVersion::V5_1,
    django_5_2_hashers => DjangoVersion::V5_2,
    django_6_0_hashers => DjangoVersion::V6_0,
    django_6_1_hashers => DjangoVersion::V6_1,
);

#[test]
fn must_update_verdicts_across_releases() {
    let cross = hashers_json()["cross_version"].as_array().unwrap();
    let mut checked = 0;
    for entry in cross {
        let encoded = s(&entry["encoded"]);
        for v in DjangoVersion::ALL {
            let verdict = &entry["verdicts"][v.to_string()];
            let cfg = all_enabled(v);
            let identified = verdict["identified"].as_bool().unwrap();
            assert_eq!(
                hashers::identify_hasher(encoded, &cfg).is_some(),
                identified,
                "Django {v} on {entry}"
            );
            if !identified {
                continue;
            }
            let own = hashers::hasher_must_update(encoded, &cfg);
            assert_eq!(
                own,
                Some(verdict["hasher_must_update"].as_bool().unwrap()),
                "Django {v} on {entry}"
            );
            let algorithm = hashers::identify_hasher(encoded, &cfg).unwrap();
            assert_eq!(
                algorithm != cfg.preferred() || own.unwrap(),
                verdict["must_update_with_default_preferred"]
                    .as_bool()
                    .unwrap(),
                "Django {v} on {entry}"
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} verdicts");
    // The headline cases: a release's pbkdf2 hash is current only under that release.
    let pbkdf2 = |made_by: &str| {
        cross
            .iter()
            .find(|e| {
                e["made_by"] == made_by
                    && e["hasher"]
                        .as_str()
                        .unwrap()
                        .ends_with(".PBKDF2PasswordHasher")
            })
            .unwrap()
    };
    assert_eq!(pbkdf2("5.2")["verdicts"]["6.1"]["hasher_must_update"], true);
    assert_eq!(
        pbkdf2("6.1")["verdicts"]["6.1"]["hasher_must_update"],
        false
    );
    assert_eq!(pbkdf2("6.1")["verdicts"]["4.2"]["hasher_must_update"], true);
}
