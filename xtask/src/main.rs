//! `cargo xtask`: the project's developer commands (spec generation, the full test run).
//!
//! Every generated artifact has a write mode and a check mode; the test command runs the check
//! mode. Paths are resolved from the workspace root, so the commands work from any directory.
//! Every command that starts the server runs it from the one test build ([`tools::test_build`]).

mod bench;
mod clients;
mod conformance;
mod docs_check;
mod fuzz;
mod phases;
mod postgres;
mod releases;
mod spec_diff;
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use phases::Phases;

/// Developer commands of the invitation service.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate openapi/invites.json from the code and docs/api-changelog.md from it and the
    /// released versions (openapi/released/). Fails on a change that breaks clients of the last
    /// released version unless the workspace version moved past a semver-breaking boundary.
    Openapi {
        /// Only check: the committed files are current and nothing breaks the last release.
        #[arg(long, conflicts_with = "release")]
        check: bool,
        /// Also release the document as this version (its info.version, the workspace
        /// version): writes openapi/released/<VERSION>.json; a released file is never rewritten.
        #[arg(long, value_name = "VERSION")]
        release: Option<String>,
    },
    /// Run every check and test: fmt, clippy (also with bench-bounds), spec freshness and independent validation,
    /// schemathesis against the Atlas reference, the test suites, 20 s of fuzzing per target.
    /// Installs what the tests need when it is missing (a Python virtualenv under target/).
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
    /// Write the static API reference for consumers (Redoc, through `redocly build-docs`) to
    /// target/docs/index.html and check in headless Chromium that it links every operation.
    Docs,
    /// Generate the Rust, TypeScript and Python clients from openapi/invites.json and drive the
    /// invitation lifecycle of clients/LIFECYCLE.md with each against a fresh demo server.
    Clients,
    /// Coverage-guided fuzzing of the parsers that take input from anyone (fuzz/: cargo-fuzz,
    /// libFuzzer, no sanitizer): builds every target once into target/fuzz, then runs each on a
    /// working copy of its seed corpus (target/fuzz/corpus/<target>) and prints runs, execs/s,
    /// coverage and the corpus size. Fails on a crash, an input slower than 5 s or a run above
    /// 512 MB, naming the reproducer. Installs cargo-fuzz 0.13.2 when missing.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Only this target (repeatable): digest_authorization, community_users,
        /// contract_load, contract_request, schema_example.
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
    },
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
    /// Normal requests beside slow and malformed clients (slowloris, 10,000 idle keep-alives,
    /// bodies that never finish, header floods): p50/p99/req/s of each in the hostile section
    /// of docs/benchmarks.md.
    Hostile {
        /// Measured seconds per row (after 1 s of warm-up).
        #[arg(long, default_value_t = 4)]
        seconds: u64,
    },
    /// The service under load (Digest and Bearer deletes, community bulk delete, a 1,000-item
    /// list) on tables of 10k and 1M invitations, against a bare poem route; writes
    /// docs/benchmarks.md and docs/benchmarks-latency.svg.
    Server {
        /// Measured seconds per scenario (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// sqlite: tables of 10k and 1M invitations, and the bounds of (b) and (c). postgres: a
        /// throwaway cluster with durable commits (fsync, synchronous_commit), 10k invitations,
        /// one replica and two over the same database in alternate rounds, writes to one scope
        /// against writes to many, and sqlx's Any driver against PgPool; its own section of
        /// docs/benchmarks.md.
        #[arg(long, value_enum, default_value = "sqlite")]
        database: bench::Database,
        /// PostgreSQL only: run just the scenarios of these letters (e.g. `de`) and print their
        /// figures, leaving docs/benchmarks.md as it is (to study a change, not to report).
        #[arg(long, value_name = "LETTERS")]
        only: Option<String>,
        /// PostgreSQL with --only: compare this build with another `invites` binary (e.g. one
        /// built from the commit before, copied aside), one replica each in alternate rounds,
        /// in place of one replica against two. The baseline must know this build's migrations
        /// (the database is migrated by this build, and an older build refuses it and says so):
        /// to compare across a new migration, build the baseline with the new migration files
        /// added to its `crates/invites-store/migrations/`.
        #[arg(long, value_name = "INVITES_BINARY", requires = "only")]
        baseline: Option<PathBuf>,
        /// With --baseline: the replicas each build runs, 1 or 2 (two with their share of the
        /// cores each, as in the two-replica rounds), to compare builds as replicas too.
        #[arg(
            long,
            value_name = "N",
            default_value_t = 1,
            requires = "baseline",
            value_parser = clap::value_parser!(u8).range(1..=2)
        )]
        baseline_replicas: u8,
    },
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn spec_path() -> PathBuf {
    root().join("openapi").join("invites.json")
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

/// The document the code generates, as `invites openapi` (of the test build) prints it.
fn generated_spec(invites: &Path) -> Result<String> {
    let out = Command::new(invites)
        .arg("openapi")
        .output()
        .with_context(|| format!("running {} openapi", invites.display()))?;
    if !out.status.success() {
        bail!(
            "{} openapi failed: {}",
            invites.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `redocly lint` on the committed document with Redocly's recommended rules as
/// `openapi/redocly.yaml` adjusts them; any error or warning fails.
fn lint(node_bin: &Path) -> Result<()> {
    let redocly = |format: &str| {
        let mut cmd = Command::new(node_bin.join("redocly"));
        cmd.current_dir(root().join("openapi"))
            .args(["lint", "invites.json", "--config", "redocly.yaml"])
            .arg(format!("--format={format}"))
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
        cmd
    };
    let out = redocly("json").output().context("running redocly")?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "redocly lint printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let count = |k: &str| report["totals"][k].as_u64().unwrap_or(0);
    let (errors, warnings, ignored) = (count("errors"), count("warnings"), count("ignored"));
    if errors + warnings > 0 {
        let shown = redocly("stylish").output()?;
        println!("{}", String::from_utf8_lossy(&shown.stdout));
        bail!("redocly lint: {errors} error(s), {warnings} warning(s) on openapi/invites.json");
    }
    println!(
        "redocly lint {}: 0 errors, 0 warnings ({ignored} ignored in openapi/.redocly.lint-ignore.yaml, each explained)",
        report["version"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Writes openapi/invites.json from the code and the changelog, or with `check` fails when either
/// differs; both modes run the breaking-change gate.
fn openapi(invites: &Path, check: bool) -> Result<()> {
    let want = generated_spec(invites)?;
    let path = spec_path();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        println!("{} is up to date", path.display());
    } else if check {
        bail!(
            "{} is stale: run `cargo xtask openapi` and commit the result",
            path.display()
        );
    } else {
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, &want)?;
        println!("wrote {}", path.display());
    }
    let doc: serde_json::Value = serde_json::from_str(&want).context("the generated document")?;
    releases::check(&doc, !check)
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

/// Starts `invites serve --demo` of the test build on a free loopback port over a fresh database.
pub(crate) fn start_demo(dir: &Path, extra: &[&str]) -> Result<DemoServer> {
    use std::io::{BufRead, BufReader};
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let creds_file = dir.join("demo.json");
    let mut child = Command::new(tools::invites_binary())
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
    println!(
        "note: the six invitation writes reject most generated requests by design (roles of the \
         scope, email usernames, existing teams, a pending invitation for PATCH by username); \
         schemathesis's warnings about that are not shown for them (conformance/schemathesis/atlas-reference.toml)"
    );
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

/// The README's test command (and CI's): every phase timed, a table of them at the end, and the
/// test runner's own summary line last.
fn test() -> Result<()> {
    let mut phases = Phases::new();
    let result = test_phases(&mut phases);
    println!("\n{}", phases.table());
    let summary = result?;
    if let Some(line) = summary {
        // The test runner's own summary line (printed above as well), so the run ends with it.
        println!("{line}");
    }
    Ok(())
}

fn test_phases(phases: &mut Phases) -> Result<Option<String>> {
    phases.run("cargo fmt --check", || {
        run(Command::new("cargo").args(["fmt", "--all", "--check"]))
    })?;
    phases.run("cargo clippy (workspace, all targets, -D warnings)", || {
        run(Command::new("cargo").args(CLIPPY))
    })?;
    // The benchmark-only feature adds a few hooks to three crates; with --workspace the
    // dependencies' features are the same as above, so only those crates are checked again.
    phases.run(
        "cargo clippy with the benchmark-only bench-bounds feature",
        || {
            run(Command::new("cargo")
                .args(&CLIPPY[..CLIPPY.len() - 3])
                .args(["--features", "invites/bench-bounds"])
                .args(&CLIPPY[CLIPPY.len() - 3..]))
        },
    )?;
    let invites = phases.run(
        "build: every test binary and the invites binary, once (the servers below are this build)",
        tools::test_build,
    )?;
    phases.run(
        "committed OpenAPI document and changelog current, no break since the last release",
        || openapi(&invites, true),
    )?;
    let node = phases.run("npm tools (under target/node-tools)", tools::node_tools)?;
    phases.run(
        "redocly lint, recommended rules (openapi/redocly.yaml)",
        || lint(&node),
    )?;
    let python = phases.run("python tools (virtualenv under target/)", tools::python_env)?;
    phases.run("openapi-spec-validator on openapi/invites.json", || {
        run(Command::new(&python)
            .args(["-m", "openapi_spec_validator"])
            .arg(spec_path()))
    })?;
    phases.run(
        "schemathesis: all checks, the Atlas reference contract, a demo server",
        || schemathesis(&python, 50, None),
    )?;
    phases.run(
        "/docs in headless Chromium lists every operation (screenshot in target/docs-check)",
        docs_check::docs_check,
    )?;
    phases.run(
        "static API reference (Redoc) in target/docs, every operation linked in Chromium",
        || docs_check::static_docs(&node),
    )?;
    phases.run(
        "generated clients (Rust, TypeScript, Python): the lifecycle against demo servers",
        clients::clients,
    )?;
    phases.run("hurl for the conformance suite", conformance::ensure_hurl)?;
    phases.run(
        "conformance suite (SQLite): hurl over fixture sets, judged by openapi/invites.json",
        || {
            conformance::conformance(&conformance::Options {
                target: conformance::Target::Local,
                postgres: None,
                report: None,
                database_url: None,
                sets: Vec::new(),
            })
        },
    )?;
    phases.run(
        "schemathesis: all checks, openapi/invites.json, a server over every fixture set",
        || conformance::schemathesis_own_spec(&python),
    )?;
    let cluster = match phases.run(
        "PostgreSQL: a throwaway cluster on loopback",
        postgres::start,
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            println!(
                "\n*** PostgreSQL runs SKIPPED: the cluster could not start: {e:#}\n\
                 *** (the store tests, the conformance suite and the two-replica and fault tests over PostgreSQL do not run)\n"
            );
            None
        }
    };
    let nextest = tools::has_nextest();
    match &cluster {
        Some(cluster) => {
            phases.run("conformance suite (PostgreSQL)", || {
                conformance::conformance(&conformance::Options {
                    target: conformance::Target::Local,
                    postgres: Some(cluster),
                    report: None,
                    database_url: None,
                    sets: Vec::new(),
                })
            })?;
            phases.run("store tests (PostgreSQL)", || {
                let mut cmd = Command::new("cargo");
                if nextest {
                    cmd.args([
                        "nextest",
                        "run",
                        "--workspace",
                        "--locked",
                        "--no-fail-fast",
                    ])
                    .args(["-E", "package(invites-store)"]);
                } else {
                    println!(
                        "cargo-nextest not found: cargo test -p invites-store (a build of its own)"
                    );
                    cmd.args(["test", "-p", "invites-store", "--no-fail-fast"]);
                }
                run(cmd.env("INVITES_STORE_TEST_POSTGRES_URL", &cluster.url))
            })?;
        }
        None => {
            for title in ["conformance suite (PostgreSQL)", "store tests (PostgreSQL)"] {
                phases.skip(title, "no PostgreSQL cluster");
            }
        }
    }
    let summary = phases.run(
        "test suites (SQLite; the two-replica and fault tests over PostgreSQL)",
        || {
            let mut cmd = Command::new("cargo");
            if nextest {
                cmd.args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--locked",
                    "--no-fail-fast",
                ]);
            } else {
                println!("cargo-nextest not found; using cargo test");
                cmd.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
            }
            cmd.env("INVITES_TEST_PYTHON", &python);
            if let Some(cluster) = &cluster {
                cmd.env("INVITES_TEST_POSTGRES_URL", &cluster.url);
                cmd.env("INVITES_TEST_POSTGRES_BIN", cluster.bin());
            }
            run_keeping_summary(&mut cmd, if nextest { "Summary " } else { "test result:" })
        },
    )?;
    phases.run(
        "fuzzing: each target of fuzz/ for 20 s (cargo-fuzz, libFuzzer)",
        || {
            fuzz::fuzz(&fuzz::Options {
                seconds: 20,
                targets: Vec::new(),
            })
        },
    )?;
    phases.run(
        "the mock's answers to real documents judged by openapi-schema-validator",
        || {
            let answers = root().join("target/mock-realworld/answers.jsonl");
            if !answers.exists() {
                bail!(
                    "{} is missing: the mock's realworld test did not run",
                    answers.display()
                );
            }
            run(Command::new(&python)
                .arg(root().join("scripts/judge_mock_answers.py"))
                .arg(answers))
        },
    )?;
    Ok(summary)
}

/// `cargo clippy` over the workspace, every target, warnings denied (the last three arguments
/// are `-- -D warnings`).
const CLIPPY: [&str; 7] = [
    "clippy",
    "--workspace",
    "--all-targets",
    "--locked",
    "--",
    "-D",
    "warnings",
];

/// Runs a test runner, passing its output through as it comes, and returns its last line that
/// starts with `marker` (nextest's `Summary [...] N tests run: ...`).
fn run_keeping_summary(cmd: &mut Command, marker: &'static str) -> Result<Option<String>> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pass = |stream: Box<dyn std::io::Read + Send>, to_stderr: bool| {
        std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if to_stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
                if line.trim_start().starts_with(marker) {
                    last = Some(line.trim().to_owned());
                }
            }
            last
        })
    };
    let out = pass(Box::new(child.stdout.take().expect("piped")), false);
    let err = pass(Box::new(child.stderr.take().expect("piped")), true);
    let status = child.wait()?;
    let summary = err.join().ok().flatten().or(out.join().ok().flatten());
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(summary)
}

