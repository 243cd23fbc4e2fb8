//! The mock as its users drive it: every documented status of real documents (ours, the Atlas
//! reference subset, the full Atlas document) answered with a body valid against its schema, and
//! what Prism users expect (errors, CORS, preferences, content negotiation, forms, credentials,
//! base paths, several documents, reloading, proxy mode).

mod behaviour;
mod realworld;
mod support;

use invites_contract::Strictness;
use invites_mock::MockConfig;
use serde_json::Value;
use support::{build, mock_of, root, send, serve};

/// Sends every operation once per documented status and checks status and body.
async fn every_documented_status(file: std::path::PathBuf) -> usize {
    let (base, mock) = serve(mock_of(&file, MockConfig::default())).await;
    let contract = mock.contract();
    let client = reqwest::Client::new();
    let mut checked = 0;
    let mut broken = Vec::new();
    for op in contract.operations() {
        let built = build(&contract, op);
        for r in &op.responses {
            // 1xx statuses (the full Atlas document lists a 102) cannot be a final answer.
            let Some(status) = r.status.filter(|s| *s >= 200) else {
                continue;
            };
            let resp = send(
                &client,
                &base,
                &op.method,
                &built,
                &[("Prefer", format!("code={status}"))],
            )
            .await;
            assert_eq!(
                resp.status().as_u16(),
                status,
                "{} Prefer code={status}: {:?}",
                op.id,
                resp.headers().get("x-mock-violation")
            );
            assert_eq!(resp.headers()["x-mock-operation"], op.id.as_str());
            let content_type = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = resp.bytes().await.unwrap();
            if let (Some(media), Some(ct)) = (r.media(), &content_type) {
                assert_eq!(ct, &media.media_type, "{} {status}", op.id);
                if let (Some(schema), true) = (media.schema, ct.contains("json")) {
                    if status != 204 && !bytes.is_empty() {
                        let body: Value = serde_json::from_slice(&bytes).unwrap();
                        let unsatisfiable = !contract.schemas().satisfiable(schema);
                        if let (Err(v), false) = (
                            contract
                                .schemas()
                                .validate(schema, &body, "body", Strictness::Exact),
                            unsatisfiable,
                        ) {
                            broken.push(format!("{} {status}: {} {}", op.id, v.location, v.rule));
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(
        broken.is_empty(),
        "bodies that break their schema: {broken:#?}"
    );
    checked
}

#[tokio::test]
async fn our_spec_every_operation_every_status() {
    let n = every_documented_status(root().join("openapi/invites.json")).await;
    assert!(n > 100, "checked {n}");
}

#[tokio::test]
async fn atlas_reference_every_operation_every_status() {
    let n = every_documented_status(
        root().join("../shared/reference/atlas-v2-invitations.openapi.json"),
    )
    .await;
    // 12 operations, 80 documented (operation, status) pairs in all.
    assert_eq!(n, 80);
}

#[tokio::test]
async fn full_atlas_document_every_operation_every_status() {
    let n = every_documented_status(root().join("../shared/reference/atlas-v2-full.openapi.json"))
        .await;
    assert!(n > 2500, "checked {n}");
}
