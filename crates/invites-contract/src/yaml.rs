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
    /// expanded.
    pub max_values: usize,
    /// Most bytes that aliases (`*name`, merge keys included) may add to the document, each
    /// counted at the size of what it repeats: what refuses a "billion laughs" before it is
    /// built. The text itself is bounded by the file size limit; only aliases multiply it.
    pub max_alias_bytes: usize,
}

/// The default of [`Limits::max_alias_bytes`]: 16 MiB.
pub const DEFAULT_MAX_ALIAS_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of a YAML or JSON document (serde_json's own fixed limit).
pub const MAX_DEPTH: usize = 128;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            // The largest real document at hand (Stripe's, 3.2 MB of YAML) holds about 300,000.
            max_values: 4_000_000,
            max_alias_bytes: DEFAULT_MAX_ALIAS_BYTES,
        }
    }
}

/// What a value costs in memory, roughly: the value itself, plus the text of a string.
const VALUE_BYTES: usize = std::mem::size_of::<Value>();
/// What a mapping entry costs beyond its key's text and its value (the key's `String` and the
/// map's node share).
const ENTRY_BYTES: usize = 48;

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
        bytes: usize,
    },
    Mapping {
        entries: Map<String, Value>,
        /// The key read, waiting for its value.
        key: Option<String>,
        /// Mappings named by `<<`, applied at the end (keys the mapping sets win).
        merges: Vec<Value>,
        anchor: usize,
        values: usize,
        bytes: usize,
    },
}

/// The size of a finished value: how many values it holds and roughly how many bytes.
#[derive(Debug, Clone, Copy)]
struct Size {
    values: usize,
    bytes: usize,
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    /// Anchored values by anchor id, with their size.
    anchors: HashMap<usize, (Value, Size)>,
    /// Values built so far, aliases counted at their expanded size.
    values: usize,
    /// Bytes added by aliases so far.
    alias_bytes: usize,
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

    /// Places a finished value (`size` in all) in its parent, or as the document.
    fn place(
        &mut self,
        value: Value,
        size: Size,
        anchor: usize,
        style: Option<ScalarStyle>,
        span: &Span,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(error(span, "several YAML documents in one file"));
                }
                self.root = Some(value);
            }
            Some(Frame::Sequence {
                items,
                values,
                bytes,
                ..
            }) => {
                items.push(value);
                *values += size.values;
                *bytes += size.bytes;
            }
            Some(Frame::Mapping {
                entries,
                key,
                merges,
                values,
                bytes,
                ..
            }) => {
                *values += size.values;
                *bytes += size.bytes;
                match key.take() {
                    None => {
                        let text = key_text(&value).ok_or_else(|| {
                            error(span, "a mapping key that is a sequence or a mapping")
                        })?;
                        // `<<` is a merge key only when written plain.
                        *bytes += ENTRY_BYTES + text.len();
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
                let size = Size {
                    values: 1,
                    bytes: VALUE_BYTES + text.len(),
                };
                self.place(value, size, anchor, Some(style), span)
            }
            Event::Alias(id) => {
                // Counted before the copy is made, so a refused alias costs nothing.
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| error(span, "an alias to an anchor not defined before it"))?;
                self.alias_bytes = self.alias_bytes.saturating_add(size.bytes);
                if self.alias_bytes > self.limits.max_alias_bytes {
                    return Err(error(
                        span,
                        format!(
                            "aliases expand the document by more than {} bytes (aliases \
                             repeating a large part of it?)",
                            self.limits.max_alias_bytes
                        ),
                    ));
                }
                self.count(size.values, span)?;
                let value = self.anchors[&id].0.clone();
                self.place(value, size, 0, None, span)
            }
            Event::SequenceStart(anchor, _) => self.open(
                Frame::Sequence {
                    items: Vec::new(),
                    anchor,
                    values: 1,
                    bytes: VALUE_BYTES,
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
                    bytes: VALUE_BYTES,
                },
                span,
            ),
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Sequence {
                    items,
                    anchor,
                    values,
                    bytes,
                }) => self.place(
                    Value::Array(items),
                    Size { values, bytes },
                    anchor,
                    None,
                    span,
                ),
                _ => Err(error(span, "unbalanced sequence")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Mapping {
                    mut entries,
                    merges,
                    anchor,
                    values,
                    bytes,
                    ..
                }) => {
                    for merged in merges {
                        if let Value::Object(m) = merged {
                            for (k, v) in m {
                                entries.entry(k).or_insert(v);
                            }
                        }
                    }
                    let size = Size { values, bytes };
                    self.place(Value::Object(entries), size, anchor, None, span)
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
        alias_bytes: 0,
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
        assert!(err.message.contains("aliases expand the document"), "{err}");
        assert!(err.line >= 5, "{err}");
        // The count of values refuses what is many small values rather than many bytes.
        let few_values = Limits {
            max_values: 50_000,
            ..Limits::default()
        };
        let err = to_json(&text, few_values).unwrap_err();
        assert!(err.message.contains("expands to more than 50000"), "{err}");
    }

    #[test]
    fn long_strings_and_merge_keys_count_at_their_size() {
        // One 1 MiB string, repeated by 17 aliases: few values, but 17 MiB; the 16th crosses
        // 16 MiB (each alias counts the string and the value holding it).
        let big = "x".repeat(1024 * 1024);
        let mut text = format!("s: &s '{big}'\nlist:\n");
        for _ in 0..17 {
            text.push_str("  - *s\n");
        }
        let err = to_json(&text, Limits::default()).unwrap_err();
        assert!(
            err.message.contains("more than 16777216 bytes"),
            "{}",
            err.message
        );
        assert_eq!(err.line, 18, "the alias that crosses the limit");
        // Merge keys repeat what they merge: a mapping merging a large one, again and again.
        let mut text = format!("m0: &m0 {{a: '{}'}}\n", "y".repeat(100_000));
        for i in 1..200 {
            text.push_str(&format!(
                "m{i}: &m{i} {{<<: [*m{}, *m0], k{i}: 1}}\n",
                i - 1
            ));
        }
        let err = to_json(&text, Limits::default()).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{}", err.message);
        // Within the limit, aliases work as before.
        let fine = format!("s: &s '{}'\nt: *s\nu: *s\n", "z".repeat(1000));
        assert_eq!(yaml(&fine)["u"].as_str().unwrap().len(), 1000);
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
