//! Answering requests: route, check credentials' presence, validate, pick the response, log.

use poem::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, Request, Response};
use serde_json::{json, Value};

use crate::document::{Credential, Operation, ParamIn, PreparedResponse, Route};
use crate::schema::Violation;
use crate::Mock;

/// Largest request body the mock reads.
const MAX_BODY: usize = 1024 * 1024;

fn json_response(status: StatusCode, v: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::to_vec(&v).expect("JSON values serialize"))
}

/// `Prefer: code=404, example=name` (Prism's spelling; `;` also separates).
#[derive(Debug, Default, PartialEq, Eq)]
struct Prefer {
    code: Option<u16>,
    example: Option<String>,
}

fn prefer(req: &Request) -> Prefer {
    let mut p = Prefer::default();
    for value in req
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in value.split([',', ';']) {
            match part.trim().split_once('=') {
                Some(("code", c)) => p.code = c.trim().trim_matches('"').parse().ok(),
                Some(("example", e)) => p.example = Some(e.trim().trim_matches('"').to_owned()),
                _ => {}
            }
        }
    }
    p
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path parameter values of `path` under `template`.
fn path_values<'p>(template: &str, path: &'p str) -> Vec<(String, &'p str)> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| {
            let (a, b) = (t.find('{')?, t.rfind('}')?);
            let name = t[a + 1..b].to_owned();
            let value = p.get(a..p.len().checked_sub(t.len() - b - 1)?)?;
            Some((name, value))
        })
        .collect()
}

fn credentials_present(op: &Operation, req: &Request, query: &[(String, String)]) -> bool {
    if op.security.is_empty() {
        return true;
    }
    op.security.iter().any(|alternative| {
        alternative.iter().all(|c| match c {
            Credential::AuthorizationHeader => req.headers().contains_key(header::AUTHORIZATION),
            Credential::Header(name) => req.headers().contains_key(name.as_str()),
            Credential::Query(name) => query.iter().any(|(k, _)| k == name),
            Credential::Cookie(name) => req
                .headers()
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| {
                    c.split(';')
                        .any(|kv| kv.trim().starts_with(&format!("{name}=")))
                }),
        })
    })
}

fn validate(
    op: &Operation,
    req: &Request,
    query: &[(String, String)],
    body: &[u8],
) -> Result<(), Violation> {
    let path_vals = path_values(&op.template, req.uri().path());
    for p in &op.params {
        let at = format!(
            "{}.{}",
            match p.location {
                ParamIn::Path => "path",
                ParamIn::Query => "query",
                ParamIn::Header => "header",
                ParamIn::Cookie => "cookie",
            },
            p.name
        );
        let values: Vec<String> = match p.location {
            ParamIn::Path => path_vals
                .iter()
                .filter(|(n, _)| *n == p.name)
                .map(|(_, v)| decode(v))
                .collect(),
            ParamIn::Query => query
                .iter()
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| v.clone())
                .collect(),
            ParamIn::Header => req
                .headers()
                .get_all(p.name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect(),
            ParamIn::Cookie => Vec::new(),
        };
        if values.is_empty() {
            if p.required && p.location != ParamIn::Cookie {
                return Err(Violation {
                    location: at,
                    rule: "is required".into(),
                });
            }
            continue;
        }
        if let Some(schema) = &p.schema {
            let texts: Vec<&str> = values.iter().map(String::as_str).collect();
            schema.validate_texts(&texts, &at)?;
        }
    }
    if body.is_empty() {
        if op.body_required {
            return Err(Violation {
                location: "body".into(),
                rule: "is required".into(),
            });
        }
        return Ok(());
    }
    let content_type = req.content_type().unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !op.body_media_types.is_empty()
        && !op
            .body_media_types
            .iter()
            .any(|m| m.split(';').next().unwrap_or("").trim() == essence)
    {
        return Err(Violation {
            location: "header.Content-Type".into(),
            rule: format!("must be one of {}", op.body_media_types.join(", ")),
        });
    }
    if let Some(schema) = &op.body_schema {
        if essence == "application/json" || essence.ends_with("+json") {
            let v: Value = serde_json::from_slice(body).map_err(|e| Violation {
                location: "body".into(),
                rule: format!("must be valid JSON ({e})"),
            })?;
            schema.validate(&v, "body")?;
        }
    }
    Ok(())
}

fn send(
    op: &Operation,
    r: &PreparedResponse,
    status: u16,
    body: Option<&bytes::Bytes>,
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
    resp = resp.header("x-mock-operation", op.id.as_str());
    match (body, &r.media_type) {
        (Some(b), Some(mt)) if status != 204 && status != 304 => {
            resp.content_type(mt.as_str()).body(Body::from(b.clone()))
        }
        _ => resp.finish(),
    }
}

