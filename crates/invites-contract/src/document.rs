//! An OpenAPI 3.0 or 3.1 document (and the files it references) read into what is served: a
//! router over its path templates and, per operation, the compiled request rules and every
//! documented response prepared as bytes. All of it happens once, at start; answering a request
//! never walks the document.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::load::{FileId, Sources};
use crate::schema::{Compiler, Dialect, SchemaId, Schemas, Strictness};
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

/// How a parameter's value is written (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Form,
    Simple,
    Matrix,
    Label,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    fn parse(s: Option<&str>, location: ParamIn) -> Style {
        match s {
            Some("form") => Style::Form,
            Some("simple") => Style::Simple,
            Some("matrix") => Style::Matrix,
            Some("label") => Style::Label,
            Some("spaceDelimited") => Style::SpaceDelimited,
            Some("pipeDelimited") => Style::PipeDelimited,
            Some("deepObject") => Style::DeepObject,
            _ => match location {
                ParamIn::Query | ParamIn::Cookie => Style::Form,
                ParamIn::Path | ParamIn::Header => Style::Simple,
            },
        }
    }
}

#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    pub schema: Option<SchemaId>,
    pub style: Style,
    pub explode: bool,
}

/// What one security scheme needs to be present in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Basic <base64 of user:password>`.
    Basic,
    /// `Authorization: Bearer <token>` (http bearer, OAuth2, OpenID Connect).
    Bearer,
    /// `Authorization: Digest username=...`.
    Digest,
    /// Another http scheme: `Authorization: <scheme> ...`.
    HttpScheme(String),
    Header(String),
    Query(String),
    Cookie(String),
    /// Mutual TLS: nothing the request can show; never missing.
    MutualTls,
}

