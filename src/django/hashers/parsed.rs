//! A stored hash decoded for its algorithm ([`Parsed`]) and each hasher's own rules over it:
//! `must_update`, `verify` and `harden_runtime` (spec §2.3, §2.4).

use md5::Md5;
use sha1::Sha1;
use sha2::Digest;

use super::argon2::{Argon2Params, argon2_raw, parse_argon2};
use super::bcrypt::{BcryptSalt, encode_bcrypt, parse_bcrypt};
use super::legacy::encode_salted_digest;
use super::pbkdf2::encode_pbkdf2;
use super::scrypt::{encode_scrypt, scrypt_params_ok};
use super::{ARGON2_HASH_LEN, HasherConfig, MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS};
use crate::django::crypto::constant_time_eq;

pub(super) enum Parsed<'a> {
    Pbkdf2 {
        sha1: bool,
        iterations: u32,
        salt: &'a str,
    },
    Argon2 {
        params: Argon2Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt {
        sha256: bool,
        parts: BcryptSalt<'a>,
    },
    Scrypt {
        n: u64,
        r: u32,
        p: u32,
        salt: &'a str,
    },
    Md5 {
        salt: &'a str,
    },
    Sha1 {
        salt: &'a str,
    },
    UnsaltedSha1,
    UnsaltedMd5,
}

/// Strict decimal (what `"%d"` writes back); anything else cannot verify anyway.
fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(super) fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|v| u32::try_from(v).ok())
}

pub(super) fn parse<'a>(algorithm: &'static str, encoded: &'a str) -> Option<Parsed<'a>> {
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            // Django: `algorithm, iterations, salt, hash = encoded.split("$", 3)`.
            let mut it = encoded.splitn(4, '$');
            let (_, iterations, salt, _hash) = (it.next()?, it.next()?, it.next()?, it.next()?);
            let iterations = parse_u32(iterations)?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS || salt.is_empty() {
                return None;
            }
            Some(Parsed::Pbkdf2 {
                sha1: algorithm == "pbkdf2_sha1",
                iterations,
                salt,
            })
        }
        "argon2" => parse_argon2(encoded.strip_prefix("argon2")?),
        "bcrypt_sha256" | "bcrypt" => {
            let (_, data) = encoded.split_once('$')?;
            let parts = parse_bcrypt(data, false)?;
            if !(4..=MAX_BCRYPT_COST).contains(&parts.cost) {
                return None;
            }
            Some(Parsed::Bcrypt {
                sha256: algorithm == "bcrypt_sha256",
                parts,
            })
        }
        "scrypt" => {
            // Django: `algorithm, n, salt, r, p, hash = encoded.split("$", 6)` (exactly six).
            let fields: Vec<&str> = encoded.split('$').collect();
            let [_, n, salt, r, p, _hash] = fields.as_slice() else {
                return None;
            };
            let (n, r, p) = (parse_u64(n)?, parse_u32(r)?, parse_u32(p)?);
            scrypt_params_ok(n, r, p).then_some(())?;
            if salt.is_empty() {
                return None;
            }
            Some(Parsed::Scrypt { n, r, p, salt })
        }
        "md5" | "sha1" => {
            // Django: `algorithm, salt, hash = encoded.split("$", 2)`; empty salt raises.
            let mut it = encoded.splitn(3, '$');
            let (_, salt, _hash) = (it.next()?, it.next()?, it.next()?);
            if salt.is_empty() {
                return None;
            }
            Some(if algorithm == "md5" {
                Parsed::Md5 { salt }
            } else {
                Parsed::Sha1 { salt }
            })
        }
        "unsalted_sha1" => Some(Parsed::UnsaltedSha1),
        "unsalted_md5" => Some(Parsed::UnsaltedMd5),
        _ => None,
    }
}

