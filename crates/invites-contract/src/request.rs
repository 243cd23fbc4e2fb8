//! A request judged by its operation: credentials present as its `security` asks, parameters
//! read in their documented `style`, and the body, in any documented media type (JSON, forms
//! with bracketed names, multipart, text), valid against its schema.

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::document::{Credential, Operation, ParamIn, Style};
use crate::schema::{SchemaId, Schemas, Strictness, Violation};

/// The parts of a request the document speaks of.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The path, without the document's base path.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What is wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Credentials the operation's `security` asks for are missing; the challenges of the
    /// schemes that have one (for `WWW-Authenticate`).
    Unauthorized {
        rule: String,
        challenges: Vec<String>,
    },
    /// The body's media type is not one the operation takes.
    UnsupportedMediaType { sent: String, accepted: Vec<String> },
    /// A parameter or the body breaks the document.
    Invalid(Violation),
}

impl Problem {
    /// The rule broken, in one line (for logs and `X-Mock-Violation`).
    pub fn rule(&self) -> String {
        match self {
            Problem::Unauthorized { rule, .. } => rule.clone(),
            Problem::UnsupportedMediaType { sent, accepted } => {
                if accepted.is_empty() {
                    format!("the operation takes no request body, got {sent}")
                } else {
                    format!("Content-Type {sent} is not one of {}", accepted.join(", "))
                }
            }
            Problem::Invalid(v) => format!("{} {}", v.location, v.rule),
        }
    }
}

/// `%41` and `+` decoded, as in a query string or a form.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2&a=3` as decoded pairs, in order.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// The path parameter values of `path` under `template`.
pub fn path_values<'p>(template: &str, path: &'p str) -> Vec<(String, &'p str)> {
    let mut out = Vec::new();
    for (t, p) in template.split('/').zip(path.split('/')) {
        // A segment with its braces the wrong way round (`id}.{ext`) names no parameter.
        let (Some(a), Some(b)) = (t.find('{'), t.rfind('}')) else {
            continue;
        };
        if b < a {
            continue;
        }
        let suffix_len = t.len() - b - 1;
        let inner = &t[a + 1..b];
        let Some(value) = p.get(a..p.len().saturating_sub(suffix_len)) else {
            continue;
        };
        // Several parameters in one segment (`{base}...{head}`): split at the literal between.
        match inner.split_once('}') {
            Some((first, rest)) => {
                let (literal, second) = rest.split_once('{').unwrap_or((rest, ""));
                if let Some((x, y)) = value.split_once(literal) {
                    out.push((first.to_owned(), x));
                    out.push((second.to_owned(), y));
                }
            }
            None => out.push((inner.to_owned(), value)),
        }
    }
    out
}

fn authorization(headers: &HeaderMap) -> Option<(String, &str)> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    Some((scheme.to_ascii_lowercase(), rest.trim()))
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|c| c.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then_some(v)
        })
}

fn present(c: &Credential, req: &RequestParts, query: &[(String, String)]) -> bool {
    use base64::Engine;
    let auth = authorization(req.headers);
    match c {
        Credential::Basic => auth.is_some_and(|(s, rest)| {
            s == "basic"
                && base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .is_some_and(|t| t.contains(':'))
        }),
        Credential::Bearer => auth.is_some_and(|(s, rest)| s == "bearer" && !rest.is_empty()),
        Credential::Digest => {
            auth.is_some_and(|(s, rest)| s == "digest" && rest.contains("username="))
        }
        Credential::HttpScheme(scheme) => {
            auth.is_some_and(|(s, rest)| s == *scheme && !rest.is_empty())
        }
        Credential::Header(name) => req
            .headers
            .get(name.as_str())
            .is_some_and(|v| !v.is_empty()),
        Credential::Query(name) => query.iter().any(|(k, v)| k == name && !v.is_empty()),
        Credential::Cookie(name) => cookie(req.headers, name).is_some(),
        Credential::MutualTls => true,
    }
}