fn status_of(r: &PreparedResponse, asked: Option<u16>) -> u16 {
    r.status
        .or(asked)
        .unwrap_or_else(|| r.range.map(|d| d * 100).unwrap_or(200))
}

impl Mock {
    async fn answer(&self, mut req: Request) -> (Response, Option<String>) {
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_owned();
        let index = match self.prepared.router.route(&path, &method) {
            Route::Found(i) => i,
            Route::WrongMethod(allowed) => {
                let mut resp = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    json!({"error": "method not allowed", "path": path, "allowed": allowed}),
                );
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
                return (resp, None);
            }
            Route::NotFound => {
                return (
                    json_response(
                        StatusCode::NOT_FOUND,
                        json!({"error": "no documented path matches", "path": path}),
                    ),
                    None,
                )
            }
        };
        let op = &self.prepared.operations[index];
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        if !credentials_present(op, &req, &query) {
            let r = op.response(401).or_else(|| op.response(403));
            let resp = match r {
                Some(r) => send(op, r, status_of(r, Some(401)), r.body.as_ref()),
                None => json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "credentials required by the operation's security"}),
                ),
            };
            return (resp, Some(op.id.clone()));
        }
        let body = match req.take_body().into_bytes_limit(MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return (
                    json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({"error": "request body over 1 MiB"}),
                    ),
                    Some(op.id.clone()),
                )
            }
        };
        if let Err(v) = validate(op, &req, &query, &body) {
            let message = format!("{} {}", v.location, v.rule);
            let mut resp = match op.response(400).filter(|r| r.status == Some(400)) {
                Some(r) => {
                    let mut documented: Value = r
                        .body
                        .as_deref()
                        .and_then(|b| serde_json::from_slice(b).ok())
                        .unwrap_or(Value::Null);
                    if let Some(o) = documented.as_object_mut() {
                        for key in ["detail", "message"] {
                            if o.get(key).is_some_and(Value::is_string)
                                || (key == "detail" && o.contains_key("errorCode"))
                            {
                                o.insert(key.to_owned(), Value::String(message.clone()));
                                break;
                            }
                        }
                    }
                    send(
                        op,
                        r,
                        400,
                        Some(&bytes::Bytes::from(
                            serde_json::to_vec(&documented).expect("serializes"),
                        )),
                    )
                }
                None => json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": "request does not match the contract", "location": v.location, "rule": v.rule, "operation": op.id}),
                ),
            };
            if let Ok(h) = HeaderValue::from_str(&message) {
                resp.headers_mut().insert("x-mock-violation", h);
            }
            resp.headers_mut().insert(
                "x-mock-operation",
                HeaderValue::from_str(&op.id).unwrap_or(HeaderValue::from_static("-")),
            );
            return (resp, Some(op.id.clone()));
        }
        let wanted = prefer(&req);
        let chosen = match wanted.code {
            Some(code) => op.response(code).map(|r| (r, code)),
            None => op.default_response().map(|r| (r, status_of(r, None))),
        };
        let Some((r, status)) = chosen else {
            let resp = json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "no such documented response", "rule": format!("Prefer: code={} is not documented for {}", wanted.code.unwrap_or(0), op.id)}),
            );
            return (resp, Some(op.id.clone()));
        };
        if status < 200 {
            let resp = json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "informational statuses cannot be a final answer", "rule": format!("{} documents {status}, which HTTP sends only before a final response", op.id)}),
            );
            return (resp, Some(op.id.clone()));
        }
        let body = match &wanted.example {
            Some(name) => match r.examples.iter().find(|(n, _)| n == name) {
                Some((_, b)) => Some(b),
                None => {
                    let resp = json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"error": "no such documented example", "rule": format!("Prefer: example={name} is not documented for {} {status}", op.id)}),
                    );
                    return (resp, Some(op.id.clone()));
                }
            },
            None => r.body.as_ref(),
        };
        (send(op, r, status, body), Some(op.id.clone()))
    }
}

impl Endpoint for Mock {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let (resp, op) = self.answer(req).await;
        if method != Method::HEAD {
            tracing::info!(target: "invites_mock::request", %method, path, status = resp.status().as_u16(), operation = op.as_deref().unwrap_or("-"), latency_us = started.elapsed().as_micros() as u64);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_follow_the_template() {
        assert_eq!(
            path_values("/a/{x}/b/{y}.json", "/a/1/b/two.json"),
            vec![("x".to_owned(), "1"), ("y".to_owned(), "two")]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%40b+c"), "a@b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
