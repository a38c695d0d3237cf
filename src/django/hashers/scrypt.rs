//! `scrypt`: OpenSSL's parameter rules plus our DoS caps, and the `scrypt$n$salt$r$p$hash` encoder.

use base64::Engine as _;
use base64::engine::general_purpose;

use super::{MAX_SCRYPT_N, MAX_SCRYPT_WORK, SCRYPT_MAXMEM};

/// OpenSSL's acceptance rules (what Python's `hashlib.scrypt` enforces for Django) plus our
/// DoS caps.
pub(super) fn scrypt_params_ok(n: u64, r: u32, p: u32) -> bool {
    let (r64, p64) = (u64::from(r), u64::from(p));
    n >= 2
        && n.is_power_of_two()
        && n <= MAX_SCRYPT_N
        && r >= 1
        && p >= 1
        && r64 * p64 < (1 << 30)
        // OpenSSL: N < 2^(16 r) when 16 r fits a 64-bit shift.
        && (16 * r64 > 63 || n < (1u64 << (16 * r64)))
        // OpenSSL: 128·r·p + 128·r·(N + 2) ≤ maxmem (32 MiB default).
        && 128 * r64 * p64 + 128 * r64 * (n + 2) <= SCRYPT_MAXMEM
        && n.saturating_mul(r64).saturating_mul(p64) <= MAX_SCRYPT_WORK
}

pub(super) fn encode_scrypt(pw: &[u8], salt: &str, n: u64, r: u32, p: u32) -> Option<String> {
    if !scrypt_params_ok(n, r, p) {
        return None;
    }
    let params = ::scrypt::Params::new(n.trailing_zeros() as u8, r, p).ok()?;
    let mut dk = [0u8; 64];
    ::scrypt::scrypt(pw, salt.as_bytes(), &params, &mut dk).ok()?;
    Some(format!(
        "scrypt${n}${salt}${r}${p}${}",
        general_purpose::STANDARD.encode(dk)
    ))
}
