//! Real documents through the contract: each loads (JSON, YAML, many files), and every value the
//! synthesizer makes for a request or a response validates against its own schema.

mod hostile;

use std::path::PathBuf;

use invites_contract::{Contract, LoadOptions, Strictness};
use serde_json::Value;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Every synthesized request body and response body of a document that breaks its schema
/// (schemas no value satisfies aside).
fn broken_examples(contract: &Contract) -> Vec<String> {
    let schemas = contract.schemas();
    let mut broken = Vec::new();
    for op in contract.operations() {
        for m in &op.body {
            if let Some(s) = m.schema {
                let v = schemas.request_example(s);
                if let Err(e) = schemas.validate(s, &v, "body", Strictness::Lenient) {
                    broken.push(format!(
                        "{} request {}: {} {}",
                        op.id, m.media_type, e.location, e.rule
                    ));
                }
            }
        }
        for r in &op.responses {
            for c in &r.contents {
                let (Some(s), Some(body)) = (c.schema, &c.body) else {
                    continue;
                };
                if !schemas.satisfiable(s) || !c.media_type.contains("json") {
                    continue;
                }
                let v: Value = serde_json::from_slice(body).unwrap();
                if let Err(e) = schemas.validate(s, &v, "body", Strictness::Exact) {
                    broken.push(format!(
                        "{} {:?}: {} {}",
                        op.id, r.status, e.location, e.rule
                    ));
                }
            }
        }
    }
    broken
}

fn check(path: PathBuf) {
    let contract = Contract::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let broken = broken_examples(&contract);
    assert!(
        broken.is_empty(),
        "{}: {} synthesized bodies break their schema: {broken:#?}",
        path.display(),
        broken.len()
    );
}

#[test]
fn atlas_full() {
    check(shared().join("reference/atlas-v2-full.openapi.json"));
}

/// Every file of `shared/realworld-openapi/` (the DigitalOcean document from its root file).
fn realworld() -> Vec<PathBuf> {
    let dir = shared().join("realworld-openapi");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .collect();
    files.sort();
    files.push(dir.join("digitalocean/specification/DigitalOcean-public.v2.yaml"));
    files
}

#[test]
fn every_realworld_document_loads_and_its_examples_validate() {
    let mut failures = Vec::new();
    for path in realworld() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match Contract::load(&path, &LoadOptions::default()) {
            Ok(contract) => {
                let broken = broken_examples(&contract);
                if !broken.is_empty() {
                    failures.push(format!(
                        "{name}: {} broken: {:#?}",
                        broken.len(),
                        &broken[..broken.len().min(8)]
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: does not load: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
