//! A mock server driven only by an OpenAPI 3.0 document: it routes by the document's paths,
//! validates each request against its operation (parameters, body, security presence), and answers
//! a documented response (its example, or one synthesized from the schema).
//!
//! Everything is prepared once at start ([`Mock::from_json`]): a routing trie over the path
//! templates, compiled schemas, and every response serialized to bytes, so answering costs the same
//! on a 540-operation document as on a small one. Clients pick responses with Prism's conventions,
//! `Prefer: code=404` and `Prefer: example=name`; `X-Mock-Operation` says which operation matched.

mod document;
mod schema;
mod server;

use std::fmt;

pub use document::{Operation, Param, ParamIn, Prepared, PreparedResponse};
pub use schema::{Schema, Violation};

/// Why a document cannot be served, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// A JSON pointer into the document (`#/paths/~1a/get/responses/200`).
    pub at: String,
    pub message: String,
}

impl LoadError {
    pub(crate) fn at(at: &str, message: impl Into<String>) -> Self {
        LoadError {
            at: at.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for LoadError {}

/// A prepared mock of one document; a poem endpoint.
#[derive(Debug)]
pub struct Mock {
    prepared: Prepared,
}

impl Mock {
    /// Prepares a document given as JSON text.
    pub fn from_json(text: &str) -> Result<Mock, LoadError> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| LoadError::at("#", format!("not a JSON document: {e}")))?;
        Ok(Mock {
            prepared: document::prepare(&doc)?,
        })
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

    /// Checks an observed response against what `op` documents: the status is listed, and the
    /// body is absent when none is documented, else in the documented media type and valid
    /// against its schema. Used by the conformance suite to judge a real server by the document.
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
        let Some(media) = &documented.media_type else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} {status} documents no body, got {} bytes",
                    op.id,
                    body.len()
                ))
            };
        };
        let essence = |m: &str| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        let got = content_type.map(essence).unwrap_or_default();
        if got != essence(media) {
            return Err(format!(
                "{} {status}: Content-Type {got:?}, documented {media:?}",
                op.id
            ));
        }
        let Some(schema) = &documented.schema else {
            return Ok(());
        };
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("{} {status}: the body is not JSON: {e}", op.id))?;
        schema
            .validate(&value, "body")
            .map_err(|v| format!("{} {status}: {} {}", op.id, v.location, v.rule))
    }
}
