//! `cargo xtask bench mock`: the same load against our mock and Stoplight Prism serving the same
//! documents, in one run; prints throughput, p50/p99 latency, time to listen, peak resident memory
//! and the ratio.
//!
//! Load: wrk (Debian's), 2 threads, 32 connections, 10 s, DELETE deleteOrgInvite with a Bearer
//! header, loopback only. Prism is installed under target/bench/prism with npm when missing; wrk
//! with apt-get when missing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, run};

const PATH: &str = "/api/atlas/v2/orgs/32b6e34b3d91647abb20e7b8/invites/32b6e34b3d91647abb20e7b8";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(port: u16, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while started.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listened on port {port} within {limit:?}")
}

fn ensure_tools(dir: &Path) -> Result<PathBuf> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("installing wrk (apt-get)");
        crate::apt_install(&["wrk"])?;
    }
    let prism = dir.join("prism/node_modules/.bin/prism");
    if !prism.exists() {
        println!(
            "installing @stoplight/prism-cli 5 (npm) into {}",
            dir.join("prism").display()
        );
        std::fs::create_dir_all(dir.join("prism"))?;
        run(Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir.join("prism"))
            .arg("@stoplight/prism-cli@5"))?;
    }
    Ok(prism)
}

/// Requests/s, p50 and p99 (ms) from wrk's `--latency` output.
#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Peak resident set size (VmHWM) of a running process, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn wrk(port: u16, script: &Path) -> Result<Load> {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}{PATH}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let p50 = field("50%")
        .and_then(|v| ms(&v))
        .context("wrk printed no p50")?;
    let p99 = field("99%")
        .and_then(|v| ms(&v))
        .context("wrk printed no p99")?;
    Ok(Load {
        rps,
        p50_ms: p50,
        p99_ms: p99,
    })
}

pub fn mock() -> Result<()> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let prism = ensure_tools(&dir)?;
    run(Command::new("cargo").args(["build", "--release", "--quiet", "-p", "invites"]))?;
    let script = dir.join("delete.lua");
    std::fs::write(
        &script,
        "wrk.method = \"DELETE\"\nwrk.headers[\"Authorization\"] = \"Bearer bench\"\n",
    )?;
    let documents = [
        ("our spec", root().join("openapi/invites.json"), 20.0),
        (
            "full Atlas",
            root().join("../shared/reference/atlas-v2-full.openapi.json"),
            100.0,
        ),
    ];
    struct Row {
        name: &'static str,
        ours: (Duration, Load, f64),
        prism: (Duration, Load, f64),
        target: f64,
    }
    let mut rows = Vec::new();
    for (name, doc, target) in documents {
        println!("\n== {name}: {}", doc.display());
        let port = free_port()?;
        let ours = Server(
            Command::new(root().join("target/release/invites"))
                .args(["mock", "--listen", &format!("127.0.0.1:{port}"), "--spec"])
                .arg(&doc)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let ours_start = wait_listening(port, Duration::from_secs(30))?;
        println!(
            "our mock listening after {} ms; loading it",
            ours_start.as_millis()
        );
        let ours_load = wrk(port, &script)?;
        let ours_rss = peak_rss_mib(ours.0.id()).unwrap_or(f64::NAN);
        drop(ours);
        let port = free_port()?;
        let prism_server = Server(
            Command::new(&prism)
                .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
                .arg(&doc)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let prism_start = wait_listening(port, Duration::from_secs(180))?;
        println!(
            "Prism listening after {} ms; loading it",
            prism_start.as_millis()
        );
        let prism_load = wrk(port, &script)?;
        let prism_rss = peak_rss_mib(prism_server.0.id()).unwrap_or(f64::NAN);
        drop(prism_server);
        rows.push(Row {
            name,
            ours: (ours_start, ours_load, ours_rss),
            prism: (prism_start, prism_load, prism_rss),
            target,
        });
    }
    println!(
        "\n{:<11} {:>8} {:>7} {:>7} {:>8} {:>7} | {:>9} {:>7} {:>7} {:>8} {:>7} | ratio",
        "document",
        "ours rps",
        "p50 ms",
        "p99 ms",
        "start ms",
        "RSS MiB",
        "Prism rps",
        "p50 ms",
        "p99 ms",
        "start ms",
        "RSS MiB",
    );
    for Row {
        name,
        ours: (os, ol, orss),
        prism: (ps, pl, prss),
        target,
    } in &rows
    {
        let ratio = ol.rps / pl.rps.max(1.0);
        println!(
            "{name:<11} {:>8.0} {:>7.2} {:>7.2} {:>8} {:>7.1} | {:>9.0} {:>7.2} {:>7.2} {:>8} {:>7.1} | {ratio:.1}x (target {target}x{})",
            ol.rps, ol.p50_ms, ol.p99_ms, os.as_millis(), orss, pl.rps, pl.p50_ms, pl.p99_ms, ps.as_millis(), prss,
            if ratio >= *target { ", met" } else { ", NOT met" }
        );
    }
    if let [small, large] = &rows[..] {
        let (start, load, rss) = &large.ours;
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "\nour mock on the full document: listening after {} ms (target < 500 ms: {}), peak RSS {rss:.1} MiB (target < 50: {}), {:.0}% of the small document's req/s",
            start.as_millis(),
            verdict(start.as_millis() < 500),
            verdict(*rss < 50.0),
            100.0 * load.rps / small.ours.1.rps.max(1.0),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_durations_parse_to_milliseconds() {
        assert_eq!(ms("636.00us"), Some(0.636));
        assert_eq!(ms("3.96ms"), Some(3.96));
        assert_eq!(ms("1.20s"), Some(1200.0));
        assert_eq!(ms("x"), None);
    }

    #[test]
    fn peak_rss_reads_this_process() {
        let mib = peak_rss_mib(std::process::id()).unwrap();
        assert!(mib > 0.5 && mib < 4096.0, "{mib}");
    }
}
