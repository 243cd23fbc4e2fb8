//! What the checks need from outside the workspace, installed once when missing: Debian packages
//! (through apt, its chatter kept in a log), the pinned Python tools (a virtualenv under
//! `target/`), the pinned npm tools (under `target/node-tools`), and the one build of the
//! workspace that every check runs on.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{root, run};

/// Python packages the tests use, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "requests==2.32.3",
    "openapi-spec-validator==0.7.1",
    "schemathesis==4.32.5",
    // YAML 1.2 for the independent judge of the mock (scripts/judge_mock_answers.py).
    "ruamel.yaml==0.18.17",
    // ECMA-like patterns (`\p{L}`) for the same judge: Python's `re` has none.
    "regex==2026.11.19",
];

/// npm packages the checks use, pinned (each works on Node.js 20, the machine's).
const NODE_PACKAGES: &[&str] = &["@redocly/cli@2.77.0"];

/// Where installers' output goes, so a passing run shows only what it did.
fn log_path(name: &str) -> Result<PathBuf> {
    let dir = root().join("target/xtask-logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(name))
}

/// The last `n` lines of a file, for a failure message.
fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether a Debian package is installed.
pub fn has_package(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs Debian packages, refreshing the package lists first (a fresh machine has stale ones);
/// through `sudo -n` when not root. apt's and debconf's output goes to
/// `target/xtask-logs/apt.log`, shown only when the install fails.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let log = log_path("apt.log")?;
    println!(
        "installing Debian packages: {} (apt-get; its output in {})",
        packages.join(" "),
        log.display()
    );
    let root_user = is_root();
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .context("starting apt-get")?;
        if !status.success() {
            bail!(
                "apt-get {} failed with {status}; the end of {}:\n{}",
                args.join(" "),
                log.display(),
                tail(&log, 30)
            );
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect::<Vec<_>>())
}

/// A virtualenv under target/ with the pinned Python packages; created only when missing.
pub fn python_env() -> Result<PathBuf> {
    let venv = root().join("target").join("py-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(".installed");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        println!("python virtualenv ready at {}", venv.display());
        return Ok(python);
    }
    println!(
        "creating a python virtualenv at {} with {} (pip, about a minute)",
        venv.display(),
        PYTHON_PACKAGES.join(" ")
    );
    std::io::stdout().flush()?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// The `node_modules/.bin` of the pinned npm packages, installed under `target/node-tools` when
/// missing (Node.js and npm from Debian when the machine has none).
pub fn node_tools() -> Result<PathBuf> {
    let dir = root().join("target").join("node-tools");
    let bin = dir.join("node_modules").join(".bin");
    let stamp = dir.join(".installed");
    let wanted = NODE_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        println!("npm packages ready in {}", dir.display());
        return Ok(bin);
    }
    ensure_npm()?;
    println!(
        "installing {} (npm) into {}",
        NODE_PACKAGES.join(" "),
        dir.display()
    );
    std::io::stdout().flush()?;
    std::fs::create_dir_all(&dir)?;
    let log = log_path("npm.log")?;
    let status = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--prefix",
        ])
        .arg(&dir)
        .args(NODE_PACKAGES)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?)
        .status()
        .context("running npm")?;
    if !status.success() {
        bail!(
            "npm install failed ({status}); the end of {}:\n{}",
            log.display(),
            tail(&log, 20)
        );
    }
    std::fs::write(&stamp, wanted)?;
    Ok(bin)
}

/// Node.js and npm, from Debian when the machine has none.
pub fn ensure_npm() -> Result<()> {
    if Command::new("npm").arg("--version").output().is_err() {
        apt_install(&["nodejs", "npm"])?;
    }
    Ok(())
}

pub fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The `invites` binary of the test build (see [`test_build`]).
pub fn invites_binary() -> PathBuf {
    root().join("target/debug/invites")
}

/// The one build every check runs on: all test binaries of the workspace and, with them, the
/// `invites` binary the integration tests start, in one cargo invocation (dev profile, the
/// dev-dependencies' features unified across the workspace). The servers that schemathesis, the
/// docs check and the conformance suite start are that binary, so nothing is compiled twice;
/// a package-scoped build (`cargo build -p invites`) would resolve other features and compile
/// much of the dependency tree again. Cargo's own progress is shown.
pub fn test_build() -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--locked", "--no-run"]);
    } else {
        cmd.args(["test", "--workspace", "--locked", "--no-run"]);
    }
    run(&mut cmd)?;
    let binary = invites_binary();
    if !binary.exists() {
        bail!(
            "the test build made no {} (the integration tests of crates/invites start it)",
            binary.display()
        );
    }
    Ok(binary)
}
