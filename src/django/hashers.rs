//! Django's password hashers (`django.contrib.auth.hashers`, spec §2): the encoded-string
//! formats, `make_password`, `check_password`/`verify_password` with Django's timing equaliser
//! and `harden_runtime`, the `must_update` (rehash) rules, and unusable passwords.
//!
//! Owned here: the format/dispatch layer over RustCrypto's PBKDF2, Argon2 and scrypt, the
//! `bcrypt` crate's raw Blowfish core, and MD5/SHA-1 for the legacy hashers.
//!
//! Supported: `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2` (argon2id/argon2i/argon2d),
//! `bcrypt_sha256`, `bcrypt`, `scrypt`, `md5`, and — verification only in practice, they are
//! never preferred — `sha1`, `unsalted_sha1`, `unsalted_md5` (Django ≤ 5.0).
//! **Not supported: `crypt`** (Unix DES crypt, Django ≤ 4.2, deprecated since 4.1): such hashes
//! are treated like an unknown algorithm (refused, after the timing-equaliser hash).
//!
//! Hostile database rows cannot hang the server: work parameters above generous caps are
//! refused (`ok = false`): PBKDF2 iterations > 10 000 000 (10× Django 5.2), bcrypt cost > 16,
//! scrypt N > 2^20 or beyond OpenSSL's 32 MiB default `maxmem` (what Django itself enforces) or
//! N·r·p > 2^24, Argon2 memory > 1 GiB, time cost > 32, lanes > 255.
//!
//! Everything here is CPU-heavy (100–250 ms per hash at Django 5.2 parameters): call it from a
//! blocking thread.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{self, GeneralPurpose, GeneralPurposeConfig};
use md5::Md5;
use rand::Rng as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::crypto::{RANDOM_STRING_CHARS, constant_time_eq, get_random_string};

/// Prefix of unusable passwords (§2.5).
pub const UNUSABLE_PASSWORD_PREFIX: &str = "!";
/// Random characters after the prefix.
pub const UNUSABLE_PASSWORD_SUFFIX_LENGTH: usize = 40;
/// Length of a fresh salt (Django ≥ 3.2).
pub const SALT_LENGTH: usize = 22;

/// Django's default `PASSWORD_HASHERS` (4.0 – 6.0), preferred first.
pub const DEFAULT_HASHERS: &[&str] = &[
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "scrypt",
];

/// Every algorithm this module implements.
pub const SUPPORTED_HASHERS: &[&str] = &[
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "bcrypt",
    "scrypt",
    "md5",
    "sha1",
    "unsalted_sha1",
    "unsalted_md5",
];

/// DoS cap: PBKDF2 iterations.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// DoS cap: bcrypt cost (log2 rounds).
pub const MAX_BCRYPT_COST: u32 = 16;
/// DoS cap: scrypt N.
pub const MAX_SCRYPT_N: u64 = 1 << 20;
/// DoS cap: scrypt N·r·p (work).
pub const MAX_SCRYPT_WORK: u64 = 1 << 24;
/// OpenSSL's default scrypt `maxmem` (Django passes `maxmem=0`), in bytes.
pub const SCRYPT_MAXMEM: u64 = 32 * 1024 * 1024;
/// DoS cap: Argon2 memory in KiB (1 GiB).
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;
/// DoS cap: Argon2 time cost.
pub const MAX_ARGON2_TIME: u32 = 32;
/// DoS cap: Argon2 parallelism (lanes).
pub const MAX_ARGON2_LANES: u32 = 255;

const ARGON2_TIME_COST: u32 = 2;
const ARGON2_MEMORY_COST: u32 = 102_400;
const ARGON2_PARALLELISM: u32 = 8;
const ARGON2_HASH_LEN: usize = 32;
const BCRYPT_ROUNDS: u32 = 12;
const SCRYPT_N: u64 = 1 << 14;
const SCRYPT_R: u32 = 8;

/// Which Django the database is shared with; sets the preferred parameters (§2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DjangoVersion {
    /// Django 4.2: 600 000 PBKDF2 iterations, scrypt p = 1.
    V4_2,
    /// Django 5.2: 1 000 000 PBKDF2 iterations, scrypt p = 5.
    V5_2,
}

impl DjangoVersion {
    /// PBKDF2 iterations (both pbkdf2 hashers).
    pub fn pbkdf2_iterations(self) -> u32 {
        match self {
            DjangoVersion::V4_2 => 600_000,
            DjangoVersion::V5_2 => 1_000_000,
        }
    }

