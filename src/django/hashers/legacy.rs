//! The legacy salted digests `md5` and `sha1` (`algorithm$salt$hexdigest`); the unsalted forms
//! are one-liners in the dispatch.

use sha2::Digest;

pub(super) fn encode_salted_digest<D: Digest>(algorithm: &str, pw: &[u8], salt: &str) -> String {
    let mut h = D::new();
    h.update(salt.as_bytes());
    h.update(pw);
    format!("{algorithm}${salt}${}", hex::encode(h.finalize()))
}
