//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/` (cargo-fuzz 0.13.2, libFuzzer,
//! no sanitizer, so the stable toolchain builds them), each run for a bounded time on a working
//! copy of its committed seed corpus. Fails on any crash, hang or memory blow-up, naming the
//! reproducer file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::root;

/// The targets, in the order they run (each a `[[bin]]` of `fuzz/Cargo.toml` with a seed corpus
/// in `fuzz/corpus/<target>/`; a test keeps the three lists equal).
pub const TARGETS: [&str; 5] = [
    "digest_authorization",
    "community_users",
    "contract_load",
    "contract_request",
    "schema_example",
];

/// The cargo-fuzz version installed when missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// An input slower than this is a finding (libFuzzer's `-timeout=`).
const INPUT_TIMEOUT_SECS: u64 = 5;

/// A run using more memory than this is a finding (libFuzzer's `-rss_limit_mb=`).
const RSS_LIMIT_MB: u64 = 512;

/// How long the build may take: a cold build on 2 cores, with room for a busy machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u64,
    /// Only these targets (all when empty).
    pub targets: Vec<String>,
}

/// What one run of a target reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub runs: u64,
    pub execs_per_sec: u64,
    /// Coverage when the seeds were loaded (`INITED cov:`) and at the end.
    pub cov_start: u64,
    pub cov: u64,
    /// libFuzzer's features (edges, counters, comparisons) at the end.
    pub ft: u64,
    pub new_units: u64,
    pub peak_rss_mb: u64,
}

/// Reads libFuzzer's output: the last status line (`#N DONE cov: .. ft: ..`), the `INITED`
/// line and the final statistics of `-print_final_stats=1`.
pub fn parse_stats(log: &str) -> Stats {
    let field = |line: &str, name: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == name)?;
        words.next()?.parse().ok()
    };
    let stat = |name: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    // Status lines: `#<runs>\t<event> cov: .. ft: ..`.
    let status_line = |l: &&str| l.starts_with('#') && l.split_whitespace().any(|w| w == "cov:");
    let status = log.lines().rev().find(status_line).unwrap_or("");
    let inited = log
        .lines()
        .filter(status_line)
        .find(|l| l.split_whitespace().nth(1) == Some("INITED"))
        .unwrap_or("");
    Stats {
        runs: stat("stat::number_of_executed_units:"),
        execs_per_sec: stat("stat::average_exec_per_sec:"),
        cov_start: field(inited, "cov:").unwrap_or(0),
        cov: field(status, "cov:").unwrap_or(0),
        ft: field(status, "ft:").unwrap_or(0),
        new_units: stat("stat::new_units_added:"),
        peak_rss_mb: stat("stat::peak_rss_mb:"),
    }
}

/// cargo-fuzz, installed with `cargo install` when missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let Some(version) = installed {
        println!("using {version}");
        return Ok(());
    }
    println!("installing cargo-fuzz {CARGO_FUZZ_VERSION} with cargo install");
    crate::run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))?;
    Ok(())
}

/// The host's target triple, which names the folder cargo-fuzz builds into.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

fn fuzz_dir() -> PathBuf {
    root().join("target/fuzz")
}

