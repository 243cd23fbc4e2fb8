//! `invites healthcheck` against a real server: `--ready` follows the database, the default
//! (liveness) does not. Over PostgreSQL the database is dropped under the running server.
//!
//! The PostgreSQL test needs `INVITES_TEST_POSTGRES_URL` (a server's maintenance database); the
//! test command starts a throwaway cluster and sets it. Without it the test says it is skipped,
//! and under CI it fails (`support::postgres_url`).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{fresh_database, postgres_url, serve};

/// `invites healthcheck [--ready] --addr ADDR`: whether it exited 0.
fn probe(base: &str, ready: bool) -> bool {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_invites"));
    cmd.args(["healthcheck", "--addr", base.trim_start_matches("http://")]);
    if ready {
        cmd.arg("--ready");
    }
    cmd.output().unwrap().status.success()
}

#[test]
fn healthcheck_ready_probes_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ready.db");
    let server = serve(db.to_str().unwrap(), &[]);
    assert!(probe(&server.base, true));
    assert!(probe(&server.base, false));
    let base = server.base.clone();
    drop(server);
    assert!(!probe(&base, true), "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_while_the_postgres_database_is_gone_and_liveness_holds() {
    let Some(admin_url) = postgres_url("ready_fails_while_the_postgres_database_is_gone") else {
        return;
    };
    let db = fresh_database(&admin_url, "readiness").await;
    let server = serve(&db, &[]);
    assert!(probe(&server.base, true), "ready over a live database");

    use sqlx::{Connection, Executor};
    let name = db.rsplit_once('/').unwrap().1.to_owned();
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    while probe(&server.base, true) {
        assert!(
            Instant::now() < deadline,
            "/ready still 200 15 s after the database was dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = reqwest::get(format!("{}/ready", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "SERVICE_UNAVAILABLE", "{body}");
    assert!(
        probe(&server.base, false),
        "liveness does not ask the database"
    );
}
