//! Generating secrets and reducing them to what is stored.
//!
//! Secrets are 256-bit random values shown once. What is stored: for API keys the Digest HA1
//! values (RFC 7616 needs nothing less, and nothing more is kept); for service-account secrets and
//! access tokens a SHA-256 digest, enough for values of that entropy (no slow hash needed).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use invites_api::REALM;
use invites_digest::{ha1, Algorithm};
use sha2::{Digest, Sha256};

/// A new API key pair as Atlas shapes them: an 8-letter public key and a UUID-like private key.
pub struct NewApiKey {
    pub public_key: String,
    pub private_key: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

pub fn new_api_key() -> NewApiKey {
    let letters: [u8; 8] = rand::random();
    let public_key: String = letters.iter().map(|b| (b'a' + b % 26) as char).collect();
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    let private_key = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let (ha1_md5, ha1_sha256) = ha1_pair(&public_key, &private_key);
    NewApiKey {
        public_key,
        private_key,
        ha1_md5,
        ha1_sha256,
    }
}

/// The Digest HA1 values of a key pair for our realm.
pub fn ha1_pair(public_key: &str, private_key: &str) -> (String, String) {
    (
        ha1(Algorithm::Md5, public_key, REALM, private_key),
        ha1(Algorithm::Sha256, public_key, REALM, private_key),
    )
}

/// A random secret with a readable prefix, e.g. `mdb_sa_sk_...`.
pub fn new_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// Lowercase hex SHA-256, the stored form of service-account secrets and tokens.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A service-account client id as Atlas shapes them.
pub fn new_client_id() -> String {
    format!("mdb_sa_id_{}", hex::encode(rand::random::<[u8; 12]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_look_like_atlas_keys() {
        let k = new_api_key();
        assert_eq!(k.public_key.len(), 8);
        assert!(k.public_key.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(k.private_key.len(), 36);
        assert_eq!(
            k.ha1_md5,
            ha1(Algorithm::Md5, &k.public_key, REALM, &k.private_key)
        );
    }

    #[test]
    fn secrets_are_unique_and_url_safe() {
        let a = new_secret("mdb_sa_sk_");
        assert_ne!(a, new_secret("mdb_sa_sk_"));
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    }
}
