//! The two docs pages checked in headless Chromium (Debian's `chromium`, installed when missing):
//! `cargo xtask docs-check`, the server's `/docs` lists every operation of `openapi/invites.json`
//! (screenshot in `target/docs-check/docs.png`); `cargo xtask docs`, a static Redoc reference for
//! consumers written to `target/docs/index.html` by `redocly build-docs`, every operation linked.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, spec_path, start_demo};

fn installed_chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Chromium, installed from Debian when missing.
fn chromium() -> Result<&'static str> {
    match installed_chromium() {
        Some(b) => Ok(b),
        None => {
            println!("chromium is not installed; installing Debian's chromium");
            crate::tools::apt_install(&["chromium"])?;
            installed_chromium().context("chromium was installed but does not run")
        }
    }
}

/// Headless Chromium's flags for a page rendered as a tall window, scripts given 20 s.
const FLAGS: [&str; 7] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,3000",
    "--virtual-time-budget=20000",
];

/// Renders `url` in headless Chromium: a screenshot and the DOM after its scripts ran.
fn render(url: &str, screenshot: &Path) -> Result<String> {
    let browser = chromium()?;
    let out = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .context("running chromium")?;
    if !screenshot.exists() {
        bail!(
            "chromium wrote no screenshot of {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(browser)
        .args(FLAGS)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .context("running chromium")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The committed document, parsed.
fn committed_spec() -> Result<serde_json::Value> {
    Ok(serde_json::from_str(
        &std::fs::read_to_string(spec_path())?,
    )?)
}

/// The operationIds of a document.
fn operation_ids(spec: &serde_json::Value) -> Vec<String> {
    spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect()
}

/// Redoc links each operation from its side menu as `#/<tag>/<operationid in lower case>`; the
/// operations without such a link.
fn unlisted_in_redoc(dom: &str, operation_ids: &[String]) -> Vec<String> {
    let linked: std::collections::HashSet<&str> = dom
        .split("href=\"#/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|link| match link.split('/').collect::<Vec<_>>()[..] {
            [_tag, operation] => Some(operation),
            _ => None,
        })
        .collect();
    operation_ids
        .iter()
        .filter(|id| !linked.contains(id.to_lowercase().as_str()))
        .cloned()
        .collect()
}

/// How many operations Redoc folds behind its "Show N more..." buttons.
fn folded_in_redoc(dom: &str) -> usize {
    dom.split(">Show ")
        .skip(1)
        .filter_map(|rest| rest.split_once(" more"))
        .filter_map(|(n, _)| n.parse::<usize>().ok())
        .sum()
}

/// `cargo xtask docs`: writes the static Redoc reference of `openapi/invites.json` to
/// `target/docs/index.html` (scripts inlined: it opens offline, from a file) and checks in
/// headless Chromium that it links every operation and carries the document's title.
pub fn static_docs(node_bin: &Path) -> Result<PathBuf> {
    let dir = root().join("target/docs");
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("index.html");
    let _ = std::fs::remove_file(&page);
    let out = Command::new(node_bin.join("redocly"))
        .arg("build-docs")
        .arg(spec_path())
        .arg("--inlineBundle")
        .arg("--output")
        .arg(&page)
        .arg("--config")
        .arg(root().join("openapi/redocly.yaml"))
        .current_dir(root())
        .output()
        .context("running redocly build-docs")?;
    if !out.status.success() || !page.exists() {
        bail!(
            "redocly build-docs failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dom = render(
        &format!("file://{}", page.display()),
        &dir.join("index.png"),
    )?;
    std::fs::write(dir.join("dom.html"), dom.as_bytes())?;
    let spec = committed_spec()?;
    let ids = operation_ids(&spec);
    let unlisted = unlisted_in_redoc(&dom, &ids);
    let folded = folded_in_redoc(&dom);
    println!(
        "{} ({} KiB) rendered by chromium: {} of {} operations linked, {} behind \"Show N more\"; screenshot {}",
        page.display(),
        std::fs::metadata(&page)?.len() / 1024,
        ids.len() - unlisted.len(),
        ids.len(),
        folded,
        dir.join("index.png").display()
    );
    // Redoc lists a tag's first operations and folds the rest behind "Show N more...": what is
    // not linked must be exactly what is folded.
    if unlisted.len() != folded {
        bail!(
            "{} links no entry for {} operation(s) ({}) but folds {folded} (DOM in {})",
            page.display(),
            unlisted.len(),
            unlisted.join(", "),
            dir.join("dom.html").display()
        );
    }
    let title = spec["info"]["title"].as_str().unwrap_or_default();
    if title.is_empty() || !dom.contains(&format!("<title>{title}</title>")) {
        bail!("{} is not titled {title:?}", page.display());
    }
    if dom.contains("<script src=\"http") {
        bail!("{} loads a script from the network", page.display());
    }
    Ok(page)
}

/// Swagger UI gives each operation an element id `operations-<tag>-<operationId>`.
fn missing_operations(dom: &str, operation_ids: &[String]) -> Vec<String> {
    operation_ids
        .iter()
        .filter(|id| {
            !dom.match_indices("id=\"operations-").any(|(at, _)| {
                dom[at..]
                    .split('"')
                    .nth(1)
                    .is_some_and(|v| v.ends_with(&format!("-{id}")))
            })
        })
        .cloned()
        .collect()
}

pub fn docs_check() -> Result<()> {
    let dir = root().join("target/docs-check");
    let server = start_demo(&dir.join("server"), &[])?;
    let url = format!("{}/docs", server.base);
    let screenshot = dir.join("docs.png");
    let dom = render(&url, &screenshot)?;
    std::fs::write(dir.join("dom.html"), dom.as_bytes())?;
    let ids = operation_ids(&committed_spec()?);
    let missing = missing_operations(&dom, &ids);
    let size = std::fs::metadata(&screenshot)?.len();
    println!(
        "/docs rendered by chromium: {} of {} operations listed; screenshot {} ({size} bytes)",
        ids.len() - missing.len(),
        ids.len(),
        screenshot.display()
    );
    if !missing.is_empty() {
        bail!("/docs does not list: {}", missing.join(", "));
    }
    // "Try it out" must call the server showing the page, wherever it listens.
    if !dom.contains(r#"<option value="/">"#) {
        bail!(
            "/docs offers no server \"/\" (the page's own origin); DOM in {}",
            dir.join("dom.html").display()
        );
    }
    println!("/docs sends \"Try it out\" to the server showing it (server \"/\")");
    // A newcomer sees the product's name and the introduction (families, credentials, why the
    // Atlas operations are deprecated), not a generic Swagger UI page.
    for (what, text) in [
        ("the title", "<title>Invitation service API"),
        ("how to get demo credentials", "invites serve --demo"),
        (
            "why the Atlas operations are deprecated",
            "Why the Atlas invitation operations are shown deprecated",
        ),
    ] {
        if !dom.contains(text) {
            bail!(
                "/docs does not show {what} ({text:?}); DOM in {}",
                dir.join("dom.html").display()
            );
        }
    }
    println!("/docs shows the product's title and its introduction");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_found_by_their_swagger_ui_ids() {
        let dom = r#"<div id="operations-Invitations-deleteOrgInvite" class="opblock"></div>
                     <div id="operations-Community-removeGroupInvitations"></div>"#;
        let ids = [
            "deleteOrgInvite",
            "removeGroupInvitations",
            "joinCourse",
            "Invite",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(missing_operations(dom, &ids), ["joinCourse", "Invite"]);
    }

    #[test]
    fn redoc_links_are_matched_by_the_whole_lowercased_operation_id() {
        let dom = r##"<a href="#/organizations/deleteorginvite"></a>
                      <a href="#/projects/getgroupinvitex"></a><a href="#/community">x</a>"##;
        let ids = ["deleteOrgInvite", "getGroupInvite", "community"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            unlisted_in_redoc(dom, &ids),
            ["getGroupInvite", "community"],
            "a longer id or a tag link is not the operation's link"
        );
    }

    #[test]
    fn folds_are_counted_from_their_buttons() {
        let dom = r#"<button data-testid="show-more-operations">Show 3 more...</button>
                     <p>Show me more</p><button>Show 1 more...</button>"#;
        assert_eq!(folded_in_redoc(dom), 4);
        assert_eq!(folded_in_redoc("<p>nothing folded</p>"), 0);
    }
}
