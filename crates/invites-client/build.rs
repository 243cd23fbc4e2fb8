//! Generates the client from the committed `openapi/invites.json` with progenitor at build time,
//! so the client can never drift from the document (no generated code is committed).
//!
//! progenitor types `application/json` bodies only, so the document is adapted first, in memory
//! and without changing any shape: the Atlas vendor media type and `application/json;
//! charset=utf-8` are read as `application/json` (the hooks in `src/hooks.rs` put the vendor
//! type back on the wire), and where a request body is offered both as JSON and as a form, the
//! client sends JSON. Each adaptation is listed in the crate's README under "Gaps".

use std::path::PathBuf;

use serde_json::Value;

/// The vendor media type of the Atlas family, and what progenitor understands.
const ATLAS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";
const JSON: &str = "application/json";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let spec_path = manifest.join("../../openapi/invites.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let text = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", spec_path.display()));
    let mut doc: Value = serde_json::from_str(&text).expect("openapi/invites.json is JSON");
    adapt(&mut doc);
    let spec: openapiv3::OpenAPI =
        serde_json::from_value(doc).expect("openapi/invites.json is OpenAPI 3.0");

    let mut settings = progenitor_impl::GenerationSettings::default();
    settings
        .with_interface(progenitor_impl::InterfaceStyle::Positional)
        .with_inner_type(quote::quote!(crate::hooks::Auth));
    let mut generator = progenitor_impl::Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor cannot generate a client: {e}"));
    let file: syn::File = syn::parse2(tokens).expect("progenitor's output parses");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("codegen.rs");
    std::fs::write(&out, prettyplease::unparse(&file)).expect("writing the generated client");
}

/// Renames the media types progenitor does not type to `application/json` and keeps only the
/// JSON alternative of a request body that also has a form.
fn adapt(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            if let Some(content) = op
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            {
                rename_json(content);
                if content.contains_key(JSON) {
                    content.retain(|k, _| k == JSON);
                }
            }
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                for response in responses.values_mut() {
                    if let Some(content) =
                        response.get_mut("content").and_then(Value::as_object_mut)
                    {
                        rename_json(content);
                    }
                }
            }
        }
    }
}

fn rename_json(content: &mut serde_json::Map<String, Value>) {
    let keys: Vec<String> = content.keys().cloned().collect();
    for key in keys {
        if key == ATLAS_MEDIA_TYPE || key.starts_with("application/json;") {
            let value = content.remove(&key).expect("listed");
            content.insert(JSON.to_owned(), value);
        }
    }
}
