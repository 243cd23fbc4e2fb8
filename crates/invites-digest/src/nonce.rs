//! Stateless nonces: the issue time and a random salt, signed with HMAC-SHA256.
//!
//! A nonce is 43 characters of unpadded base64url, so it never contains a comma or a quote
//! (some clients split challenges on commas). Any server holding the same secret can check it,
//! which is what lets several replicas accept each other's nonces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future a nonce's issue time may be, to tolerate clock skew between replicas.
const MAX_FUTURE_SKEW_MS: u64 = 5_000;

/// The secret that signs nonces.
#[derive(Clone)]
pub struct NonceKey {
    mac: HmacSha256,
}

/// What a nonce check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    /// Signed by us and within its lifetime. `mac` identifies the nonce for replay tracking.
    Fresh { issued_ms: u64, mac: [u8; 16] },
    /// Signed by us but expired.
    Stale { mac: [u8; 16] },
    /// Not a nonce we issued.
    Invalid,
}

impl NonceKey {
    pub fn new(secret: &[u8]) -> Self {
        NonceKey {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    fn sign(&self, payload: &[u8; 16]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A new nonce issued at `now_ms` (milliseconds since the epoch).
    pub fn mint(&self, now_ms: u64) -> String {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&now_ms.to_be_bytes());
        let salt: [u8; 8] = rand::random();
        raw[8..16].copy_from_slice(&salt);
        let payload: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        raw[16..].copy_from_slice(&self.sign(&payload));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce's signature and age.
    pub fn check(&self, nonce: &str, now_ms: u64, lifetime_ms: u64) -> NonceCheck {
        if nonce.len() != 43 {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(32) => {}
            _ => return NonceCheck::Invalid,
        }
        let payload: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        let given: [u8; 16] = raw[16..].try_into().expect("16 bytes");
        let expected = self.sign(&payload);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &given[..])) {
            return NonceCheck::Invalid;
        }
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        if issued_ms > now_ms + MAX_FUTURE_SKEW_MS {
            return NonceCheck::Invalid;
        }
        if now_ms.saturating_sub(issued_ms) > lifetime_ms {
            return NonceCheck::Stale { mac: given };
        }
        NonceCheck::Fresh {
            issued_ms,
            mac: given,
        }
    }

    /// A constant opaque value derived from the secret, the same on every replica.
    pub fn opaque(&self) -> String {
        hex::encode(self.sign(b"opaque-value-v1\0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn minted_nonces_check_fresh_then_stale() {
        let k = NonceKey::new(b"secret");
        let n = k.mint(10_000);
        assert_eq!(n.len(), 43);
        assert!(!n.contains(',') && !n.contains('"'));
        assert!(matches!(
            k.check(&n, 10_500, 1_000),
            NonceCheck::Fresh {
                issued_ms: 10_000,
                ..
            }
        ));
        assert!(matches!(
            k.check(&n, 11_001, 1_000),
            NonceCheck::Stale { .. }
        ));
    }

    #[test]
    fn another_key_or_tampering_is_invalid() {
        let k = NonceKey::new(b"secret");
        let n = k.mint(10_000);
        assert_eq!(
            NonceKey::new(b"other").check(&n, 10_000, 1_000),
            NonceCheck::Invalid
        );
        let mut tampered = n.into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(k.check(&tampered, 10_000, 1_000), NonceCheck::Invalid);
    }

    #[test]
    fn nonces_from_the_far_future_are_invalid() {
        let k = NonceKey::new(b"secret");
        let n = k.mint(100_000);
        assert_eq!(k.check(&n, 10_000, 1_000), NonceCheck::Invalid);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_are_never_accepted(s in "\\PC{0,60}") {
            let k = NonceKey::new(b"secret");
            prop_assert_eq!(k.check(&s, 10_000, 1_000), NonceCheck::Invalid);
        }
    }
}
