//! `cargo xtask clients`: the clients generated from `openapi/invites.json` (Rust by progenitor,
//! TypeScript by openapi-typescript + openapi-fetch, Python by openapi-python-client), each
//! driving the lifecycle of `clients/LIFECYCLE.md` against a fresh demo server of the test build.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, start_demo};

/// The families every client reports on, one `<language> <family>: ok` line each.
const FAMILIES: [&str; 4] = ["atlas-org", "atlas-project", "opsmanager", "community"];

/// How long one client may take, its install and generation included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// One generated client: its language and the command that runs it given the server's base URL
/// and the demo credentials file.
struct GeneratedClient {
    language: &'static str,
    command: fn(base: &str, demo: &PathBuf) -> Command,
}

const CLIENTS: [GeneratedClient; 3] = [
    GeneratedClient {
        language: "rust",
        command: |base, demo| {
            // Built by the one test build (crates/invites-client's integration test runs it).
            let mut cmd = Command::new(root().join("target/debug/invites-client-lifecycle"));
            cmd.arg(base).arg(demo);
            cmd
        },
    },
    GeneratedClient {
        language: "typescript",
        command: |base, demo| {
            let mut cmd = Command::new("bash");
            cmd.arg(root().join("clients/typescript/run.sh"))
                .arg(base)
                .arg(demo);
            cmd
        },
    },
    GeneratedClient {
        language: "python",
        command: |base, demo| {
            let mut cmd = Command::new("python3");
            cmd.arg(root().join("clients/python/run.py"))
                .arg(base)
                .arg(demo);
            cmd
        },
    },
];

/// Runs every generated client against its own fresh demo server; fails naming each client that
/// failed or did not report every family.
pub fn clients() -> Result<()> {
    crate::tools::ensure_npm()?;
    let mut failed = Vec::new();
    let mut timings = Vec::new();
    for client in &CLIENTS {
        let began = Instant::now();
        if let Err(e) = run_client(client) {
            println!("{}: FAILED: {e:#}", client.language);
            failed.push(client.language);
        }
        timings.push(format!(
            "{} {:.1} s",
            client.language,
            began.elapsed().as_secs_f64()
        ));
    }
    println!("generated clients: {}", timings.join(", "));
    if !failed.is_empty() {
        bail!("generated clients failed: {}", failed.join(", "));
    }
    Ok(())
}

fn run_client(client: &GeneratedClient) -> Result<()> {
    let dir = root().join("target/clients/servers").join(client.language);
    let server = start_demo(&dir, &[])?;
    let mut cmd = (client.command)(&server.base, &dir.join("demo.json"));
    let lines = run_bounded(&mut cmd, CLIENT_TIMEOUT)?;
    let missing: Vec<&str> = FAMILIES
        .into_iter()
        .filter(|family| {
            let want = format!("{} {family}: ok", client.language);
            !lines.iter().any(|l| l.starts_with(&want))
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} printed no ok line for {}",
            client.language,
            missing.join(", ")
        );
    }
    Ok(())
}

/// Runs a command with its output passed through as it comes, killed after `timeout`; returns
/// its standard output's lines.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Vec<String>> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
        lines
    });
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if began.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(lines)
}
