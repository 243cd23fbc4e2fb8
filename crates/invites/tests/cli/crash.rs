//! Crash consistency: the server is killed with SIGKILL in the middle of a mixed create/delete
//! load, restarted on the same SQLite file, and every acknowledged write must be there: each
//! invitation whose POST got 200 exists unless its DELETE got 204, each whose DELETE got 204 is
//! gone, and the file passes SQLite's integrity check. Repeated over several kills in one run.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{serve, service_account_token, Acknowledged, Served};

fn start(db: &std::path::Path, extra: &[&str]) -> Served {
    let mut args = vec!["--rate-limit-per-minute", "100000000"];
    args.extend_from_slice(extra);
    serve(db.to_str().unwrap(), &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let creds = dir.path().join("demo.json");
    let first = start(&db, &["--demo", "--demo-out", creds.to_str().unwrap()]);
    let demo: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let org = demo["org_id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let token = service_account_token(&client, &first.base, &demo).await;
    let mut server = first;
    let ack = Arc::new(Mutex::new(Acknowledged::default()));
    for round in 0..4 {
        // Four clients create invitations and delete every other one they created.
        let mut clients = Vec::new();
        for task in 0..4 {
            let (client, base, token, org, ack) = (
                client.clone(),
                server.base.clone(),
                token.clone(),
                org.clone(),
                ack.clone(),
            );
            clients.push(tokio::spawn(async move {
                let started = Instant::now();
                for i in 0..100_000u32 {
                    if started.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                    let body = json!({"username": format!("crash-{round}-{task}-{i}@example.com"), "roles": ["ORG_MEMBER"]});
                    let Ok(r) = client
                        .post(format!("{base}/api/atlas/v2/orgs/{org}/invites"))
                        .bearer_auth(&token)
                        .header("Content-Type", "application/vnd.atlas.2023-01-01+json")
                        .body(body.to_string())
                        .send()
                        .await
                    else {
                        break; // the server is gone
                    };
                    if r.status() != 200 {
                        continue;
                    }
                    let Ok(v) = r.json::<Value>().await else { break };
                    let id = v["id"].as_str().unwrap().to_owned();
                    ack.lock().unwrap().created.push(id.clone());
                    if i % 2 == 0 {
                        ack.lock().unwrap().delete_sent.push(id.clone());
                        let Ok(r) = client
                            .delete(format!("{base}/api/atlas/v2/orgs/{org}/invites/{id}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                        else {
                            break;
                        };
                        if r.status() == 204 {
                            ack.lock().unwrap().deleted.push(id);
                        }
                    }
                }
            }));
        }
        // Let the load run, then kill the server without warning.
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        for c in clients {
            c.await.unwrap();
        }
        // The file is sound, and every acknowledged write is there after a restart.
        let check = Command::new(env!("CARGO_BIN_EXE_invites"))
            .args(["admin", "--database-url"])
            .arg(&db)
            .arg("check-database")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let verdict: Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(verdict["integrity"], "ok");
        server = start(&db, &[]);
        let told = ack.lock().unwrap().clone();
        assert!(
            !told.created.is_empty(),
            "round {round}: the load wrote nothing before the kill"
        );
        let seen = told
            .check_nothing_lost(
                &client,
                &server.base,
                &org,
                &token,
                &format!("round {round}"),
            )
            .await;
        eprintln!(
            "round {round}: {} created, {} deleted acknowledged before SIGKILL; after restart {seen:?}",
            told.created.len(),
            told.deleted.len()
        );
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
