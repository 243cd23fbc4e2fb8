//! The authorization matrix: every kind of principal x every invitation operation of the three
//! families x its own tenant and another one, with the exact status each must get, written out by
//! hand from the rules (not derived from the code under test). Every request acts on a fresh
//! target, and every refused write is checked to have changed nothing: no cross-tenant read,
//! change or delete gets through.

use chrono::Utc;
use invites_domain::community::CommunityTarget;
use invites_domain::{GroupRole, NewInvitation, ObjectId, OrgRole};
use invites_server::credentials::new_api_key;
use invites_store::AuditEntry;
use reqwest::Method;
use serde_json::json;

use crate::support::{DigestAnswer, TestServer, VND};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    OrgOwner,
    OrgMember,
    ProjectUserAdmin,
    ProjectOwner,
    OtherTenantOwner,
    ServiceAccount,
    CommunityManager,
    CourseCreator,
    CommunityMember,
    Anonymous,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    AtlasOrg,
    AtlasProject,
    OpsManager,
    Group,
    Course,
}

const SCOPES: [Scope; 5] = [
    Scope::AtlasOrg,
    Scope::AtlasProject,
    Scope::OpsManager,
    Scope::Group,
    Scope::Course,
];

/// `S`: the operation's success status.
const S: u16 = 0;

/// Expected status per scope (in `SCOPES` order) on the caller's own tenant (the demo org and
/// project, the demo group and course) and on the other one (Other-Org and its project, a group
/// and a course nobody of the demo manages).
#[rustfmt::skip]
const MATRIX: [(Who, [u16; 5], [u16; 5]); 10] = [
    //                         own: org  proj  OM    group course   other: org proj OM  group course
    (Who::OrgOwner,         [S,   S,    S,    401,  401],  [404, 404, 404, 401, 401]),
    (Who::OrgMember,        [403, 403,  403,  401,  401],  [404, 404, 404, 401, 401]),
    (Who::ProjectUserAdmin, [403, 403,  S,    401,  401],  [404, 404, 404, 401, 401]),
    (Who::ProjectOwner,     [403, S,    S,    401,  401],  [404, 404, 404, 401, 401]),
    (Who::OtherTenantOwner, [404, 404,  404,  401,  401],  [S,   S,   S,   401, 401]),
    (Who::ServiceAccount,   [S,   S,    401,  401,  401],  [404, 404, 401, 401, 401]),
    (Who::CommunityManager, [401, 401,  401,  S,    S  ],  [401, 401, 401, 403, 403]),
    (Who::CourseCreator,    [401, 401,  401,  403,  S  ],  [401, 401, 401, 403, 403]),
    (Who::CommunityMember,  [401, 401,  401,  403,  403],  [401, 401, 401, 403, 403]),
    (Who::Anonymous,        [401, 401,  401,  401,  401],  [401, 401, 401, 401, 401]),
];

enum Credential {
    None,
    Digest(String, String),
    Bearer(String),
}

/// Where a scope's operations act.
struct Target {
    org: ObjectId,
    project: ObjectId,
    group: i64,
    course: i64,
}

struct Fixture {
    s: TestServer,
    own: Target,
    other: Target,
    project_owner: (String, String),
    sa_token: String,
    inviter: i64,
    n: std::cell::Cell<u32>,
}

impl Fixture {
    async fn new() -> Fixture {
        // Hundreds of deliberate 401s from one address: the failed-attempt limit would lock the
        // rest out (it has its own test in auth.rs).
        let s = TestServer::start_with(invites_server::ServiceConfig {
            failed_auth_per_address: 0,
            failed_auth_per_key: 0,
            ..invites_server::ServiceConfig::default()
        })
        .await;
        let now = Utc::now();
        let org: ObjectId = s.demo.org_id.parse().unwrap();
        let project: ObjectId = s.demo.project_id.parse().unwrap();
        // A project owner who is only a member of the organization.
        let k = new_api_key();
        let rec = s
            .store
            .create_api_key(
                org,
                &k.public_key,
                "project owner",
                &k.ha1_md5,
                &k.ha1_sha256,
                now,
            )
            .await
            .unwrap();
        s.store
            .grant_org_role(org, rec.principal_id, OrgRole::Member)
            .await
            .unwrap();
        s.store
            .grant_project_role(project, rec.principal_id, GroupRole::Owner)
            .await
            .unwrap();
        // A group and a course nobody of the demo manages.
        let stranger = s
            .store
            .create_user("stranger@example.com", "", now)
            .await
            .unwrap();
        let other_group = s
            .store
            .create_community_group("Other Group", now)
            .await
            .unwrap();
        let other_course = s
            .store
            .create_course("Other Course", stranger.id, now)
            .await
            .unwrap();
        let sa_token = s.service_account_token().await;
        let inviter = s
            .store
            .user_by_username("manager@demo.example")
            .await
            .unwrap()
            .unwrap()
            .id;
        Fixture {
            own: Target {
                org,
                project,
                group: s.demo.community_group_id,
                course: s.demo.course_id,
            },
            other: Target {
                org: s.foreign_org.parse().unwrap(),
                project: s.foreign_project.parse().unwrap(),
                group: other_group.id,
                course: other_course.id,
            },
            project_owner: (k.public_key, k.private_key),
            sa_token,
            inviter,
            n: std::cell::Cell::new(0),
            s,
        }
    }