/// Waits for a child, killing it past `timeout`.
fn wait_bounded(
    child: &mut std::process::Child,
    timeout: Duration,
    shown: &str,
) -> Result<std::process::ExitStatus> {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if began.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Builds every target once (cargo's progress shown), in `target/fuzz`.
fn build() -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.args(["fuzz", "build", "--fuzz-dir", "fuzz", "--sanitizer", "none"])
        .arg("--target-dir")
        .arg(fuzz_dir())
        .current_dir(root())
        .stdin(Stdio::null());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
    let status = wait_bounded(&mut child, BUILD_TIMEOUT, &shown)?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Files and bytes in a folder.
fn corpus_size(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// A working corpus with more files than this is minimized (libFuzzer's `-merge=1`) before a run,
/// so that loading it does not eat the run's time as runs add to it.
const MERGE_ABOVE_FILES: usize = 1000;

/// The working corpus of a target: what earlier runs found, plus every committed seed (the
/// committed corpus itself is never written to). Past [`MERGE_ABOVE_FILES`] files it is first
/// reduced to the inputs that keep its coverage.
fn working_corpus(binary: &Path, target: &str) -> Result<PathBuf> {
    let seeds = root().join("fuzz/corpus").join(target);
    let work = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&work)?;
    let (files, _) = corpus_size(&work)?;
    if files > MERGE_ABOVE_FILES {
        let merged = fuzz_dir().join("corpus").join(format!("{target}.merged"));
        let _ = std::fs::remove_dir_all(&merged);
        std::fs::create_dir_all(&merged)?;
        let mut cmd = Command::new(binary);
        cmd.arg("-merge=1")
            .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
            .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
            .arg(&merged)
            .arg(&work)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let shown = format!("{target} -merge=1");
        let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
        let status = wait_bounded(&mut child, Duration::from_secs(300), &shown)?;
        if !status.success() {
            bail!("{shown} failed with {status}");
        }
        std::fs::remove_dir_all(&work)?;
        std::fs::rename(&merged, &work)?;
        println!(
            "{target}: working corpus of {files} files minimized to {}",
            corpus_size(&work)?.0
        );
    }
    for entry in
        std::fs::read_dir(&seeds).with_context(|| format!("reading {}", seeds.display()))?
    {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let copy = work.join(name);
        if !copy.exists() {
            std::fs::copy(&path, &copy)?;
        }
    }
    Ok(work)
}

/// What libFuzzer left in the artifacts folder: the reproducers of this run.
fn reproducers(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                ["crash-", "timeout-", "oom-", "leak-"]
                    .iter()
                    .any(|k| n.starts_with(k))
            })
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The lines of libFuzzer's output that say what went wrong: the panic and its message, the
/// error (deadly signal, timeout, out-of-memory) and its summary.
pub fn what_failed(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" panicked at ") {
            out.push(*line);
            out.extend(lines.get(i + 1));
        } else if line.contains("ERROR: libFuzzer")
            || line.starts_with("ALARM:")
            || line.starts_with("SUMMARY:")
        {
            out.push(*line);
        }
    }
    if out.is_empty() {
        // Nothing recognised: the end of the log, without the status lines.
        let rest: Vec<&str> = lines.into_iter().filter(|l| !l.starts_with('#')).collect();
        out = rest[rest.len().saturating_sub(15)..].to_vec();
    }
    out.join("\n")
}

/// One target for `seconds`: its statistics, or an error naming the reproducer.
fn run_target(binary: &Path, target: &str, seconds: u64) -> Result<Stats> {
    let corpus = working_corpus(binary, target)?;
    let before = corpus_size(&corpus)?;
    let artifacts = fuzz_dir().join("artifacts").join(target);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts)?;
    let logs = fuzz_dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = File::create(&log_path)?;
    let mut cmd = Command::new(binary);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let shown = format!("{target} (libFuzzer)");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // libFuzzer stops itself; the margin covers loading a large corpus and the final merge.
    let status = wait_bounded(&mut child, Duration::from_secs(seconds + 120), &shown)?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let found = reproducers(&artifacts)?;
    if !status.success() || !found.is_empty() {
        let tail = what_failed(&text);
        let named = match found.first() {
            Some(file) => format!(
                "reproducer {}; run it again with `cargo fuzz run --fuzz-dir fuzz --sanitizer none --target-dir target/fuzz {target} {}`",
                file.display(),
                file.strip_prefix(root()).unwrap_or(file).display()
            ),
            None => format!("no reproducer written; the log is {}", log_path.display()),
        };
        bail!("{target} failed ({status}): {named}\n{tail}");
    }
    let mut stats = parse_stats(&text);
    let after = corpus_size(&corpus)?;
    stats.new_units = (after.0.saturating_sub(before.0)) as u64;
    println!(
        "{target}: {} runs, {} execs/s, cov {} -> {}, ft {}, corpus {} -> {} files ({} KB), peak RSS {} MB",
        stats.runs,
        stats.execs_per_sec,
        stats.cov_start,
        stats.cov,
        stats.ft,
        before.0,
        after.0,
        after.1 / 1024,
        stats.peak_rss_mb
    );
    Ok(stats)
}