    /// scrypt parallelism `p` (N = 2^14 and r = 8 in both).
    pub fn scrypt_parallelism(self) -> u32 {
        match self {
            DjangoVersion::V4_2 => 1,
            DjangoVersion::V5_2 => 5,
        }
    }
}

impl fmt::Display for DjangoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DjangoVersion::V4_2 => "4.2",
            DjangoVersion::V5_2 => "5.2",
        })
    }
}

impl FromStr for DjangoVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "4.2" => Ok(DjangoVersion::V4_2),
            "5.2" => Ok(DjangoVersion::V5_2),
            other => Err(format!(
                "unsupported Django version {other:?}; valid values: 4.2, 5.2"
            )),
        }
    }
}

/// The hashing half of Django's settings: the version (parameters) and `PASSWORD_HASHERS`.
#[derive(Clone, Debug)]
pub struct HasherConfig {
    /// Django version whose default parameters are used.
    pub version: DjangoVersion,
    /// Enabled algorithm names, preferred first (Django's `PASSWORD_HASHERS`). Names not in
    /// [`SUPPORTED_HASHERS`] are ignored when identifying hashes.
    pub hashers: Vec<&'static str>,
}

impl HasherConfig {
    /// Django's defaults for `version`: [`DEFAULT_HASHERS`].
    pub fn new(version: DjangoVersion) -> Self {
        HasherConfig {
            version,
            hashers: DEFAULT_HASHERS.to_vec(),
        }
    }

    /// Like [`HasherConfig::new`] with an explicit hasher list; every name must be supported
    /// and the list non-empty.
    pub fn with_hashers(version: DjangoVersion, hashers: &[&str]) -> Result<Self, HashError> {
        let mut out = Vec::with_capacity(hashers.len());
        for name in hashers {
            let known = SUPPORTED_HASHERS
                .iter()
                .find(|s| **s == *name)
                .ok_or_else(|| HashError::UnknownAlgorithm((*name).to_owned()))?;
            out.push(*known);
        }
        if out.is_empty() {
            return Err(HashError::UnknownAlgorithm(String::new()));
        }
        Ok(HasherConfig {
            version,
            hashers: out,
        })
    }

    /// PBKDF2 iterations for new hashes (and the `must_update` comparison).
    pub fn pbkdf2_iterations(&self) -> u32 {
        self.version.pbkdf2_iterations()
    }

    /// The preferred (first) algorithm; `pbkdf2_sha256` if the list is empty or its head is
    /// not supported.
    pub fn preferred(&self) -> &'static str {
        self.hashers
            .first()
            .and_then(|h| supported(h))
            .unwrap_or("pbkdf2_sha256")
    }

    fn is_enabled(&self, algorithm: &str) -> bool {
        self.hashers.contains(&algorithm)
    }
}

/// Errors of [`make_password_with`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not an algorithm this module implements (e.g. `crypt`).
    #[error("unknown or unsupported password hashing algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// Empty salt or salt containing `$` (or a malformed bcrypt salt).
    #[error("invalid salt")]
    InvalidSalt,
}

/// Result of [`verify_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub ok: bool,
    /// Django would rehash on a successful login (§2.3).
    pub must_update: bool,
}

fn supported(name: &str) -> Option<&'static str> {
    SUPPORTED_HASHERS.iter().copied().find(|s| *s == name)
}

// ---------------------------------------------------------------------------------------------
// Public API

/// `make_password(password)`: the preferred hasher with a fresh salt and `cfg`'s parameters
/// (for the default list: `pbkdf2_sha256`, 22-char salt, exactly the version's iterations).
pub fn make_password(password: &str, cfg: &HasherConfig) -> String {
    let algorithm = cfg.preferred();
    let salt = fresh_salt(algorithm);
    make_password_with(password, algorithm, &salt, cfg)
        .expect("a fresh salt is valid for a supported algorithm")
}

