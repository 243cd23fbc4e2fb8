//! Fuzz target: an OpenAPI document as text (JSON or YAML, by content) through
//! `invites_contract::Contract::from_text`: the YAML builder's limits on depth and aliases, the
//! `$ref` resolution, the schema compiler and the preparation of every response. Never panics;
//! `cargo xtask fuzz` runs it with libFuzzer's `-timeout=` and `-rss_limit_mb=`, so an input that
//! hangs or takes too much memory is a finding too. What loads is routed, and
//! an empty request is checked against each operation.

#![no_main]

use http::HeaderMap;
use invites_contract::{check_security, path_values, Contract, RequestParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(contract) = Contract::from_text(text, "fuzz.yaml") else {
        return;
    };
    let _ = (contract.title(), contract.base_path(), contract.warnings());
    let headers = HeaderMap::new();
    for op in contract.operations() {
        let _ = contract.route(&op.template, &op.method.to_ascii_uppercase());
        let _ = path_values(&op.template, &op.template);
        // A bare request to the template itself: what the mock does with an empty request.
        let req = RequestParts {
            path: &op.template,
            query: "",
            headers: &headers,
            body: b"",
        };
        let _ = check_security(op, &req);
        let _ = contract.check_request(op, &req);
        let _ = op.default_response();
        for r in &op.responses {
            let _ = r.media();
        }
    }
});
