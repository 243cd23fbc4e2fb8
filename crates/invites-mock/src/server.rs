//! Answering requests: CORS, route (under each document's base path), credentials, request
//! checks, the documented response a client asks for, content negotiation, and the log line.

use std::sync::Arc;

use bytes::Bytes;
use invites_contract::{
    check_security, media, Contract, Operation, PreparedResponse, Problem, RequestParts, Route,
};
use poem::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, Request, Response};
use serde_json::{json, Value};

use crate::Mock;

/// Largest request body the mock reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// An `application/problem+json` answer (RFC 9457), for what the document does not describe.
pub(crate) fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    extra: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://invites.dev/mock/problems/{}", status.as_u16()),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(Value::Object(extra)), Some(o)) = (extra, body.as_object_mut()) {
        o.extend(extra);
    }
    Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(serde_json::to_vec(&body).expect("JSON values serialize"))
}

/// What a client asks of the answer: `Prefer: code=404, example=name, dynamic=true`, or the
/// `__code`, `__example`, `__dynamic` query parameters when no `Prefer` header is sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Prefer {
    code: Option<Result<u16, String>>,
    example: Option<String>,
    dynamic: Option<bool>,
}

pub(crate) fn prefer(headers: &HeaderMap, query: &[(String, String)]) -> Prefer {
    let mut p = Prefer::default();
    let mut set = |key: &str, value: &str| {
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "code" if p.code.is_none() => {
                p.code = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|c| (100..600).contains(c))
                        .ok_or_else(|| value.to_owned()),
                )
            }
            "example" if p.example.is_none() => p.example = Some(value.to_owned()),
            "dynamic" if p.dynamic.is_none() => p.dynamic = Some(value == "true"),
            _ => {}
        }
    };
    let headers: Vec<&str> = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if headers.is_empty() {
        for (k, v) in query {
            if let Some(key) = k.strip_prefix("__") {
                set(key, v);
            }
        }
    } else {
        for part in headers.iter().flat_map(|h| h.split([',', ';'])) {
            if let Some((k, v)) = part.split_once('=') {
                set(k, v);
            }
        }
    }
    p
}

/// The status to send for a documented response picked for `asked` (a range or `default`
/// answers with the status asked for, else its range's first, else 200).
fn status_of(r: &PreparedResponse, asked: Option<u16>) -> u16 {
    r.status
        .or(asked)
        .unwrap_or_else(|| r.range.map(|d| d * 100).unwrap_or(200))
}

fn cors_headers(resp: &mut Response, req_headers: &HeaderMap) {
    let origin = req_headers
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Answers a CORS preflight (an OPTIONS with `Origin` and `Access-Control-Request-Method`)
/// without routing, as Prism does.
fn preflight(req: &Request) -> Option<Response> {
    let h = req.headers();
    if req.method() != Method::OPTIONS
        || !h.contains_key(header::ORIGIN)
        || !h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let mut resp = Response::builder().status(StatusCode::NO_CONTENT).finish();
    let method = h
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    let headers = h
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    let out = resp.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, headers);
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    Some(resp)
}

/// Where a request goes among the documents served.
pub(crate) enum Found {
    Operation(Arc<Contract>, usize, String),
    WrongMethod(Vec<String>),
    Nothing,
}

