//! JSON Schema (the OpenAPI 3.0 dialect) compiled once per document: a validator for request
//! values and a deterministic example synthesizer for responses.
//!
//! Compilation resolves local `$ref`s and shares each named component (`Arc`), so a document with
//! thousands of schemas is compiled in one pass and requests never touch the raw document.
//! A `$ref` that refers back to a schema being compiled (recursion) becomes "anything" at that
//! point, which keeps compilation finite.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde_json::{json, Map, Value};

use crate::LoadError;

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    kind: Kind,
    nullable: bool,
    enum_values: Vec<Value>,
    example: Option<Value>,
    read_only: bool,
    write_only: bool,
}

#[derive(Debug)]
enum Kind {
    Any,
    Boolean,
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    String {
        min_len: Option<usize>,
        max_len: Option<usize>,
        pattern: Option<Arc<Pattern>>,
        format: Option<String>,
    },
    Array {
        items: Arc<Schema>,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
    Object {
        properties: Vec<(String, Arc<Schema>)>,
        required: Vec<String>,
        additional: Option<Arc<Schema>>,
        closed: bool,
    },
    AllOf(Vec<Arc<Schema>>),
    AnyOf(Vec<Arc<Schema>>),
    OneOf(Vec<Arc<Schema>>),
}

/// A `pattern` keyword: ECMA-262 syntax, as OpenAPI 3.0 specifies, compiled on first use.
///
/// Compiling lazily keeps start-up memory independent of the document: compiled Unicode classes
/// under bounded repetition (`[\p{L}\p{N}]{1,64}`) cost megabytes each, and a large document
/// names dozens of patterns that most sessions never exercise.
#[derive(Debug)]
pub struct Pattern {
    source: String,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    fn new(source: &str) -> Self {
        Pattern {
            source: source.to_owned(),
            compiled: OnceLock::new(),
        }
    }

    /// The compiled pattern, or None for one the regex engine cannot run (look-around): that
    /// rule is not checked, the rest of the schema still is.
    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| match Regex::new(&ecma_to_rust(&self.source)) {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::debug!(pattern = self.source, error = %e, "pattern not enforced");
                    None
                }
            })
            .as_ref()
    }
}

