//! Every request and response body of the generated document carries an example, and each
//! example validates against its schema (checked by `invites-contract`, the validator the mock
//! and the conformance suite judge answers with).

use invites_contract::{Contract, Strictness};
use serde_json::Value;

#[test]
fn every_body_has_an_example_that_validates() {
    let text = invites_api::spec_json();
    let raw: Value = serde_json::from_str(&text).unwrap();
    let contract = Contract::from_json(&text).unwrap();
    let schemas = contract.schemas();
    let (mut checked, mut missing, mut invalid) = (0, Vec::new(), Vec::new());
    for op in contract.operations() {
        let at = format!("{} {}", op.method.to_ascii_uppercase(), op.path_key);
        let raw_op = &raw["paths"][&op.path_key][op.method.to_ascii_lowercase()];
        let mut judge = |place: String, example: &Value, schema| match (example, schema) {
            (Value::Null, _) => missing.push(place),
            (_, Some(id)) => {
                checked += 1;
                if let Err(v) = schemas.validate(id, example, "", Strictness::Exact) {
                    invalid.push(format!("{place}: {v:?}"));
                }
            }
            (_, None) => missing.push(format!("{place} (no schema)")),
        };
        for media in &op.body {
            let example = &raw_op["requestBody"]["content"][&media.media_type]["example"];
            judge(
                format!("{at} request {}", media.media_type),
                example,
                media.schema,
            );
        }
        for response in &op.responses {
            let status = response.status.expect("our document lists exact statuses");
            for media in &response.contents {
                let example = &raw_op["responses"][status.to_string()]["content"]
                    [&media.media_type]["example"];
                judge(
                    format!("{at} {status} {}", media.media_type),
                    example,
                    media.schema,
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "bodies without an example: {missing:#?}"
    );
    assert!(
        invalid.is_empty(),
        "examples their schema refuses: {invalid:#?}"
    );
    // 186 bodies when this test was written; fewer means the walk above lost some.
    assert!(checked >= 186, "only {checked} examples checked");
}

#[test]
fn error_examples_say_their_own_status() {
    let raw: Value = serde_json::from_str(&invites_api::spec_json()).unwrap();
    let mut seen = 0;
    for (path, item) in raw["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let Ok(code) = status.parse::<u16>() else {
                    continue;
                };
                for media in response["content"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    if code >= 400 {
                        seen += 1;
                        assert_eq!(
                            media["example"]["error"].as_u64(),
                            Some(u64::from(code)),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
    assert!(seen > 100, "{seen}");
}
