//! Drives the invitation lifecycle of `clients/LIFECYCLE.md` through the generated Rust client
//! against a running server: `invites-client-lifecycle BASE_URL DEMO_JSON`, where DEMO_JSON is
//! what `invites serve --demo --demo-out FILE` wrote. One line per family; a non-zero exit that
//! names the step, the status and the body at the first unexpected answer.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use invites_client::{types, Auth, Client};
use progenitor_client::{Error, ResponseValue};
use serde_json::Value;

const USAGE: &str = "usage: invites-client-lifecycle BASE_URL DEMO_JSON
  BASE_URL   the server, e.g. http://127.0.0.1:8080
  DEMO_JSON  the file `invites serve --demo --demo-out FILE` wrote (ids and credentials)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let [base, demo] = args.as_slice() else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    match run(base, demo).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust: FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The demo's ids and credentials.
struct Demo(Value);

impl Demo {
    fn str(&self, pointer: &str) -> Result<String> {
        self.0
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the demo file has no {pointer}"))
    }

    fn int(&self, pointer: &str) -> Result<i64> {
        self.0
            .pointer(pointer)
            .and_then(Value::as_i64)
            .with_context(|| format!("the demo file has no {pointer}"))
    }

    fn api_key(&self, role: &str) -> Result<Auth> {
        let key = self.find("/api_keys", role)?;
        Ok(Auth::digest(
            key["public_key"].as_str().unwrap_or_default(),
            key["private_key"].as_str().unwrap_or_default(),
        ))
    }

    fn user(&self, role: &str) -> Result<(i64, Auth)> {
        let user = self.find("/community_users", role)?;
        Ok((
            user["user_id"].as_i64().unwrap_or_default(),
            Auth::bearer(user["token"].as_str().unwrap_or_default()),
        ))
    }

    fn find(&self, list: &str, role: &str) -> Result<&Value> {
        self.0
            .pointer(list)
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|k| k["role"] == role))
            .with_context(|| format!("the demo file has no {role} in {list}"))
    }
}

async fn run(base: &str, demo_path: &str) -> Result<()> {
    let demo: Value = serde_json::from_str(
        &std::fs::read_to_string(demo_path).with_context(|| format!("reading {demo_path}"))?,
    )
    .with_context(|| format!("{demo_path} is not JSON"))?;
    let demo = Demo(demo);
    let client = |auth: Auth| -> Result<Client> {
        let http = reqwest::ClientBuilder::new()
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Client::new_with_client(base, http, auth))
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let mut calls = Calls::default();
    atlas_org(&demo, &client, stamp, &mut calls).await?;
    println!("rust atlas-org: ok ({})", calls.take());
    atlas_project(&demo, &client, stamp, &mut calls).await?;
    println!("rust atlas-project: ok ({})", calls.take());
    opsmanager(&demo, &client, stamp, &mut calls).await?;
    println!("rust opsmanager: ok ({})", calls.take());
    community(&demo, &client, &mut calls).await?;
    println!("rust community: ok ({})", calls.take());
    Ok(())
}

