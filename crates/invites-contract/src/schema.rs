//! JSON Schema as OpenAPI uses it (3.0's dialect and 3.1's JSON Schema 2020-12 subset that API
//! documents use), compiled once per document into an arena: a validator and a deterministic
//! example synthesizer whose output validates.
//!
//! Every schema is a node of [`Schemas`], named by a [`SchemaId`]. A `$ref` compiles its target
//! once (shared by every reference to it, across files), and a reference back to a schema still
//! being compiled (recursion) is just its id, so recursive schemas are checked at every depth
//! rather than cut into "anything".
//!
//! Keywords apply to the types they are about (JSON Schema's rule: `properties` says nothing of a
//! string). OpenAPI 3.0's `nullable` and boolean `exclusiveMinimum` are read into the same model
//! as 3.1's `type: [.., "null"]` and numeric `exclusiveMinimum`. `oneOf` is checked exactly
//! ([`Strictness::Exact`]) when judging responses and examples, and as `anyOf`
//! ([`Strictness::Lenient`]) for requests, since real documents list overlapping alternatives
//! without a discriminator (Atlas does), and a request that fits several of them is meant to pass.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use crate::load::{FileId, Sources};
use crate::LoadError;

/// A compiled schema: an index into [`Schemas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchemaId(u32);

/// JSON types as a set of bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Types(u8);

impl Types {
    const NULL: u8 = 1;
    const BOOLEAN: u8 = 2;
    const INTEGER: u8 = 4;
    const NUMBER: u8 = 8;
    const STRING: u8 = 16;
    const ARRAY: u8 = 32;
    const OBJECT: u8 = 64;
    const ANY: Types = Types(127);

    fn bit(name: &str) -> Option<u8> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER | Self::INTEGER,
            "string" => Self::STRING,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => return None,
        })
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn of(v: &Value) -> u8 {
        match v {
            Value::Null => Self::NULL,
            Value::Bool(_) => Self::BOOLEAN,
            Value::Number(n) if is_integer(n) => Self::INTEGER,
            Value::Number(_) => Self::NUMBER,
            Value::String(_) => Self::STRING,
            Value::Array(_) => Self::ARRAY,
            Value::Object(_) => Self::OBJECT,
        }
    }

    fn names(self) -> String {
        let mut names = Vec::new();
        for (bit, name) in [
            (Self::NULL, "null"),
            (Self::BOOLEAN, "a boolean"),
            (Self::INTEGER, "an integer"),
            (Self::NUMBER, "a number"),
            (Self::STRING, "a string"),
            (Self::ARRAY, "an array"),
            (Self::OBJECT, "an object"),
        ] {
            if self.has(bit) && !(bit == Self::INTEGER && self.has(Self::NUMBER)) {
                names.push(name);
            }
        }
        names.join(" or ")
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

/// How `oneOf` is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Exactly one alternative must match (JSON Schema): responses and examples.
    Exact,
    /// At least one (as `anyOf`): requests, since documents list overlapping alternatives.
    Lenient,
}

/// Formats the validator checks and the synthesizer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DateTime,
    Date,
    Time,
    Email,
    Uuid,
    Uri,
    Ipv4,
    Ipv6,
    Hostname,
    Byte,
    Int32,
    Int64,
    Other,
}

impl Format {
    fn parse(name: &str) -> Format {
        match name {
            "date-time" => Format::DateTime,
            "date" => Format::Date,
            "time" => Format::Time,
            "email" | "idn-email" => Format::Email,
            "uuid" => Format::Uuid,
            "uri" | "url" | "iri" => Format::Uri,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "hostname" | "idn-hostname" => Format::Hostname,
            "byte" => Format::Byte,
            "int32" => Format::Int32,
            "int64" => Format::Int64,
            _ => Format::Other,
        }
    }

    /// Whether a string is in this format (formats not checked say yes).
    fn accepts(self, s: &str) -> bool {
        fn digits(s: &str, n: usize) -> bool {
            s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
        }
        fn date(s: &str) -> bool {
            let p: Vec<&str> = s.split('-').collect();
            p.len() == 3
                && digits(p[0], 4)
                && digits(p[1], 2)
                && digits(p[2], 2)
                && (1..=12).contains(&p[1].parse::<u32>().unwrap_or(0))
                && (1..=31).contains(&p[2].parse::<u32>().unwrap_or(0))
        }
        fn time(s: &str) -> bool {
            // hh:mm:ss[.frac](Z|+hh:mm|-hh:mm)
            let (clock, zone) = match s.find(['Z', 'z', '+', '-']) {
                Some(i) => s.split_at(i),
                None => return false,
            };
            let zone_ok = zone.eq_ignore_ascii_case("z")
                || (zone.len() == 6
                    && digits(&zone[1..3], 2)
                    && &zone[3..4] == ":"
                    && digits(&zone[4..], 2));
            let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
            let p: Vec<&str> = hms.split(':').collect();
            zone_ok
                && p.len() == 3
                && p.iter().all(|x| digits(x, 2))
                && p[0].parse::<u32>().unwrap_or(99) < 24
                && p[1].parse::<u32>().unwrap_or(99) < 60
                && p[2].parse::<u32>().unwrap_or(99) < 61
                && !frac.is_empty()
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        match self {
            Format::DateTime => s
                .split_once(['T', 't', ' '])
                .is_some_and(|(d, t)| date(d) && time(t)),
            Format::Date => date(s),
            Format::Time => time(s),
            Format::Email => s.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && !d.is_empty() && !s.contains(char::is_whitespace)
            }),
            Format::Uuid => {
                let p: Vec<&str> = s.split('-').collect();
                p.len() == 5
                    && [8, 4, 4, 4, 12]
                        .iter()
                        .zip(&p)
                        .all(|(n, x)| x.len() == *n && x.bytes().all(|b| b.is_ascii_hexdigit()))
            }
            Format::Uri => s.split_once(':').is_some_and(|(scheme, _)| {
                !scheme.is_empty()
                    && scheme.as_bytes()[0].is_ascii_alphabetic()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && !s.contains(char::is_whitespace)
            }),
            Format::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
            Format::Hostname => {
                !s.is_empty()
                    && s.len() <= 253
                    && s.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && !l.starts_with('-')
                            && !l.ends_with('-')
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            }
            Format::Byte => {
                s.len().is_multiple_of(4)
                    && s.bytes().enumerate().all(|(i, b)| {
                        b.is_ascii_alphanumeric()
                            || b == b'+'
                            || b == b'/'
                            || (b == b'=' && i >= s.len() - 2)
                    })
            }
            Format::Int32 | Format::Int64 | Format::Other => true,
        }
    }

    /// A string in this format.
    fn sample(self) -> Option<&'static str> {
        Some(match self {
            Format::DateTime => "2024-01-01T00:00:00Z",
            Format::Date => "2024-01-01",
            Format::Time => "12:00:00Z",
            Format::Email => "user@example.com",
            Format::Uuid => "00000000-0000-4000-8000-000000000000",
            Format::Uri => "https://example.com/",
            Format::Ipv4 => "192.0.2.1",
            Format::Ipv6 => "2001:db8::1",
            Format::Hostname => "example.com",
            Format::Byte => "AA==",
            Format::Int32 | Format::Int64 | Format::Other => return None,
        })
    }
}

/// What an object says of properties it does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Additional {
    Any,
    Forbidden,
    Schema(SchemaId),
}

/// `discriminator`: the property naming the alternative, and explicit names for some.
#[derive(Debug, Clone, Default)]
struct Discriminator {
    property: String,
    mapping: Vec<(String, SchemaId)>,
}

/// One schema's keywords.
#[derive(Debug, Clone)]
struct Node {
    types: Types,
    /// OpenAPI 3.0's `nullable: true`. With a `type` beside it, null is one of the types; without
    /// (`anyOf: [{$ref}], nullable: true`, how Stripe writes an optional link) null passes
    /// requests as the whole schema's value, while responses follow 3.0.3's reading: no null.
    nullable: bool,
    /// Whether the schema names its `type` (where 3.0's `nullable` adds null).
    typed: bool,
    enum_values: Vec<Value>,
    const_value: Option<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<usize>,
    format: Option<Format>,
    items: Option<SchemaId>,
    prefix_items: Vec<SchemaId>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    unique_items: bool,
    properties: Vec<(String, SchemaId)>,
    required: Vec<String>,
    additional: Additional,
    pattern_properties: Vec<(usize, SchemaId)>,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    all_of: Vec<SchemaId>,
    any_of: Vec<SchemaId>,
    one_of: Vec<SchemaId>,
    not: Option<SchemaId>,
    /// A `$ref` with sibling keywords (3.1): both apply.
    reference: Option<SchemaId>,
    discriminator: Option<Discriminator>,
    read_only: bool,
    write_only: bool,
    /// The schema's own example (or first of `examples`, or `default`) when it validates.
    example: Option<Value>,
    /// The example as written, checked once the whole document is compiled.
    candidate_examples: Vec<Value>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            types: Types::ANY,
            nullable: false,
            typed: false,
            enum_values: Vec::new(),
            const_value: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            multiple_of: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: None,
            items: None,
            prefix_items: Vec::new(),
            min_items: None,
            max_items: None,
            unique_items: false,
            properties: Vec::new(),
            required: Vec::new(),
            additional: Additional::Any,
            pattern_properties: Vec::new(),
            min_properties: None,
            max_properties: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
            reference: None,
            discriminator: None,
            read_only: false,
            write_only: false,
            example: None,
            candidate_examples: Vec::new(),
        }
    }
}

/// A `pattern` keyword: ECMA-262 syntax, compiled on first use with a size limit.
///
/// Compiling lazily keeps start-up memory independent of the document: compiled Unicode classes
/// under bounded repetition (`[\p{L}\p{N}]{1,64}`) cost megabytes each, and a large document
/// names dozens of patterns that most sessions never exercise.
#[derive(Debug)]
struct Pattern {
    source: String,
    /// Where it is first written (`#/components/schemas/A/pattern`), for warnings.
    place: String,
    compiled: OnceLock<Option<Regex>>,
}

/// Largest compiled pattern (the `regex` crate's own default is 10 MiB): a pattern that would
/// compile larger is reported once and not enforced, rather than compiled at any cost.
const PATTERN_SIZE_LIMIT: usize = 2 * 1024 * 1024;

impl Pattern {
    fn new(source: &str, place: String) -> Self {
        Pattern {
            source: source.to_owned(),
            place,
            compiled: OnceLock::new(),
        }
    }

