//! Fuzz target: the synthesizer of `invites-contract` (what the mock answers with when a document
//! has no example) on every schema of the committed `openapi/invites.json`: parameters, request
//! bodies and responses. The input chooses the schema, the kind of value (response, request, or
//! varied by a seed as the mock's `--dynamic` answers) and the seed. Property: the value made
//! validates against its own schema with the project's validator (as a response: exactly one
//! `oneOf` branch; as a request: the request rules), unless no value satisfies the schema.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use invites_contract::{Contract, SchemaId, Strictness};
use libfuzzer_sys::fuzz_target;

static DOCUMENT: &str = include_str!("../../openapi/invites.json");

/// The document, prepared once, and every schema it uses, in document order.
fn prepared() -> &'static (Contract, Vec<SchemaId>) {
    static PREPARED: OnceLock<(Contract, Vec<SchemaId>)> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let contract = Contract::from_json(DOCUMENT).expect("the committed document loads");
        let mut ids = Vec::new();
        for op in contract.operations() {
            let params = op.params.iter().filter_map(|p| p.schema);
            let bodies = op.body.iter().filter_map(|m| m.schema);
            let responses = op
                .responses
                .iter()
                .flat_map(|r| r.contents.iter().filter_map(|c| c.schema));
            for id in params.chain(bodies).chain(responses) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        assert!(!ids.is_empty(), "the document names no schema");
        (contract, ids)
    })
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Response,
    Request,
    Dynamic(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    schema: u16,
    kind: Kind,
}

fuzz_target!(|input: Input| {
    let (contract, ids) = prepared();
    let schemas = contract.schemas();
    let id = ids[usize::from(input.schema) % ids.len()];
    if !schemas.satisfiable(id) {
        return;
    }
    let (value, strictness) = match input.kind {
        Kind::Response => (schemas.example(id), Strictness::Exact),
        Kind::Request => (schemas.request_example(id), Strictness::Lenient),
        Kind::Dynamic(seed) => (schemas.dynamic_example(id, seed), Strictness::Exact),
    };
    if let Err(v) = schemas.validate(id, &value, "value", strictness) {
        panic!(
            "schema {} of {}: the synthesized {value} breaks it: {} {}",
            usize::from(input.schema) % ids.len(),
            ids.len(),
            v.location,
            v.rule
        );
    }
});
