//! Reading a document and every file its `$ref`s name into one set of JSON values, and following
//! references across them.
//!
//! Each file is JSON or YAML, decided by its content (JSON starts with `{` or `[`), never by its
//! name. A reference is resolved against the file it is written in: `#/components/schemas/A` in
//! that file, `models.yml#/A` or `../shared/errors.yml` beside it. Fragments are JSON pointers in
//! URI form, so they are percent-decoded before `~1` and `~0` are (RFC 6901, section 6), and a
//! pointer may pass through another reference (`#/components/schemas/A/properties/b` where `A`
//! is itself a `$ref`). Files are only read inside the root document's folder (and any folder
//! named as allowed, after symbolic links are resolved), and fetched from the network only when
//! allowed (`http://` only: [`crate::remote`]); a remote file's relative references are URLs
//! relative to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::remote;
use crate::yaml;
use crate::LoadError;

/// Limits and permissions of a load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most files a document may span.
    pub max_files: usize,
    /// Folders outside the root document's own that references may read from.
    pub allow_outside: Vec<PathBuf>,
    /// Bounds on YAML files.
    pub yaml: yaml::Limits,
    /// Whether `$ref`s may name `http://` URLs (fetched once per load, within `remote_timeout`
    /// and `max_file_bytes`); without it no request leaves the machine.
    pub allow_remote_refs: bool,
    /// How long fetching one remote file may take, connecting and reading included.
    pub remote_timeout: std::time::Duration,
}

/// The default largest file: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The default time a remote file may take: 10 s.
pub const DEFAULT_REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The default most files a document may span.
pub const DEFAULT_MAX_FILES: usize = 10_000;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
            allow_outside: Vec::new(),
            yaml: yaml::Limits::default(),
            allow_remote_refs: false,
            remote_timeout: DEFAULT_REMOTE_TIMEOUT,
        }
    }
}

/// A file of the set.
pub type FileId = usize;

/// One file, parsed.
#[derive(Debug)]
pub struct SourceFile {
    /// How errors name it: the path as given for the root, relative to the root's folder for
    /// the others.
    pub name: String,
    /// Where it was read from (None for a document given as text).
    pub path: Option<PathBuf>,
    pub value: Value,
}

/// A document and the files it references; file 0 is the root.
#[derive(Debug)]
pub struct Sources {
    pub files: Vec<SourceFile>,
    /// (referring file, file part of a `$ref`) to the file it names.
    links: HashMap<(FileId, String), FileId>,
}

/// Parses a file's text as JSON or YAML, by its content.
pub fn parse(text: &str, limits: yaml::Limits) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let start = text.trim_start();
    if let Some(at) = text.find('\0') {
        // YAML allows no NUL character, JSON none outside an escape: a binary file.
        return Err(format!(
            "a NUL byte at offset {at}: a binary file, not a JSON or YAML text"
        ));
    }
    if start.starts_with('{') || start.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                // serde_json's fixed limit, the YAML builder's default.
                format!(
                    "not valid JSON: nested deeper than {} levels, at line {}, column {}",
                    yaml::MAX_DEPTH,
                    e.line(),
                    e.column()
                )
            } else {
                format!("not valid JSON: {e}")
            }
        });
    }
    yaml::to_json(text, limits).map_err(|e| format!("not valid YAML: {e}"))
}

/// `%41` to `A`: the URI escapes of a `$ref` (its path or its fragment).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reference tokens of a JSON pointer given as a URI fragment (without the `#`).
pub fn pointer_tokens(fragment: &str) -> Result<Vec<String>, String> {
    let pointer = percent_decode(fragment);
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "the fragment {fragment:?} is not a JSON pointer (it must start with /)"
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// Splits a `$ref` into its file part (empty for this file) and its fragment.
fn split_ref(reference: &str) -> (&str, &str) {
    match reference.split_once('#') {
        Some((file, fragment)) => (file, fragment),
        None => (reference, ""),
    }
}

/// Where a file of the set is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Location {
    /// A canonical path.
    File(PathBuf),
    /// An `http://` URL, without its fragment (only with `allow_remote_refs`).
    Url(String),
}

/// Removes the vendor extensions (`x-...`) of operation objects (those with `responses`):
/// nothing the mock serves reads them, and DigitalOcean's `x-codeSamples` alone name 1,379
/// files of code samples, which would otherwise be read, parsed and kept. Extensions elsewhere
/// stay (a `properties` or `headers` map may have a member named `x-...`).
fn strip_operation_extensions(value: &mut Value) {
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        match v {
            Value::Object(m) => {
                if m.contains_key("responses") && m.get("responses").is_some_and(Value::is_object) {
                    m.retain(|k, _| !k.starts_with("x-"));
                }
                pending.extend(m.values_mut());
            }
            Value::Array(a) => pending.extend(a.iter_mut()),
            _ => {}
        }
    }
}