    fn build(&self) -> Result<Regex, regex::Error> {
        regex::RegexBuilder::new(&ecma_to_rust(&self.source))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
    }

    /// Why the pattern cannot be enforced, if it cannot: compiled within the size limit and
    /// dropped (what compiles is compiled again on first use, so memory stays as it was).
    fn unenforceable(&self) -> Option<String> {
        let e = self.build().err()?;
        // Not tried again on first use.
        let _ = self.compiled.set(None);
        Some(match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("it would compile to more than {limit} bytes")
            }
            other => {
                let text = other.to_string();
                let reason = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                format!("the linear-time engine cannot run it ({reason})")
            }
        })
    }

    /// The compiled pattern, or None for one the regex engine cannot run (look-around,
    /// back-references) or that is too large: that rule is not checked, the rest still is.
    /// Matching is linear in the input (the `regex` crate guarantees it).
    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| match self.build() {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::info!(pattern = self.source, error = %e, "pattern not enforced");
                    None
                }
            })
            .as_ref()
    }
}

/// The pattern without its look-around groups (`(?=...)`, `(?!...)`, `(?<=...)`, `(?<!...)`):
/// a pattern that takes at least every string the original takes, which the linear-time engine
/// can run. Used only to pick example strings for a pattern that cannot be enforced.
fn without_lookaround(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let look = chars[i] == '('
            && chars.get(i + 1) == Some(&'?')
            && (matches!(chars.get(i + 2), Some('=' | '!'))
                || (chars.get(i + 2) == Some(&'<') && matches!(chars.get(i + 3), Some('=' | '!'))));
        if look && (i == 0 || chars[i - 1] != '\\') {
            // Skip to the matching close parenthesis.
            let mut depth = 0;
            while i < chars.len() {
                match chars[i] {
                    '\\' => i += 1,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Strings tried, in order, for a pattern the engine cannot enforce: the usual shapes such
/// patterns describe (addresses, ids, dates), then plain words.
const UNENFORCED_PATTERN_CANDIDATES: [&str; 10] = [
    "192.0.2.1",
    "192.0.2.0/24",
    "2001:db8::1",
    "00000000-0000-4000-8000-000000000000",
    "2024-01-01T00:00:00Z",
    "user@example.com",
    "https://example.com/",
    "example",
    "a",
    "0",
];

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
                Some('/') => out.push('/'),
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

/// Where a value broke a rule, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub location: String,
    pub rule: String,
}

/// Every schema of one document.
#[derive(Debug, Default)]
pub struct Schemas {
    nodes: Vec<Node>,
    patterns: Vec<Pattern>,
    /// The types each schema's values can have ([`Schemas::satisfiable`]), worked out once
    /// every schema is compiled.
    possible: Vec<u8>,
}

/// The dialect of the document being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAPI 3.0: `nullable`, boolean `exclusiveMinimum`, `$ref` siblings ignored.
    Oas30,
    /// OpenAPI 3.1: JSON Schema 2020-12 (`type` arrays, `const`, `prefixItems`, `$ref` siblings).
    Oas31,
}

/// Compiles the schemas of a document (and the files it references) into [`Schemas`].
pub struct Compiler<'d> {
    sources: &'d Sources,
    dialect: Dialect,
    schemas: Schemas,
    /// Compiled targets by their canonical place (`file#/pointer`).
    by_place: HashMap<String, SchemaId>,
    patterns: HashMap<String, usize>,
    /// The places of a chain of references to references being followed.
    chasing: Vec<String>,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn size(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|n| n as usize)
}

impl<'d> Compiler<'d> {
    pub fn new(sources: &'d Sources, dialect: Dialect) -> Self {
        Compiler {
            sources,
            dialect,
            schemas: Schemas::default(),
            by_place: HashMap::new(),
            patterns: HashMap::new(),
            chasing: Vec::new(),
        }
    }

    /// Follows references from `v` (written in `file`) to a value that is not one.
    pub fn resolve(
        &self,
        file: FileId,
        v: &'d Value,
        at: &str,
    ) -> Result<(FileId, &'d Value), LoadError> {
        let (mut file, mut v) = (file, v);
        for _ in 0..64 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let (f, _, target) = self
                        .sources
                        .resolve(file, r)
                        .map_err(|e| LoadError::at(at, e))?;
                    file = f;
                    v = target;
                }
                None => return Ok((file, v)),
            }
        }
        Err(LoadError::at(at, "$ref chain longer than 64"))
    }

    fn pattern(&mut self, source: &str, place: String) -> usize {
        if let Some(i) = self.patterns.get(source) {
            return *i;
        }
        let i = self.schemas.patterns.len();
        self.schemas.patterns.push(Pattern::new(source, place));
        self.patterns.insert(source.to_owned(), i);
        i
    }

    fn reserve(&mut self) -> SchemaId {
        let id = SchemaId(self.schemas.nodes.len() as u32);
        self.schemas.nodes.push(Node::default());
        id
    }

    /// Compiles the schema `v`, written in `file`; `at` names it in errors.
    pub fn compile(&mut self, file: FileId, v: &'d Value, at: &str) -> Result<SchemaId, LoadError> {
        let reference = v.get("$ref").and_then(Value::as_str);
        let has_siblings = v.as_object().is_some_and(|o| {
            o.keys().any(|k| {
                !matches!(k.as_str(), "$ref" | "description" | "summary" | "title")
                    && !k.starts_with("x-")
            })
        });
        if let Some(r) = reference {
            if self.dialect == Dialect::Oas30 || !has_siblings {
                return self.compile_reference(file, r, at);
            }
        }
        let id = self.reserve();
        let node = self.node(file, v, at)?;
        self.schemas.nodes[id.0 as usize] = node;
        if let Some(r) = reference {
            let target = self.compile_reference(file, r, at)?;
            self.schemas.nodes[id.0 as usize].reference = Some(target);
        }
        Ok(id)
    }

    fn compile_reference(
        &mut self,
        file: FileId,
        r: &str,
        at: &str,
    ) -> Result<SchemaId, LoadError> {
        let (target_file, place, target) = self
            .sources
            .resolve(file, r)
            .map_err(|e| LoadError::at(at, e))?;
        if let Some(id) = self.by_place.get(&place) {
            return Ok(*id);
        }
        if target.get("$ref").is_some() && target.as_object().is_some_and(|o| o.len() == 1) {
            // A reference to a reference: share the final target. A chain that comes back to
            // a place it passed has no schema at its end (recursion needs a schema between).
            if self.chasing.contains(&place) || self.chasing.len() >= 64 {
                self.chasing.push(place);
                let chain = std::mem::take(&mut self.chasing).join(" -> ");
                return Err(LoadError::at(
                    at,
                    format!("$ref {r:?}: references lead to each other in a cycle ({chain})"),
                ));
            }
            self.chasing.push(place.clone());
            let id = self.compile(target_file, target, &place);
            self.chasing.pop();
            let id = id?;
            self.by_place.insert(place, id);
            return Ok(id);
        }
        // Reserved before compiling, so a reference back to it (recursion) finds its id.
        let id = self.reserve();
        self.by_place.insert(place.clone(), id);
        let node = self.node(target_file, target, &place)?;
        self.schemas.nodes[id.0 as usize] = node;
        if target.get("$ref").is_some() {
            let inner = self.compile_reference(
                target_file,
                target["$ref"].as_str().unwrap_or_default(),
                &place,
            )?;
            self.schemas.nodes[id.0 as usize].reference = Some(inner);
        }
        Ok(id)
    }

    fn list(
        &mut self,
        file: FileId,
        v: &'d Value,
        key: &str,
        at: &str,
    ) -> Result<Vec<SchemaId>, LoadError> {
        let mut out = Vec::new();
        if let Some(items) = v.get(key).and_then(Value::as_array) {
            for (i, s) in items.iter().enumerate() {
                out.push(self.compile(file, s, &format!("{at}/{key}/{i}"))?);
            }
        }
        Ok(out)
    }

    /// The keywords of one schema object (its `$ref`, if any, is the caller's).
    fn node(&mut self, file: FileId, v: &'d Value, at: &str) -> Result<Node, LoadError> {
        let mut node = Node::default();
        match v {
            Value::Bool(true) => return Ok(node),
            Value::Bool(false) => {
                node.types = Types(0);
                return Ok(node);
            }
            Value::Object(_) => {}
            _ => return Err(LoadError::at(at, "a schema must be an object")),
        }
        match v.get("type") {
            None => {}
            Some(Value::String(t)) => {
                node.types = Types(
                    Types::bit(t)
                        .ok_or_else(|| LoadError::at(at, format!("unknown schema type {t:?}")))?,
                );
            }
            Some(Value::Array(ts)) => {
                let mut bits = 0;
                for t in ts {
                    bits |= t
                        .as_str()
                        .and_then(Types::bit)
                        .ok_or_else(|| LoadError::at(at, format!("unknown schema type {t}")))?;
                }
                node.types = Types(bits);
            }
            Some(other) => {
                return Err(LoadError::at(
                    at,
                    format!("`type` must be a name or a list, not {other}"),
                ))
            }
        }
        node.typed = v.get("type").is_some();
        if v.get("nullable").and_then(Value::as_bool) == Some(true) {
            node.types = Types(node.types.0 | Types::NULL);
            node.nullable = true;
        }
        node.enum_values = v
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        node.const_value = v.get("const").cloned();
        node.minimum = num(v, "minimum");
        node.maximum = num(v, "maximum");
        match v.get("exclusiveMinimum") {
            Some(Value::Bool(true)) => node.exclusive_minimum = node.minimum.take(),
            Some(n) => node.exclusive_minimum = n.as_f64(),
            None => {}
        }
        match v.get("exclusiveMaximum") {
            Some(Value::Bool(true)) => node.exclusive_maximum = node.maximum.take(),
            Some(n) => node.exclusive_maximum = n.as_f64(),
            None => {}
        }
        node.multiple_of = num(v, "multipleOf").filter(|m| *m > 0.0);
        node.min_length = size(v, "minLength");
        node.max_length = size(v, "maxLength");
        if let Some(p) = v.get("pattern").and_then(Value::as_str) {
            node.pattern = Some(self.pattern(p, format!("{at}/pattern")));
        }
        node.format = v.get("format").and_then(Value::as_str).map(Format::parse);
        match v.get("items") {
            Some(Value::Array(tuple)) => {
                // Draft-4 tuple form.
                for (i, s) in tuple.iter().enumerate() {
                    node.prefix_items
                        .push(self.compile(file, s, &format!("{at}/items/{i}"))?);
                }
            }
            Some(items) => node.items = Some(self.compile(file, items, &format!("{at}/items"))?),
            None => {}
        }
        node.prefix_items
            .extend(self.list(file, v, "prefixItems", at)?);
        node.min_items = size(v, "minItems");
        node.max_items = size(v, "maxItems");
        node.unique_items = v.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        // DigitalOcean writes a whole `properties` map as a reference.
        let properties = match v.get("properties") {
            Some(p) if p.get("$ref").is_some() => {
                Some(self.resolve(file, p, &format!("{at}/properties"))?)
            }
            Some(p) => Some((file, p)),
            None => None,
        };
        if let Some((file, props)) = properties.and_then(|(f, p)| p.as_object().map(|o| (f, o))) {
            for (name, p) in props {
                let id = self.compile(file, p, &format!("{at}/properties/{}", escape(name)))?;
                node.properties.push((name.clone(), id));
            }
            // Sorted by name, for the validator's binary search (JSON maps here are sorted
            // already; this keeps it true whatever the map type).
            node.properties.sort_by(|a, b| a.0.cmp(&b.0));
        }
        node.required = v
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        node.additional = match v.get("additionalProperties") {
            Some(Value::Bool(false)) => Additional::Forbidden,
            Some(s @ Value::Object(_)) => {
                Additional::Schema(self.compile(file, s, &format!("{at}/additionalProperties"))?)
            }
            _ => Additional::Any,
        };
        if let Some(pp) = v.get("patternProperties").and_then(Value::as_object) {
            for (p, s) in pp {
                let pattern = self.pattern(p, format!("{at}/patternProperties/{}", escape(p)));
                let id = self.compile(file, s, &format!("{at}/patternProperties/{}", escape(p)))?;
                node.pattern_properties.push((pattern, id));
            }
        }
        node.min_properties = size(v, "minProperties");
        node.max_properties = size(v, "maxProperties");
        node.all_of = self.list(file, v, "allOf", at)?;
        node.any_of = self.list(file, v, "anyOf", at)?;
        node.one_of = self.list(file, v, "oneOf", at)?;
        if let Some(n) = v.get("not") {
            node.not = Some(self.compile(file, n, &format!("{at}/not"))?);
        }
        if let Some(d) = v.get("discriminator") {
            let mut disc = Discriminator {
                property: d
                    .get("propertyName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                mapping: Vec::new(),
            };
            for (name, target) in d
                .get("mapping")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(r) = target.as_str() {
                    // Mapping values are references, or bare schema names (3.0).
                    let r = if r.contains('#') || r.contains('/') || r.contains('.') {
                        r.to_owned()
                    } else {
                        format!("#/components/schemas/{r}")
                    };
                    if let Ok(id) = self.compile_reference(file, &r, &format!("{at}/discriminator"))
                    {
                        disc.mapping.push((name.clone(), id));
                    }
                }
            }
            // Branches not in the mapping are named by their schema's name (implicit mapping).
            for key in ["oneOf", "anyOf"] {
                let ids = if key == "oneOf" {
                    &node.one_of
                } else {
                    &node.any_of
                };
                for (branch, id) in v
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .zip(ids)
                {
                    let name = branch
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| r.rsplit('/').next());
                    if let Some(name) = name {
                        if !disc.mapping.iter().any(|(_, s)| s == id) {
                            disc.mapping.push((name.to_owned(), *id));
                        }
                    }
                }
            }
            if !disc.property.is_empty() {
                node.discriminator = Some(disc);
            }
        }
        node.read_only = v.get("readOnly").and_then(Value::as_bool) == Some(true);
        node.write_only = v.get("writeOnly").and_then(Value::as_bool) == Some(true);
        if let Some(e) = v.get("example") {
            // An example may be a reference to one (DigitalOcean's `examples.yml#/...`).
            let e = match e.get("$ref") {
                Some(_) => self.resolve(file, e, &format!("{at}/example"))?.1,
                None => e,
            };
            node.candidate_examples.push(e.clone());
        }
        if let Some(Value::Array(es)) = v.get("examples") {
            node.candidate_examples.extend(es.iter().cloned());
        }
        if let Some(d) = v.get("default") {
            node.candidate_examples.push(d.clone());
        }
        Ok(node)
    }

    /// The compiled schemas; each schema's own example is kept only if it validates (documents
    /// carry examples that break their own schema: Atlas has `"example": "3e+06"` on an integer).
    pub fn finish(mut self) -> Schemas {
        let possible: Vec<u8> = (0..self.schemas.nodes.len())
            .map(|i| {
                self.schemas
                    .possible_types(SchemaId(i as u32), &mut Vec::new())
                    .0
            })
            .collect();
        self.schemas.possible = possible;
        for i in 0..self.schemas.nodes.len() {
            let candidates = std::mem::take(&mut self.schemas.nodes[i].candidate_examples);
            let id = SchemaId(i as u32);
            let chosen = candidates
                .into_iter()
                .find(|e| self.schemas.is_valid(id, e, Strictness::Exact));
            self.schemas.nodes[i].example = chosen;
        }
        self.schemas
    }
}

