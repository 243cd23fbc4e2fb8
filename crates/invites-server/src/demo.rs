//! The demo data set behind `invites serve --demo`: one tenant of each family with every kind of
//! principal, and invitations in every state, so each endpoint can be tried at once.
//!
//! Secrets are never stored, so they cannot be shown again: on a database that already holds the
//! demo data, the demo credentials are rotated and the new ones printed. What the printed
//! examples remove is made again at every start (a pending organization and project invitation,
//! three users invited to the community group and the course), so the examples work every time.

use chrono::Utc;
use invites_domain::{
    community::CommunityTarget, CommunityRole, GroupRole, InvitationStatus, NewInvitation,
    ObjectId, OrgRole,
};
use invites_store::{AuditEntry, InvitationScope, Store};
use serde::{Deserialize, Serialize};

use crate::credentials::{ha1_pair, new_api_key, new_client_id, new_secret, sha256_hex};

/// A Digest API key as printed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoApiKey {
    pub role: String,
    pub public_key: String,
    pub private_key: String,
}

/// A community user with a Bearer token, as printed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoUser {
    pub role: String,
    pub user_id: i64,
    pub username: String,
    pub token: String,
}

/// Everything a person needs to try the demo.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub org_id: String,
    pub project_id: String,
    pub api_keys: Vec<DemoApiKey>,
    pub service_account: DemoServiceAccount,
    pub community_group_id: i64,
    pub course_id: i64,
    pub community_users: Vec<DemoUser>,
    pub pending_org_invitation_id: String,
    pub pending_project_invitation_id: String,
    pub accepted_org_invitation_id: String,
    /// Users with a pending invitation to the community group and the course.
    pub invited_user_ids: Vec<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoServiceAccount {
    pub client_id: String,
    pub client_secret: String,
}

const MARKER: &str = "demo_credentials";

/// Seeds the demo data, or rotates its credentials if it is already there. Returns the credentials.
pub async fn seed(store: &Store) -> anyhow::Result<DemoCredentials> {
    let creds = match store.setting(MARKER).await? {
        Some(saved) => rotate(store, serde_json::from_str(&saved)?).await?,
        None => create(store).await?,
    };
    let creds = refresh_examples(store, creds).await?;
    store
        .set_setting(MARKER, &serde_json::to_string(&without_secrets(&creds))?)
        .await?;
    Ok(creds)
}

