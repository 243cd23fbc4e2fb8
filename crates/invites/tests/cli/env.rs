//! `invites serve` configured from the environment alone, as a container is: every flag has an
//! `INVITES_...` variable, `--help` names it, and a server started with variables only honours
//! each one it can be seen to.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{community_manager_token, digest_header, wait_until_started_with_line};

/// The `invites` binary with no `INVITES_...` variable of the caller's environment.
fn invites() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_invites"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INVITES_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[test]
fn serve_help_names_an_environment_variable_for_every_flag() {
    let out = invites().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // Each option's entry: its head line (`  -h, --help`, `      --listen <LISTEN>`) and what
    // follows up to the next head.
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let head = line.trim_start();
        // Heads are indented 2 (`-h, --help`) or 6 (`--listen`); possible values go deeper.
        if line.starts_with("  -") || line.starts_with("      --") {
            let flag = head
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or(head)
                .to_owned();
            entries.push((flag, String::new()));
        } else if let Some((_, text)) = entries.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let flags: Vec<&str> = entries.iter().map(|(f, _)| f.as_str()).collect();
    for expected in ["--listen", "--database-url", "--demo", "--log-format"] {
        assert!(
            flags.contains(&expected),
            "{expected} not found in:\n{help}"
        );
    }
    let mut names = BTreeSet::new();
    for (flag, text) in entries.iter().filter(|(f, _)| f != "--help") {
        let name = text
            .split("[env: ")
            .nth(1)
            .and_then(|rest| rest.split([']', '=']).next())
            .unwrap_or_else(|| panic!("{flag} names no environment variable:\n{text}"));
        assert!(name.starts_with("INVITES_"), "{flag}: {name}");
        assert!(names.insert(name.to_owned()), "{name} named twice");
    }
    assert_eq!(names.len(), entries.len() - 1, "{help}");
}

/// `INVITES_DATABASE_CONNECTIONS` sizes PostgreSQL's pools: below 4 it is refused by name, and
/// for an SQLite database it is refused rather than ignored; either way before the server
/// listens or touches the file.
#[test]
fn database_connections_is_refused_below_four_and_for_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    for (connections, expected) in [
        ("3", "invalid value '3'"),
        ("4", "sizes PostgreSQL's pools"),
    ] {
        let out = invites()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("INVITES_DATABASE_URL", &db)
            .env("INVITES_DATABASE_CONNECTIONS", connections)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{connections}: {stderr}");
        assert!(stderr.contains(expected), "{connections}: {stderr}");
        assert!(stderr.contains("database-connections"), "{stderr}");
        assert!(out.stdout.is_empty(), "it never listened: {out:?}");
    }
    assert!(!db.exists(), "no database created");
}