/// A property name as a JSON pointer token.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The state of one check: the (schema, value) pairs under way, and whether places are named.
struct Walk {
    active: Vec<(SchemaId, usize)>,
    locate: bool,
}

impl Walk {
    fn locating() -> Walk {
        Walk {
            active: Vec::new(),
            locate: true,
        }
    }

    fn judging() -> Walk {
        Walk {
            active: Vec::new(),
            locate: false,
        }
    }

    fn key(&self, at: &str, key: &str) -> String {
        if self.locate {
            join(at, key)
        } else {
            String::new()
        }
    }

    fn index(&self, at: &str, i: usize) -> String {
        if self.locate {
            format!("{at}[{i}]")
        } else {
            String::new()
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

fn fail(at: &str, rule: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        location: at.to_owned(),
        rule: rule.into(),
    })
}

/// Whether a JSON number is a multiple of `m` (within floating-point noise).
fn multiple(n: f64, m: f64) -> bool {
    let q = n / m;
    (q - q.round()).abs() < 1e-9
}

impl Schemas {
    fn node(&self, id: SchemaId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// How many schemas were compiled.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether the schema is marked read-only (absent from requests) or write-only (absent from
    /// responses).
    pub fn one_way(&self, id: SchemaId) -> (bool, bool) {
        let n = self.node(id);
        (n.read_only, n.write_only)
    }

    /// Checks `v`; the first violation names its place (`at`) and the rule.
    pub fn validate(
        &self,
        id: SchemaId,
        v: &Value,
        at: &str,
        strictness: Strictness,
    ) -> Result<(), Violation> {
        self.check(id, v, at, strictness, &mut Walk::locating())
    }

    /// Whether `v` is valid: [`Schemas::validate`] without naming where it is not (no location
    /// text is built, which is most of the cost of checking a large valid value).
    pub fn is_valid(&self, id: SchemaId, v: &Value, strictness: Strictness) -> bool {
        self.check(id, v, "", strictness, &mut Walk::judging())
            .is_ok()
    }

    /// `active` holds the (schema, value) pairs being checked on the way here: a schema that
    /// comes back to the same value without consuming any of it (a `oneOf` parent whose children
    /// are `allOf: [parent, ...]`, as Atlas writes them) is not checked again, which would never
    /// end; the check already under way decides.
    fn check(
        &self,
        id: SchemaId,
        v: &Value,
        at: &str,
        strictness: Strictness,
        walk: &mut Walk,
    ) -> Result<(), Violation> {
        let key = (id, v as *const Value as usize);
        if walk.active.contains(&key) {
            return Ok(());
        }
        if walk.active.len() > 512 {
            return fail(at, "is nested too deeply to check");
        }
        walk.active.push(key);
        let result = self.check_node(id, v, at, strictness, walk);
        walk.active.pop();
        result
    }

    fn check_node(
        &self,
        id: SchemaId,
        v: &Value,
        at: &str,
        strictness: Strictness,
        d: &mut Walk,
    ) -> Result<(), Violation> {
        let n = self.node(id);
        // `nullable` beside `allOf`/`anyOf` and no `type` (Stripe's `anyOf: [{$ref}], nullable:
        // true`): OpenAPI 3.0.3 says it adds null only to a `type` given beside it, and judges of
        // responses read it so; requests are let through either way.
        if n.nullable && v.is_null() && (strictness == Strictness::Lenient || n.typed) {
            return Ok(());
        }
        if let Some(r) = n.reference {
            self.check(r, v, at, strictness, d)?;
        }
        let mut ty = Types::of(v);
        // Judging responses and examples, an integer is written as one: `1.0` is a number
        // (JSON Schema draft 4, which OpenAPI 3.0 builds on, says so too).
        if let (Value::Number(num), Strictness::Exact) = (v, strictness) {
            if !(num.is_i64() || num.is_u64()) {
                ty = Types::NUMBER;
            }
        }
        if n.types.0 & ty == 0 {
            return fail(
                at,
                if v.is_null() {
                    "must not be null".to_owned()
                } else {
                    format!("must be {}", n.types.names())
                },
            );
        }
        let listed = n.enum_values.is_empty()
            || n.enum_values.iter().any(|e| json_equal(e, v))
            || (v.is_null() && n.types.has(Types::NULL));
        if !listed {
            return fail(
                at,
                format!("must be one of {}", Value::Array(n.enum_values.clone())),
            );
        }
        if let Some(c) = &n.const_value {
            if !json_equal(c, v) {
                return fail(at, format!("must be {c}"));
            }
        }
        match v {
            Value::Number(num) => {
                let x = num.as_f64().unwrap_or(0.0);
                if n.minimum.is_some_and(|m| x < m) {
                    return fail(
                        at,
                        format!("must be at least {}", n.minimum.unwrap_or_default()),
                    );
                }
                if n.maximum.is_some_and(|m| x > m) {
                    return fail(
                        at,
                        format!("must be at most {}", n.maximum.unwrap_or_default()),
                    );
                }
                if n.exclusive_minimum.is_some_and(|m| x <= m) {
                    return fail(
                        at,
                        format!(
                            "must be more than {}",
                            n.exclusive_minimum.unwrap_or_default()
                        ),
                    );
                }
                if n.exclusive_maximum.is_some_and(|m| x >= m) {
                    return fail(
                        at,
                        format!(
                            "must be less than {}",
                            n.exclusive_maximum.unwrap_or_default()
                        ),
                    );
                }
                if n.multiple_of.is_some_and(|m| !multiple(x, m)) {
                    return fail(
                        at,
                        format!(
                            "must be a multiple of {}",
                            n.multiple_of.unwrap_or_default()
                        ),
                    );
                }
                let int32 = num.as_i64().is_some_and(|i| i32::try_from(i).is_ok());
                if n.format == Some(Format::Int32) && is_integer(num) && !int32 {
                    return fail(at, "must fit in 32 bits (format int32)");
                }
            }
            Value::String(s) => {
                let len = s.chars().count();
                if n.min_length.is_some_and(|m| len < m) {
                    return fail(
                        at,
                        format!(
                            "must be at least {} characters",
                            n.min_length.unwrap_or_default()
                        ),
                    );
                }
                if n.max_length.is_some_and(|m| len > m) {
                    return fail(
                        at,
                        format!(
                            "must be at most {} characters",
                            n.max_length.unwrap_or_default()
                        ),
                    );
                }
                if let Some(p) = n.pattern.map(|p| &self.patterns[p]) {
                    if p.regex().is_some_and(|re| !re.is_match(s)) {
                        return fail(at, format!("must match the pattern {}", p.source));
                    }
                }
                if let Some(f) = n.format {
                    if !f.accepts(s) {
                        return fail(at, format!("must be in the format {}", format_name(f)));
                    }
                }
            }
            Value::Array(items) => {
                if n.min_items.is_some_and(|m| items.len() < m) {
                    return fail(
                        at,
                        format!(
                            "must have at least {} items",
                            n.min_items.unwrap_or_default()
                        ),
                    );
                }
                if n.max_items.is_some_and(|m| items.len() > m) {
                    return fail(
                        at,
                        format!(
                            "must have at most {} items",
                            n.max_items.unwrap_or_default()
                        ),
                    );
                }
                if n.unique_items {
                    for (i, a) in items.iter().enumerate() {
                        if items[..i].iter().any(|b| json_equal(a, b)) {
                            return fail(&d.index(at, i), "repeats an earlier item (uniqueItems)");
                        }
                    }
                }
                for (i, x) in items.iter().enumerate() {
                    let schema = n.prefix_items.get(i).copied().or(n.items);
                    if let Some(s) = schema {
                        self.check(s, x, &d.index(at, i), strictness, d)?;
                    }
                }
            }
            Value::Object(o) => {
                if n.min_properties.is_some_and(|m| o.len() < m) {
                    return fail(
                        at,
                        format!(
                            "must have at least {} properties",
                            n.min_properties.unwrap_or_default()
                        ),
                    );
                }
                if n.max_properties.is_some_and(|m| o.len() > m) {
                    return fail(
                        at,
                        format!(
                            "must have at most {} properties",
                            n.max_properties.unwrap_or_default()
                        ),
                    );
                }
                for r in &n.required {
                    if !o.contains_key(r) {
                        // A read-only property is absent from requests, a write-only one from
                        // responses: a required one of either kind may be missing.
                        let one_way = n.properties.iter().any(|(name, p)| {
                            name == r && {
                                let (ro, wo) = self.one_way(*p);
                                ro || wo
                            }
                        });
                        if !one_way {
                            return fail(&d.key(at, r), "is required");
                        }
                    }
                }
                for (k, x) in o {
                    let place = d.key(at, k);
                    let mut matched = false;
                    // Properties are sorted by name (the document's maps are).
                    let found = n
                        .properties
                        .binary_search_by(|(name, _)| name.as_str().cmp(k.as_str()))
                        .ok()
                        .map(|i| &n.properties[i]);
                    if let Some((_, p)) = found {
                        self.check(*p, x, &place, strictness, d)?;
                        matched = true;
                    }
                    for (pattern, s) in &n.pattern_properties {
                        if self.patterns[*pattern]
                            .regex()
                            .is_some_and(|re| re.is_match(k))
                        {
                            self.check(*s, x, &place, strictness, d)?;
                            matched = true;
                        }
                    }
                    if !matched {
                        match n.additional {
                            Additional::Any => {}
                            Additional::Forbidden => {
                                return fail(&place, "is not an allowed property")
                            }
                            Additional::Schema(s) => self.check(s, x, &place, strictness, d)?,
                        }
                    }
                }
            }
            _ => {}
        }
        for s in &n.all_of {
            self.check(*s, v, at, strictness, d)?;
        }
        if !n.any_of.is_empty() && !self.some_branch(n, &n.any_of, v, at, strictness, d) {
            return fail(at, "must match at least one of the anyOf schemas");
        }
        if !n.one_of.is_empty() {
            match strictness {
                Strictness::Lenient => {
                    if !self.some_branch(n, &n.one_of, v, at, strictness, d) {
                        return fail(at, "must match one of the oneOf schemas");
                    }
                }
                // A discriminator naming an alternative decides (OpenAPI's rule): alternatives
                // that differ only in it (Atlas's `allOf: [parent]` children) cannot be told
                // apart by their schemas alone.
                Strictness::Exact if self.discriminated(n, v).is_some() => {
                    let branch = self.discriminated(n, v).unwrap_or(n.one_of[0]);
                    if self.check(branch, v, at, strictness, d).is_err() {
                        return fail(at, "must match the oneOf schema its discriminator names");
                    }
                }
                Strictness::Exact => {
                    let matching = n
                        .one_of
                        .iter()
                        .filter(|s| self.check(**s, v, at, strictness, d).is_ok())
                        .count();
                    if matching != 1 {
                        return fail(
                            at,
                            format!(
                                "must match exactly one of the oneOf schemas (matches {matching})"
                            ),
                        );
                    }
                }
            }
        }
        if let Some(s) = n.not {
            if self.check(s, v, at, strictness, d).is_ok() {
                return fail(at, "must not match the `not` schema");
            }
        }
        Ok(())
    }

    /// The alternative a discriminator names for `v`, if the schema has one and `v` names one.
    fn discriminated(&self, n: &Node, v: &Value) -> Option<SchemaId> {
        let d = n.discriminator.as_ref()?;
        let name = v.get(&d.property)?.as_str()?;
        d.mapping.iter().find(|(m, _)| m == name).map(|(_, s)| *s)
    }

    /// Whether `v` matches some branch; with a discriminator naming the branch, that branch.
    fn some_branch(
        &self,
        n: &Node,
        branches: &[SchemaId],
        v: &Value,
        at: &str,
        strictness: Strictness,
        depth: &mut Walk,
    ) -> bool {
        if let (Some(d), Some(name)) = (
            &n.discriminator,
            n.discriminator
                .as_ref()
                .and_then(|d| v.get(&d.property))
                .and_then(Value::as_str),
        ) {
            if let Some((_, s)) = d.mapping.iter().find(|(m, _)| m == name) {
                return self.check(*s, v, at, strictness, depth).is_ok();
            }
        }
        branches
            .iter()
            .any(|s| self.check(*s, v, at, strictness, depth).is_ok())
    }

    /// Validates a parameter given as text: all its occurrences for an array schema (the `form`,
    /// exploded style), else the first.
    pub fn validate_texts(&self, id: SchemaId, texts: &[&str], at: &str) -> Result<(), Violation> {
        let value = self.text_value(id, texts).map_err(|rule| Violation {
            location: at.to_owned(),
            rule,
        })?;
        self.validate(id, &value, at, Strictness::Lenient)
    }

    /// The JSON value of a parameter's text(s), read as its schema's type.
    pub fn text_value(&self, id: SchemaId, texts: &[&str]) -> Result<Value, String> {
        let n = self.effective(id);
        if n.types.has(Types::ARRAY) && !n.types.has(Types::STRING) {
            let item = n.items;
            let mut out = Vec::with_capacity(texts.len());
            for t in texts {
                out.push(match item {
                    Some(i) => self.scalar_text(i, t)?,
                    None => Value::String((*t).to_owned()),
                });
            }
            return Ok(Value::Array(out));
        }
        match texts.first() {
            Some(t) => self.scalar_text(id, t),
            None => Ok(Value::Null),
        }
    }

    /// The node that says what a schema's values look like: a bare reference's target.
    fn effective(&self, id: SchemaId) -> &Node {
        let mut n = self.node(id);
        for _ in 0..16 {
            match n.reference {
                Some(r) if n.types == Types::ANY => n = self.node(r),
                _ => break,
            }
        }
        n
    }

    fn scalar_text(&self, id: SchemaId, text: &str) -> Result<Value, String> {
        scalar_of(self.effective(id).types, text)
    }
}

/// A text read as the first of `t`'s types that takes it.
fn scalar_of(t: Types, text: &str) -> Result<Value, String> {
    {
        if t.has(Types::STRING) {
            return Ok(Value::String(text.to_owned()));
        }
        if t.has(Types::INTEGER) {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
        }
        if t.has(Types::NUMBER) {
            if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
                return Ok(json!(f));
            }
        }
        if t.has(Types::BOOLEAN) {
            match text {
                "true" => return Ok(Value::Bool(true)),
                "false" => return Ok(Value::Bool(false)),
                _ => {}
            }
        }
        if t.has(Types::NULL) && (text.is_empty() || text == "null") {
            return Ok(Value::Null);
        }
        if t.has(Types::OBJECT) || t.has(Types::ARRAY) {
            return serde_json::from_str(text).map_err(|_| format!("must be {}", t.names()));
        }
        Err(format!("must be {}", t.names()))
    }
}

impl Schemas {
    /// The nodes a value is checked against without consuming it: the schema, its references
    /// and its `allOf` parts (bounded; recursion ends the walk).
    fn facets(&self, id: SchemaId) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut pending = vec![id];
        let mut seen = Vec::new();
        while let Some(i) = pending.pop() {
            if seen.contains(&i) || seen.len() > 32 {
                continue;
            }
            seen.push(i);
            let n = self.node(i);
            out.push(n);
            pending.extend(n.reference);
            pending.extend(n.all_of.iter().copied());
        }
        out
    }

