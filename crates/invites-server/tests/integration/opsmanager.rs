//! Ops Manager v1.0 project invitations: every operation and status, the `/invitations/` alias,
//! and the seed's own curl example.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{api_error, redact, DigestAnswer, TestServer};

async fn om(
    s: &TestServer,
    method: Method,
    path: &str,
    key: &(String, String),
    body: Option<Value>,
) -> reqwest::Response {
    let answer = DigestAnswer::new(&s.challenge(path).await, &key.0, &key.1);
    let mut req = s
        .client
        .request(method.clone(), s.url(path))
        .header("Authorization", answer.header(method.as_str(), path, 1))
        .header("Accept", "application/json");
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

fn base(s: &TestServer) -> String {
    format!("/api/public/v1.0/groups/{}/invites", s.demo.project_id)
}

#[tokio::test]
async fn a_user_admin_runs_the_whole_lifecycle() {
    let s = TestServer::start().await;
    let admin = s.key("user-admin");
    let r = om(
        &s,
        Method::POST,
        &base(&s),
        &admin,
        Some(json!({"username": "om@demo.example", "roles": ["GROUP_READ_ONLY"]})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let created: Value = r.json().await.unwrap();
    insta::assert_json_snapshot!("om_created", redact(created.clone(), &s));
    let id = created["id"].as_str().unwrap().to_owned();

    let filtered = format!("{}?username=om@demo.example", base(&s));
    let list = || async {
        om(&s, Method::GET, &filtered, &admin, None)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    let listed = list().await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    let r = om(
        &s,
        Method::PATCH,
        &base(&s),
        &admin,
        Some(json!({"username": "om@demo.example", "roles": ["GROUP_OWNER"]})),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["roles"],
        json!(["GROUP_OWNER"])
    );
    let one = format!("{}/{id}", base(&s));
    let r = om(
        &s,
        Method::PATCH,
        &one,
        &admin,
        Some(json!({"roles": ["GROUP_DATA_ACCESS_READ_ONLY"]})),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["roles"],
        json!(["GROUP_DATA_ACCESS_READ_ONLY"]),
        "replaced, not merged"
    );
    assert_eq!(
        list().await[0]["roles"],
        json!(["GROUP_DATA_ACCESS_READ_ONLY"]),
        "the list asked again shows the change"
    );
    let got: Value = om(&s, Method::GET, &one, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["groupName"], "Demo-Project");

    let r = om(&s, Method::DELETE, &one, &admin, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    assert_eq!(list().await, json!([]), "and the removal");
    api_error(
        om(&s, Method::GET, &one, &admin, None).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn each_operation_answers_its_error_statuses() {
    let s = TestServer::start().await;
    let one = format!("{}/{}", base(&s), s.demo.pending_project_invitation_id);
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base(&s), None),
        (
            Method::POST,
            base(&s),
            Some(json!({"username": "x@demo.example", "roles": ["GROUP_READ_ONLY"]})),
        ),
        (
            Method::PATCH,
            base(&s),
            Some(json!({"username": "invitee@demo.example", "roles": ["GROUP_READ_ONLY"]})),
        ),
        (Method::GET, one.clone(), None),
        (
            Method::PATCH,
            one.clone(),
            Some(json!({"roles": ["GROUP_READ_ONLY"]})),
        ),
        (Method::DELETE, one.clone(), None),
    ];
    for (method, path, body) in &cases {
        // 401: no credentials, and a service-account token is not accepted on this family.
        let r = s.anonymous(method.clone(), path).await;
        api_error(r, 401, "NOT_AUTHENTICATED").await;
        // 403: a project read-only key.
        api_error(
            om(&s, method.clone(), path, &s.key("member"), body.clone()).await,
            403,
            "USER_UNAUTHORIZED",
        )
        .await;
        // 404: another tenant, naming the parameter as this contract spells it.
        let body404 = api_error(
            om(&s, method.clone(), path, &s.foreign_key, body.clone()).await,
            404,
            "GROUP_NOT_FOUND",
        )
        .await;
        assert_eq!(body404["parameters"][0]["name"], "GROUP-ID", "{body404}");
        // 400: a malformed project id.
        let bad = path.replace(&s.demo.project_id, "nope");
        api_error(
            om(&s, method.clone(), &bad, &s.key("owner"), body.clone()).await,
            400,
            "INVALID_OBJECT_ID",
        )
        .await;
    }
    // 400: bodies that break the rules.
    let r = om(
        &s,
        Method::POST,
        &base(&s),
        &s.key("owner"),
        Some(json!({"username": "x", "roles": ["ORG_OWNER"]})),
    )
    .await;
    let err = api_error(r, 400, "INVALID_ATTRIBUTE").await;
    insta::assert_json_snapshot!("om_invalid_body", err);
    // 404: an unknown project.
    let unknown = "/api/public/v1.0/groups/0123456789abcdef01234567/invites";
    api_error(
        om(&s, Method::GET, unknown, &s.key("owner"), None).await,
        404,
        "GROUP_NOT_FOUND",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn an_accepted_invitation_cannot_be_deleted() {
    let s = TestServer::start().await;
    let id = s.demo.pending_project_invitation_id.parse().unwrap();
    s.store
        .accept_invitation(id, &invites_store::AuditEntry::operator(chrono::Utc::now()))
        .await
        .unwrap();
    let one = format!("{}/{}", base(&s), s.demo.pending_project_invitation_id);
    api_error(
        om(&s, Method::DELETE, &one, &s.key("user-admin"), None).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn the_seed_example_runs_as_written_and_returns_204() {
    let s = TestServer::start().await;
    let (public, private) = s.key("user-admin");
    // The example of seed 002, with host and ids filled in; note its `/invitations/` spelling.
    let url = format!(
        "{}/api/public/v1.0/groups/{}/invitations/{}",
        s.base, s.demo.project_id, s.demo.pending_project_invitation_id
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "--user",
                &format!("{public}:{private}"),
                "--digest",
                "--include",
            ])
            .args([
                "--header",
                "Accept: application/json",
                "--request",
                "DELETE",
                &url,
            ])
            .args(["--silent", "--show-error", "--max-time", "20"])
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("HTTP/1.1 401 Unauthorized"),
        "curl first receives the challenge:\n{text}"
    );
    assert!(
        text.contains("HTTP/1.1 204 No Content"),
        "then the deletion:\n{text}"
    );
    let one = format!("{}/{}", base(&s), s.demo.pending_project_invitation_id);
    api_error(
        om(&s, Method::GET, &one, &s.key("user-admin"), None).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_body_properties_are_ignored_whatever_they_hold_in_both_families() {
    let s = TestServer::start().await;
    let owner = s.key("owner");
    // Ops Manager.
    let r = om(
        &s,
        Method::POST,
        &base(&s),
        &owner,
        Some(
            json!({"username": "extra@example.com", "roles": ["GROUP_READ_ONLY"],
                    "extra": [1, null], "other": null, "deep": {"x": null}}),
        ),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Atlas.
    let path = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let answer = DigestAnswer::new(&s.challenge(&path).await, &owner.0, &owner.1);
    let r = s
        .client
        .post(s.url(&path))
        .header("Authorization", answer.header("POST", &path, 1))
        .header("Content-Type", "application/vnd.atlas.2023-01-01+json")
        .body(
            json!({"username": "extra@example.com", "roles": ["ORG_MEMBER"], "extra": [1, null]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A null in a documented property is still named.
    let r = om(
        &s,
        Method::POST,
        &base(&s),
        &owner,
        Some(json!({"username": "extra2@example.com", "roles": null})),
    )
    .await;
    let body = api_error(r, 400, "INVALID_ATTRIBUTE").await;
    assert!(body["detail"].as_str().unwrap().contains("roles"), "{body}");
    s.stop().await;
}
