//! The HTTP edge every request passes: its request id (`X-Request-Id`, on every answer and every
//! log line of the request), one log line per request, every error as an `ApiError` body (with
//! `Allow` on 405), `envelope=true` and `pretty=true` on every operation, the request metrics
//! (when the server has them), and the request body size limit.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use invites_domain::{Error, ErrorCode, PrincipalKind};
use invites_metrics::{Metrics, OperationMetrics};
use poem::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use crate::error::{code_for_status, error_response};

/// The methods each documented path template accepts, to answer 405 with `Allow`, and the
/// operationId of each (template, method).
#[derive(Debug, Default)]
pub struct MethodTable {
    /// Each documented template as written, its segments, and its methods.
    routes: Vec<(String, Vec<String>, BTreeSet<String>)>,
    /// By route, as `routes`: each method (upper case) and its operationId.
    operations: Vec<Vec<(String, String)>>,
}

impl MethodTable {
    /// Reads the path templates and their methods from an OpenAPI document.
    pub fn from_spec(spec: &serde_json::Value) -> Self {
        let mut routes = Vec::new();
        let mut operations = Vec::new();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (template, item) in paths {
                let methods = item
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter(|k| {
                                matches!(
                                    k.as_str(),
                                    "get"
                                        | "put"
                                        | "post"
                                        | "delete"
                                        | "patch"
                                        | "head"
                                        | "options"
                                )
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect::<BTreeSet<_>>()
                    })
                    .unwrap_or_default();
                // Requests are matched after the edge strips trailing slashes.
                let segments = template
                    .trim_end_matches('/')
                    .split('/')
                    .map(str::to_owned)
                    .collect();
                let ids = methods
                    .iter()
                    .filter_map(|m| {
                        let id = item.get(m.to_ascii_lowercase())?.get("operationId")?;
                        Some((m.clone(), id.as_str()?.to_owned()))
                    })
                    .collect();
                routes.push((template.clone(), segments, methods));
                operations.push(ids);
            }
        }
        MethodTable { routes, operations }
    }

    /// The index of the documented template `path` matches.
    fn route_index(&self, path: &str) -> Option<usize> {
        let count = path.split('/').count();
        self.routes.iter().position(|(_, template, _)| {
            template.len() == count
                && template.iter().zip(path.split('/')).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
        })
    }

    /// The documented template `path` matches (as the document writes it, e.g.
    /// `/api/atlas/v2/orgs/{orgId}/invites/{invitationId}`) and its methods.
    fn route(&self, path: &str) -> Option<(&str, &BTreeSet<String>)> {
        self.route_index(path).map(|i| {
            let (name, _, methods) = &self.routes[i];
            (name.as_str(), methods)
        })
    }

    /// The documented path template `path` matches: what the log names instead of the path
    /// itself, which carries ids.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.route(path).map(|(template, _)| template)
    }

    /// The methods allowed on `path`, if it matches a documented template.
    pub fn allowed(&self, path: &str) -> Option<String> {
        self.route(path).map(|(_, methods)| {
            let mut all: Vec<&str> = methods.iter().map(String::as_str).collect();
            if methods.contains("GET") && !methods.contains("HEAD") {
                all.push("HEAD");
            }
            all.sort_unstable();
            all.join(", ")
        })
    }
}

/// The `envelope` and `pretty` flags of a request, read from its query string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub envelope: bool,
    pub pretty: bool,
}

impl Flags {
    pub fn from_query(query: Option<&str>) -> Self {
        let mut flags = Flags::default();
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("envelope", v)) => flags.envelope = v.eq_ignore_ascii_case("true"),
                Some(("pretty", v)) => flags.pretty = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        flags
    }
}

/// The request id header, read from requests and set on every answer.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a request.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's own `X-Request-Id` when it is a sane token (1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`), else a new one: 32 hex digits of randomness. An id that is not sane is
/// replaced, never echoed, so a header cannot smuggle text into answers or logs.
pub fn request_id(req: &Request) -> String {
    request_id_from(req.headers().get(&X_REQUEST_ID))
}