    /// Whether a schema says what its values are (a type, properties, alternatives, a value),
    /// rather than only adding constraints to another's.
    fn says_what(&self, id: SchemaId) -> bool {
        let n = self.node(id);
        Types(n.types.0 | Types::NULL) != Types::ANY
            || !n.properties.is_empty()
            || n.items.is_some()
            || !n.prefix_items.is_empty()
            || !n.enum_values.is_empty()
            || n.const_value.is_some()
            || n.example.is_some()
            || n.reference.is_some()
            || !n.all_of.is_empty()
            || !n.one_of.is_empty()
            || !n.any_of.is_empty()
    }

    /// The patterns that are not enforced, each with where it is first written and why: too
    /// large to compile within the limit, or syntax the linear-time engine cannot run.
    /// Compiles each pattern once (and drops it); called once, when the document is prepared.
    pub fn unenforced_patterns(&self) -> Vec<(&str, String)> {
        self.patterns
            .iter()
            .filter_map(|p| p.unenforceable().map(|why| (p.place.as_str(), why)))
            .collect()
    }

    /// Whether some value can satisfy the schema, as far as types tell: a schema whose own
    /// `type`, references, `allOf` parts and alternatives admit no common type (Atlas has
    /// `type: object` with `oneOf` strings), or that requires a property or an item no value
    /// satisfies, has no valid value, so no body for it can validate.
    pub fn satisfiable(&self, id: SchemaId) -> bool {
        match self.possible.get(id.0 as usize) {
            Some(t) => *t != 0,
            None => self.possible_types(id, &mut Vec::new()).0 != 0,
        }
    }

