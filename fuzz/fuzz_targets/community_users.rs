//! Fuzz target: the community `users` list through `invites_domain::community::parse_users` in its
//! three encodings (JSON, a form `users=1&users=2`, JSON text under a form content type). The
//! first byte picks the content type, the rest is the body. Never panics; an `Ok` list is
//! non-empty, at most `MAX_USERS` long, without repeats, of positive ids that each appear in the
//! body (as sent or percent-decoded); and the same list sent as JSON and as a form parses back
//! to itself.

#![no_main]

use invites_domain::community::{parse_users, MAX_USERS};
use libfuzzer_sys::fuzz_target;

const FORM: &str = "application/x-www-form-urlencoded";

/// The content types a client may send: the three encodings, with parameters and odd cases,
/// none, and one the endpoint refuses.
const CONTENT_TYPES: [&str; 8] = [
    "application/json",
    FORM,
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/vnd.atlas.2023-01-01+json",
    "",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(first) % CONTENT_TYPES.len()];
    let Ok(ids) = parse_users(content_type, body) else {
        return;
    };
    assert!(!ids.is_empty() && ids.len() <= MAX_USERS, "{ids:?}");
    let text = String::from_utf8_lossy(body);
    let decoded = percent_decoded(body);
    for (i, id) in ids.iter().enumerate() {
        assert!(*id > 0, "{id} is not positive");
        assert!(!ids[..i].contains(id), "{id} is listed twice");
        let shown = id.to_string();
        assert!(
            text.contains(&shown) || decoded.contains(&shown),
            "{id} is not in the body {text:?}"
        );
    }
    let json = format!(
        "{{\"users\": [{}]}}",
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let form = ids
        .iter()
        .map(|id| format!("users={id}"))
        .collect::<Vec<_>>()
        .join("&");
    for (ct, again) in [("application/json", &json), (FORM, &form), (FORM, &json)] {
        assert_eq!(
            parse_users(ct, again.as_bytes()).as_ref().ok(),
            Some(&ids),
            "{again:?} as {ct}"
        );
    }
});

/// The body with every `%XX` escape and `+` decoded, where it can be (no error on a bad escape:
/// this is only where an id may be found).
fn percent_decoded(body: &[u8]) -> String {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let hex = body
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (body[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