/// [`request_id`] for an answer made outside the application (the server's own 408), from the
/// request's `X-Request-Id` value when it had one.
pub fn request_id_from(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

fn is_sane_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// 128 random bits as 32 lowercase hex digits.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Who the request authenticated as, for its log line: the authentication middleware fills it
/// in (it runs inside the edge, which reads it once the answer is made).
#[derive(Clone, Debug, Default)]
pub struct PrincipalSlot(Arc<OnceLock<PrincipalKind>>);

impl PrincipalSlot {
    /// Records the kind of principal the request authenticated as.
    pub fn set(&self, kind: PrincipalKind) {
        let _ = self.0.set(kind);
    }

    /// `api_key`, `service_account`, `user`, or `none` for a request without valid credentials.
    pub fn name(&self) -> &'static str {
        self.0.get().map_or("none", |k| k.as_str())
    }
}

/// The path a request's log line names: the documented template it matched (no ids), the two
/// fixed document paths, or `unmatched` (a path the log does not copy).
#[cfg(test)]
fn logged_path<'a>(methods: &'a MethodTable, path: &str) -> &'a str {
    logged_path_of(methods, path, methods.route_index(path))
}

/// [`logged_path`] of a path whose route (`MethodTable::route_index`) is known.
fn logged_path_of<'a>(methods: &'a MethodTable, path: &str, route: Option<usize>) -> &'a str {
    match path {
        "/openapi.json" => "/openapi.json",
        "/docs" => "/docs",
        _ => route.map_or("unmatched", |i| methods.routes[i].0.as_str()),
    }
}

/// The API family of a documented path, as the metrics label it.
fn family_of(template: &str) -> &'static str {
    if template.starts_with("/api/atlas/") {
        "atlas"
    } else if template.starts_with("/api/public/") {
        "opsmanager"
    } else if template.starts_with("/api/v2/") {
        "community"
    } else {
        "service"
    }
}

/// The request metrics of every operation, resolved when the application is built, so a request
/// finds its handles by the route the edge matched anyway.
pub struct EdgeMetrics {
    metrics: Arc<Metrics>,
    /// By route index of the `MethodTable`: each method and its operation's handles.
    routes: Vec<Vec<(Method, OperationMetrics)>>,
    openapi: OperationMetrics,
    docs: OperationMetrics,
    /// A path no operation has, or a method its path does not take.
    unmatched: OperationMetrics,
}

impl EdgeMetrics {
    /// The handles of every operation in `methods` (so every series exists from the start).
    pub fn new(metrics: Arc<Metrics>, methods: &MethodTable) -> EdgeMetrics {
        let routes = methods
            .routes
            .iter()
            .zip(&methods.operations)
            .map(|((template, _, _), ops)| {
                ops.iter()
                    .filter_map(|(method, id)| {
                        let method = Method::from_bytes(method.as_bytes()).ok()?;
                        Some((method, metrics.operation(id, family_of(template))))
                    })
                    .collect()
            })
            .collect();
        EdgeMetrics {
            openapi: metrics.operation("openapi", "service"),
            docs: metrics.operation("docs", "service"),
            unmatched: metrics.operation("unmatched", "none"),
            routes,
            metrics,
        }
    }

    fn operation(&self, method: &Method, path: &str, route: Option<usize>) -> &OperationMetrics {
        // HEAD is answered by the GET operation.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        match (path, route) {
            ("/openapi.json", _) => &self.openapi,
            ("/docs", _) => &self.docs,
            (_, Some(i)) => self.routes[i]
                .iter()
                .find(|(m, _)| m == method)
                .map_or(&self.unmatched, |(_, op)| op),
            (_, None) => &self.unmatched,
        }
    }
}

