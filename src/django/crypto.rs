//! Django's small crypto helpers (`django.utils.crypto`, `django.core.signing` encoders):
//! `salted_hmac` (spec §1.3), constant-time comparison (§1.1), `get_random_string` (§1.2),
//! base62 for timestamps (§1.4) and URL-safe base64 without padding (spec notation "b64url").
//!
//! Owned by this file: only pure functions; the sole source of randomness is the thread-local
//! CSPRNG of `rand` (ChaCha, seeded and periodically reseeded from the OS).

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Django's `RANDOM_STRING_CHARS`: lowercase, uppercase, digits (this order matters for CSRF
/// masking, spec §6.1).
pub const RANDOM_STRING_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Base62 alphabet of `django.core.signing` (digits, UPPER, lower – *not* the CSRF order, §1.4).
pub const BASE62_ALPHABET: &[u8] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Hash algorithm for [`salted_hmac`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Django's historical default (`salted_hmac` without `algorithm=`).
    Sha1,
    /// What signing and the session auth hash use since 3.1.
    Sha256,
}

/// `django.utils.crypto.salted_hmac(key_salt, value, secret, algorithm).digest()` (§1.3):
/// `key = H(key_salt || secret)` (always hashed, even when short), then `HMAC-H(key, value)`.
pub fn salted_hmac(key_salt: &str, value: &[u8], secret: &str, algo: Algorithm) -> Vec<u8> {
    match algo {
        Algorithm::Sha1 => {
            let mut h = Sha1::new();
            h.update(key_salt.as_bytes());
            h.update(secret.as_bytes());
            let key = h.finalize();
            let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&key)
                .expect("HMAC accepts keys of any length");
            mac.update(value);
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha256 => {
            let mut h = Sha256::new();
            h.update(key_salt.as_bytes());
            h.update(secret.as_bytes());
            let key = h.finalize();
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                .expect("HMAC accepts keys of any length");
            mac.update(value);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// `constant_time_compare` (§1.1): different lengths are simply unequal (the length itself is
/// not secret); equal lengths are compared without data-dependent branches.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `get_random_string(len, alphabet)` (§1.2): each character independently and exactly
/// uniformly from `alphabet` (rejection sampling, no modulo bias), using a CSPRNG.
///
/// # Panics
/// If `alphabet` is empty or longer than 256 bytes, or not ASCII (programming errors).
pub fn get_random_string(len: usize, alphabet: &[u8]) -> String {
    assert!(
        !alphabet.is_empty() && alphabet.len() <= 256 && alphabet.is_ascii(),
        "alphabet must be 1..=256 ASCII bytes"
    );
    let n = alphabet.len() as u32;
    // Largest multiple of n that fits in 2^32; values at or above it are rejected.
    let zone = u64::from(u32::MAX) + 1 - ((u64::from(u32::MAX) + 1) % u64::from(n));
    let mut rng = rand::rng();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let v = rng.next_u32();
        if u64::from(v) < zone {
            out.push(char::from(alphabet[(v % n) as usize]));
        }
    }
    out
}

/// `django.core.signing.b62_encode` (§1.4): big-endian, `0` → `"0"`, negatives get `-`.
pub fn base62_encode(value: i64) -> String {
    if value == 0 {
        return "0".to_owned();
    }
    let negative = value < 0;
    let mut n = value.unsigned_abs();
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(BASE62_ALPHABET[(n % 62) as usize]);
        n /= 62;
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII")
}

/// `django.core.signing.b62_decode`: `None` where Python raises (empty input, a character
/// outside the alphabet) or where the value does not fit in an `i64`. Like Python, a lone `"-"`
/// decodes to 0.
pub fn base62_decode(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None if text.is_empty() => return None,
        None => (false, text),
    };
    let mut value: i64 = 0;
    for byte in digits.bytes() {
        let d = BASE62_ALPHABET.iter().position(|&c| c == byte)? as i64;
        value = value.checked_mul(62)?.checked_add(d)?;
    }
    Some(if negative { -value } else { value })
}

/// URL-safe base64 decoder as lenient as Python's `urlsafe_b64decode(s + padding)` for
/// canonical input: padding optional, non-zero trailing bits tolerated.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `b64_encode(...).rstrip(b"=")`: URL-safe alphabet (`-`, `_`), padding stripped.
pub fn b64url_encode(data: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// `b64_decode`: URL-safe alphabet, padding re-added (accepted with or without `=`).
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_LENIENT.decode(text).ok()
}
