//! Released versions of the document (`openapi/released/<version>.json`), the breaking-change
//! gate against the last one, and `docs/api-changelog.md` generated from them.
//!
//! A version is the document's `info.version` (the workspace version). A change that breaks a
//! client ([`crate::spec_diff`]) passes only when the version moved past a semver-breaking
//! boundary (the major, or the minor while the major is 0): a deliberate, reviewable act.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::spec_diff::{diff, Change, Diff};

/// A `MAJOR.MINOR.PATCH` version; pre-release and build tags are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(u64, u64, u64);

impl Version {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('.').collect();
        let num = |p: &str| -> Result<u64> {
            if p.is_empty()
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                bail!("{s:?} is not a MAJOR.MINOR.PATCH version (e.g. 0.2.0)")
            }
            p.parse()
                .with_context(|| format!("{s:?}: number too large"))
        };
        match parts[..] {
            [a, b, c] => Ok(Version(num(a)?, num(b)?, num(c)?)),
            _ => bail!("{s:?} is not a MAJOR.MINOR.PATCH version (e.g. 0.2.0)"),
        }
    }

    /// Whether a client of `self` may be broken by `later` under semver: a new major, or a new
    /// minor while the major is 0.
    pub fn may_break_in(self, later: Version) -> bool {
        if self.0 == 0 && later.0 == 0 {
            later.1 > self.1
        } else {
            later.0 > self.0
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

fn released_dir() -> PathBuf {
    crate::root().join("openapi").join("released")
}

fn changelog_path() -> PathBuf {
    crate::root().join("docs").join("api-changelog.md")
}

/// Every released version, oldest first, with its document.
fn released() -> Result<Vec<(Version, Value)>> {
    let dir = released_dir();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            bail!(
                "{} does not belong in {}: only <version>.json files",
                path.display(),
                dir.display()
            );
        };
        let version = Version::parse(stem).with_context(|| format!("{}", path.display()))?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        out.push((version, doc));
    }
    out.sort_by_key(|(v, _)| *v);
    Ok(out)
}

fn doc_version(doc: &Value) -> Result<Version> {
    let v = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .context("the document has no info.version")?;
    Version::parse(v).context("info.version of the document (the workspace version in Cargo.toml)")
}

fn list(out: &mut String, changes: &[Change]) {
    for c in changes {
        let _ = writeln!(out, "- `{}`: {}", c.at, c.what);
    }
}

fn operations(doc: &Value) -> Vec<String> {
    let mut ops = Vec::new();
    for (path, item) in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ops.push(format!("`{} {path}` ({id})", method.to_ascii_uppercase()));
            }
        }
    }
    ops
}

fn section(out: &mut String, d: &Diff) {
    if d.breaking.is_empty() && d.compatible.is_empty() {
        out.push_str("No changes.\n");
        return;
    }
    if !d.breaking.is_empty() {
        let _ = writeln!(out, "Breaking ({}):\n", d.breaking.len());
        list(out, &d.breaking);
    }
    if !d.compatible.is_empty() {
        if !d.breaking.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "Compatible ({}):\n", d.compatible.len());
        list(out, &d.compatible);
    }
}