    fn possible_types(&self, id: SchemaId, visiting: &mut Vec<SchemaId>) -> Types {
        if let Some(t) = self.possible.get(id.0 as usize) {
            return Types(*t);
        }
        if visiting.contains(&id) || visiting.len() > 64 {
            // Recursion: assume the cycle can be satisfied (it is checked where it starts).
            return Types::ANY;
        }
        visiting.push(id);
        let n = self.node(id);
        let mut t = n.types.0;
        if !n.enum_values.is_empty() {
            t &= n.enum_values.iter().fold(0, |acc, v| {
                acc | Types::of(v)
                    | if Types::of(v) == Types::INTEGER {
                        Types::NUMBER
                    } else {
                        0
                    }
            });
        }
        if let Some(c) = &n.const_value {
            t &= Types::of(c);
        }
        if let Some(r) = n.reference {
            t &= self.possible_types(r, visiting).0;
        }
        for s in &n.all_of {
            t &= self.possible_types(*s, visiting).0;
        }
        for alternatives in [&n.one_of, &n.any_of] {
            if !alternatives.is_empty() {
                t &= alternatives
                    .iter()
                    .fold(0, |acc, s| acc | self.possible_types(*s, visiting).0);
            }
        }
        if t & Types::OBJECT != 0 {
            let impossible = n.required.iter().any(|r| {
                n.properties
                    .iter()
                    .find(|(name, _)| name == r)
                    .is_some_and(|(_, p)| self.possible_types(*p, visiting).0 == 0)
            });
            if impossible {
                t &= !Types::OBJECT;
            }
        }
        if t & Types::ARRAY != 0 && n.min_items.unwrap_or(0) > 0 {
            if let Some(items) = n.items {
                if self.possible_types(items, visiting).0 == 0 {
                    t &= !Types::ARRAY;
                }
            }
        }
        visiting.pop();
        Types(t)
    }

    /// Whether the schema's values are arrays (and not also strings).
    pub fn expects_array(&self, id: SchemaId) -> bool {
        let facets = self.facets(id);
        facets.iter().any(|n| {
            n.types != Types::ANY && n.types.has(Types::ARRAY) && !n.types.has(Types::STRING)
        }) || facets
            .iter()
            .any(|n| n.types == Types::ANY && (n.items.is_some() || !n.prefix_items.is_empty()))
    }

    /// Reads a value made of texts (a form body, a deepObject parameter) as the schema's types:
    /// `"2"` becomes `2` where an integer is expected, a lone text an array where one is.
    pub fn coerce(&self, id: SchemaId, v: Value) -> Value {
        self.coerce_at(id, v, 0)
    }

    fn coerce_at(&self, id: SchemaId, v: Value, depth: usize) -> Value {
        if depth > 32 {
            return v;
        }
        let facets = self.facets(id);
        let alternatives: Vec<SchemaId> = facets
            .iter()
            .flat_map(|n| n.any_of.iter().chain(&n.one_of).copied())
            .collect();
        // Alternatives (Stripe's `anyOf: [array of objects, ""]`): the first reading of the
        // texts that one of them takes.
        if !alternatives.is_empty() && !matches!(v, Value::String(_)) {
            for a in &alternatives {
                let read = self.coerce_at(*a, v.clone(), depth + 1);
                if self.is_valid(id, &read, Strictness::Lenient) {
                    return read;
                }
            }
        }
        match v {
            Value::String(text) => {
                if self.expects_array(id) {
                    let item = facets.iter().find_map(|n| n.items);
                    let one = match item {
                        Some(i) => self.coerce_at(i, Value::String(text), depth + 1),
                        None => Value::String(text),
                    };
                    return Value::Array(vec![one]);
                }
                let typed = facets.iter().any(|n| n.types != Types::ANY);
                if typed {
                    if let Ok(v) = self.scalar_text(id, &text) {
                        return v;
                    }
                    for n in &facets {
                        if n.types != Types::ANY && !n.types.has(Types::STRING) {
                            if let Ok(v) = scalar_of(n.types, &text) {
                                return v;
                            }
                        }
                    }
                }
                for a in alternatives {
                    let v = self.coerce_at(a, Value::String(text.clone()), depth + 1);
                    if self.is_valid(a, &v, Strictness::Lenient) {
                        return v;
                    }
                }
                Value::String(text)
            }
            Value::Array(items) => {
                let item = facets.iter().find_map(|n| n.items);
                let prefix: Vec<SchemaId> = facets
                    .iter()
                    .find(|n| !n.prefix_items.is_empty())
                    .map(|n| n.prefix_items.clone())
                    .unwrap_or_default();
                if !self.expects_array(id) && items.len() == 1 && alternatives.is_empty() {
                    // A single value sent where one is expected.
                    return self.coerce_at(
                        id,
                        items.into_iter().next().unwrap_or(Value::Null),
                        depth + 1,
                    );
                }
                Value::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| match prefix.get(i).copied().or(item) {
                            Some(s) => self.coerce_at(s, x, depth + 1),
                            None => x,
                        })
                        .collect(),
                )
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, x) in map {
                    let schema = facets.iter().find_map(|n| {
                        n.properties
                            .iter()
                            .find(|(name, _)| *name == k)
                            .map(|(_, s)| *s)
                            .or(match n.additional {
                                Additional::Schema(s) => Some(s),
                                _ => None,
                            })
                    });
                    let schema = schema.or_else(|| {
                        alternatives.iter().find_map(|a| {
                            self.facets(*a).iter().find_map(|n| {
                                n.properties
                                    .iter()
                                    .find(|(name, _)| *name == k)
                                    .map(|(_, s)| *s)
                            })
                        })
                    });
                    let x = match schema {
                        Some(s) => self.coerce_at(s, x, depth + 1),
                        None => x,
                    };
                    out.insert(k, x);
                }
                Value::Object(out)
            }
            other => other,
        }
    }

    /// A value valid against the schema, for a response (write-only properties left out).
    pub fn example(&self, id: SchemaId) -> Value {
        self.synthesize(id, Direction::Response, None)
    }

    /// A value valid against the schema, for a request (read-only properties left out).
    pub fn request_example(&self, id: SchemaId) -> Value {
        self.synthesize(id, Direction::Request, None)
    }

    /// A value valid against the schema, varied by `seed` (the mock's `--dynamic` answers):
    /// lengths, numbers and optional properties change with it.
    pub fn dynamic_example(&self, id: SchemaId, seed: u64) -> Value {
        self.synthesize(id, Direction::Response, Some(seed))
    }

    fn synthesize(&self, id: SchemaId, direction: Direction, seed: Option<u64>) -> Value {
        let mut s = Synth {
            schemas: self,
            direction,
            rng: seed.map(|s| s ^ 0x9E37_79B9_7F4A_7C15),
            visits: HashMap::new(),
        };
        let v = s.value(id, 0);
        if self.is_valid(id, &v, Strictness::Exact) || seed.is_none() {
            return v;
        }
        // A varied value that breaks a rule: the plain one instead.
        self.synthesize(id, direction, None)
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::DateTime => "date-time",
        Format::Date => "date",
        Format::Time => "time",
        Format::Email => "email",
        Format::Uuid => "uuid",
        Format::Uri => "uri",
        Format::Ipv4 => "ipv4",
        Format::Ipv6 => "ipv6",
        Format::Hostname => "hostname",
        Format::Byte => "byte",
        Format::Int32 => "int32",
        Format::Int64 => "int64",
        Format::Other => "other",
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_equal(a, b)))
        }
        _ => a == b,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// The synthesizer's walk: how often each schema is on the current path (recursion is followed
/// a bounded number of times, then only what is required is made).
struct Synth<'s> {
    schemas: &'s Schemas,
    direction: Direction,
    rng: Option<u64>,
    visits: HashMap<SchemaId, usize>,
}

/// Deepest a synthesized value goes before it keeps to what is required.
const SYNTH_DEPTH: usize = 12;