/// `make_password(password, salt, hasher=algorithm)` with `cfg`'s parameters. For `bcrypt` and
/// `bcrypt_sha256` the salt is a bcrypt salt string (`$2b$12$` + 22 chars) whose cost is used,
/// as with Django; `unsalted_*` require an empty salt. The algorithm need not be enabled.
pub fn make_password_with(
    password: &str,
    algorithm: &str,
    salt: &str,
    cfg: &HasherConfig,
) -> Result<String, HashError> {
    let algorithm =
        supported(algorithm).ok_or_else(|| HashError::UnknownAlgorithm(algorithm.to_owned()))?;
    let plain_salt_ok = !salt.is_empty() && !salt.contains('$');
    let pw = password.as_bytes();
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" if plain_salt_ok => Ok(encode_pbkdf2(
            algorithm == "pbkdf2_sha1",
            pw,
            salt,
            cfg.pbkdf2_iterations(),
        )),
        "argon2" if plain_salt_ok => {
            let p = Argon2Params {
                variant: argon2::Algorithm::Argon2id,
                version: 0x13,
                memory: ARGON2_MEMORY_COST,
                time: ARGON2_TIME_COST,
                lanes: ARGON2_PARALLELISM,
            };
            let hash = argon2_raw(&p, pw, salt.as_bytes(), ARGON2_HASH_LEN)
                .ok_or(HashError::InvalidSalt)?;
            Ok(format!(
                "argon2$argon2id$v=19$m={},t={},p={}${}${}",
                p.memory,
                p.time,
                p.lanes,
                general_purpose::STANDARD_NO_PAD.encode(salt.as_bytes()),
                general_purpose::STANDARD_NO_PAD.encode(hash)
            ))
        }
        "bcrypt_sha256" | "bcrypt" => {
            let b = parse_bcrypt(salt, true).ok_or(HashError::InvalidSalt)?;
            if !(4..=31).contains(&b.cost) {
                return Err(HashError::InvalidSalt);
            }
            Ok(encode_bcrypt(algorithm == "bcrypt_sha256", pw, &b))
        }
        "scrypt" if plain_salt_ok => encode_scrypt(
            pw,
            salt,
            SCRYPT_N,
            SCRYPT_R,
            cfg.version.scrypt_parallelism(),
        )
        .ok_or(HashError::InvalidSalt),
        "md5" if plain_salt_ok => Ok(encode_salted_digest::<Md5>("md5", pw, salt)),
        "sha1" if plain_salt_ok => Ok(encode_salted_digest::<Sha1>("sha1", pw, salt)),
        "unsalted_sha1" if salt.is_empty() => {
            Ok(format!("sha1$${}", hex::encode(Sha1::digest(pw))))
        }
        "unsalted_md5" if salt.is_empty() => Ok(hex::encode(Md5::digest(pw))),
        _ => Err(HashError::InvalidSalt),
    }
}

/// `verify_password(password, encoded)` exactly as Django 5.2 (§2.4):
/// unusable (`!…`), unknown or disabled algorithm ⇒ one preferred-hasher run on a random
/// string, then `(false, false)`. Otherwise `must_update` = algorithm ≠ preferred or the
/// hasher's own rule (§2.3), and a wrong password against an outdated preferred-algorithm hash
/// runs `harden_runtime`. Malformed strings and parameters beyond the DoS caps give
/// `ok = false` (Django would raise) and never panic.
pub fn verify_password(password: &str, encoded: &str, cfg: &HasherConfig) -> Verified {
    const NO: Verified = Verified {
        ok: false,
        must_update: false,
    };
    let algorithm = match identify_hasher(encoded, cfg) {
        Some(a) if is_password_usable(encoded) => a,
        _ => {
            run_dummy_hash(cfg);
            return NO;
        }
    };
    let Some(parsed) = parse(algorithm, encoded) else {
        // Malformed for its algorithm, or over a DoS cap: Django would raise (HTTP 500) or
        // hang; we refuse, after the usual equaliser so the answer time stays uniform.
        run_dummy_hash(cfg);
        return NO;
    };
    let changed = algorithm != cfg.preferred();
    let must_update = changed || parsed.must_update(cfg);
    let ok = parsed.verify(password.as_bytes(), encoded);
    if !ok && !changed && must_update {
        parsed.harden_runtime(password.as_bytes(), cfg);
    }
    Verified { ok, must_update }
}

/// `check_password(password, encoded)`: `(ok, Some(new_encoded))` when Django would rehash
/// (`ok && must_update`): a fresh `make_password` with the current parameters and a new salt.
pub fn check_password(password: &str, encoded: &str, cfg: &HasherConfig) -> (bool, Option<String>) {
    let v = verify_password(password, encoded, cfg);
    let rehash = (v.ok && v.must_update).then(|| make_password(password, cfg));
    (v.ok, rehash)
}

/// What `ModelBackend.authenticate` does for an unknown username (and `verify_password` for
/// unusable hashes): hash a random 40-char string once with the preferred hasher.
pub fn run_dummy_hash(cfg: &HasherConfig) {
    let junk = get_random_string(UNUSABLE_PASSWORD_SUFFIX_LENGTH, RANDOM_STRING_CHARS);
    let _ = make_password(&junk, cfg);
}