/// Rewrites ECMA-262 escapes whose meaning differs in the `regex` crate: without the `u` flag,
/// `\d` and `\w` are ASCII-only in ECMA-262 but Unicode-aware in Rust (and far larger compiled).
fn ecma_to_rust(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut in_class = false;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') if in_class => out.push_str("0-9"),
                Some('w') if in_class => out.push_str("A-Za-z0-9_"),
                Some('d') => out.push_str("[0-9]"),
                Some('D') if !in_class => out.push_str("[^0-9]"),
                Some('w') => out.push_str("[A-Za-z0-9_]"),
                Some('W') if !in_class => out.push_str("[^A-Za-z0-9_]"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Compiles schemas of one document, sharing named components.
pub struct Compiler<'d> {
    doc: &'d Value,
    cache: HashMap<String, Arc<Schema>>,
    /// Patterns by their text: documents repeat a few patterns hundreds of times (the full Atlas
    /// document: 1,151 uses of 45 patterns).
    patterns: HashMap<String, Arc<Pattern>>,
    stack: Vec<String>,
}

fn any() -> Arc<Schema> {
    Arc::new(Schema {
        kind: Kind::Any,
        nullable: true,
        enum_values: vec![],
        example: None,
        read_only: false,
        write_only: false,
    })
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn size(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|n| n as usize)
}

impl<'d> Compiler<'d> {
    pub fn new(doc: &'d Value) -> Self {
        Compiler {
            doc,
            cache: HashMap::new(),
            patterns: HashMap::new(),
            stack: Vec::new(),
        }
    }

    /// Follows a local reference, with the place named in errors.
    pub fn resolve(&self, v: &'d Value, at: &str) -> Result<&'d Value, LoadError> {
        let mut v = v;
        for _ in 0..32 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let ptr = r.strip_prefix('#').ok_or_else(|| {
                        LoadError::at(at, format!("only local $refs are supported, found {r:?}"))
                    })?;
                    v = self
                        .doc
                        .pointer(ptr)
                        .ok_or_else(|| LoadError::at(at, format!("$ref {r:?} points nowhere")))?;
                }
                None => return Ok(v),
            }
        }
        Err(LoadError::at(at, "$ref chain longer than 32"))
    }

    /// One shared [`Pattern`] per distinct pattern text.
    fn pattern(&mut self, source: &str) -> Arc<Pattern> {
        self.patterns
            .entry(source.to_owned())
            .or_insert_with(|| Arc::new(Pattern::new(source)))
            .clone()
    }

    pub fn compile(&mut self, v: &'d Value, at: &str) -> Result<Arc<Schema>, LoadError> {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            if let Some(s) = self.cache.get(r) {
                return Ok(s.clone());
            }
            if self.stack.iter().any(|s| s == r) {
                return Ok(any());
            }
            let target = self.resolve(v, at)?;
            self.stack.push(r.to_owned());
            let compiled = self.compile(target, r);
            self.stack.pop();
            let compiled = compiled?;
            self.cache.insert(r.to_owned(), compiled.clone());
            return Ok(compiled);
        }
        let list = |c: &mut Self, key: &str| -> Result<Vec<Arc<Schema>>, LoadError> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .map(|(i, s)| c.compile(s, &format!("{at}/{key}/{i}")))
                        .collect()
                })
                .unwrap_or_else(|| Ok(Vec::new()))
        };
        let ty = v.get("type").and_then(Value::as_str);
        let kind = if v.get("allOf").is_some() {
            Kind::AllOf(list(self, "allOf")?)
        } else if v.get("oneOf").is_some() {
            Kind::OneOf(list(self, "oneOf")?)
        } else if v.get("anyOf").is_some() {
            Kind::AnyOf(list(self, "anyOf")?)
        } else {
            match ty {
                Some("boolean") => Kind::Boolean,
                Some("integer") => Kind::Integer {
                    min: num(v, "minimum"),
                    max: num(v, "maximum"),
                },
                Some("number") => Kind::Number {
                    min: num(v, "minimum"),
                    max: num(v, "maximum"),
                },
                Some("string") => Kind::String {
                    min_len: size(v, "minLength"),
                    max_len: size(v, "maxLength"),
                    pattern: v
                        .get("pattern")
                        .and_then(Value::as_str)
                        .map(|p| self.pattern(p)),
                    format: v.get("format").and_then(Value::as_str).map(str::to_owned),
                },
                Some("array") => Kind::Array {
                    items: match v.get("items") {
                        Some(items) => self.compile(items, &format!("{at}/items"))?,
                        None => any(),
                    },
                    min_items: size(v, "minItems"),
                    max_items: size(v, "maxItems"),
                },
                Some("object") | None if v.get("properties").is_some() || ty == Some("object") => {
                    let mut properties = Vec::new();
                    if let Some(props) = v.get("properties").and_then(Value::as_object) {
                        for (name, p) in props {
                            properties.push((
                                name.clone(),
                                self.compile(p, &format!("{at}/properties/{name}"))?,
                            ));
                        }
                    }
                    let (additional, closed) = match v.get("additionalProperties") {
                        Some(Value::Bool(false)) => (None, true),
                        Some(Value::Object(_)) => (
                            Some(self.compile(
                                &v["additionalProperties"],
                                &format!("{at}/additionalProperties"),
                            )?),
                            false,
                        ),
                        _ => (None, false),
                    };
                    let required = v
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    Kind::Object {
                        properties,
                        required,
                        additional,
                        closed,
                    }
                }
                None => Kind::Any,
                Some(other) => {
                    return Err(LoadError::at(at, format!("unknown schema type {other:?}")))
                }
            }
        };
        let mut schema = Schema {
            kind,
            nullable: v.get("nullable").and_then(Value::as_bool).unwrap_or(false),
            enum_values: v
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            example: None,
            read_only: v.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
            write_only: v.get("writeOnly").and_then(Value::as_bool).unwrap_or(false),
        };
        // Documents carry examples that break their own schema (Atlas has `"example": "3e+06"` on
        // an integer); those are not served, a synthesized value is.
        if let Some(example) = v.get("example").or_else(|| v.get("default")) {
            match schema.validate(example, at) {
                Ok(()) => schema.example = Some(example.clone()),
                Err(e) => {
                    tracing::debug!(at, rule = %e.rule, "example does not match its own schema; not served")
                }
            }
        }
        Ok(Arc::new(schema))
    }
}

/// Where a value broke a rule, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub location: String,
    pub rule: String,
}

