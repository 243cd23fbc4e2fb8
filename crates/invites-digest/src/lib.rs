//! HTTP Digest access authentication (RFC 7616) as Atlas and Ops Manager speak it.
//!
//! Pure functions and small in-memory state, no I/O: parsing `Authorization: Digest ...`,
//! building `WWW-Authenticate` challenges, computing HA1 and responses for MD5 and SHA-256,
//! stateless nonces (an HMAC over the issue time, so any replica holding the same secret accepts
//! them), and a per-nonce record of seen nonce counts that refuses replays.
//!
//! The server decides what to do with each [`Failure`]; this crate only says what went wrong.

mod hash;
mod header;
mod nonce;
mod replay;

pub use hash::{ha1, response, Algorithm};
pub use header::{parse_authorization, Credentials, ParseError, MAX_HEADER_LEN};
pub use nonce::{NonceCheck, NonceKey};
pub use replay::ReplayGuard;

/// Why a Digest `Authorization` header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The header could not be parsed.
    Malformed(ParseError),
    /// The realm is not ours.
    WrongRealm,
    /// `qop` is missing or not `auth`.
    UnsupportedQop,
    /// The algorithm is neither MD5 nor SHA-256 (the `-sess` variants and `userhash` are not offered).
    UnsupportedAlgorithm,
    /// The `uri` parameter is not the request target as sent.
    UriMismatch,
    /// The nonce was not issued by a server holding our secret.
    InvalidNonce,
    /// The nonce was ours but has expired: the client should retry with the new one (`stale=true`).
    StaleNonce,
    /// No API key with that public key exists.
    UnknownUser,
    /// The response digest is wrong (wrong private key).
    WrongResponse,
    /// This nonce count was already used with this nonce.
    Replayed,
    /// The opaque value is not the one we issued.
    WrongOpaque,
}

impl Failure {
    /// Whether the challenge answering this failure carries `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, Failure::StaleNonce)
    }

    /// A short explanation safe to show the client: it never says whether a key exists.
    pub fn client_text(&self) -> &'static str {
        match self {
            Failure::Malformed(_) => "The Authorization header is malformed.",
            Failure::WrongRealm => "The Digest realm must be \"MMS Public API\".",
            Failure::UnsupportedQop => "The Digest qop must be \"auth\".",
            Failure::UnsupportedAlgorithm => "The Digest algorithm must be MD5 or SHA-256.",
            Failure::UriMismatch => "The Digest uri does not match the request target.",
            Failure::InvalidNonce => "The Digest nonce was not issued by this service.",
            Failure::StaleNonce => "The Digest nonce has expired; retry with the new nonce.",
            Failure::UnknownUser | Failure::WrongResponse | Failure::WrongOpaque => {
                "You are not authorized for this resource."
            }
            Failure::Replayed => "The Digest nonce count was already used.",
        }
    }
}

/// Everything needed to run the Digest exchange on a server.
pub struct Verifier {
    realm: String,
    key: NonceKey,
    opaque: String,
    nonce_lifetime_ms: u64,
    replay: ReplayGuard,
}

