//! Every Atlas operation and every status its contract lists: 200/204, 400 where listed, 401,
//! 403, 404 and 429, asserting status, headers, media type and body.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{api_error, redact, DigestAnswer, TestServer, VND};

/// One operation of the contract, with a request that succeeds for the demo owner.
struct Op {
    id: &'static str,
    method: Method,
    /// The path for the demo data, or for a given malformed invitation id.
    path: fn(&TestServer, Option<&str>) -> String,
    body: Option<fn(&TestServer) -> Value>,
    success: u16,
    documents_400: bool,
}

fn org(s: &TestServer, _: Option<&str>) -> String {
    format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id)
}
fn org_one(s: &TestServer, id: Option<&str>) -> String {
    format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id,
        id.unwrap_or(&s.demo.pending_org_invitation_id)
    )
}
fn group(s: &TestServer, _: Option<&str>) -> String {
    format!("/api/atlas/v2/groups/{}/invites", s.demo.project_id)
}
fn group_one(s: &TestServer, id: Option<&str>) -> String {
    format!(
        "/api/atlas/v2/groups/{}/invites/{}",
        s.demo.project_id,
        id.unwrap_or(&s.demo.pending_project_invitation_id)
    )
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            id: "listOrgInvites",
            method: Method::GET,
            path: org,
            body: None,
            success: 200,
            documents_400: true,
        },
        Op {
            id: "updateOrgInvites",
            method: Method::PATCH,
            path: org,
            body: Some(|_| json!({"username": "invitee@demo.example", "roles": ["ORG_READ_ONLY"]})),
            success: 200,
            documents_400: true,
        },
        Op {
            id: "createOrgInvite",
            method: Method::POST,
            path: org,
            body: Some(|s| {
                json!({"username": "new@demo.example", "roles": ["ORG_MEMBER"], "teamIds": ["0123456789abcdef01234567"],
                       "groupRoleAssignments": [{"groupId": s.demo.project_id, "roles": ["GROUP_READ_ONLY"]}]})
            }),
            success: 200,
            documents_400: true,
        },
        Op {
            id: "deleteOrgInvite",
            method: Method::DELETE,
            path: org_one,
            body: None,
            success: 204,
            documents_400: true,
        },
        Op {
            id: "getOrgInvite",
            method: Method::GET,
            path: org_one,
            body: None,
            success: 200,
            documents_400: true,
        },
        Op {
            id: "updateOrgInviteById",
            method: Method::PATCH,
            path: org_one,
            body: Some(|_| json!({"roles": ["ORG_BILLING_ADMIN", "ORG_MEMBER"]})),
            success: 200,
            documents_400: true,
        },
        Op {
            id: "listGroupInvites",
            method: Method::GET,
            path: group,
            body: None,
            success: 200,
            documents_400: false,
        },
        Op {
            id: "updateGroupInvites",
            method: Method::PATCH,
            path: group,
            body: Some(|_| json!({"username": "invitee@demo.example", "roles": ["GROUP_OWNER"]})),
            success: 200,
            documents_400: true,
        },
        Op {
            id: "createGroupInvite",
            method: Method::POST,
            path: group,
            body: Some(
                |_| json!({"username": "new@demo.example", "roles": ["GROUP_DATA_ACCESS_READ_ONLY"]}),
            ),
            success: 200,
            documents_400: false,
        },
        Op {
            id: "deleteGroupInvite",
            method: Method::DELETE,
            path: group_one,
            body: None,
            success: 204,
            documents_400: false,
        },
        Op {
            id: "getGroupInvite",
            method: Method::GET,
            path: group_one,
            body: None,
            success: 200,
            documents_400: false,
        },
        Op {
            id: "updateGroupInviteById",
            method: Method::PATCH,
            path: group_one,
            body: Some(|_| json!({"roles": ["GROUP_READ_ONLY", "GROUP_SEARCH_INDEX_EDITOR"]})),
            success: 200,
            documents_400: true,
        },
    ]
}

/// Sends `op` with Digest credentials `key` (None: anonymous), a JSON body of `content_type`.
async fn send(
    s: &TestServer,
    op: &Op,
    path: &str,
    key: Option<&(String, String)>,
    body: Option<(&str, Vec<u8>)>,
) -> reqwest::Response {
    let mut req = s
        .client
        .request(op.method.clone(), s.url(path))
        .header("Accept", VND);
    if let Some(key) = key {
        let answer = DigestAnswer::new(&s.challenge(path).await, &key.0, &key.1);
        req = req.header("Authorization", answer.header(op.method.as_str(), path, 1));
    }
    if let Some((ct, bytes)) = body {
        req = req.header("Content-Type", ct).body(bytes);
    }
    req.send().await.unwrap()
}

fn json_body(s: &TestServer, op: &Op) -> Option<(&'static str, Vec<u8>)> {
    op.body.map(|b| (VND, serde_json::to_vec(&b(s)).unwrap()))
}

