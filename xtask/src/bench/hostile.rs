//! `cargo xtask bench hostile`: normal requests beside slow and malformed clients. The service
//! (release build, loopback, the demo data set) is loaded by `invites-bench load` (32 keep-alive
//! connections listing the demo organization's invitations with a Bearer token) alone, then
//! beside each attack of `invites-bench attack` in turn; each row gives the normal requests'
//! p50, p99 and req/s, what the attackers saw, and the server's open descriptors. Two servers:
//! one with 2 s header and body timeouts, so attackers are cut off (and come back) within each
//! row, and one with a 60 s header timeout, for 10,000 idle keep-alives held through the row. Writes the
//! hostile section of `docs/benchmarks.md`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{free_port, wait_ready, with_section, Server, HOSTILE};
use crate::{root, run};

/// The server's header and body timeouts in the first setting, short so that attackers are cut
/// off (and come straight back) within each row.
const SHORT_TIMEOUT_SECS: u64 = 2;
/// The server's connection limit in this benchmark: above the 10,000 idle connections and the
/// load's 32, so that the row measures what holding them costs (the limit itself is tested in
/// `slow_clients.rs`).
const MAX_CONNECTIONS: usize = 11_000;

/// An attack and how many connections it keeps.
struct Attack {
    kind: &'static str,
    connections: usize,
    title: String,
}

/// One row: the normal load's figures beside an attack (none for the first row).
struct Row {
    title: String,
    /// The server's header and body timeouts.
    timeouts: String,
    rps: f64,
    p50: f64,
    p99: f64,
    /// Answers other than 200 and transport errors of the normal load.
    bad: u64,
    /// The lowest and highest p99 of the rounds.
    p99_range: (f64, f64),
    /// The attack's counts when the load ended.
    attack: Option<serde_json::Value>,
    /// Descriptors the server held when the load ended.
    fds: Option<usize>,
}

fn bin(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}

/// `program args`, run with the open-file limit raised to its hard limit (10,000 connections
/// need more than the usual soft limit of 1,024).
fn with_raised_fd_limit(program: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; exec "$0" "$@""#)
        .arg(program);
    c
}

/// The hard limit on open files, which the attack and the server raise their soft limit to.
fn hard_fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line.split_whitespace().nth(4)? {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// `invites-bench load` for `seconds` after 1 s of warm-up: (req/s, p50, p99, bad answers).
fn load(addr: &str, demo: &serde_json::Value, seconds: u64) -> Result<(f64, f64, f64, u64)> {
    let out = Command::new(bin("invites-bench"))
        .args(["load", "--scenario", "list", "--addr", addr])
        .args([
            "--duration-secs",
            &seconds.to_string(),
            "--warmup-secs",
            "1",
        ])
        .args(["--org", demo["org_id"].as_str().context("org_id")?])
        .args([
            "--client-id",
            demo["service_account"]["client_id"]
                .as_str()
                .context("client_id")?,
            "--client-secret",
            demo["service_account"]["client_secret"]
                .as_str()
                .context("client_secret")?,
        ])
        .output()
        .context("running invites-bench load")?;
    if !out.status.success() {
        bail!(
            "invites-bench load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bad = v["statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(s, _)| s.as_str() != "200")
                .filter_map(|(_, n)| n.as_u64())
                .sum::<u64>()
        })
        .unwrap_or(0)
        + v["errors"].as_u64().unwrap_or(0);
    Ok((
        v["rps"].as_f64().unwrap_or(0.0),
        v["p50_ms"].as_f64().unwrap_or(0.0),
        v["p99_ms"].as_f64().unwrap_or(0.0),
        bad,
    ))
}

/// Rounds of the load in each row (the attack runs through all of them).
const ROUNDS: usize = 3;

/// [`load`] [`ROUNDS`] times: the figures of the round with the median p99, the bad answers of
/// all rounds, and the lowest and highest p99.
fn rounds(addr: &str, demo: &serde_json::Value, seconds: u64) -> Result<Figures> {
    let mut all = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        all.push(load(addr, demo, seconds)?);
    }
    all.sort_by(|x, y| x.2.total_cmp(&y.2));
    let bad = all.iter().map(|r| r.3).sum();
    let range = (all[0].2, all[ROUNDS - 1].2);
    let (rps, p50, p99, _) = all[ROUNDS / 2];
    Ok((rps, p50, p99, bad, range))
}

/// req/s, p50, p99, bad answers, and the p99 range of the rounds.
type Figures = (f64, f64, f64, u64, (f64, f64));