/// The demo data on a database that has none.
async fn create(store: &Store) -> anyhow::Result<DemoCredentials> {
    let now = Utc::now();
    let org = store.create_org("Demo-Org", now).await?;
    let project = store.create_project(org.id, "Demo-Project", now).await?;

    let mut api_keys = Vec::new();
    let key_roles: [(&str, OrgRole, GroupRole); 3] = [
        ("owner", OrgRole::Owner, GroupRole::Owner),
        ("member", OrgRole::Member, GroupRole::ReadOnly),
        ("user-admin", OrgRole::Member, GroupRole::UserAdmin),
    ];
    for (role, org_role, group_role) in key_roles {
        let k = new_api_key();
        let rec = store
            .create_api_key(
                org.id,
                &k.public_key,
                &format!("demo {role} key"),
                &k.ha1_md5,
                &k.ha1_sha256,
                now,
            )
            .await?;
        store
            .grant_org_role(org.id, rec.principal_id, org_role)
            .await?;
        store
            .grant_project_role(project.id, rec.principal_id, group_role)
            .await?;
        api_keys.push(DemoApiKey {
            role: role.to_owned(),
            public_key: k.public_key,
            private_key: k.private_key,
        });
    }

    let client_id = new_client_id();
    let client_secret = new_secret("mdb_sa_sk_");
    let sa = store
        .create_service_account(
            org.id,
            &client_id,
            "demo service account",
            &sha256_hex(&client_secret),
            now,
        )
        .await?;
    store
        .grant_org_role(org.id, sa.principal_id, OrgRole::Owner)
        .await?;
    store
        .grant_project_role(project.id, sa.principal_id, GroupRole::Owner)
        .await?;

    let owner = store
        .create_user("owner@demo.example", "Demo Owner", now)
        .await?;
    store
        .grant_org_role(org.id, owner.principal_id, OrgRole::Owner)
        .await?;
    let audit = AuditEntry::operator(now);
    let invite = |project_id: Option<ObjectId>, username: &str, roles: &[&str]| NewInvitation {
        org_id: org.id,
        project_id,
        username: username.to_owned(),
        inviter_username: owner.username.clone(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        team_ids: vec![],
        group_role_assignments: vec![],
    };
    let pending_org = store
        .create_invitation(
            &invite(None, "invitee@demo.example", &["ORG_MEMBER"]),
            &audit,
        )
        .await?;
    let pending_project = store
        .create_invitation(
            &invite(
                Some(project.id),
                "invitee@demo.example",
                &["GROUP_READ_ONLY"],
            ),
            &audit,
        )
        .await?;
    let accepted = store
        .create_invitation(
            &invite(None, "accepted@demo.example", &["ORG_MEMBER"]),
            &audit,
        )
        .await?;
    store.accept_invitation(accepted.id, &audit).await?;

    let group = store.create_community_group("Demo Group", now).await?;
    let manager = store
        .create_user("manager@demo.example", "Demo Manager", now)
        .await?;
    let creator = store
        .create_user("creator@demo.example", "Demo Creator", now)
        .await?;
    let member = store
        .create_user("member@demo.example", "Demo Member", now)
        .await?;
    let course = store.create_course("Demo Course", creator.id, now).await?;
    store
        .set_community_group_role(group.id, manager.id, CommunityRole::Manager)
        .await?;
    store
        .set_community_group_role(group.id, member.id, CommunityRole::Member)
        .await?;
    store
        .set_course_role(course.id, manager.id, CommunityRole::Manager)
        .await?;
    store
        .set_course_role(course.id, member.id, CommunityRole::Member)
        .await?;
    let mut invited_user_ids = Vec::new();
    for i in 1..=3 {
        let u = store
            .create_user(
                &format!("guest{i}@demo.example"),
                &format!("Guest {i}"),
                now,
            )
            .await?;
        store
            .invite_to_community(Some(group.id), None, u.id, Some(manager.id), now)
            .await?;
        store
            .invite_to_community(None, Some(course.id), u.id, Some(creator.id), now)
            .await?;
        invited_user_ids.push(u.id);
    }
    let joined = store
        .create_user("joined@demo.example", "Joined Guest", now)
        .await?;
    let inv = store
        .invite_to_community(Some(group.id), None, joined.id, Some(manager.id), now)
        .await?;
    store.accept_community_invitation(inv, now).await?;

    let mut community_users = Vec::new();
    for (role, user) in [
        ("manager", &manager),
        ("creator", &creator),
        ("member", &member),
    ] {
        community_users.push(DemoUser {
            role: role.to_owned(),
            user_id: user.id,
            username: user.username.clone(),
            token: String::new(),
        });
    }
    let creds = DemoCredentials {
        org_id: org.id.to_string(),
        project_id: project.id.to_string(),
        api_keys,
        service_account: DemoServiceAccount {
            client_id,
            client_secret,
        },
        community_group_id: group.id,
        course_id: course.id,
        community_users,
        pending_org_invitation_id: pending_org.id.to_string(),
        pending_project_invitation_id: pending_project.id.to_string(),
        accepted_org_invitation_id: accepted.id.to_string(),
        invited_user_ids,
    };
    issue_user_tokens(store, creds).await
}

/// The username the demo's pending Atlas and Ops Manager invitations are for.
const INVITEE: &str = "invitee@demo.example";

/// How many users the printed community examples need with a pending invitation.
const INVITED_GUESTS: usize = 3;

/// Makes again what the printed examples use up: the pending organization and project
/// invitations (a new one when the recorded one was removed or accepted) and
/// [`INVITED_GUESTS`] users with a pending invitation to both the community group and the course
/// (re-invited, or new guests when one has joined).
async fn refresh_examples(
    store: &Store,
    mut creds: DemoCredentials,
) -> anyhow::Result<DemoCredentials> {
    let now = Utc::now();
    let audit = AuditEntry::operator(now);
    let org_id: ObjectId = creds.org_id.parse()?;
    let project_id: ObjectId = creds.project_id.parse()?;
    let inviter = "owner@demo.example".to_owned();
    for (scope, recorded, roles) in [
        (
            InvitationScope::Org(org_id),
            &mut creds.pending_org_invitation_id,
            "ORG_MEMBER",
        ),
        (
            InvitationScope::Project(project_id),
            &mut creds.pending_project_invitation_id,
            "GROUP_READ_ONLY",
        ),
    ] {
        let still_pending = match recorded.parse::<ObjectId>() {
            Ok(id) => store
                .invitation(id)
                .await?
                .is_some_and(|i| i.status == InvitationStatus::Pending),
            Err(_) => false,
        };
        if still_pending {
            continue;
        }
        let pending = store.pending_invitations(scope, Some(INVITEE)).await?;
        let id = match pending.first() {
            Some(existing) => existing.id,
            None => {
                let new = NewInvitation {
                    org_id,
                    project_id: match scope {
                        InvitationScope::Project(p) => Some(p),
                        InvitationScope::Org(_) => None,
                    },
                    username: INVITEE.to_owned(),
                    inviter_username: inviter.clone(),
                    roles: vec![roles.to_owned()],
                    team_ids: vec![],
                    group_role_assignments: vec![],
                };
                store.create_invitation(&new, &audit).await?.id
            }
        };
        *recorded = id.to_string();
    }

    let group = CommunityTarget::Group(creds.community_group_id);
    let course = CommunityTarget::Course(creds.course_id);
    let manager = creds
        .community_users
        .iter()
        .find(|u| u.role == "manager")
        .map(|u| u.user_id);
    // Re-invite the recorded guests: users already pending are left as they are.
    for target in [group, course] {
        store
            .invite_users(target, &creds.invited_user_ids, manager, &audit)
            .await?;
    }
    let mut pending = pending_in_both(store, group, course).await?;
    pending.retain(|id| creds.invited_user_ids.contains(id));
    let mut n = 1;
    while pending.len() < INVITED_GUESTS {
        // A recorded guest joined (and so cannot be invited again): invite a new guest.
        let username = format!("guest{n}@demo.example");
        n += 1;
        if store.user_by_username(&username).await?.is_some() {
            continue;
        }
        let user = store
            .create_user(&username, &format!("Guest {}", n - 1), now)
            .await?;
        for target in [group, course] {
            store
                .invite_users(target, &[user.id], manager, &audit)
                .await?;
        }
        pending.push(user.id);
    }
    pending.truncate(INVITED_GUESTS);
    creds.invited_user_ids = pending;
    Ok(creds)
}

/// Users with a pending invitation to both targets, in the group's invitation order.
async fn pending_in_both(
    store: &Store,
    group: CommunityTarget,
    course: CommunityTarget,
) -> anyhow::Result<Vec<i64>> {
    let (_, in_group) = store.invited_users(group, 1000, 0).await?;
    let (_, in_course) = store.invited_users(course, 1000, 0).await?;
    Ok(in_group
        .iter()
        .filter(|u| in_course.iter().any(|c| c.id == u.id))
        .map(|u| u.id)
        .collect())
}

/// Gives each community demo user a fresh Bearer token.
async fn issue_user_tokens(
    store: &Store,
    mut creds: DemoCredentials,
) -> anyhow::Result<DemoCredentials> {
    let now = Utc::now();
    for u in &mut creds.community_users {
        let user = store
            .user_by_username(&u.username)
            .await?
            .ok_or_else(|| anyhow::anyhow!("demo user {} is missing", u.username))?;
        let token = new_secret("cmt_");
        store
            .create_access_token(user.principal_id, &sha256_hex(&token), None, now)
            .await?;
        u.token = token;
    }
    Ok(creds)
}

/// The demo record kept in the database: ids only, every secret blanked.
fn without_secrets(creds: &DemoCredentials) -> DemoCredentials {
    let mut c = creds.clone();
    for k in &mut c.api_keys {
        k.private_key.clear();
    }
    c.service_account.client_secret.clear();
    for u in &mut c.community_users {
        u.token.clear();
    }
    c
}

/// New secrets for the existing demo principals.
async fn rotate(store: &Store, mut creds: DemoCredentials) -> anyhow::Result<DemoCredentials> {
    for k in &mut creds.api_keys {
        let fresh = new_api_key();
        let (md5, sha) = ha1_pair(&k.public_key, &fresh.private_key);
        if !store.rotate_api_key(&k.public_key, &md5, &sha).await? {
            anyhow::bail!(
                "demo API key {} is missing; start with a new database",
                k.public_key
            );
        }
        k.private_key = fresh.private_key;
    }
    let secret = new_secret("mdb_sa_sk_");
    if !store
        .rotate_service_account_secret(&creds.service_account.client_id, &sha256_hex(&secret))
        .await?
    {
        anyhow::bail!("demo service account is missing; start with a new database");
    }
    creds.service_account.client_secret = secret;
    issue_user_tokens(store, creds).await
}
