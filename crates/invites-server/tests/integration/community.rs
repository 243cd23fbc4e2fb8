//! Community groups and courses: listing, inviting, all-or-nothing removal in three body shapes,
//! joining, and who may do what. Ends with a property test of bulk removal over HTTP.

use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{api_error, TestServer};

const FORM: &str = "application/x-www-form-urlencoded";

async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&str, String)>,
) -> reqwest::Response {
    let mut req = s
        .client
        .request(method, s.url(path))
        .bearer_auth(token)
        .header("Accept", "application/json");
    if let Some((ct, b)) = body {
        req = req.header("Content-Type", ct).body(b);
    }
    req.send().await.unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

async fn invited(s: &TestServer, kind: &str, id: i64) -> Vec<i64> {
    let r = call(
        s,
        Method::GET,
        &format!("/api/v2/{kind}/{id}/invite/"),
        &s.user_token("manager"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    ids(&r.json().await.unwrap())
}

#[tokio::test]
async fn managers_list_invited_users_page_by_page() {
    let s = TestServer::start().await;
    let g = s.demo.community_group_id;
    let r = call(
        &s,
        Method::GET,
        &format!("/api/v2/group/{g}/invite/"),
        &s.user_token("manager"),
        None,
    )
    .await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let page: Value = r.json().await.unwrap();
    let text = page.to_string().replace(&s.base, "http://[host]");
    insta::assert_json_snapshot!(
        "community_list",
        serde_json::from_str::<Value>(&text).unwrap()
    );
    assert_eq!(ids(&page), s.demo.invited_user_ids);

    let r = call(
        &s,
        Method::GET,
        &format!("/api/v2/group/{g}/invite/?limit=2&offset=0"),
        &s.user_token("manager"),
        None,
    )
    .await;
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["count"], 3);
    assert_eq!(ids(&first).len(), 2);
    let next = first["next"].as_str().unwrap().to_owned();
    assert!(first["previous"].is_null());
    let second: Value = s
        .client
        .get(&next)
        .bearer_auth(s.user_token("manager"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&second), vec![s.demo.invited_user_ids[2]]);
    assert!(second["next"].is_null());
    assert!(second["previous"].as_str().unwrap().ends_with("offset=0"));

    for bad in ["limit=0", "limit=abc", "offset=-1", "limit=1001"] {
        let r = call(
            &s,
            Method::GET,
            &format!("/api/v2/group/{g}/invite/?{bad}"),
            &s.user_token("manager"),
            None,
        )
        .await;
        api_error(r, 400, "INVALID_ATTRIBUTE").await;
    }
    // The largest offset the document allows: an empty page, not an overflow (schemathesis found
    // `offset + limit` panicking the connection away once the bounds were documented).
    let r = call(
        &s,
        Method::GET,
        &format!("/api/v2/group/{g}/invite/?limit=1000&offset={}", i64::MAX),
        &s.user_token("manager"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let last: Value = r.json().await.unwrap();
    assert_eq!((ids(&last).len(), last["next"].is_null()), (0, true));
    s.stop().await;
}

#[tokio::test]
async fn removal_takes_json_forms_and_the_documented_example() {
    let s = TestServer::start().await;
    let g = s.demo.community_group_id;
    let path = format!("/api/v2/group/{g}/invite/");
    let [a, b, c] = [
        s.demo.invited_user_ids[0],
        s.demo.invited_user_ids[1],
        s.demo.invited_user_ids[2],
    ];
    let r = call(
        &s,
        Method::DELETE,
        &path,
        &s.user_token("manager"),
        Some(("application/json", json!({"users": [a]}).to_string())),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = call(
        &s,
        Method::DELETE,
        &path,
        &s.user_token("manager"),
        Some((FORM, format!("users={b}"))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The seed's example: a JSON text under the form content type (and the path without its slash).
    let r = call(
        &s,
        Method::DELETE,
        &format!("/api/v2/group/{g}/invite"),
        &s.user_token("manager"),
        Some((FORM, format!("{{\n  \"users\": [{c}]\n}}"))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(invited(&s, "group", g).await.is_empty());
    let trail = s
        .store
        .audit_for("community_invitation", "1")
        .await
        .unwrap();
    assert_eq!(trail.last().unwrap().action, "community_invitation.removed");
    s.stop().await;
}

#[tokio::test]
async fn removal_is_all_or_nothing_and_names_the_offending_users() {
    let s = TestServer::start().await;
    let g = s.demo.community_group_id;
    let path = format!("/api/v2/group/{g}/invite/");
    let a = s.demo.invited_user_ids[0];
    let manager_id = s.demo.community_users[0].user_id;
    let body = json!({"users": [a, 9999, manager_id]}).to_string();
    let r = call(
        &s,
        Method::DELETE,
        &path,
        &s.user_token("manager"),
        Some(("application/json", body)),
    )
    .await;
    let err = api_error(r, 400, "INVALID_USER_IDS").await;
    let named: Vec<&str> = err["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_str().unwrap())
        .collect();
    assert_eq!(named, [9999.to_string(), manager_id.to_string()]);
    insta::assert_json_snapshot!("community_offending_users", err, {".detail" => "[detail]", ".parameters" => "[ids]", ".badRequestDetail.fields[0].description" => "[detail]"});
    assert_eq!(
        invited(&s, "group", g).await,
        s.demo.invited_user_ids,
        "nothing was removed"
    );

    let cases: [(&str, String, &str); 5] = [
        ("application/json", "{}".into(), "INVALID_ATTRIBUTE"),
        (
            "application/json",
            r#"{"users": []}"#.into(),
            "INVALID_ATTRIBUTE",
        ),
        (FORM, "users=abc".into(), "INVALID_USER_IDS"),
        (
            FORM,
            "{\n  \"users\": [\"integer\"]\n}".into(),
            "INVALID_USER_IDS",
        ),
        ("application/json", "{not json".into(), "VALIDATION_ERROR"),
    ];
    for (ct, body, code) in cases {
        let r = call(
            &s,
            Method::DELETE,
            &path,
            &s.user_token("manager"),
            Some((ct, body.clone())),
        )
        .await;
        let err = api_error(r, 400, code).await;
        assert!(!err["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let r = call(
        &s,
        Method::DELETE,
        &path,
        &s.user_token("manager"),
        Some(("text/plain", "users=1".into())),
    )
    .await;
    api_error(r, 400, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(invited(&s, "group", g).await, s.demo.invited_user_ids);
    s.stop().await;
}

#[tokio::test]
async fn who_may_manage_groups_and_courses() {
    let s = TestServer::start().await;
    let (g, c) = (s.demo.community_group_id, s.demo.course_id);
    let body = || {
        Some((
            "application/json",
            json!({"users": [s.demo.invited_user_ids[0]]}).to_string(),
        ))
    };
    // A plain member: 403 everywhere.
    for path in [
        format!("/api/v2/group/{g}/invite/"),
        format!("/api/v2/course/{c}/invite/"),
    ] {
        api_error(
            call(&s, Method::GET, &path, &s.user_token("member"), None).await,
            403,
            "USER_UNAUTHORIZED",
        )
        .await;
        api_error(
            call(&s, Method::DELETE, &path, &s.user_token("member"), body()).await,
            403,
            "USER_UNAUTHORIZED",
        )
        .await;
        api_error(
            call(&s, Method::POST, &path, &s.user_token("member"), body()).await,
            403,
            "USER_UNAUTHORIZED",
        )
        .await;
    }
    // The course's creator may; in the group the creator holds no role: 403.
    let r = call(
        &s,
        Method::DELETE,
        &format!("/api/v2/course/{c}/invite/"),
        &s.user_token("creator"),
        body(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    api_error(
        call(
            &s,
            Method::DELETE,
            &format!("/api/v2/group/{g}/invite/"),
            &s.user_token("creator"),
            body(),
        )
        .await,
        403,
        "USER_UNAUTHORIZED",
    )
    .await;
    // Unknown or malformed targets: 404, on every operation.
    for (method, path) in [
        (Method::POST, "/api/v2/group/9999/invite/"),
        (Method::DELETE, "/api/v2/course/9999/invite/"),
        (Method::POST, "/api/v2/course/9999/join/"),
        (Method::POST, "/api/v2/group/x/join/"),
    ] {
        let r = call(&s, method, path, &s.user_token("manager"), body()).await;
        api_error(r, 404, "COMMUNITY_RESOURCE_NOT_FOUND").await;
    }
    api_error(
        call(
            &s,
            Method::GET,
            "/api/v2/group/9999/invite/",
            &s.user_token("manager"),
            None,
        )
        .await,
        404,
        "COMMUNITY_RESOURCE_NOT_FOUND",
    )
    .await;
    api_error(
        call(
            &s,
            Method::DELETE,
            "/api/v2/course/abc/invite/",
            &s.user_token("manager"),
            body(),
        )
        .await,
        404,
        "COMMUNITY_RESOURCE_NOT_FOUND",
    )
    .await;
    // No token, or a token that does not exist: 401 with a Bearer challenge, on every operation.
    for (method, path) in [
        (Method::GET, format!("/api/v2/group/{g}/invite/")),
        (Method::POST, format!("/api/v2/group/{g}/invite/")),
        (Method::DELETE, format!("/api/v2/course/{c}/invite/")),
        (Method::POST, format!("/api/v2/course/{c}/join/")),
    ] {
        let r = s.anonymous(method.clone(), &path).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"community\""
        );
        api_error(r, 401, "NOT_AUTHENTICATED").await;
        api_error(
            call(&s, method, &path, "cmt_not_a_token", body()).await,
            401,
            "NOT_AUTHENTICATED",
        )
        .await;
    }
    s.stop().await;
}

#[tokio::test]
async fn inviting_then_joining() {
    let s = TestServer::start().await;
    let g = s.demo.community_group_id;
    let now = chrono::Utc::now();
    let newcomer = s
        .store
        .create_user("newcomer@demo.example", "Newcomer", now)
        .await
        .unwrap();
    let path = format!("/api/v2/group/{g}/invite/");
    let r = call(
        &s,
        Method::POST,
        &path,
        &s.user_token("manager"),
        Some((FORM, format!("users={}&users=9999", newcomer.id))),
    )
    .await;
    api_error(r, 400, "INVALID_USER_IDS").await;
    assert!(
        !invited(&s, "group", g).await.contains(&newcomer.id),
        "all or nothing"
    );
    let r = call(
        &s,
        Method::POST,
        &path,
        &s.user_token("manager"),
        Some((
            "application/json",
            json!({"users": [newcomer.id]}).to_string(),
        )),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(invited(&s, "group", g).await.contains(&newcomer.id));

    let token = "cmt_newcomer_token_for_tests";
    s.store
        .create_access_token(
            newcomer.principal_id,
            &invites_server::credentials::sha256_hex(token),
            None,
            now,
        )
        .await
        .unwrap();
    let join = format!("/api/v2/group/{g}/join/");
    assert_eq!(
        call(&s, Method::POST, &join, token, None).await.status(),
        StatusCode::NO_CONTENT
    );
    api_error(
        call(&s, Method::POST, &join, token, None).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    assert!(!invited(&s, "group", g).await.contains(&newcomer.id));
    // Once a member, removing their (accepted) invitation is refused: nothing pending.
    let r = call(
        &s,
        Method::DELETE,
        &path,
        &s.user_token("manager"),
        Some((
            "application/json",
            json!({"users": [newcomer.id]}).to_string(),
        )),
    )
    .await;
    api_error(r, 400, "INVALID_USER_IDS").await;
    s.stop().await;
}

/// For any list of user ids (valid, duplicated, unknown, mixed), DELETE removes exactly the listed
/// pending invitations, or none; its 400 names exactly the ids without a pending invitation.
#[test]
fn bulk_removal_is_exact_or_nothing_for_any_list() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(TestServer::start());
    let g = s.demo.community_group_id;
    let now = chrono::Utc::now();
    // Ten users; invitations are re-created before each case.
    let users: Vec<i64> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..10 {
            v.push(
                s.store
                    .create_user(&format!("prop{i}@demo.example"), "", now)
                    .await
                    .unwrap()
                    .id,
            );
        }
        v
    });
    let pick = proptest::collection::vec(0usize..14, 1..12);
    let pending_mask = proptest::collection::vec(any::<bool>(), 10);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    runner
        .run(&(pick, pending_mask), |(picks, mask)| {
            rt.block_on(async {
                let target = invites_domain::community::CommunityTarget::Group(g);
                let audit = invites_store::AuditEntry::operator(now);
                // Reset: remove whatever of our ten users is pending, then invite the masked ones.
                let (_, current) = s.store.invited_users(target, 1000, 0).await.unwrap();
                let ours: Vec<i64> = current
                    .iter()
                    .map(|u| u.id)
                    .filter(|id| users.contains(id))
                    .collect();
                if !ours.is_empty() {
                    assert!(s
                        .store
                        .remove_invitations(target, &ours, &audit)
                        .await
                        .unwrap()
                        .is_empty());
                }
                let pending: Vec<i64> = users
                    .iter()
                    .zip(&mask)
                    .filter(|(_, m)| **m)
                    .map(|(u, _)| *u)
                    .collect();
                if !pending.is_empty() {
                    assert!(s
                        .store
                        .invite_users(target, &pending, None, &audit)
                        .await
                        .unwrap()
                        .is_empty());
                }
                // Ids 10..13 name users that do not exist.
                let listed: Vec<i64> = picks
                    .iter()
                    .map(|&i| users.get(i).copied().unwrap_or(900_000 + i as i64))
                    .collect();
                let mut expected_offending: Vec<i64> = Vec::new();
                for id in &listed {
                    if !pending.contains(id) && !expected_offending.contains(id) {
                        expected_offending.push(*id);
                    }
                }
                let before = invited(&s, "group", g).await;
                let r = call(
                    &s,
                    Method::DELETE,
                    &format!("/api/v2/group/{g}/invite/"),
                    &s.user_token("manager"),
                    Some(("application/json", json!({"users": listed}).to_string())),
                )
                .await;
                let after = invited(&s, "group", g).await;
                if expected_offending.is_empty() {
                    prop_assert_eq!(r.status(), StatusCode::NO_CONTENT);
                    let expected: Vec<i64> = before
                        .iter()
                        .copied()
                        .filter(|id| !listed.contains(id))
                        .collect();
                    prop_assert_eq!(after, expected);
                } else {
                    prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST);
                    let err: Value = r.json().await.unwrap();
                    let named: Vec<i64> = err["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["value"].as_str().unwrap().parse().unwrap())
                        .collect();
                    prop_assert_eq!(named, expected_offending);
                    prop_assert_eq!(after, before, "nothing removed");
                }
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(s.stop());
}
