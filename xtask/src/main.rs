//! `cargo xtask`: the project's developer commands (spec generation, the full test run).
//!
//! Every generated artifact has a write mode and a check mode; the test command runs the check
//! mode. Paths are resolved from the workspace root, so the commands work from any directory.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

/// Developer commands of the invitation service.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate openapi/invites.json from the code (or, with --check, fail if it is stale).
    Openapi {
        /// Only check that the committed file is current.
        #[arg(long)]
        check: bool,
    },
    /// Run every check and test: fmt, clippy, spec freshness and independent validation, the
    /// test suites. Installs what the tests need when it is missing (a Python virtualenv).
    Test,
}

/// Python packages the tests use, pinned.
const PYTHON_PACKAGES: &[&str] = &["requests==2.32.3", "openapi-spec-validator==0.7.1"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn spec_path() -> PathBuf {
    root().join("openapi").join("invites.json")
}

fn step(title: &str) {
    println!("\n==> {title}");
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn openapi(check: bool) -> Result<()> {
    let want = invites_api::spec_json();
    let path = spec_path();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        println!("{} is up to date", path.display());
        return Ok(());
    }
    if check {
        bail!(
            "{} is stale: run `cargo xtask openapi` and commit the result",
            path.display()
        );
    }
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(&path, want)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A virtualenv under target/ with the pinned Python packages; created only when missing.
fn python_env() -> Result<PathBuf> {
    let venv = root().join("target").join("py-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(".installed");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        println!("python virtualenv ready at {}", venv.display());
        return Ok(python);
    }
    println!("creating python virtualenv at {}", venv.display());
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

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn test() -> Result<()> {
    step("cargo fmt --check");
    run(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    step("cargo clippy --all-targets -- -D warnings");
    run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("committed OpenAPI document is current");
    openapi(true)?;
    step("python tools (virtualenv)");
    let python = python_env()?;
    step("validate openapi/invites.json with openapi-spec-validator");
    run(Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(spec_path()))?;
    step("test suites");
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        println!("cargo-nextest not found; using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.env("INVITES_TEST_PYTHON", &python);
    run(&mut cmd)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Openapi { check } => openapi(check),
        Cmd::Test => test(),
    }
}