#[tokio::test]
async fn serve_runs_configured_only_through_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let demo_out = dir.path().join("demo.json");
    let log = dir.path().join("stderr.log");
    let mut child = invites()
        .arg("serve")
        .env("INVITES_LISTEN", "127.0.0.1:0")
        .env("INVITES_DATABASE_URL", &db)
        .env("INVITES_DEMO", "true")
        .env("INVITES_DEMO_OUT", &demo_out)
        .env("INVITES_DIGEST_ALGORITHM", "sha256")
        .env("INVITES_NONCE_LIFETIME_SECS", "120")
        .env("INVITES_MAX_BODY_BYTES", "100")
        .env("INVITES_RATE_LIMIT_PER_MINUTE", "1")
        .env("INVITES_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1")
        .env("INVITES_FAILED_AUTH_PER_ADDRESS", "50")
        .env("INVITES_FAILED_AUTH_PER_KEY", "1")
        .env("INVITES_HEADER_TIMEOUT_SECS", "3")
        .env("INVITES_BODY_TIMEOUT_SECS", "0.5")
        .env("INVITES_MAX_CONNECTIONS", "64")
        .env("INVITES_MAX_HEADERS", "20")
        .env("INVITES_MAX_HEADER_BYTES", "16384")
        .env("INVITES_LOG_FORMAT", "json")
        .env("INVITES_LOG", "info")
        .env("INVITES_WORKER_THREADS", "3")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // INVITES_LISTEN: it prints where it listens; INVITES_WORKER_THREADS: with how many worker
    // threads, as its runtime counts them.
    let (base, line) = wait_until_started_with_line(&mut child, true);
    assert!(line.ends_with(", 3 worker threads)"), "{line}");
    // INVITES_DEMO and INVITES_DEMO_OUT.
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&demo_out).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let path = format!(
        "/api/atlas/v2/orgs/{}/invites",
        demo["org_id"].as_str().unwrap()
    );
    let owner = (
        demo["api_keys"][0]["public_key"].as_str().unwrap(),
        demo["api_keys"][0]["private_key"].as_str().unwrap(),
    );
    // INVITES_DIGEST_ALGORITHM.
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("algorithm=SHA-256"), "{challenge}");
    // INVITES_RATE_LIMIT_PER_MINUTE: the second request of the minute is refused.
    for expected in [200, 429] {
        let r = digest_get(&client, &base, &path, owner.0, owner.1).await;
        assert_eq!(r.status(), expected);
    }
    // INVITES_MAX_BODY_BYTES: the community family has no rate limit.
    let manager = community_manager_token(&demo);
    let r = client
        .post(format!(
            "{base}/api/v2/group/{}/invite/",
            demo["community_group_id"]
        ))
        .bearer_auth(&manager)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 101])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // INVITES_FAILED_AUTH_PER_KEY: one wrong password locks the key out for the minute, the
    // right one included (429 with Retry-After on the Atlas family; a second demo key, untouched
    // by the rate limit above).
    let other = (
        demo["api_keys"][1]["public_key"].as_str().unwrap(),
        demo["api_keys"][1]["private_key"].as_str().unwrap(),
    );
    for (password, expected) in [("wrong", 401), (other.1, 429)] {
        let r = digest_get(&client, &base, &path, other.0, password).await;
        assert_eq!(r.status(), expected, "{password}");
        if password != "wrong" {
            assert!(r.headers().contains_key("retry-after"), "locked out");
        }
    }
    // The connection limits, over raw TCP.
    let addr = base.trim_start_matches("http://").to_owned();
    // INVITES_MAX_HEADERS and INVITES_MAX_HEADER_BYTES: 431.
    let mut many = "GET /health HTTP/1.1\r\nHost: x\r\n".to_owned();
    for i in 0..21 {
        many.push_str(&format!("X-{i}: {i}\r\n"));
    }
    let huge = format!(
        "GET /health HTTP/1.1\r\nX-Huge: {}\r\n",
        "a".repeat(16 * 1024)
    );
    for head in [many, huge] {
        let answer = raw_exchange(&addr, format!("{head}\r\n").as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }
    // INVITES_BODY_TIMEOUT_SECS: a body that stops is answered 408.
    let group = demo["community_group_id"].as_i64().unwrap();
    let stalled = format!(
        "POST /api/v2/group/{group}/invite/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {manager}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    let answer = raw_exchange(&addr, stalled.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    // INVITES_MAX_CONNECTIONS: of 200 idle connections the server holds at most 64 (its
    // descriptors grow by no more), and INVITES_HEADER_TIMEOUT_SECS closes them after 3 s.
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = fds() - before;
    assert!(
        (1..=64).contains(&held),
        "{held} more descriptors for 200 connections"
    );
    let mut first = idle.swap_remove(0);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_secs(3) && closed_after < Duration::from_secs(8),
        "{closed_after:?}"
    );
    drop(idle);

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no stop within 15 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // INVITES_LOG_FORMAT: JSON lines.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.lines().count() > 0);
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

/// Writes `request` on a new connection and reads the answer until the server closes it.
async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "not closed within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET base+path` answered with Digest for `user:pass` on a fresh challenge (nc 1).
async fn digest_get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    user: &str,
    pass: &str,
) -> reqwest::Response {
    let fresh = client.get(format!("{base}{path}")).send().await.unwrap();
    let challenge = fresh.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    client
        .get(format!("{base}{path}"))
        .header(
            "Authorization",
            digest_header(&challenge, user, pass, "GET", path),
        )
        .send()
        .await
        .unwrap()
}
