//! Hostile input over HTTP: random Authorization headers, path ids, query strings and bodies
//! against every operation of our document. Nothing may panic or answer 500, and every answer must
//! be one its operation documents (judged by `openapi/invites.json` through `invites-mock`), apart
//! from the transport-level 405 and 413 that no operation lists.

use std::path::PathBuf;

use invites_contract::Contract;
use proptest::prelude::*;
use reqwest::Method;

use crate::support::TestServer;

fn spec() -> Contract {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/invites.json");
    Contract::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Percent-encodes everything but unreserved characters, for a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    /// A working token: the service account's on Atlas paths, a manager's on community paths.
    Valid,
    Raw(String),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        1 => Just(Auth::None),
        8 => Just(Auth::Valid),
        1 => "[ -~]{0,120}".prop_map(Auth::Raw),
        1 => "Digest [ -~]{0,160}".prop_map(Auth::Raw),
        1 => (
            "[a-z]{0,10}",
            "[A-Za-z0-9_-]{0,50}",
            "[0-9a-f]{0,10}",
            "(MD5|SHA-256|md5|x)?"
        )
            .prop_map(|(u, n, nc, a)| Auth::Raw(format!(
                "Digest username=\"{u}\", realm=\"MMS Public API\", nonce=\"{n}\", uri=\"/\", nc={nc}, cnonce=\"c\", qop=auth, response=\"{n}\", algorithm={a}"
            ))),
        1 => "Bearer [ -~]{0,80}".prop_map(Auth::Raw),
        1 => "Basic [A-Za-z0-9+/=]{0,40}".prop_map(Auth::Raw),
    ]
}

/// A path parameter: often a plausible id, sometimes anything at all.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{24}",
        "[0-9]{1,20}",
        "-?[0-9]{1,5}",
        "\\PC{0,30}",
        Just(String::new()),
    ]
}

fn body() -> impl Strategy<Value = Option<(String, Vec<u8>)>> {
    let json = prop_oneof![
        Just(serde_json::json!(null)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,20}".prop_map(|s| serde_json::json!(s)),
        proptest::collection::vec(any::<i64>(), 0..5).prop_map(|v| serde_json::json!({"users": v})),
        (
            "\\PC{0,30}",
            proptest::collection::vec("[A-Z_]{0,20}", 0..4)
        )
            .prop_map(|(u, r)| serde_json::json!({"username": u, "roles": r})),
        proptest::collection::vec("[A-Z_]{0,20}", 0..4)
            .prop_map(|r| serde_json::json!({"roles": r})),
    ];
    let content_type = prop_oneof![
        Just("application/json".to_owned()),
        Just("application/vnd.atlas.2023-01-01+json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,30}",
    ];
    prop_oneof![
        Just(None),
        (content_type.clone(), json).prop_map(|(c, v)| Some((c, v.to_string().into_bytes()))),
        (content_type, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(Some),
    ]
}

#[test]
fn no_input_makes_the_server_fail_or_leave_its_contract() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The failed-authentication limit is off here: random credentials from one address would
    // trip it within a few dozen cases (auth.rs tests it).
    let s = rt.block_on(TestServer::start_with(invites_server::ServiceConfig {
        failed_auth_per_address: 0,
        failed_auth_per_key: 0,
        ..invites_server::ServiceConfig::default()
    }));
    let spec = spec();
    let sa_token = rt.block_on(s.service_account_token());
    let manager = s.user_token("manager");
    let ops = spec.operations().len();
    let case = (
        0..ops,
        proptest::collection::vec(id(), 2),
        auth(),
        proptest::option::of("[ -~]{0,40}"),
        body(),
    );
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 600,
        ..ProptestConfig::default()
    });
    runner
        .run(&case, |(op_index, ids, auth, query, body)| {
            let op = &spec.operations()[op_index];
            // Substitute path parameters in order; the demo tenant's ids half of the time.
            let mut path = String::new();
            let mut rest = op.template.as_str();
            let mut n = 0;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
                path.push_str(&rest[..open]);
                let name = &rest[open + 1..close];
                let value = match (n % 2 == 0, name) {
                    (true, "orgId") => s.demo.org_id.clone(),
                    (true, "groupId" | "GROUP-ID") => s.demo.project_id.clone(),
                    (true, "id") => s.demo.community_group_id.to_string(),
                    _ => encode(&ids[n % ids.len()]),
                };
                path.push_str(&value);
                rest = &rest[(close + 1).min(rest.len())..];
                n += 1;
            }
            path.push_str(rest);
            let url = match &query {
                Some(q) => format!(
                    "{}?q={}&limit={}&pretty={}",
                    s.url(&path),
                    encode(q),
                    encode(q),
                    encode(q)
                ),
                None => s.url(&path),
            };
            let (status, content_type, bytes) = rt.block_on(async {
                let method = Method::from_bytes(op.method.as_bytes()).unwrap();
                let mut req = s.client.request(method, &url);
                match &auth {
                    Auth::None => {}
                    Auth::Valid if path.starts_with("/api/v2/") => req = req.bearer_auth(&manager),
                    Auth::Valid => req = req.bearer_auth(&sa_token),
                    Auth::Raw(h) => req = req.header("Authorization", h),
                }
                if let Some((ct, b)) = &body {
                    req = req.header("Content-Type", ct).body(b.clone());
                }
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                (status, ct, r.bytes().await.unwrap())
            });
            *seen.borrow_mut().entry(status).or_default() += 1;
            prop_assert_ne!(
                status,
                500,
                "{} {} -> 500: {}",
                op.method,
                url,
                String::from_utf8_lossy(&bytes)
            );
            if status != 405 && status != 413 {
                // An empty id makes another path; the edge treats a trailing slash as optional.
                // Judge by the operation the request reached; a path that reaches none is a 404.
                let trimmed = path.trim_end_matches('/');
                let reached = spec
                    .operation_for(&op.method, &path)
                    .or_else(|| spec.operation_for(&op.method, trimmed))
                    .or_else(|| spec.operation_for(&op.method, &format!("{trimmed}/")));
                let Some(reached) = reached else {
                    // No such operation: authentication comes first on the protected prefixes,
                    // then 404 (no path) or 405 (another method); always an ApiError.
                    prop_assert!(
                        [401, 404, 405].contains(&status),
                        "{} {url} reaches no operation: {status}",
                        op.method
                    );
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    prop_assert_eq!(v["error"].as_u64(), Some(u64::from(status)));
                    return Ok(());
                };
                let verdict = spec.check_response(reached, status, content_type.as_deref(), &bytes);
                prop_assert!(
                    verdict.is_ok(),
                    "{} {url} with {auth:?}: {}; body {}",
                    op.method,
                    verdict.unwrap_err(),
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(())
        })
        .unwrap();
    // Not vacuous: the cases got past authentication and into the handlers' own answers.
    let seen = seen.into_inner();
    eprintln!("statuses seen: {seen:?}");
    for status in [200, 400, 401, 404] {
        assert!(seen.contains_key(&status), "no {status} among {seen:?}");
    }
    rt.block_on(s.stop());
}