impl Mock {
    /// Routes `path`: each document under its base path (the longest first); with one document,
    /// also without it (as Prism, which ignores base paths, would answer).
    pub(crate) fn find(&self, path: &str, method: &str) -> Found {
        let mut candidates: Vec<(Arc<Contract>, String)> = Vec::new();
        let mut specs: Vec<Arc<Contract>> = self.specs.iter().map(|s| s.contract()).collect();
        specs.sort_by_key(|c| std::cmp::Reverse(c.base_path().len()));
        for c in &specs {
            let base = c.base_path();
            if base.is_empty() {
                candidates.push((Arc::clone(c), path.to_owned()));
            } else if let Some(rest) = path.strip_prefix(base) {
                if rest.is_empty() || rest.starts_with('/') {
                    let rest = if rest.is_empty() { "/" } else { rest };
                    candidates.push((Arc::clone(c), rest.to_owned()));
                }
            }
        }
        if specs.len() == 1 && !specs[0].base_path().is_empty() {
            candidates.push((Arc::clone(&specs[0]), path.to_owned()));
        }
        let mut allowed: Option<Vec<String>> = None;
        for (c, rest) in candidates {
            match c.route(&rest, method) {
                Route::Found(i) => return Found::Operation(Arc::clone(&c), i, rest),
                Route::WrongMethod(m) => {
                    allowed.get_or_insert_with(|| m.iter().map(|s| (*s).to_owned()).collect());
                }
                Route::NotFound => {}
            }
        }
        match allowed {
            Some(m) => Found::WrongMethod(m),
            None => Found::Nothing,
        }
    }

