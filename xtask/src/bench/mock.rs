//! `cargo xtask bench mock`: the same load against our mock and Stoplight Prism serving the same
//! documents, in one run (our document, the full Atlas document, GitHub's and Stripe's); then our
//! mock's time to listen and peak memory on every document of `shared/realworld-openapi/`. Writes
//! its section of `docs/benchmarks.md`.
//!
//! Load: wrk (Debian's), 2 threads, 32 connections, 10 s, one documented request per document,
//! loopback only. Prism is installed under target/bench/prism with npm when missing; wrk with
//! apt-get when missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{free_port, peak_rss_mib, wait_listening, with_section, Server, MOCK};
use crate::{root, run};

fn ensure_tools(dir: &Path) -> Result<PathBuf> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("installing wrk (apt-get)");
        crate::tools::apt_install(&["wrk"])?;
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

fn wrk(url: &str, script: &Path) -> Result<Load> {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-s"])
        .arg(script)
        .arg(url)
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
    if text.contains("Non-2xx or 3xx responses") {
        bail!("{url} answered errors under load:\n{text}");
    }
    Ok(Load {
        rps,
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// A document measured against Prism, with the documented request sent to it.
struct Measured {
    name: &'static str,
    path: PathBuf,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// How many times Prism's req/s ours must reach.
    ratio: f64,
}

/// How one server did: time to listen, load, peak memory; None when it never listened.
type Outcome = Option<(Duration, Load, f64)>;

/// Starts a server (`cmd`, listening on `port`), loads it with `script` on `target`, stops it.
fn serve_and_load(
    mut cmd: Command,
    port: u16,
    target: &str,
    script: &Path,
    limit: Duration,
) -> Result<Outcome> {
    let server = Server(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    let started = match wait_listening(port, limit) {
        Ok(d) => d,
        Err(_) => {
            println!("  did not listen within {} s", limit.as_secs());
            return Ok(None);
        }
    };
    println!("  listening after {} ms; loading it", started.as_millis());
    let load = wrk(&format!("http://127.0.0.1:{port}{target}"), script)?;
    let rss = peak_rss_mib(server.0.id()).unwrap_or(f64::NAN);
    println!(
        "  {:.0} req/s, p99 {:.2} ms, peak RSS {rss:.1} MiB",
        load.rps, load.p99_ms
    );
    Ok(Some((started, load, rss)))
}

/// Every document of `shared/realworld-openapi/` (DigitalOcean's from its root file).
fn realworld_documents() -> Result<Vec<PathBuf>> {
    let dir = root().join("../shared/realworld-openapi");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .collect();
    files.sort();
    files.push(dir.join("digitalocean/specification/DigitalOcean-public.v2.yaml"));
    Ok(files)
}

pub fn mock() -> Result<()> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let prism = ensure_tools(&dir)?;
    run(Command::new("cargo").args(["build", "--release", "-p", "invites"]))?;
    let ours_bin = root().join("target/release/invites");
    let shared = root().join("../shared");
    let delete = "/api/atlas/v2/orgs/32b6e34b3d91647abb20e7b8/invites/32b6e34b3d91647abb20e7b8";
    let documents = [
        Measured {
            name: "our document",
            path: root().join("openapi/invites.json"),
            method: "DELETE",
            target: delete,
            headers: &[("Authorization", "Bearer bench")],
            // Our own small document: Prism is fastest there (its earlier target here).
            ratio: 20.0,
        },
        Measured {
            name: "full Atlas",
            path: shared.join("reference/atlas-v2-full.openapi.json"),
            method: "DELETE",
            target: delete,
            headers: &[("Authorization", "Bearer bench")],
            ratio: 100.0,
        },
        Measured {
            name: "GitHub (YAML)",
            path: shared.join("realworld-openapi/github.yaml"),
            method: "GET",
            target: "/users/octocat",
            headers: &[],
            ratio: 100.0,
        },
        Measured {
            name: "Stripe (YAML)",
            path: shared.join("realworld-openapi/stripe.yaml"),
            method: "GET",
            target: "/v1/customers/cus_123",
            headers: &[("Authorization", "Bearer sk_test_123")],
            ratio: 100.0,
        },
    ];
    let mut rows = Vec::new();
    for d in &documents {
        println!(
            "\n== {}: {} {} ({})",
            d.name,
            d.method,
            d.target,
            d.path.display()
        );
        let script = dir.join("request.lua");
        let mut lua = format!("wrk.method = \"{}\"\n", d.method);
        for (k, v) in d.headers {
            lua.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
        }
        std::fs::write(&script, lua)?;
        println!("our mock:");
        let port = free_port()?;
        let mut cmd = Command::new(&ours_bin);
        cmd.args(["mock", "--listen", &format!("127.0.0.1:{port}"), "--spec"])
            .arg(&d.path);
        let ours = serve_and_load(cmd, port, d.target, &script, Duration::from_secs(30))?
            .with_context(|| format!("our mock did not listen on {}", d.path.display()))?;
        println!("Prism:");
        let port = free_port()?;
        let mut cmd = Command::new(&prism);
        cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(&d.path);
        let theirs = serve_and_load(cmd, port, d.target, &script, Duration::from_secs(180))?;
        rows.push((
            d.name,
            format!("{} {}", d.method, d.target),
            d.ratio,
            ours,
            theirs,
        ));
    }
    println!(
        "\n== our mock on every document of shared/realworld-openapi/: time to listen, peak memory"
    );
    let mut starts = Vec::new();
    for doc in realworld_documents()? {
        let port = free_port()?;
        let server = Server(
            Command::new(&ours_bin)
                .args(["mock", "--listen", &format!("127.0.0.1:{port}"), "--spec"])
                .arg(&doc)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let started = wait_listening(port, Duration::from_secs(30))
            .with_context(|| format!("our mock did not listen on {}", doc.display()))?;
        let rss = peak_rss_mib(server.0.id()).unwrap_or(f64::NAN);
        let name = doc
            .strip_prefix(shared.join("realworld-openapi"))
            .unwrap_or(&doc)
            .display()
            .to_string();
        println!("  {name}: {} ms, {rss:.1} MiB", started.as_millis());
        starts.push((name, started, rss));
    }
    let section = mock_report(&rows, &starts);
    println!("\n{section}");
    let path = root().join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, with_section(&existing, &MOCK, &section))?;
    println!("written: the mock section of {}", path.display());
    Ok(())
}

/// The mock section of docs/benchmarks.md: the table against Prism, the start-up table, targets.
/// A measured row: document, request, the ratio to reach, our mock, Prism.
type Row<'a> = (&'a str, String, f64, (Duration, Load, f64), Outcome);

fn mock_report(rows: &[Row], starts: &[(String, Duration, f64)]) -> String {
    let (mock_begin, mock_end) = (MOCK.begin, MOCK.end);
    let mut out = format!(
        "{mock_begin}\n## The mock against Stoplight Prism\n\nProduced by `cargo xtask bench mock` \
         (release build; wrk 2 threads, 32 connections, 10 s, one documented request per document; \
         Prism 5 at its default logging; loopback, 2 cores).\n\n\
         | document | request | ours req/s | p50 ms | p99 ms | listening after | peak RSS | Prism req/s | p50 ms | p99 ms | listening after | peak RSS | ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut ratios = Vec::new();
    for (name, request, wanted, (os, ol, orss), theirs) in rows {
        let (prism, ratio) = match theirs {
            Some((ps, pl, prss)) => {
                let r = ol.rps / pl.rps.max(0.001);
                ratios.push((name.to_string(), *wanted, Some(r)));
                (
                    format!(
                        "{:.0} | {:.2} | {:.2} | {} ms | {prss:.1} MiB",
                        pl.rps,
                        pl.p50_ms,
                        pl.p99_ms,
                        ps.as_millis()
                    ),
                    format!("{r:.0}x"),
                )
            }
            None => {
                ratios.push((name.to_string(), *wanted, None));
                (
                    "- | - | - | never (180 s) | -".to_owned(),
                    "Prism never served".to_owned(),
                )
            }
        };
        out.push_str(&format!(
            "| {name} | `{request}` | {:.0} | {:.2} | {:.2} | {} ms | {orss:.1} MiB | {prism} | {ratio} |\n",
            ol.rps,
            ol.p50_ms,
            ol.p99_ms,
            os.as_millis()
        ));
    }
    out.push_str("\nOur mock's time to listen and peak memory on every document of `shared/realworld-openapi/`:\n\n| document | listening after | peak RSS |\n|---|---|---|\n");
    for (name, d, rss) in starts {
        out.push_str(&format!(
            "| {name} | {} ms | {rss:.1} MiB |\n",
            d.as_millis()
        ));
    }
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    out.push_str("\nTargets:\n\n");
    for (name, wanted, r) in &ratios {
        match r {
            Some(r) => out.push_str(&format!(
                "- {name}: at least {wanted:.0} times Prism's req/s: {r:.0}x, {}.\n",
                verdict(r >= wanted)
            )),
            None => out.push_str(&format!(
                "- {name}: at least {wanted:.0} times Prism's req/s: Prism never finished starting, met.\n"
            )),
        }
    }
    let slowest = starts.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
    let largest = starts.iter().map(|(_, _, r)| *r).fold(0.0, f64::max);
    out.push_str(&format!(
        "- Listening in under 0.5 s on every document: slowest {} ms, {}.\n- Peak RSS under 50 MB on every document: largest {largest:.1} MiB, {}.\n{mock_end}",
        slowest.as_millis(),
        verdict(slowest < Duration::from_millis(500)),
        verdict(largest < 50.0 / 1.048_576),
    ));
    out
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
}
