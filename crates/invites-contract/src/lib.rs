//! An OpenAPI document (3.0 or 3.1; JSON or YAML; one file or many joined by `$ref`s) prepared
//! once for routing, validating and synthesizing: what `invites mock` serves and what the
//! conformance suite judges a real server by.
//!
//! [`Contract::load`] reads the files ([`load`]), builds a routing trie over the path templates,
//! compiles every schema into one arena ([`schema`]), and serializes every documented response to
//! bytes (its example when it validates, or one synthesized from the schema), so answering costs
//! the same on a 600-operation document as on a small one. No HTTP server here: the mock
//! (`invites-mock`) is one on top of it.

mod document;
pub mod load;
pub mod media;
pub mod remote;
mod request;
pub mod schema;
pub mod yaml;

use std::fmt;
use std::path::Path;

pub use document::{
    Credential, Operation, Param, ParamIn, PreparedResponse, RequestMedia, ResponseMedia, Route,
    Style,
};
pub use load::{LoadOptions, Sources};
pub use request::{check_security, form_decode, pairs, path_values, Problem, RequestParts};
pub use schema::{SchemaId, Schemas, Strictness, Violation};

/// Why a document cannot be served, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file, when known (the root document's path as given, or a referenced file's path
    /// relative to the root's folder).
    pub file: Option<String>,
    /// A JSON pointer into that file (`#/paths/~1a/get/responses/200`), or a referenced file's
    /// place (`models.yml#/Pet`).
    pub at: String,
    pub message: String,
}

