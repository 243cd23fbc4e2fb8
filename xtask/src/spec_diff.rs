//! What changed between two versions of an OpenAPI document, from an existing client's side:
//! each change is breaking (a client written against the old version may fail against the new)
//! or compatible. `cargo xtask openapi --check` refuses breaking changes against the last
//! released version (`openapi/released/`); `docs/api-changelog.md` lists every change.
//!
//! The rules follow oasdiff's breaking-change checks: a removed path, operation, parameter,
//! response status, media type, response property or enum value; a request property, parameter
//! or header that became required; a narrowed request type, format, pattern, bound or enum; a
//! widened response (a new enum value, a property no longer required, a type made nullable, a
//! changed type); a changed security requirement. Requests and responses are compared in
//! opposite directions: a request may accept more, a response may promise more.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::Value;

/// One change, named by where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// `GET /path` and the place within it.
    pub at: String,
    pub what: String,
}

/// Every change between `old` and `new`: breaking ones first, then compatible ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    pub breaking: Vec<Change>,
    pub compatible: Vec<Change>,
}

/// What an absent `paths`, `properties` or `content` stands for.
static EMPTY: LazyLock<serde_json::Map<String, Value>> = LazyLock::new(serde_json::Map::new);

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Which side of the exchange a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// What clients send: narrowing breaks them.
    Request,
    /// What clients receive: widening breaks them.
    Response,
}

struct Differ<'a> {
    old: &'a Value,
    new: &'a Value,
    diff: Diff,
    /// Schema pairs compared on the current path (recursive schemas end there).
    seen: BTreeSet<(usize, usize)>,
}

/// Follows local `$ref`s (`#/components/...`) in `doc`.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
                Some(t) => v = t,
                None => return v,
            },
            None => return v,
        }
    }
    v
}

fn types(s: &Value) -> BTreeSet<String> {
    let mut t: BTreeSet<String> = match s.get("type") {
        Some(Value::String(one)) => [one.clone()].into(),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    };
    if s.get("nullable").and_then(Value::as_bool) == Some(true) && !t.is_empty() {
        t.insert("null".into());
    }
    t
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default()
}

impl<'a> Differ<'a> {
    fn breaking(&mut self, at: &str, what: impl Into<String>) {
        self.diff.breaking.push(Change {
            at: at.to_owned(),
            what: what.into(),
        });
    }

    fn compatible(&mut self, at: &str, what: impl Into<String>) {
        self.diff.compatible.push(Change {
            at: at.to_owned(),
            what: what.into(),
        });
    }

    fn run(&mut self) {
        let old_paths = self
            .old
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let new_paths = self
            .new
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        for (path, old_item) in old_paths {
            let old_item = resolve(self.old, old_item);
            let Some(new_item) = new_paths.get(path).map(|i| resolve(self.new, i)) else {
                self.breaking(path, "path removed");
                continue;
            };
            for method in METHODS {
                let at = format!("{} {path}", method.to_ascii_uppercase());
                match (old_item.get(method), new_item.get(method)) {
                    (Some(_), None) => self.breaking(&at, "operation removed"),
                    (None, Some(_)) => self.compatible(&at, "operation added"),
                    (Some(o), Some(n)) => self.operation(&at, old_item, o, new_item, n),
                    (None, None) => {}
                }
            }
        }
        for path in new_paths.keys().filter(|p| !old_paths.contains_key(*p)) {
            self.compatible(path, "path added");
        }
        self.diff.breaking.sort();
        self.diff.compatible.sort();
    }

    fn params(
        &self,
        doc: &'a Value,
        item: &'a Value,
        op: &'a Value,
    ) -> Vec<(String, String, &'a Value)> {
        let mut out: Vec<(String, String, &Value)> = Vec::new();
        for list in [item.get("parameters"), op.get("parameters")] {
            for p in list.and_then(Value::as_array).into_iter().flatten() {
                let p = resolve(doc, p);
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let place = p.get("in").and_then(Value::as_str).unwrap_or("").to_owned();
                out.retain(|(n, i, _)| !(*n == name && *i == place));
                out.push((name, place, p));
            }
        }
        out
    }

