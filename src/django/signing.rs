//! `django.core.signing` (spec §3): [`Signer`], [`TimestampSigner`], [`dumps`] and [`loads`].
//!
//! Owned here: the signature format `value:SIG` / `value:TS:SIG` (HMAC-SHA256 with key
//! `SHA256(salt || "signer" || secret)`, b64url without padding), SECRET_KEY fallbacks, the
//! base62 timestamp, and the `.`-prefixed zlib payload. JSON (de)serialisation is the caller's
//! business: these functions move JSON *bytes*.
//!
//! Only SHA-256 signatures are accepted, like Django ≥ 4.0 (§3.5): a legacy SHA-1 signature is
//! a `BadSignature`.

use flate2::Compression;
use flate2::write::ZlibEncoder;
use flate2::{Decompress, FlushDecompress, Status};

use super::crypto::{
    Algorithm, b64url_decode, b64url_encode, base62_decode, base62_encode, constant_time_eq,
    salted_hmac,
};

/// Default salt of `Signer` (`"<module>.<ClassName>"`).
pub const SIGNER_SALT: &str = "django.core.signing.Signer";
/// Default salt of `TimestampSigner`.
pub const TIMESTAMP_SIGNER_SALT: &str = "django.core.signing.TimestampSigner";
/// Default salt of `signing.dumps` / `signing.loads`.
pub const DUMPS_SALT: &str = "django.core.signing";
/// Upper bound on a decompressed payload, so a zip bomb in a (validly signed, or our own
/// decompression of a forged but signed) token cannot exhaust memory. Django has no limit;
/// real session payloads are a few hundred bytes.
pub const MAX_DECOMPRESSED: usize = 1 << 20;

const SEP: char = ':';

/// Why a signed value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// No separator, or the signature matches none of the keys (Django `BadSignature`).
    #[error("bad signature")]
    BadSignature,
    /// Valid signature but older than `max_age` (Django `SignatureExpired`).
    #[error("signature expired")]
    Expired,
    /// Valid signature but the payload does not decode (bad timestamp, base64 or zlib, or too
    /// large); Django raises a `ValueError`/`zlib.error` here.
    #[error("bad payload")]
    BadPayload,
}

/// `django.core.signing.Signer` with `sep=":"` and `algorithm="sha256"`.
#[derive(Clone, Debug)]
pub struct Signer<'a> {
    /// `[SECRET_KEY, *SECRET_KEY_FALLBACKS]`; the first key signs, all keys verify.
    pub keys: &'a [&'a str],
    /// The salt (namespace) of the signature.
    pub salt: &'a str,
}

impl<'a> Signer<'a> {
    /// A signer over `keys` (first signs, all verify) with `salt`.
    ///
    /// # Panics
    /// If `keys` is empty (there is always a SECRET_KEY).
    pub fn new(keys: &'a [&'a str], salt: &'a str) -> Self {
        assert!(!keys.is_empty(), "Signer needs at least SECRET_KEY");
        Signer { keys, salt }
    }

    /// `Signer.signature(value, key)`: b64url(salted_hmac(salt + "signer", value, key, sha256)).
    pub fn signature_with(&self, value: &str, key: &str) -> String {
        let key_salt = format!("{}signer", self.salt);
        b64url_encode(&salted_hmac(
            &key_salt,
            value.as_bytes(),
            key,
            Algorithm::Sha256,
        ))
    }

    /// `Signer.sign(value)` = `value:SIG` with the first key.
    pub fn sign(&self, value: &str) -> String {
        format!("{value}{SEP}{}", self.signature_with(value, self.keys[0]))
    }

    /// `Signer.unsign`: split at the last `:`, accept if the signature matches any key
    /// (constant-time per key, §3.1).
    pub fn unsign<'s>(&self, signed: &'s str) -> Result<&'s str, SigningError> {
        let (value, sig) = signed.rsplit_once(SEP).ok_or(SigningError::BadSignature)?;
        // Like Django, try every key (no early exit on the first match is needed for safety:
        // the comparison itself is constant-time and the key order is public).
        for key in self.keys {
            if constant_time_eq(sig.as_bytes(), self.signature_with(value, key).as_bytes()) {
                return Ok(value);
            }
        }
        Err(SigningError::BadSignature)
    }
}

/// `django.core.signing.TimestampSigner` (§3.2): `value:TS:SIG`, TS = base62 Unix seconds.
#[derive(Clone, Debug)]
pub struct TimestampSigner<'a> {
    /// The underlying signer (keys and salt).
    pub signer: Signer<'a>,
}