/// Every `$ref` string in a value (iteratively: documents may be deep).
fn references(value: &Value) -> Vec<&str> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    found.push(r.as_str());
                }
                pending.extend(m.values());
            }
            Value::Array(a) => pending.extend(a.iter()),
            _ => {}
        }
    }
    found
}

impl Sources {
    /// A document given as text (JSON or YAML); it may refer only to itself.
    pub fn from_text(text: &str, name: &str) -> Result<Sources, LoadError> {
        let mut value =
            parse(text, yaml::Limits::default()).map_err(|e| LoadError::in_file(name, "#", e))?;
        strip_operation_extensions(&mut value);
        let sources = Sources {
            files: vec![SourceFile {
                name: name.to_owned(),
                path: None,
                value,
            }],
            links: HashMap::new(),
        };
        if let Some(r) = references(&sources.files[0].value)
            .into_iter()
            .find(|r| !split_ref(r).0.is_empty())
        {
            return Err(LoadError::in_file(
                name,
                "#",
                format!("$ref {r:?} names another file: load the document from its file"),
            ));
        }
        Ok(sources)
    }

    /// A document already parsed; it may refer only to itself.
    pub fn from_value(value: Value) -> Sources {
        Sources {
            files: vec![SourceFile {
                name: "document".to_owned(),
                path: None,
                value,
            }],
            links: HashMap::new(),
        }
    }

    /// Reads the document at `root` and every file its references reach.
    pub fn load(root: &Path, options: &LoadOptions) -> Result<Sources, LoadError> {
        let root_name = root.display().to_string();
        let canonical_root = std::fs::canonicalize(root)
            .map_err(|e| LoadError::in_file(&root_name, "#", format!("cannot read it: {e}")))?;
        let base = canonical_root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut allowed = vec![base.clone()];
        for dir in &options.allow_outside {
            allowed.push(std::fs::canonicalize(dir).map_err(|e| {
                LoadError::in_file(
                    &root_name,
                    "#",
                    format!("the allowed folder {} cannot be read: {e}", dir.display()),
                )
            })?);
        }
        let mut sources = Sources {
            files: Vec::new(),
            links: HashMap::new(),
        };
        let mut by_location: HashMap<Location, FileId> = HashMap::new();
        let mut canonical_of: HashMap<PathBuf, PathBuf> = HashMap::new();
        let mut queue = vec![Location::File(canonical_root.clone())];
        by_location.insert(Location::File(canonical_root), 0);
        let mut next = 0;
        while next < queue.len() {
            let location = queue[next].clone();
            let id = next;
            next += 1;
            let name = match &location {
                Location::File(_) if id == 0 => root_name.clone(),
                Location::File(path) => path
                    .strip_prefix(&base)
                    .unwrap_or(path)
                    .display()
                    .to_string(),
                Location::Url(url) => url.clone(),
            };
            let mut value = match &location {
                Location::File(path) => read_file(path, &name, options)?,
                Location::Url(url) => read_url(url, options)?,
            };
            strip_operation_extensions(&mut value);
            sources.files.push(SourceFile {
                name: name.clone(),
                path: match &location {
                    Location::File(path) => Some(path.clone()),
                    Location::Url(_) => None,
                },
                value,
            });
            let mut file_parts: Vec<String> = references(&sources.files[id].value)
                .into_iter()
                .map(|r| split_ref(r).0.to_owned())
                .filter(|f| !f.is_empty())
                .collect();
            file_parts.sort();
            file_parts.dedup();
            for part in file_parts {
                let target = match &location {
                    _ if remote::is_remote(&part) => {
                        if !options.allow_remote_refs {
                            return Err(LoadError::in_file(
                                &name,
                                "#",
                                format!(
                                    "$ref {part:?} is on the network: not fetched unless \
                                     --allow-remote-refs is given{}",
                                    if part.to_ascii_lowercase().starts_with("https:") {
                                        " (and then http:// only: the mock has no TLS client)"
                                    } else {
                                        ""
                                    }
                                ),
                            ));
                        }
                        Location::Url(remote::join("http://localhost/", &part))
                    }
                    Location::Url(url) => Location::Url(remote::join(url, &part)),
                    Location::File(path) => {
                        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                        let target = lexical(&dir.join(percent_decode(&part)));
                        // Many references name the same file: ask the file system once per
                        // spelling.
                        let canonical = match canonical_of.get(&target) {
                            Some(c) => Ok(c.clone()),
                            None => std::fs::canonicalize(&target),
                        };
                        if let Ok(c) = &canonical {
                            canonical_of.insert(target.clone(), c.clone());
                        }
                        let canonical = canonical.map_err(|e| {
                            LoadError::in_file(
                                &name,
                                "#",
                                format!("$ref {part:?}: {} cannot be read: {e}", target.display()),
                            )
                        })?;
                        if !allowed.iter().any(|a| canonical.starts_with(a)) {
                            return Err(LoadError::in_file(
                                &name,
                                "#",
                                format!(
                                    "$ref {part:?} leaves the document's folder ({}): refused \
                                     unless allowed (--allow-ref-outside DIR)",
                                    base.display()
                                ),
                            ));
                        }
                        Location::File(canonical)
                    }
                };
                let target_id = match by_location.get(&target) {
                    Some(t) => *t,
                    None => {
                        if queue.len() >= options.max_files {
                            return Err(LoadError::in_file(
                                &name,
                                "#",
                                format!(
                                    "the document spans more than {} files (--max-files)",
                                    options.max_files
                                ),
                            ));
                        }
                        let t = queue.len();
                        queue.push(target.clone());
                        by_location.insert(target, t);
                        t
                    }
                };
                sources.links.insert((id, part), target_id);
            }
        }
        Ok(sources)
    }