impl Synth<'_> {
    fn next(&mut self) -> Option<u64> {
        // xorshift64*: repeatable for a seed, no dependency.
        let x = self.rng.as_mut()?;
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        Some(x.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }

    fn pick(&mut self, n: usize) -> usize {
        match self.next() {
            Some(r) if n > 0 => (r % n as u64) as usize,
            _ => 0,
        }
    }

    fn value(&mut self, id: SchemaId, depth: usize) -> Value {
        self.value_with(id, depth, true)
    }

    /// A value for `id`; `fill` adds what it requires but does not describe, which a part of an
    /// `allOf` leaves to the whole (another part may describe it).
    fn value_with(&mut self, id: SchemaId, depth: usize, fill: bool) -> Value {
        let count = self.visits.entry(id).or_insert(0);
        *count += 1;
        let deep = *count > 2 || depth > SYNTH_DEPTH;
        let v = if *count > 4 || depth > 4 * SYNTH_DEPTH {
            // A cycle that consumes nothing (a parent whose alternatives are `allOf` it): stop.
            let n = self.schemas.node(id);
            match n.example.clone().or_else(|| n.enum_values.first().cloned()) {
                Some(e) => e,
                None if self.valid(id, &Value::Null) => Value::Null,
                None if n.types.has(Types::OBJECT) => Value::Object(Map::new()),
                None if n.types.has(Types::STRING) => Value::String(self.string(n)),
                None if n.types.has(Types::INTEGER) => Value::from(self.integer(n)),
                None if n.types.has(Types::BOOLEAN) => Value::Bool(true),
                None => Value::Array(Vec::new()),
            }
        } else {
            let mut v = self.value_inner(id, depth, deep);
            if fill && v.is_object() {
                self.fill_required(id, &mut v, depth);
            }
            v
        };
        if let Some(c) = self.visits.get_mut(&id) {
            *c -= 1;
        }
        v
    }

    fn valid(&self, id: SchemaId, v: &Value) -> bool {
        self.schemas.is_valid(id, v, Strictness::Exact)
    }

    /// Another value for an item of a `uniqueItems` array that repeats an earlier one, which its
    /// schema still takes: the item with its index appended (or added), the item with its last
    /// character changed, a short text, a neighbouring number, another member of its enum. When
    /// none fits (fewer valid values than items), the first.
    fn unique_variant(
        &self,
        schema: Option<SchemaId>,
        item: &Value,
        items: &[Value],
        i: usize,
    ) -> Value {
        let mut candidates = vec![vary(item, i)];
        match item {
            Value::String(s) => {
                let mut stem = s.clone();
                let last = stem.pop();
                let chars = ('0'..='9').chain('a'..='z').chain('A'..='Z');
                for c in chars.clone().filter(|c| Some(*c) != last) {
                    candidates.push(Value::String(format!("{stem}{c}")));
                }
                candidates.extend(chars.map(|c| Value::String(c.to_string())));
            }
            Value::Number(x) => {
                for d in 1..=(items.len() as i64 + 1) {
                    match x.as_i64() {
                        Some(k) => candidates.extend([json!(k - d), json!(k + d)]),
                        None => {
                            let f = x.as_f64().unwrap_or(0.0);
                            candidates.extend([json!(f - d as f64), json!(f + d as f64)]);
                        }
                    }
                }
            }
            Value::Bool(b) => candidates.push(Value::Bool(!b)),
            _ => {}
        }
        // The enum of the item's schema, or of the schema it refers to.
        let mut at = schema;
        for _ in 0..8 {
            let Some(s) = at else { break };
            let n = self.schemas.node(s);
            candidates.extend(n.enum_values.iter().cloned());
            at = n.reference;
        }
        let first = candidates[0].clone();
        candidates
            .into_iter()
            .find(|v| {
                !items.iter().any(|x| json_equal(x, v)) && schema.is_none_or(|s| self.valid(s, v))
            })
            .unwrap_or(first)
    }

    fn value_inner(&mut self, id: SchemaId, depth: usize, deep: bool) -> Value {
        let n = self.schemas.node(id);
        if self.rng.is_none() || n.example.is_some() {
            if let Some(e) = &n.example {
                return e.clone();
            }
        }
        if let Some(c) = &n.const_value {
            return c.clone();
        }
        if !n.enum_values.is_empty() {
            let candidates: Vec<&Value> = n.enum_values.iter().filter(|e| !e.is_null()).collect();
            if !candidates.is_empty() {
                let i = self.pick(candidates.len());
                return candidates[i].clone();
            }
            return n.enum_values[0].clone();
        }
        if let Some(r) = n.reference {
            if n.types == Types::ANY
                && n.all_of.is_empty()
                && n.one_of.is_empty()
                && n.any_of.is_empty()
            {
                return self.value(r, depth + 1);
            }
        }
        if deep && self.valid(id, &Value::Null) {
            return Value::Null;
        }
        // Alternatives: the first (or a seeded) branch whose value matches the whole schema.
        let alternatives = if !n.one_of.is_empty() {
            &n.one_of
        } else {
            &n.any_of
        };
        if !alternatives.is_empty() {
            let start = self.pick(alternatives.len());
            let mut fallback = None;
            for k in 0..alternatives.len() {
                let branch = alternatives[(start + k) % alternatives.len()];
                let mut v = self.value(branch, depth + 1);
                // The discriminator names the branch taken.
                if let (Some(d), Value::Object(o)) = (&n.discriminator, &mut v) {
                    if let Some((name, _)) = d.mapping.iter().find(|(_, s)| *s == branch) {
                        o.insert(d.property.clone(), Value::String(name.clone()));
                    }
                }
                if !n.all_of.is_empty() || !n.properties.is_empty() {
                    v = self.merge_parts(id, v, depth, deep);
                }
                if self.valid(id, &v) {
                    return v;
                }
                if !n.one_of.is_empty() {
                    if let Some(v) = self.disambiguate(id, branch, v.clone()) {
                        return v;
                    }
                }
                fallback.get_or_insert(v);
            }
            // No alternative made a valid value (a recursion cut too early): null when allowed.
            if self.valid(id, &Value::Null) {
                return Value::Null;
            }
            return fallback.unwrap_or(Value::Null);
        }
        if !n.all_of.is_empty() {
            let v = self.merge_parts(id, Value::Null, depth, deep);
            return v;
        }
        if let Some(r) = n.reference {
            let base = self.value(r, depth + 1);
            return self.merge_parts(id, base, depth, deep);
        }
        self.own_value(n, depth, deep)
    }

    /// Adds the properties an object's schema (with its references and `allOf` parts) requires
    /// and it lacks, made from the schema that describes each (a part may require what another
    /// part describes).
    fn fill_required(&mut self, id: SchemaId, v: &mut Value, depth: usize) {
        let schemas = self.schemas;
        let facets = schemas.facets(id);
        let (ro_skip, wo_skip) = match self.direction {
            Direction::Request => (true, false),
            Direction::Response => (false, true),
        };
        let mut missing: Vec<(String, Option<SchemaId>, Additional)> = Vec::new();
        for f in &facets {
            for r in &f.required {
                if v.get(r).is_some() || missing.iter().any(|(m, _, _)| m == r) {
                    continue;
                }
                let schema = facets.iter().find_map(|g| {
                    g.properties
                        .iter()
                        .find(|(name, _)| name == r)
                        .map(|(_, s)| *s)
                });
                if let Some(s) = schema {
                    let (ro, wo) = schemas.one_way(s);
                    if (ro && ro_skip) || (wo && wo_skip) {
                        continue;
                    }
                }
                missing.push((r.clone(), schema, f.additional));
            }
        }
        for (name, schema, additional) in missing {
            let value = match (schema, additional) {
                (Some(s), _) | (None, Additional::Schema(s)) => self.value(s, depth + 1),
                _ => Value::String("string".into()),
            };
            if let Some(o) = v.as_object_mut() {
                o.insert(name, value);
            }
        }
    }

    /// Makes an object that matches several `oneOf` alternatives match only `chosen`: for each
    /// other alternative it matches, adds a property that alternative (and neither `chosen` nor
    /// the parent) describes, with a value of a type it refuses. Atlas lists alternatives that
    /// differ only in optional properties, without a discriminator; this is how a value can
    /// still match exactly one of them.
    fn disambiguate(&mut self, id: SchemaId, chosen: SchemaId, mut v: Value) -> Option<Value> {
        let schemas = self.schemas;
        let n = schemas.node(id);
        let named = |s: SchemaId| -> Vec<String> {
            schemas
                .facets(s)
                .iter()
                .flat_map(|f| f.properties.iter().map(|(name, _)| name.clone()))
                .collect()
        };
        let mut taken = named(chosen);
        taken.extend(n.properties.iter().map(|(name, _)| name.clone()));
        if schemas
            .facets(chosen)
            .iter()
            .any(|f| f.additional == Additional::Forbidden)
        {
            return None;
        }
        for other in n.one_of.iter().copied().filter(|o| *o != chosen) {
            if !schemas.is_valid(other, &v, Strictness::Exact) {
                continue;
            }
            let candidate = schemas.facets(other).iter().find_map(|f| {
                f.properties.iter().find_map(|(name, p)| {
                    let allowed = schemas.possible_types(*p, &mut Vec::new()).0;
                    (!taken.contains(name) && allowed != Types::ANY.0)
                        .then(|| (name.clone(), allowed))
                })
            });
            let (name, allowed) = candidate?;
            let refused = if allowed & (Types::NUMBER | Types::INTEGER) == 0 {
                json!(0)
            } else if allowed & Types::STRING == 0 {
                json!("x")
            } else if allowed & Types::BOOLEAN == 0 {
                json!(true)
            } else if allowed & Types::OBJECT == 0 {
                json!({})
            } else {
                json!([])
            };
            v.as_object_mut()?.insert(name.clone(), refused);
            taken.push(name);
        }
        self.valid(id, &v).then_some(v)
    }

    /// A value for `id` built from its `allOf` parts and its own keywords, merged: objects'
    /// properties together, otherwise the first part that says what the value is.
    fn merge_parts(&mut self, id: SchemaId, start: Value, depth: usize, deep: bool) -> Value {
        let n = self.schemas.node(id);
        let mut parts: Vec<Value> = Vec::new();
        if !start.is_null() {
            parts.push(start);
        }
        if let Some(r) = n.reference {
            parts.push(self.value(r, depth + 1));
        }
        for s in n.all_of.clone() {
            // A part that only adds constraints (`nullable`, `description`) makes no value.
            if !self.schemas.says_what(s) {
                continue;
            }
            if self.visits.get(&s).is_some_and(|c| *c > 0) {
                // A part that is being made further up (a child `allOf` its parent, whose
                // alternatives led here): its own properties only, not its alternatives again.
                let part = self.schemas.node(s);
                parts.push(self.own_value(part, depth + 1, deep));
            } else {
                parts.push(self.value_with(s, depth + 1, false));
            }
        }
        let own_says_something = n.types != Types::ANY || !n.properties.is_empty();
        if own_says_something {
            parts.push(self.own_value(n, depth, deep));
        }
        if parts.iter().any(Value::is_object) {
            let mut m = Map::new();
            for p in parts {
                if let Value::Object(o) = p {
                    for (k, v) in o {
                        m.entry(k).or_insert(v);
                    }
                }
            }
            return Value::Object(m);
        }
        parts
            .into_iter()
            .find(|p| !(p.is_null() || p.as_object().is_some_and(Map::is_empty)))
            .unwrap_or(Value::Null)
    }

    /// A value from the schema's own type keywords.
    fn own_value(&mut self, n: &Node, depth: usize, deep: bool) -> Value {
        let t = n.types;
        if t.0 == Types::NULL {
            return Value::Null;
        }
        // The type to make: an object when properties are named, else the first allowed.
        let make = if t.has(Types::OBJECT)
            && (!n.properties.is_empty() || n.additional != Additional::Any)
        {
            Types::OBJECT
        } else if t == Types::ANY {
            if n.items.is_some() || !n.prefix_items.is_empty() {
                Types::ARRAY
            } else if n.pattern.is_some()
                || n.format.is_some_and(|f| f.sample().is_some())
                || n.min_length.is_some()
            {
                Types::STRING
            } else if n.minimum.is_some() || n.maximum.is_some() {
                Types::NUMBER
            } else {
                Types::OBJECT
            }
        } else {
            [
                Types::OBJECT,
                Types::ARRAY,
                Types::STRING,
                Types::NUMBER,
                Types::INTEGER,
                Types::BOOLEAN,
            ]
            .into_iter()
            .find(|b| t.has(*b))
            .unwrap_or(Types::NULL)
        };
        match make {
            Types::BOOLEAN => Value::Bool(self.pick(2) == 0),
            Types::INTEGER => Value::from(self.integer(n)),
            Types::NUMBER => {
                if t.has(Types::NUMBER) {
                    self.number(n)
                } else {
                    Value::from(self.integer(n))
                }
            }
            Types::STRING => Value::String(self.string(n)),
            Types::ARRAY => {
                let min = n.min_items.unwrap_or(0);
                let max = n.max_items.unwrap_or(usize::MAX);
                // Items no value satisfies: as few as allowed.
                let impossible = n.items.is_some_and(|i| !self.schemas.satisfiable(i));
                let wanted = if deep || impossible {
                    min
                } else {
                    min.max(1).min(max)
                };
                let extra = if self.rng.is_some() && !deep && !impossible {
                    self.pick(3)
                } else {
                    0
                };
                let len = (wanted + extra)
                    .min(max)
                    .max(min)
                    .max(n.prefix_items.len().min(max));
                let mut items = Vec::with_capacity(len);
                for i in 0..len {
                    let schema = n.prefix_items.get(i).copied().or(n.items);
                    let mut item = match schema {
                        Some(s) => self.value(s, depth + 1),
                        None => Value::String(format!("item{i}")),
                    };
                    if n.unique_items && items.iter().any(|x: &Value| json_equal(x, &item)) {
                        item = self.unique_variant(schema, &item, &items, i);
                    }
                    items.push(item);
                }
                Value::Array(items)
            }
            Types::OBJECT => {
                let mut m = Map::new();
                for (name, p) in &n.properties {
                    let (ro, wo) = self.schemas.one_way(*p);
                    let skip = match self.direction {
                        Direction::Request => ro,
                        Direction::Response => wo,
                    };
                    let required = n.required.contains(name);
                    // A write-only property is never in a response, a read-only one never in
                    // a request, required or not (the validator lets them be missing).
                    if skip {
                        continue;
                    }
                    if !required
                        && (deep
                            || depth + 1 > SYNTH_DEPTH
                            || !self.schemas.satisfiable(*p)
                            || (self.rng.is_some() && self.pick(4) == 0))
                    {
                        continue;
                    }
                    m.insert(name.clone(), self.value(*p, depth + 1));
                }
                let min = n.min_properties.unwrap_or(0);
                let mut k = 0;
                while m.len() < min && k < min + 8 {
                    let v = match n.additional {
                        Additional::Schema(s) => self.value(s, depth + 1),
                        _ => Value::String("value".into()),
                    };
                    m.insert(format!("property{k}"), v);
                    k += 1;
                }
                Value::Object(m)
            }
            _ => Value::Null,
        }
    }

    fn integer(&mut self, n: &Node) -> i64 {
        let low = n
            .minimum
            .map(|m| m.ceil())
            .or(n.exclusive_minimum.map(|m| m.floor() + 1.0));
        let high = n
            .maximum
            .map(|m| m.floor())
            .or(n.exclusive_maximum.map(|m| m.ceil() - 1.0));
        let step = n
            .multiple_of
            .filter(|m| m.fract() == 0.0)
            .map(|m| m as i64)
            .unwrap_or(1)
            .max(1);
        let mut x = match (low, high) {
            (Some(l), _) => l as i64,
            (None, Some(h)) if h < 1.0 => h as i64,
            _ => 1,
        };
        if let Some(r) = self.next() {
            let span = match (low, high) {
                (Some(l), Some(h)) => ((h - l) as i64).clamp(0, 1000),
                _ => 100,
            };
            x += (r % (span as u64 + 1)) as i64;
        }
        if x % step != 0 {
            x += step - x.rem_euclid(step);
        }
        if let Some(h) = high {
            if x as f64 > h {
                x = h as i64 - (h as i64).rem_euclid(step);
            }
        }
        x
    }

    fn number(&mut self, n: &Node) -> Value {
        if n.multiple_of.is_some() {
            let i = self.integer(n);
            return json!(
                i as f64
                    * if n.multiple_of.unwrap_or(1.0).fract() == 0.0 {
                        1.0
                    } else {
                        n.multiple_of.unwrap_or(1.0)
                    }
            );
        }
        let low = n.minimum.or(n.exclusive_minimum.map(|m| m + 0.5));
        let high = n.maximum.or(n.exclusive_maximum.map(|m| m - 0.5));
        let mut x = match (low, high) {
            (Some(l), Some(h)) => (l + h) / 2.0,
            (Some(l), None) => l + 1.5,
            (None, Some(h)) => h - 1.5,
            (None, None) => 1.5,
        };
        if let Some(r) = self.next() {
            let bump = (r % 1000) as f64 / 100.0;
            if high.is_none_or(|h| x + bump <= h) {
                x += bump;
            }
        }
        json!(x)
    }

    fn string(&mut self, n: &Node) -> String {
        let min = n.min_length.unwrap_or(0);
        let max = n.max_length.unwrap_or(usize::MAX);
        if let Some(p) = n.pattern.map(|p| &self.schemas.patterns[p]) {
            if p.regex().is_none() {
                // Not enforced here, but a judge that can run it will: a string the pattern
                // without its look-arounds takes, from shapes such patterns usually describe.
                let relaxed =
                    regex::RegexBuilder::new(&ecma_to_rust(&without_lookaround(&p.source)))
                        .size_limit(PATTERN_SIZE_LIMIT)
                        .build();
                if let Ok(re) = relaxed {
                    let fits =
                        |c: &&&str| re.is_match(c) && (min..=max).contains(&c.chars().count());
                    if let Some(c) = UNENFORCED_PATTERN_CANDIDATES.iter().find(fits) {
                        return (*c).to_owned();
                    }
                }
            }
        }
        if let Some(re) = n.pattern.and_then(|p| self.schemas.patterns[p].regex()) {
            if let Ok(hir) = regex_syntax::Parser::new().parse(re.as_str()) {
                for repeat in [0, 1, 3, 8, 32] {
                    let mut out = String::new();
                    generate(&hir, &mut out, repeat.max(min.min(64)) as u32);
                    let len = out.chars().count();
                    if re.is_match(&out) && len >= min && len <= max {
                        return out;
                    }
                }
            }
        }
        let mut s = match n.format.and_then(Format::sample) {
            Some(sample) => sample.to_owned(),
            None => match self.next() {
                Some(r) => format!("text{}", r % 10_000),
                None => "string".to_owned(),
            },
        };
        while s.chars().count() < min {
            s.push('x');
        }
        if s.chars().count() > max {
            s = s.chars().take(max).collect();
        }
        s
    }
}

