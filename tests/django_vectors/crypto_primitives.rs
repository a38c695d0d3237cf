//! `crypto`: salted_hmac vectors, the base62 table and the random/compare helpers.

use super::*;

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