/// The outermost middleware.
pub struct Edge {
    pub methods: Arc<MethodTable>,
    /// Request counts, latency and requests in flight (none: nothing recorded).
    pub metrics: Option<Arc<EdgeMetrics>>,
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        EdgeEndpoint {
            inner: ep,
            methods: self.methods.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct EdgeEndpoint<E> {
    inner: E,
    methods: Arc<MethodTable>,
    metrics: Option<Arc<EdgeMetrics>>,
}

impl<E> EdgeEndpoint<E> {
    fn error_response(&self, e: poem::Error, method: &Method, path: &str) -> Response {
        let status = e.status();
        let message = e.to_string();
        // Errors the handlers answered carry their ApiError body already; keep it.
        let resp = e.into_response();
        if is_json(&resp) {
            return resp;
        }
        let code = code_for_status(status);
        let err = if status.is_server_error() {
            tracing::error!(%method, path, error = %message, "request failed");
            Error::internal()
        } else {
            Error::new(code, client_detail(code, message))
        };
        let mut resp = error_response(&err);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            if let Some(allow) = self
                .methods
                .allowed(path)
                .and_then(|a| HeaderValue::from_str(&a).ok())
            {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
        }
        resp
    }
}

/// What the client is told about an error raised outside the handlers.
fn client_detail(code: ErrorCode, message: String) -> String {
    match code {
        ErrorCode::ResourceNotFound => "Cannot find resource.".to_owned(),
        ErrorCode::MethodNotAllowed => "The method is not allowed on this resource.".to_owned(),
        ErrorCode::RequestTooLarge => "The request body is too large.".to_owned(),
        // Parameter, payload and content-type errors from poem-openapi name the offending input
        // and carry no internal state.
        _ => message,
    }
}

impl<E: Endpoint> Endpoint for EdgeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let id = request_id(&req);
        // Every event of the request, in any crate, is inside this span and so carries its id.
        // ERROR, so that whatever level the filter lets through, the id comes with it.
        let span = tracing::error_span!("request", request_id = %id);
        async move {
            let _in_flight = self.metrics.as_ref().map(|m| m.metrics.in_flight());
            normalize_path(&mut req);
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let flags = Flags::from_query(req.uri().query());
            let principal = PrincipalSlot::default();
            req.extensions_mut().insert(principal.clone());
            let resp = match self.inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => self.error_response(e, &method, &path),
            };
            // The operation's own status: `envelope=true` makes every answer a 200.
            let status = resp.status();
            let mut resp = apply_flags(resp, flags).await;
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
            }
            // The documented template the path matches, looked up once and only if the log line
            // or the metrics want it (tracing evaluates a disabled event's fields not at all).
            let route = std::cell::OnceCell::new();
            let route = || *route.get_or_init(|| self.methods.route_index(&path));
            // The template, not the path (ids), and never the query string (it may carry what
            // a client should not have put there).
            tracing::info!(
                target: "invites::request",
                %method,
                path = logged_path_of(&self.methods, &path, route()),
                status = resp.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                principal = principal.name(),
            );
            if let Some(metrics) = &self.metrics {
                metrics
                    .operation(&method, &path, route())
                    .record(status.as_u16(), started.elapsed());
            }
            Ok(resp)
        }
        .instrument(span)
        .await
    }
}

