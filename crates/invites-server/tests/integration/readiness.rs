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
