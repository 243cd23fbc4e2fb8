//! Serving a mock on `127.0.0.1:0` for a test, and building, from a document, a request its
//! operation accepts (parameters from their schemas, a body, the credentials its security asks).

use std::path::PathBuf;
use std::sync::Arc;

use invites_contract::{Contract, Credential, Operation, ParamIn, Style};
use invites_mock::{Mock, MockConfig, Served};
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Serves `mock` on a free loopback port; its base URL and the mock.
pub async fn serve(mock: Mock) -> (String, Arc<Mock>) {
    let mock = Arc::new(mock);
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let endpoint = mock.endpoint();
    tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run(endpoint)
            .await
    });
    (format!("http://{addr}"), mock)
}

/// A mock of the document at `path` with `config`.
pub fn mock_of(path: &std::path::Path, config: MockConfig) -> Mock {
    let served = Served::load(path, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Mock::new(vec![served], config)
}

/// A mock of a document given as a JSON value.
pub fn mock_of_value(doc: Value, config: MockConfig) -> Mock {
    let contract = Contract::from_json(&doc.to_string()).unwrap();
    Mock::new(vec![Served::from_contract("test", contract)], config)
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `a[b][0]=x` pairs of a JSON value, as a form writes nested values.
fn form_pairs(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                form_pairs(&name, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                form_pairs(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), String::new())),
        other => out.push((prefix.to_owned(), text(other))),
    }
}

/// A request the operation accepts: method, path and query, headers, body.
pub struct Built {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

/// Builds a request `op` accepts: required parameters from their schemas' examples, a body in
/// its first documented media type, and the credentials of its first security alternative.
pub fn build(contract: &Contract, op: &Operation) -> Built {
    let schemas = contract.schemas();
    let mut path = op.template.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut cookies = Vec::new();
    for p in &op.params {
        let example = p
            .schema
            .map(|s| schemas.request_example(s))
            .unwrap_or_else(|| "x".into());
        let value = text(&example);
        match p.location {
            ParamIn::Path => {
                let v = match (&example, p.style) {
                    (Value::Array(items), _) => {
                        items.iter().map(text).collect::<Vec<_>>().join(",")
                    }
                    _ => value,
                };
                path = path.replace(&format!("{{{}}}", p.name), &encode(&v));
            }
            ParamIn::Query if p.required => match (&example, p.style) {
                (Value::Object(_), Style::DeepObject) => {
                    let mut pairs = Vec::new();
                    form_pairs(&p.name, &example, &mut pairs);
                    query.extend(pairs);
                }
                (Value::Array(items), _) if p.explode => {
                    query.extend(items.iter().map(|i| (p.name.clone(), text(i))))
                }
                (Value::Array(items), _) => query.push((
                    p.name.clone(),
                    items.iter().map(text).collect::<Vec<_>>().join(","),
                )),
                _ => query.push((p.name.clone(), value)),
            },
            ParamIn::Header if p.required => headers.push((p.name.clone(), value)),
            ParamIn::Cookie if p.required => cookies.push(format!("{}={value}", p.name)),
            _ => {}
        }
    }
    if let Some(alternative) = op.security.first() {
        for c in alternative {
            match c {
                Credential::Basic => {
                    headers.push(("Authorization".into(), "Basic dXNlcjpwYXNz".into()))
                }
                Credential::Bearer => headers.push(("Authorization".into(), "Bearer mock".into())),
                Credential::Digest => headers.push((
                    "Authorization".into(),
                    "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"/\", response=\"x\""
                        .into(),
                )),
                Credential::HttpScheme(s) => {
                    headers.push(("Authorization".into(), format!("{s} mock")))
                }
                Credential::Header(n) => headers.push((n.clone(), "mock".into())),
                Credential::Query(n) => query.push((n.clone(), "mock".into())),
                Credential::Cookie(n) => cookies.push(format!("{n}=mock")),
                Credential::MutualTls => {}
            }
        }
    }
    if !cookies.is_empty() {
        headers.push(("Cookie".into(), cookies.join("; ")));
    }
    let body = op.body.first().map(|m| {
        let example = m
            .schema
            .map(|s| schemas.request_example(s))
            .unwrap_or(Value::Null);
        let essence = invites_contract::media::essence(&m.media_type);
        let mut pairs = Vec::new();
        form_pairs("", &example, &mut pairs);
        if essence == "multipart/form-data" {
            let mut text = String::new();
            for (k, v) in &pairs {
                text.push_str(&format!(
                    "--mockboundary\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                ));
            }
            text.push_str("--mockboundary--\r\n");
            return (
                "multipart/form-data; boundary=mockboundary".to_owned(),
                text.into_bytes(),
            );
        }
        let bytes = if essence == "application/x-www-form-urlencoded" {
            let text = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            return (
                "application/x-www-form-urlencoded".to_owned(),
                text.into_bytes(),
            );
        } else if essence.contains("json") || essence == "*/*" {
            serde_json::to_vec(&example).unwrap()
        } else {
            text(&example).into_bytes()
        };
        let media = if m.media_type.contains('*') {
            "application/json".to_owned()
        } else {
            m.media_type.clone()
        };
        (media, bytes)
    });
    Built {
        path,
        query,
        headers,
        body,
    }
}

/// Sends `built` with `method` to `base`, with extra headers.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    built: &Built,
    extra: &[(&str, String)],
) -> reqwest::Response {
    let mut req = client
        .request(method.parse().unwrap(), format!("{base}{}", built.path))
        .query(&built.query);
    for (k, v) in &built.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    for (k, v) in extra {
        req = req.header(*k, v.as_str());
    }
    if let Some((media, bytes)) = &built.body {
        req = req
            .header("Content-Type", media.as_str())
            .body(bytes.clone());
    }
    req.send().await.unwrap()
}
