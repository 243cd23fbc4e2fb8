//! The HTTP edge every request passes: one log line per request, every error as an `ApiError`
//! body (with `Allow` on 405), `envelope=true` and `pretty=true` on every operation, and the
//! request body size limit.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use invites_domain::{Error, ErrorCode};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::{code_for_status, error_response};

/// The methods each documented path template accepts, to answer 405 with `Allow`.
#[derive(Debug, Default)]
pub struct MethodTable {
    routes: Vec<(Vec<String>, BTreeSet<String>)>,
}

impl MethodTable {
    /// Reads the path templates and their methods from an OpenAPI document.
    pub fn from_spec(spec: &serde_json::Value) -> Self {
        let mut routes = Vec::new();
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
                routes.push((segments, methods));
            }
        }
        MethodTable { routes }
    }

    /// The methods allowed on `path`, if it matches a documented template.
    pub fn allowed(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.split('/').collect();
        self.routes.iter().find_map(|(template, methods)| {
            let matches = template.len() == segs.len()
                && template.iter().zip(&segs).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                });
            matches.then(|| {
                let mut all: Vec<&str> = methods.iter().map(String::as_str).collect();
                if methods.contains("GET") && !methods.contains("HEAD") {
                    all.push("HEAD");
                }
                all.sort_unstable();
                all.join(", ")
            })
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

/// The outermost middleware.
pub struct Edge {
    pub methods: Arc<MethodTable>,
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        EdgeEndpoint {
            inner: ep,
            methods: self.methods.clone(),
        }
    }
}

pub struct EdgeEndpoint<E> {
    inner: E,
    methods: Arc<MethodTable>,
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
        normalize_path(&mut req);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let flags = Flags::from_query(req.uri().query());
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => self.error_response(e, &method, &path),
        };
        let resp = apply_flags(resp, flags).await;
        tracing::info!(
            target: "invites::request",
            %method,
            path,
            status = resp.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
        );
        Ok(resp)
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