/// `cargo xtask fuzz`: installs cargo-fuzz when missing, builds every target once, then runs the
/// chosen ones for `seconds` each.
pub fn fuzz(opts: &Options) -> Result<()> {
    for t in &opts.targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("no fuzz target {t}; the targets are {}", TARGETS.join(", "));
        }
    }
    let chosen: Vec<&str> = TARGETS
        .into_iter()
        .filter(|t| opts.targets.is_empty() || opts.targets.iter().any(|c| c == t))
        .collect();
    ensure_cargo_fuzz()?;
    println!(
        "building the fuzz targets (cargo fuzz build --sanitizer none, into {})",
        fuzz_dir().display()
    );
    let began = Instant::now();
    build()?;
    println!("built in {:.1} s", began.elapsed().as_secs_f64());
    let bin = fuzz_dir().join(host_triple()?).join("release");
    let mut failed = Vec::new();
    for target in &chosen {
        println!(
            "fuzzing {target} for {} s (timeout {INPUT_TIMEOUT_SECS} s per input, {RSS_LIMIT_MB} MB)",
            opts.seconds
        );
        if let Err(e) = run_target(&bin.join(target), target, opts.seconds) {
            println!("{target}: FAILED: {e:#}");
            failed.push(target.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    println!(
        "fuzzed {} target(s) for {} s each: nothing found",
        chosen.len(),
        opts.seconds
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_output_is_read() {
        let log = "\
INFO: seed corpus: files: 65 min: 29b max: 298b total: 16988b rss: 39Mb
#66\tINITED cov: 325 ft: 476 corp: 10/1605b exec/s: 0 rss: 39Mb
#4096\tpulse  cov: 480 ft: 1000 corp: 300/90Kb lim: 4096 exec/s: 2048 rss: 39Mb
#6195171\tDONE   cov: 501 ft: 1165 corp: 424/132Kb lim: 4096 exec/s: 199844 rss: 39Mb
\"usernam\" # Uses: 1654
Done 6195171 runs in 31 second(s)
stat::number_of_executed_units: 6195171
stat::average_exec_per_sec:     199844
stat::new_units_added:          4693
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              39
";
        assert_eq!(
            parse_stats(log),
            Stats {
                runs: 6_195_171,
                execs_per_sec: 199_844,
                cov_start: 325,
                cov: 501,
                ft: 1165,
                new_units: 4693,
                peak_rss_mb: 39,
            }
        );
        assert_eq!(parse_stats(""), Stats::default());
    }

    #[test]
    fn a_failure_is_shown_by_its_panic_and_libfuzzers_verdict() {
        let log = "\
#257\tINITED cov: 900 ft: 3000 corp: 20/1Kb exec/s: 0 rss: 30Mb
thread '<unnamed>' (32428) panicked at fuzz_targets/community_users.rs:32:5:
planted
stack backtrace:
   0: __rustc::rust_begin_unwind
==32428== ERROR: libFuzzer: deadly signal
SUMMARY: libFuzzer: deadly signal
";
        assert_eq!(
            what_failed(log),
            "thread '<unnamed>' (32428) panicked at fuzz_targets/community_users.rs:32:5:\n\
             planted\n\
             ==32428== ERROR: libFuzzer: deadly signal\n\
             SUMMARY: libFuzzer: deadly signal"
        );
        assert_eq!(what_failed("INFO: x\n#1 cov: 1\nkilled"), "INFO: x\nkilled");
    }

    /// Every target is a binary of fuzz/Cargo.toml with a committed seed corpus, and nothing else
    /// is: a target added there without being listed here would never run.
    #[test]
    fn the_targets_are_those_of_fuzz_cargo_toml_and_each_has_seeds() {
        let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
        let mut bins: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|b| {
                b.lines()
                    .find_map(|l| l.strip_prefix("name = "))
                    .map(|n| n.trim_matches('"'))
            })
            .collect();
        bins.sort();
        let mut listed = TARGETS.to_vec();
        listed.sort();
        assert_eq!(bins, listed);
        let mut corpora: Vec<String> = std::fs::read_dir(root().join("fuzz/corpus"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        corpora.sort();
        assert_eq!(corpora, listed);
        for t in TARGETS {
            let (files, bytes) = corpus_size(&root().join("fuzz/corpus").join(t)).unwrap();
            assert!(files > 0, "{t} has no seeds");
            assert!(
                bytes / (files as u64) < 8 * 1024,
                "{t}: seeds are small files"
            );
        }
    }
}
