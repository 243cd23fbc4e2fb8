//! The `invites` binary as an operator uses it: `admin` commands printing JSON, `serve --demo`
//! printing where it listens and its credentials, and a graceful stop on SIGTERM.

mod crash;
mod env;
mod hostile;
mod logs;
mod pg_faults;
mod proxy;
mod readiness;
mod replicas;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn invites(db: &std::path::Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["admin", "--database-url", db.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn admin_builds_a_tenant_without_sql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("admin.db");
    let (ok, org, err) = invites(&db, &["create-org", "--name", "Acme"]);
    assert!(ok, "{err}");
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(org_id.len(), 24);
    let (ok, project, _) = invites(&db, &["create-project", "--org", &org_id, "--name", "web"]);
    assert!(ok);
    let project_id = project["id"].as_str().unwrap().to_owned();
    let (ok, key, err) = invites(
        &db,
        &[
            "create-api-key",
            "--org",
            &org_id,
            "--org-role",
            "ORG_OWNER",
            "--project-role",
            &format!("{project_id}=GROUP_OWNER"),
            "--access",
            "127.0.0.1/32",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(key["publicKey"].as_str().unwrap().len(), 8);
    assert_eq!(key["privateKey"].as_str().unwrap().len(), 36);
    assert_eq!(key["projectRoles"][0]["role"], "GROUP_OWNER");
    let (ok, sa, _) = invites(
        &db,
        &[
            "create-service-account",
            "--org",
            &org_id,
            "--name",
            "robot",
            "--org-role",
            "ORG_OWNER",
        ],
    );
    assert!(ok);
    assert!(sa["clientSecret"]
        .as_str()
        .unwrap()
        .starts_with("mdb_sa_sk_"));
    let (ok, user, _) = invites(
        &db,
        &[
            "create-user",
            "--username",
            "ann@example.com",
            "--real-name",
            "Ann",
        ],
    );
    assert!(ok);
    let (ok, grant, _) = invites(
        &db,
        &[
            "grant-org-role",
            "--org",
            &org_id,
            "--principal",
            user["principalId"].as_str().unwrap(),
            "--role",
            "ORG_MEMBER",
        ],
    );
    assert!(ok);
    assert_eq!(grant["role"], "ORG_MEMBER");
    let (ok, group, _) = invites(&db, &["create-community-group", "--name", "Readers"]);
    assert!(ok);
    let uid = user["id"].as_i64().unwrap().to_string();
    let gid = group["id"].as_i64().unwrap().to_string();
    let (ok, _, _) = invites(
        &db,
        &[
            "set-community-role",
            "--group",
            &gid,
            "--user-id",
            &uid,
            "--role",
            "manager",
        ],
    );
    assert!(ok);
    let (ok, course, _) = invites(
        &db,
        &["create-course", "--name", "Rust", "--creator-user-id", &uid],
    );
    assert!(ok, "{course}");
    let (ok, token, _) = invites(&db, &["create-token", "--username", "ann@example.com"]);
    assert!(ok);
    assert!(token["token"].as_str().unwrap().starts_with("cmt_"));
}

#[test]
fn admin_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let (ok, _, err) = invites(&db, &["create-project", "--org", "nope", "--name", "x"]);
    assert!(!ok);
    assert!(err.contains("\"nope\" is not a 24-hex id"), "{err}");
    let (ok, _, err) = invites(
        &db,
        &[
            "create-project",
            "--org",
            "0123456789abcdef01234567",
            "--name",
            "x",
        ],
    );
    assert!(!ok);
    assert!(err.contains("not found: organization"), "{err}");
    let (ok, org, _) = invites(&db, &["create-org", "--name", "Acme"]);
    assert!(ok);
    let (ok, _, err) = invites(
        &db,
        &[
            "create-api-key",
            "--org",
            org["id"].as_str().unwrap(),
            "--org-role",
            "ORG_GOD",
        ],
    );
    assert!(!ok);
    assert!(err.contains("unknown role \"ORG_GOD\""), "{err}");
    let (ok, _, err) = invites(&db, &["create-user", "--username", "not-an-email"]);
    assert!(!ok);
    assert!(err.contains("is not an email address"), "{err}");
}

#[tokio::test]
async fn serve_demo_prints_credentials_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db");
    let creds_file = dir.path().join("demo.json");
    // On one worker thread (the current-thread scheduler); the second start below has the
    // default, a thread per core.
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args([
            "serve",
            "--demo",
            "--worker-threads",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(&db)
        .arg("--demo-out")
        .arg(&creds_file)
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while !printed.contains("demo credentials written to") {
        let line = lines.next().expect("serve stopped printing").unwrap();
        printed.push_str(&line);
        printed.push('\n');
    }
    let base = printed
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .expect("prints where it listens")
        .to_owned();
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let public = creds["api_keys"][0]["public_key"].as_str().unwrap();
    assert!(
        printed.contains(public),
        "the credentials are printed:\n{printed}"
    );
    assert!(printed.contains(creds["api_keys"][0]["private_key"].as_str().unwrap()));
    assert!(
        printed.contains(", 1 worker thread)"),
        "says it runs one worker thread:\n{printed}"
    );

    let r = reqwest::get(format!(
        "{base}/api/atlas/v2/orgs/{}/invites",
        creds["org_id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Digest realm=\"MMS Public API\""));
    assert_eq!(
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .status(),
        200
    );
    // The container health check probes the same endpoint without curl.
    let probe = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["healthcheck", "--addr", base.trim_start_matches("http://")])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A second demo run on the same database rotates the credentials.
    let out = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(&db)
        .arg("--demo-out")
        .arg(&creds_file)
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = out;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines
        .next()
        .unwrap()
        .unwrap()
        .contains("demo credentials written to")
    {}
    let rotated: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    assert_eq!(rotated["org_id"], creds["org_id"]);
    assert_eq!(
        rotated["api_keys"][0]["public_key"],
        creds["api_keys"][0]["public_key"]
    );
    assert_ne!(
        rotated["api_keys"][0]["private_key"],
        creds["api_keys"][0]["private_key"]
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `invites serve --demo` on `db` at `listen`, with `--demo-out out` and `extra`: the process and
/// every line it printed up to the credentials file (the "Try" commands among them).
fn start_demo(
    db: &std::path::Path,
    listen: &str,
    out: &std::path::Path,
    extra: &[&str],
) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["serve", "--demo", "--listen", listen, "--database-url"])
        .arg(db)
        .arg("--demo-out")
        .arg(out)
        .args(extra)
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref().take(100) {
        let line = line.unwrap();
        let done = line.contains("demo credentials written to");
        printed.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, printed)
}

/// The printed example commands (the lines starting with `curl` after "Try").
fn examples(printed: &[String]) -> Vec<String> {
    printed
        .iter()
        .skip_while(|l| !l.starts_with("Try"))
        .map(|l| l.trim().to_owned())
        .filter(|l| l.starts_with("curl "))
        .collect()
}

/// Runs a printed command as a person pastes it, returning the HTTP status curl saw.
fn run_example(line: &str) -> u16 {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} -s -o /dev/null -w '%{{http_code}}'"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Waits for a process to end (at most `limit`), killing it if it does not.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_start_that_cannot_listen_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let (mut first, printed) = start_demo(&db, "127.0.0.1:0", &dir.path().join("a.json"), &[]);
    let listen = printed
        .iter()
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix("http://127.0.0.1:"))
        .map(|port| format!("127.0.0.1:{port}"))
        .expect("prints where it listens");
    let list = examples(&printed)[0].clone();
    assert_eq!(run_example(&list), 200, "{list}");

    // A second demo start on the same port and database: refused before it touches the database.
    let second_out = dir.path().join("b.json");
    let mut second = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args(["serve", "--demo", "--listen", &listen, "--database-url"])
        .arg(&db)
        .arg("--demo-out")
        .arg(&second_out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut second, Duration::from_secs(20)).expect("it gives up at once");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "cannot listen on {listen}: the address is already in use"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!second_out.exists(), "no new credentials were made");
    // The running server's printed credentials still work.
    assert_eq!(run_example(&list), 200, "{list}");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn the_printed_demo_examples_work_on_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = dir.path().join("demo.json");
    // Atlas list, Atlas delete, Ops Manager list, token, community list, community delete.
    let expected = [200, 204, 200, 200, 200, 204];
    let mut removed = Vec::new();
    // The second start on one worker thread (the current-thread scheduler), the first with the
    // default, a thread per core.
    for (start, extra) in [&[][..], &["--worker-threads", "1"]]
        .into_iter()
        .enumerate()
    {
        let (mut server, printed) = start_demo(&db, "127.0.0.1:0", &out, extra);
        let lines = examples(&printed);
        assert_eq!(lines.len(), expected.len(), "{printed:#?}");
        let demo: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let invited = demo["invited_user_ids"].as_array().unwrap();
        assert_eq!(invited.len(), 3, "{demo}");
        let ids_line = format!(
            "users with a pending invitation to group {} and course {}: {}",
            demo["community_group_id"],
            demo["course_id"],
            invited
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            printed.iter().any(|l| l.contains(&ids_line)),
            "start {start} prints the invited users: {printed:#?}"
        );
        for (line, want) in lines.iter().zip(expected) {
            assert_eq!(run_example(line), want, "start {start}: {line}");
        }
        // The removals are used up: run again, they find nothing to remove.
        assert_eq!(run_example(&lines[1]), 404, "{}", lines[1]);
        assert_eq!(run_example(&lines[5]), 400, "{}", lines[5]);
        removed.push(demo["pending_project_invitation_id"].clone());
        server.kill().unwrap();
        server.wait().unwrap();
    }
    assert_ne!(
        removed[0], removed[1],
        "the second start made a new invitation"
    );
}

#[test]
fn a_database_that_cannot_be_opened_is_named_in_one_line_with_the_fix() {
    let run = |url: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_invites"))
            .args(["admin", "--database-url", url, "check-database"])
            .env("INVITES_LOG", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url}");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run("/nonexistent/dir/x.db");
    assert_eq!(
        err.trim(),
        "error: cannot open SQLite database /nonexistent/dir/x.db: the directory \
         /nonexistent/dir does not exist: create it (mkdir -p /nonexistent/dir) or give another \
         --database-url"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = run(dir.path().to_str().unwrap());
    assert!(
        err.contains("is a directory: give a file path inside it"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Nothing listens on port 1: refused (after the pool's own retries), named with the fix,
    // the password never shown.
    let err = run("postgres://app:s3cret@127.0.0.1:1/invites");
    assert!(
        err.contains("cannot open PostgreSQL database invites at 127.0.0.1:1: connection refused"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