/// Starts `attack`, waits until its connections are under way, runs the load beside it, and
/// returns the row with the attack's counts at the end of the load.
fn row_beside(
    attack: &Attack,
    addr: &str,
    demo: &serde_json::Value,
    seconds: u64,
    server_pid: u32,
) -> Result<Row> {
    let mut child = with_raised_fd_limit(&bin("invites-bench"))
        .args(["attack", "--kind", attack.kind, "--addr", addr])
        .args(["--connections", &attack.connections.to_string()])
        // Longer than any row: the attack is stopped once the load is done.
        .args(["--duration-secs", "120"])
        .args(["--org", demo["org_id"].as_str().context("org_id")?])
        .args([
            "--client-id",
            demo["service_account"]["client_id"]
                .as_str()
                .context("client_id")?,
            "--client-secret",
            demo["service_account"]["client_secret"]
                .as_str()
                .context("client_secret")?,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting invites-bench attack")?;
    let stdout = child.stdout.take().context("attack stdout")?;
    let attacker = Server(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(40))
        .context("the attack never got under way")?;
    println!("    attack under way: {ready}");
    let (rps, p50, p99, bad, p99_range) = rounds(addr, demo, seconds)?;
    let fds = open_fds(server_pid);
    // The latest counts, read before the attack is stopped.
    let mut last = None;
    let wait = Instant::now() + Duration::from_millis(600);
    while let Ok(line) = rx.recv_timeout(wait.saturating_duration_since(Instant::now())) {
        last = Some(line);
    }
    drop(attacker);
    let attack_counts = match last {
        Some(line) => serde_json::from_str(&line)?,
        None => bail!("the attack reported no counts"),
    };
    Ok(Row {
        title: attack.title.clone(),
        timeouts: String::new(),
        rps,
        p50,
        p99,
        bad,
        p99_range,
        attack: Some(attack_counts),
        fds,
    })
}

/// A server of the benchmark: its header and body timeouts and the attacks run beside its
/// normal load.
struct Setting {
    header_secs: u64,
    body_secs: u64,
    attacks: Vec<Attack>,
}

pub fn hostile(seconds: u64) -> Result<()> {
    let dir = root().join("target/bench/hostile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!("building release binaries (invites, invites-bench)");
    run(Command::new("cargo").args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "invites",
        "-p",
        "invites-bench",
    ]))?;
    // Read after the build, which would count in it.
    let before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let idle = hard_fd_limit().map_or(1_000, |l| l.saturating_sub(1_000).min(10_000));
    let settings = [
        // Short timeouts: attackers are cut off within each row, and come straight back.
        Setting {
            header_secs: SHORT_TIMEOUT_SECS,
            body_secs: SHORT_TIMEOUT_SECS,
            attacks: vec![
                Attack {
                    kind: "slowloris",
                    connections: 1_000,
                    title: "1,000 slowloris connections (a byte a second)".into(),
                },
                Attack {
                    kind: "idle",
                    connections: idle,
                    title: format!("{idle} idle keep-alives, cut and reopened at once"),
                },
                Attack {
                    kind: "slow-body",
                    connections: 1_000,
                    title: "1,000 bodies that never finish".into(),
                },
                Attack {
                    kind: "header-flood",
                    connections: 8,
                    title: "8 connections flooding headers (150 fields, then a 100 KiB field)"
                        .into(),
                },
            ],
        },
        // A header timeout longer than the row's rounds: the idle connections are held through
        // the row.
        Setting {
            header_secs: 60,
            body_secs: 30,
            attacks: vec![Attack {
                kind: "idle",
                connections: idle,
                title: format!("{idle} idle keep-alives, held"),
            }],
        },
    ];
    let mut rows = Vec::new();
    for (i, setting) in settings.iter().enumerate() {
        rows.extend(rows_of(&dir.join(format!("server-{i}")), setting, seconds)?);
    }
    for r in &rows {
        println!(
            "    {} ({}): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, bad {}, fds {:?}, {}",
            r.title,
            r.timeouts,
            r.rps,
            r.p50,
            r.p99,
            r.bad,
            r.fds,
            r.attack.as_ref().map(|a| a.to_string()).unwrap_or_default()
        );
    }
    let report = hostile_report(&rows, seconds, before.trim());
    let path = root().join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, with_section(&existing, &HOSTILE, &report))?;
    println!("written: docs/benchmarks.md (hostile section)");
    Ok(())
}

