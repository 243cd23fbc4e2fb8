//! Reads an OpenAPI 3.0 document into what the mock serves: a router over its path templates and,
//! per operation, the compiled request rules and every documented response prepared as bytes.
//! All of it happens once, at start; answering a request never walks the document.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::schema::{Compiler, Schema};
use crate::LoadError;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    pub schema: Option<Arc<Schema>>,
}

/// What a security requirement alternative needs to be present.
#[derive(Debug, Clone)]
pub enum Credential {
    AuthorizationHeader,
    Header(String),
    Query(String),
    Cookie(String),
}

/// One documented response, ready to send.
#[derive(Debug)]
pub struct PreparedResponse {
    /// The status, or None for `default`.
    pub status: Option<u16>,
    /// `4XX`-style ranges: the first digit.
    pub range: Option<u16>,
    pub media_type: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The body to send when no named example is asked for.
    pub body: Option<Bytes>,
    /// Named examples (`examples` map), in document order.
    pub examples: Vec<(String, Bytes)>,
    pub schema: Option<Arc<Schema>>,
}

#[derive(Debug)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub template: String,
    pub params: Vec<Param>,
    pub body_required: bool,
    /// JSON request body schema, if the operation takes JSON.
    pub body_schema: Option<Arc<Schema>>,
    pub body_media_types: Vec<String>,
    /// Alternatives: any one satisfied lets the request in; an empty alternative means optional.
    pub security: Vec<Vec<Credential>>,
    pub responses: Vec<PreparedResponse>,
}

impl Operation {
    /// The response for a status code, an exact match first, then its range, then `default`.
    pub fn response(&self, status: u16) -> Option<&PreparedResponse> {
        self.responses
            .iter()
            .find(|r| r.status == Some(status))
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|r| r.range == Some(status / 100))
            })
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|r| r.status.is_none() && r.range.is_none())
            })
    }

    /// The first documented 2xx, else the first documented response.
    pub fn default_response(&self) -> Option<&PreparedResponse> {
        self.responses
            .iter()
            .find(|r| r.status.is_some_and(|s| (200..300).contains(&s)) || r.range == Some(2))
            .or_else(|| self.responses.first())
    }
}

/// A path segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    /// `{name}`, possibly with a literal prefix and suffix (`{name}.json`).
    Param {
        prefix: String,
        suffix: String,
    },
}

#[derive(Debug, Default)]
struct Node {
    statics: HashMap<String, Node>,
    params: Vec<(String, String, Node)>,
    /// Method (upper case) to operation index.
    methods: HashMap<String, usize>,
    /// The template, for `Allow` and logs, when this node ends one.
    terminal: bool,
}

/// The routing trie: a lookup costs one step per path segment, whatever the document's size.
#[derive(Debug, Default)]
pub struct Router {
    root: Node,
}

/// What routing found.
pub enum Route<'a> {
    Found(usize),
    /// The path exists, not with this method; the allowed methods.
    WrongMethod(Vec<&'a str>),
    NotFound,
}

fn parse_template(t: &str) -> Vec<Segment> {
    t.split('/')
        .skip(1)
        .map(|s| match (s.find('{'), s.rfind('}')) {
            (Some(a), Some(b)) if a < b => Segment::Param {
                prefix: s[..a].to_owned(),
                suffix: s[b + 1..].to_owned(),
            },
            _ => Segment::Static(s.to_owned()),
        })
        .collect()
}

impl Router {
    fn insert(&mut self, template: &str, method: &str, index: usize) {
        let mut node = &mut self.root;
        for seg in parse_template(template) {
            node = match seg {
                Segment::Static(s) => node.statics.entry(s).or_default(),
                Segment::Param { prefix, suffix } => {
                    let pos = node
                        .params
                        .iter()
                        .position(|(p, s, _)| *p == prefix && *s == suffix);
                    let pos = pos.unwrap_or_else(|| {
                        // Keep the most specific first (`{name}:action` before `{name}`).
                        let at = node.params.partition_point(|(p, s, _)| {
                            p.len() + s.len() >= prefix.len() + suffix.len()
                        });
                        node.params.insert(at, (prefix, suffix, Node::default()));
                        at
                    });
                    &mut node.params[pos].2
                }
            };
        }
        node.terminal = true;
        node.methods.insert(method.to_ascii_uppercase(), index);
    }

    pub fn route(&self, path: &str, method: &str) -> Route<'_> {
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match find(&self.root, &segments) {
            Some(node) => match node.methods.get(method) {
                Some(i) => Route::Found(*i),
                None => {
                    let mut allowed: Vec<&str> = node.methods.keys().map(String::as_str).collect();
                    allowed.sort_unstable();
                    Route::WrongMethod(allowed)
                }
            },
            None => Route::NotFound,
        }
    }
}