/// Routes the spellings real clients use to the documented paths: a trailing slash on API paths
/// (`.../invites/`) routes as without it, and Ops Manager's `/groups/{id}/invitations...` (the
/// spelling of the documentation's own example) as `/groups/{id}/invites...`. The Digest check
/// still compares against the target exactly as sent (`original_uri`).
fn normalize_path(req: &mut Request) {
    let path = req.uri().path();
    let alias = path.starts_with("/api/public/v1.0/groups/")
        && path.split('/').nth(6) == Some("invitations");
    if path.len() > 5 && path.starts_with("/api/") && (path.ends_with('/') || alias) {
        let trimmed = path.trim_end_matches('/');
        let renamed;
        let trimmed = if alias {
            let mut segments: Vec<&str> = trimmed.split('/').collect();
            segments[6] = "invites";
            renamed = segments.join("/");
            renamed.as_str()
        } else {
            trimmed
        };
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"))
}

/// Applies `envelope` and `pretty` to a finished response.
async fn apply_flags(resp: Response, mut flags: Flags) -> Response {
    // An authentication challenge keeps its 401: a client answers `WWW-Authenticate` only on a
    // 401 (curl --digest and Python requests' HTTPDigestAuth got a 200 envelope and never sent
    // credentials). What the envelope wraps once authenticated is unchanged.
    if resp.status() == StatusCode::UNAUTHORIZED
        && resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        flags.envelope = false;
    }
    if !(flags.envelope || (flags.pretty && is_json(&resp))) {
        return resp;
    }
    let json = is_json(&resp);
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.into_bytes().await {
        Ok(b) => b,
        Err(_) => return error_response(&Error::internal()),
    };
    let content: Option<serde_json::Value> = if bytes.is_empty() || !json {
        None
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(_) => return Response::from_parts(parts, Body::from(bytes)),
        }
    };
    let value = if flags.envelope {
        let mut env = serde_json::Map::new();
        env.insert("status".into(), parts.status.as_u16().into());
        if let Some(c) = content {
            env.insert("content".into(), c);
        }
        parts.status = StatusCode::OK;
        if !json {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        serde_json::Value::Object(env)
    } else {
        content.unwrap_or(serde_json::Value::Null)
    };
    let text = if flags.pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    }
    .expect("JSON values serialize");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// Refuses request bodies over a size, before any handler reads them.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let too_large = || {
            error_response(&Error::new(
                ErrorCode::RequestTooLarge,
                format!("The request body is larger than {} bytes.", self.limit),
            ))
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.limit as u64 => return Ok(too_large()),
            Some(_) => {}
            None => {
                // No declared length (chunked): read at most the limit now.
                match req.take_body().into_bytes_limit(self.limit).await {
                    Ok(bytes) => req.set_body(bytes),
                    Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
                    Err(_) => {
                        return Ok(error_response(&Error::new(
                            ErrorCode::ValidationError,
                            "The request body could not be read.",
                        )))
                    }
                }
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_only_true_values() {
        assert_eq!(
            Flags::from_query(Some("envelope=true&pretty=TRUE")),
            Flags {
                envelope: true,
                pretty: true
            }
        );
        assert_eq!(
            Flags::from_query(Some("envelope=false&pretty=1")),
            Flags::default()
        );
        assert_eq!(Flags::from_query(None), Flags::default());
    }

    #[test]
    fn sane_request_ids_are_kept_and_others_replaced() {
        let with = |v: &str| {
            let mut req = Request::builder().finish();
            req.headers_mut()
                .insert(X_REQUEST_ID.clone(), HeaderValue::from_str(v).unwrap());
            request_id(&req)
        };
        assert_eq!(with("abc-123_X.y:z"), "abc-123_X.y:z");
        let longest = "a".repeat(128);
        assert_eq!(with(&longest), longest);
        for bad in [
            "",
            "a b",
            "a\"b",
            "<script>",
            "id;drop",
            &"a".repeat(129),
            "caf\u{e9}",
        ] {
            let Ok(value) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut req = Request::builder().finish();
            req.headers_mut().insert(X_REQUEST_ID.clone(), value);
            let id = request_id(&req);
            assert_ne!(id, bad);
            assert!(is_sane_request_id(&id), "{id}");
        }
        let generated = request_id(&Request::builder().finish());
        assert_eq!(generated.len(), 32);
        assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(generated, request_id(&Request::builder().finish()));
    }

    #[test]
    fn the_principal_slot_names_what_authenticated() {
        let slot = PrincipalSlot::default();
        assert_eq!(slot.name(), "none");
        slot.clone().set(PrincipalKind::ServiceAccount);
        assert_eq!(slot.name(), "service_account");
    }

    #[test]
    fn logged_paths_are_templates() {
        let spec = serde_json::json!({"paths": {
            "/api/atlas/v2/orgs/{orgId}/invites/{invitationId}": {"delete": {}},
            "/api/v2/group/{id}/invite/": {"get": {}}
        }});
        let t = MethodTable::from_spec(&spec);
        assert_eq!(
            logged_path(&t, "/api/atlas/v2/orgs/0123/invites/4567"),
            "/api/atlas/v2/orgs/{orgId}/invites/{invitationId}"
        );
        // The edge strips the trailing slash before matching; the template keeps it.
        assert_eq!(
            logged_path(&t, "/api/v2/group/12/invite"),
            "/api/v2/group/{id}/invite/"
        );
        assert_eq!(logged_path(&t, "/openapi.json"), "/openapi.json");
        assert_eq!(logged_path(&t, "/secret/token/abc"), "unmatched");
    }

    #[test]
    fn method_table_matches_templates() {
        let spec = serde_json::json!({"paths": {
            "/api/atlas/v2/orgs/{orgId}/invites/{invitationId}": {"get": {}, "delete": {}, "parameters": []}
        }});
        let t = MethodTable::from_spec(&spec);
        assert_eq!(
            t.allowed("/api/atlas/v2/orgs/abc/invites/def").as_deref(),
            Some("DELETE, GET, HEAD")
        );
        assert_eq!(t.allowed("/api/atlas/v2/orgs/abc/invites"), None);
        assert_eq!(t.allowed("/api/atlas/v2/orgs//invites/def"), None);
    }
}