/// A variant of a value, for arrays whose items must be unique.
fn vary(v: &Value, i: usize) -> Value {
    match v {
        Value::String(s) => Value::String(format!("{s}{i}")),
        Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) + i as f64),
        Value::Object(o) => {
            let mut o = o.clone();
            if let Some((k, first)) = o.iter().next().map(|(k, v)| (k.clone(), v.clone())) {
                o.insert(k, vary(&first, i));
            }
            Value::Object(o)
        }
        other => other.clone(),
    }
}

/// A string matching a pattern's syntax tree: the first choice everywhere, each repetition at
/// least `repeat` times where the pattern allows (to reach a minimum length).
fn generate(hir: &regex_syntax::hir::Hir, out: &mut String, repeat: u32) {
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
            let times = r
                .min
                .max(repeat.min(r.max.unwrap_or(u32::MAX)))
                .max(u32::from(r.min == 0 && r.max != Some(0) && repeat > 0));
            let times = if r.min == 0 && repeat == 0 { 0 } else { times };
            let times = times.max(r.min);
            let times = if r.max.is_none_or(|m| m > 0) && times == 0 && r.min > 0 {
                1
            } else {
                times
            };
            for _ in 0..times.min(256) {
                generate(&r.sub, out, repeat);
            }
        }
        HirKind::Capture(c) => generate(&c.sub, out, repeat),
        HirKind::Concat(parts) => parts.iter().for_each(|p| generate(p, out, repeat)),
        HirKind::Alternation(alts) => {
            if let Some(a) = alts.first() {
                generate(a, out, repeat);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_in(doc: Value, dialect: Dialect, schema: Value) -> (Schemas, SchemaId) {
        let sources = Sources::from_value(doc);
        let mut c = Compiler::new(&sources, dialect);
        // The schema is compiled from a copy placed in the document's own tree.
        let leaked: &'static Value = Box::leak(Box::new(schema));
        let id = c.compile(0, leaked, "#").unwrap();
        (c.finish(), id)
    }

    fn compile(schema: Value) -> (Schemas, SchemaId) {
        compile_in(json!({}), Dialect::Oas30, schema)
    }

    fn ok(s: &(Schemas, SchemaId), v: Value) -> bool {
        s.0.validate(s.1, &v, "", Strictness::Exact).is_ok()
    }

    #[test]
    fn patterns_the_engine_cannot_run_still_get_fitting_examples() {
        let ip =
            r"^((25[0-5]|(2[0-4]|1\d|[1-9]|)\d)(\.(?!$)|$)){4}|([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$";
        assert_eq!(
            without_lookaround(ip),
            r"^((25[0-5]|(2[0-4]|1\d|[1-9]|)\d)(\.|$)){4}|([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$"
        );
        let s = compile(json!({"type": "string", "pattern": ip}));
        assert_eq!(s.0.example(s.1), json!("192.0.2.1"));
        assert_eq!(without_lookaround(r"a(?<=b)c\(?=x)"), r"ac\(?=x)");
    }

    #[test]
    fn matching_stays_linear_where_backtracking_would_not_end() {
        // `^(a+)+$` against a long run of `a` ending in `!`: a backtracking engine tries 2^n
        // ways; the regex crate's automata read the text once, so this test ends at all.
        let s = compile(json!({"type": "string", "pattern": "^(a+)+$"}));
        let long = format!("{}!", "a".repeat(100_000));
        assert!(!ok(&s, json!(long)));
        assert!(ok(&s, json!("a".repeat(100_000))));
        let s = compile(json!({"type": "string", "pattern": "^(a|aa)*(b|ab)*c$"}));
        assert!(!ok(&s, json!(format!("{}d", "a".repeat(50_000)))));
        assert!(s.0.unenforced_patterns().is_empty());
    }

    #[test]
    fn patterns_too_large_or_foreign_are_named_not_enforced() {
        let s = compile(json!({"type": "object", "properties": {
            "big": {"type": "string", "pattern": "^\\p{L}{2000}$"},
            "ahead": {"type": "string", "pattern": "^(?!x)a$"}
        }}));
        let mut unenforced = s.0.unenforced_patterns();
        unenforced.sort();
        assert_eq!(unenforced.len(), 2, "{unenforced:?}");
        assert_eq!(unenforced[0].0, "#/properties/ahead/pattern");
        assert!(unenforced[0].1.contains("look-around"), "{unenforced:?}");
        assert_eq!(unenforced[1].0, "#/properties/big/pattern");
        assert!(
            unenforced[1].1.contains("more than 2097152 bytes"),
            "{unenforced:?}"
        );
        // Neither is checked; the rest of the schema still is.
        assert!(ok(&s, json!({"big": "1", "ahead": "x"})));
        assert!(!ok(&s, json!({"big": 1})));
    }

    #[test]
    fn patterns_follow_ecma_262() {
        assert_eq!(ecma_to_rust(r"^\d+[\w.-]$"), r"^[0-9]+[A-Za-z0-9_.-]$");
        assert_eq!(ecma_to_rust(r"\W\D\.[\D]"), r"[^A-Za-z0-9_][^0-9]\.[\D]");
        let s = compile(json!({"type": "string", "pattern": "^\\w+$"}));
        assert!(ok(&s, json!("abc_1")));
        assert!(!ok(&s, json!("é")), "ECMA \\w is ASCII");
        let v =
            s.0.validate(s.1, &json!("a b"), "x", Strictness::Exact)
                .unwrap_err();
        assert_eq!(
            v.rule, "must match the pattern ^\\w+$",
            "the document's text is quoted"
        );
    }

    #[test]
    fn patterns_and_formats_yield_matching_examples() {
        for p in [
            "^([a-f0-9]{24})$",
            "^[\\p{L}\\p{N}\\-_.(),:&@+']{1,64}$",
            "^mdb_sa_id_[0-9a-f]{24}$",
            "[A-Z]{2,3}-\\d+",
        ] {
            let s = compile(json!({"type": "string", "pattern": p}));
            let e = s.0.example(s.1);
            assert!(ok(&s, e.clone()), "{p}: {e}");
        }
        let s = compile(json!({"type": "string", "pattern": "^a+$", "minLength": 5}));
        assert!(ok(&s, s.0.example(s.1)), "{}", s.0.example(s.1));
        for f in [
            "date-time",
            "date",
            "email",
            "uuid",
            "uri",
            "ipv4",
            "ipv6",
            "hostname",
            "byte",
        ] {
            let s = compile(json!({"type": "string", "format": f}));
            assert!(ok(&s, s.0.example(s.1)), "{f}");
        }
        let s = compile(json!({"type": "string", "format": "date-time"}));
        assert!(!ok(&s, json!("yesterday")));
        assert!(ok(&s, json!("2024-02-03T04:05:06.789+01:00")));
    }

    #[test]
    fn objects_report_the_place_and_rule() {
        let s = compile(
            json!({"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": {"type": "integer"}}}}),
        );
        assert_eq!(
            s.0.validate(s.1, &json!({}), "body", Strictness::Exact)
                .unwrap_err()
                .location,
            "body.users"
        );
        let v =
            s.0.validate(s.1, &json!({"users": [1, "x"]}), "body", Strictness::Exact)
                .unwrap_err();
        assert_eq!(
            (v.location.as_str(), v.rule.as_str()),
            ("body.users[1]", "must be an integer")
        );
        assert!(ok(&s, s.0.example(s.1)));
    }

    #[test]
    fn recursion_is_checked_at_every_depth() {
        let doc = json!({"components": {"schemas": {"Node": {"type": "object", "properties": {
            "name": {"type": "string"},
            "next": {"$ref": "#/components/schemas/Node"}}}}}});
        let s = compile_in(
            doc,
            Dialect::Oas30,
            json!({"$ref": "#/components/schemas/Node"}),
        );
        assert!(ok(&s, json!({"next": {"next": {"name": "x"}}})));
        assert!(
            !ok(&s, json!({"next": {"next": {"name": 5}}})),
            "three levels down is still checked"
        );
        assert!(ok(&s, s.0.example(s.1)));
    }

    #[test]
    fn openapi_30_and_31_spellings_mean_the_same() {
        let s = compile(
            json!({"type": "integer", "nullable": true, "minimum": 0, "exclusiveMinimum": true}),
        );
        assert!(ok(&s, json!(null)) && ok(&s, json!(1)) && !ok(&s, json!(0)));
        let s = compile_in(
            json!({}),
            Dialect::Oas31,
            json!({"type": ["integer", "null"], "exclusiveMinimum": 0}),
        );
        assert!(ok(&s, json!(null)) && ok(&s, json!(1)) && !ok(&s, json!(0)));
        let s = compile_in(
            json!({}),
            Dialect::Oas31,
            json!({"const": "on", "examples": ["on"]}),
        );
        assert!(ok(&s, json!("on")) && !ok(&s, json!("off")));
        assert_eq!(s.0.example(s.1), json!("on"));
        let s = compile_in(
            json!({}),
            Dialect::Oas31,
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}),
        );
        assert!(ok(&s, json!(["a", 1])) && !ok(&s, json!([1, "a"])));
        assert!(ok(&s, s.0.example(s.1)), "{}", s.0.example(s.1));
    }

    #[test]
    fn a_31_reference_with_siblings_applies_both() {
        let doc = json!({"components": {"schemas": {"S": {"type": "string"}}}});
        let s = compile_in(
            doc,
            Dialect::Oas31,
            json!({"$ref": "#/components/schemas/S", "maxLength": 2}),
        );
        assert!(ok(&s, json!("ab")) && !ok(&s, json!("abc")) && !ok(&s, json!(5)));
    }

    #[test]
    fn one_of_is_exact_for_responses_and_lenient_for_requests() {
        let s = compile(json!({"oneOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}}]}));
        let both = json!({"a": "x"});
        assert!(s.0.validate(s.1, &both, "", Strictness::Lenient).is_ok());
        assert!(
            s.0.validate(s.1, &both, "", Strictness::Exact).is_err(),
            "matches both"
        );
        // The synthesizer finds a value only one alternative takes, or none exists.
        let s = compile(json!({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}));
        let e = s.0.example(s.1);
        assert!(ok(&s, e.clone()), "{e}");
    }

    #[test]
    fn all_of_parts_that_only_add_constraints_keep_the_value() {
        let doc =
            json!({"components": {"schemas": {"T": {"type": "string", "format": "date-time"}}}});
        let s = compile_in(
            doc,
            Dialect::Oas30,
            json!({"allOf": [{"$ref": "#/components/schemas/T"}, {"nullable": true, "description": "when"}]}),
        );
        let e = s.0.example(s.1);
        assert!(e.is_string() && ok(&s, e.clone()), "{e}");
    }

    #[test]
    fn enums_constants_and_examples_win_when_valid() {
        let s = compile(json!({"type": "integer", "example": "3e+06"}));
        assert_eq!(
            s.0.example(s.1),
            json!(1),
            "an example breaking its schema is not served"
        );
        let s = compile(json!({"type": "string", "enum": ["b", "a"]}));
        assert_eq!(s.0.example(s.1), json!("b"));
        let s = compile(json!({"type": "integer", "minimum": 5, "maximum": 9, "multipleOf": 4}));
        assert_eq!(s.0.example(s.1), json!(8));
        let s = compile(json!({"type": "number", "exclusiveMaximum": 0}));
        assert!(ok(&s, s.0.example(s.1)), "{}", s.0.example(s.1));
    }

    #[test]
    fn dynamic_examples_vary_with_the_seed_and_stay_valid() {
        let s = compile(json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 1000},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}}));
        let a = s.0.dynamic_example(s.1, 1);
        let b = s.0.dynamic_example(s.1, 2);
        assert_eq!(a, s.0.dynamic_example(s.1, 1), "repeatable for a seed");
        assert_ne!(a, b);
        assert!(ok(&s, a) && ok(&s, b));
    }

    /// Found by fuzzing the synthesizer (`fuzz/fuzz_targets/schema_example.rs`, in an exploratory
    /// run over schemas written by the input): a repeated item of a `uniqueItems` array was made
    /// unique by appending its index, which left the item's enum (`["a", "a1"]`).
    #[test]
    fn unique_items_stay_valid_items() {
        for schema in [
            json!({"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "uniqueItems": true, "minItems": 2}),
            json!({"type": "array", "items": {"type": "integer", "maximum": 1}, "uniqueItems": true, "minItems": 3}),
            json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "uniqueItems": true, "minItems": 2}),
            json!({"type": "array", "items": {"type": "string", "maxLength": 1}, "uniqueItems": true, "minItems": 3}),
        ] {
            let s = compile(schema.clone());
            for v in [
                s.0.example(s.1),
                s.0.request_example(s.1),
                s.0.dynamic_example(s.1, 3),
            ] {
                assert!(ok(&s, v.clone()), "{schema}: {v}");
            }
        }
    }

    #[test]
    fn parameter_texts_are_read_as_their_type() {
        let s = compile(json!({"type": "array", "items": {"type": "integer"}}));
        assert_eq!(s.0.text_value(s.1, &["1", "2"]).unwrap(), json!([1, 2]));
        assert!(s.0.validate_texts(s.1, &["1", "x"], "query.ids").is_err());
        let s = compile(json!({"type": "boolean"}));
        assert_eq!(s.0.text_value(s.1, &["true"]).unwrap(), json!(true));
        assert!(s.0.validate_texts(s.1, &["yes"], "query.flag").is_err());
    }
}