fn find<'n>(node: &'n Node, segments: &[&str]) -> Option<&'n Node> {
    let Some((first, rest)) = segments.split_first() else {
        return node.terminal.then_some(node);
    };
    if let Some(found) = node.statics.get(*first).and_then(|n| find(n, rest)) {
        return Some(found);
    }
    node.params.iter().find_map(|(prefix, suffix, child)| {
        let fits = first.len() > prefix.len() + suffix.len()
            && first.starts_with(prefix.as_str())
            && first.ends_with(suffix.as_str());
        if fits {
            find(child, rest)
        } else {
            None
        }
    })
}

/// The whole document, prepared.
#[derive(Debug)]
pub struct Prepared {
    pub operations: Vec<Operation>,
    pub router: Router,
}

fn is_json(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json") || essence == "*/*"
}

fn header_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads and prepares a document; an error names the place it could not serve.
pub fn prepare(doc: &Value) -> Result<Prepared, LoadError> {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        return Err(LoadError::at(
            "#/openapi",
            format!("only OpenAPI 3.x documents are served, found {version:?}"),
        ));
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| LoadError::at("#/paths", "missing"))?;
    let mut compiler = Compiler::new(doc);
    let schemes = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object);
    let mut operations = Vec::new();
    let mut router = Router::default();
    // Bodies synthesized from a shared schema are made once and shared (`Bytes` clones share).
    let mut synthesized: HashMap<usize, Bytes> = HashMap::new();
    for (template, item) in paths {
        let at_path = format!("#/paths/{}", template.replace('~', "~0").replace('/', "~1"));
        let item = compiler.resolve(item, &at_path)?;
        let shared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{at_path}/{method}");
            let mut params: Vec<Param> = Vec::new();
            let own: Vec<&Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            for (i, p) in shared.iter().chain(own.iter()).enumerate() {
                let p = compiler.resolve(p, &format!("{at}/parameters/{i}"))?;
                let name = p.get("name").and_then(Value::as_str).ok_or_else(|| {
                    LoadError::at(&format!("{at}/parameters/{i}"), "parameter without a name")
                })?;
                let location = match p.get("in").and_then(Value::as_str) {
                    Some("path") => ParamIn::Path,
                    Some("query") => ParamIn::Query,
                    Some("header") => ParamIn::Header,
                    Some("cookie") => ParamIn::Cookie,
                    other => {
                        return Err(LoadError::at(
                            &format!("{at}/parameters/{i}"),
                            format!("unknown parameter location {other:?}"),
                        ))
                    }
                };
                let schema = match p.get("schema") {
                    Some(s) => Some(compiler.compile(s, &format!("{at}/parameters/{i}/schema"))?),
                    None => None,
                };
                let required = location == ParamIn::Path
                    || p.get("required").and_then(Value::as_bool).unwrap_or(false);
                // An operation's parameter overrides a path-level one of the same name and place.
                params.retain(|q| !(q.name == name && q.location == location));
                params.push(Param {
                    name: name.to_owned(),
                    location,
                    required,
                    schema,
                });
            }
            let (mut body_required, mut body_schema, mut body_media_types) =
                (false, None, Vec::new());
            if let Some(body) = op.get("requestBody") {
                let body = compiler.resolve(body, &format!("{at}/requestBody"))?;
                body_required = body
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if let Some(content) = body.get("content").and_then(Value::as_object) {
                    for (media, m) in content {
                        body_media_types.push(media.clone());
                        if body_schema.is_none() && is_json(media) {
                            if let Some(s) = m.get("schema") {
                                body_schema = Some(compiler.compile(
                                    s,
                                    &format!("{at}/requestBody/content/{media}/schema"),
                                )?);
                            }
                        }
                    }
                }
            }
            let requirements = op
                .get("security")
                .or_else(|| doc.get("security"))
                .and_then(Value::as_array);
            let mut security = Vec::new();
            for req in requirements.into_iter().flatten() {
                let mut alternative = Vec::new();
                for name in req.as_object().into_iter().flat_map(|o| o.keys()) {
                    let scheme = schemes.and_then(|s| s.get(name)).ok_or_else(|| {
                        LoadError::at(
                            &format!("{at}/security"),
                            format!("unknown security scheme {name:?}"),
                        )
                    })?;
                    let scheme = compiler
                        .resolve(scheme, &format!("#/components/securitySchemes/{name}"))?;
                    let key = scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    alternative.push(
                        match (
                            scheme.get("type").and_then(Value::as_str),
                            scheme.get("in").and_then(Value::as_str),
                        ) {
                            (Some("apiKey"), Some("header")) => Credential::Header(key),
                            (Some("apiKey"), Some("query")) => Credential::Query(key),
                            (Some("apiKey"), Some("cookie")) => Credential::Cookie(key),
                            _ => Credential::AuthorizationHeader,
                        },
                    );
                }
                security.push(alternative);
            }
            let mut responses = Vec::new();
            let documented = op
                .get("responses")
                .and_then(Value::as_object)
                .ok_or_else(|| LoadError::at(&at, "operation without responses"))?;
            for (code, r) in documented {
                let at_r = format!("{at}/responses/{code}");
                let r = compiler.resolve(r, &at_r)?;
                let (status, range) = match code.as_str() {
                    "default" => (None, None),
                    c if c.len() == 3 && c.ends_with("XX") => (None, c[..1].parse().ok()),
                    c => (
                        Some(
                            c.parse::<u16>()
                                .map_err(|_| LoadError::at(&at_r, "not a status code"))?,
                        ),
                        None,
                    ),
                };
                let mut headers = Vec::new();
                for (name, h) in r
                    .get("headers")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let h = compiler.resolve(h, &format!("{at_r}/headers/{name}"))?;
                    let value = match h.get("example") {
                        Some(e) => header_text(e),
                        None => match h.get("schema") {
                            Some(s) => header_text(
                                &compiler
                                    .compile(s, &format!("{at_r}/headers/{name}/schema"))?
                                    .example(),
                            ),
                            None => String::new(),
                        },
                    };
                    if !name.eq_ignore_ascii_case("content-type") {
                        headers.push((name.clone(), value));
                    }
                }
                let content = r.get("content").and_then(Value::as_object);
                let chosen = content.and_then(|c| {
                    c.iter()
                        .find(|(m, _)| is_json(m))
                        .or_else(|| c.iter().next())
                });
                let (mut media_type, mut body, mut examples, mut schema) =
                    (None, None, Vec::new(), None);
                if let Some((media, m)) = chosen {
                    media_type = Some(media.clone());
                    if let Some(s) = m.get("schema") {
                        schema =
                            Some(compiler.compile(s, &format!("{at_r}/content/{media}/schema"))?);
                    }
                    for (name, e) in m
                        .get("examples")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let e = compiler
                            .resolve(e, &format!("{at_r}/content/{media}/examples/{name}"))?;
                        if let Some(v) = e.get("value") {
                            examples.push((name.clone(), serialize(v)));
                        }
                    }
                    // The document's example when it matches the schema, else a synthesized body.
                    let fits =
                        |e: &Value| schema.as_ref().is_none_or(|s| s.validate(e, &at_r).is_ok());
                    let first_named = examples
                        .first()
                        .and_then(|(_, b)| serde_json::from_slice::<Value>(b).ok());
                    body = match (
                        m.get("example").filter(|e| fits(e)),
                        first_named.filter(|e| fits(e)),
                        &schema,
                    ) {
                        (Some(e), _, _) => Some(serialize(e)),
                        (None, Some(e), _) => Some(serialize(&e)),
                        (None, None, Some(s)) => Some(
                            synthesized
                                .entry(Arc::as_ptr(s) as usize)
                                .or_insert_with(|| serialize(&s.example()))
                                .clone(),
                        ),
                        (None, None, None) => m.get("example").map(serialize),
                    };
                }
                responses.push(PreparedResponse {
                    status,
                    range,
                    media_type,
                    headers,
                    body,
                    examples,
                    schema,
                });
            }
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
            router.insert(template, method, operations.len());
            operations.push(Operation {
                id,
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                params,
                body_required,
                body_schema,
                body_media_types,
                security,
                responses,
            });
        }
    }
    Ok(Prepared { operations, router })
}

fn serialize(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_by_segment_preferring_static_parts() {
        let mut r = Router::default();
        r.insert("/a/{id}/b", "get", 0);
        r.insert("/a/me/b", "get", 1);
        r.insert("/a/{id}/b", "delete", 2);
        r.insert("/x/{name}.json/", "get", 3);
        r.insert("/c/{name}", "get", 4);
        r.insert("/c/{name}:grant", "post", 5);
        assert!(matches!(r.route("/a/7/b", "GET"), Route::Found(0)));
        assert!(matches!(r.route("/a/me/b", "GET"), Route::Found(1)));
        assert!(matches!(r.route("/x/f.json/", "GET"), Route::Found(3)));
        assert!(
            matches!(r.route("/x/f.json", "GET"), Route::NotFound),
            "trailing slash as documented"
        );
        assert!(matches!(r.route("/c/a:grant", "POST"), Route::Found(5)));
        assert!(matches!(r.route("/c/a", "GET"), Route::Found(4)));
        match r.route("/a/7/b", "PUT") {
            Route::WrongMethod(m) => assert_eq!(m, ["DELETE", "GET"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(r.route("/nope", "GET"), Route::NotFound));
    }

    #[test]
    fn a_document_it_cannot_serve_is_named() {
        let doc = json!({"openapi": "3.0.0", "paths": {"/a": {"get": {"responses": {"200": {"$ref": "#/nope"}}}}}});
        let err = prepare(&doc).unwrap_err().to_string();
        assert!(err.contains("#/paths/~1a/get/responses/200"), "{err}");
        let doc = json!({"swagger": "2.0", "paths": {}});
        assert!(prepare(&doc).unwrap_err().to_string().contains("OpenAPI 3"));
    }
}
