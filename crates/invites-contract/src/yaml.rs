//! YAML documents as JSON values, built from the parser's events (`saphyr-parser`, pure Rust,
//! YAML 1.2) with limits on nesting and on what aliases expand to, so a hostile or broken file
//! gets an error naming its line rather than exhausting memory or the stack.
//!
//! OpenAPI documents need only JSON's data model; YAML's extras map onto it: keys are the text
//! of scalar keys (`200:` is the key `"200"`), merge keys (`<<: *base`) copy the keys the mapping
//! does not set itself, plain scalars follow the YAML 1.2 core schema (`true`, `~`, `0x1F`,
//! `.inf`), tags other than the core ones are ignored, and numbers JSON cannot hold (`.nan`,
//! `.inf`) stay text.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Bounds on what a YAML text may turn into.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of sequences and mappings (serde_json refuses JSON past 128 as well).
    pub max_depth: usize,
    /// Most values (scalars, sequences, mappings) the document may hold once aliases are
    /// expanded: what refuses a "billion laughs" before it is built.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 128,
            // The largest real document at hand (Stripe's, 3.2 MB of YAML) holds about 300,000.
            max_values: 4_000_000,
        }
    }
}

/// Why a YAML text is not a document, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.col, self.message
        )
    }
}

enum Frame {
    Sequence {
        items: Vec<Value>,
        anchor: usize,
        values: usize,
    },
    Mapping {
        entries: Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<String>,
        /// Mappings named by `<<`, applied at the end (keys the mapping sets win).
        merges: Vec<Value>,
        anchor: usize,
        values: usize,
    },
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    /// Anchored values by anchor id, with how many values each holds.
    anchors: HashMap<usize, (Value, usize)>,
    /// Values built so far, aliases counted at their expanded size.
    values: usize,
    root: Option<Value>,
}

fn error(span: &Span, message: impl Into<String>) -> YamlError {
    YamlError {
        line: span.start.line(),
        col: span.start.col() + 1,
        message: message.into(),
    }
}

/// A plain scalar's value under the YAML 1.2 core schema.
fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = integer(text) {
        return Value::Number(n);
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

fn integer(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude).ok()?;
        Some(Number::from(-n))
    } else {
        Some(Number::from(magnitude))
    }
}

/// A scalar's value: quoted scalars are text, plain ones follow the core schema, and the core
/// tags (`!!str`, `!!int`, ...) decide when present.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag.filter(|t| t.handle == "tag:yaml.org,2002:" || t.handle == "!!") {
        match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => return Value::String(text.to_owned()),
            "null" => return Value::Null,
            "bool" | "int" | "float" => return plain(text),
            _ => {}
        }
    }
    match style {
        ScalarStyle::Plain => plain(text),
        _ => Value::String(text.to_owned()),
    }
}

/// The text a key stands for: JSON keys are strings.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Builder {
    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.values = self.values.saturating_add(n);
        if self.values > self.limits.max_values {
            return Err(error(
                span,
                format!(
                    "the document expands to more than {} values (aliases repeating a large \
                     part of it?)",
                    self.limits.max_values
                ),
            ));
        }
        if let Some(Frame::Sequence { values, .. } | Frame::Mapping { values, .. }) =
            self.stack.last_mut()
        {
            *values += n;
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, span: &Span) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(error(
                span,
                format!("nested deeper than {} levels", self.limits.max_depth),
            ));
        }
        self.count(1, span)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Places a finished value (`values` of them in all) in its parent, or as the document.
    fn place(
        &mut self,
        value: Value,
        values: usize,
        anchor: usize,
        style: Option<ScalarStyle>,
        span: &Span,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), values));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(error(span, "several YAML documents in one file"));
                }
                self.root = Some(value);
            }
            Some(Frame::Sequence {
                items, values: n, ..
            }) => {
                items.push(value);
                *n += values;
            }
            Some(Frame::Mapping {
                entries,
                key,
                merges,
                values: n,
                ..
            }) => {
                *n += values;
                match key.take() {
                    None => {
                        let text = key_text(&value).ok_or_else(|| {
                            error(span, "a mapping key that is a sequence or a mapping")
                        })?;
                        // `<<` is a merge key only when written plain.
                        if text == "<<" && style == Some(ScalarStyle::Plain) {
                            *key = Some(MERGE.to_owned());
                        } else {
                            *key = Some(text);
                        }
                    }
                    Some(k) if k == MERGE => match value {
                        Value::Object(_) => merges.push(value),
                        Value::Array(items) if items.iter().all(Value::is_object) => {
                            merges.extend(items)
                        }
                        _ => return Err(error(span, "`<<` merges a mapping or a list of them")),
                    },
                    Some(k) => {
                        entries.insert(k, value);
                    }
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), YamlError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                let value = scalar(&text, style, tag.as_deref());
                self.place(value, 1, anchor, Some(style), span)
            }
            Event::Alias(id) => {
                let (value, values) =
                    self.anchors.get(&id).cloned().ok_or_else(|| {
                        error(span, "an alias to an anchor not defined before it")
                    })?;
                self.count(values, span)?;
                self.place(value, values, 0, None, span)
            }
            Event::SequenceStart(anchor, _) => self.open(
                Frame::Sequence {
                    items: Vec::new(),
                    anchor,
                    values: 1,
                },
                span,
            ),
            Event::MappingStart(anchor, _) => self.open(
                Frame::Mapping {
                    entries: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    anchor,
                    values: 1,
                },
                span,
            ),
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Sequence {
                    items,
                    anchor,
                    values,
                }) => self.place(Value::Array(items), values, anchor, None, span),
                _ => Err(error(span, "unbalanced sequence")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Mapping {
                    mut entries,
                    merges,
                    anchor,
                    values,
                    ..
                }) => {
                    for merged in merges {
                        if let Value::Object(m) = merged {
                            for (k, v) in m {
                                entries.entry(k).or_insert(v);
                            }
                        }
                    }
                    self.place(Value::Object(entries), values, anchor, None, span)
                }
                _ => Err(error(span, "unbalanced mapping")),
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => Ok(()),
        }
    }
}