impl Credential {
    /// The `WWW-Authenticate` challenge for a missing credential, if the scheme has one.
    pub fn challenge(&self) -> Option<String> {
        match self {
            Credential::Basic => Some("Basic realm=\"mock\"".into()),
            Credential::Bearer => Some("Bearer".into()),
            Credential::Digest => {
                Some("Digest realm=\"mock\", qop=\"auth\", nonce=\"mock\"".into())
            }
            Credential::HttpScheme(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// One documented media type of a request body.
#[derive(Debug)]
pub struct RequestMedia {
    pub media_type: String,
    pub schema: Option<SchemaId>,
    /// `encoding` of form bodies: property name to its style and explode.
    pub encoding: Vec<(String, Style, bool)>,
}

/// One documented media type of a response, ready to send.
#[derive(Debug)]
pub struct ResponseMedia {
    pub media_type: String,
    pub schema: Option<SchemaId>,
    /// The body sent when no named example is asked for: the document's example when it
    /// validates, else one synthesized from the schema.
    pub body: Option<Bytes>,
    /// Named examples (`examples` map) that validate, in document order.
    pub examples: Vec<(String, Bytes)>,
    /// Whether `body` validates against the schema. It always does but where the schema admits
    /// no value at all ([`Schemas::satisfiable`]); the document's warnings count those.
    pub valid: bool,
}

/// One documented response.
#[derive(Debug)]
pub struct PreparedResponse {
    /// The status, or None for a range or `default`.
    pub status: Option<u16>,
    /// `4XX`-style ranges: the first digit.
    pub range: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// Documented media types, the JSON ones first.
    pub contents: Vec<ResponseMedia>,
}

impl PreparedResponse {
    /// The first documented media type (JSON when there is one).
    pub fn media(&self) -> Option<&ResponseMedia> {
        self.contents.first()
    }

    /// The content for a media type essence, if documented.
    pub fn content_for(&self, essence: &str) -> Option<&ResponseMedia> {
        self.contents
            .iter()
            .find(|c| crate::media::essence(&c.media_type) == essence)
    }
}

#[derive(Debug)]
pub struct Operation {
    pub id: String,
    pub method: String,
    /// The path template it is routed by.
    pub template: String,
    /// Its path item's key in the document (the template, with Box's `#variant` fragments).
    pub path_key: String,
    pub params: Vec<Param>,
    pub body_required: bool,
    /// Documented request body media types.
    pub body: Vec<RequestMedia>,
    /// Alternatives: any one satisfied lets the request in; an empty alternative means optional.
    pub security: Vec<Vec<Credential>>,
    pub responses: Vec<PreparedResponse>,
    pub deprecated: bool,
}

impl Operation {
    /// The response for a status code: an exact match first, then its range, then `default`.
    pub fn response(&self, status: u16) -> Option<&PreparedResponse> {
        self.exact(status)
            .or_else(|| self.range(status / 100))
            .or_else(|| self.default())
    }

    pub fn exact(&self, status: u16) -> Option<&PreparedResponse> {
        self.responses.iter().find(|r| r.status == Some(status))
    }

    pub fn range(&self, digit: u16) -> Option<&PreparedResponse> {
        self.responses.iter().find(|r| r.range == Some(digit))
    }

    pub fn default(&self) -> Option<&PreparedResponse> {
        self.responses
            .iter()
            .find(|r| r.status.is_none() && r.range.is_none())
    }

    /// The first documented 2xx (the lowest), else the first documented response.
    pub fn default_response(&self) -> Option<&PreparedResponse> {
        self.responses
            .iter()
            .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)) || r.range == Some(2))
            .min_by_key(|r| r.status.unwrap_or(299))
            .or_else(|| self.default())
            .or_else(|| self.responses.first())
    }

    /// The request body media type for a Content-Type, if documented (wildcards and `+json`
    /// suffixes as documented types match).
    pub fn request_media(&self, content_type: &str) -> Option<&RequestMedia> {
        let got = crate::media::essence(content_type);
        self.body
            .iter()
            .find(|m| crate::media::essence(&m.media_type) == got)
            .or_else(|| {
                self.body
                    .iter()
                    .find(|m| crate::media::covers(&m.media_type, &got))
            })
    }
}

/// A path segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    /// `{name}`, possibly with a literal prefix and suffix (`{name}.json`, `{a}...{b}`).
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
    /// Adds a route; false when the template and method are taken already (the first stays).
    fn insert(&mut self, template: &str, method: &str, index: usize) -> bool {
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
        let method = method.to_ascii_uppercase();
        if node.methods.contains_key(&method) {
            return false;
        }
        node.methods.insert(method, index);
        true
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
    // A literal segment a client sent percent-encoded (DigitalOcean's `/<upload_url>`).
    if first.contains('%') {
        let decoded = crate::load::percent_decode(first);
        if let Some(found) = node
            .statics
            .get(decoded.as_str())
            .and_then(|n| find(n, rest))
        {
            return Some(found);
        }
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
    pub schemas: Schemas,
    /// The path of the first `servers` URL (`/v2` for `https://api.example.com/v2`), or empty.
    pub base_path: String,
    /// What the document holds that the mock does not serve (callbacks, links, webhooks).
    pub warnings: Vec<String>,
    pub title: String,
}

fn is_json(media: &str) -> bool {
    let essence = crate::media::essence(media);
    essence == "application/json" || essence.ends_with("+json") || essence == "*/*"
}

fn header_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The path of a server URL, its `{variables}` replaced by their defaults.
fn server_path(server: &Value) -> String {
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    for (name, var) in server
        .get("variables")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let default = var.get("default").and_then(Value::as_str).unwrap_or("");
        url = url.replace(&format!("{{{name}}}"), default);
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => url.as_str(),
    };
    path.split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned()
}

/// Reads and prepares a document; an error names the file, the place and the reason.
pub fn prepare(sources: &Sources) -> Result<Prepared, LoadError> {
    let doc = sources.root();
    if let Some(v) = doc.get("swagger") {
        return Err(LoadError::at(
            "#/swagger",
            format!(
                "this is a Swagger {} document; only OpenAPI 3.0 and 3.1 are served (convert it \
                 first, e.g. with swagger2openapi)",
                header_text(v)
            ),
        ));
    }
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let dialect = if version.starts_with("3.0") {
        Dialect::Oas30
    } else if version.starts_with("3.1") {
        Dialect::Oas31
    } else if doc.is_object() && doc.get("openapi").is_none() {
        return Err(LoadError::at(
            "#",
            "not an OpenAPI document (no `openapi` version at its top)",
        ));
    } else {
        return Err(LoadError::at(
            "#/openapi",
            format!("only OpenAPI 3.0 and 3.1 documents are served, found {version:?}"),
        ));
    };
    let mut warnings = Vec::new();
    let paths = match doc.get("paths") {
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(LoadError::at("#/paths", "must be an object")),
        None if dialect == Dialect::Oas31 => None,
        None => return Err(LoadError::at("#/paths", "missing")),
    };
    if let Some(webhooks) = doc.get("webhooks").and_then(Value::as_object) {
        warnings.push(format!(
            "{} webhook(s) described: the mock serves paths only (webhooks are requests the API \
             sends, not ones it answers)",
            webhooks.len()
        ));
    }
    let base_path = doc
        .get("servers")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .map(server_path)
        .unwrap_or_default();
    let mut compiler = Compiler::new(sources, dialect);
    let schemes = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object);
    let mut operations = Vec::new();
    let mut router = Router::default();
    // Bodies synthesized from a shared schema are made once and shared (`Bytes` clones share).
    let mut synthesized: HashMap<SchemaId, Synthesized> = HashMap::new();
    let mut callbacks = 0;
    let mut links = 0;
    let mut duplicates = Vec::new();
    for (template_key, item) in paths.into_iter().flatten() {
        let at_path = format!("#/paths/{}", escape(template_key));
        // Box writes `/files/{id}#get_shared_link`: the fragment only names the variant.
        let template = template_key.split('#').next().unwrap_or("").to_owned();
        let (item_file, item) = compiler.resolve(0, item, &at_path)?;
        let shared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{at_path}/{method}");
            let (op_file, op) = compiler.resolve(item_file, op, &at)?;
            let mut params: Vec<Param> = Vec::new();
            let own: Vec<(FileId, &Value)> = op
                .get("parameters")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|p| (op_file, p)).collect())
                .unwrap_or_default();
            let all: Vec<(FileId, &Value)> =
                shared.iter().map(|p| (item_file, *p)).chain(own).collect();
            for (i, (file, p)) in all.into_iter().enumerate() {
                let at_p = format!("{at}/parameters/{i}");
                let (file, p) = compiler.resolve(file, p, &at_p)?;
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| LoadError::at(&at_p, "parameter without a name"))?;
                let location = match p.get("in").and_then(Value::as_str) {
                    Some("path") => ParamIn::Path,
                    Some("query") => ParamIn::Query,
                    Some("header") => ParamIn::Header,
                    Some("cookie") => ParamIn::Cookie,
                    other => {
                        return Err(LoadError::at(
                            &at_p,
                            format!("unknown parameter location {other:?}"),
                        ))
                    }
                };
                // A parameter is described by `schema`, or by `content` with one media type.
                let schema_value = p
                    .get("schema")
                    .map(|s| (s, format!("{at_p}/schema")))
                    .or_else(|| {
                        p.get("content")
                            .and_then(Value::as_object)
                            .and_then(|c| c.iter().next())
                            .and_then(|(m, c)| {
                                c.get("schema")
                                    .map(|s| (s, format!("{at_p}/content/{}/schema", escape(m))))
                            })
                    });
                let schema = match schema_value {
                    Some((s, at_s)) => Some(compiler.compile(file, s, &at_s)?),
                    None => None,
                };
                // OpenAPI: header parameters named Accept, Content-Type or Authorization "SHALL
                // be ignored" (the media types and security schemes say those).
                if location == ParamIn::Header
                    && ["accept", "content-type", "authorization"]
                        .contains(&name.to_ascii_lowercase().as_str())
                {
                    continue;
                }
                let required = location == ParamIn::Path
                    || p.get("required").and_then(Value::as_bool).unwrap_or(false);
                let style = Style::parse(p.get("style").and_then(Value::as_str), location);
                let explode = p
                    .get("explode")
                    .and_then(Value::as_bool)
                    .unwrap_or(style == Style::Form);
                // An operation's parameter overrides a path-level one of the same name and place.
                params.retain(|q| !(q.name == name && q.location == location));
                params.push(Param {
                    name: name.to_owned(),
                    location,
                    required,
                    schema,
                    style,
                    explode,
                });
            }
            let (mut body_required, mut body) = (false, Vec::new());
            if let Some(b) = op.get("requestBody") {
                let at_b = format!("{at}/requestBody");
                let (file, b) = compiler.resolve(op_file, b, &at_b)?;
                body_required = b.get("required").and_then(Value::as_bool).unwrap_or(false);
                for (media, m) in b
                    .get("content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let at_m = format!("{at_b}/content/{}", escape(media));
                    let schema = match m.get("schema") {
                        Some(s) => Some(compiler.compile(file, s, &format!("{at_m}/schema"))?),
                        None => None,
                    };
                    let encoding = m
                        .get("encoding")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(prop, e)| {
                            let style = Style::parse(
                                e.get("style").and_then(Value::as_str),
                                ParamIn::Query,
                            );
                            let explode = e
                                .get("explode")
                                .and_then(Value::as_bool)
                                .unwrap_or(style == Style::Form);
                            (prop.clone(), style, explode)
                        })
                        .collect();
                    body.push(RequestMedia {
                        media_type: media.clone(),
                        schema,
                        encoding,
                    });
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
                    let (_, scheme) = compiler.resolve(
                        0,
                        scheme,
                        &format!("#/components/securitySchemes/{}", escape(name)),
                    )?;
                    let key = scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
                    alternative.push(match (kind, scheme.get("in").and_then(Value::as_str)) {
                        ("apiKey", Some("query")) => Credential::Query(key),
                        ("apiKey", Some("cookie")) => Credential::Cookie(key),
                        ("apiKey", _) => Credential::Header(key),
                        ("http", _) => {
                            match scheme
                                .get("scheme")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_ascii_lowercase()
                                .as_str()
                            {
                                "basic" => Credential::Basic,
                                "bearer" => Credential::Bearer,
                                "digest" => Credential::Digest,
                                other => Credential::HttpScheme(other.to_owned()),
                            }
                        }
                        ("mutualTLS", _) => Credential::MutualTls,
                        // oauth2 and openIdConnect present a Bearer token.
                        _ => Credential::Bearer,
                    });
                }
                security.push(alternative);
            }
            if let Some(c) = op.get("callbacks").and_then(Value::as_object) {
                callbacks += c.len();
            }
            let mut responses = Vec::new();
            let documented = match op.get("responses") {
                Some(Value::Object(r)) => Some(r),
                None if dialect == Dialect::Oas31 => None,
                _ => return Err(LoadError::at(&at, "operation without responses")),
            };
            for (code, r) in documented.into_iter().flatten() {
                let at_r = format!("{at}/responses/{code}");
                let (file, r) = compiler.resolve(op_file, r, &at_r)?;
                let (status, range) = match code.as_str() {
                    "default" => (None, None),
                    c if c.len() == 3 && c[1..].eq_ignore_ascii_case("XX") => {
                        (None, c[..1].parse().ok())
                    }
                    c => (
                        Some(
                            c.parse::<u16>()
                                .ok()
                                .filter(|s| (100..600).contains(s))
                                .ok_or_else(|| LoadError::at(&at_r, "not a status code"))?,
                        ),
                        None,
                    ),
                };
                if let Some(l) = r.get("links").and_then(Value::as_object) {
                    links += l.len();
                }
                let mut headers = Vec::new();
                for (name, h) in r
                    .get("headers")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let at_h = format!("{at_r}/headers/{}", escape(name));
                    let (hfile, h) = compiler.resolve(file, h, &at_h)?;
                    let value = match h.get("example") {
                        Some(e) => Some(HeaderValue::Text(header_text(e))),
                        None => match h.get("schema") {
                            Some(s) => Some(HeaderValue::Schema(compiler.compile(
                                hfile,
                                s,
                                &format!("{at_h}/schema"),
                            )?)),
                            None => None,
                        },
                    };
                    if !name.eq_ignore_ascii_case("content-type") {
                        if let Some(v) = value {
                            headers.push((name.clone(), v));
                        }
                    }
                }
                let mut contents = Vec::new();
                let mut media: Vec<(&String, &Value)> = r
                    .get("content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .collect();
                // JSON first: it is what a client without a preference gets.
                media.sort_by_key(|(m, _)| !is_json(m));
                for (media, m) in media {
                    let at_m = format!("{at_r}/content/{}", escape(media));
                    let schema = match m.get("schema") {
                        Some(s) => Some(compiler.compile(file, s, &format!("{at_m}/schema"))?),
                        None => None,
                    };
                    let mut named = Vec::new();
                    for (name, e) in m
                        .get("examples")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let (efile, e) = compiler.resolve(
                            file,
                            e,
                            &format!("{at_m}/examples/{}", escape(name)),
                        )?;
                        if let Some(v) = e.get("value") {
                            let v = match v.get("$ref") {
                                Some(_) => compiler.resolve(efile, v, &at_m)?.1,
                                None => v,
                            };
                            named.push((name.clone(), v.clone()));
                        }
                    }
                    let example = match m.get("example") {
                        Some(e) if e.get("$ref").is_some() => {
                            Some(compiler.resolve(file, e, &at_m)?.1.clone())
                        }
                        Some(e) => Some(e.clone()),
                        None => None,
                    };
                    contents.push((media.clone(), schema, example, named));
                }
                responses.push(Pending {
                    status,
                    range,
                    headers,
                    contents,
                });
            }
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
            if !router.insert(&template, method, operations.len()) {
                duplicates.push(format!("{} {template_key}", method.to_ascii_uppercase()));
                continue;
            }
            operations.push((
                Operation {
                    id,
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    path_key: template_key.clone(),
                    params,
                    body_required,
                    body,
                    security,
                    responses: Vec::new(),
                    deprecated: op.get("deprecated").and_then(Value::as_bool) == Some(true),
                },
                responses,
            ));
        }
    }
    if callbacks > 0 {
        warnings.push(format!(
            "{callbacks} callback(s) described: the mock does not call them"
        ));
    }
    if links > 0 {
        warnings.push(format!(
            "{links} link(s) described: the mock does not follow them"
        ));
    }
    if !duplicates.is_empty() {
        warnings.push(format!(
            "{} operation(s) share a method and path with an earlier one and are not served: {}",
            duplicates.len(),
            duplicates.join(", ")
        ));
    }
    let schemas = compiler.finish();
    for (place, why) in schemas.unenforced_patterns() {
        let place = match place.starts_with('#') {
            true => format!("{}{place}", sources.files[0].name),
            false => place.to_owned(),
        };
        warnings.push(format!("the pattern at {place} is not enforced: {why}"));
    }
    // Bodies are chosen once every schema is compiled (an example is judged by its schema).
    let operations = operations
        .into_iter()
        .map(|(mut op, responses)| {
            op.responses = responses
                .into_iter()
                .map(|r| PreparedResponse {
                    status: r.status,
                    range: r.range,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(n, v)| match v {
                            HeaderValue::Text(t) => (n, t),
                            HeaderValue::Schema(id) => (n, header_text(&schemas.example(id))),
                        })
                        .collect(),
                    contents: r
                        .contents
                        .into_iter()
                        .map(|(media_type, schema, example, named)| {
                            prepare_media(
                                &schemas,
                                &mut synthesized,
                                media_type,
                                schema,
                                example,
                                named,
                            )
                        })
                        .collect(),
                })
                .collect();
            op
        })
        .collect::<Vec<_>>();
    if operations.is_empty() {
        warnings.push("the document describes no operations: every request gets 404".into());
    }
    let mut unsatisfiable = Vec::new();
    for op in &operations {
        for r in &op.responses {
            for c in &r.contents {
                if c.schema.is_some_and(|s| !schemas.satisfiable(s)) {
                    let status = r
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "default".into());
                    unsatisfiable.push(format!("{} {status}", op.id));
                }
            }
        }
    }
    if !unsatisfiable.is_empty() {
        warnings.push(format!(
            "{} documented response(s) have a schema no value satisfies (conflicting types), so \
             their bodies cannot validate: {}",
            unsatisfiable.len(),
            unsatisfiable.join(", ")
        ));
    }
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok(Prepared {
        operations,
        router,
        schemas,
        base_path,
        warnings,
        title,
    })
}

