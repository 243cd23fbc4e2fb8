//! Fuzz target: requests judged by the committed `openapi/invites.json` through
//! `invites_contract::Contract::route`, `check_security` and `check_request`, as the mock and the
//! conformance suite judge them. The input is a request as text: `METHOD TARGET`, header lines,
//! an empty line, the body (the shape of an HTTP/1.1 request, so the seeds are the conformance
//! suite's requests). Never panics.

#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use invites_contract::{check_security, pairs, path_values, Contract, RequestParts, Route};
use libfuzzer_sys::fuzz_target;

static DOCUMENT: &str = include_str!("../../openapi/invites.json");

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract::from_json(DOCUMENT).expect("the committed document loads"))
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let contract = contract();
    let path = path.strip_prefix(contract.base_path()).unwrap_or(path);
    let _ = pairs(query);
    let req = RequestParts {
        path,
        query,
        headers: &headers,
        body,
    };
    match contract.route(path, method) {
        Route::Found(i) => {
            let op = &contract.operations()[i];
            let _ = path_values(&op.template, path);
            let _ = check_security(op, &req);
            let _ = contract.check_request(op, &req);
        }
        Route::WrongMethod(allowed) => assert!(!allowed.is_empty(), "{method} {path}"),
        Route::NotFound => {}
    }
    if let Some(op) = contract.operation_for(method, path) {
        let _ = contract.check_request(op, &req);
    }
});