impl<'a> TimestampSigner<'a> {
    /// A timestamp signer over `keys` (first signs) with `salt`.
    pub fn new(keys: &'a [&'a str], salt: &'a str) -> Self {
        TimestampSigner {
            signer: Signer::new(keys, salt),
        }
    }

    /// `sign(value)` at Unix time `now`.
    pub fn sign(&self, value: &str, now: u64) -> String {
        let ts = base62_encode(i64::try_from(now).unwrap_or(i64::MAX));
        self.signer.sign(&format!("{value}{SEP}{ts}"))
    }

    /// `unsign(value, max_age)` at Unix time `now`. Expired iff `now - TS > max_age` (Django
    /// uses the fractional current time, so it may expire up to one second earlier at the
    /// exact boundary); future timestamps pass.
    pub fn unsign<'s>(
        &self,
        signed: &'s str,
        max_age: Option<u64>,
        now: u64,
    ) -> Result<&'s str, SigningError> {
        let inner = self.signer.unsign(signed)?;
        // Django: `value, timestamp = result.rsplit(sep, 1)` then `b62_decode` – both raise
        // ValueError on garbage (not BadSignature).
        let (value, ts) = inner.rsplit_once(SEP).ok_or(SigningError::BadPayload)?;
        let ts = base62_decode(ts).ok_or(SigningError::BadPayload)?;
        if let Some(max_age) = max_age {
            let age = i128::from(now) - i128::from(ts);
            if age > i128::from(max_age) {
                return Err(SigningError::Expired);
            }
        }
        Ok(value)
    }
}

/// `signing.dumps(obj, key=secret, salt=salt, compress=compress)` given the already
/// serialised JSON bytes (§3.3). Compression (zlib, level 6) is used only when it saves more
/// than one byte; a compressed payload is marked with a leading `.`.
pub fn dumps(json_bytes: &[u8], secret: &str, salt: &str, compress: bool, now: u64) -> String {
    let mut payload = String::new();
    let mut data: std::borrow::Cow<'_, [u8]> = json_bytes.into();
    if compress {
        let z = zlib_compress(json_bytes);
        // Django: `if len(compressed) < (len(data) - 1)`.
        if z.len() + 1 < json_bytes.len() {
            data = z.into();
            payload.push('.');
        }
    }
    payload.push_str(&b64url_encode(&data));
    let keys = [secret];
    TimestampSigner::new(&keys, salt).sign(&payload, now)
}

/// `signing.loads(token, key, salt, max_age, fallback_keys)` without the JSON step: verifies
/// with every key in `keys` (SECRET_KEY then fallbacks), checks `max_age`, and returns the
/// JSON bytes (decompressed if the payload starts with `.`).
pub fn loads(
    token: &str,
    keys: &[&str],
    salt: &str,
    max_age: Option<u64>,
    now: u64,
) -> Result<Vec<u8>, SigningError> {
    if keys.is_empty() {
        return Err(SigningError::BadSignature);
    }
    let payload = TimestampSigner::new(keys, salt).unsign(token, max_age, now)?;
    let (compressed, b64) = match payload.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let data = b64url_decode(b64).ok_or(SigningError::BadPayload)?;
    if compressed {
        zlib_decompress_bounded(&data, MAX_DECOMPRESSED).ok_or(SigningError::BadPayload)
    } else {
        Ok(data)
    }
}

fn zlib_compress(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    // Python's zlib.compress default level (-1) is 6; the zlib header is then 0x78 0x9c.
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::new(6));
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Inflate a complete zlib stream; `None` if it is corrupt, truncated or inflates to more than
/// `limit` bytes (memory stays bounded by about twice `limit`).
fn zlib_decompress_bounded(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::new();
    loop {
        if out.len() > limit {
            return None;
        }
        // Room for about four times the input at first, then doubling: the inflater clears
        // the spare room it is given on every call, and a session of a few hundred bytes
        // needs no 64 KiB (issue 12: that clearing was a third of a handshake's instructions).
        let room = out.len().max(4 * data.len()).max(256);
        out.reserve(room.min(limit + 1 - out.len()).max(1));
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let rest = data.get(usize::try_from(in_before).ok()?..)?;
        let status = inflater
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .ok()?;
        if status == Status::StreamEnd {
            // Bytes after the end of the stream are ignored, as by Python's zlib.decompress.
            return (out.len() <= limit).then_some(out);
        }
        if inflater.total_in() == in_before && inflater.total_out() == out_before {
            // No progress with output space available: the stream is truncated
            // (Python: "incomplete or truncated stream").
            return None;
        }
    }
}
