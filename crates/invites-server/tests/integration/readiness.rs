//! `/health` is liveness (the process serves, whatever the database does) and `/ready` is
//! readiness: 503 with `Retry-After` while the server starts and whenever its database does not
//! answer, 200 otherwise.

use invites_server::ServiceConfig;
use invites_store::Store;
use reqwest::{Method, StatusCode};

use crate::support::{api_error, TestServer};

#[tokio::test]
async fn ready_follows_the_database_and_health_does_not() {
    let s = TestServer::start().await;
    let r = s.anonymous(Method::GET, "/ready").await;
    assert_eq!(r.status(), StatusCode::OK);
    insta::assert_json_snapshot!("ready", r.json::<serde_json::Value>().await.unwrap());
    assert_eq!(s.anonymous(Method::GET, "/health").await.status(), 200);

    // The database goes away under the running server (its pool closed).
    s.store.close().await;
    let r = s.anonymous(Method::GET, "/ready").await;
    assert_eq!(r.headers()["retry-after"], "5");
    let body = api_error(r, 503, "SERVICE_UNAVAILABLE").await;
    insta::assert_json_snapshot!("not_ready", body);
    let r = s.anonymous(Method::GET, "/health").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "liveness does not ask the database"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_server_whose_database_a_newer_version_migrated_stops_serving() {
    let s = TestServer::start().await;
    let list = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    assert_eq!(
        s.digest(Method::GET, &list, &s.key("owner")).await.status(),
        StatusCode::OK
    );
    // A newer version of the program migrates the database while this one runs (a rolling
    // upgrade across a migration): a migration this program does not know.
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db_path().display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT MAX(version) + 1, 'from a newer version', TRUE, X'00', 0 FROM _sqlx_migrations",
    )
    .execute(&other)
    .await
    .unwrap();
    other.close().await;
    // Noticed at the next poll of the auth epoch (every 100 ms): not ready, and no request
    // served but the health check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let ready = loop {
        let r = s.anonymous(Method::GET, "/ready").await;
        if r.status() != StatusCode::OK || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(ready.headers()["retry-after"], "1");
    let body = api_error(ready, 503, "SERVICE_UNAVAILABLE").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("older version than its database"),
        "{body}"
    );
    // Before authentication even: nothing is served.
    let r = s.anonymous(Method::GET, &list).await;
    assert_eq!(r.headers()["retry-after"], "1");
    // The 500 with Retry-After the operations document for a database that cannot serve (the
    // detail names schema versions, which move with every migration: not a snapshot).
    let body = api_error(r, 500, "SERVICE_UNAVAILABLE").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.starts_with("This server is an older version than its database (schema "));
    assert!(
        detail.ends_with("and no longer serves; retry shortly."),
        "{detail}"
    );
    assert_eq!(s.anonymous(Method::GET, "/health").await.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_starting_server_answers_not_ready_until_its_database_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let starting = invites_server::listen("127.0.0.1:0")
        .await
        .unwrap()
        .serve_starting(&invites_server::ConnectionLimits::default());
    let base = format!("http://{}", starting.addr());
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let r = get("/health").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    let r = get("/ready").await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().contains_key("x-request-id"));
    let body = api_error(r, 503, "SERVICE_UNAVAILABLE").await;
    insta::assert_json_snapshot!("starting_ready", body);
    // An operation answers the 500 with Retry-After its contract documents for a database that
    // cannot serve.
    let r = get("/api/atlas/v2/orgs/0123456789abcdef01234567/invites")
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let body = api_error(r, 500, "SERVICE_UNAVAILABLE").await;
    insta::assert_json_snapshot!("starting_operation", body);

    let store = Store::open(dir.path().join("ready.db").to_str().unwrap())
        .await
        .unwrap();
    let running = starting
        .serve(store.clone(), &ServiceConfig::default())
        .await
        .unwrap();
    assert_eq!(get("/ready").await.unwrap().status(), StatusCode::OK);
    let r = get("/api/atlas/v2/orgs/0123456789abcdef01234567/invites")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    running.stop().await.unwrap();
    store.close().await;
}