/// The key under which a `<<` waits for the mapping it merges (not a possible YAML key text).
const MERGE: &str = "\u{0}<<";

/// Reads a YAML text (one document) into a JSON value.
pub fn to_json(text: &str, limits: Limits) -> Result<Value, YamlError> {
    let mut builder = Builder {
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        values: 0,
        root: None,
    };
    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| YamlError {
            line: e.marker().line(),
            col: e.marker().col() + 1,
            message: match e.info() {
                // The parser's own bound on flow nesting.
                "recursion limit exceeded" => "nested too deeply".to_owned(),
                info => info.to_owned(),
            },
        })?;
        builder.event(event, &span)?;
    }
    Ok(builder.root.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        to_json(text, Limits::default()).unwrap()
    }

    #[test]
    fn openapi_shapes_become_json() {
        let v = yaml(
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        200:\n          description: ok\n        '404': {description: gone}\n",
        );
        assert_eq!(
            v,
            json!({"openapi": "3.0.0", "paths": {"/a": {"get": {"responses": {
                "200": {"description": "ok"}, "404": {"description": "gone"}}}}}})
        );
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let v = yaml("[~, null, true, False, 12, -7, 0x1F, 0o17, 1.5, 2e3, .inf, '12', \"true\", 3.0.1, !!str 5, yes]");
        assert_eq!(
            v,
            json!([
                null, null, true, false, 12, -7, 31, 15, 1.5, 2000.0, ".inf", "12", "true",
                "3.0.1", "5", "yes"
            ])
        );
        assert_eq!(
            yaml("big: 123456789012345678901234567890"),
            json!({"big": 1.2345678901234568e29})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let v = yaml(
            "base: &b {type: string, maxLength: 3}\nuse: *b\nmerged:\n  <<: *b\n  maxLength: 9\nlist:\n  <<: [*b, {format: uuid}]\n",
        );
        assert_eq!(v["use"], json!({"type": "string", "maxLength": 3}));
        assert_eq!(
            v["merged"],
            json!({"type": "string", "maxLength": 9}),
            "the mapping's own keys win"
        );
        assert_eq!(
            v["list"],
            json!({"type": "string", "maxLength": 3, "format": "uuid"})
        );
        assert_eq!(yaml("'<<': 1")["<<"], 1, "a quoted << is an ordinary key");
    }

    #[test]
    fn alias_bombs_are_refused_by_size() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = to_json(&text, Limits::default()).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err}");
        assert!(err.line >= 5, "{err}");
    }

    #[test]
    fn deep_nesting_and_broken_text_name_the_line() {
        let deep = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = to_json(&deep, Limits::default()).unwrap_err();
        assert!(err.message.contains("nested"), "{err}");
        let block: String = (0..200)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        let err = to_json(&block, Limits::default()).unwrap_err();
        assert!(err.message.contains("nested deeper than 128"), "{err}");
        let err = to_json("a: 1\nb: [1, 2\n", Limits::default()).unwrap_err();
        assert!(err.line >= 2, "{err}");
        let err = to_json("a: 1\n---\nb: 2\n", Limits::default()).unwrap_err();
        assert!(err.message.contains("several YAML documents"), "{err}");
        let err = to_json("? [a, b]\n: 1\n", Limits::default()).unwrap_err();
        assert!(err.message.contains("mapping key"), "{err}");
    }
}