    fn operation(
        &mut self,
        at: &str,
        old_item: &'a Value,
        old: &'a Value,
        new_item: &'a Value,
        new: &'a Value,
    ) {
        // Parameters.
        let old_params = self.params(self.old, old_item, old);
        let new_params = self.params(self.new, new_item, new);
        for (name, place, op) in &old_params {
            let here = format!("{at} {place} parameter {name}");
            match new_params.iter().find(|(n, i, _)| n == name && i == place) {
                None => self.breaking(&here, "removed"),
                Some((_, _, np)) => {
                    let was = op.get("required").and_then(Value::as_bool).unwrap_or(false);
                    let is = np.get("required").and_then(Value::as_bool).unwrap_or(false);
                    if is && !was {
                        self.breaking(&here, "became required");
                    }
                    if let (Some(os), Some(ns)) = (op.get("schema"), np.get("schema")) {
                        self.schema(&here, os, ns, Side::Request);
                    }
                }
            }
        }
        for (name, place, np) in &new_params {
            if !old_params.iter().any(|(n, i, _)| n == name && i == place) {
                let here = format!("{at} {place} parameter {name}");
                if np.get("required").and_then(Value::as_bool).unwrap_or(false) {
                    self.breaking(&here, "added, required");
                } else {
                    self.compatible(&here, "added, optional");
                }
            }
        }
        // Request body.
        let old_body = old.get("requestBody").map(|b| resolve(self.old, b));
        let new_body = new.get("requestBody").map(|b| resolve(self.new, b));
        match (old_body, new_body) {
            (Some(ob), Some(nb)) => {
                let was = ob.get("required").and_then(Value::as_bool).unwrap_or(false);
                let is = nb.get("required").and_then(Value::as_bool).unwrap_or(false);
                if is && !was {
                    self.breaking(&format!("{at} request body"), "became required");
                }
                self.contents(&format!("{at} request body"), ob, nb, Side::Request);
            }
            (None, Some(nb)) if nb.get("required").and_then(Value::as_bool) == Some(true) => {
                self.breaking(&format!("{at} request body"), "added, required")
            }
            (Some(_), None) => self.breaking(&format!("{at} request body"), "removed"),
            _ => {}
        }
        // Responses.
        let old_resp = old
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let new_resp = new
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        for (code, or) in old_resp {
            let here = format!("{at} response {code}");
            match new_resp.get(code) {
                None => self.breaking(&here, "status removed"),
                Some(nr) => {
                    let (or, nr) = (resolve(self.old, or), resolve(self.new, nr));
                    self.contents(&here, or, nr, Side::Response);
                    for (name, _) in or
                        .get("headers")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let present = nr
                            .get("headers")
                            .and_then(Value::as_object)
                            .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
                        if !present {
                            self.breaking(&format!("{here} header {name}"), "removed");
                        }
                    }
                }
            }
        }
        for code in new_resp.keys().filter(|c| !old_resp.contains_key(*c)) {
            self.compatible(&format!("{at} response {code}"), "status added");
        }
        // Security.
        let security = |doc: &Value, op: &Value| -> BTreeSet<String> {
            op.get("security")
                .or_else(|| doc.get("security"))
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default()
        };
        if security(self.old, old) != security(self.new, new) {
            self.breaking(&format!("{at} security"), "requirement changed");
        }
    }

    fn contents(&mut self, at: &str, old: &'a Value, new: &'a Value, side: Side) {
        let oc = old
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let nc = new
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        for (media, om) in oc {
            let here = format!("{at} {media}");
            match nc.get(media) {
                None => self.breaking(&here, "media type removed"),
                Some(nm) => {
                    if let (Some(os), Some(ns)) = (om.get("schema"), nm.get("schema")) {
                        self.schema(&here, os, ns, side);
                    }
                }
            }
        }
        for media in nc.keys().filter(|m| !oc.contains_key(*m)) {
            self.compatible(&format!("{at} {media}"), "media type added");
        }
    }

    /// Compares two schemas as `side` sees them.
    fn schema(&mut self, at: &str, old: &'a Value, new: &'a Value, side: Side) {
        let (old, new) = (resolve(self.old, old), resolve(self.new, new));
        let key = (old as *const Value as usize, new as *const Value as usize);
        if !self.seen.insert(key) {
            return;
        }
        let (ot, nt) = (types(old), types(new));
        if !ot.is_empty() && ot != nt {
            let widened = nt.is_superset(&ot) || nt.is_empty();
            let narrowed = ot.is_superset(&nt) && !nt.is_empty();
            let nullable_added = nt.contains("null") && !ot.contains("null");
            match side {
                Side::Request if !widened => {
                    self.breaking(at, format!("type narrowed from {ot:?} to {nt:?}"))
                }
                Side::Response if !narrowed || nullable_added => {
                    self.breaking(at, format!("type widened from {ot:?} to {nt:?}"))
                }
                _ => self.compatible(at, format!("type changed from {ot:?} to {nt:?}")),
            }
        }
        // Enums.
        let (oe, ne) = (strings(old.get("enum")), strings(new.get("enum")));
        if !oe.is_empty() || !ne.is_empty() {
            let removed: Vec<&String> = oe.iter().filter(|v| !ne.contains(*v)).collect();
            let added: Vec<&String> = ne.iter().filter(|v| !oe.contains(*v)).collect();
            match side {
                // A request enum that loses a value, or a new enum where any value was taken.
                Side::Request if !removed.is_empty() || oe.is_empty() => {
                    self.breaking(at, format!("enum narrowed (removed {removed:?})"))
                }
                // A response enum that gains a value, or is dropped: clients switch over it.
                Side::Response if !oe.is_empty() && (!added.is_empty() || ne.is_empty()) => {
                    self.breaking(at, format!("enum widened (added {added:?})"))
                }
                _ if !added.is_empty() || !removed.is_empty() => self.compatible(
                    at,
                    format!("enum changed (added {added:?}, removed {removed:?})"),
                ),
                _ => {}
            }
        }
        // Format and pattern: a new or changed one narrows what is valid.
        for key in ["format", "pattern"] {
            let (o, n) = (old.get(key), new.get(key));
            if o != n {
                let narrowed = n.is_some();
                match (side, narrowed) {
                    (Side::Request, true) => self.breaking(
                        at,
                        format!(
                            "{key} changed to {}",
                            n.map(Value::to_string).unwrap_or_default()
                        ),
                    ),
                    (Side::Response, false) => self.breaking(at, format!("{key} removed")),
                    _ => self.compatible(at, format!("{key} changed")),
                }
            }
        }
        // Bounds: a tighter lower or upper bound narrows.
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
        for (key, lower) in [
            ("minimum", true),
            ("exclusiveMinimum", true),
            ("minLength", true),
            ("minItems", true),
            ("maximum", false),
            ("exclusiveMaximum", false),
            ("maxLength", false),
            ("maxItems", false),
        ] {
            let (o, n) = (num(old, key), num(new, key));
            if o == n {
                continue;
            }
            let narrowed = match (o, n) {
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(o), Some(n)) => {
                    if lower {
                        n > o
                    } else {
                        n < o
                    }
                }
                (None, None) => false,
            };
            match (side, narrowed) {
                (Side::Request, true) => self.breaking(
                    at,
                    format!(
                        "{key} narrowed to {}",
                        n.map(|x| x.to_string()).unwrap_or_default()
                    ),
                ),
                (Side::Response, false) => self.breaking(at, format!("{key} widened")),
                _ => self.compatible(at, format!("{key} changed")),
            }
        }
        // Object properties.
        let op = old
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let np = new
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY);
        let (or, nr) = (strings(old.get("required")), strings(new.get("required")));
        for (name, os) in op {
            let here = format!("{at}.{name}");
            let quoted = format!("\"{name}\"");
            match np.get(name) {
                None => match side {
                    Side::Response => self.breaking(&here, "response property removed"),
                    Side::Request
                        if new.get("additionalProperties") == Some(&Value::Bool(false)) =>
                    {
                        self.breaking(&here, "request property removed (others refused)")
                    }
                    Side::Request => self.compatible(&here, "request property removed"),
                },
                Some(ns) => {
                    let (was, is) = (or.contains(&quoted), nr.contains(&quoted));
                    match side {
                        Side::Request if is && !was => {
                            self.breaking(&here, "request property became required")
                        }
                        Side::Response if was && !is => {
                            self.breaking(&here, "response property no longer required")
                        }
                        _ => {}
                    }
                    self.schema(&here, os, ns, side);
                }
            }
        }
        for (name, _) in np.iter().filter(|(n, _)| !op.contains_key(*n)) {
            let here = format!("{at}.{name}");
            if side == Side::Request && nr.contains(&format!("\"{name}\"")) {
                self.breaking(&here, "request property added, required");
            } else {
                self.compatible(&here, "property added");
            }
        }
        if let (Some(oi), Some(ni)) = (old.get("items"), new.get("items")) {
            self.schema(&format!("{at}[]"), oi, ni, side);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let (Some(Value::Array(oa)), Some(Value::Array(na))) = (old.get(key), new.get(key)) {
                for (i, (o, n)) in oa.iter().zip(na).enumerate() {
                    self.schema(&format!("{at}.{key}[{i}]"), o, n, side);
                }
                if oa.len() != na.len() {
                    self.breaking(
                        at,
                        format!("{key} changed from {} to {} schemas", oa.len(), na.len()),
                    );
                }
            }
        }
        self.seen.remove(&key);
    }
}