/// `"!"` + 40 random characters of `[a-zA-Z0-9]` (§2.5).
pub fn make_unusable_password() -> String {
    format!(
        "{UNUSABLE_PASSWORD_PREFIX}{}",
        get_random_string(UNUSABLE_PASSWORD_SUFFIX_LENGTH, RANDOM_STRING_CHARS)
    )
}

/// `is_password_usable`: anything not starting with `!`.
pub fn is_password_usable(encoded: &str) -> bool {
    !encoded.starts_with(UNUSABLE_PASSWORD_PREFIX)
}

/// `identify_hasher` (§2.1) restricted to enabled, supported algorithms: the three legacy
/// shapes first, then the text before the first `$`.
pub fn identify_hasher(encoded: &str, cfg: &HasherConfig) -> Option<&'static str> {
    let algorithm = if (encoded.len() == 32 && !encoded.contains('$'))
        || (encoded.len() == 37 && encoded.starts_with("md5$$"))
    {
        "unsalted_md5"
    } else if encoded.len() == 46 && encoded.starts_with("sha1$$") {
        "unsalted_sha1"
    } else {
        encoded.split('$').next().unwrap_or("")
    };
    let algorithm = supported(algorithm)?;
    cfg.is_enabled(algorithm).then_some(algorithm)
}

/// The identified hasher's own `must_update(encoded)` rule (§2.3), ignoring whether it is the
/// preferred one; `None` if the hash is unknown, disabled or malformed.
pub fn hasher_must_update(encoded: &str, cfg: &HasherConfig) -> Option<bool> {
    let algorithm = identify_hasher(encoded, cfg)?;
    Some(parse(algorithm, encoded)?.must_update(cfg))
}

// ---------------------------------------------------------------------------------------------
// Parsing

enum Parsed<'a> {
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

fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|v| u32::try_from(v).ok())
}

fn parse<'a>(algorithm: &'static str, encoded: &'a str) -> Option<Parsed<'a>> {
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
    fn must_update(&self, cfg: &HasherConfig) -> bool {
        match self {
            Parsed::Pbkdf2 {
                iterations, salt, ..
            } => *iterations != cfg.pbkdf2_iterations() || salt_too_weak(salt.chars().count()),
            Parsed::Argon2 { params, salt, hash } => {
                params.variant != argon2::Algorithm::Argon2id
                    || params.version != 0x13
                    || params.time != ARGON2_TIME_COST
                    || params.memory != ARGON2_MEMORY_COST
                    || params.lanes != ARGON2_PARALLELISM
                    || hash.len() != ARGON2_HASH_LEN
                    // Django decodes the salt bytes (as latin-1) and counts them.
                    || salt_too_weak(salt.len())
            }
            Parsed::Bcrypt { parts, .. } => parts.cost != BCRYPT_ROUNDS,
            Parsed::Scrypt { n, r, p, .. } => {
                *n != SCRYPT_N || *r != SCRYPT_R || *p != cfg.version.scrypt_parallelism()
            }
            Parsed::Md5 { salt } | Parsed::Sha1 { salt } => salt_too_weak(salt.chars().count()),
            Parsed::UnsaltedSha1 | Parsed::UnsaltedMd5 => false,
        }
    }

    /// The hasher's `verify`: re-encode with the stored parameters and compare the whole
    /// encoded strings in constant time (argon2: compare the raw hashes, as libargon2 does).
    fn verify(&self, pw: &[u8], encoded: &str) -> bool {
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
    fn harden_runtime(&self, pw: &[u8], cfg: &HasherConfig) {
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
            Parsed::Bcrypt { sha256, parts } if parts.cost < BCRYPT_ROUNDS => {
                // 2^(12 - cost) - 1 extra runs at the stored cost (cost >= 4 ⇒ at most 255).
                let diff = (1u32 << (BCRYPT_ROUNDS - parts.cost)) - 1;
                for _ in 0..diff {
                    let _ = encode_bcrypt(*sha256, pw, parts);
                }
            }
            _ => {}
        }
    }
}

/// `must_update_salt`: `len(salt) * log2(62) < 128`, i.e. fewer than 22 characters.
fn salt_too_weak(len: usize) -> bool {
    (len as f64) * 62f64.log2() < 128.0
}

