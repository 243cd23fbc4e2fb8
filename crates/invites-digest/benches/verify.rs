//! `cargo bench -p invites-digest`: what one Digest verification costs, alone, on one core:
//! parsing the header, the pre-checks, the full verification (nonce MAC and age, the response
//! hash, the replay window) and minting a challenge. Prints nanoseconds per operation.

use std::hint::black_box;
use std::time::Instant;

use invites_digest::{ha1, parse_authorization, response, Algorithm, Verifier};

const REALM: &str = "MMS Public API";

fn measure(name: &str, iterations: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..iterations / 10 {
        f(i);
    }
    let started = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!(
        "{name:<48} {ns:>9.0} ns/op  ({:.0}/s on one core)",
        1e9 / ns
    );
    ns
}

fn main() {
    let now_ms = 1_763_596_800_000;
    let verifier = Verifier::new(REALM, b"bench secret: 32 bytes of noise!", 300_000);
    let challenge = verifier.challenge(now_ms, Algorithm::Md5, false);
    let param = |name: &str| {
        challenge
            .split(", ")
            .find_map(|p| {
                p.trim_start_matches("Digest ")
                    .strip_prefix(&format!("{name}="))
            })
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    let (nonce, opaque) = (param("nonce"), param("opaque"));
    let key_ha1 = ha1(
        Algorithm::Md5,
        "benchkey",
        REALM,
        "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
    );
    let uri = "/api/atlas/v2/orgs/5e0000000000000000000a01/invites/5e0000000000000000000102";
    const N: u32 = 200_000;
    // Headers with increasing nonce counts, as one client sends them (the replay window needs
    // each count once).
    let headers: Vec<String> = (1..=N + N / 10)
        .map(|nc| {
            let nc = format!("{nc:08x}");
            let resp = response(Algorithm::Md5, &key_ha1, &nonce, &nc, "c0ffee", "auth", "DELETE", uri);
            format!(
                "Digest username=\"benchkey\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 algorithm=MD5, response=\"{resp}\", opaque=\"{opaque}\", qop=auth, nc={nc}, cnonce=\"c0ffee\""
            )
        })
        .collect();
    println!("Digest verification, {N} operations each:");
    measure("parse the Authorization header", N, |i| {
        black_box(parse_authorization(black_box(&headers[i as usize])).unwrap());
    });
    measure("parse + precheck", N, |i| {
        let creds = parse_authorization(&headers[i as usize]).unwrap();
        verifier.precheck(&creds, uri).unwrap();
    });
    let mut next = 0usize;
    let full = measure("parse + precheck + verify (MD5, replay window)", N, |_| {
        let creds = parse_authorization(&headers[next]).unwrap();
        verifier.precheck(&creds, uri).unwrap();
        verifier
            .verify(&creds, &key_ha1, "DELETE", now_ms + 1_000)
            .unwrap();
        next += 1;
    });
    measure("mint a challenge (nonce + opaque)", N, |i| {
        black_box(verifier.challenge(now_ms + u64::from(i), Algorithm::Md5, false));
    });
    println!(
        "one full verification is {:.1} us: at 10,000 Digest requests/s it takes {:.1}% of one core",
        full / 1000.0,
        full * 10_000.0 / 1e9 * 100.0
    );
}