fn main() -> std::process::ExitCode {
    match command(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on, not a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn command(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Openapi { check, release } => {
            openapi(&tools::test_build()?, check)?;
            match release {
                Some(version) => {
                    releases::release(&std::fs::read_to_string(spec_path())?, &version)
                }
                None => Ok(()),
            }
        }
        Cmd::Test => test(),
        Cmd::Bench {
            what: BenchWhat::Mock,
        } => bench::mock(),
        Cmd::Bench {
            what:
                BenchWhat::Server {
                    seconds,
                    database,
                    only,
                    baseline,
                    baseline_replicas,
                },
        } => bench::server(
            seconds,
            database,
            only.as_deref(),
            baseline
                .as_deref()
                .map(|bin| (bin, usize::from(baseline_replicas))),
        ),
        Cmd::Bench {
            what: BenchWhat::Hostile { seconds },
        } => bench::hostile(seconds),
        Cmd::Conformance {
            target,
            report,
            database_url,
            sets,
            no_schemathesis,
            postgres,
        } => {
            tools::test_build()?;
            conformance::ensure_hurl()?;
            let cluster = if postgres {
                Some(postgres::start()?)
            } else {
                None
            };
            let opts = conformance::Options {
                target,
                postgres: cluster.as_ref(),
                report,
                database_url,
                sets,
            };
            conformance::conformance(&opts)?;
            if !no_schemathesis && opts.target == conformance::Target::Local && cluster.is_none() {
                conformance::schemathesis_own_spec(&tools::python_env()?)?;
            }
            Ok(())
        }
        Cmd::DocsCheck => {
            tools::test_build()?;
            docs_check::docs_check()
        }
        Cmd::Docs => {
            let page = docs_check::static_docs(&tools::node_tools()?)?;
            println!("open file://{}", page.display());
            Ok(())
        }
        Cmd::Clients => {
            tools::test_build()?;
            clients::clients()
        }
        Cmd::Fuzz { seconds, targets } => fuzz::fuzz(&fuzz::Options { seconds, targets }),
        Cmd::Schemathesis { max_examples, seed } => {
            tools::test_build()?;
            schemathesis(&tools::python_env()?, max_examples, seed)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{BenchWhat, Cli, Cmd};

    fn bench_server(args: &[&str]) -> Result<Cmd, clap::Error> {
        let argv = ["xtask", "bench", "server"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| cli.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn baseline_replicas_need_a_baseline_and_are_one_or_two() {
        let two = ["--database", "postgres", "--only", "c", "--baseline", "old"];
        match bench_server(&[&two[..], &["--baseline-replicas", "2"]].concat()) {
            Ok(Cmd::Bench {
                what:
                    BenchWhat::Server {
                        baseline_replicas, ..
                    },
            }) => assert_eq!(baseline_replicas, 2),
            _ => panic!("--baseline-replicas 2 with --baseline is taken"),
        }
        match bench_server(&two) {
            Ok(Cmd::Bench {
                what:
                    BenchWhat::Server {
                        baseline_replicas, ..
                    },
            }) => assert_eq!(baseline_replicas, 1, "one replica each by default"),
            _ => panic!("--baseline alone is taken"),
        }
        assert!(bench_server(&[&two[..], &["--baseline-replicas", "3"]].concat()).is_err());
        assert!(bench_server(&["--only", "c", "--baseline-replicas", "2"]).is_err());
    }
}
