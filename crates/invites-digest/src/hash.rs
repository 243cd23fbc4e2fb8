//! HA1 and response computation for MD5 and SHA-256 (RFC 7616 section 3.4.1).

use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The hash algorithms offered. The `-sess` variants are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Parses the `algorithm` parameter; `None` (absent) means MD5, as RFC 7616 says.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None => Some(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
}

fn hex_digest(algorithm: Algorithm, parts: &[&[u8]]) -> String {
    fn run<D: Digest>(parts: &[&[u8]]) -> String {
        let mut d = D::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p);
        }
        hex::encode(d.finalize())
    }
    match algorithm {
        Algorithm::Md5 => run::<Md5>(parts),
        Algorithm::Sha256 => run::<Sha256>(parts),
    }
}

/// HA1 = H(username:realm:password), lowercase hex. This is what the server stores per key.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    hex_digest(
        algorithm,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// The expected `response` for `qop=auth`: H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hex_digest(algorithm, &[method.as_bytes(), uri.as_bytes()]);
    hex_digest(
        algorithm,
        &[
            ha1_hex.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ],
    )
}

/// Compares two hex digests in constant time, ignoring ASCII case (clients may send uppercase).
pub(crate) fn constant_time_eq_hex(expected_lower: &str, given: &str) -> bool {
    if expected_lower.len() != given.len() || given.len() > 128 {
        return false;
    }
    let mut buf = [0u8; 128];
    let given_lower = &mut buf[..given.len()];
    for (dst, src) in given_lower.iter_mut().zip(given.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    expected_lower.as_bytes().ct_eq(given_lower).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 section 3.9.1: the example with username "Mufasa" and password "Circle of Life".
    const USER: &str = "Mufasa";
    const REALM: &str = "http-auth@example.org";
    const PASS: &str = "Circle of Life";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const URI: &str = "/dir/index.html";

    #[test]
    fn rfc7616_md5_vector() {
        let ha1 = ha1(Algorithm::Md5, USER, REALM, PASS);
        let r = response(
            Algorithm::Md5,
            &ha1,
            NONCE,
            "00000001",
            CNONCE,
            "auth",
            "GET",
            URI,
        );
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let ha1 = ha1(Algorithm::Sha256, USER, REALM, PASS);
        let r = response(
            Algorithm::Sha256,
            &ha1,
            NONCE,
            "00000001",
            CNONCE,
            "auth",
            "GET",
            URI,
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn algorithm_names_are_case_insensitive_and_default_to_md5() {
        assert_eq!(Algorithm::parse(None), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse(Some("md5")), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse(Some("sha-256")), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse(Some("MD5-sess")), None);
    }

    #[test]
    fn hex_comparison_ignores_case_but_not_content() {
        assert!(constant_time_eq_hex("abcd", "ABCD"));
        assert!(!constant_time_eq_hex("abcd", "abce"));
        assert!(!constant_time_eq_hex("abcd", "abc"));
    }
}