fn describe(c: &Credential) -> String {
    match c {
        Credential::Basic => "Authorization: Basic".into(),
        Credential::Bearer => "Authorization: Bearer".into(),
        Credential::Digest => "Authorization: Digest".into(),
        Credential::HttpScheme(s) => format!("Authorization: {s}"),
        Credential::Header(n) => format!("header {n}"),
        Credential::Query(n) => format!("query parameter {n}"),
        Credential::Cookie(n) => format!("cookie {n}"),
        Credential::MutualTls => "a client certificate".into(),
    }
}

/// Whether the credentials `op.security` asks for are present (their values are not checked).
pub fn check_security(op: &Operation, req: &RequestParts) -> Result<(), Problem> {
    if op.security.is_empty() {
        return Ok(());
    }
    let query = pairs(req.query);
    if op
        .security
        .iter()
        .any(|alt| alt.iter().all(|c| present(c, req, &query)))
    {
        return Ok(());
    }
    let wanted: Vec<String> = op
        .security
        .iter()
        .map(|alt| alt.iter().map(describe).collect::<Vec<_>>().join(" and "))
        .collect();
    let mut challenges: Vec<String> = op
        .security
        .iter()
        .flatten()
        .filter_map(Credential::challenge)
        .collect();
    challenges.dedup();
    Err(Problem::Unauthorized {
        rule: format!("credentials required: {}", wanted.join(", or ")),
        challenges,
    })
}

/// Sets `value` at a bracketed name's place in `root`: `a[b][c]`, `a[]` and `a[0]`.
fn insert_bracketed(root: &mut Map<String, Value>, name: &str, value: Value) {
    let (head, rest) = match name.find('[') {
        Some(i) if name.ends_with(']') => (&name[..i], &name[i..]),
        _ => {
            append(root, name, value);
            return;
        }
    };
    let keys: Vec<&str> = rest
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split("][")
        .collect();
    let mut slot = root.entry(head.to_owned()).or_insert(Value::Null);
    for (i, key) in keys.iter().enumerate() {
        let last = i == keys.len() - 1;
        let index = if key.is_empty() {
            None
        } else {
            key.parse::<usize>().ok()
        };
        if key.is_empty() || index.is_some() {
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            let items = slot.as_array_mut().expect("made an array");
            let at = match index {
                Some(n) if n < items.len() => n,
                Some(n) if n < 10_000 => {
                    items.resize(n + 1, Value::Null);
                    n
                }
                _ => {
                    items.push(Value::Null);
                    items.len() - 1
                }
            };
            if last {
                items[at] = value;
                return;
            }
            slot = &mut items[at];
        } else {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let map = slot.as_object_mut().expect("made an object");
            if last {
                append(map, key, value);
                return;
            }
            slot = map.entry((*key).to_owned()).or_insert(Value::Null);
        }
    }
}

/// A repeated plain name collects its values in an array.
fn append(map: &mut Map<String, Value>, name: &str, value: Value) {
    match map.get_mut(name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(name.to_owned(), value);
        }
    }
}

/// A form body (`a=1&b[c]=2`) as an object of strings, shaped by bracketed names.
pub fn form_object(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut root = Map::new();
    for (k, v) in pairs {
        insert_bracketed(&mut root, k, Value::String(v.clone()));
    }
    root
}

/// The parts of a `multipart/form-data` body as (name, text) pairs.
pub fn multipart_pairs(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_owned())
        .ok_or("multipart/form-data without a boundary")?;
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';')
                    .filter_map(|p| p.trim().strip_prefix("name="))
                    .next()
            })
            .map(|n| n.trim_matches('"').to_owned())
            .ok_or("a multipart part without a name")?;
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        out.push((name, content.to_owned()));
    }
    Ok(out)
}