fn fresh_salt(algorithm: &str) -> String {
    match algorithm {
        "bcrypt" | "bcrypt_sha256" => {
            // bcrypt.gensalt(12): 16 random bytes from the CSPRNG in bcrypt's base64.
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            format!("$2b${BCRYPT_ROUNDS:02}${}", BCRYPT_B64.encode(bytes))
        }
        "unsalted_md5" | "unsalted_sha1" => String::new(),
        _ => get_random_string(SALT_LENGTH, RANDOM_STRING_CHARS),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders

fn encode_pbkdf2(sha1: bool, pw: &[u8], salt: &str, iterations: u32) -> String {
    if sha1 {
        let mut dk = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(pw, salt.as_bytes(), iterations, &mut dk);
        format!(
            "pbkdf2_sha1${iterations}${salt}${}",
            general_purpose::STANDARD.encode(dk)
        )
    } else {
        let mut dk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(pw, salt.as_bytes(), iterations, &mut dk);
        format!(
            "pbkdf2_sha256${iterations}${salt}${}",
            general_purpose::STANDARD.encode(dk)
        )
    }
}

fn encode_salted_digest<D: Digest>(algorithm: &str, pw: &[u8], salt: &str) -> String {
    let mut h = D::new();
    h.update(salt.as_bytes());
    h.update(pw);
    format!("{algorithm}${salt}${}", hex::encode(h.finalize()))
}

/// OpenSSL's acceptance rules (what Python's `hashlib.scrypt` enforces for Django) plus our
/// DoS caps.
fn scrypt_params_ok(n: u64, r: u32, p: u32) -> bool {
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

fn encode_scrypt(pw: &[u8], salt: &str, n: u64, r: u32, p: u32) -> Option<String> {
    if !scrypt_params_ok(n, r, p) {
        return None;
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p).ok()?;
    let mut dk = [0u8; 64];
    scrypt::scrypt(pw, salt.as_bytes(), &params, &mut dk).ok()?;
    Some(format!(
        "scrypt${n}${salt}${r}${p}${}",
        general_purpose::STANDARD.encode(dk)
    ))
}

// --- bcrypt -------------------------------------------------------------------------------------

const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

struct BcryptSalt<'a> {
    version: &'a str,
    cost: u32,
    salt: [u8; 16],
}

/// Parse `$2b$12$<22 salt>[<31 hash>]`: the salt part of a bcrypt string (`salt_only`: the
/// 29-char salt as given to `hashpw`, else a full 60-char hash).
fn parse_bcrypt(data: &str, salt_only: bool) -> Option<BcryptSalt<'_>> {
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
fn encode_bcrypt(sha256: bool, pw: &[u8], s: &BcryptSalt<'_>) -> String {
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
    let out = bcrypt::bcrypt(s.cost, s.salt, &key[..used]);
    format!(
        "{}$${}${:02}${}{}",
        if sha256 { "bcrypt_sha256" } else { "bcrypt" },
        s.version,
        s.cost,
        BCRYPT_B64.encode(s.salt),
        BCRYPT_B64.encode(&out[..23])
    )
}

// --- argon2 -------------------------------------------------------------------------------------

struct Argon2Params {
    variant: argon2::Algorithm,
    version: u32,
    memory: u32,
    time: u32,
    lanes: u32,
}

const B64_STD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parse the PHC string after the `argon2` prefix: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`
/// (libargon2's layout; a missing `v=` means version 0x10).
fn parse_argon2(phc: &str) -> Option<Parsed<'static>> {
    let fields: Vec<&str> = phc.split('$').collect();
    let (variant, version, params, salt, hash) = match fields.as_slice() {
        ["", variant, v, params, salt, hash] => (*variant, Some(*v), *params, *salt, *hash),
        ["", variant, params, salt, hash] => (*variant, None, *params, *salt, *hash),
        _ => return None,
    };
    let variant = match variant {
        "argon2id" => argon2::Algorithm::Argon2id,
        "argon2i" => argon2::Algorithm::Argon2i,
        "argon2d" => argon2::Algorithm::Argon2d,
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

fn argon2_raw(p: &Argon2Params, pw: &[u8], salt: &[u8], len: usize) -> Option<Vec<u8>> {
    let version = if p.version == 0x10 {
        argon2::Version::V0x10
    } else {
        argon2::Version::V0x13
    };
    let params = argon2::Params::new(p.memory, p.time, p.lanes, Some(len)).ok()?;
    let mut out = vec![0u8; len];
    argon2::Argon2::new(p.variant, version, params)
        .hash_password_into(pw, salt, &mut out)
        .ok()?;
    Some(out)
}