impl Schema {
    /// Checks `v`; the first violation names its place (`at`) and the rule.
    pub fn validate(&self, v: &Value, at: &str) -> Result<(), Violation> {
        let fail = |rule: String| {
            Err(Violation {
                location: at.to_owned(),
                rule,
            })
        };
        if v.is_null() {
            return if self.nullable || matches!(self.kind, Kind::Any) {
                Ok(())
            } else {
                fail("must not be null".into())
            };
        }
        if !self.enum_values.is_empty() && !self.enum_values.contains(v) {
            return fail(format!(
                "must be one of {}",
                Value::Array(self.enum_values.clone())
            ));
        }
        match &self.kind {
            Kind::Any => Ok(()),
            Kind::Boolean => {
                if v.is_boolean() {
                    Ok(())
                } else {
                    fail("must be a boolean".into())
                }
            }
            Kind::Integer { min, max } | Kind::Number { min, max } => {
                let is_int = matches!(self.kind, Kind::Integer { .. });
                let Some(n) = v.as_f64() else {
                    return fail(format!(
                        "must be {}",
                        if is_int { "an integer" } else { "a number" }
                    ));
                };
                if is_int && !(v.is_i64() || v.is_u64()) {
                    return fail("must be an integer".into());
                }
                if min.is_some_and(|m| n < m) {
                    return fail(format!("must be at least {}", min.unwrap_or_default()));
                }
                if max.is_some_and(|m| n > m) {
                    return fail(format!("must be at most {}", max.unwrap_or_default()));
                }
                Ok(())
            }
            Kind::String {
                min_len,
                max_len,
                pattern,
                ..
            } => {
                let Some(s) = v.as_str() else {
                    return fail("must be a string".into());
                };
                let len = s.chars().count();
                if min_len.is_some_and(|m| len < m) {
                    return fail(format!(
                        "must be at least {} characters",
                        min_len.unwrap_or_default()
                    ));
                }
                if max_len.is_some_and(|m| len > m) {
                    return fail(format!(
                        "must be at most {} characters",
                        max_len.unwrap_or_default()
                    ));
                }
                if let Some(p) = pattern {
                    if p.regex().is_some_and(|re| !re.is_match(s)) {
                        return fail(format!("must match the pattern {}", p.source));
                    }
                }
                Ok(())
            }
            Kind::Array {
                items,
                min_items,
                max_items,
            } => {
                let Some(a) = v.as_array() else {
                    return fail("must be an array".into());
                };
                if min_items.is_some_and(|m| a.len() < m) {
                    return fail(format!(
                        "must have at least {} items",
                        min_items.unwrap_or_default()
                    ));
                }
                if max_items.is_some_and(|m| a.len() > m) {
                    return fail(format!(
                        "must have at most {} items",
                        max_items.unwrap_or_default()
                    ));
                }
                a.iter()
                    .enumerate()
                    .try_for_each(|(i, x)| items.validate(x, &format!("{at}[{i}]")))
            }
            Kind::Object {
                properties,
                required,
                additional,
                closed,
            } => {
                let Some(o) = v.as_object() else {
                    return fail("must be an object".into());
                };
                for r in required {
                    // A read-only property is absent from requests, a write-only one from responses.
                    let one_way = properties
                        .iter()
                        .any(|(n, p)| n == r && (p.read_only || p.write_only));
                    if !o.contains_key(r) && !one_way {
                        return Err(Violation {
                            location: join(at, r),
                            rule: "is required".into(),
                        });
                    }
                }
                for (k, x) in o {
                    match properties.iter().find(|(n, _)| n == k) {
                        Some((_, p)) => p.validate(x, &join(at, k))?,
                        None if *closed => {
                            return Err(Violation {
                                location: join(at, k),
                                rule: "is not an allowed property".into(),
                            })
                        }
                        None => {
                            if let Some(a) = additional {
                                a.validate(x, &join(at, k))?;
                            }
                        }
                    }
                }
                Ok(())
            }
            Kind::AllOf(all) => all.iter().try_for_each(|s| s.validate(v, at)),
            Kind::AnyOf(all) => {
                if all.iter().any(|s| s.validate(v, at).is_ok()) {
                    Ok(())
                } else {
                    fail("must match at least one of the anyOf schemas".into())
                }
            }
            // Real documents (Atlas among them) list overlapping oneOf alternatives without a
            // discriminator, so a value matching several is accepted: oneOf is checked as anyOf.
            Kind::OneOf(all) => {
                if all.iter().any(|s| s.validate(v, at).is_ok()) {
                    Ok(())
                } else {
                    fail("must match one of the oneOf schemas".into())
                }
            }
        }
    }

