//! `hosts`: the Channels origin validator, host validation and safe redirects.

use super::*;

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
