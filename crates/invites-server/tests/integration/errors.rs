//! The error model at the edge: oversized and malformed bodies, unknown paths and methods,
//! `envelope` and `pretty`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{api_error, DigestAnswer, TestServer};

#[tokio::test]
async fn an_oversized_body_is_413_with_an_api_error() {
    let s = TestServer::start().await;
    let path = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    let key = s.key("owner");
    let answer = DigestAnswer::new(&s.challenge(&path).await, &key.0, &key.1);
    let r = s
        .client
        .delete(s.url(&path))
        .header("Authorization", answer.header("DELETE", &path, 1))
        .header("Content-Type", "application/json")
        .body(vec![b' '; invites_api::DEFAULT_MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    let body = api_error(r, 413, "REQUEST_TOO_LARGE").await;
    insta::assert_json_snapshot!("oversized_body", body);
    // Nothing was removed.
    let r = s.digest(Method::GET, &path, &key).await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn the_body_limit_is_not_applied_before_authentication() {
    let s = TestServer::start().await;
    let path = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let r = s
        .client
        .get(s.url(&path))
        .body(vec![b'x'; invites_api::DEFAULT_MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    api_error(r, 401, "NOT_AUTHENTICATED").await;
    s.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_with_an_api_error() {
    let s = TestServer::start().await;
    // (body, errorCode): unparsable or incomplete forms are VALIDATION_ERROR, a parsed form with a
    // wrong value is INVALID_ATTRIBUTE.
    let cases: [(&[u8], &str); 4] = [
        (b"", "VALIDATION_ERROR"),
        (b"\xff\xfe=\x00", "VALIDATION_ERROR"),
        (b"client_id=a&client_secret=b", "VALIDATION_ERROR"),
        (b"grant_type", "INVALID_ATTRIBUTE"),
    ];
    for (body, code) in cases {
        let r = s
            .client
            .post(s.url("/api/oauth/token"))
            .basic_auth("x", Some("y"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let err = api_error(r, 400, code).await;
        assert!(!err["detail"].as_str().unwrap().is_empty(), "{err}");
    }
    let r = s
        .client
        .post(s.url("/api/oauth/token"))
        .header("Content-Type", "application/json")
        .body("{\"grant_type\": \"client_credentials\"}")
        .send()
        .await
        .unwrap();
    // The token endpoint documents no 415: a body in another media type is its 400, keeping
    // the errorCode that says why (schemathesis found the bare 415 this used to be).
    let body = api_error(r, 400, "UNSUPPORTED_MEDIA_TYPE").await;
    insta::assert_json_snapshot!("wrong_content_type", body);
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let s = TestServer::start().await;
    let r = s.anonymous(Method::GET, "/no/such/thing").await;
    let body = api_error(r, 404, "RESOURCE_NOT_FOUND").await;
    insta::assert_json_snapshot!("unknown_path", body);

    let path = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    for method in [Method::PUT, Method::TRACE, Method::POST] {
        let r = s.digest(method.clone(), &path, &s.key("owner")).await;
        assert_eq!(r.headers()["allow"], "DELETE, GET, HEAD, PATCH", "{method}");
        api_error(r, 405, "METHOD_NOT_ALLOWED").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn envelope_wraps_errors_and_successes_with_http_200() {
    let s = TestServer::start().await;
    // An authentication challenge is the exception: it keeps its 401 and WWW-Authenticate, or
    // Digest clients would never answer it.
    let r = s
        .anonymous(
            Method::GET,
            &format!("/api/atlas/v2/orgs/{}/invites?envelope=true", s.demo.org_id),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "NOT_AUTHENTICATED");
    // Other errors are wrapped.
    let r = s
        .digest(
            Method::GET,
            &format!(
                "/api/atlas/v2/orgs/{}/invites/{}?envelope=true",
                s.demo.org_id, "0123456789abcdef01234567"
            ),
            &s.key("owner"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["content"]["errorCode"], "INVITATION_NOT_FOUND");

    let path = format!(
        "/api/atlas/v2/groups/{}/invites/{}?envelope=true",
        s.demo.project_id, s.demo.pending_project_invitation_id
    );
    let r = s.digest(Method::DELETE, &path, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": 204}));
    s.stop().await;
}

#[tokio::test]
async fn pretty_indents_json_and_plain_answers_are_compact() {
    let s = TestServer::start().await;
    let base = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let pretty = s
        .digest(Method::GET, &format!("{base}?pretty=true"), &s.key("owner"))
        .await;
    let text = pretty.text().await.unwrap();
    assert!(text.starts_with("[\n  {\n    \"createdAt\""), "{text}");
    let compact = s
        .digest(
            Method::GET,
            &format!("{base}?pretty=false&envelope=false"),
            &s.key("owner"),
        )
        .await;
    let text = compact.text().await.unwrap();
    assert!(text.starts_with("[{\"createdAt\""), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn the_spec_and_docs_are_served() {
    let s = TestServer::start().await;
    let r = s.anonymous(Method::GET, "/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), invites_api::spec_json());
    let r = s.anonymous(Method::GET, "/docs").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("swagger"));
    let r = s.anonymous(Method::GET, "/health").await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

/// A database locked by someone else beyond the busy timeout: the write is answered with a 5xx
/// ApiError carrying Retry-After (the operation's 500, since it documents no 503; the errorCode
/// says what happened), nothing is half-done, and the same request succeeds once the lock is gone.
#[tokio::test]
async fn a_busy_database_is_a_5xx_with_retry_after_and_recovers() {
    use sqlx::{Connection, Executor};
    let s = TestServer::start().await;
    let mut locker =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", s.db_path().display()))
            .await
            .unwrap();
    locker.execute("BEGIN IMMEDIATE").await.unwrap();
    let path = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    let r = s.digest(Method::DELETE, &path, &s.key("owner")).await;
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = api_error(r, 500, "SERVICE_UNAVAILABLE").await;
    assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
    // Reads still work meanwhile (WAL), so the readiness check answers.
    assert_eq!(s.anonymous(Method::GET, "/ready").await.status(), 200);
    locker.execute("ROLLBACK").await.unwrap();
    let r = s.digest(Method::DELETE, &path, &s.key("owner")).await;
    assert_eq!(r.status(), 204, "recovered once the lock is gone");
    s.stop().await;
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    /// A 2 MiB tmpfs at `path`, or None where mounting is not allowed (not root).
    fn mount(path: &std::path::Path) -> Option<TinyDisk> {
        std::fs::create_dir_all(path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| TinyDisk {
            path: path.to_owned(),
        })
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// A full disk: writes answer a 5xx ApiError with Retry-After (the operation's 500 keeping
/// SERVICE_UNAVAILABLE, as it documents no 503), the server keeps serving reads, and writes
/// succeed again once space is freed.
#[tokio::test]
async fn a_full_disk_is_a_5xx_with_retry_after_and_recovers() {
    let outer = tempfile::tempdir().unwrap();
    let Some(disk) = TinyDisk::mount(&outer.path().join("tiny")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let s = TestServer::start_at(
        invites_server::ServiceConfig::default(),
        disk.path.join("test.db"),
        None,
    )
    .await;
    // Fill what is left of the disk.
    let filler = disk.path.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 16 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
    }
    let create = |i: u32| {
        let body = json!({"username": format!("full{i}@example.com"), "roles": ["ORG_MEMBER"]});
        let path = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
        (path, body)
    };
    let mut full = None;
    for i in 0..400 {
        let (path, body) = create(i);
        let r = s
            .digest_json(Method::POST, &path, &s.key("owner"), &body)
            .await;
        if r.status().is_server_error() {
            full = Some(r);
            break;
        }
    }
    let r = full.expect("a write failed once the disk was full");
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("30")
    );
    let body = api_error(r, 500, "SERVICE_UNAVAILABLE").await;
    assert!(body["detail"].as_str().unwrap().contains("space"), "{body}");
    assert_eq!(s.anonymous(Method::GET, "/ready").await.status(), 200);
    std::fs::remove_file(&filler).unwrap();
    let (path, body) = create(10_000);
    let r = s
        .digest_json(Method::POST, &path, &s.key("owner"), &body)
        .await;
    assert_eq!(r.status(), 200, "writes succeed once space is freed");
    s.stop().await;
    drop(disk);
}