    /// The root document.
    pub fn root(&self) -> &Value {
        &self.files[0].value
    }

    /// Where a value of `file` is, for messages: `#/a/b` in the root, `name#/a/b` elsewhere.
    pub fn place(&self, file: FileId, pointer: &str) -> String {
        if file == 0 {
            format!("#{pointer}")
        } else {
            format!("{}#{pointer}", self.files[file].name)
        }
    }

    /// Resolves `reference`, written in `from`: the file it lands in, the canonical place
    /// (`name#/pointer`, the same text for every spelling of one target) and the value.
    pub fn resolve<'s>(
        &'s self,
        from: FileId,
        reference: &str,
    ) -> Result<(FileId, String, &'s Value), String> {
        let mut hops = 0;
        self.resolve_counted(from, reference, &mut hops)
    }

    fn resolve_counted<'s>(
        &'s self,
        from: FileId,
        reference: &str,
        hops: &mut usize,
    ) -> Result<(FileId, String, &'s Value), String> {
        *hops += 1;
        if *hops > 64 {
            return Err(format!(
                "$ref {reference:?}: references lead to each other in a cycle (or a chain of \
                 more than 64)"
            ));
        }
        let (file_part, fragment) = split_ref(reference);
        let file = if file_part.is_empty() {
            from
        } else {
            *self
                .links
                .get(&(from, file_part.to_owned()))
                .ok_or_else(|| format!("$ref {reference:?} names a file that was not loaded"))?
        };
        let tokens = pointer_tokens(fragment).map_err(|e| format!("$ref {reference:?}: {e}"))?;
        let mut here = file;
        let mut node = &self.files[file].value;
        let mut walked = String::new();
        for token in &tokens {
            loop {
                let child = match node {
                    Value::Object(m) => m.get(token.as_str()),
                    Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                };
                if let Some(child) = child {
                    node = child;
                    break;
                }
                // The pointer passes through a reference: follow it and go on from there.
                match node.get("$ref").and_then(Value::as_str) {
                    Some(inner) => {
                        let (f, p, v) = self.resolve_counted(here, inner, hops)?;
                        here = f;
                        walked = p
                            .split_once('#')
                            .map(|(_, ptr)| ptr.to_owned())
                            .unwrap_or_default();
                        node = v;
                    }
                    None => {
                        return Err(format!(
                            "$ref {reference:?} points nowhere: {} has no {token:?}",
                            self.place(here, &walked)
                        ))
                    }
                }
            }
            walked.push('/');
            walked.push_str(&token.replace('~', "~0").replace('/', "~1"));
        }
        Ok((here, self.place(here, &walked), node))
    }
}

