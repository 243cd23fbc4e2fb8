//! Fidelity: our generated spec against `shared/reference/atlas-v2-invitations.openapi.json` for
//! the four Atlas invitation paths. Compared: operationIds, deprecation, security, parameters
//! (`in`, `required`, type, pattern), request and response media types, response status sets and
//! header names, and schema property names and types (following `$ref`s on both sides).
//!
//! Every difference must be listed, with a reason, in `openapi/atlas-fidelity-allowlist.txt`; an
//! entry that no longer matches a difference fails too, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> Value {
    let path = root().join("../shared/reference/atlas-v2-invitations.openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the reference contract must sit beside the project at {}: {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn ours() -> Value {
    serde_json::from_str(&invites_api::spec_json()).unwrap()
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..10 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                v = doc
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or(&Value::Null)
            }
            None => break,
        }
    }
    v
}

fn keys(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

struct Diff<'a> {
    ours: &'a Value,
    theirs: &'a Value,
    found: BTreeMap<String, String>,
    /// Named schemas compared already: each is reported once, under `schema <Name>`.
    seen: BTreeSet<String>,
}

/// The component name a schema refers to, looking through poem-openapi's `allOf: [$ref, {description}]`.
fn ref_name(v: &Value) -> Option<&str> {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next();
    }
    v.get("allOf")?
        .as_array()?
        .iter()
        .find_map(|m| m.get("$ref")?.as_str()?.rsplit('/').next())
}

impl<'a> Diff<'a> {
    fn note(&mut self, key: String, ours: impl std::fmt::Debug, theirs: impl std::fmt::Debug) {
        self.found
            .insert(key, format!("ours {ours:?}, reference {theirs:?}"));
    }

    fn compare<T: PartialEq + std::fmt::Debug>(&mut self, key: String, ours: T, theirs: T) {
        if ours != theirs {
            self.note(key, ours, theirs);
        }
    }

