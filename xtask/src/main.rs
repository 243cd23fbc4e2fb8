//! `cargo xtask`: the project's developer commands (spec generation, the full test run).
//!
//! Every generated artifact has a write mode and a check mode; the test command runs the check
//! mode. Paths are resolved from the workspace root, so the commands work from any directory.

mod bench;
mod conformance;
mod docs_check;
mod postgres;
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
    /// Run every check and test: fmt, clippy (also with bench-bounds), spec freshness and independent validation,
    /// schemathesis against the Atlas reference, the test suites. Installs what the tests need
    /// when it is missing (a Python virtualenv under target/).
    Test,
    /// Benchmarks (loopback only). `cargo xtask bench mock`: our mock against Stoplight Prism.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Run the hurl conformance suite (conformance/) and print the operation x status matrix;
    /// fails on any answer openapi/invites.json does not document, or on a seed DELETE status
    /// never exercised. Installs hurl 8.0.1 when missing.
    Conformance {
        /// local (a fresh server per fixture set), mock (`invites mock`, contract part only) or
        /// the URL of a running deployment.
        #[arg(long, default_value = "local")]
        target: conformance::Target,
        /// Write hurl's HTML report and the matrix as HTML into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        /// With a URL target: the deployment's database, to load the fixtures through
        /// `invites admin load-fixtures` (otherwise they must be there already).
        #[arg(long)]
        database_url: Option<String>,
        /// Only this fixture set (repeatable): atlas, community, opsmanager.
        #[arg(long = "set")]
        sets: Vec<String>,
        /// Skip schemathesis against our own spec (run after the hurl files, local target only).
        #[arg(long)]
        no_schemathesis: bool,
        /// Local target over PostgreSQL: start a throwaway cluster (installed when missing).
        #[arg(long)]
        postgres: bool,
    },
    /// Render /docs in headless Chromium (installed when missing), check that it lists every
    /// operation, and write a screenshot to target/docs-check/docs.png.
    DocsCheck,
    /// Run schemathesis (all checks) with the Atlas reference contract against a demo server.
    Schemathesis {
        /// Hypothesis examples per operation.
        #[arg(long, default_value_t = 50)]
        max_examples: u32,
        /// Fixed seed (default: random locally, fixed under CI=true so CI is reproducible).
        #[arg(long)]
        seed: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Our mock and Prism on our spec and on the full Atlas document: req/s, p50/p99, start-up, ratio.
    Mock,
    /// The service under load (Digest and Bearer deletes, community bulk delete, a 1,000-item
    /// list) on tables of 10k and 1M invitations, against a bare poem route; writes
    /// docs/benchmarks.md and docs/benchmarks-latency.svg.
    Server {
        /// Measured seconds per scenario (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// Python packages the tests use, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "requests==2.32.3",
    "openapi-spec-validator==0.7.1",
    "schemathesis==4.32.5",
];

pub(crate) fn root() -> PathBuf {
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

/// Installs Debian packages, refreshing the package lists first (a fresh machine has stale ones);
/// through `sudo -n` when not root.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-q"]))?;
    run(apt(&["install", "-y", "-q", "--no-install-recommends"]).args(packages))
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
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
pub(crate) fn python_env() -> Result<PathBuf> {
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

/// A demo server started for a check, stopped when dropped.
pub(crate) struct DemoServer {
    child: std::process::Child,
    pub(crate) base: String,
    creds: serde_json::Value,
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds and starts `invites serve --demo` on a free loopback port over a fresh database.
pub(crate) fn start_demo(dir: &Path, extra: &[&str]) -> Result<DemoServer> {
    use std::io::{BufRead, BufReader};
    run(Command::new("cargo").args(["build", "--quiet", "-p", "invites"]))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let creds_file = dir.join("demo.json");
    let mut child = Command::new(root().join("target/debug/invites"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(dir.join("demo.db"))
        .arg("--demo-out")
        .arg(&creds_file)
        .args(extra)
        .env("INVITES_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("starting invites serve")?;
    let stdout = child.stdout.take().expect("piped");
    let mut base = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if base.is_none() {
            base = line
                .split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:"))
                .map(str::to_owned);
        }
        if line.contains("demo credentials written") {
            break;
        }
    }
    let base = base.context("the demo server did not say where it listens")?;
    let creds = serde_json::from_str(&std::fs::read_to_string(&creds_file)?)?;
    Ok(DemoServer { child, base, creds })
}

fn schemathesis(python: &Path, max_examples: u32, seed: Option<String>) -> Result<()> {
    let dir = root().join("target/schemathesis");
    // Limits off: schemathesis sends thousands of requests, many with deliberately bad credentials.
    let server = start_demo(
        &dir,
        &[
            "--rate-limit-per-minute",
            "100000000",
            "--failed-auth-per-address",
            "0",
            "--failed-auth-per-key",
            "0",
        ],
    )?;
    println!("demo server at {}", server.base);
    let reference = root().join("../shared/reference/atlas-v2-invitations.openapi.json");
    if !reference.exists() {
        bail!(
            "the Atlas reference contract is missing at {}",
            reference.display()
        );
    }
    let sanitized = dir.join("atlas-v2-invitations.sanitized.json");
    run(Command::new(python)
        .arg(root().join("scripts/sanitize_reference_spec.py"))
        .arg(&reference)
        .arg(&sanitized))?;
    let token = service_account_token(python, &server)?;
    let seed = seed.or_else(|| std::env::var("CI").ok().map(|_| "20261123".to_owned()));
    let st = python.with_file_name("st");
    let mut cmd = Command::new(st);
    cmd.arg("--config-file")
        .arg(root().join("conformance/schemathesis/atlas-reference.toml"))
        .arg("run")
        .arg(&sanitized)
        .args([
            "--url",
            &server.base,
            "--checks",
            "all",
            "--max-examples",
            &max_examples.to_string(),
        ])
        .args(["--request-timeout", "10"])
        .env("INVITES_ST_TOKEN", token)
        .env(
            "INVITES_ST_ORG_ID",
            server.creds["org_id"].as_str().unwrap_or_default(),
        )
        .env(
            "INVITES_ST_GROUP_ID",
            server.creds["project_id"].as_str().unwrap_or_default(),
        )
        .current_dir(&dir);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed]);
    }
    let status = cmd.status().context("starting schemathesis")?;
    if !status.success() {
        bail!("schemathesis reported failures against the Atlas reference contract");
    }
    Ok(())
}

/// Exchanges the demo service account's credentials for a Bearer token.
fn service_account_token(python: &Path, server: &DemoServer) -> Result<String> {
    let sa = &server.creds["service_account"];
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, requests; r = requests.post(sys.argv[1] + '/api/oauth/token', auth=(sys.argv[2], sys.argv[3]), \
             data={'grant_type': 'client_credentials'}, timeout=10); r.raise_for_status(); print(r.json()['access_token'])",
            &server.base,
            sa["client_id"].as_str().unwrap_or_default(),
            sa["client_secret"].as_str().unwrap_or_default(),
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "getting a service-account token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
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
    // The benchmark-only build (`cargo xtask bench server` makes it): linted and its own tests
    // run here, so it cannot rot unseen between benchmark runs.
    step("cargo clippy and the bench_bound tests with the bench-bounds feature");
    run(Command::new("cargo").args([
        "clippy",
        "-p",
        "invites",
        "-p",
        "invites-server",
        "-p",
        "invites-store",
        "--features",
        "invites/bench-bounds",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(Command::new("cargo").args([
        "test",
        "-p",
        "invites-store",
        "--features",
        "bench-bounds",
        "--lib",
        "bench_bound",
    ]))?;
    step("committed OpenAPI document is current");
    openapi(true)?;
    step("python tools (virtualenv)");
    let python = python_env()?;
    step("validate openapi/invites.json with openapi-spec-validator");
    run(Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(spec_path()))?;
    step("schemathesis: all checks, Atlas reference contract, demo server");
    schemathesis(&python, 50, None)?;
    step("/docs in headless Chromium lists every operation (screenshot in target/docs-check)");
    docs_check::docs_check()?;
    step("conformance suite (SQLite): hurl over fixture sets, judged by openapi/invites.json");
    conformance::conformance(&conformance::Options {
        target: conformance::Target::Local,
        postgres: None,
        report: None,
        database_url: None,
        sets: Vec::new(),
        schemathesis: true,
    })?;
    step("PostgreSQL: a throwaway cluster on loopback");
    let cluster = match postgres::start() {
        Ok(c) => Some(c),
        Err(e) => {
            println!(
                "\n*** PostgreSQL runs SKIPPED: the cluster could not start: {e:#}\n\
                 *** (the store tests, the conformance suite and the two-replica test over PostgreSQL did not run)\n"
            );
            None
        }
    };
    if let Some(cluster) = &cluster {
        step("conformance suite (PostgreSQL)");
        conformance::conformance(&conformance::Options {
            target: conformance::Target::Local,
            postgres: Some(cluster),
            report: None,
            database_url: None,
            sets: Vec::new(),
            schemathesis: false,
        })?;
        step("store tests (PostgreSQL)");
        let mut cmd = Command::new("cargo");
        if has_nextest() {
            cmd.args(["nextest", "run", "-p", "invites-store", "--no-fail-fast"]);
        } else {
            cmd.args(["test", "-p", "invites-store", "--no-fail-fast"]);
        }
        run(cmd.env("INVITES_STORE_TEST_POSTGRES_URL", &cluster.url))?;
    }
    step("test suites (SQLite; the two-replica test over PostgreSQL)");
    let mut cmd = Command::new("cargo");
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        println!("cargo-nextest not found; using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.env("INVITES_TEST_PYTHON", &python);
    if let Some(cluster) = &cluster {
        cmd.env("INVITES_TEST_POSTGRES_URL", &cluster.url);
    }
    run(&mut cmd)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Openapi { check } => openapi(check),
        Cmd::Test => test(),
        Cmd::Bench {
            what: BenchWhat::Mock,
        } => bench::mock(),
        Cmd::Bench {
            what: BenchWhat::Server { seconds },
        } => bench::server(seconds),
        Cmd::Conformance {
            target,
            report,
            database_url,
            sets,
            no_schemathesis,
            postgres,
        } => {
            let cluster = if postgres {
                Some(postgres::start()?)
            } else {
                None
            };
            conformance::conformance(&conformance::Options {
                target,
                postgres: cluster.as_ref(),
                report,
                database_url,
                sets,
                schemathesis: !no_schemathesis,
            })
        }
        Cmd::DocsCheck => docs_check::docs_check(),
        Cmd::Schemathesis { max_examples, seed } => {
            schemathesis(&python_env()?, max_examples, seed)
        }
    }
}