/// A parameter's value as its schema reads it, from the request, or None when absent.
fn param_value(
    schemas: &Schemas,
    schema: Option<SchemaId>,
    p: &crate::document::Param,
    req: &RequestParts,
    query: &[(String, String)],
    path_vals: &[(String, &str)],
) -> Result<Option<Value>, String> {
    let raw: Vec<String> = match p.location {
        ParamIn::Path => path_vals
            .iter()
            .filter(|(n, _)| *n == p.name)
            .map(|(_, v)| crate::load::percent_decode(v))
            .collect(),
        ParamIn::Query if p.style == Style::DeepObject => {
            let prefix = format!("{}[", p.name);
            let nested: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .cloned()
                .collect();
            if nested.is_empty() {
                return Ok(None);
            }
            let object = form_object(&nested);
            let value = object.get(&p.name).cloned().unwrap_or(Value::Null);
            return Ok(Some(match schema {
                Some(s) => schemas.coerce(s, value),
                None => value,
            }));
        }
        ParamIn::Query => query
            .iter()
            .filter(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone())
            .collect(),
        ParamIn::Header => req
            .headers
            .get_all(p.name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect(),
        ParamIn::Cookie => cookie(req.headers, &p.name)
            .map(|c| vec![form_decode(c)])
            .unwrap_or_default(),
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let Some(schema) = schema else {
        return Ok(Some(Value::String(raw[0].clone())));
    };
    // One text holding several values, split as the style writes them.
    let separator = match (p.style, p.explode) {
        (Style::SpaceDelimited, _) => Some(' '),
        (Style::PipeDelimited, _) => Some('|'),
        (Style::Form, false) | (Style::Simple, _) => Some(','),
        _ => None,
    };
    let mut texts: Vec<String> = raw;
    if p.location == ParamIn::Path {
        texts = texts
            .into_iter()
            .map(|t| match p.style {
                Style::Label => t.trim_start_matches('.').replace('.', ","),
                Style::Matrix => t
                    .trim_start_matches(';')
                    .split(';')
                    .map(|kv| kv.split_once('=').map_or(kv, |(_, v)| v))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => t,
            })
            .collect();
    }
    if schemas.expects_array(schema) {
        if let Some(sep) =
            separator.or(matches!(p.style, Style::Label | Style::Matrix).then_some(','))
        {
            texts = texts
                .iter()
                .flat_map(|t| t.split(sep).map(str::to_owned).collect::<Vec<_>>())
                .collect();
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    schemas.text_value(schema, &refs).map(Some)
}

/// Checks parameters and body; the first broken rule is returned.
pub fn check_request(schemas: &Schemas, op: &Operation, req: &RequestParts) -> Result<(), Problem> {
    let query = pairs(req.query);
    let path_vals = path_values(&op.template, req.path);
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
        let value = param_value(schemas, p.schema, p, req, &query, &path_vals).map_err(|rule| {
            Problem::Invalid(Violation {
                location: at.clone(),
                rule,
            })
        })?;
        match (value, p.schema) {
            (None, _) if p.required => {
                return Err(Problem::Invalid(Violation {
                    location: at,
                    rule: "is required".into(),
                }))
            }
            (Some(v), Some(s)) => schemas
                .validate(s, &v, &at, Strictness::Lenient)
                .map_err(Problem::Invalid)?,
            _ => {}
        }
    }
    check_body(schemas, op, req)
}

fn check_body(schemas: &Schemas, op: &Operation, req: &RequestParts) -> Result<(), Problem> {
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if req.body.is_empty() {
        if op.body_required {
            return Err(Problem::Invalid(Violation {
                location: "body".into(),
                rule: "is required".into(),
            }));
        }
        return Ok(());
    }
    let media = match content_type {
        Some(ct) => op.request_media(ct),
        // No Content-Type: the one documented type, or JSON among several.
        None if op.body.len() == 1 => op.body.first(),
        None => op
            .body
            .iter()
            .find(|m| crate::media::covers("application/json", &m.media_type)),
    };
    let Some(media) = media else {
        return Err(Problem::UnsupportedMediaType {
            sent: content_type.unwrap_or("(none)").to_owned(),
            accepted: op.body.iter().map(|m| m.media_type.clone()).collect(),
        });
    };
    let Some(schema) = media.schema else {
        return Ok(());
    };
    let sent = content_type
        .map(crate::media::essence)
        .unwrap_or_else(|| crate::media::essence(&media.media_type));
    let invalid = |rule: String| {
        Problem::Invalid(Violation {
            location: "body".into(),
            rule,
        })
    };
    let value = if sent == "application/json" || sent.ends_with("+json") || sent == "*/*" {
        serde_json::from_slice::<Value>(req.body)
            .map_err(|e| invalid(format!("must be valid JSON ({e})")))?
    } else if sent == "application/x-www-form-urlencoded" || sent == "multipart/form-data" {
        let pairs = if sent == "multipart/form-data" {
            multipart_pairs(content_type.unwrap_or(""), req.body).map_err(invalid)?
        } else {
            pairs(&String::from_utf8_lossy(req.body))
        };
        let mut object = form_object(&pairs);
        // Properties encoded as one comma-separated text (`explode: false`).
        for (name, style, explode) in &media.encoding {
            if let (Some(Value::String(text)), false) = (object.get(name), *explode) {
                let sep = match style {
                    Style::SpaceDelimited => ' ',
                    Style::PipeDelimited => '|',
                    _ => ',',
                };
                let items = text
                    .split(sep)
                    .map(|t| Value::String(t.to_owned()))
                    .collect();
                object.insert(name.clone(), Value::Array(items));
            }
        }
        schemas.coerce(schema, Value::Object(object))
    } else if sent.starts_with("text/") {
        Value::String(String::from_utf8_lossy(req.body).into_owned())
    } else {
        // Binary and other media types: present is all the mock can say.
        return Ok(());
    };
    schemas
        .validate(schema, &value, "body", Strictness::Lenient)
        .map_err(Problem::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_names_build_objects_and_arrays() {
        let p = pairs("metadata[key]=v&metadata[n]=2&items[0][price]=p1&items[1][price]=p2&tags[]=a&tags[]=b&x=1&x=2&plain=%41+b");
        let o = Value::Object(form_object(&p));
        assert_eq!(
            o,
            serde_json::json!({
                "metadata": {"key": "v", "n": "2"},
                "items": [{"price": "p1"}, {"price": "p2"}],
                "tags": ["a", "b"],
                "x": ["1", "2"],
                "plain": "A b"
            })
        );
    }

    #[test]
    fn multipart_parts_are_read_by_name() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";
        let p = multipart_pairs("multipart/form-data; boundary=XyZ", body.as_bytes()).unwrap();
        assert_eq!(
            p,
            [("a".into(), "1".into()), ("file".into(), "hello".into())]
        );
        assert!(multipart_pairs("multipart/form-data", b"").is_err());
    }

    #[test]
    fn path_values_follow_the_template() {
        assert_eq!(
            path_values("/a/{x}/b/{y}.json", "/a/1/b/two.json"),
            vec![("x".to_owned(), "1"), ("y".to_owned(), "two")]
        );
        assert_eq!(
            path_values("/compare/{base}...{head}", "/compare/main...dev"),
            vec![("base".to_owned(), "main"), ("head".to_owned(), "dev")]
        );
    }

    /// Found by the contract_load fuzz target (a 120 s run): a document's path segment with
    /// its braces the wrong way round panicked slicing the template. It names no parameter.
    #[test]
    fn a_segment_with_braces_the_wrong_way_round_names_nothing() {
        assert_eq!(
            path_values("/things/sid}.{exty", "/things/abc.json"),
            vec![]
        );
        assert_eq!(path_values("/a/}{", "/a/x"), vec![]);
        assert_eq!(
            path_values("/a/{x}/b/y}{", "/a/1/b/z"),
            vec![("x".to_owned(), "1")]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(form_decode("a%40b+c"), "a@b c");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
        assert_eq!(form_decode("%e2%82%ac"), "€");
    }
}
