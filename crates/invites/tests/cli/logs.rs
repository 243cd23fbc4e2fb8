//! `invites serve --log-format json` as a log collector reads it: every line one JSON object,
//! each request's line naming its id, method, path template, status, latency and principal kind,
//! and no credential anywhere, whatever the requests sent.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::support::{digest_header, service_account_token, wait_until_started};

/// The fields every request's line has.
const REQUEST_FIELDS: &[&str] = &[
    "timestamp",
    "level",
    "request_id",
    "method",
    "path",
    "status",
    "latency_us",
    "principal",
];

/// Runs a demo server with JSON logs at `level` (an `INVITES_LOG` filter), sends it Digest,
/// Bearer and failing requests, stops it, and checks its log.
async fn json_log_holds_no_secret(level: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    let creds_file = dir.path().join("demo.json");
    let log_file = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--database-url")
        .arg(&db)
        .arg("--demo-out")
        .arg(&creds_file)
        .env("INVITES_LOG", level)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let base = wait_until_started(&mut child, true);
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let org = demo["org_id"].as_str().unwrap();
    let public = demo["api_keys"][0]["public_key"].as_str().unwrap();
    let private = demo["api_keys"][0]["private_key"].as_str().unwrap();
    let client_id = demo["service_account"]["client_id"].as_str().unwrap();
    let client_secret = demo["service_account"]["client_secret"].as_str().unwrap();
    let user_token = demo["community_users"][0]["token"].as_str().unwrap();
    let client = reqwest::Client::new();
    let path = format!("/api/atlas/v2/orgs/{org}/invites");
    let mut authorizations = Vec::new();

    // Digest: the challenge, then its answer.
    let r = client
        .get(format!("{base}{path}"))
        .header("X-Request-Id", "log-challenge")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let digest = digest_header(&challenge, public, private, "GET", &path);
    let r = client
        .get(format!("{base}{path}"))
        .header("Authorization", &digest)
        .header("X-Request-Id", "log-digest")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    authorizations.push(digest);
    // The token endpoint (HTTP Basic with the client secret), then a service account's Bearer
    // request carrying its token in the query string too.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}"))
    );
    authorizations.push(basic);
    let token = service_account_token(&client, &base, &demo).await;
    let bearer = format!("Bearer {token}");
    let r = client
        .get(format!("{base}{path}?pretty=true&access_token={token}"))
        .header("Authorization", &bearer)
        .header("X-Request-Id", "log-bearer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    authorizations.push(bearer);
    // A community user's Bearer request.
    let community = format!("Bearer {user_token}");
    let r = client
        .get(format!(
            "{base}/api/v2/group/{}/invite/",
            demo["community_group_id"]
        ))
        .header("Authorization", &community)
        .header("X-Request-Id", "log-user")
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status() == 403,
        "{}",
        r.status()
    );
    authorizations.push(community);
    // Failures: a wrong private key, a made-up token, a malformed header.
    let wrong = digest_header(&challenge, public, "not-the-private-key", "GET", &path);
    let r = client
        .get(format!("{base}{path}"))
        .header("Authorization", &wrong)
        .header("X-Request-Id", "log-failed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    authorizations.push(wrong);
    for made_up in ["Bearer mdb_made_up_token_0123456789", "Digest \"unclosed"] {
        let r = client
            .get(format!("{base}{path}"))
            .header("Authorization", made_up)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        authorizations.push(made_up.to_owned());
    }

    // Stop, so every line is written.
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
    let log = std::fs::read_to_string(&log_file).unwrap();

    let mut requests = Vec::new();
    for line in log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v.get(field).is_some(), "no {field}: {line}");
        }
        if v["target"] == "invites::request" {
            for field in REQUEST_FIELDS {
                assert!(v.get(field).is_some(), "no {field}: {line}");
            }
            assert!(
                !v["path"].as_str().unwrap().contains(org),
                "raw path: {line}"
            );
            requests.push(v);
        }
    }
    let by_id = |id: &str| {
        requests
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}:\n{log}"))
    };
    let template = "/api/atlas/v2/orgs/{orgId}/invites";
    for (id, status, principal) in [
        ("log-challenge", 401, "none"),
        ("log-digest", 200, "api_key"),
        ("log-bearer", 200, "service_account"),
        ("log-failed", 401, "none"),
    ] {
        let line = by_id(id);
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["path"], template, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["principal"], principal, "{line}");
        assert!(line["latency_us"].is_u64(), "{line}");
    }
    assert_eq!(by_id("log-user")["principal"], "user");
    assert_eq!(by_id("log-user")["path"], "/api/v2/group/{id}/invite/");
    assert!(
        requests.len() >= 8,
        "a line per request: {}\n{log}",
        requests.len()
    );

    let response = |header: &str| {
        header
            .split(", ")
            .find_map(|p| p.strip_prefix("response=\""))
            .map(|r| r.trim_end_matches('"').to_owned())
    };
    let mut secrets: Vec<String> = vec![
        private.to_owned(),
        client_secret.to_owned(),
        token.clone(),
        user_token.to_owned(),
        "mdb_made_up_token_0123456789".to_owned(),
        "not-the-private-key".to_owned(),
    ];
    secrets.extend(authorizations.iter().filter_map(|a| response(a)));
    secrets.extend(authorizations);
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{secret:?} is in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn json_logs_name_each_request_and_hold_no_secret() {
    json_log_holds_no_secret("info,sqlx=warn").await;
}

#[tokio::test]
async fn json_logs_hold_no_secret_at_debug_level_either() {
    json_log_holds_no_secret("debug").await;
}
