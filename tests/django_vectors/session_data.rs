//! `sessions`: the session auth hash, session data encode/decode vectors, non-ASCII data and
//! the login helpers.

use super::*;

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
            s(&ss["legacy_pre_3_1_login_constructed"]["session_data"]),
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
