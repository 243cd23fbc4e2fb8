//! Atlas invitation reads and removals: bodies, authorization and the removal rules.

use reqwest::{Method, StatusCode};

use crate::support::{api_error, redact, TestServer, VND};

#[tokio::test]
async fn org_invitations_list_and_get_with_atlas_fields() {
    let s = TestServer::start().await;
    let r = s
        .digest(
            Method::GET,
            &format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id),
            &s.key("owner"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], VND);
    let list: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the pending org invitation: {list}"
    );
    let created = list[0]["createdAt"].as_str().unwrap();
    let expires = list[0]["expiresAt"].as_str().unwrap();
    let days = chrono::DateTime::parse_from_rfc3339(expires).unwrap()
        - chrono::DateTime::parse_from_rfc3339(created).unwrap();
    assert_eq!(days.num_days(), 30);
    insta::assert_json_snapshot!("org_invitation_list", redact(list, &s));

    let path = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    let one: serde_json::Value = s
        .digest(Method::GET, &path, &s.key("owner"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], s.demo.pending_org_invitation_id.as_str());
    assert_eq!(one["orgName"], "Demo-Org");
    s.stop().await;
}

#[tokio::test]
async fn project_invitations_list_with_group_fields() {
    let s = TestServer::start().await;
    let path = format!(
        "/api/atlas/v2/groups/{}/invites?username=invitee@demo.example",
        s.demo.project_id
    );
    let r = s.digest(Method::GET, &path, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: serde_json::Value = r.json().await.unwrap();
    insta::assert_json_snapshot!("group_invitation_list", redact(list, &s));
    let none = s
        .digest(
            Method::GET,
            &format!(
                "/api/atlas/v2/groups/{}/invites?username=nobody@demo.example",
                s.demo.project_id
            ),
            &s.key("owner"),
        )
        .await;
    assert_eq!(
        none.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([])
    );
    s.stop().await;
}

#[tokio::test]
async fn removing_a_project_invitation_leaves_the_org_invitation_and_writes_audit() {
    let s = TestServer::start().await;
    let path = format!(
        "/api/atlas/v2/groups/{}/invites/{}",
        s.demo.project_id, s.demo.pending_project_invitation_id
    );
    let r = s.digest(Method::DELETE, &path, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.content_length(), Some(0));
    assert!(r.bytes().await.unwrap().is_empty());
    let again = s.digest(Method::DELETE, &path, &s.key("owner")).await;
    api_error(again, 404, "INVITATION_NOT_FOUND").await;
    let org = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    assert_eq!(
        s.digest(Method::GET, &org, &s.key("owner")).await.status(),
        StatusCode::OK
    );
    let trail = s
        .store
        .audit_for("invitation", &s.demo.pending_project_invitation_id)
        .await
        .unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.action, "invitation.removed");
    assert_eq!(last.actor_kind, "api_key");
    assert_eq!(last.actor_display, s.key("owner").0);
    assert_eq!(last.remote_addr.as_deref(), Some("127.0.0.1"));
    s.stop().await;
}