/// The changes from `old` to `new`.
pub fn diff(old: &Value, new: &Value) -> Diff {
    let mut d = Differ {
        old,
        new,
        diff: Diff::default(),
        seen: BTreeSet::new(),
    };
    d.run();
    d.diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Our committed document, with the role enum Atlas documents on both sides (ours has no
    /// enum, and the enum rules need one to change).
    fn ours() -> Value {
        let path = crate::spec_path();
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for schema in ["OrganizationInvitation", "OrganizationInvitationRequest"] {
            doc["components"]["schemas"][schema]["properties"]["roles"]["items"]["enum"] =
                json!(["ORG_OWNER", "ORG_MEMBER", "ORG_READ_ONLY"]);
        }
        doc
    }

    /// The rule an edit must trigger, and the edit.
    type Edit = (&'static str, Box<dyn Fn(&mut Value)>);

    const ORG_INVITE: &str = "/api/atlas/v2/orgs/{orgId}/invites/{invitationId}";
    const ORG_INVITES: &str = "/api/atlas/v2/orgs/{orgId}/invites";

    fn ptr<'v>(doc: &'v mut Value, p: &str) -> &'v mut Value {
        doc.pointer_mut(p).unwrap_or_else(|| panic!("no {p}"))
    }

    fn esc(path: &str) -> String {
        path.replace('~', "~0").replace('/', "~1")
    }

    /// Edits that break a client of the document, each named by the gate.
    fn breaking_edits() -> Vec<Edit> {
        vec![
            (
                "path removed",
                Box::new(|d: &mut Value| {
                    d["paths"].as_object_mut().unwrap().remove(ORG_INVITE);
                }),
            ),
            (
                "operation removed",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITE]
                        .as_object_mut()
                        .unwrap()
                        .remove("delete");
                }),
            ),
            (
                "removed",
                Box::new(|d: &mut Value| {
                    // The `pretty` query parameter of listOrgInvites.
                    let params = d["paths"][ORG_INVITES]["get"]["parameters"]
                        .as_array_mut()
                        .unwrap();
                    params.retain(|p| p["name"] != "pretty");
                }),
            ),
            (
                "status removed",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITE]["delete"]["responses"]
                        .as_object_mut()
                        .unwrap()
                        .remove("404");
                }),
            ),
            (
                "media type removed",
                Box::new(|d: &mut Value| {
                    let content = ptr(
                        d,
                        &format!("/paths/{}/get/responses/200/content", esc(ORG_INVITE)),
                    );
                    let (k, v) = content
                        .as_object()
                        .unwrap()
                        .iter()
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap();
                    content.as_object_mut().unwrap().remove(&k);
                    content["application/x-other"] = v;
                }),
            ),
            (
                "response property removed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitation"]["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("orgName");
                }),
            ),
            (
                "enum widened",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitation"]["properties"]["roles"]
                        ["items"]["enum"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!("ORG_NEW_ROLE"));
                }),
            ),
            (
                "enum narrowed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["roles"]["items"]["enum"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|v| v != "ORG_READ_ONLY");
                }),
            ),
            (
                "format changed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["username"]["format"] = json!("email");
                }),
            ),
            (
                "minimum narrowed",
                Box::new(|d: &mut Value| {
                    let params = d["paths"]["/api/v2/group/{id}/invite/"]["get"]["parameters"]
                        .as_array_mut()
                        .unwrap();
                    for p in params.iter_mut().filter(|p| p["name"] == "limit") {
                        p["schema"]["minimum"] = json!(10);
                    }
                }),
            ),
            (
                "response property no longer required",
                Box::new(|d: &mut Value| {
                    let req = d["components"]["schemas"]["OrganizationInvitation"]["required"]
                        .as_array_mut()
                        .unwrap();
                    req.retain(|r| r != "orgName");
                }),
            ),
            (
                "type widened",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitation"]["properties"]["orgName"]
                        ["nullable"] = json!(true);
                }),
            ),
            (
                "request property became required",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["required"] =
                        json!(["username", "teamIds"]);
                }),
            ),
            (
                "became required",
                Box::new(|d: &mut Value| {
                    let params = d["paths"][ORG_INVITES]["get"]["parameters"]
                        .as_array_mut()
                        .unwrap();
                    for p in params.iter_mut().filter(|p| p["name"] == "username") {
                        p["required"] = json!(true);
                    }
                }),
            ),
            (
                "type narrowed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["username"]["type"] = json!("integer");
                }),
            ),
            (
                "pattern changed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["username"]["pattern"] = json!("^[a-z]+@");
                }),
            ),
            (
                "maxLength narrowed",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["username"]["maxLength"] = json!(8);
                }),
            ),
            (
                "requirement changed",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITE]["delete"]["security"] = json!([{"DigestAuth": []}]);
                }),
            ),
            (
                "added, required",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITES]["get"]["parameters"].as_array_mut().unwrap().push(json!(
                    {"name": "tenant", "in": "header", "required": true, "schema": {"type": "string"}}));
                }),
            ),
        ]
    }

    /// Edits no existing client notices.
    fn compatible_edits() -> Vec<Edit> {
        vec![
            (
                "path added",
                Box::new(|d: &mut Value| {
                    d["paths"]["/api/atlas/v2/new"] =
                        json!({"get": {"responses": {"200": {"description": "ok"}}}});
                }),
            ),
            (
                "added, optional",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITES]["get"]["parameters"].as_array_mut().unwrap().push(json!(
                    {"name": "sort", "in": "query", "required": false, "schema": {"type": "string"}}));
                }),
            ),
            (
                "status added",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITE]["delete"]["responses"]["409"] =
                        json!({"description": "Conflict"});
                }),
            ),
            (
                "property added",
                Box::new(|d: &mut Value| {
                    d["components"]["schemas"]["OrganizationInvitation"]["properties"]["note"] =
                        json!({"type": "string"});
                }),
            ),
            (
                "maximum changed",
                Box::new(|d: &mut Value| {
                    // A request bound loosened: `limit` up to 5000.
                    let params = d["paths"]["/api/v2/group/{id}/invite/"]["get"]["parameters"]
                        .as_array_mut()
                        .unwrap();
                    for p in params.iter_mut().filter(|p| p["name"] == "limit") {
                        p["schema"]["maximum"] = json!(5000.0);
                    }
                }),
            ),
            (
                "enum changed",
                Box::new(|d: &mut Value| {
                    // A request enum that accepts one more role.
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        ["roles"]["items"]["enum"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!("ORG_BILLING_ADMIN"));
                }),
            ),
            (
                "request property removed",
                Box::new(|d: &mut Value| {
                    // Clients that still send it are not refused: unknown properties are ignored.
                    d["components"]["schemas"]["OrganizationInvitationRequest"]["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("teamIds");
                }),
            ),
            (
                "media type added",
                Box::new(|d: &mut Value| {
                    let content = ptr(
                        d,
                        &format!("/paths/{}/get/responses/200/content", esc(ORG_INVITE)),
                    );
                    let v = content
                        .as_object()
                        .unwrap()
                        .values()
                        .next()
                        .unwrap()
                        .clone();
                    content["application/vnd.atlas.2030-01-01+json"] = v;
                }),
            ),
            (
                "operation added",
                Box::new(|d: &mut Value| {
                    d["paths"][ORG_INVITE]["head"] =
                        json!({"responses": {"200": {"description": "ok"}}});
                }),
            ),
        ]
    }

    #[test]
    fn the_gate_catches_every_breaking_edit_and_passes_every_compatible_one() {
        let base = ours();
        assert_eq!(
            diff(&base, &base),
            Diff::default(),
            "a document equals itself"
        );
        let mut caught = 0;
        for (rule, edit) in breaking_edits() {
            let mut changed = base.clone();
            edit(&mut changed);
            let d = diff(&base, &changed);
            assert!(
                !d.breaking.is_empty() && d.breaking.iter().all(|c| c.what.starts_with(rule)),
                "breaking edit {rule:?} not caught, or caught as something else: {d:#?}"
            );
            caught += 1;
        }
        assert!(caught >= 12, "{caught}");
        let mut passed = 0;
        for (rule, edit) in compatible_edits() {
            let mut changed = base.clone();
            edit(&mut changed);
            let d = diff(&base, &changed);
            assert!(
                d.breaking.is_empty(),
                "compatible edit {rule:?} judged breaking: {d:#?}"
            );
            assert!(
                !d.compatible.is_empty() && d.compatible.iter().all(|c| c.what.starts_with(rule)),
                "compatible edit {rule:?} not listed, or listed as something else: {d:#?}"
            );
            passed += 1;
        }
        assert!(passed >= 6, "{passed}");
    }
}
