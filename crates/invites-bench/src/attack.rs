//! `invites-bench attack`: hostile clients over raw TCP for `cargo xtask bench hostile`, run
//! beside `load` to see what they cost the normal requests. Each of N connections repeats its
//! attack until the time is up, opening a new connection whenever the server closes one, and
//! the process prints a JSON line of counts every half second and at the end: connections
//! opened, closed by the server, failed connects, and the statuses of the answers it got.
//!
//! - `slowloris`: a request head dribbled one byte a second, never finished;
//! - `idle`: one `GET /health` per connection, then nothing (an idle keep-alive);
//! - `slow-body`: an authenticated `createOrgInvite` whose body stops after 10 of its 1,000 bytes;
//! - `header-flood`: back to back, a request of 150 header fields, then one of a 100 KiB field.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Slowloris,
    Idle,
    SlowBody,
    HeaderFlood,
}

#[derive(clap::Args)]
pub struct AttackArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    /// The server, `127.0.0.1:PORT`.
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// The organization whose invitations `slow-body` posts to.
    #[arg(long, default_value = "")]
    org: String,
    /// Service-account credentials of `slow-body` (its token is fetched first).
    #[arg(long, default_value = "")]
    client_id: String,
    #[arg(long, default_value = "")]
    client_secret: String,
}

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    closed_by_server: AtomicU64,
    connect_errors: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// Connections through their first attack step, for the "ready" line.
    started: AtomicUsize,
}

impl Counts {
    fn answer(&self, bytes: &[u8]) {
        if let Some(status) = status_of(bytes) {
            *self
                .statuses
                .lock()
                .expect("not poisoned")
                .entry(status)
                .or_default() += 1;
        }
    }
}

/// The status of an HTTP/1.1 answer's first bytes.
fn status_of(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes.get(9..12)?).ok()?.parse().ok()
}

/// Reads until the server closes the connection (or `end`); what it sent.
async fn until_closed(stream: &mut TcpStream, end: Instant) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (all, true),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return (all, false),
        }
    }
}

async fn connect(addr: &str, counts: &Counts, end: Instant) -> Option<TcpStream> {
    while Instant::now() < end {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                counts.opened.fetch_add(1, Ordering::Relaxed);
                return Some(s);
            }
            Err(_) => {
                counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    None
}

/// One hostile connection after another until `end`.
async fn attacker(
    args: Arc<AttackArgs>,
    request: Arc<Vec<Vec<u8>>>,
    counts: Arc<Counts>,
    end: Instant,
) {
    let mut first = true;
    let mut round = 0usize;
    while Instant::now() < end {
        let Some(mut stream) = connect(&args.addr, &counts, end).await else {
            break;
        };
        let closed = match args.kind {
            Kind::Slowloris => {
                let head = &request[0];
                let mut closed = false;
                let mut sent = 0;
                while Instant::now() < end {
                    // The head, then one more byte of a header value that never ends.
                    let byte = head.get(sent).copied().unwrap_or(b'a');
                    sent += 1;
                    if stream.write_all(&[byte]).await.is_err() {
                        closed = true;
                        break;
                    }
                    if first {
                        first = false;
                        counts.started.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut buf = [0u8; 256];
                    match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
                    {
                        Ok(Ok(0) | Err(_)) => {
                            closed = true;
                            break;
                        }
                        Ok(Ok(n)) => counts.answer(&buf[..n]),
                        Err(_) => {}
                    }
                }
                closed
            }
            Kind::Idle | Kind::SlowBody | Kind::HeaderFlood => {
                let which = &request[round % request.len()];
                round += 1;
                if stream.write_all(which).await.is_err() {
                    true
                } else {
                    if first {
                        first = false;
                        counts.started.fetch_add(1, Ordering::Relaxed);
                    }
                    let (bytes, closed) = until_closed(&mut stream, end).await;
                    counts.answer(&bytes);
                    closed
                }
            }
        };
        if closed {
            counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The request bytes each attacker sends, per kind.
fn requests(args: &AttackArgs, token: &str) -> Vec<Vec<u8>> {
    let host = &args.addr;
    match args.kind {
        Kind::Slowloris => {
            vec![format!("GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").into_bytes()]
        }
        Kind::Idle => vec![format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()],
        Kind::SlowBody => vec![format!(
            "POST /api/atlas/v2/orgs/{}/invites HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"username\"",
            args.org
        )
        .into_bytes()],
        Kind::HeaderFlood => {
            let mut many = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n");
            for i in 0..150 {
                many.push_str(&format!("X-Flood-{i}: {i}\r\n"));
            }
            many.push_str("\r\n");
            let huge = format!(
                "GET /health HTTP/1.1\r\nHost: {host}\r\nX-Huge: {}\r\n\r\n",
                "a".repeat(100 * 1024)
            );
            vec![many.into_bytes(), huge.into_bytes()]
        }
    }
}

pub async fn attack(args: AttackArgs) -> Result<()> {
    let token = if args.kind == Kind::SlowBody {
        crate::fetch_token(&args.addr, &args.client_id, &args.client_secret)
            .await
            .context("the token of slow-body")?
    } else {
        String::new()
    };
    let request = Arc::new(requests(&args, &token));
    let args = Arc::new(args);
    let counts = Arc::new(Counts::default());
    let end = Instant::now() + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        tasks.push(tokio::spawn(attacker(
            Arc::clone(&args),
            Arc::clone(&request),
            Arc::clone(&counts),
            end,
        )));
    }
    // Ready once every attacker has made its first move (or 30 s passed); then the counts so
    // far every half second, so a caller can stop the attack when it has what it measured.
    let waited = Instant::now();
    while counts.started.load(Ordering::Relaxed) < args.connections
        && waited.elapsed() < Duration::from_secs(30)
        && Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{}",
        serde_json::json!({ "ready": counts.started.load(Ordering::Relaxed) })
    );
    let reporter = {
        let (args, counts) = (Arc::clone(&args), Arc::clone(&counts));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                println!("{}", report(&args, &counts));
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    reporter.abort();
    println!("{}", report(&args, &counts));
    Ok(())
}

/// The counts so far, as one JSON object.
fn report(args: &AttackArgs, counts: &Counts) -> serde_json::Value {
    let statuses = counts.statuses.lock().expect("not poisoned").clone();
    serde_json::json!({
        "attack": format!("{:?}", args.kind).to_lowercase(),
        "connections": args.connections,
        "opened": counts.opened.load(Ordering::Relaxed),
        "closed_by_server": counts.closed_by_server.load(Ordering::Relaxed),
        "connect_errors": counts.connect_errors.load(Ordering::Relaxed),
        "statuses": statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_off_the_status_line() {
        assert_eq!(
            status_of(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            Some(431)
        );
        assert_eq!(status_of(b"HTTP/1.1 4"), None);
        assert_eq!(status_of(b""), None);
    }
}