impl Parsed<'_> {
    /// The hasher's own `must_update` (§2.3).
    pub(super) fn must_update(&self, cfg: &HasherConfig) -> bool {
        let v = cfg.params();
        match self {
            Parsed::Pbkdf2 {
                iterations, salt, ..
            } => {
                *iterations != cfg.pbkdf2_iterations()
                    || salt_too_weak(salt.chars().count(), v.salt_entropy)
            }
            Parsed::Argon2 { params, salt, hash } => {
                params.variant != ::argon2::Algorithm::Argon2id
                    || params.version != 0x13
                    || params.time != v.argon2_time_cost
                    || params.memory != v.argon2_memory_cost
                    || params.lanes != v.argon2_parallelism
                    || hash.len() != ARGON2_HASH_LEN
                    // Django decodes the salt bytes (as latin-1) and counts them.
                    || salt_too_weak(salt.len(), v.salt_entropy)
            }
            Parsed::Bcrypt { parts, .. } => parts.cost != v.bcrypt_rounds,
            Parsed::Scrypt { n, r, p, .. } => {
                *n != v.scrypt_work_factor
                    || *r != v.scrypt_block_size
                    || *p != v.scrypt_parallelism
            }
            Parsed::Md5 { salt } | Parsed::Sha1 { salt } => {
                salt_too_weak(salt.chars().count(), v.salt_entropy)
            }
            Parsed::UnsaltedSha1 | Parsed::UnsaltedMd5 => false,
        }
    }

    /// The hasher's `verify`: re-encode with the stored parameters and compare the whole
    /// encoded strings in constant time (argon2: compare the raw hashes, as libargon2 does).
    pub(super) fn verify(&self, pw: &[u8], encoded: &str) -> bool {
        let candidate = match self {
            Parsed::Pbkdf2 {
                sha1,
                iterations,
                salt,
            } => encode_pbkdf2(*sha1, pw, salt, *iterations),
            Parsed::Argon2 { params, salt, hash } => {
                return argon2_raw(params, pw, salt, hash.len())
                    .is_some_and(|h| constant_time_eq(&h, hash));
            }
            Parsed::Bcrypt { sha256, parts } => encode_bcrypt(*sha256, pw, parts),
            Parsed::Scrypt { n, r, p, salt } => match encode_scrypt(pw, salt, *n, *r, *p) {
                Some(s) => s,
                None => return false,
            },
            Parsed::Md5 { salt } => encode_salted_digest::<Md5>("md5", pw, salt),
            Parsed::Sha1 { salt } => encode_salted_digest::<Sha1>("sha1", pw, salt),
            Parsed::UnsaltedSha1 => format!("sha1$${}", hex::encode(Sha1::digest(pw))),
            Parsed::UnsaltedMd5 => {
                let stored = if encoded.len() == 37 {
                    encoded.strip_prefix("md5$$").unwrap_or(encoded)
                } else {
                    encoded
                };
                return constant_time_eq(
                    stored.as_bytes(),
                    hex::encode(Md5::digest(pw)).as_bytes(),
                );
            }
        };
        constant_time_eq(encoded.as_bytes(), candidate.as_bytes())
    }

    /// `harden_runtime` (§2.4): pbkdf2 runs the missing iterations, bcrypt the missing rounds;
    /// the others do nothing.
    pub(super) fn harden_runtime(&self, pw: &[u8], cfg: &HasherConfig) {
        match self {
            Parsed::Pbkdf2 {
                sha1,
                iterations,
                salt,
            } => {
                let extra = cfg.pbkdf2_iterations().saturating_sub(*iterations);
                if extra > 0 {
                    let _ = encode_pbkdf2(*sha1, pw, salt, extra);
                }
            }
            Parsed::Bcrypt { sha256, parts } if parts.cost < cfg.params().bcrypt_rounds => {
                // 2^(rounds - cost) - 1 extra runs at the stored cost (rounds 12, cost >= 4 ⇒
                // at most 255).
                let diff = (1u32 << (cfg.params().bcrypt_rounds - parts.cost)) - 1;
                for _ in 0..diff {
                    let _ = encode_bcrypt(*sha256, pw, parts);
                }
            }
            _ => {}
        }
    }
}

/// `must_update_salt`: `len(salt) * log2(62) < salt_entropy` (128 bits: fewer than 22
/// characters).
fn salt_too_weak(len: usize, salt_entropy: u32) -> bool {
    (len as f64) * 62f64.log2() < f64::from(salt_entropy)
}
