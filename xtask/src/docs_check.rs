//! `cargo xtask docs-check`: the docs page at `/docs` rendered by headless Chromium (Debian's
//! `chromium`, installed when missing) lists every operation of `openapi/invites.json`; a
//! screenshot is written to `target/docs-check/docs.png`.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, spec_path, start_demo};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
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
    let browser = match chromium() {
        Some(b) => b,
        None => {
            println!("chromium is not installed; installing Debian's chromium");
            crate::tools::apt_install(&["chromium"])?;
            chromium().context("chromium was installed but does not run")?
        }
    };
    let dir = root().join("target/docs-check");
    let server = start_demo(&dir.join("server"), &[])?;
    let url = format!("{}/docs", server.base);
    let flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,3000",
        "--virtual-time-budget=20000",
    ];
    let screenshot = dir.join("docs.png");
    let out = Command::new(browser)
        .args(flags)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .context("running chromium")?;
    if !screenshot.exists() {
        bail!(
            "chromium wrote no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(browser)
        .args(flags)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .context("running chromium")?;
    let dom = String::from_utf8_lossy(&out.stdout);
    std::fs::write(dir.join("dom.html"), dom.as_bytes())?;
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(spec_path())?)?;
    let ids: Vec<String> = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.values())
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect();
    let missing = missing_operations(&dom, &ids);
    let size = std::fs::metadata(&screenshot)?.len();
    println!(
        "/docs rendered by {browser}: {} of {} operations listed; screenshot {} ({size} bytes)",
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
}