    fn credential(&self, who: Who) -> Credential {
        let token = |role: &str| Credential::Bearer(self.s.user_token(role));
        match who {
            Who::OrgOwner => self.digest(self.s.key("owner")),
            Who::OrgMember => self.digest(self.s.key("member")),
            Who::ProjectUserAdmin => self.digest(self.s.key("user-admin")),
            Who::ProjectOwner => self.digest(self.project_owner.clone()),
            Who::OtherTenantOwner => self.digest(self.s.foreign_key.clone()),
            Who::ServiceAccount => Credential::Bearer(self.sa_token.clone()),
            Who::CommunityManager => token("manager"),
            Who::CourseCreator => token("creator"),
            Who::CommunityMember => token("member"),
            Who::Anonymous => Credential::None,
        }
    }

    fn digest(&self, key: (String, String)) -> Credential {
        Credential::Digest(key.0, key.1)
    }

    fn unique(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    async fn send(
        &self,
        cred: &Credential,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> u16 {
        let mut req = self.s.client.request(method.clone(), self.s.url(path));
        match cred {
            Credential::None => {}
            Credential::Bearer(t) => req = req.bearer_auth(t),
            Credential::Digest(user, pass) => {
                // Community paths challenge for Bearer; a nonce from any Digest path is valid.
                let from = if path.starts_with("/api/v2/") {
                    format!("/api/atlas/v2/orgs/{}/invites", self.own.org)
                } else {
                    path.to_owned()
                };
                let challenge = self.s.challenge(&from).await;
                let header =
                    DigestAnswer::new(&challenge, user, pass).header(method.as_str(), path, 1);
                req = req.header("Authorization", header);
            }
        }
        if let Some((ct, b)) = body {
            req = req.header("Content-Type", ct).body(b);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// A fresh pending Atlas/Ops Manager invitation in `org` (a project invitation when `project`).
    async fn fresh_invitation(
        &self,
        org: ObjectId,
        project: Option<ObjectId>,
    ) -> (ObjectId, String) {
        let username = format!("authz{}@example.com", self.unique());
        let roles = if project.is_some() {
            "GROUP_READ_ONLY"
        } else {
            "ORG_MEMBER"
        };
        let inv = self
            .s
            .store
            .create_invitation(
                &NewInvitation {
                    org_id: org,
                    project_id: project,
                    username: username.clone(),
                    inviter_username: "owner@demo.example".into(),
                    roles: vec![roles.into()],
                    team_ids: vec![],
                    group_role_assignments: vec![],
                },
                &AuditEntry::operator(Utc::now()),
            )
            .await
            .unwrap();
        (inv.id, username)
    }

    /// Runs every operation of `scope` on `target` as `who`; returns (operation, expected, got)
    /// for each mismatch, and checks that a refused write changed nothing.
    async fn check(&self, who: Who, scope: Scope, target: &Target, expected: u16) -> Vec<String> {
        let cred = self.credential(who);
        let mut wrong = Vec::new();
        let mut expect = |op: &str, success: u16, got: u16| {
            let want = if expected == S { success } else { expected };
            if got != want {
                wrong.push(format!(
                    "{who:?} {scope:?} {op}: expected {want}, got {got}"
                ));
            }
        };
        match scope {
            Scope::AtlasOrg | Scope::AtlasProject | Scope::OpsManager => {
                let project = (scope != Scope::AtlasOrg).then_some(target.project);
                let (base, media, role) = match scope {
                    Scope::AtlasOrg => (
                        format!("/api/atlas/v2/orgs/{}/invites", target.org),
                        VND,
                        "ORG_BILLING_ADMIN",
                    ),
                    Scope::AtlasProject => (
                        format!("/api/atlas/v2/groups/{}/invites", target.project),
                        VND,
                        "GROUP_CLUSTER_MANAGER",
                    ),
                    _ => (
                        format!("/api/public/v1.0/groups/{}/invites", target.project),
                        "application/json",
                        "GROUP_CLUSTER_MANAGER",
                    ),
                };
                expect(
                    "list",
                    200,
                    self.send(&cred, Method::GET, &base, None).await,
                );
                let new_user = format!("authz-new{}@example.com", self.unique());
                let body = json!({"username": new_user, "roles": [role]}).to_string();
                expect(
                    "create",
                    200,
                    self.send(&cred, Method::POST, &base, Some((media, body)))
                        .await,
                );
                let (id, username) = self.fresh_invitation(target.org, project).await;
                expect(
                    "get",
                    200,
                    self.send(&cred, Method::GET, &format!("{base}/{id}"), None)
                        .await,
                );
                let body = json!({"roles": [role]}).to_string();
                expect(
                    "update",
                    200,
                    self.send(
                        &cred,
                        Method::PATCH,
                        &format!("{base}/{id}"),
                        Some((media, body)),
                    )
                    .await,
                );
                let body = json!({"username": username, "roles": [role]}).to_string();
                expect(
                    "update by username",
                    200,
                    self.send(&cred, Method::PATCH, &base, Some((media, body)))
                        .await,
                );
                let (victim, _) = self.fresh_invitation(target.org, project).await;
                let got = self
                    .send(&cred, Method::DELETE, &format!("{base}/{victim}"), None)
                    .await;
                expect("delete", 204, got);
                if expected != S {
                    // Refused: both invitations are as they were.
                    let kept = self.s.store.invitation(victim).await.unwrap();
                    assert!(
                        kept.is_some(),
                        "{who:?} {scope:?}: a refused delete removed {victim}"
                    );
                    let untouched = self.s.store.invitation(id).await.unwrap().unwrap();
                    assert_ne!(
                        untouched.roles,
                        vec![role.to_owned()],
                        "{who:?} {scope:?}: a refused update changed {id}"
                    );
                }
            }
            Scope::Group | Scope::Course => {
                let (kind, id, community) = match scope {
                    Scope::Group => ("group", target.group, CommunityTarget::Group(target.group)),
                    _ => (
                        "course",
                        target.course,
                        CommunityTarget::Course(target.course),
                    ),
                };
                let base = format!("/api/v2/{kind}/{id}/invite/");
                expect(
                    "list",
                    200,
                    self.send(&cred, Method::GET, &base, None).await,
                );
                let now = Utc::now();
                let newcomer = self
                    .s
                    .store
                    .create_user(&format!("c{}@example.com", self.unique()), "", now)
                    .await
                    .unwrap();
                let body = json!({"users": [newcomer.id]}).to_string();
                expect(
                    "invite",
                    204,
                    self.send(&cred, Method::POST, &base, Some(("application/json", body)))
                        .await,
                );
                let invited = self
                    .s
                    .store
                    .create_user(&format!("c{}@example.com", self.unique()), "", now)
                    .await
                    .unwrap();
                let (g, c) = match scope {
                    Scope::Group => (Some(id), None),
                    _ => (None, Some(id)),
                };
                self.s
                    .store
                    .invite_to_community(g, c, invited.id, Some(self.inviter), now)
                    .await
                    .unwrap();
                let body = json!({"users": [invited.id]}).to_string();
                expect(
                    "remove",
                    204,
                    self.send(
                        &cred,
                        Method::DELETE,
                        &base,
                        Some(("application/json", body)),
                    )
                    .await,
                );
                if expected != S {
                    let (_, pending) = self
                        .s
                        .store
                        .invited_users(community, 1000, 0)
                        .await
                        .unwrap();
                    let ids: Vec<i64> = pending.iter().map(|u| u.id).collect();
                    assert!(
                        ids.contains(&invited.id),
                        "{who:?} {scope:?}: a refused removal removed {}",
                        invited.id
                    );
                    assert!(
                        !ids.contains(&newcomer.id),
                        "{who:?} {scope:?}: a refused invite invited {}",
                        newcomer.id
                    );
                }
            }
        }
        wrong
    }
}

#[tokio::test]
async fn every_principal_gets_exactly_its_status_on_every_operation() {
    let f = Fixture::new().await;
    let mut wrong = Vec::new();
    for (who, own, other) in MATRIX {
        for (i, scope) in SCOPES.iter().enumerate() {
            wrong.extend(f.check(who, *scope, &f.own, own[i]).await);
            wrong.extend(f.check(who, *scope, &f.other, other[i]).await);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