    /// Validates a parameter given as text: all its occurrences for an array schema (the `form`,
    /// exploded style), else the first.
    pub fn validate_texts(&self, texts: &[&str], at: &str) -> Result<(), Violation> {
        match &self.kind {
            Kind::Array { items, .. } => {
                let mut values = Vec::with_capacity(texts.len());
                for (i, t) in texts.iter().enumerate() {
                    values.push(items.text_value(t).map_err(|()| Violation {
                        location: format!("{at}[{i}]"),
                        rule: format!("must be {}", items.type_name()),
                    })?);
                }
                self.validate(&Value::Array(values), at)
            }
            _ => match texts.first() {
                Some(t) => self.validate_text(t, at),
                None => Ok(()),
            },
        }
    }

    fn text_value(&self, text: &str) -> Result<Value, ()> {
        match &self.kind {
            Kind::Integer { .. } => text.parse::<i64>().map(Value::from).map_err(|_| ()),
            Kind::Number { .. } => text.parse::<f64>().map(|f| json!(f)).map_err(|_| ()),
            Kind::Boolean => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(()),
            },
            _ => Ok(Value::String(text.to_owned())),
        }
    }

    /// Parses a parameter's text as this schema's type, then validates it.
    fn validate_text(&self, text: &str, at: &str) -> Result<(), Violation> {
        match self.text_value(text) {
            Ok(v) => self.validate(&v, at),
            Err(()) => Err(Violation {
                location: at.to_owned(),
                rule: format!("must be {}", self.type_name()),
            }),
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Integer { .. } => "an integer",
            Kind::Number { .. } => "a number",
            Kind::Boolean => "true or false",
            _ => "valid",
        }
    }

    /// A value valid against this schema, for a response (write-only properties left out).
    pub fn example(&self) -> Value {
        self.example_at(0, false)
    }

    /// A value valid against this schema, for a request (read-only properties left out).
    pub fn request_example(&self) -> Value {
        self.example_at(0, true)
    }

    fn example_at(&self, depth: usize, request: bool) -> Value {
        if let Some(e) = &self.example {
            return e.clone();
        }
        if let Some(e) = self.enum_values.first() {
            return e.clone();
        }
        // Recursive schemas are cut at compile time; this only bounds pathological nesting.
        if depth > 32 {
            return Value::Null;
        }
        match &self.kind {
            Kind::Any => json!({}),
            Kind::Boolean => Value::Bool(true),
            Kind::Integer { min, .. } => json!(min.map(|m| m as i64).unwrap_or(1)),
            Kind::Number { min, .. } => json!(min.unwrap_or(1.5)),
            Kind::String {
                min_len,
                pattern,
                format,
                ..
            } => Value::String(string_example(
                pattern.as_ref().and_then(|p| p.regex()),
                format.as_deref(),
                min_len.unwrap_or(0),
            )),
            Kind::Array {
                items, min_items, ..
            } => Value::Array(
                (0..min_items.unwrap_or(1).max(1))
                    .map(|_| items.example_at(depth + 1, request))
                    .collect(),
            ),
            Kind::Object { properties, .. } => {
                let mut m = Map::new();
                for (name, p) in properties {
                    if !(if request { p.read_only } else { p.write_only }) {
                        m.insert(name.clone(), p.example_at(depth + 1, request));
                    }
                }
                Value::Object(m)
            }
            Kind::AllOf(all) => {
                let mut m = Map::new();
                for s in all {
                    match s.example_at(depth + 1, request) {
                        Value::Object(o) => m.extend(o),
                        other if all.len() == 1 => return other,
                        _ => {}
                    }
                }
                Value::Object(m)
            }
            Kind::AnyOf(all) | Kind::OneOf(all) => all
                .first()
                .map(|s| s.example_at(depth + 1, request))
                .unwrap_or(Value::Null),
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A string for a format, or one that matches a pattern (built from the pattern's syntax tree,
/// taking the first choice everywhere), padded to a minimum length when that keeps the match.
fn string_example(pattern: Option<&Regex>, format: Option<&str>, min_len: usize) -> String {
    if let Some(re) = pattern {
        if let Ok(hir) = regex_syntax::Parser::new().parse(re.as_str()) {
            let mut out = String::new();
            generate(&hir, &mut out);
            if re.is_match(&out) {
                return out;
            }
        }
    }
    let base = match format {
        Some("date-time") => "2024-01-01T00:00:00Z",
        Some("date") => "2024-01-01",
        Some("email") => "user@example.com",
        Some("uuid") => "00000000-0000-4000-8000-000000000000",
        Some("uri") | Some("url") => "https://example.com/",
        Some("ipv4") => "192.0.2.1",
        Some("byte") => "AA==",
        _ => "string",
    };
    let mut s = base.to_owned();
    while s.chars().count() < min_len {
        s.push('x');
    }
    s
}

fn generate(hir: &regex_syntax::hir::Hir, out: &mut String) {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(l) => out.push_str(&String::from_utf8_lossy(&l.0)),
        HirKind::Class(Class::Unicode(c)) => {
            // Prefer a plain letter or digit when the class allows one.
            let pick = ['a', '0', 'A'].into_iter().find(|ch| {
                c.ranges()
                    .iter()
                    .any(|r| r.start() <= *ch && *ch <= r.end())
            });
            if let Some(ch) = pick.or_else(|| c.ranges().first().map(|r| r.start())) {
                out.push(ch);
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            if let Some(r) = c.ranges().first() {
                out.push(r.start() as char);
            }
        }
        HirKind::Repetition(r) => {
            for _ in 0..r.min.max(u32::from(r.max.is_none_or(|m| m > 0)).min(1)) {
                generate(&r.sub, out);
            }
        }
        HirKind::Capture(c) => generate(&c.sub, out),
        HirKind::Concat(parts) => parts.iter().for_each(|p| generate(p, out)),
        HirKind::Alternation(alts) => {
            if let Some(a) = alts.first() {
                generate(a, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(v: Value) -> Arc<Schema> {
        let doc = json!({});
        Compiler::new(&doc).compile(&v, "#").unwrap()
    }

    #[test]
    fn patterns_follow_ecma_262() {
        assert_eq!(ecma_to_rust(r"^\d+[\w.-]$"), r"^[0-9]+[A-Za-z0-9_.-]$");
        assert_eq!(ecma_to_rust(r"\W\D\.[\D]"), r"[^A-Za-z0-9_][^0-9]\.[\D]");
        let s = compile(json!({"type": "string", "pattern": "^\\w+$"}));
        assert!(s.validate(&json!("abc_1"), "x").is_ok());
        assert!(s.validate(&json!("é"), "x").is_err(), "ECMA \\w is ASCII");
        let v = s.validate(&json!("a b"), "x").unwrap_err();
        assert_eq!(
            v.rule, "must match the pattern ^\\w+$",
            "the document's text is quoted"
        );
    }

    #[test]
    fn patterns_yield_matching_examples() {
        for p in [
            "^([a-f0-9]{24})$",
            "^[\\p{L}\\p{N}\\-_.(),:&@+']{1,64}$",
            "^mdb_sa_id_[0-9a-f]{24}$",
            "[A-Z]{2,3}-\\d+",
        ] {
            let s = compile(json!({"type": "string", "pattern": p}));
            let e = s.example();
            assert!(s.validate(&e, "x").is_ok(), "{p}: {e}");
        }
    }

    #[test]
    fn objects_report_the_place_and_rule() {
        let s = compile(
            json!({"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": {"type": "integer"}}}}),
        );
        assert_eq!(
            s.validate(&json!({}), "body").unwrap_err().location,
            "body.users"
        );
        let v = s.validate(&json!({"users": [1, "x"]}), "body").unwrap_err();
        assert_eq!(
            (v.location.as_str(), v.rule.as_str()),
            ("body.users[1]", "must be an integer")
        );
        assert!(s.validate(&s.example(), "body").is_ok());
    }

    #[test]
    fn recursive_refs_compile() {
        let doc = json!({"components": {"schemas": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}});
        let mut c = Compiler::new(&doc);
        let s = c
            .compile(&json!({"$ref": "#/components/schemas/Node"}), "#")
            .unwrap();
        assert!(s.validate(&json!({"next": {"next": {}}}), "").is_ok());
    }
}