fn assert_deprecated(r: &reqwest::Response) {
    assert_eq!(r.headers()["sunset"], "Thu, 01 Jul 2027 00:00:00 GMT");
    assert!(r.headers()["deprecation"]
        .to_str()
        .unwrap()
        .starts_with('@'));
}

#[tokio::test]
async fn every_operation_succeeds_for_the_owner_with_documented_headers_and_body() {
    for op in ops() {
        let s = TestServer::start().await;
        let path = (op.path)(&s, None);
        let r = send(&s, &op, &path, Some(&s.key("owner")), json_body(&s, &op)).await;
        assert_eq!(r.status().as_u16(), op.success, "{}", op.id);
        assert_deprecated(&r);
        let limit: i64 = r.headers()["ratelimit-limit"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let remaining: i64 = r.headers()["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            limit,
            invites_api::DEFAULT_RATE_LIMIT_PER_MINUTE as i64,
            "{}",
            op.id
        );
        assert!(remaining < limit, "{}", op.id);
        if op.success == 204 {
            assert_eq!(
                r.headers()["content-type"],
                VND,
                "{}: the contract declares the media type on 204",
                op.id
            );
            assert!(r.bytes().await.unwrap().is_empty(), "{}", op.id);
        } else {
            assert_eq!(r.headers()["content-type"], VND, "{}", op.id);
            let body: Value = r.json().await.unwrap();
            insta::assert_json_snapshot!(format!("success_{}", op.id), redact(body, &s));
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn every_operation_challenges_anonymous_callers() {
    let s = TestServer::start().await;
    for op in ops() {
        let r = send(&s, &op, &(op.path)(&s, None), None, json_body(&s, &op)).await;
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Digest "),
            "{}",
            op.id
        );
        api_error(r, 401, "NOT_AUTHENTICATED").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn every_operation_refuses_a_member_without_the_role() {
    let s = TestServer::start().await;
    for op in ops() {
        let r = send(
            &s,
            &op,
            &(op.path)(&s, None),
            Some(&s.key("member")),
            json_body(&s, &op),
        )
        .await;
        let body = api_error(r, 403, "USER_UNAUTHORIZED").await;
        assert_eq!(
            body["detail"], "Current user is not authorized to perform this action.",
            "{}",
            op.id
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn every_operation_hides_another_tenant_behind_404() {
    let s = TestServer::start().await;
    for op in ops() {
        let r = send(
            &s,
            &op,
            &(op.path)(&s, None),
            Some(&s.foreign_key),
            json_body(&s, &op),
        )
        .await;
        let code = if op.id.contains("Org") {
            "ORG_NOT_FOUND"
        } else {
            "GROUP_NOT_FOUND"
        };
        api_error(r, 404, code).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_where_documented_and_404_elsewhere_with_the_same_errorcode() {
    let s = TestServer::start().await;
    for op in ops() {
        let expected = if op.documents_400 { 400 } else { 404 };
        // A malformed parent id.
        let path = (op.path)(&s, None).replace(
            if op.id.contains("Org") {
                &s.demo.org_id
            } else {
                &s.demo.project_id
            },
            "NOT-A-HEX-ID",
        );
        let r = send(&s, &op, &path, Some(&s.key("owner")), json_body(&s, &op)).await;
        let body = api_error(r, expected, "INVALID_OBJECT_ID").await;
        assert_eq!(
            body["badRequestDetail"]["fields"][0]["field"],
            if op.id.contains("Org") {
                "orgId"
            } else {
                "groupId"
            }
        );
        // A body that breaks the rules.
        if op.body.is_some() {
            let bad = json!({"username": "not-an-email", "roles": ["NO_SUCH_ROLE"]});
            let r = send(
                &s,
                &op,
                &(op.path)(&s, None),
                Some(&s.key("owner")),
                Some((VND, serde_json::to_vec(&bad).unwrap())),
            )
            .await;
            let body = api_error(r, expected, "INVALID_ATTRIBUTE").await;
            let fields: Vec<&str> = body["badRequestDetail"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&"roles[0]"), "{}: {fields:?}", op.id);
            // Not JSON at all.
            let r = send(
                &s,
                &op,
                &(op.path)(&s, None),
                Some(&s.key("owner")),
                Some((VND, b"{oops".to_vec())),
            )
            .await;
            api_error(r, expected, "VALIDATION_ERROR").await;
            // Not a JSON media type.
            let r = send(
                &s,
                &op,
                &(op.path)(&s, None),
                Some(&s.key("owner")),
                Some(("text/plain", b"{}".to_vec())),
            )
            .await;
            api_error(r, expected, "UNSUPPORTED_MEDIA_TYPE").await;
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn every_operation_answers_429_past_the_rate_limit() {
    crate::support::within_one_window(20).await;
    let s = TestServer::start_with(invites_server::ServiceConfig {
        rate_limit_per_minute: 1,
        ..Default::default()
    })
    .await;
    for (i, op) in ops().iter().enumerate() {
        // Each op gets its own key, so the first request of each is allowed.
        let key = if i == 0 {
            s.key("owner")
        } else {
            fresh_owner_key(&s).await
        };
        let path = (op.path)(&s, Some("0123456789abcdef01234567"));
        let first = send(&s, op, &path, Some(&key), json_body(&s, op)).await;
        assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS, "{}", op.id);
        let r = send(&s, op, &path, Some(&key), json_body(&s, op)).await;
        assert_eq!(r.headers()["ratelimit-limit"], "1", "{}", op.id);
        assert_eq!(r.headers()["ratelimit-remaining"], "0", "{}", op.id);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{}: Retry-After {retry}", op.id);
        assert_deprecated(&r);
        api_error(r, 429, "RATE_LIMITED").await;
    }
    s.stop().await;
}

/// A new owner key of the demo org and project.
async fn fresh_owner_key(s: &TestServer) -> (String, String) {
    use invites_domain::{GroupRole, OrgRole};
    let k = invites_server::credentials::new_api_key();
    let org = s.demo.org_id.parse().unwrap();
    let rec = s
        .store
        .create_api_key(
            org,
            &k.public_key,
            "extra owner",
            &k.ha1_md5,
            &k.ha1_sha256,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    s.store
        .grant_org_role(org, rec.principal_id, OrgRole::Owner)
        .await
        .unwrap();
    s.store
        .grant_project_role(
            s.demo.project_id.parse().unwrap(),
            rec.principal_id,
            GroupRole::Owner,
        )
        .await
        .unwrap();
    (k.public_key, k.private_key)
}

#[tokio::test]
async fn creating_twice_updates_the_pending_invitation_and_patch_replaces_roles() {
    let s = TestServer::start().await;
    let ops = ops();
    let create = ops.iter().find(|o| o.id == "createGroupInvite").unwrap();
    let path = group(&s, None);
    let first: Value = send(
        &s,
        create,
        &path,
        Some(&s.key("owner")),
        json_body(&s, create),
    )
    .await
    .json()
    .await
    .unwrap();
    let again = json!({"username": "new@demo.example", "roles": ["GROUP_OWNER"]});
    let second: Value = send(
        &s,
        create,
        &path,
        Some(&s.key("owner")),
        Some((
            "application/json; charset=utf-8",
            serde_json::to_vec(&again).unwrap(),
        )),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["roles"], json!(["GROUP_OWNER"]));
    assert_eq!(
        second["inviterUsername"],
        format!("{}@api-key.invalid", s.key("owner").0)
    );

    let patch = ops
        .iter()
        .find(|o| o.id == "updateGroupInviteById")
        .unwrap();
    let by_id = group_one(&s, Some(first["id"].as_str().unwrap()));
    let body = json!({"roles": ["GROUP_READ_ONLY"]});
    let patched: Value = send(
        &s,
        patch,
        &by_id,
        Some(&s.key("owner")),
        Some((VND, serde_json::to_vec(&body).unwrap())),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        patched["roles"],
        json!(["GROUP_READ_ONLY"]),
        "replaced, not merged"
    );

    let trail = s
        .store
        .audit_for("invitation", first["id"].as_str().unwrap())
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "invitation.created",
            "invitation.updated",
            "invitation.updated"
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn org_invitations_only_assign_projects_of_their_org_and_unknown_usernames_are_404() {
    let s = TestServer::start().await;
    let ops = ops();
    let create = ops.iter().find(|o| o.id == "createOrgInvite").unwrap();
    let body = json!({"username": "x@demo.example", "roles": ["ORG_MEMBER"],
                      "groupRoleAssignments": [{"groupId": "0123456789abcdef01234567", "roles": ["GROUP_OWNER"]}]});
    let r = send(
        &s,
        create,
        &org(&s, None),
        Some(&s.key("owner")),
        Some((VND, serde_json::to_vec(&body).unwrap())),
    )
    .await;
    let err = api_error(r, 400, "INVALID_ATTRIBUTE").await;
    insta::assert_json_snapshot!("foreign_group_role_assignment", err);

    let update = ops.iter().find(|o| o.id == "updateOrgInvites").unwrap();
    let body = json!({"username": "nobody@demo.example", "roles": ["ORG_MEMBER"]});
    let r = send(
        &s,
        update,
        &org(&s, None),
        Some(&s.key("owner")),
        Some((VND, serde_json::to_vec(&body).unwrap())),
    )
    .await;
    api_error(r, 404, "INVITATION_NOT_FOUND").await;
    s.stop().await;
}

#[tokio::test]
async fn any_atlas_accept_version_is_served_the_2023_representation() {
    let s = TestServer::start().await;
    for accept in [
        "application/vnd.atlas.2024-11-13+json",
        "application/vnd.atlas.2025-03-12+json",
        "application/json",
        "*/*",
    ] {
        let path = org(&s, None);
        let answer = DigestAnswer::new(
            &s.challenge(&path).await,
            &s.key("owner").0,
            &s.key("owner").1,
        );
        let r = s
            .client
            .get(s.url(&path))
            .header("Authorization", answer.header("GET", &path, 1))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{accept}");
        assert_eq!(r.headers()["content-type"], VND, "{accept}");
    }
    s.stop().await;
}
