//! The Django releases Whisper supports (`DJANGO_VERSION`): each one's hasher parameters, the
//! hashers it ships and its default `PASSWORD_HASHERS`, plus Django's dotted hasher class names.

use std::fmt;
use std::str::FromStr;

use super::DEFAULT_HASHERS;

/// Which Django the database is shared with: its hashers' parameters and which hashers it ships
/// (§2.2). Every value here is recorded from that release's own source in
/// `tests/data/django-hashers.json` (`compat/make_testdata.py`), which the vector tests compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DjangoVersion {
    V4_2,
    V5_0,
    V5_1,
    V5_2,
    V6_0,
    V6_1,
}

/// One release's hasher parameters (class attributes in `django/contrib/auth/hashers.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HasherParams {
    /// `PBKDF2PasswordHasher.iterations` (and `PBKDF2SHA1PasswordHasher`'s).
    pub pbkdf2_iterations: u32,
    /// `BasePasswordHasher.salt_entropy` (bits); fresh salts have 22 characters.
    pub salt_entropy: u32,
    /// `Argon2PasswordHasher.time_cost`, `memory_cost` (KiB), `parallelism`.
    pub argon2_time_cost: u32,
    pub argon2_memory_cost: u32,
    pub argon2_parallelism: u32,
    /// `BCryptSHA256PasswordHasher.rounds` (and `BCryptPasswordHasher`'s).
    pub bcrypt_rounds: u32,
    /// `ScryptPasswordHasher.work_factor` (N), `block_size` (r), `parallelism` (p).
    pub scrypt_work_factor: u64,
    pub scrypt_block_size: u32,
    pub scrypt_parallelism: u32,
}

/// Hashers every supported release ships.
const HASHERS_5_1: &[&str] = &[
    "pbkdf2_sha256",
    "pbkdf2_sha1",
    "argon2",
    "bcrypt_sha256",
    "bcrypt",
    "scrypt",
    "md5",
];
/// Django 5.0 still ships the legacy `sha1`, `unsalted_sha1` and `unsalted_md5` (removed in 5.1).
const HASHERS_5_0: &[&str] = &[
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
/// Django 4.2 also ships `crypt` (removed in 5.0), which Whisper refuses.
const HASHERS_4_2: &[&str] = &[
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
    "crypt",
];

impl DjangoVersion {
    /// Every supported release, oldest first.
    pub const ALL: [DjangoVersion; 6] = [
        DjangoVersion::V4_2,
        DjangoVersion::V5_0,
        DjangoVersion::V5_1,
        DjangoVersion::V5_2,
        DjangoVersion::V6_0,
        DjangoVersion::V6_1,
    ];

    /// The release's hasher parameters.
    pub fn params(self) -> HasherParams {
        use DjangoVersion::*;
        HasherParams {
            pbkdf2_iterations: match self {
                V4_2 => 600_000,
                V5_0 => 720_000,
                V5_1 => 870_000,
                V5_2 => 1_000_000,
                V6_0 => 1_200_000,
                V6_1 => 1_500_000,
            },
            salt_entropy: 128,
            argon2_time_cost: 2,
            argon2_memory_cost: 102_400,
            argon2_parallelism: 8,
            bcrypt_rounds: 12,
            scrypt_work_factor: 1 << 14,
            scrypt_block_size: 8,
            // Django 5.1 raised scrypt's parallelism from 1 to 5.
            scrypt_parallelism: match self {
                V4_2 | V5_0 => 1,
                V5_1 | V5_2 | V6_0 | V6_1 => 5,
            },
        }
    }

    /// PBKDF2 iterations (both pbkdf2 hashers).
    pub fn pbkdf2_iterations(self) -> u32 {
        self.params().pbkdf2_iterations
    }

    /// scrypt parallelism `p`.
    pub fn scrypt_parallelism(self) -> u32 {
        self.params().scrypt_parallelism
    }

    /// The algorithms of the hasher classes this release ships (`crypt` included for 4.2,
    /// although Whisper does not implement it).
    pub fn shipped_hashers(self) -> &'static [&'static str] {
        match self {
            DjangoVersion::V4_2 => HASHERS_4_2,
            DjangoVersion::V5_0 => HASHERS_5_0,
            _ => HASHERS_5_1,
        }
    }

    /// The release's default `PASSWORD_HASHERS` (the same list from 4.0 to 6.1).
    pub fn default_hashers(self) -> &'static [&'static str] {
        DEFAULT_HASHERS
    }

    /// The valid `DJANGO_VERSION` values, for error messages.
    pub fn valid_values() -> String {
        Self::ALL.map(|v| v.to_string()).join(", ")
    }
}

impl fmt::Display for DjangoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DjangoVersion::V4_2 => "4.2",
            DjangoVersion::V5_0 => "5.0",
            DjangoVersion::V5_1 => "5.1",
            DjangoVersion::V5_2 => "5.2",
            DjangoVersion::V6_0 => "6.0",
            DjangoVersion::V6_1 => "6.1",
        })
    }
}

impl FromStr for DjangoVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|v| v.to_string() == s)
            .ok_or_else(|| {
                format!(
                    "unsupported Django version {s:?}; valid values: {}",
                    Self::valid_values()
                )
            })
    }
}

/// Django's dotted hasher class names (`PASSWORD_HASHERS` entries) and their algorithms.
pub const HASHER_CLASSES: &[(&str, &str)] = &[
    (
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "pbkdf2_sha256",
    ),
    (
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "pbkdf2_sha1",
    ),
    ("django.contrib.auth.hashers.Argon2PasswordHasher", "argon2"),
    (
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "bcrypt_sha256",
    ),
    ("django.contrib.auth.hashers.BCryptPasswordHasher", "bcrypt"),
    ("django.contrib.auth.hashers.ScryptPasswordHasher", "scrypt"),
    ("django.contrib.auth.hashers.MD5PasswordHasher", "md5"),
    ("django.contrib.auth.hashers.SHA1PasswordHasher", "sha1"),
    (
        "django.contrib.auth.hashers.UnsaltedSHA1PasswordHasher",
        "unsalted_sha1",
    ),
    (
        "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher",
        "unsalted_md5",
    ),
    ("django.contrib.auth.hashers.CryptPasswordHasher", "crypt"),
];

/// The dotted class name of a hasher algorithm.
pub fn class_of(algorithm: &str) -> Option<&'static str> {
    HASHER_CLASSES
        .iter()
        .find(|(_, a)| *a == algorithm)
        .map(|(c, _)| *c)
}

/// The algorithm of a dotted hasher class name.
pub fn algorithm_of(class: &str) -> Option<&'static str> {
    HASHER_CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, a)| *a)
}
