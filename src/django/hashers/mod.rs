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
//!
//! This file owns the configuration ([`HasherConfig`]), the public API and its dispatch;
//! `versions.rs` each supported Django release's parameters and hashers ([`DjangoVersion`]); `parsed.rs` holds the per-hasher rules over a decoded hash, and one file per
//! algorithm family (`pbkdf2`, `argon2`, `bcrypt`, `scrypt`, `legacy`) its encoder and parser.

use base64::Engine as _;
use base64::engine::general_purpose;
use md5::Md5;
use rand::Rng as _;
use sha1::Sha1;
use sha2::Digest;

use self::argon2::{Argon2Params, argon2_raw};
use self::bcrypt::{BCRYPT_B64, encode_bcrypt, parse_bcrypt};
use self::legacy::encode_salted_digest;
use self::parsed::parse;
use self::pbkdf2::encode_pbkdf2;
use self::scrypt::encode_scrypt;
use super::crypto::{RANDOM_STRING_CHARS, get_random_string};

mod argon2;
mod bcrypt;
mod legacy;
mod parsed;
mod pbkdf2;
mod scrypt;
mod versions;

pub use versions::{DjangoVersion, HASHER_CLASSES, HasherParams, algorithm_of, class_of};

/// Prefix of unusable passwords (§2.5).
pub const UNUSABLE_PASSWORD_PREFIX: &str = "!";
/// Random characters after the prefix.
pub const UNUSABLE_PASSWORD_SUFFIX_LENGTH: usize = 40;
/// Length of a fresh salt (Django ≥ 3.2).
pub const SALT_LENGTH: usize = 22;

/// Django's default `PASSWORD_HASHERS` (4.0 – 6.1), preferred first.
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

/// `Argon2PasswordHasher`'s hash length (bytes), the same in every supported release.
const ARGON2_HASH_LEN: usize = 32;

/// The hashing half of Django's settings: the version (parameters) and `PASSWORD_HASHERS`.
#[derive(Clone, Debug)]
pub struct HasherConfig {
    /// Django version whose parameters are used.
    pub version: DjangoVersion,
    /// Enabled algorithm names, preferred first (Django's `PASSWORD_HASHERS`), each shipped by
    /// `version` and implemented here.
    pub hashers: Vec<&'static str>,
}

impl HasherConfig {
    /// Django's defaults for `version`: its default `PASSWORD_HASHERS`.
    pub fn new(version: DjangoVersion) -> Self {
        HasherConfig {
            version,
            hashers: version.default_hashers().to_vec(),
        }
    }

    /// Like [`HasherConfig::new`] with an explicit algorithm list (preferred first): every
    /// name must be implemented and shipped by `version`, and the list non-empty.
    pub fn with_hashers(version: DjangoVersion, hashers: &[&str]) -> Result<Self, HashError> {
        let mut out = Vec::with_capacity(hashers.len());
        for name in hashers {
            let known =
                supported(name).ok_or_else(|| HashError::UnknownAlgorithm((*name).to_owned()))?;
            if !version.shipped_hashers().contains(&known) {
                return Err(HashError::NotShipped {
                    algorithm: known,
                    version,
                });
            }
            out.push(known);
        }
        if out.is_empty() {
            return Err(HashError::UnknownAlgorithm(String::new()));
        }
        Ok(HasherConfig {
            version,
            hashers: out,
        })
    }

    /// The version's parameters.
    pub fn params(&self) -> HasherParams {
        self.version.params()
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

    /// One line for logs and `./manage check`: the version, the preferred hasher's class and
    /// its work factor.
    pub fn describe(&self) -> String {
        let p = self.params();
        let preferred = self.preferred();
        let work = match preferred {
            "pbkdf2_sha256" | "pbkdf2_sha1" => format!("{} iterations", p.pbkdf2_iterations),
            "argon2" => format!(
                "time_cost {}, memory_cost {} KiB, parallelism {}",
                p.argon2_time_cost, p.argon2_memory_cost, p.argon2_parallelism
            ),
            "bcrypt_sha256" | "bcrypt" => format!("{} rounds", p.bcrypt_rounds),
            "scrypt" => format!(
                "N={}, r={}, p={}",
                p.scrypt_work_factor, p.scrypt_block_size, p.scrypt_parallelism
            ),
            _ => "no work factor".to_string(),
        };
        let n = self.hashers.len();
        format!(
            "Django {}'s parameters; preferred hasher {} ({preferred}, {work}); {n} {} enabled",
            self.version,
            class_of(preferred).unwrap_or(preferred),
            if n == 1 { "hasher" } else { "hashers" }
        )
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
    /// A hasher the chosen Django release does not ship.
    #[error("Django {version} does not ship the {algorithm} hasher")]
    NotShipped {
        algorithm: &'static str,
        version: DjangoVersion,
    },
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
    let salt = fresh_salt(algorithm, cfg);
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
            let v = cfg.params();
            let p = Argon2Params {
                variant: ::argon2::Algorithm::Argon2id,
                version: 0x13,
                memory: v.argon2_memory_cost,
                time: v.argon2_time_cost,
                lanes: v.argon2_parallelism,
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
        "scrypt" if plain_salt_ok => {
            let v = cfg.params();
            encode_scrypt(
                pw,
                salt,
                v.scrypt_work_factor,
                v.scrypt_block_size,
                v.scrypt_parallelism,
            )
            .ok_or(HashError::InvalidSalt)
        }
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

fn fresh_salt(algorithm: &str, cfg: &HasherConfig) -> String {
    match algorithm {
        "bcrypt" | "bcrypt_sha256" => {
            // bcrypt.gensalt(rounds): 16 random bytes from the CSPRNG in bcrypt's base64.
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            let rounds = cfg.params().bcrypt_rounds;
            format!("$2b${rounds:02}${}", BCRYPT_B64.encode(bytes))
        }
        "unsalted_md5" | "unsalted_sha1" => String::new(),
        _ => get_random_string(SALT_LENGTH, RANDOM_STRING_CHARS),
    }
}