    fn schema(&mut self, key: &str, ours: &Value, theirs: &Value, depth: usize) {
        if depth > 6 {
            return;
        }
        let mut key = key.to_owned();
        let (o, t) = match (ref_name(ours), ref_name(theirs)) {
            (Some(on), Some(tn)) => {
                self.compare(format!("{key}.$ref"), on, tn);
                if !self.seen.insert(tn.to_owned()) {
                    return;
                }
                key = format!("schema {tn}");
                (
                    &self.ours["components"]["schemas"][on],
                    &self.theirs["components"]["schemas"][tn],
                )
            }
            _ => (resolve(self.ours, ours), resolve(self.theirs, theirs)),
        };
        let ty = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_owned);
        self.compare(format!("{key}.type"), ty(o), ty(t));
        if ty(t).as_deref() == Some("array") {
            self.schema(
                &format!("{key}[]"),
                o.get("items").unwrap_or(&Value::Null),
                t.get("items").unwrap_or(&Value::Null),
                depth + 1,
            );
        }
        let (op, tp) = (keys(o.get("properties")), keys(t.get("properties")));
        self.compare(format!("{key}.properties"), &op, &tp);
        for name in op.intersection(&tp) {
            self.schema(
                &format!("{key}.{name}"),
                &o["properties"][name],
                &t["properties"][name],
                depth + 1,
            );
        }
    }

    fn content(&mut self, key: &str, ours: Option<&Value>, theirs: Option<&Value>) {
        let (oc, tc) = (keys(ours), keys(theirs));
        self.compare(format!("{key}.content"), &oc, &tc);
        for mt in oc.intersection(&tc) {
            let (o, t) = (&ours.unwrap()[mt], &theirs.unwrap()[mt]);
            if t.get("schema").is_some() || o.get("schema").is_some() {
                self.schema(
                    &format!("{key}.content.{mt}"),
                    o.get("schema").unwrap_or(&Value::Null),
                    t.get("schema").unwrap_or(&Value::Null),
                    0,
                );
            }
        }
    }

    fn operation(&mut self, id: &str, o: &'a Value, t: &'a Value) {
        self.compare(
            format!("{id} operationId"),
            o.get("operationId"),
            t.get("operationId"),
        );
        self.compare(
            format!("{id} deprecated"),
            o.get("deprecated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            t.get("deprecated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        );
        let security = |doc: &Value, op: &Value| -> BTreeSet<String> {
            let s = op.get("security").or_else(|| doc.get("security"));
            s.and_then(Value::as_array)
                .map(|a| a.iter().flat_map(|r| keys(Some(r))).collect())
                .unwrap_or_default()
        };
        self.compare(
            format!("{id} security"),
            security(self.ours, o),
            security(self.theirs, t),
        );

        let params = |doc: &'a Value, op: &'a Value| -> BTreeMap<(String, String), &'a Value> {
            op.get("parameters")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|p| resolve(doc, p))
                        .map(|p| {
                            (
                                (
                                    p["in"].as_str().unwrap_or("").to_owned(),
                                    p["name"].as_str().unwrap_or("").to_owned(),
                                ),
                                p,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (op, tp) = (params(self.ours, o), params(self.theirs, t));
        self.compare(
            format!("{id} parameters"),
            op.keys().collect::<BTreeSet<_>>(),
            tp.keys().collect::<BTreeSet<_>>(),
        );
        for (k, tparam) in &tp {
            let Some(oparam) = op.get(k) else { continue };
            let at = format!("{id} parameter {}.{}", k.0, k.1);
            let req = |p: &Value| p.get("required").and_then(Value::as_bool).unwrap_or(false);
            self.compare(format!("{at}.required"), req(oparam), req(tparam));
            let (os, ts) = (
                resolve(self.ours, &oparam["schema"]),
                resolve(self.theirs, &tparam["schema"]),
            );
            self.compare(format!("{at}.type"), os.get("type"), ts.get("type"));
            self.compare(
                format!("{at}.pattern"),
                os.get("pattern"),
                ts.get("pattern"),
            );
        }

        let (ob, tb) = (
            o.get("requestBody").map(|b| resolve(self.ours, b)),
            t.get("requestBody").map(|b| resolve(self.theirs, b)),
        );
        self.compare(format!("{id} requestBody"), ob.is_some(), tb.is_some());
        if let (Some(ob), Some(tb)) = (ob, tb) {
            self.compare(
                format!("{id} requestBody.required"),
                ob.get("required"),
                tb.get("required"),
            );
            self.content(
                &format!("{id} requestBody"),
                ob.get("content"),
                tb.get("content"),
            );
        }

        let (or, tr) = (keys(o.get("responses")), keys(t.get("responses")));
        self.compare(format!("{id} responses"), &or, &tr);
        for status in or.intersection(&tr) {
            let (orr, trr) = (
                resolve(self.ours, &o["responses"][status]),
                resolve(self.theirs, &t["responses"][status]),
            );
            let at = format!("{id} responses.{status}");
            self.compare(
                format!("{at}.headers"),
                keys(orr.get("headers")),
                keys(trr.get("headers")),
            );
            self.content(&at, orr.get("content"), trr.get("content"));
        }
    }
}

fn allow_list() -> BTreeMap<String, String> {
    let path = root().join("openapi/atlas-fidelity-allowlist.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, reason) = l
                .split_once(" | ")
                .unwrap_or_else(|| panic!("allow-list line without ' | reason': {l}"));
            assert!(
                !reason.trim().is_empty(),
                "allow-list entry without a reason: {l}"
            );
            (key.trim().to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn generated_spec_matches_the_atlas_reference_for_the_invitation_paths() {
    let (ours, theirs) = (ours(), reference());
    let mut diff = Diff {
        ours: &ours,
        theirs: &theirs,
        found: BTreeMap::new(),
        seen: BTreeSet::new(),
    };
    let paths = theirs["x-subset"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 4);
    let mut compared = 0;
    for path in paths {
        let path = path.as_str().unwrap();
        let (o, t) = (&ours["paths"][path], &theirs["paths"][path]);
        assert!(o.is_object(), "our spec lacks {path}");
        for method in ["get", "post", "patch", "put", "delete"] {
            match (o.get(method), t.get(method)) {
                (Some(o), Some(t)) => {
                    diff.operation(t["operationId"].as_str().unwrap(), o, t);
                    compared += 1;
                }
                (None, Some(t)) => diff.note(
                    format!("{} missing", t["operationId"].as_str().unwrap()),
                    "absent",
                    "present",
                ),
                (Some(o), None) => diff.note(
                    format!("{path} {method} extra"),
                    o["operationId"].as_str(),
                    "absent",
                ),
                (None, None) => {}
            }
        }
    }
    assert_eq!(compared, 12, "all twelve operations are compared");

    let allowed = allow_list();
    let unexpected: Vec<String> = diff
        .found
        .iter()
        .filter(|(k, _)| !allowed.contains_key(*k))
        .map(|(k, v)| format!("{k} | {v}"))
        .collect();
    let stale: Vec<&String> = allowed
        .keys()
        .filter(|k| !diff.found.contains_key(*k))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences from the reference not in openapi/atlas-fidelity-allowlist.txt:\n  {}\n\
         allow-list entries that no longer match a difference (remove them):\n  {:?}",
        unexpected.join("\n  "),
        stale
    );
}
