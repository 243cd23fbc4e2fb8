//! `invites mock` given hostile documents: each refused with one line naming the file and the
//! place, and a YAML alias bomb refused by its expanded size with the process's peak memory
//! (its maximum resident set, read by the parent's `wait4`) far below what the bomb expands to.

use std::path::Path;
use std::process::Command;

/// What a run of `invites mock ARGS` ended with: success, its standard error and its peak
/// resident set in KiB.
struct Run {
    ok: bool,
    stderr: String,
    max_rss_kib: u64,
}

/// Runs `invites mock --listen 127.0.0.1:0 ARGS` to its end (it must refuse the document, so it
/// ends at once; killed after 60 s) and reads its peak resident set from `os.wait4`'s resource
/// usage, the exact figure of that one child (the workspace forbids `unsafe`, so Python asks
/// the kernel for it).
fn mock_run(args: &[&str]) -> Run {
    const WAIT4: &str = r#"
import os, subprocess, sys, threading
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
timer = threading.Timer(60, p.kill)
timer.start()
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
timer.cancel()
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            WAIT4,
            env!("CARGO_BIN_EXE_invites"),
            "mock",
            "--listen",
        ])
        .arg("127.0.0.1:0")
        .args(args)
        .env("INVITES_LOG", "warn")
        .output()
        .expect("python3 runs (it measures the child's peak memory)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut fields = stdout.split_whitespace();
    let code: i32 = fields
        .next()
        .and_then(|c| c.parse().ok())
        .expect("exit code");
    let max_rss_kib = fields
        .next()
        .and_then(|c| c.parse().ok())
        .expect("ru_maxrss");
    Run {
        ok: code == 0,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        max_rss_kib,
    }
}

/// The classic "billion laughs": nine levels of ten aliases each, 10^9 strings once expanded
/// (tens of gigabytes as values), in 1 KiB of text.
fn billion_laughs(dir: &Path) -> String {
    let mut text = String::from(
        "openapi: 3.0.3\nlol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..=9 {
        let p = format!("*lol{}", i - 1);
        let items = [p.as_str(); 10].join(", ");
        text.push_str(&format!("lol{i}: &lol{i} [{items}]\n"));
    }
    text.push_str("paths: {}\n");
    let path = dir.join("bomb.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn mock_refuses_an_alias_bomb_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = billion_laughs(dir.path());
    let run = mock_run(&["--spec", &bomb]);
    assert!(!run.ok, "{}", run.stderr);
    let line = run.stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("bomb.yaml#: not valid YAML: line 7")
            && line.contains("aliases expand the document by more than 16777216 bytes"),
        "{}",
        run.stderr
    );
    assert!(
        run.max_rss_kib < 100 * 1024,
        "peak resident set {} KiB",
        run.max_rss_kib
    );
    // The figure can fail: with 256 MiB of aliases allowed, the bomb grows until the count of
    // values (4,000,000) stops it, at about 300 MB.
    let run = mock_run(&["--spec", &bomb, "--max-alias-bytes", "268435456"]);
    assert!(!run.ok, "{}", run.stderr);
    assert!(
        run.max_rss_kib > 100 * 1024,
        "peak resident set {} KiB",
        run.max_rss_kib
    );
}

#[test]
fn mock_startup_names_a_pattern_it_cannot_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("patterns.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.0.3\ninfo: {title: patterns, version: '1'}\npaths:\n  /a:\n    get:\n      \
         responses:\n        '200':\n          description: ok\n          content:\n            \
         application/json:\n              schema:\n                type: string\n                \
         pattern: '^\\p{L}{2000}$'\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["mock", "--listen", "127.0.0.1:0", "--spec"])
        .arg(&spec)
        .env("INVITES_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> =
        std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()))
            .take(20)
            .map(|l| l.unwrap())
            .take_while(|l| !l.starts_with("listening on"))
            .collect();
    let _ = child.kill();
    let _ = child.wait();
    let place = format!(
        "{}#/paths/~1a/get/responses/200/content/application~1json/schema/pattern",
        spec.display()
    );
    assert!(
        lines.iter().any(|l| l.contains("note: the pattern at")
            && l.contains(&place)
            && l.contains("is not enforced: it would compile to more than 2097152 bytes")),
        "{lines:#?}"
    );
}

/// `invites mock ARGS` until it prints where it listens (true) or ends (false), then stopped:
/// its standard output and error.
fn mock_start(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["mock", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("INVITES_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lazily: a started mock keeps its standard output open.
    let lines: Vec<String> =
        std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()))
            .take(20)
            .map(|l| l.unwrap())
            .take_while(|l| !l.starts_with("listening on"))
            .collect();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let started = out.status.code().is_none();
    (
        started,
        format!(
            "{}\n{}",
            lines.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn mock_fetches_remote_refs_only_with_the_flag() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        // One connection: the run with the flag (the run without it makes none).
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = "Pet: {type: object, properties: {name: {type: string}}}\n";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("remote.yaml");
    std::fs::write(
        &spec,
        format!(
            "openapi: 3.0.3\ninfo: {{title: remote, version: '1'}}\npaths:\n  /pet:\n    get:\n      \
             responses:\n        '200':\n          description: ok\n          content:\n            \
             application/json:\n              schema: {{$ref: '{base}/pet.yaml#/Pet'}}\n"
        ),
    )
    .unwrap();
    let (started, output) = mock_start(&["--spec".as_ref(), spec.as_os_str()]);
    assert!(!started, "{output}");
    assert!(
        output.contains("remote.yaml#: $ref")
            && output.contains("not fetched unless --allow-remote-refs"),
        "{output}"
    );
    let (started, output) = mock_start(&[
        "--spec".as_ref(),
        spec.as_os_str(),
        "--allow-remote-refs".as_ref(),
        "--remote-ref-timeout".as_ref(),
        "5".as_ref(),
    ]);
    assert!(started, "{output}");
    assert!(
        output.contains("mock of") && output.contains("(1 operations, remote)"),
        "{output}"
    );
}
