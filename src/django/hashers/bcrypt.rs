//! `bcrypt` and `bcrypt_sha256`: bcrypt's base64, the `$2b$cost$salt` parser and the encoder over
//! the raw Blowfish core.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};

use super::parsed::parse_u32;

pub(super) const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

pub(super) struct BcryptSalt<'a> {
    version: &'a str,
    pub(super) cost: u32,
    salt: [u8; 16],
}

/// Parse `$2b$12$<22 salt>[<31 hash>]`: the salt part of a bcrypt string (`salt_only`: the
/// 29-char salt as given to `hashpw`, else a full 60-char hash).
pub(super) fn parse_bcrypt(data: &str, salt_only: bool) -> Option<BcryptSalt<'_>> {
    let expected = if salt_only { 29 } else { 60 };
    if data.len() != expected || !data.is_ascii() {
        return None;
    }
    let b = data.as_bytes();
    if b[0] != b'$' || b[3] != b'$' || b[6] != b'$' {
        return None;
    }
    let version = &data[1..3];
    if !matches!(version, "2a" | "2b" | "2y") {
        return None;
    }
    let cost = parse_u32(&data[4..6])?;
    let raw = BCRYPT_B64.decode(&data[7..29]).ok()?;
    let salt: [u8; 16] = raw.try_into().ok()?;
    if !salt_only {
        // The checksum part must at least be well-formed bcrypt base64.
        BCRYPT_B64.decode(&data[29..]).ok()?;
    }
    Some(BcryptSalt {
        version,
        cost,
        salt,
    })
}

/// `bcrypt$`/`bcrypt_sha256$` + `hashpw(password, salt)`. bcrypt_sha256 pre-hashes to the
/// 64-byte lowercase hex SHA-256; plain bcrypt silently uses the first 72 bytes (§2.1: what
/// bcrypt < 5 did when those hashes were made).
pub(super) fn encode_bcrypt(sha256: bool, pw: &[u8], s: &BcryptSalt<'_>) -> String {
    let prehashed;
    let input: &[u8] = if sha256 {
        prehashed = hex::encode(Sha256::digest(pw));
        prehashed.as_bytes()
    } else {
        pw
    };
    // Like OpenBSD bcrypt: NUL-terminated key, truncated to 72 bytes.
    let mut key = [0u8; 72];
    let n = input.len().min(72);
    key[..n].copy_from_slice(&input[..n]);
    let used = (n + 1).min(72);
    let out = ::bcrypt::bcrypt(s.cost, s.salt, &key[..used]);
    format!(
        "{}$${}${:02}${}{}",
        if sha256 { "bcrypt_sha256" } else { "bcrypt" },
        s.version,
        s.cost,
        BCRYPT_B64.encode(s.salt),
        BCRYPT_B64.encode(&out[..23])
    )
}