/// The operations called for one family, for its line.
#[derive(Default)]
struct Calls(Vec<&'static str>);

impl Calls {
    fn take(&mut self) -> String {
        let done = std::mem::take(&mut self.0);
        format!("{} calls: {}", done.len(), done.join(", "))
    }

    /// The success value of a call, or an error naming the step, the status and the body.
    fn ok<T: Debug>(
        &mut self,
        step: &'static str,
        result: Result<ResponseValue<T>, Error<types::ApiError>>,
        want: u16,
    ) -> Result<T> {
        self.0.push(step);
        match result {
            Ok(value) if value.status().as_u16() == want => Ok(value.into_inner()),
            Ok(value) => bail!(
                "{step}: status {} where {want} was expected: {:?}",
                value.status(),
                value.into_inner()
            ),
            Err(e) => bail!("{step}: {want} expected, got {}", describe(e)),
        }
    }

    /// The documented error of a call, read through the generated `ApiError` type.
    fn refused<T: Debug>(
        &mut self,
        step: &'static str,
        result: Result<ResponseValue<T>, Error<types::ApiError>>,
        want: u16,
    ) -> Result<types::ApiError> {
        self.0.push(step);
        match result {
            Err(Error::ErrorResponse(e)) if e.status().as_u16() == want => {
                let error = e.into_inner();
                ensure!(
                    i64::from(error.error) == i64::from(want) && !error.error_code.is_empty(),
                    "{step}: the ApiError body does not match its status {want}: {error:?}"
                );
                Ok(error)
            }
            Ok(value) => bail!(
                "{step}: {want} expected, got {}: {:?}",
                value.status(),
                value.into_inner()
            ),
            Err(e) => bail!("{step}: {want} expected, got {}", describe(e)),
        }
    }
}

/// A progenitor error in one line: the status and the body where there is one.
fn describe(e: Error<types::ApiError>) -> String {
    match e {
        Error::ErrorResponse(r) => format!("{}: {:?}", r.status(), r.into_inner()),
        Error::UnexpectedResponse(r) => format!("an undocumented {}", r.status()),
        Error::InvalidResponsePayload(body, err) => format!(
            "a body that does not parse as documented ({err}): {}",
            String::from_utf8_lossy(&body)
        ),
        other => other.to_string(),
    }
}

type MakeClient<'a> = dyn Fn(Auth) -> Result<Client> + 'a;

async fn atlas_org(
    demo: &Demo,
    client: &MakeClient<'_>,
    stamp: u128,
    calls: &mut Calls,
) -> Result<()> {
    let org = demo.str("/org_id")?;
    let token = calls.ok(
        "createServiceAccountToken",
        client(Auth::basic(
            demo.str("/service_account/client_id")?,
            demo.str("/service_account/client_secret")?,
        ))?
        .create_service_account_token(&types::TokenRequest {
            client_id: None,
            client_secret: None,
            grant_type: "client_credentials".into(),
        })
        .await,
        200,
    )?;
    let api = client(Auth::bearer(token.access_token))?;
    let username = format!("rust-org-{stamp}@client.example");
    let created = calls.ok(
        "createOrgInvite",
        api.create_org_invite(
            &org.parse()?,
            None,
            None,
            &types::OrganizationInvitationRequest {
                group_role_assignments: vec![],
                roles: vec!["ORG_MEMBER".into()],
                team_ids: vec![],
                username: Some(username.clone()),
            },
        )
        .await,
        200,
    )?;
    let id = created
        .id
        .context("createOrgInvite: the invitation has no id")?;
    let listed = calls.ok(
        "listOrgInvites",
        api.list_org_invites(&org.parse()?, None, None, None).await,
        200,
    )?;
    ensure!(
        listed.iter().any(|i| i.id.as_deref() == Some(id.as_str())),
        "listOrgInvites does not hold {id}"
    );
    let got = calls.ok(
        "getOrgInvite",
        api.get_org_invite(&org.parse()?, &id.parse()?, None).await,
        200,
    )?;
    ensure!(
        got.username.as_deref() == Some(username.as_str()),
        "getOrgInvite: {got:?}"
    );
    let updated = calls.ok(
        "updateOrgInviteById",
        api.update_org_invite_by_id(
            &org.parse()?,
            &id.parse()?,
            None,
            None,
            &types::OrganizationInvitationUpdateRequest {
                group_role_assignments: vec![],
                roles: vec!["ORG_READ_ONLY".into()],
                team_ids: vec![],
            },
        )
        .await,
        200,
    )?;
    ensure!(
        updated.roles == ["ORG_READ_ONLY"],
        "updateOrgInviteById: {updated:?}"
    );
    calls.ok(
        "deleteOrgInvite",
        api.delete_org_invite(&org.parse()?, &id, None, None).await,
        204,
    )?;
    calls.refused(
        "deleteOrgInvite again",
        api.delete_org_invite(&org.parse()?, &id, None, None).await,
        404,
    )?;
    let error = calls.refused(
        "listOrgInvites without credentials",
        client(Auth::None)?
            .list_org_invites(&org.parse()?, None, None, None)
            .await,
        401,
    )?;
    ensure!(error.error_code == "NOT_AUTHENTICATED", "{error:?}");
    Ok(())
}

async fn atlas_project(
    demo: &Demo,
    client: &MakeClient<'_>,
    stamp: u128,
    calls: &mut Calls,
) -> Result<()> {
    let project = demo.str("/project_id")?;
    let api = client(demo.api_key("owner")?)?;
    let username = format!("rust-project-{stamp}@client.example");
    let created = calls.ok(
        "createGroupInvite",
        api.create_group_invite(
            &project.parse()?,
            None,
            None,
            &types::GroupInvitationRequest {
                roles: vec!["GROUP_READ_ONLY".into()],
                username: Some(username.clone()),
            },
        )
        .await,
        200,
    )?;
    let id = created
        .id
        .context("createGroupInvite: the invitation has no id")?;
    let listed = calls.ok(
        "listGroupInvites",
        api.list_group_invites(&project.parse()?, None, None, None)
            .await,
        200,
    )?;
    ensure!(
        listed.iter().any(|i| i.id.as_deref() == Some(id.as_str())),
        "listGroupInvites does not hold {id}"
    );
    let got = calls.ok(
        "getGroupInvite",
        api.get_group_invite(&project.parse()?, &id.parse()?, None, None)
            .await,
        200,
    )?;
    ensure!(
        got.username.as_deref() == Some(username.as_str()),
        "getGroupInvite: {got:?}"
    );
    let updated = calls.ok(
        "updateGroupInviteById",
        api.update_group_invite_by_id(
            &project.parse()?,
            &id.parse()?,
            None,
            &types::GroupInvitationUpdateRequest {
                roles: vec!["GROUP_DATA_ACCESS_READ_ONLY".into()],
            },
        )
        .await,
        200,
    )?;
    ensure!(
        updated.roles == ["GROUP_DATA_ACCESS_READ_ONLY"],
        "updateGroupInviteById: {updated:?}"
    );
    calls.ok(
        "deleteGroupInvite",
        api.delete_group_invite(&project.parse()?, &id.parse()?, None)
            .await,
        204,
    )?;
    calls.refused(
        "deleteGroupInvite again",
        api.delete_group_invite(&project.parse()?, &id.parse()?, None)
            .await,
        404,
    )?;
    calls.refused(
        "createGroupInvite with the member key",
        client(demo.api_key("member")?)?
            .create_group_invite(
                &project.parse()?,
                None,
                None,
                &types::GroupInvitationRequest {
                    roles: vec!["GROUP_READ_ONLY".into()],
                    username: Some(format!("rust-refused-{stamp}@client.example")),
                },
            )
            .await,
        403,
    )?;
    Ok(())
}

async fn opsmanager(
    demo: &Demo,
    client: &MakeClient<'_>,
    stamp: u128,
    calls: &mut Calls,
) -> Result<()> {
    let project = demo.str("/project_id")?;
    let api = client(demo.api_key("owner")?)?;
    let username = format!("rust-om-{stamp}@client.example");
    let created = calls.ok(
        "opsManagerCreateProjectInvitation",
        api.ops_manager_create_project_invitation(
            &project.parse()?,
            None,
            None,
            &types::OpsManagerProjectInvitationRequest {
                roles: vec!["GROUP_READ_ONLY".into()],
                username: Some(username.clone()),
            },
        )
        .await,
        200,
    )?;
    let id = created.id;
    let listed = calls.ok(
        "opsManagerListProjectInvitations",
        api.ops_manager_list_project_invitations(&project.parse()?, None, None, None)
            .await,
        200,
    )?;
    ensure!(
        listed.iter().any(|i| i.id == id),
        "opsManagerListProjectInvitations does not hold {id}"
    );
    let got = calls.ok(
        "opsManagerGetProjectInvitation",
        api.ops_manager_get_project_invitation(&project.parse()?, &id.parse()?, None, None)
            .await,
        200,
    )?;
    ensure!(
        got.username == username,
        "opsManagerGetProjectInvitation: {got:?}"
    );
    let updated = calls.ok(
        "opsManagerUpdateProjectInvitation",
        api.ops_manager_update_project_invitation(
            &project.parse()?,
            &id.parse()?,
            None,
            None,
            &types::OpsManagerProjectInvitationUpdate {
                roles: vec!["GROUP_READ_ONLY".into()],
            },
        )
        .await,
        200,
    )?;
    ensure!(
        updated.roles == ["GROUP_READ_ONLY"],
        "opsManagerUpdateProjectInvitation: {updated:?}"
    );
    calls.ok(
        "opsManagerDeleteProjectInvitation",
        api.ops_manager_delete_project_invitation(&project.parse()?, &id.parse()?, None, None)
            .await,
        204,
    )?;
    calls.refused(
        "opsManagerDeleteProjectInvitation again",
        api.ops_manager_delete_project_invitation(&project.parse()?, &id.parse()?, None, None)
            .await,
        404,
    )?;
    calls.refused(
        "opsManagerListProjectInvitations without credentials",
        client(Auth::None)?
            .ops_manager_list_project_invitations(&project.parse()?, None, None, None)
            .await,
        401,
    )?;
    Ok(())
}

async fn community(demo: &Demo, client: &MakeClient<'_>, calls: &mut Calls) -> Result<()> {
    let group = demo.int("/community_group_id")?;
    let course = demo.int("/course_id")?;
    let (_, manager) = demo.user("manager")?;
    let (creator_id, creator) = demo.user("creator")?;
    let (_, member) = demo.user("member")?;
    let guest = demo
        .0
        .pointer("/invited_user_ids/0")
        .and_then(Value::as_i64)
        .context("the demo file has no invited_user_ids")?;
    let api = client(manager)?;
    let users = |ids: &[i64]| types::CommunityUsersRequest {
        users: ids.to_vec(),
    };
    let holds =
        |page: &types::CommunityInvitedUserPage, id: i64| page.results.iter().any(|u| u.id == id);
    let limit = std::num::NonZeroU64::new(1000);

    calls.ok(
        "inviteToGroup",
        api.invite_to_group(group, &users(&[creator_id])).await,
        204,
    )?;
    let page = calls.ok(
        "listGroupInvitations",
        api.list_group_invitations(group, limit, None).await,
        200,
    )?;
    ensure!(
        holds(&page, creator_id),
        "listGroupInvitations lacks user {creator_id}"
    );
    calls.ok("joinGroup", client(creator)?.join_group(group).await, 204)?;
    let page = calls.ok(
        "listGroupInvitations",
        api.list_group_invitations(group, limit, None).await,
        200,
    )?;
    ensure!(
        !holds(&page, creator_id),
        "user {creator_id} joined but is still listed"
    );
    // The guest may have been removed by an earlier run on this server: invite again first.
    calls.ok(
        "inviteToGroup",
        api.invite_to_group(group, &users(&[guest])).await,
        204,
    )?;
    calls.ok(
        "removeGroupInvitations",
        api.remove_group_invitations(group, &users(&[guest])).await,
        204,
    )?;
    // A bulk removal is all or nothing: a user with nothing pending makes it a 400.
    let error = calls.refused(
        "removeGroupInvitations again",
        api.remove_group_invitations(group, &users(&[guest])).await,
        400,
    )?;
    ensure!(
        error.error_code == "INVALID_USER_IDS",
        "removeGroupInvitations again: {error:?}"
    );

    calls.ok(
        "inviteToCourse",
        api.invite_to_course(course, &users(&[guest])).await,
        204,
    )?;
    let page = calls.ok(
        "listCourseInvitations",
        api.list_course_invitations(course, limit, None).await,
        200,
    )?;
    ensure!(
        holds(&page, guest),
        "listCourseInvitations lacks user {guest}"
    );
    calls.ok(
        "removeCourseInvitations",
        api.remove_course_invitations(course, &users(&[guest]))
            .await,
        204,
    )?;
    // A bulk removal is all or nothing: a user with nothing pending makes it a 400.
    let error = calls.refused(
        "removeCourseInvitations again",
        api.remove_course_invitations(course, &users(&[guest]))
            .await,
        400,
    )?;
    ensure!(
        error.error_code == "INVALID_USER_IDS",
        "removeCourseInvitations again: {error:?}"
    );
    calls.refused(
        "inviteToGroup as a member",
        client(member)?
            .invite_to_group(group, &users(&[guest]))
            .await,
        403,
    )?;
    Ok(())
}