impl Verifier {
    /// A verifier for `realm` whose nonces are signed with `secret` and live `nonce_lifetime_ms`.
    pub fn new(realm: impl Into<String>, secret: &[u8], nonce_lifetime_ms: u64) -> Self {
        let key = NonceKey::new(secret);
        let opaque = key.opaque();
        Verifier {
            realm: realm.into(),
            key,
            opaque,
            nonce_lifetime_ms,
            replay: ReplayGuard::new(100_000),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The `WWW-Authenticate` value for a fresh challenge.
    pub fn challenge(&self, now_ms: u64, algorithm: Algorithm, stale: bool) -> String {
        format!(
            "Digest realm=\"{}\", domain=\"\", nonce=\"{}\", opaque=\"{}\", algorithm={}, qop=\"auth\", stale={}",
            self.realm,
            self.key.mint(now_ms),
            self.opaque,
            algorithm.as_str(),
            if stale { "true" } else { "false" }
        )
    }

    /// Checks everything that does not need the user's HA1: realm, qop, algorithm, uri and opaque.
    /// `request_target` is the path and query exactly as the client sent them.
    pub fn precheck(&self, creds: &Credentials<'_>, request_target: &str) -> Result<(), Failure> {
        if creds.realm != self.realm {
            return Err(Failure::WrongRealm);
        }
        if creds.qop != Some("auth") || creds.nc.is_none() || creds.cnonce.is_none() {
            return Err(Failure::UnsupportedQop);
        }
        if creds.userhash {
            return Err(Failure::UnsupportedAlgorithm);
        }
        Algorithm::parse(creds.algorithm).ok_or(Failure::UnsupportedAlgorithm)?;
        if creds.uri != request_target {
            return Err(Failure::UriMismatch);
        }
        if let Some(opaque) = creds.opaque {
            if opaque != self.opaque {
                return Err(Failure::WrongOpaque);
            }
        }
        Ok(())
    }

    /// Verifies the response digest against `ha1` (hex, for the credentials' algorithm), then the
    /// nonce's signature and age, then records the nonce count in this verifier's memory. Call
    /// [`Verifier::precheck`] first. The answer names the (nonce, count) used, for a record
    /// shared with other replicas: this one refuses only the replays it has seen itself.
    pub fn verify(
        &self,
        creds: &Credentials<'_>,
        ha1_hex: &str,
        method: &str,
        now_ms: u64,
    ) -> Result<NonceUse, Failure> {
        let nonce = self.key.check(creds.nonce, now_ms, self.nonce_lifetime_ms);
        let mac = match nonce {
            NonceCheck::Invalid => return Err(Failure::InvalidNonce),
            NonceCheck::Fresh { mac, .. } | NonceCheck::Stale { mac } => mac,
        };
        let algorithm = Algorithm::parse(creds.algorithm).ok_or(Failure::UnsupportedAlgorithm)?;
        let (Some(nc), Some(cnonce)) = (creds.nc, creds.cnonce) else {
            return Err(Failure::UnsupportedQop);
        };
        let expected = response(
            algorithm,
            ha1_hex,
            creds.nonce,
            creds.nc_text,
            cnonce,
            "auth",
            method,
            creds.uri,
        );
        if !hash::constant_time_eq_hex(&expected, creds.response) {
            return Err(Failure::WrongResponse);
        }
        if let NonceCheck::Stale { .. } = nonce {
            return Err(Failure::StaleNonce);
        }
        let expires = match nonce {
            NonceCheck::Fresh { issued_ms, .. } => issued_ms + self.nonce_lifetime_ms,
            _ => now_ms,
        };
        if !self.replay.record(mac, nc, expires, now_ms) {
            return Err(Failure::Replayed);
        }
        Ok(NonceUse {
            nonce: mac,
            nc,
            expires_ms: expires,
        })
    }
}

/// A nonce count accepted by [`Verifier::verify`]: which nonce (its 16-byte signature, which
/// identifies it), which count, and until when the nonce is valid (past that no record of it is
/// needed: an expired nonce is refused as stale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceUse {
    pub nonce: [u8; 16],
    pub nc: u32,
    pub expires_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "MMS Public API";

    fn client_header(v: &Verifier, challenge: &str, method: &str, uri: &str, nc: &str) -> String {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ha1 = ha1(Algorithm::Md5, "pubkey", REALM, "secret");
        let resp = response(Algorithm::Md5, &ha1, nonce, nc, "abc", "auth", method, uri);
        let _ = v;
        format!(
            "Digest username=\"pubkey\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"abc\", algorithm=MD5"
        )
    }

    fn run(
        v: &Verifier,
        header: &str,
        method: &str,
        target: &str,
        now: u64,
    ) -> Result<(), Failure> {
        let creds = parse_authorization(header).map_err(Failure::Malformed)?;
        v.precheck(&creds, target)?;
        let ha1 = ha1(Algorithm::Md5, "pubkey", REALM, "secret");
        v.verify(&creds, &ha1, method, now).map(|_| ())
    }

    #[test]
    fn full_exchange_accepts_then_refuses_replay() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&v, &ch, "GET", "/a?b=1", "00000001");
        assert_eq!(run(&v, &h, "GET", "/a?b=1", 2_000), Ok(()));
        assert_eq!(run(&v, &h, "GET", "/a?b=1", 2_000), Err(Failure::Replayed));
        let h2 = client_header(&v, &ch, "GET", "/a?b=1", "00000002");
        assert_eq!(run(&v, &h2, "GET", "/a?b=1", 2_500), Ok(()));
    }

    #[test]
    fn a_jump_in_nonce_count_on_a_fresh_nonce_is_accepted() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&v, &ch, "DELETE", "/x", "00000005");
        assert_eq!(run(&v, &h, "DELETE", "/x", 1_500), Ok(()));
    }

    #[test]
    fn uri_must_match_the_request_target() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&v, &ch, "GET", "/a", "00000001");
        assert_eq!(run(&v, &h, "GET", "/b", 1_500), Err(Failure::UriMismatch));
    }

    #[test]
    fn expired_nonce_with_right_password_is_stale() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&v, &ch, "GET", "/a", "00000001");
        let err = run(&v, &h, "GET", "/a", 1_000 + 300_001).unwrap_err();
        assert_eq!(err, Failure::StaleNonce);
        assert!(err.is_stale());
    }

    #[test]
    fn nonce_from_another_secret_is_invalid() {
        let other = Verifier::new(REALM, b"other", 300_000);
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = other.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&other, &ch, "GET", "/a", "00000001");
        let creds = parse_authorization(&h).unwrap();
        let ha1 = ha1(Algorithm::Md5, "pubkey", REALM, "secret");
        assert_eq!(
            v.verify(&creds, &ha1, "GET", 1_500),
            Err(Failure::InvalidNonce)
        );
    }

    #[test]
    fn an_accepted_count_names_its_nonce_count_and_expiry() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let ha1 = ha1(Algorithm::Md5, "pubkey", REALM, "secret");
        let used = |nc: &str| {
            let h = client_header(&v, &ch, "GET", "/a", nc);
            v.verify(&parse_authorization(&h).unwrap(), &ha1, "GET", 2_000)
                .unwrap()
        };
        let (first, second) = (used("00000001"), used("0000000a"));
        assert_eq!((first.nc, second.nc), (1, 10));
        assert_eq!(first.nonce, second.nonce);
        assert_eq!(first.expires_ms, 1_000 + 300_000);
        // Another nonce, another identity.
        let other = v.challenge(1_001, Algorithm::Md5, false);
        let h = client_header(&v, &other, "GET", "/a", "00000001");
        let third = v
            .verify(&parse_authorization(&h).unwrap(), &ha1, "GET", 2_000)
            .unwrap();
        assert_ne!(third.nonce, first.nonce);
    }

    #[test]
    fn wrong_method_changes_the_digest() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Md5, false);
        let h = client_header(&v, &ch, "GET", "/a", "00000001");
        assert_eq!(
            run(&v, &h, "DELETE", "/a", 1_500),
            Err(Failure::WrongResponse)
        );
    }

    #[test]
    fn challenge_has_no_commas_inside_values() {
        let v = Verifier::new(REALM, b"k", 300_000);
        let ch = v.challenge(1_000, Algorithm::Sha256, true);
        assert!(ch.starts_with("Digest realm=\"MMS Public API\""));
        assert!(ch.contains("algorithm=SHA-256"));
        assert!(ch.contains("stale=true"));
        for part in ch.trim_start_matches("Digest ").split(", ") {
            assert!(
                part.contains('='),
                "challenge part {part:?} was split inside a value"
            );
        }
    }
}
