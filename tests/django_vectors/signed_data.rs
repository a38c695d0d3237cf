//! `signing`: Signer/TimestampSigner vectors, dumps/loads, and refused payloads (zip bombs).

use super::*;

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
