//! The mock on documents nobody here wrote (`shared/realworld-openapi/` and the full Atlas
//! document): every one loads, every documented response of every operation is answered with its
//! status and documented media type, and an invalid request per document gets the document's own
//! error answer. Every answer is also written to `target/mock-realworld/answers.jsonl`, where
//! `cargo xtask test` has an independent validator (Python's `openapi-schema-validator`) judge
//! each body by the document.

use std::io::Write;

use invites_contract::ParamIn;
use invites_mock::MockConfig;
use serde_json::{json, Value};

use crate::support::{build, mock_of, root, send, serve};

/// The documents: every file of `shared/realworld-openapi/`, DigitalOcean's from its root file,
/// and the full Atlas document.
fn documents() -> Vec<std::path::PathBuf> {
    let dir = root().join("../shared/realworld-openapi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .collect();
    files.sort();
    files.push(dir.join("digitalocean/specification/DigitalOcean-public.v2.yaml"));
    files.push(root().join("../shared/reference/atlas-v2-full.openapi.json"));
    files
}

/// How the invalid request of a document breaks it.
#[derive(Debug)]
enum Invalid {
    /// A required query parameter left out.
    Query(String),
    /// A required body left out.
    NoBody,
    /// A body in a media type the operation does not take.
    MediaType,
}

/// One answer, for the independent judge: the document, where the response is documented, and
/// what was sent back.
fn record(
    doc: &std::path::Path,
    op: &invites_contract::Operation,
    code: &str,
    media: &str,
    body: &[u8],
) -> Value {
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    json!({
        "document": doc.canonicalize().unwrap(),
        "operation": op.id,
        "method": op.method.to_ascii_lowercase(),
        "template": op.path_key,
        "code": code,
        "media": media,
        "body": body,
    })
}

#[tokio::test]
async fn every_realworld_document_every_documented_response() {
    let out_dir = root().join("target/mock-realworld");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(out_dir.join("answers.jsonl")).unwrap());
    // Documented 3xx answers carry a Location: the client reports them, it does not follow.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for doc in documents() {
        let name = doc.file_name().unwrap().to_string_lossy().into_owned();
        let (base, mock) = serve(mock_of(&doc, MockConfig::default())).await;
        let contract = mock.contract();
        let mut answered = 0;
        for op in contract.operations() {
            let built = build(&contract, op);
            for r in &op.responses {
                // Prism's convention: a range or `default` answers the code asked for.
                let status = match (r.status, r.range) {
                    (Some(s), _) => s,
                    (None, Some(d)) => d * 100,
                    (None, None) => 599,
                };
                if status < 200 {
                    continue;
                }
                let resp = send(
                    &client,
                    &base,
                    &op.method,
                    &built,
                    &[("Prefer", format!("code={status}"))],
                )
                .await;
                let got = resp.status().as_u16();
                let ct = resp
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned());
                let rule = resp
                    .headers()
                    .get("x-mock-violation")
                    .map(|v| v.to_str().unwrap().to_owned());
                let bytes = resp.bytes().await.unwrap();
                if got != status {
                    failures.push(format!(
                        "{name} {} Prefer code={status}: got {got} ({rule:?})",
                        op.id
                    ));
                    continue;
                }
                answered += 1;
                let code = r
                    .status
                    .map(|s| s.to_string())
                    .or(r.range.map(|d| format!("{d}XX")))
                    .unwrap_or_else(|| "default".into());
                if let (Some(media), false) = (&ct, bytes.is_empty()) {
                    let documented = r.contents.iter().any(|c| c.media_type == *media);
                    if !documented {
                        failures.push(format!(
                            "{name} {} {status}: undocumented Content-Type {media}",
                            op.id
                        ));
                    }
                    let line = record(&doc, op, &code, media, &bytes);
                    writeln!(out, "{line}").unwrap();
                }
            }
        }
        // An invalid request: a required query parameter left out, else a required body left
        // out, else a body in a media type the first operation does not take.
        let invalid = contract.operations().iter().find_map(|op| {
            let p = op
                .params
                .iter()
                .find(|p| p.required && p.location == ParamIn::Query)?;
            Some((op, Invalid::Query(p.name.clone())))
        });
        let invalid = invalid
            .or_else(|| {
                contract
                    .operations()
                    .iter()
                    .find(|op| op.body_required)
                    .map(|op| (op, Invalid::NoBody))
            })
            .or_else(|| {
                contract
                    .operations()
                    .first()
                    .map(|op| (op, Invalid::MediaType))
            });
        let mut invalid_answer = String::from("none (the document describes no operation)");
        if let Some((op, what)) = invalid {
            let mut built = build(&contract, op);
            match &what {
                Invalid::Query(name) => built.query.retain(|(k, _)| k != name),
                Invalid::NoBody => built.body = None,
                Invalid::MediaType => {
                    built.body = Some(("application/x-unheard-of".into(), b"?".to_vec()))
                }
            }
            let resp = send(&client, &base, &op.method, &built, &[]).await;
            let got = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let violation = resp
                .headers()
                .get("x-mock-violation")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = resp.bytes().await.unwrap();
            let (documented, expected): (Option<&invites_contract::PreparedResponse>, &[u16]) =
                match what {
                    Invalid::MediaType => (op.exact(415), &[415]),
                    _ => (
                        op.exact(422)
                            .or_else(|| op.exact(400))
                            .or_else(|| op.range(4))
                            .or_else(|| op.default()),
                        &[422, 400],
                    ),
                };
            match documented {
                Some(r) => {
                    let code = r
                        .status
                        .map(|s| s.to_string())
                        .or(r.range.map(|d| format!("{d}XX")))
                        .unwrap_or_else(|| "default".into());
                    if let (Some(media), false) = (&ct, bytes.is_empty()) {
                        writeln!(out, "{}", record(&doc, op, &code, media, &bytes)).unwrap();
                    }
                }
                None => {
                    if ct.as_deref() != Some("application/problem+json") {
                        failures.push(format!("{name} {} ({what:?}): got {ct:?}", op.id));
                    }
                }
            }
            if !expected.contains(&got) {
                failures.push(format!("{name} {} ({what:?}): got {got}", op.id));
            }
            if violation.is_none() {
                failures.push(format!("{name} {} ({what:?}): no X-Mock-Violation", op.id));
            }
            invalid_answer = format!("{} ({what:?}) -> {got}", op.id);
        }
        report.push(format!(
            "{name}: {} operations, {answered} documented responses answered; invalid request: {invalid_answer}",
            contract.operations().len()
        ));
    }
    out.flush().unwrap();
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.len(), 26, "every document was served");
}
