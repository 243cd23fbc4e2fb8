//! `invites mock --proxy` in front of `invites serve`: the real server's answers judged by our own
//! document (no violation), then by a copy altered to break the contract (each violation named,
//! in the answer's `X-Mock-Violation` and in the summary printed at exit).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// `invites mock --proxy UPSTREAM --spec SPEC` on a free port: the process and its URL.
fn proxy(spec: &std::path::Path, upstream: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_invites"))
        .args([
            "mock",
            "--listen",
            "127.0.0.1:0",
            "--proxy",
            upstream,
            "--spec",
        ])
        .arg(spec)
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .take(20)
        .map(|l| l.unwrap())
        .find_map(|l| {
            l.strip_prefix("forwarding to ")
                .and_then(|rest| rest.split("listening on ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("the proxy says where it listens");
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

/// Stops the proxy with SIGTERM and returns what it printed on stderr (the summary).
fn stop(mut child: Child) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the proxy did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// The lifecycle through the proxy: list, create, get, update, delete, delete again (404), and a
/// community list; returns every `X-Mock-Violation` seen.
async fn drive(base: &str, demo: &serde_json::Value, token: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let org = demo["org_id"].as_str().unwrap();
    let orgs = format!("{base}/api/atlas/v2/orgs/{org}/invites");
    let vnd = "application/vnd.atlas.2023-01-01+json";
    let mut seen = Vec::new();
    let mut note = |r: &reqwest::Response| {
        seen.extend(
            r.headers()
                .get_all("x-mock-violation")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned()),
        );
    };
    let r = client
        .get(&orgs)
        .bearer_auth(token)
        .header("Accept", vnd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    note(&r);
    let r = client
        .post(&orgs)
        .bearer_auth(token)
        .header("Content-Type", vnd)
        .body(r#"{"username":"proxied@example.com","roles":["ORG_MEMBER"]}"#)
        .send()
        .await
        .unwrap();
    // The Atlas contract documents 200 for a created invitation.
    assert_eq!(r.status(), 200);
    note(&r);
    let created: serde_json::Value = r.json().await.unwrap();
    let one = format!("{orgs}/{}", created["id"].as_str().unwrap());
    let r = client.get(&one).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    note(&r);
    let r = client
        .patch(&one)
        .bearer_auth(token)
        .header("Content-Type", vnd)
        .body(r#"{"roles":["ORG_BILLING_ADMIN"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    note(&r);
    for want in [204, 404] {
        let r = client.delete(&one).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), want);
        note(&r);
    }
    seen
}

#[tokio::test]
async fn the_proxy_judges_the_real_server_by_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = dir.path().join("demo.json");
    let served = support::serve(
        db.to_str().unwrap(),
        &["--demo", "--demo-out", out.to_str().unwrap()],
    );
    let demo: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let client = reqwest::Client::new();
    let token = support::service_account_token(&client, &served.base, &demo).await;
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/invites.json");

    // Our own document: the real answers all keep it.
    let (child, base) = proxy(&spec, &served.base);
    let seen = drive(&base, &demo, &token).await;
    let summary = stop(child);
    assert!(seen.is_empty(), "{seen:#?}");
    assert!(summary.contains("no contract violations seen"), "{summary}");

    // A copy that says deleteOrgInvite answers 200 (not 204) and that invitations have a
    // required `team` property: both broken by the real answers, and named.
    let mut altered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    let delete = &mut altered["paths"]["/api/atlas/v2/orgs/{orgId}/invites/{invitationId}"]
        ["delete"]["responses"];
    let no_content = delete.as_object_mut().unwrap().remove("204").unwrap();
    delete["200"] = no_content;
    let invitation = &mut altered["components"]["schemas"]["OrganizationInvitation"];
    invitation["properties"]["team"] = serde_json::json!({"type": "string"});
    invitation["required"]
        .as_array_mut()
        .unwrap()
        .push("team".into());
    let altered_path = dir.path().join("altered.json");
    std::fs::write(&altered_path, altered.to_string()).unwrap();
    let (child, base) = proxy(&altered_path, &served.base);
    let seen = drive(&base, &demo, &token).await;
    let summary = stop(child);
    let joined = seen.join("\n");
    assert!(
        joined.contains("response: listOrgInvites 200: body[0].team is required"),
        "{joined}"
    );
    assert!(
        joined.contains("response: createOrgInvite 200: body.team is required"),
        "{joined}"
    );
    assert!(
        joined.contains("response: status 204 is not documented for deleteOrgInvite"),
        "{joined}"
    );
    assert!(summary.contains("contract violation(s) seen"), "{summary}");
    assert!(
        summary.contains(
            "deleteOrgInvite: response: status 204 is not documented for deleteOrgInvite"
        ),
        "{summary}"
    );
}
