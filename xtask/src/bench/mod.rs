//! `cargo xtask bench`: `mock` (our mock against Stoplight Prism, `mock.rs`), `server` (the
//! service under load against a bare poem route, `server.rs`, on SQLite or, `postgres.rs`, on
//! PostgreSQL with one and two replicas; its scenarios in `scenario.rs` and its report in
//! `report.rs`) and `hostile` (normal requests beside slow and malformed clients, `hostile.rs`).
//! What they share is here: the servers they start and stop, free loopback ports, peak memory,
//! and the sections of `docs/benchmarks.md` each keeps.

mod cpu;
mod hostile;
mod mock;
mod postgres;
mod report;
mod scenario;
mod server;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

pub use hostile::hostile;
pub use mock::mock;
pub use server::{server, Database};

/// The markers around a section of docs/benchmarks.md that one command writes and the others
/// keep when they rewrite the rest.
pub(super) struct Marks {
    pub(super) begin: &'static str,
    pub(super) end: &'static str,
}

/// `cargo xtask bench mock`'s section.
pub(super) const MOCK: Marks = Marks {
    begin: "<!-- cargo xtask bench mock: begin -->",
    end: "<!-- cargo xtask bench mock: end -->",
};

/// `cargo xtask bench hostile`'s section.
pub(super) const HOSTILE: Marks = Marks {
    begin: "<!-- cargo xtask bench hostile: begin -->",
    end: "<!-- cargo xtask bench hostile: end -->",
};

/// `cargo xtask bench server --database postgres`'s section.
pub(super) const POSTGRES: Marks = Marks {
    begin: "<!-- cargo xtask bench server --database postgres: begin -->",
    end: "<!-- cargo xtask bench server --database postgres: end -->",
};

/// The section of a benchmarks file between `marks`, markers included, if it has one.
pub(super) fn section<'a>(text: &'a str, marks: &Marks) -> Option<&'a str> {
    let start = text.find(marks.begin)?;
    let end = text[start..].find(marks.end)? + start + marks.end.len();
    Some(&text[start..end])
}

/// `text` with its section between `marks` replaced by `new` (appended when it has none).
pub(super) fn with_section(text: &str, marks: &Marks, new: &str) -> String {
    match section(text, marks) {
        Some(old) => text.replacen(old, new, 1),
        None => format!("{}\n\n{new}\n", text.trim_end()),
    }
}

/// `report` (a new docs/benchmarks.md) with the sections of `old` that other commands wrote.
pub(super) fn keeping_sections(report: String, old: &str, others: &[&Marks]) -> String {
    others
        .iter()
        .fold(report, |report, marks| match section(old, marks) {
            Some(kept) => with_section(&report, marks, kept),
            None => report,
        })
}

/// A server process of a benchmark, killed when dropped.
pub(super) struct Server(pub(super) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub(super) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on the loopback `port`; how long it took.
pub(super) fn wait_listening(port: u16, limit: Duration) -> Result<Duration> {
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

/// Waits until the server on the loopback `port` answers `GET /ready` 200; how long it took.
pub(super) fn wait_ready(port: u16, limit: Duration) -> Result<Duration> {
    wait_ready_while(port, limit, || Ok(()))
}

/// [`wait_ready`] of the server `child` runs, which gives up as soon as it has exited, with its
/// exit status and the end of its log (`log`, where its standard error goes): a server that
/// refuses to start (a database migrated by a newer build, a flag it does not know) says why at
/// once instead of after the wait.
pub(super) fn wait_ready_of(
    child: &mut Child,
    log: &Path,
    port: u16,
    limit: Duration,
) -> Result<Duration> {
    let mut exited = None;
    let waited = wait_ready_while(port, limit, || {
        if let Some(status) = child.try_wait()? {
            exited = Some(status);
            bail!("exited");
        }
        Ok(())
    });
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    match (waited, exited) {
        (Ok(took), _) => Ok(took),
        (Err(_), Some(status)) => bail!(
            "the server for port {port} exited ({status}) before answering /ready; the end of \
             its log, {}:\n{tail}",
            log.display()
        ),
        (Err(e), None) => bail!("{e}; the end of its log, {}:\n{tail}", log.display()),
    }
}

/// [`wait_ready`], calling `running` before each try, which ends the wait with its error.
fn wait_ready_while(
    port: u16,
    limit: Duration,
    mut running: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while started.elapsed() < limit {
        running()?;
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            let _ = s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 16];
            if s.read(&mut head)
                .is_ok_and(|n| n >= 12 && &head[9..12] == b"200")
            {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("the server on port {port} did not answer /ready within {limit:?}")
}

/// Peak resident set size (VmHWM) of a running process, in MiB.
pub(super) fn peak_rss_mib(pid: u32) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that exits before it answers is reported at once, with its status and log.
    #[test]
    fn a_server_that_exits_is_reported_with_the_end_of_its_log() {
        let log = std::env::temp_dir().join(format!("xtask-wait-ready-{}.log", std::process::id()));
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "echo 'error: the database was migrated by a newer version' >&2; exit 3",
            ])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let port = free_port().unwrap();
        let started = Instant::now();
        let err = wait_ready_of(&mut child, &log, port, Duration::from_secs(20))
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.contains("exited (exit status: 3)"), "{err}");
        assert!(err.contains("migrated by a newer version"), "{err}");
        let _ = std::fs::remove_file(&log);
    }

    #[test]
    fn sections_are_replaced_and_kept() {
        let section_of =
            |marks: &Marks, what: &str| format!("{}\n{what}\n{}", marks.begin, marks.end);
        let mock = section_of(&MOCK, "mock v1");
        let doc = with_section("# Benchmarks\nserver\n", &MOCK, &mock);
        assert_eq!(section(&doc, &MOCK), Some(mock.as_str()));
        let doc = with_section(&doc, &HOSTILE, &section_of(&HOSTILE, "hostile v1"));
        let doc = with_section(&doc, &MOCK, &section_of(&MOCK, "mock v2"));
        assert!(doc.contains("mock v2") && !doc.contains("mock v1") && doc.contains("server"));
        assert!(doc.contains("hostile v1"));
        // A new server report keeps both.
        let new = keeping_sections("# Benchmarks\nserver v2\n".into(), &doc, &[&MOCK, &HOSTILE]);
        assert!(new.contains("server v2") && new.contains("mock v2") && new.contains("hostile v1"));
        assert!(!new.contains("server\n"));
    }

    #[test]
    fn each_section_is_replaced_alone() {
        let mock = format!("{}\nmock\n{}", MOCK.begin, MOCK.end);
        let pg = format!("{}\npg v1\n{}", POSTGRES.begin, POSTGRES.end);
        let doc = with_section(
            &with_section("# Benchmarks\n", &MOCK, &mock),
            &POSTGRES,
            &pg,
        );
        let newer = format!("{}\npg v2\n{}", POSTGRES.begin, POSTGRES.end);
        let doc = with_section(&doc, &POSTGRES, &newer);
        assert!(doc.contains("pg v2") && !doc.contains("pg v1"), "{doc}");
        assert_eq!(section(&doc, &MOCK), Some(mock.as_str()));
        assert_eq!(doc.matches(POSTGRES.begin).count(), 1);
    }

    #[test]
    fn peak_rss_reads_this_process() {
        let mib = peak_rss_mib(std::process::id()).unwrap();
        assert!(mib > 0.5 && mib < 4096.0, "{mib}");
    }
}
