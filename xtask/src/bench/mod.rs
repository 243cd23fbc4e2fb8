//! `cargo xtask bench`: `mock` (our mock against Stoplight Prism, `mock.rs`) and `server` (the
//! service under load against a bare poem route, `server.rs`, its scenarios in `scenario.rs`
//! and its report in `report.rs`). What both use is here: the servers they start and stop, free
//! loopback ports, peak memory, and the two sections of `docs/benchmarks.md` each keeps.

mod mock;
mod report;
mod scenario;
mod server;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

pub use mock::mock;
pub use server::server;

/// The markers around `cargo xtask bench mock`'s section of docs/benchmarks.md, which
/// `cargo xtask bench server` keeps when it rewrites the rest.
pub(super) const MOCK_BEGIN: &str = "<!-- cargo xtask bench mock: begin -->";
pub(super) const MOCK_END: &str = "<!-- cargo xtask bench mock: end -->";

/// The mock section of a benchmarks file, markers included, if it has one.
pub(super) fn mock_section(text: &str) -> Option<&str> {
    let start = text.find(MOCK_BEGIN)?;
    let end = text[start..].find(MOCK_END)? + start + MOCK_END.len();
    Some(&text[start..end])
}

/// `text` with its mock section replaced by `section` (appended when it has none).
pub(super) fn with_mock_section(text: &str, section: &str) -> String {
    match mock_section(text) {
        Some(old) => text.replacen(old, section, 1),
        None => format!("{}\n\n{section}\n", text.trim_end()),
    }
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

    #[test]
    fn the_mock_section_is_replaced_and_kept() {
        let section = format!("{MOCK_BEGIN}\nmock v1\n{MOCK_END}");
        let doc = with_mock_section("# Benchmarks\nserver\n", &section);
        assert_eq!(mock_section(&doc), Some(section.as_str()));
        let newer = format!("{MOCK_BEGIN}\nmock v2\n{MOCK_END}");
        let doc = with_mock_section(&doc, &newer);
        assert!(doc.contains("mock v2") && !doc.contains("mock v1") && doc.contains("server"));
    }

    #[test]
    fn peak_rss_reads_this_process() {
        let mib = peak_rss_mib(std::process::id()).unwrap();
        assert!(mib > 0.5 && mib < 4096.0, "{mib}");
    }
}
