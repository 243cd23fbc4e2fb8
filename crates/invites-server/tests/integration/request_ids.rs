//! `X-Request-Id` on every answer: the client's own when it is a sane token, else a new one,
//! whatever answered (the handlers, authentication, the rate limit, the body limit, routing,
//! `envelope`).

use invites_server::ServiceConfig;
use reqwest::{Method, StatusCode};

use crate::support::{DigestAnswer, TestServer};

fn id_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on a {} answer", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

fn generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    crate::support::within_one_window(20).await;
    let s = TestServer::start_with(ServiceConfig {
        rate_limit_per_minute: 1,
        max_body_bytes: 64,
        ..ServiceConfig::default()
    })
    .await;
    let org = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let mut seen = Vec::new();

    let r = s.anonymous(Method::GET, "/health").await;
    assert_eq!(r.status(), StatusCode::OK);
    seen.push(id_of(&r));
    // A 401 challenge.
    let r = s.anonymous(Method::GET, &org).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    seen.push(id_of(&r));
    // 404 and 405 from the edge.
    let r = s.anonymous(Method::GET, "/no/such/thing").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    seen.push(id_of(&r));
    let r = s.anonymous(Method::PATCH, "/health").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    seen.push(id_of(&r));
    // The handler's own answer, then 429 (one request per minute for this key).
    let owner = s.key("owner");
    let r = s.digest(Method::GET, &org, &owner).await;
    assert_eq!(r.status(), StatusCode::OK);
    seen.push(id_of(&r));
    let r = s.digest(Method::GET, &org, &owner).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    seen.push(id_of(&r));
    // 413 (the community family has no rate limit).
    let r = s
        .client
        .post(s.url(&format!(
            "/api/v2/group/{}/invite/",
            s.demo.community_group_id
        )))
        .bearer_auth(s.user_token("manager"))
        .header("Content-Type", "application/json")
        .body(vec![b' '; 65])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    seen.push(id_of(&r));
    // An envelope answer (HTTP 200 around the foreign key's 404).
    let foreign = &s.foreign_key;
    let path = format!("{org}?envelope=true");
    let answer = DigestAnswer::new(&s.challenge(&org).await, &foreign.0, &foreign.1);
    let r = s
        .client
        .get(s.url(&path))
        .header("Authorization", answer.header("GET", &path, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    seen.push(id_of(&r));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404, "{body}");

    assert!(seen.iter().all(|id| generated(id)), "{seen:?}");
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "ids repeat: {seen:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_any_other_replaced() {
    let s = TestServer::start().await;
    let org = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let send = |id: &'static str| s.client.get(s.url(&org)).header("X-Request-Id", id).send();
    let r = send("edge-7f3a.b_c:9").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(id_of(&r), "edge-7f3a.b_c:9");
    for hostile in ["two words", "<img src=x>", "a/b", "x;y=\"z\""] {
        let r = send(hostile).await.unwrap();
        let id = id_of(&r);
        assert!(generated(&id), "{hostile:?} answered with {id:?}");
    }
    let long: &'static str = "a".repeat(129).leak();
    let r = send(long).await.unwrap();
    assert!(generated(&id_of(&r)));
    s.stop().await;
}
