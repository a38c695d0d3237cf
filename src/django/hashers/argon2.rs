//! `argon2` (argon2id/argon2i/argon2d): the PHC string parser with its DoS caps and the raw hash.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::parsed::{Parsed, parse_u32};
use super::{MAX_ARGON2_LANES, MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_TIME};

pub(super) struct Argon2Params {
    pub(super) variant: ::argon2::Algorithm,
    pub(super) version: u32,
    pub(super) memory: u32,
    pub(super) time: u32,
    pub(super) lanes: u32,
}

const B64_STD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parse the PHC string after the `argon2` prefix: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`
/// (libargon2's layout; a missing `v=` means version 0x10).
pub(super) fn parse_argon2(phc: &str) -> Option<Parsed<'static>> {
    let fields: Vec<&str> = phc.split('$').collect();
    let (variant, version, params, salt, hash) = match fields.as_slice() {
        ["", variant, v, params, salt, hash] => (*variant, Some(*v), *params, *salt, *hash),
        ["", variant, params, salt, hash] => (*variant, None, *params, *salt, *hash),
        _ => return None,
    };
    let variant = match variant {
        "argon2id" => ::argon2::Algorithm::Argon2id,
        "argon2i" => ::argon2::Algorithm::Argon2i,
        "argon2d" => ::argon2::Algorithm::Argon2d,
        _ => return None,
    };
    let version = match version {
        None => 0x10,
        Some(v) => parse_u32(v.strip_prefix("v=")?)?,
    };
    if version != 0x10 && version != 0x13 {
        return None;
    }
    let mut it = params.split(',');
    let memory = parse_u32(it.next()?.strip_prefix("m=")?)?;
    let time = parse_u32(it.next()?.strip_prefix("t=")?)?;
    let lanes = parse_u32(it.next()?.strip_prefix("p=")?)?;
    if it.next().is_some() {
        return None;
    }
    if memory > MAX_ARGON2_MEMORY_KIB
        || !(1..=MAX_ARGON2_TIME).contains(&time)
        || !(1..=MAX_ARGON2_LANES).contains(&lanes)
    {
        return None;
    }
    let salt = B64_STD_LENIENT.decode(salt).ok()?;
    let hash = B64_STD_LENIENT.decode(hash).ok()?;
    if hash.len() < 4 || hash.len() > 1024 {
        return None;
    }
    Some(Parsed::Argon2 {
        params: Argon2Params {
            variant,
            version,
            memory,
            time,
            lanes,
        },
        salt,
        hash,
    })
}

pub(super) fn argon2_raw(p: &Argon2Params, pw: &[u8], salt: &[u8], len: usize) -> Option<Vec<u8>> {
    let version = if p.version == 0x10 {
        ::argon2::Version::V0x10
    } else {
        ::argon2::Version::V0x13
    };
    let params = ::argon2::Params::new(p.memory, p.time, p.lanes, Some(len)).ok()?;
    let mut out = vec![0u8; len];
    ::argon2::Argon2::new(p.variant, version, params)
        .hash_password_into(pw, salt, &mut out)
        .ok()?;
    Some(out)
}