    async fn answer(&self, mut req: Request) -> (Response, Option<String>, Option<String>) {
        if self.config.cors {
            if let Some(resp) = preflight(&req) {
                return (resp, None, None);
            }
        }
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_owned();
        let (contract, index, local_path) = match self.find(&path, &method) {
            Found::Operation(c, i, p) => (c, i, p),
            Found::WrongMethod(allowed) if self.config.proxy.is_none() => {
                let mut resp = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Method not allowed",
                    &format!(
                        "{method} is not documented for {path}; allowed: {}",
                        allowed.join(", ")
                    ),
                    None,
                );
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
                return (resp, None, None);
            }
            _ if self.config.proxy.is_some() => {
                let resp = self.forward_unknown(req).await;
                return (resp, None, None);
            }
            _ => {
                let resp = problem(
                    StatusCode::NOT_FOUND,
                    "No documented path matches",
                    &format!("no operation of the document matches {method} {path}"),
                    None,
                );
                return (resp, None, None);
            }
        };
        let op = &contract.operations()[index];
        let id = Some(op.id.clone());
        let body = match req.take_body().into_bytes_limit(MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                let resp = problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large",
                    &format!("the mock reads request bodies of at most {MAX_BODY} bytes"),
                    None,
                );
                return (resp, id, None);
            }
        };
        let parts = RequestParts {
            path: &local_path,
            query: req.uri().query().unwrap_or(""),
            headers: req.headers(),
            body: &body,
        };
        if self.config.proxy.is_some() {
            let (resp, violation) = self.proxy(&contract, op, &req, &parts, body.clone()).await;
            return (resp, id, violation);
        }
        let query = invites_contract::pairs(parts.query);
        let checked = check_security(op, &parts).and_then(|()| {
            if self.config.validate {
                contract.check_request(op, &parts)
            } else {
                Ok(())
            }
        });
        if let Err(p) = checked {
            let rule = p.rule();
            let mut resp = self.refusal(&contract, op, &p, req.headers(), &query);
            if let Ok(h) = HeaderValue::from_str(&rule) {
                resp.headers_mut().insert("x-mock-violation", h);
            }
            return (resp, id, Some(rule));
        }
        (
            self.documented(&contract, op, req.headers(), &query),
            id,
            None,
        )
    }

    /// The answer to a request that broke the document: the documented response for it when
    /// there is one, else problem+json naming the rule.
    fn refusal(
        &self,
        contract: &Contract,
        op: &Operation,
        p: &Problem,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Response {
        let rule = p.rule();
        let (documented, status, title) = match p {
            Problem::Unauthorized { .. } => (
                op.exact(401)
                    .or_else(|| op.range(4))
                    .or_else(|| op.default()),
                401,
                "Credentials required",
            ),
            Problem::UnsupportedMediaType { .. } => (op.exact(415), 415, "Unsupported media type"),
            Problem::Invalid(_) => (
                op.exact(422)
                    .or_else(|| op.exact(400))
                    .or_else(|| op.range(4))
                    .or_else(|| op.default()),
                422,
                "Request does not match the document",
            ),
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let Some(r) = documented else {
            let mut extra = json!({"operation": op.id});
            if let Problem::Invalid(v) = p {
                extra["validation"] = json!([{"location": v.location, "rule": v.rule}]);
            }
            let mut resp = problem(code, title, &rule, Some(extra));
            if let Problem::Unauthorized { challenges, .. } = p {
                if let Ok(v) = HeaderValue::from_str(&challenges.join(", ")) {
                    if !challenges.is_empty() {
                        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            return resp;
        };
        let status = status_of(r, Some(status));
        let prefer = prefer(headers, query);
        let content = pick_content(r, headers).or_else(|| r.contents.first());
        let body = content.and_then(|c| {
            let named = prefer
                .example
                .as_ref()
                .and_then(|n| c.examples.iter().find(|(name, _)| name == n))
                .map(|(_, b)| b.clone());
            named
                .or_else(|| c.body.clone())
                .map(|b| with_message(contract, c.schema, &b, &rule).unwrap_or(b))
        });
        send(op, r, status, content.map(|c| c.media_type.as_str()), body)
    }

    /// The documented response the client asked for (or the first success).
    fn documented(
        &self,
        contract: &Contract,
        op: &Operation,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Response {
        let wanted = prefer(headers, query);
        let chosen = match &wanted.code {
            Some(Err(text)) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid preference",
                    &format!("code={text:?} is not an HTTP status code"),
                    None,
                )
            }
            Some(Ok(code)) => op.response(*code).map(|r| (r, status_of(r, Some(*code)))),
            None => op.default_response().map(|r| (r, status_of(r, None))),
        };
        let Some((r, status)) = chosen else {
            return match wanted.code {
                Some(Ok(code)) => problem(
                    StatusCode::NOT_FOUND,
                    "No such documented response",
                    &format!(
                        "Requested status code {code} is not defined in the document for {}",
                        op.id
                    ),
                    None,
                ),
                _ => problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No response documented",
                    &format!("{} documents no response", op.id),
                    None,
                ),
            };
        };
        if status < 200 {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Informational status",
                &format!(
                    "{} documents {status}, which HTTP sends only before a final response",
                    op.id
                ),
                None,
            );
        }
        if r.contents.is_empty() || status == 204 || status == 304 {
            return send(op, r, status, None, None);
        }
        let Some(content) = pick_content(r, headers) else {
            if let Some(doc406) = op.exact(406) {
                let c = doc406.contents.first();
                return send(
                    op,
                    doc406,
                    406,
                    c.map(|c| c.media_type.as_str()),
                    c.and_then(|c| c.body.clone()),
                );
            }
            let offered: Vec<&str> = r.contents.iter().map(|c| c.media_type.as_str()).collect();
            return problem(
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
                &format!(
                    "Accept: {} matches none of the documented media types of {} {status}: {}",
                    headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                    op.id,
                    offered.join(", ")
                ),
                None,
            );
        };
        let body = match (
            &wanted.example,
            wanted.dynamic.unwrap_or(self.config.dynamic),
        ) {
            (Some(name), _) => match content.examples.iter().find(|(n, _)| n == name) {
                Some((_, b)) => Some(b.clone()),
                None => {
                    return problem(
                        StatusCode::NOT_FOUND,
                        "No such documented example",
                        &format!(
                            "{} {status} {} has no example {name:?} (it has: {})",
                            op.id,
                            content.media_type,
                            content
                                .examples
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None,
                    )
                }
            },
            (None, true) => match content.schema {
                Some(s) => {
                    let seed = match self.config.seed {
                        Some(seed) => seed ^ fnv(&op.id) ^ u64::from(status),
                        None => self.next_seed() ^ fnv(&op.id).rotate_left(7) ^ now_nanos(),
                    };
                    let v = contract.schemas().dynamic_example(s, seed);
                    Some(encode(&content.media_type, &v))
                }
                None => content.body.clone(),
            },
            (None, false) => content.body.clone(),
        };
        send(op, r, status, Some(&content.media_type), body)
    }
}

/// The documented content to send for the request's `Accept` (None: nothing acceptable).
fn pick_content<'r>(
    r: &'r PreparedResponse,
    headers: &HeaderMap,
) -> Option<&'r invites_contract::ResponseMedia> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let offered: Vec<&str> = r.contents.iter().map(|c| c.media_type.as_str()).collect();
    media::negotiate(accept, &offered).map(|i| &r.contents[i])
}

