//! `csrf`: token vectors, token check reasons and the Origin/Referer rules.

use super::*;

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