#[tokio::test]
async fn org_path_refuses_project_invitations_and_accepted_ones_are_gone() {
    let s = TestServer::start().await;
    let wrong = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_project_invitation_id
    );
    let body = api_error(
        s.digest(Method::DELETE, &wrong, &s.key("owner")).await,
        400,
        "CANNOT_DELETE_GROUP_INVITATION",
    )
    .await;
    insta::assert_json_snapshot!("cannot_delete_group_invitation", body, {".detail" => "[detail]", ".parameters" => "[ids]"});
    let accepted = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.accepted_org_invitation_id
    );
    api_error(
        s.digest(Method::DELETE, &accepted, &s.key("owner")).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    // The reverse: an org invitation through a project path is not there.
    let reverse = format!(
        "/api/atlas/v2/groups/{}/invites/{}",
        s.demo.project_id, s.demo.pending_org_invitation_id
    );
    api_error(
        s.digest(Method::DELETE, &reverse, &s.key("owner")).await,
        404,
        "INVITATION_NOT_FOUND",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn roles_decide_between_403_and_404() {
    let s = TestServer::start().await;
    let org = format!(
        "/api/atlas/v2/orgs/{}/invites/{}",
        s.demo.org_id, s.demo.pending_org_invitation_id
    );
    let project = format!(
        "/api/atlas/v2/groups/{}/invites/{}",
        s.demo.project_id, s.demo.pending_project_invitation_id
    );
    // A member of the org without the owner role: 403.
    api_error(
        s.digest(Method::DELETE, &org, &s.key("member")).await,
        403,
        "USER_UNAUTHORIZED",
    )
    .await;
    api_error(
        s.digest(Method::DELETE, &project, &s.key("member")).await,
        403,
        "USER_UNAUTHORIZED",
    )
    .await;
    // A project user admin is not a project owner on the Atlas family.
    api_error(
        s.digest(Method::DELETE, &project, &s.key("user-admin"))
            .await,
        403,
        "USER_UNAUTHORIZED",
    )
    .await;
    // Another tenant's owner learns nothing: 404.
    api_error(
        s.digest(Method::DELETE, &org, &s.foreign_key).await,
        404,
        "ORG_NOT_FOUND",
    )
    .await;
    api_error(
        s.digest(Method::GET, &project, &s.foreign_key).await,
        404,
        "GROUP_NOT_FOUND",
    )
    .await;
    // Nothing was removed by any of them.
    assert_eq!(
        s.digest(Method::GET, &org, &s.key("owner")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.digest(Method::GET, &project, &s.key("owner"))
            .await
            .status(),
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test]
async fn malformed_ids_follow_each_operations_documented_statuses() {
    let s = TestServer::start().await;
    // getOrgInvite documents 400 and types invitationId as 24-hex: a malformed one is a 400.
    let r = s
        .digest(
            Method::GET,
            &format!("/api/atlas/v2/orgs/{}/invites/XYZ", s.demo.org_id),
            &s.key("owner"),
        )
        .await;
    api_error(r, 400, "INVALID_OBJECT_ID").await;
    // deleteOrgInvite gives invitationId no pattern: any string is a valid id, and XYZ names none.
    let r = s
        .digest(
            Method::DELETE,
            &format!("/api/atlas/v2/orgs/{}/invites/XYZ", s.demo.org_id),
            &s.key("owner"),
        )
        .await;
    api_error(r, 404, "INVITATION_NOT_FOUND").await;
    // A malformed orgId (which has a pattern) is a 400 on deleteOrgInvite.
    let r = s
        .digest(
            Method::DELETE,
            "/api/atlas/v2/orgs/not-an-id/invites/0123456789abcdef01234567",
            &s.key("owner"),
        )
        .await;
    api_error(r, 400, "INVALID_OBJECT_ID").await;
    // deleteGroupInvite does not: a malformed id names nothing, 404, with the errorCode that says why.
    let r = s
        .digest(
            Method::DELETE,
            &format!("/api/atlas/v2/groups/{}/invites/XYZ", s.demo.project_id),
            &s.key("owner"),
        )
        .await;
    let body = api_error(r, 404, "INVALID_OBJECT_ID").await;
    assert_eq!(body["reason"], "Not Found");
    assert_eq!(
        body["badRequestDetail"]["fields"][0]["field"],
        "invitationId"
    );
    let r = s
        .digest(
            Method::DELETE,
            "/api/atlas/v2/groups/NOPE/invites/0123456789abcdef01234567",
            &s.key("owner"),
        )
        .await;
    api_error(r, 404, "INVALID_OBJECT_ID").await;
    s.stop().await;
}

#[tokio::test]
async fn an_org_owner_is_not_a_project_owner_unless_granted() {
    let s = TestServer::start().await;
    use invites_domain::{GroupRole, OrgRole};
    let k = invites_server::credentials::new_api_key();
    let org: invites_domain::ObjectId = s.demo.org_id.parse().unwrap();
    let rec = s
        .store
        .create_api_key(
            org,
            &k.public_key,
            "org owner only",
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
    let key = (k.public_key, k.private_key);
    let project = format!("/api/atlas/v2/groups/{}/invites", s.demo.project_id);
    // It sees the project (it owns the org) but may not manage its invitations.
    api_error(
        s.digest(Method::GET, &project, &key).await,
        403,
        "USER_UNAUTHORIZED",
    )
    .await;
    let org_path = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    assert_eq!(
        s.digest(Method::GET, &org_path, &key).await.status(),
        StatusCode::OK
    );
    // Once the data says so, it may.
    s.store
        .grant_project_role(
            s.demo.project_id.parse().unwrap(),
            rec.principal_id,
            GroupRole::Owner,
        )
        .await
        .unwrap();
    assert_eq!(
        s.digest(Method::GET, &project, &key).await.status(),
        StatusCode::OK
    );
    s.stop().await;
}

/// Lists are served from kept bytes while nothing changed (see invites-api's `list_cache`): every
/// change, through the API or straight into the database by another program, shows at once.
#[tokio::test]
async fn a_list_asked_again_follows_every_change_whoever_makes_it() {
    let s = TestServer::start().await;
    let path = format!("/api/atlas/v2/orgs/{}/invites", s.demo.org_id);
    let usernames = |list: serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = || async {
        let r = s.digest(Method::GET, &path, &s.key("owner")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], VND);
        r.json::<serde_json::Value>().await.unwrap()
    };
    let first = list().await;
    assert_eq!(first.as_array().unwrap().len(), 1, "{first}");
    assert_eq!(list().await, first, "asked again, nothing changed");

    // A removal through the API.
    let one = format!("{path}/{}", s.demo.pending_org_invitation_id);
    let r = s.digest(Method::DELETE, &one, &s.key("owner")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        list().await,
        serde_json::json!([]),
        "the removal shows at once"
    );

    // A row written into the database by another program.
    let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.db_path().display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO invitations (id, org_id, project_id, username, inviter_username, roles, \
         team_ids, group_role_assignments, status, created_at, expires_at) \
         VALUES ('aaaaaaaaaaaaaaaaaaaaaaaa', $1, NULL, 'outside@demo.example', 'sql', \
         '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', 0, 2592000000)",
    )
    .bind(&s.demo.org_id)
    .execute(&other)
    .await
    .unwrap();
    assert_eq!(usernames(list().await), ["outside@demo.example"]);
    sqlx::query("UPDATE invitations SET status = 'ACCEPTED' WHERE id = 'aaaaaaaaaaaaaaaaaaaaaaaa'")
        .execute(&other)
        .await
        .unwrap();
    assert_eq!(
        list().await,
        serde_json::json!([]),
        "accepted outside the API"
    );
    other.close().await;

    // A kept list is still only for callers allowed to list it.
    list().await;
    let r = s.digest(Method::GET, &path, &s.foreign_key).await;
    let status = r.status();
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "another organization's owner: {status}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["errorCode"].is_string(), "an ApiError: {body}");
    s.stop().await;
}
