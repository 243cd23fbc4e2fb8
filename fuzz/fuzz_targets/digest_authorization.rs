//! Fuzz target: `Authorization: Digest ...` headers through `invites_digest::parse_authorization`
//! and, for what parses, the verifier path. Never panics; and a header the parser accepted, signed
//! again with a nonce we minted and the response `invites_digest::response` computes, verifies
//! once and is refused as a replay the second time.

#![no_main]

use invites_digest::{
    ha1, parse_authorization, response, Algorithm, Credentials, Failure, NonceCheck, NonceKey,
    Verifier, MAX_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const REALM: &str = "MMS Public API";
const SECRET: &[u8] = b"fuzzing secret, never served";
const LIFETIME_MS: u64 = 300_000;
/// A fixed clock (2026-01-01), so a run is repeatable.
const NOW_MS: u64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(creds) = parse_authorization(header) else {
        return;
    };
    let verifier = Verifier::new(REALM, SECRET, LIFETIME_MS);
    let algorithm = Algorithm::parse(creds.algorithm).unwrap_or(Algorithm::Md5);
    let key_ha1 = ha1(algorithm, creds.username, creds.realm, "private key");

    // The header as sent: whatever it says, the verifier answers without panicking, and a nonce
    // it did not mint is never accepted.
    let _ = verifier.precheck(&creds, creds.uri);
    let _ = verifier.precheck(&creds, "/api/atlas/v2/orgs");
    let sent = verifier.verify(&creds, &key_ha1, "DELETE", NOW_MS);
    let key = NonceKey::new(SECRET);
    if matches!(
        key.check(creds.nonce, NOW_MS, LIFETIME_MS),
        NonceCheck::Invalid
    ) {
        assert!(
            sent.is_err(),
            "a nonce the key did not sign was accepted: {creds:?}"
        );
    }

    // The same parameters signed properly: must verify once, then be a replay.
    let nonce = key.mint(NOW_MS);
    let signed = response(
        algorithm,
        &key_ha1,
        &nonce,
        creds.nc_text,
        creds.cnonce.unwrap_or(""),
        "auth",
        "DELETE",
        creds.uri,
    );
    let again = rewrite(&creds, &nonce, &signed);
    if again.len() > MAX_HEADER_LEN {
        return; // longer than the parser takes: quotes, the nonce and the digest added length
    }
    let reparsed = parse_authorization(&again)
        .unwrap_or_else(|e| panic!("the rewritten header {again:?} does not parse: {e}"));
    assert_eq!(
        Credentials {
            nonce: creds.nonce,
            response: creds.response,
            ..reparsed.clone()
        },
        creds,
        "the rewritten header {again:?} parses differently"
    );
    if creds.realm != REALM || verifier.precheck(&reparsed, reparsed.uri).is_err() {
        return;
    }
    let first = verifier.verify(&reparsed, &key_ha1, "DELETE", NOW_MS);
    if reparsed.nc == Some(0) {
        // Counts start at 1; the replay guard refuses a zero count (as documented there).
        assert_eq!(first, Err(Failure::Replayed), "{again:?}");
        return;
    }
    assert!(
        first.is_ok(),
        "a properly signed header was refused: {first:?}, {again:?}"
    );
    let second = verifier.verify(&reparsed, &key_ha1, "DELETE", NOW_MS);
    assert_eq!(second, Err(Failure::Replayed), "{again:?}");
    let wrong_key = ha1(algorithm, creds.username, creds.realm, "another key");
    assert_eq!(
        verifier.verify(&reparsed, &wrong_key, "DELETE", NOW_MS),
        Err(Failure::WrongResponse)
    );
});

/// The credentials as a header again, every value quoted (a parsed value never holds a quote or
/// a backslash), with `nonce` and `response` replaced.
fn rewrite(c: &Credentials<'_>, nonce: &str, signed: &str) -> String {
    let mut parts = vec![
        format!("username=\"{}\"", c.username),
        format!("realm=\"{}\"", c.realm),
        format!("nonce=\"{nonce}\""),
        format!("uri=\"{}\"", c.uri),
        format!("response=\"{signed}\""),
    ];
    let optional = [
        ("algorithm", c.algorithm),
        ("cnonce", c.cnonce),
        ("opaque", c.opaque),
        ("qop", c.qop),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            parts.push(format!("{name}=\"{v}\""));
        }
    }
    if c.nc.is_some() {
        parts.push(format!("nc={}", c.nc_text));
    }
    if c.userhash {
        parts.push("userhash=true".to_owned());
    }
    format!("Digest {}", parts.join(", "))
}