/// A response header's value: the document's example, or one made from its schema once every
/// schema is compiled.
enum HeaderValue {
    Text(String),
    Schema(SchemaId),
}

/// A response media type read from the document: media type, schema, `example`, named
/// `examples`.
type PendingMedia = (
    String,
    Option<SchemaId>,
    Option<Value>,
    Vec<(String, Value)>,
);

/// A response read from the document, its bodies not yet chosen.
struct Pending {
    status: Option<u16>,
    range: Option<u16>,
    headers: Vec<(String, HeaderValue)>,
    contents: Vec<PendingMedia>,
}

/// A media type's bodies: its examples that validate, and the default body (the document's
/// example when it validates, else the first valid named one, else one synthesized).
fn prepare_media(
    schemas: &Schemas,
    synthesized: &mut HashMap<SchemaId, Synthesized>,
    media_type: String,
    schema: Option<SchemaId>,
    example: Option<Value>,
    named: Vec<(String, Value)>,
) -> ResponseMedia {
    let json = is_json(&media_type);
    let fits = |e: &Value| schema.is_none_or(|s| schemas.is_valid(s, e, Strictness::Exact));
    let encode = |v: &Value| -> Bytes {
        match (json, v) {
            (false, Value::String(s)) => Bytes::from(s.clone()),
            _ => Bytes::from(serde_json::to_vec(v).expect("JSON values serialize")),
        }
    };
    let examples: Vec<(String, Bytes)> = named
        .iter()
        .filter(|(_, v)| fits(v))
        .map(|(n, v)| (n.clone(), encode(v)))
        .collect();
    let first_named = || named.iter().map(|(_, v)| v).find(|v| fits(v));
    let (body, valid) = match example.as_ref().filter(|e| fits(e)).or_else(first_named) {
        Some(e) => (Some(encode(e)), true),
        None => match schema {
            Some(s) => {
                // One synthesized value per schema, shared by every response that names it.
                let made = synthesized.entry(s).or_insert_with(|| {
                    let v = schemas.example(s);
                    Synthesized {
                        valid: schemas.is_valid(s, &v, Strictness::Exact),
                        structured: matches!(v, Value::Object(_) | Value::Array(_)),
                        json: Bytes::from(serde_json::to_vec(&v).expect("JSON values serialize")),
                        text: match v {
                            Value::String(t) => Some(Bytes::from(t)),
                            _ => None,
                        },
                    }
                });
                match (json, made.structured) {
                    (true, _) => (Some(made.json.clone()), made.valid),
                    // A text media type: the value as text; a structure has no text form.
                    (false, false) => (made.text.clone().or(Some(made.json.clone())), made.valid),
                    (false, true) => (None, true),
                }
            }
            None => (example.as_ref().map(encode), true),
        },
    };
    ResponseMedia {
        media_type,
        schema,
        body,
        examples,
        valid,
    }
}

