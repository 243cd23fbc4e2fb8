//! The `invites` binary as an operator uses it: `admin` commands printing JSON, `serve --demo`
//! printing where it listens and its credentials, and a graceful stop on SIGTERM.

mod crash;
mod replicas;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
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
