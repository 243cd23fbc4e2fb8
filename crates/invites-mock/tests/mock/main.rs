//! The mock serving real documents: ours, the Atlas reference subset and the full Atlas document.
//! For every operation and every documented status, `Prefer: code=` returns that status with a body
//! valid against the documented schema.

use std::path::PathBuf;
use std::sync::Arc;

use invites_mock::{Mock, ParamIn};
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn serve(mock: Mock) -> (String, Arc<Mock>) {
    let mock = Arc::new(mock);
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let served = mock.clone();
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run(ArcEndpoint(served))
            .await
    });
    (format!("http://{addr}"), mock)
}

struct ArcEndpoint(Arc<Mock>);

impl poem::Endpoint for ArcEndpoint {
    type Output = poem::Response;
    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        self.0.call(req).await
    }
}

/// Percent-encodes everything but unreserved characters, for a path segment.
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sends every operation once per documented status and checks status and body.
async fn every_documented_status(file: PathBuf) -> usize {
    let doc = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (base, mock) = serve(Mock::from_json(&doc).unwrap()).await;
    let client = reqwest::Client::new();
    let mut checked = 0;
    for op in mock.operations() {
        let mut path = op.template.clone();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for p in &op.params {
            let example = p
                .schema
                .as_ref()
                .map(|s| s.request_example())
                .unwrap_or_else(|| "x".into());
            let value = text(&example);
            match p.location {
                ParamIn::Path => path = path.replace(&format!("{{{}}}", p.name), &encode(&value)),
                ParamIn::Query if p.required => match example.as_array() {
                    Some(items) => query.extend(items.iter().map(|i| (p.name.clone(), text(i)))),
                    None => query.push((p.name.clone(), value)),
                },
                ParamIn::Header if p.required => headers.push((p.name.clone(), value)),
                _ => {}
            }
        }
        for r in &op.responses {
            // 1xx statuses (the full Atlas document lists a 102) cannot be a final answer.
            let Some(status) = r.status.filter(|s| *s >= 200) else {
                continue;
            };
            let mut req = client
                .request(op.method.parse().unwrap(), format!("{base}{path}"))
                .query(&query)
                .header("Authorization", "Bearer mock")
                .header("Prefer", format!("code={status}"));
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if let (Some(schema), Some(media)) = (
                &op.body_schema,
                op.body_media_types.iter().find(|m| m.contains("json")),
            ) {
                req = req
                    .header("Content-Type", media.as_str())
                    .body(serde_json::to_vec(&schema.request_example()).unwrap());
            } else if let Some(media) = op.body_media_types.first() {
                // A non-JSON body (a form): any non-empty body is present.
                req = req
                    .header("Content-Type", media.as_str())
                    .body("grant_type=client_credentials");
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.status().as_u16(),
                status,
                "{} Prefer code={status}: {:?}",
                op.id,
                resp.headers().get("x-mock-violation")
            );
            assert_eq!(resp.headers()["x-mock-operation"], op.id.as_str());
            let bytes = resp.bytes().await.unwrap();
            if let Some(schema) = &r.schema {
                if status != 204 && !bytes.is_empty() {
                    let body: Value = serde_json::from_slice(&bytes).unwrap();
                    if let Err(v) = schema.validate(&body, "body") {
                        panic!(
                            "{} {status}: body does not match its schema: {} {}",
                            op.id, v.location, v.rule
                        );
                    }
                }
            }
            checked += 1;
        }
    }
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

#[tokio::test]
async fn requests_that_break_the_contract_get_400_or_422_saying_why() {
    let doc = std::fs::read_to_string(root().join("openapi/invites.json")).unwrap();
    let (base, _) = serve(Mock::from_json(&doc).unwrap()).await;
    let client = reqwest::Client::new();
    // No credentials: the documented 401.
    let r = client
        .delete(format!(
            "{base}/api/atlas/v2/orgs/32b6e34b3d91647abb20e7b8/invites/x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A path id off its pattern, where 400 is documented: 400 naming the rule.
    let r = client
        .delete(format!("{base}/api/atlas/v2/orgs/NOPE/invites/x"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["x-mock-violation"]
        .to_str()
        .unwrap()
        .starts_with("path.orgId must match the pattern"));
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("path.orgId"));
    // A missing required body: the documented 400 of the community removal.
    let r = client
        .delete(format!("{base}/api/v2/group/1/invite/"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-mock-violation"], "body is required");
    // Unknown path 404, known path wrong method 405 with Allow.
    assert_eq!(
        client
            .get(format!("{base}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = client
        .put(format!("{base}/api/v2/group/1/invite/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "DELETE, GET, POST");
    // An undocumented Prefer code: 422 saying so.
    let r = client
        .get(format!("{base}/health"))
        .header("Prefer", "code=418")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn the_full_atlas_document_prepares_quickly_enough_to_test() {
    let doc =
        std::fs::read_to_string(root().join("../shared/reference/atlas-v2-full.openapi.json"))
            .unwrap();
    let mock = Mock::from_json(&doc).unwrap();
    assert_eq!(mock.operations().len(), 540);
}

#[test]
fn check_response_judges_observed_answers_by_the_document() {
    let text = std::fs::read_to_string(root().join("openapi/invites.json")).unwrap();
    let mock = Mock::from_json(&text).unwrap();
    let op = mock
        .operation_for(
            "delete",
            "/api/atlas/v2/orgs/5e0000000000000000000a01/invites/5e0000000000000000000102",
        )
        .expect("routed");
    assert_eq!(op.id, "deleteOrgInvite");
    let vnd = Some("application/vnd.atlas.2023-01-01+json");
    assert_eq!(mock.check_response(op, 204, vnd, b""), Ok(()));
    let not_found = br#"{"detail":"d","error":404,"errorCode":"INVITATION_NOT_FOUND","parameters":[],"reason":"Not Found"}"#;
    let json = Some("application/json");
    assert_eq!(mock.check_response(op, 404, json, not_found), Ok(()));
    let err = mock.check_response(op, 418, vnd, b"").unwrap_err();
    assert!(err.contains("418 is not documented"), "{err}");
    let err = mock
        .check_response(op, 404, Some("text/plain"), not_found)
        .unwrap_err();
    assert!(err.contains("Content-Type"), "{err}");
    let err = mock
        .check_response(op, 404, json, br#"{"error":"404"}"#)
        .unwrap_err();
    assert!(err.contains("body"), "{err}");
    assert!(
        mock.check_response(op, 204, vnd, b"{}").is_err(),
        "a 204 has no body"
    );
    assert!(mock.operation_for("GET", "/nowhere").is_none());
}