/// `a/./b/../c` as `a/c`, without asking the file system (symbolic links are resolved by the
/// canonical path taken after).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Fetches and parses one remote file of the set (named by its URL in errors).
fn read_url(url: &str, options: &LoadOptions) -> Result<Value, LoadError> {
    let bytes = remote::fetch(url, options.remote_timeout, options.max_file_bytes)
        .map_err(|e| LoadError::in_file(url, "#", e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError::in_file(
            url,
            "#",
            format!(
                "not UTF-8 text (a binary file?): invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    parse(&text, options.yaml).map_err(|e| LoadError::in_file(url, "#", e))
}

/// Reads and parses one file of the set, within the size limit.
fn read_file(path: &Path, name: &str, options: &LoadOptions) -> Result<Value, LoadError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError::in_file(name, "#", format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(LoadError::in_file(name, "#", "not a file"));
    }
    if meta.len() > options.max_file_bytes {
        return Err(LoadError::in_file(
            name,
            "#",
            format!(
                "{} bytes, over the limit of {} (--max-file-bytes)",
                meta.len(),
                options.max_file_bytes
            ),
        ));
    }
    // Read through the limit too: a file that grows after its size was read (or one whose size
    // the file system does not know) stops there.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path)
                .map_err(|e| LoadError::in_file(name, "#", format!("cannot read it: {e}")))?,
            options.max_file_bytes.saturating_add(1),
        ),
        &mut bytes,
    )
    .map_err(|e| LoadError::in_file(name, "#", format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > options.max_file_bytes {
        return Err(LoadError::in_file(
            name,
            "#",
            format!(
                "more than {} bytes, over the limit (--max-file-bytes)",
                options.max_file_bytes
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError::in_file(
            name,
            "#",
            format!(
                "not UTF-8 text (a binary file?): invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    parse(&text, options.yaml).map_err(|e| LoadError::in_file(name, "#", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn pointers_are_percent_decoded_then_unescaped() {
        assert_eq!(
            pointer_tokens("/paths/~1pets~1%7Bid%7D/get").unwrap(),
            ["paths", "/pets/{id}", "get"]
        );
        assert_eq!(pointer_tokens("/a%20b/~01").unwrap(), ["a b", "~1"]);
        assert!(pointer_tokens("components").is_err());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn the_size_limit_holds_for_files_that_do_not_know_their_size() {
        // Files of /proc say they hold 0 bytes: the limit is kept while reading.
        let small = LoadOptions {
            max_file_bytes: 100,
            ..LoadOptions::default()
        };
        let err = Sources::load(Path::new("/proc/self/status"), &small)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("more than 100 bytes, over the limit (--max-file-bytes)"),
            "{err}"
        );
    }

    #[test]
    fn references_resolve_across_files_and_through_other_references() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "root.yaml",
            "openapi: 3.0.3\npaths:\n  /a:\n    $ref: 'paths/a.yaml'\ncomponents:\n  schemas:\n    Pet:\n      $ref: 'models/pet.json#/Pet'\n",
        );
        write(
            dir.path(),
            "paths/a.yaml",
            "get:\n  responses:\n    '200':\n      content:\n        application/json:\n          schema:\n            $ref: '../root.yaml#/components/schemas/Pet/properties/name'\n",
        );
        write(
            dir.path(),
            "models/pet.json",
            r##"{"Pet": {"type": "object", "properties": {"name": {"$ref": "#/Name"}}}, "Name": {"type": "string"}}"##,
        );
        let s = Sources::load(&dir.path().join("root.yaml"), &LoadOptions::default()).unwrap();
        assert_eq!(s.files.len(), 3);
        let (file, place, path_item) = s.resolve(0, "paths/a.yaml").unwrap();
        assert_eq!(s.files[file].name, "paths/a.yaml");
        assert_eq!(place, "paths/a.yaml#");
        let schema = &path_item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let (_, place, v) = s.resolve(file, schema["$ref"].as_str().unwrap()).unwrap();
        assert_eq!(v, &json!({"$ref": "#/Name"}));
        assert_eq!(place, "models/pet.json#/Pet/properties/name");
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "doc/root.json",
            r#"{"a": {"$ref": "../secret.json"}}"#,
        );
        write(dir.path(), "secret.json", "{}");
        let err = Sources::load(&dir.path().join("doc/root.json"), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the document's folder"), "{err}");
        let allowed = LoadOptions {
            allow_outside: vec![dir.path().to_path_buf()],
            ..LoadOptions::default()
        };
        assert!(Sources::load(&dir.path().join("doc/root.json"), &allowed).is_ok());

        write(
            dir.path(),
            "r.yaml",
            "a: {$ref: 'https://example.com/x.yaml'}\n",
        );
        let err = Sources::load(&dir.path().join("r.yaml"), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("on the network")
                && err.contains("--allow-remote-refs")
                && err.contains("http:// only"),
            "{err}"
        );

        write(dir.path(), "m.yaml", "a: {$ref: 'missing.yaml#/x'}\n");
        let err = Sources::load(&dir.path().join("m.yaml"), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.yaml") && err.contains("cannot be read"),
            "{err}"
        );

        std::fs::write(dir.path().join("bin.json"), [0xff, 0xfe, 0x00, 0x81]).unwrap();
        let err = Sources::load(&dir.path().join("bin.json"), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not UTF-8"), "{err}");

        let s =
            Sources::from_text(r##"{"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}}"##, "x").unwrap();
        let err = s.resolve(0, "#/a/c").unwrap_err();
        assert!(err.contains("cycle"), "{err}");
        let err = s.resolve(0, "#/nope").unwrap_err();
        assert!(
            err.contains("points nowhere") && err.contains("\"nope\""),
            "{err}"
        );
    }
}