fn encode(media_type: &str, v: &Value) -> Bytes {
    let essence = media::essence(media_type);
    match v {
        Value::String(s) if !(essence.ends_with("json") || essence == "*/*") => {
            Bytes::from(s.clone())
        }
        _ => Bytes::from(serde_json::to_vec(v).expect("JSON values serialize")),
    }
}

/// A documented error body with the broken rule in its `detail` or `message` text, when it has
/// one and the result still validates.
fn with_message(
    contract: &Contract,
    schema: Option<invites_contract::SchemaId>,
    body: &Bytes,
    rule: &str,
) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object_mut()?;
    let key = ["detail", "message"]
        .into_iter()
        .find(|k| o.get(*k).is_some_and(Value::is_string))?;
    o.insert(key.to_owned(), Value::String(rule.to_owned()));
    if let Some(s) = schema {
        contract
            .schemas()
            .validate(s, &v, "", invites_contract::Strictness::Exact)
            .ok()?;
    }
    Some(Bytes::from(serde_json::to_vec(&v).ok()?))
}

/// FNV-1a, to vary seeds by operation.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn send(
    op: &Operation,
    r: &PreparedResponse,
    status: u16,
    media_type: Option<&str>,
    body: Option<Bytes>,
) -> Response {
    let mut resp =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            resp = resp.header(n, v);
        }
    }
    if op.deprecated
        && !r
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("deprecation"))
    {
        resp = resp.header("deprecation", "true");
    }
    resp = resp.header("x-mock-operation", op.id.as_str());
    match (body, media_type) {
        (Some(b), Some(mt)) if status != 204 && status != 304 => {
            resp.content_type(mt).body(Body::from(b))
        }
        (None, Some(mt)) if status != 204 && status != 304 => resp.content_type(mt).finish(),
        _ => resp.finish(),
    }
}

impl Endpoint for Mock {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let req_headers = if self.config.cors {
            Some(req.headers().clone())
        } else {
            None
        };
        let (mut resp, op, violation) = self.answer(req).await;
        if let Some(h) = &req_headers {
            cors_headers(&mut resp, h);
        }
        if method == Method::HEAD {
            resp.set_body(Body::empty());
        }
        tracing::info!(
            target: "invites_mock::request",
            %method,
            path,
            status = resp.status().as_u16(),
            operation = op.as_deref().unwrap_or("-"),
            violation = violation.as_deref().unwrap_or("-"),
            latency_us = started.elapsed().as_micros() as u64
        );
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn prefer_reads_the_header_or_else_the_query() {
        let p = prefer(
            &headers(&[("prefer", "code=404, example=\"gone\"; dynamic=true")]),
            &[],
        );
        assert_eq!(p.code, Some(Ok(404)));
        assert_eq!(p.example.as_deref(), Some("gone"));
        assert_eq!(p.dynamic, Some(true));
        let q = vec![
            ("__code".to_owned(), "201".to_owned()),
            ("__dynamic".to_owned(), "true".to_owned()),
        ];
        let p = prefer(&HeaderMap::new(), &q);
        assert_eq!((p.code, p.dynamic), (Some(Ok(201)), Some(true)));
        let p = prefer(&headers(&[("prefer", "example=a")]), &q);
        assert_eq!(p.code, None, "a Prefer header replaces the query forms");
        let p = prefer(&headers(&[("prefer", "code=abc")]), &[]);
        assert_eq!(p.code, Some(Err("abc".into())));
    }

    #[test]
    fn fnv_differs_by_text() {
        assert_ne!(fnv("a"), fnv("b"));
    }
}
