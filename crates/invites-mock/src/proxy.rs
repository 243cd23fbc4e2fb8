//! Proxy mode: every request goes to the real server, and both the request and the real answer
//! are judged by the document. Each violation is logged, named in `X-Mock-Violation`, and
//! counted for the summary printed at exit; with `--errors` a violation answers 502 with a
//! problem+json body instead of passing the answer through.

use bytes::Bytes;
use invites_contract::{check_security, Contract, Operation, RequestParts};
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Request, Response};
use serde_json::json;

use crate::server::problem;
use crate::Mock;

/// Headers that belong to one connection, not forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Largest answer read from the real server.
const MAX_UPSTREAM_BODY: usize = 32 * 1024 * 1024;

impl Mock {
    /// Forwards a request no operation of the document matches (a violation in itself).
    pub(crate) async fn forward_unknown(&self, mut req: Request) -> Response {
        let rule = format!(
            "no documented operation matches {} {}",
            req.method(),
            req.uri().path()
        );
        self.record_violation("-", &rule);
        tracing::warn!(target: "invites_mock::violation", operation = "-", rule, "contract violation");
        if self.config.proxy.as_ref().is_some_and(|p| p.errors) {
            return violations_answer(&[rule]);
        }
        let body = req.take_body().into_bytes().await.unwrap_or_default();
        let mut resp = match self.upstream(&req, body).await {
            Ok((resp, _)) => resp,
            Err(resp) => return resp,
        };
        if let Ok(v) = HeaderValue::from_str(&rule) {
            resp.headers_mut().append("x-mock-violation", v);
        }
        resp
    }

    /// Proxies a request that matched `op`, judging it and the answer.
    pub(crate) async fn proxy(
        &self,
        contract: &Contract,
        op: &Operation,
        req: &Request,
        parts: &RequestParts<'_>,
        body: Bytes,
    ) -> (Response, Option<String>) {
        let mut violations: Vec<String> = Vec::new();
        if let Err(p) = check_security(op, parts).and_then(|()| contract.check_request(op, parts)) {
            violations.push(format!("request: {}", p.rule()));
        }
        let errors = self.config.proxy.as_ref().is_some_and(|p| p.errors);
        if errors && !violations.is_empty() {
            self.report(op, &violations);
            return (violations_answer(&violations), violations.first().cloned());
        }
        let (mut resp, answer) = match self.upstream(req, body).await {
            Ok(r) => r,
            Err(resp) => return (resp, None),
        };
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Err(e) =
            contract.check_response(op, resp.status().as_u16(), content_type.as_deref(), &answer)
        {
            violations.push(format!("response: {e}"));
        }
        if violations.is_empty() {
            return (resp, None);
        }
        self.report(op, &violations);
        if errors {
            return (violations_answer(&violations), violations.first().cloned());
        }
        for v in &violations {
            if let Ok(h) = HeaderValue::from_str(v) {
                resp.headers_mut().append("x-mock-violation", h);
            }
        }
        let first = violations.first().cloned();
        (resp, first)
    }

    fn report(&self, op: &Operation, violations: &[String]) {
        for v in violations {
            tracing::warn!(target: "invites_mock::violation", operation = op.id, rule = v, "contract violation");
            self.record_violation(&op.id, v);
        }
    }

    /// Sends the request to the real server; its answer (rebuilt, with its body) or a 502 when
    /// it cannot be reached.
    async fn upstream(&self, req: &Request, body: Bytes) -> Result<(Response, Bytes), Response> {
        let (Some(client), Some(proxy)) = (&self.client, &self.config.proxy) else {
            return Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not a proxy",
                "proxy mode is off",
                None,
            ));
        };
        let target = format!(
            "{}{}{}",
            proxy.upstream.trim_end_matches('/'),
            req.uri().path(),
            req.uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let mut out = client.request(req.method().clone(), &target);
        for (name, value) in req.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out = out.header(name, value);
            }
        }
        let answer = match out.body(body).send().await {
            Ok(a) => a,
            Err(e) => {
                return Err(problem(
                    StatusCode::BAD_GATEWAY,
                    "Upstream unreachable",
                    &format!("{target}: {e}"),
                    None,
                ))
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = match answer.bytes().await {
            Ok(b) if b.len() <= MAX_UPSTREAM_BODY => b,
            Ok(_) => {
                return Err(problem(
                    StatusCode::BAD_GATEWAY,
                    "Upstream answer too large",
                    &format!("{target} answered more than {MAX_UPSTREAM_BODY} bytes"),
                    None,
                ))
            }
            Err(e) => {
                return Err(problem(
                    StatusCode::BAD_GATEWAY,
                    "Upstream answer unreadable",
                    &format!("{target}: {e}"),
                    None,
                ))
            }
        };
        let mut resp = Response::builder().status(status);
        for (name, value) in &headers {
            if !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
                resp = resp.header(name, value);
            }
        }
        Ok((resp.body(bytes.clone()), bytes))
    }
}

/// `--errors`: the violations as a 502 problem+json.
fn violations_answer(violations: &[String]) -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "Contract violation",
        &format!(
            "the request or the real answer breaks the document: {}",
            violations.join("; ")
        ),
        Some(json!({"violations": violations})),
    )
}