impl LoadError {
    pub(crate) fn at(at: &str, message: impl Into<String>) -> Self {
        LoadError {
            file: None,
            at: at.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn in_file(file: &str, at: &str, message: impl Into<String>) -> Self {
        LoadError {
            file: Some(file.to_owned()),
            at: at.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            // A place in a referenced file names that file itself.
            Some(file) if self.at.starts_with('#') => {
                write!(f, "{file}{}: {}", self.at, self.message)
            }
            _ => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

impl std::error::Error for LoadError {}

/// One document, prepared.
#[derive(Debug)]
pub struct Contract {
    prepared: document::Prepared,
    /// The files read, for reloading when one changes.
    files: Vec<std::path::PathBuf>,
}

impl Contract {
    /// Prepares a document given as JSON text (it may refer only to itself).
    pub fn from_json(text: &str) -> Result<Contract, LoadError> {
        Self::from_text(text, "document")
    }

    /// Prepares a document given as JSON or YAML text, named `name` in errors.
    pub fn from_text(text: &str, name: &str) -> Result<Contract, LoadError> {
        let sources = Sources::from_text(text, name)?;
        Self::from_sources(&sources)
    }

    /// Reads the document at `path` (JSON or YAML, by content) and every file its references
    /// reach, and prepares it.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Contract, LoadError> {
        let sources = Sources::load(path, options)?;
        Self::from_sources(&sources)
    }

    fn from_sources(sources: &Sources) -> Result<Contract, LoadError> {
        let root = sources.files[0].name.clone();
        let prepared = document::prepare(sources).map_err(|mut e| {
            if e.file.is_none() {
                e.file = Some(root);
            }
            e
        })?;
        Ok(Contract {
            prepared,
            files: sources
                .files
                .iter()
                .filter_map(|f| f.path.clone())
                .collect(),
        })
    }

    /// The files the document was read from (empty for text).
    pub fn files(&self) -> &[std::path::PathBuf] {
        &self.files
    }

    /// The document's `info.title`.
    pub fn title(&self) -> &str {
        &self.prepared.title
    }

    /// The path of the document's first server (`/v2`), or empty.
    pub fn base_path(&self) -> &str {
        &self.prepared.base_path
    }

    /// What the document describes that is not served (callbacks, links, webhooks, operations
    /// that repeat a method and path).
    pub fn warnings(&self) -> &[String] {
        &self.prepared.warnings
    }

    /// The compiled schemas.
    pub fn schemas(&self) -> &Schemas {
        &self.prepared.schemas
    }

    /// Where a request goes: an operation's index, the methods a known path allows, or nothing.
    /// `path` is without the base path.
    pub fn route(&self, path: &str, method: &str) -> Route<'_> {
        self.prepared.router.route(path, method)
    }

    /// The operations served, in document order.
    pub fn operations(&self) -> &[Operation] {
        &self.prepared.operations
    }

    /// The operation a request goes to: `path` without its query string, method in any case.
    pub fn operation_for(&self, method: &str, path: &str) -> Option<&Operation> {
        match self
            .prepared
            .router
            .route(path, &method.to_ascii_uppercase())
        {
            document::Route::Found(i) => self.prepared.operations.get(i),
            _ => None,
        }
    }

    /// Checks a request's parameters and body against its operation (credentials are
    /// [`check_security`]'s).
    pub fn check_request(&self, op: &Operation, req: &RequestParts) -> Result<(), Problem> {
        request::check_request(&self.prepared.schemas, op, req)
    }

    /// Checks an observed response against what `op` documents: the status is listed, and the
    /// body is absent when none is documented, else in a documented media type and valid
    /// against its schema. Used by the conformance suite and the mock's proxy mode to judge a
    /// real server by the document.
    pub fn check_response(
        &self,
        op: &Operation,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let documented = op
            .response(status)
            .ok_or_else(|| format!("status {status} is not documented for {}", op.id))?;
        if documented.contents.is_empty() || status == 204 || status == 304 {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} {status} documents no body, got {} bytes",
                    op.id,
                    body.len()
                ))
            };
        }
        let got = content_type.map(media::essence).unwrap_or_default();
        let Some(content) = documented
            .contents
            .iter()
            .find(|c| media::essence(&c.media_type) == got)
            .or_else(|| {
                documented
                    .contents
                    .iter()
                    .find(|c| media::covers(&c.media_type, &got))
            })
        else {
            let listed: Vec<&str> = documented
                .contents
                .iter()
                .map(|c| c.media_type.as_str())
                .collect();
            return Err(format!(
                "{} {status}: Content-Type {got:?}, documented {}",
                op.id,
                listed.join(" or ")
            ));
        };
        let Some(schema) = content.schema else {
            return Ok(());
        };
        let value: serde_json::Value = if got == "application/json" || got.ends_with("+json") {
            serde_json::from_slice(body)
                .map_err(|e| format!("{} {status}: the body is not JSON: {e}", op.id))?
        } else if got.starts_with("text/") {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        } else {
            return Ok(());
        };
        self.prepared
            .schemas
            .validate(schema, &value, "body", Strictness::Lenient)
            .map_err(|v| format!("{} {status}: {} {}", op.id, v.location, v.rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn the_full_atlas_document_prepares_quickly_enough_to_test() {
        let doc =
            std::fs::read_to_string(root().join("../shared/reference/atlas-v2-full.openapi.json"))
                .unwrap();
        let contract = Contract::from_json(&doc).unwrap();
        assert_eq!(contract.operations().len(), 540);
    }

    #[test]
    fn check_response_judges_observed_answers_by_the_document() {
        let text = std::fs::read_to_string(root().join("openapi/invites.json")).unwrap();
        let contract = Contract::from_json(&text).unwrap();
        let op = contract
            .operation_for(
                "delete",
                "/api/atlas/v2/orgs/5e0000000000000000000a01/invites/5e0000000000000000000102",
            )
            .expect("routed");
        assert_eq!(op.id, "deleteOrgInvite");
        let vnd = Some("application/vnd.atlas.2023-01-01+json");
        assert_eq!(contract.check_response(op, 204, vnd, b""), Ok(()));
        let not_found = br#"{"detail":"d","error":404,"errorCode":"INVITATION_NOT_FOUND","parameters":[],"reason":"Not Found"}"#;
        let json = Some("application/json");
        assert_eq!(contract.check_response(op, 404, json, not_found), Ok(()));
        let err = contract.check_response(op, 418, vnd, b"").unwrap_err();
        assert!(err.contains("418 is not documented"), "{err}");
        let err = contract
            .check_response(op, 404, Some("text/plain"), not_found)
            .unwrap_err();
        assert!(err.contains("Content-Type"), "{err}");
        let err = contract
            .check_response(op, 404, json, br#"{"error":"404"}"#)
            .unwrap_err();
        assert!(err.contains("body"), "{err}");
        assert!(
            contract.check_response(op, 204, vnd, b"{}").is_err(),
            "a 204 has no body"
        );
        assert!(contract.operation_for("GET", "/nowhere").is_none());
    }
}
