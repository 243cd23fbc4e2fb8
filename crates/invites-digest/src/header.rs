//! Parser for `Authorization: Digest ...` headers, tolerant of what real clients send.
//!
//! Values may be quoted or bare (`qop=auth`, `qop="auth"`), names are case-insensitive, unknown
//! parameters are ignored, duplicates and anything unparsable are refused. The parser never
//! allocates and never panics; its input is bounded by [`MAX_HEADER_LEN`].

use std::fmt;

/// Longest header accepted. Real Digest headers are a few hundred bytes.
pub const MAX_HEADER_LEN: usize = 4096;

/// The parameters of a Digest `Authorization` header, borrowed from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: &'a str,
    pub response: &'a str,
    pub algorithm: Option<&'a str>,
    pub cnonce: Option<&'a str>,
    pub opaque: Option<&'a str>,
    pub qop: Option<&'a str>,
    /// The nonce count as sent (8 hex digits), used verbatim in the digest.
    pub nc_text: &'a str,
    /// The nonce count's value.
    pub nc: Option<u32>,
    pub userhash: bool,
}

/// Why a header is not a usable Digest `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    TooLong,
    NotDigest,
    Syntax(&'static str),
    Duplicate(&'static str),
    Missing(&'static str),
    BadNonceCount,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong => write!(f, "header longer than {MAX_HEADER_LEN} bytes"),
            ParseError::NotDigest => f.write_str("not a Digest header"),
            ParseError::Syntax(what) => write!(f, "syntax error: {what}"),
            ParseError::Duplicate(name) => write!(f, "parameter {name} given twice"),
            ParseError::Missing(name) => write!(f, "parameter {name} missing"),
            ParseError::BadNonceCount => f.write_str("nc must be 8 hexadecimal digits"),
        }
    }
}

impl std::error::Error for ParseError {}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b)
}

/// Parses the value of an `Authorization` header whose scheme is Digest.
pub fn parse_authorization(header: &str) -> Result<Credentials<'_>, ParseError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(ParseError::TooLong);
    }
    let header = header.trim_start();
    let (scheme, rest) = header.split_at(header.find([' ', '\t']).unwrap_or(header.len()));
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(ParseError::NotDigest);
    }

    let mut c = Credentials::default();
    let mut seen: u16 = 0;
    let bytes = rest.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && is_token_char(bytes[i]) {
            i += 1;
        }
        let name = &rest[name_start..i];
        if name.is_empty() {
            return Err(ParseError::Syntax("expected a parameter name"));
        }
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(ParseError::Syntax("expected '=' after a parameter name"));
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        let value;
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let start = i;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    return Err(ParseError::Syntax("escaped characters are not accepted"));
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(ParseError::Syntax("unterminated quoted string"));
            }
            value = &rest[start..i];
            i += 1;
        } else {
            let start = i;
            while i < bytes.len() && is_token_char(bytes[i]) {
                i += 1;
            }
            value = &rest[start..i];
            if value.is_empty() {
                return Err(ParseError::Syntax("expected a value"));
            }
        }
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return Err(ParseError::Syntax("expected ',' between parameters"));
        }

        macro_rules! set {
            ($bit:expr, $label:literal, $assign:expr) => {{
                if seen & (1 << $bit) != 0 {
                    return Err(ParseError::Duplicate($label));
                }
                seen |= 1 << $bit;
                $assign;
            }};
        }
        match name.to_ascii_lowercase().as_str() {
            "username" => set!(0, "username", c.username = value),
            "realm" => set!(1, "realm", c.realm = value),
            "nonce" => set!(2, "nonce", c.nonce = value),
            "uri" => set!(3, "uri", c.uri = value),
            "response" => set!(4, "response", c.response = value),
            "algorithm" => set!(5, "algorithm", c.algorithm = Some(value)),
            "cnonce" => set!(6, "cnonce", c.cnonce = Some(value)),
            "opaque" => set!(7, "opaque", c.opaque = Some(value)),
            "qop" => set!(8, "qop", c.qop = Some(value)),
            "nc" => set!(9, "nc", {
                if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ParseError::BadNonceCount);
                }
                c.nc_text = value;
                c.nc = u32::from_str_radix(value, 16).ok();
            }),
            "userhash" => set!(
                10,
                "userhash",
                c.userhash = value.eq_ignore_ascii_case("true")
            ),
            _ => {}
        }
    }
    for (bit, label) in [
        (0, "username"),
        (1, "realm"),
        (2, "nonce"),
        (3, "uri"),
        (4, "response"),
    ] {
        if seen & (1 << bit) == 0 {
            return Err(ParseError::Missing(label));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_curl_sends() {
        let h = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="AAAA-_bb", uri="/api/atlas/v2/orgs/x/invites?pretty=true", cnonce="NjA0", nc=00000001, qop=auth, response="0123abcd", opaque="op", algorithm=MD5"#;
        let c = parse_authorization(h).unwrap();
        assert_eq!(c.username, "abcdefgh");
        assert_eq!(c.uri, "/api/atlas/v2/orgs/x/invites?pretty=true");
        assert_eq!(c.qop, Some("auth"));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.nc_text, "00000001");
        assert_eq!(c.algorithm, Some("MD5"));
    }

    #[test]
    fn parses_what_python_requests_sends() {
        let h = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="n1", uri="/p", response="ff", opaque="op", algorithm="MD5", qop="auth", nc=00000002, cnonce="7d1f""#;
        let c = parse_authorization(h).unwrap();
        assert_eq!(c.qop, Some("auth"));
        assert_eq!(c.algorithm, Some("MD5"));
        assert_eq!(c.nc, Some(2));
    }

    #[test]
    fn refuses_duplicates_missing_and_garbage() {
        assert_eq!(
            parse_authorization("Basic dXNlcjpwYXNz"),
            Err(ParseError::NotDigest)
        );
        assert_eq!(
            parse_authorization(r#"Digest username="a", username="b""#),
            Err(ParseError::Duplicate("username"))
        );
        assert_eq!(
            parse_authorization(r#"Digest username="a", realm="r""#),
            Err(ParseError::Missing("nonce"))
        );
        assert!(matches!(
            parse_authorization(r#"Digest username="a"#),
            Err(ParseError::Syntax(_))
        ));
        assert_eq!(
            parse_authorization(r#"Digest username=a, realm=r, nonce=n, uri=/, response=f, nc=1"#),
            Err(ParseError::BadNonceCount)
        );
        assert_eq!(
            parse_authorization(&format!("Digest {}", "a".repeat(MAX_HEADER_LEN))),
            Err(ParseError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn never_panics_on_digest_like_input(s in "Digest [a-z=\", ]{0,200}") {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn round_trips_well_formed_headers(
            user in "[a-z]{8}", nonce in "[A-Za-z0-9_-]{10,43}", path in "/[a-z/]{0,30}",
            quote_qop in any::<bool>(), nc in 1u32..u32::MAX,
        ) {
            let qop = if quote_qop { "\"auth\"" } else { "auth" };
            let h = format!(
                "Digest username=\"{user}\",realm=\"MMS Public API\",  nonce=\"{nonce}\", uri=\"{path}\", response=\"aa\", qop={qop}, nc={nc:08x}, cnonce=\"c\""
            );
            let c = parse_authorization(&h).unwrap();
            prop_assert_eq!(c.username, user.as_str());
            prop_assert_eq!(c.nonce, nonce.as_str());
            prop_assert_eq!(c.uri, path.as_str());
            prop_assert_eq!(c.nc, Some(nc));
            prop_assert_eq!(c.qop, Some("auth"));
        }
    }
}