/// A demo server under `setting` (its files in `dir`): the normal load alone, then beside each
/// of its attacks.
fn rows_of(dir: &Path, setting: &Setting, seconds: u64) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let demo_path = dir.join("demo.json");
    let mut command = with_raised_fd_limit(&bin("invites"));
    command
        .args(["serve", "--listen", &addr, "--database-url"])
        .arg(dir.join("hostile.db"))
        .args(["--demo", "--demo-out"])
        .arg(&demo_path)
        .args(["--rate-limit-per-minute", "1000000000"])
        .args([
            "--failed-auth-per-address",
            "0",
            "--failed-auth-per-key",
            "0",
        ])
        .args(["--max-connections", &MAX_CONNECTIONS.to_string()])
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::null());
    command
        .args(["--header-timeout-secs", &setting.header_secs.to_string()])
        .args(["--body-timeout-secs", &setting.body_secs.to_string()]);
    let timeouts = format!("{} s / {} s", setting.header_secs, setting.body_secs);
    let server = Server(command.spawn().context("starting invites serve")?);
    wait_ready(port, Duration::from_secs(30))?;
    let started = Instant::now();
    while !demo_path.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let demo: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&demo_path).context("the demo credentials")?,
    )?;
    println!("  header/body timeouts {timeouts}: normal load alone");
    let (rps, p50, p99, bad, p99_range) = rounds(&addr, &demo, seconds)?;
    let mut rows = vec![Row {
        title: "none (normal load alone)".into(),
        timeouts: timeouts.clone(),
        rps,
        p50,
        p99,
        bad,
        p99_range,
        attack: None,
        fds: open_fds(server.0.id()),
    }];
    for (i, attack) in setting.attacks.iter().enumerate() {
        if i > 0 {
            // Let the server close what the last attack left before the next row.
            let t = setting.header_secs.max(setting.body_secs);
            std::thread::sleep(Duration::from_secs(t + 1));
        }
        println!("  beside {}", attack.title);
        let mut row = row_beside(attack, &addr, &demo, seconds, server.0.id())?;
        row.timeouts = timeouts.clone();
        rows.push(row);
    }
    Ok(rows)
}

/// What the attackers saw: connections cut by the server and the statuses answered.
fn attack_summary(v: &serde_json::Value) -> String {
    let statuses = v["statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(s, n)| format!("{n} x {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    format!(
        "{} opened, {} closed by the server, {} failed connects; answers: {statuses}",
        v["opened"], v["closed_by_server"], v["connect_errors"]
    )
}

fn hostile_report(rows: &[Row], seconds: u64, loadavg: &str) -> String {
    let (begin, end) = (HOSTILE.begin, HOSTILE.end);
    let mut md = format!(
        "{begin}\n## Normal requests beside slow and malformed clients\n\n\
         Produced by `cargo xtask bench hostile` (release build, loopback, the demo data set): \
         `invites-bench load` lists the demo organization's invitations (200, Bearer token) on 32 \
         keep-alive connections, 1 s warm-up then {seconds} s measured, alone and then beside each \
         attack of `invites-bench attack`, a process of its own started first (each attacker opens \
         a new connection whenever the server closes one). Each server runs with \
         `--max-connections {MAX_CONNECTIONS}` and the header and body timeouts of its rows. Each \
         row runs the load {ROUNDS} times beside the same attack and gives the round with the \
         median p99, with the lowest and highest p99 of the rounds. The attackers share the machine's 2 cores with the server and the load, so \
         a row also pays for the attack's own CPU. Load average before the run (other builds \
         running on the machine): {loadavg}.\n\n\
         | attack | header / body timeout | req/s | p50 ms | p99 ms | p99 of the rounds | non-200 or failed | server fds | the attackers saw |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2}-{:.2} | {} | {} | {} |\n",
            r.title,
            r.timeouts,
            r.rps,
            r.p50,
            r.p99,
            r.p99_range.0,
            r.p99_range.1,
            r.bad,
            r.fds.map_or("-".into(), |n| n.to_string()),
            r.attack.as_ref().map_or("-".into(), attack_summary),
        ));
    }
    md.push_str(end);
    md
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;

    #[test]
    fn the_report_is_one_section_with_a_row_per_attack() {
        let rows = [
            Row {
                title: "none".into(),
                timeouts: "2 s / 2 s".into(),
                rps: 1000.0,
                p50: 1.0,
                p99: 2.0,
                bad: 0,
                p99_range: (1.5, 3.0),
                attack: None,
                fds: Some(40),
            },
            Row {
                title: "slowloris".into(),
                timeouts: "2 s / 2 s".into(),
                rps: 900.0,
                p50: 1.1,
                p99: 2.5,
                bad: 0,
                p99_range: (2.0, 2.5),
                attack: Some(serde_json::json!({
                    "opened": 10, "closed_by_server": 5, "connect_errors": 0,
                    "statuses": {"431": 2}
                })),
                fds: None,
            },
        ];
        let md = hostile_report(&rows, 4, "0.5 0.5 0.5 1/1 1");
        assert_eq!(section(&md, &HOSTILE), Some(md.as_str()));
        assert!(
            md.contains("| none | 2 s / 2 s | 1000 | 1.00 | 2.00 | 1.50-3.00 | 0 | 40 | - |"),
            "{md}"
        );
        assert!(md.contains(
            "| slowloris | 2 s / 2 s | 900 | 1.10 | 2.50 | 2.00-2.50 | 0 | - | 10 opened, 5 closed by the server, 0 failed connects; answers: 2 x 431 |"
        ), "{md}");
    }
}