/// `docs/api-changelog.md` from the released versions and the current document.
pub fn changelog(released: &[(Version, Value)], current: &Value) -> String {
    let mut out = String::from(
        "# API changelog\n\n\
         Generated by `cargo xtask openapi` from `openapi/released/` and `openapi/invites.json`;\n\
         do not edit. A change is breaking when a client written against the previous version may\n\
         fail against the next one (the rules: `xtask/src/spec_diff.rs`); `cargo xtask openapi --check`\n\
         refuses one unless the version moves past a semver-breaking boundary.\n\n",
    );
    if let Some((last, last_doc)) = released.last() {
        let version = current
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "## Unreleased (`openapi/invites.json`, version {version}), against {last}\n"
        );
        section(&mut out, &diff(last_doc, current));
        out.push('\n');
    }
    for (i, (version, doc)) in released.iter().enumerate().rev() {
        let _ = writeln!(out, "## {version}\n");
        match i.checked_sub(1).map(|p| &released[p]) {
            Some((_, before)) => section(&mut out, &diff(before, doc)),
            None => {
                let ops = operations(doc);
                let _ = writeln!(out, "First released version. Operations ({}):\n", ops.len());
                for op in ops {
                    let _ = writeln!(out, "- {op}");
                }
            }
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// The gate's verdict on `current` against the last release: `Err` names every breaking change.
pub fn gate(released: &[(Version, Value)], current: &Value) -> Result<Diff> {
    let Some((last, last_doc)) = released.last() else {
        return Ok(Diff::default());
    };
    let version = doc_version(current)?;
    if version < *last {
        bail!("the document's version {version} is older than the last release {last}");
    }
    let d = diff(last_doc, current);
    if !d.breaking.is_empty() && !last.may_break_in(version) {
        let mut msg = format!(
            "{} change(s) since the released {last} break existing clients:\n",
            d.breaking.len()
        );
        for c in &d.breaking {
            let _ = writeln!(msg, "  {}: {}", c.at, c.what);
        }
        let _ = write!(
            msg,
            "keep the contract, or, if the break is intended, move the workspace version past {last} \
             to a new {} and release it with `cargo xtask openapi --release <version>`",
            if last.0 == 0 { "minor (0.x)" } else { "major" }
        );
        bail!(msg);
    }
    Ok(d)
}

/// Checks (or writes) the changelog and runs the gate on the current document.
pub fn check(current: &Value, write: bool) -> Result<()> {
    let released = released()?;
    let d = gate(&released, current)?;
    if let Some((last, _)) = released.last() {
        let version = doc_version(current)?;
        match d.breaking.len() {
            0 => println!("against the released {last}: no breaking change, {} compatible", d.compatible.len()),
            n => println!(
                "against the released {last}: {n} breaking change(s), allowed as the version moved to {version}; {} compatible",
                d.compatible.len()
            ),
        }
        for c in d.breaking.iter().chain(&d.compatible) {
            println!("  {}: {}", c.at, c.what);
        }
    }
    let want = changelog(&released, current);
    let path = changelog_path();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        if !write {
            bail!(
                "{} is stale: run `cargo xtask openapi` and commit the result",
                path.display()
            );
        }
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, want)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes `openapi/released/<version>.json` from the current document (already written).
pub fn release(current_text: &str, version: &str) -> Result<()> {
    let wanted = Version::parse(version)?;
    let current: Value = serde_json::from_str(current_text)?;
    let doc = doc_version(&current)?;
    if doc != wanted {
        bail!(
            "the document says version {doc}: set the workspace version in Cargo.toml to {wanted} \
             first, so that the released file and info.version agree"
        );
    }
    let released = released()?;
    if let Some((last, _)) = released.last() {
        if wanted <= *last {
            bail!("{wanted} is not after the last release {last}; a released version is never rewritten");
        }
    }
    gate(&released, &current)?;
    let path = released_dir().join(format!("{wanted}.json"));
    std::fs::create_dir_all(released_dir())?;
    std::fs::write(&path, current_text).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    let mut all = released;
    all.push((wanted, current.clone()));
    std::fs::write(changelog_path(), changelog(&all, &current))?;
    println!("wrote {}", changelog_path().display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(version: &str, paths: Value) -> Value {
        json!({"openapi": "3.0.0", "info": {"title": "t", "version": version}, "paths": paths})
    }

    fn one_op() -> Value {
        json!({"/a": {"get": {"operationId": "getA", "responses": {"200": {"description": "ok"}}}}})
    }

    #[test]
    fn versions_parse_strictly_and_order_numerically() {
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.9.9").unwrap());
        for bad in [
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.02.3",
            "1.2.3-rc1",
            "",
            "1..3",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        let v = |s| Version::parse(s).unwrap();
        assert!(v("0.1.0").may_break_in(v("0.2.0")));
        assert!(!v("0.1.0").may_break_in(v("0.1.5")));
        assert!(v("1.4.0").may_break_in(v("2.0.0")));
        assert!(!v("1.4.0").may_break_in(v("1.9.0")));
    }

    #[test]
    fn the_gate_refuses_a_break_under_the_same_version_and_names_it() {
        let released = vec![(Version(0, 1, 0), doc("0.1.0", one_op()))];
        let broken = doc("0.1.1", json!({}));
        let err = gate(&released, &broken).unwrap_err().to_string();
        assert!(err.contains("/a: path removed"), "{err}");
        assert!(err.contains("new minor (0.x)"), "{err}");
        // Moving past the boundary is the deliberate way through.
        assert_eq!(
            gate(&released, &doc("0.2.0", json!({})))
                .unwrap()
                .breaking
                .len(),
            1
        );
        // Additions pass and are listed.
        let mut more = one_op();
        more["/b"] = json!({"get": {"responses": {"200": {"description": "ok"}}}});
        let d = gate(&released, &doc("0.1.0", more)).unwrap();
        assert_eq!((d.breaking.len(), d.compatible.len()), (0, 1));
        // No release yet: nothing to compare with.
        assert_eq!(gate(&[], &broken).unwrap(), Diff::default());
        // Going backwards is refused.
        assert!(gate(&released, &doc("0.0.9", one_op())).is_err());
    }

    #[test]
    fn the_changelog_lists_each_release_against_the_one_before() {
        let v1 = doc("0.1.0", one_op());
        let v2 = doc("0.2.0", json!({}));
        let text = changelog(
            &[(Version(0, 1, 0), v1), (Version(0, 2, 0), v2.clone())],
            &v2,
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_committed_changelog_and_releases_are_consistent() {
        // Every released file is a document whose info.version is its file name.
        for (v, d) in released().unwrap() {
            assert_eq!(doc_version(&d).unwrap(), v);
        }
    }
}