/// A body synthesized from a schema, made once per schema.
struct Synthesized {
    json: Bytes,
    text: Option<Bytes>,
    structured: bool,
    valid: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(doc: Value) -> Result<Prepared, LoadError> {
        prepare(&Sources::from_value(doc))
    }

    #[test]
    fn routes_by_segment_preferring_static_parts() {
        let mut r = Router::default();
        r.insert("/a/{id}/b", "get", 0);
        r.insert("/a/me/b", "get", 1);
        r.insert("/a/{id}/b", "delete", 2);
        r.insert("/x/{name}.json/", "get", 3);
        r.insert("/c/{name}", "get", 4);
        r.insert("/c/{name}:grant", "post", 5);
        assert!(!r.insert("/a/{other}/b", "get", 6), "taken");
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
        let err = prepared(doc).unwrap_err().to_string();
        assert!(err.contains("#/paths/~1a/get/responses/200"), "{err}");
        let err = prepared(json!({"swagger": "2.0", "paths": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Swagger 2.0 document"), "{err}");
        let err = prepared(json!({"name": "x"})).unwrap_err().to_string();
        assert!(err.contains("not an OpenAPI document"), "{err}");
    }

    #[test]
    fn openapi_31_webhooks_only_and_operations_without_responses_load() {
        let p = prepared(
            json!({"openapi": "3.1.0", "info": {"title": "w", "version": "1"},
            "webhooks": {"newPet": {"post": {"responses": {"200": {"description": "ok"}}}}}}),
        )
        .unwrap();
        assert!(p.operations.is_empty());
        assert!(
            p.warnings.iter().any(|w| w.contains("webhook")),
            "{:?}",
            p.warnings
        );
        let p = prepared(json!({"openapi": "3.1.0", "paths": {"/a": {"get": {}}}})).unwrap();
        assert_eq!(p.operations.len(), 1);
    }

    #[test]
    fn base_paths_come_from_the_first_server() {
        let p = prepared(json!({"openapi": "3.0.0", "servers": [{"url": "https://api.example.com/{v}/", "variables": {"v": {"default": "v2"}}}], "paths": {}})).unwrap();
        assert_eq!(p.base_path, "/v2");
        let p =
            prepared(json!({"openapi": "3.0.0", "servers": [{"url": "/api/1.0"}], "paths": {}}))
                .unwrap();
        assert_eq!(p.base_path, "/api/1.0");
        let p = prepared(json!({"openapi": "3.0.0", "servers": [{"url": "https://api.github.com"}], "paths": {}})).unwrap();
        assert_eq!(p.base_path, "");
    }

    #[test]
    fn fragments_in_path_keys_name_variants_and_the_first_is_served() {
        let ok = json!({"responses": {"200": {"description": "ok"}}});
        let p = prepared(json!({"openapi": "3.0.0", "paths": {
            "/files/{id}": {"put": {"operationId": "a", "responses": ok["responses"]}},
            "/files/{id}#lock": {"put": {"operationId": "b", "responses": ok["responses"]}}}}))
        .unwrap();
        assert_eq!(p.operations.len(), 1);
        assert_eq!(p.operations[0].id, "a");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("PUT /files/{id}#lock")),
            "{:?}",
            p.warnings
        );
    }
}
