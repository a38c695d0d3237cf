//! `pbkdf2_sha256` and `pbkdf2_sha1`: PBKDF2-HMAC, encoded as
//! `algorithm$iterations$salt$hash`.

use base64::Engine as _;
use base64::engine::general_purpose;
use sha1::Sha1;
use sha2::Sha256;

pub(super) fn encode_pbkdf2(sha1: bool, pw: &[u8], salt: &str, iterations: u32) -> String {
    if sha1 {
        let mut dk = [0u8; 20];
        ::pbkdf2::pbkdf2_hmac::<Sha1>(pw, salt.as_bytes(), iterations, &mut dk);
        format!(
            "pbkdf2_sha1${iterations}${salt}${}",
            general_purpose::STANDARD.encode(dk)
        )
    } else {
        let mut dk = [0u8; 32];
        ::pbkdf2::pbkdf2_hmac::<Sha256>(pw, salt.as_bytes(), iterations, &mut dk);
        format!(
            "pbkdf2_sha256${iterations}${salt}${}",
            general_purpose::STANDARD.encode(dk)
        )
    }
}
