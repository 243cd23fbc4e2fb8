//! The lifecycle driver's command line: usage, and a clear failure when no server answers.
//! (Its run against a live server is `cargo xtask clients`, a phase of `cargo xtask test`.)

use std::process::Command;

fn driver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_invites-client-lifecycle"))
}

#[test]
fn without_arguments_it_prints_its_usage_and_exits_2() {
    let out = driver().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("usage: invites-client-lifecycle BASE_URL DEMO_JSON"),
        "{err}"
    );
}

#[test]
fn help_goes_to_stdout_and_succeeds() {
    let out = driver().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("DEMO_JSON"));
}

#[test]
fn a_missing_demo_file_is_named() {
    let out = driver()
        .args(["http://127.0.0.1:9", "/nonexistent/demo.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading /nonexistent/demo.json"), "{err}");
}

#[test]
fn an_unreachable_server_fails_at_the_first_step_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo.json");
    std::fs::write(
        &demo,
        r#"{"org_id":"5f1a2b3c4d5e6f7a8b9c0d1e","project_id":"5f1a2b3c4d5e6f7a8b9c0d1f",
            "service_account":{"client_id":"mdb_sa_id_x","client_secret":"s"},
            "api_keys":[],"community_users":[],"community_group_id":1,"course_id":2,
            "invited_user_ids":[3]}"#,
    )
    .unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let out = driver()
        .arg("http://127.0.0.1:9")
        .arg(&demo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rust: FAILED: createServiceAccountToken: 200 expected, got"),
        "{err}"
    );
}
