//! An example for every request and response body of the document, built from the types the
//! handlers answer with and the error constructors they use, so /docs and `invites mock` show
//! what the server really sends. [`add`] writes them into the generated document.

use chrono::{TimeZone, Utc};
use invites_domain::community::{self, CommunityTarget};
use invites_domain::invitation::{
    validate_input, InvitationInput, InvitationStatus, Level, Purpose,
};
use invites_domain::{Error, GroupRoleAssignment, Invitation, ObjectId};
use poem_openapi::types::ToJSON;
use serde_json::Value;

use crate::community::{InvitedUserObject, InvitedUserPage, UsersRequest};
use crate::error::ApiError;
use crate::model::{
    GroupInvitation, GroupInvitationRequest, GroupInvitationUpdateRequest, OrganizationInvitation,
    OrganizationInvitationGroupRoleAssignmentsRequest, OrganizationInvitationRequest,
    OrganizationInvitationUpdateRequest,
};
use crate::oauth::{Health, Readiness, TokenRequest, TokenResponse};
use crate::opsmanager::{
    OpsManagerInvitation, OpsManagerInvitationRequest, OpsManagerInvitationUpdate,
};

/// The origin links in examples point to.
const ORIGIN: &str = "https://invites.example.com";
/// Ids in the style of the Atlas reference's examples.
const ORG_ID: &str = "32b6e34b3d91647abb20e7b8";
const PROJECT_ID: &str = "32b6e34b3d91647abb20e7b9";
const INVITATION_ID: &str = "6630b7e1a2f4c95d8e0b1c2d";
const COMMUNITY_ID: i64 = 7;

/// Which API family an operation belongs to, and what it acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    AtlasOrg,
    AtlasProject,
    OpsManager,
    Community(CommunityTarget),
    Token,
    Health,
    Ready,
}

fn family(op: &str) -> Option<Family> {
    Some(match op {
        "createServiceAccountToken" => Family::Token,
        "health" => Family::Health,
        "ready" => Family::Ready,
        _ if op.starts_with("opsManager") => Family::OpsManager,
        _ if op.contains("Org") => Family::AtlasOrg,
        _ if op.contains("GroupInvite") => Family::AtlasProject,
        _ if op.contains("Course") => Family::Community(CommunityTarget::Course(COMMUNITY_ID)),
        _ if op.contains("Group") => Family::Community(CommunityTarget::Group(COMMUNITY_ID)),
        _ => return None,
    })
}

fn json_of<T: ToJSON>(v: &T) -> Value {
    v.to_json().expect("example types serialize")
}

fn invitation(project: bool) -> Invitation {
    let created_at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap();
    let id = |s: &str| s.parse::<ObjectId>().expect("example ids are ObjectIds");
    Invitation {
        id: id(INVITATION_ID),
        org_id: id(ORG_ID),
        org_name: "Acme Data".to_owned(),
        project_id: project.then(|| id(PROJECT_ID)),
        project_name: project.then(|| "checkout-service".to_owned()),
        username: "ada.lovelace@example.com".to_owned(),
        inviter_username: "grace.hopper@example.com".to_owned(),
        roles: vec![if project {
            "GROUP_READ_ONLY"
        } else {
            "ORG_MEMBER"
        }
        .to_owned()],
        team_ids: if project {
            vec![]
        } else {
            vec!["6630b7e1a2f4c95d8e0b1c30".to_owned()]
        },
        group_role_assignments: if project {
            vec![]
        } else {
            vec![GroupRoleAssignment {
                group_id: PROJECT_ID.to_owned(),
                group_role: "GROUP_READ_ONLY".to_owned(),
            }]
        },
        status: InvitationStatus::Pending,
        created_at,
        expires_at: invites_domain::invitation::expires_at(created_at),
    }
}

fn invalid(input: InvitationInput, level: Level, purpose: Purpose) -> Error {
    validate_input(&input, level, purpose).expect_err("the example input is invalid")
}

/// The error an operation answers with `status`, as its handler builds it.
fn error(op: &str, fam: Family, status: u16) -> Error {
    let by_id = op.starts_with("get")
        || op.starts_with("delete")
        || op.ends_with("ById")
        || op == "opsManagerGetProjectInvitation"
        || op == "opsManagerDeleteProjectInvitation"
        || op == "opsManagerUpdateProjectInvitation";
    let joins = op.starts_with("join") || op.starts_with("subscribe");
    let level = if fam == Family::AtlasOrg {
        Level::Org
    } else {
        Level::Project
    };
    let purpose = if op.starts_with("create") || op.starts_with("opsManagerCreate") {
        Purpose::Create
    } else if by_id {
        Purpose::UpdateById
    } else {
        Purpose::UpdateByUsername
    };
    let bad_input = InvitationInput {
        username: Some("ada.lovelace".to_owned()),
        roles: Some(vec!["ORG_MEMBER".to_owned(), "ORG_MEMBER".to_owned()]),
        ..Default::default()
    };
    let unreachable = |status: u16| {
        Error::new(
            unanswered_code(status),
            "(Documented by the platform's contract; this operation does not answer it.)",
        )
    };
    match (fam, status) {
        (Family::Token, 400) => crate::oauth::unsupported_grant(),
        (Family::Token, 401) => crate::oauth::invalid_client(),
        (Family::Health, 503) => unreachable(503),
        (Family::Ready, 503) => crate::oauth::database_unavailable(),
        (Family::Community(_), 400) if joins => unreachable(400),
        (Family::Community(_), 403) if joins => unreachable(403),
        (Family::Community(_), 400) if op.starts_with("list") => {
            crate::community::bad_page_param("limit", "0".to_owned(), "must be between 1 and 1000")
        }
        (Family::Community(_), 400) => {
            community::parse_users("application/json", br#"{"users": [41, 0, "x"]}"#)
                .expect_err("the example body is invalid")
        }
        (Family::Community(t), 403) => community::not_a_manager(t),
        (Family::Community(t), 404) if joins => community::no_pending_invitation(t),
        (Family::Community(t), 404) => community::not_found(t),
        (Family::AtlasOrg, 400) if op == "deleteOrgInvite" => {
            Error::project_invitation_via_org(INVITATION_ID)
        }
        (_, 400) if op.starts_with("list") || op == "opsManagerListProjectInvitations" => {
            let field = if fam == Family::AtlasOrg {
                "orgId"
            } else {
                "groupId"
            };
            Error::invalid_object_id(field, "my-org")
        }
        (_, 400) if op.starts_with("get") || op.contains("Delete") || op.contains("Get") => {
            Error::invalid_object_id("invitationId", "12345")
        }
        (_, 400) => invalid(bad_input, level, purpose),
        (_, 401) => Error::not_authenticated(),
        (_, 403) => Error::forbidden(),
        (_, 404) if by_id => Error::invitation_not_found(INVITATION_ID),
        (Family::AtlasOrg, 404) => Error::org_not_found(ORG_ID),
        (_, 404) => Error::group_not_found(PROJECT_ID),
        (_, 429) => Error::rate_limited(crate::DEFAULT_RATE_LIMIT_PER_MINUTE as i64, 12),
        (_, 503) => Error::database_busy(),
        _ => Error::internal(),
    }
}

/// The code of a status no handler of the operation produces (its example only shows the shape).
fn unanswered_code(status: u16) -> invites_domain::ErrorCode {
    crate::error::code_for_status(
        poem::http::StatusCode::from_u16(status).expect("a documented status"),
    )
}

/// The example response body of `op` answering `status`, or `None` for a status without body.
pub fn response(op: &str, status: u16) -> Option<Value> {
    let fam = family(op)?;
    if status >= 400 {
        return Some(json_of(&ApiError::from(&error(op, fam, status))));
    }
    let org = || OrganizationInvitation::from_domain(&invitation(false), ORIGIN);
    let project = || GroupInvitation::from_domain(&invitation(true), ORIGIN, "/api/atlas/v2");
    let ops = || OpsManagerInvitation::from_domain(&invitation(true));
    let list = op.starts_with("list") || op == "opsManagerListProjectInvitations";
    Some(match fam {
        Family::AtlasOrg if list => json_of(&vec![org()]),
        Family::AtlasOrg => json_of(&org()),
        Family::AtlasProject if list => json_of(&vec![project()]),
        Family::AtlasProject => json_of(&project()),
        Family::OpsManager if list => json_of(&vec![ops()]),
        Family::OpsManager => json_of(&ops()),
        Family::Community(_) if list => json_of(&InvitedUserPage {
            count: 2,
            next: None,
            previous: None,
            results: vec![
                InvitedUserObject {
                    id: 41,
                    username: "ada".to_owned(),
                    real_name: "Ada Lovelace".to_owned(),
                    avatar: Some("https://invites.example.com/avatars/41.png".to_owned()),
                    ext_id: None,
                },
                InvitedUserObject {
                    id: 42,
                    username: "grace".to_owned(),
                    real_name: "Grace Hopper".to_owned(),
                    avatar: None,
                    ext_id: Some("hr-1906".to_owned()),
                },
            ],
        }),
        Family::Community(_) => return None,
        Family::Token => json_of(&TokenResponse {
            access_token: "mdb_sa_at_3k9Vq7RzT1wXy2Lb8Nf0Hc5Ue4Gd6Ji".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 3600,
        }),
        Family::Health => json_of(&Health {
            status: "ok".to_owned(),
        }),
        Family::Ready => json_of(&Readiness {
            status: "ready".to_owned(),
        }),
    })
}

/// The example request body of `op`: what a client sends, so absent fields are left out rather
/// than sent as `null`.
pub fn request(op: &str) -> Option<Value> {
    let mut body = request_fields(op)?;
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    Some(body)
}

fn request_fields(op: &str) -> Option<Value> {
    let roles = |r: &str| Some(vec![r.to_owned()]);
    Some(match op {
        "createOrgInvite" | "updateOrgInvites" => json_of(&OrganizationInvitationRequest {
            group_role_assignments: Some(vec![OrganizationInvitationGroupRoleAssignmentsRequest {
                group_id: Some(PROJECT_ID.to_owned()),
                roles: roles("GROUP_READ_ONLY"),
            }]),
            roles: roles("ORG_MEMBER"),
            team_ids: Some(vec!["6630b7e1a2f4c95d8e0b1c30".to_owned()]),
            username: Some("ada.lovelace@example.com".to_owned()),
        }),
        "updateOrgInviteById" => json_of(&OrganizationInvitationUpdateRequest {
            group_role_assignments: None,
            roles: Some(vec![
                "ORG_MEMBER".to_owned(),
                "ORG_BILLING_READ_ONLY".to_owned(),
            ]),
            team_ids: None,
        }),
        "createGroupInvite" | "updateGroupInvites" => json_of(&GroupInvitationRequest {
            roles: roles("GROUP_READ_ONLY"),
            username: Some("ada.lovelace@example.com".to_owned()),
        }),
        "updateGroupInviteById" => json_of(&GroupInvitationUpdateRequest {
            roles: roles("GROUP_DATA_ACCESS_READ_ONLY"),
        }),
        "opsManagerCreateProjectInvitation" | "opsManagerUpdateProjectInvitationByUsername" => {
            json_of(&OpsManagerInvitationRequest {
                roles: roles("GROUP_READ_ONLY"),
                username: Some("ada.lovelace@example.com".to_owned()),
            })
        }
        "opsManagerUpdateProjectInvitation" => json_of(&OpsManagerInvitationUpdate {
            roles: roles("GROUP_DATA_ACCESS_READ_ONLY"),
        }),
        "createServiceAccountToken" => json_of(&TokenRequest {
            grant_type: "client_credentials".to_owned(),
            client_id: None,
            client_secret: None,
        }),
        _ if family(op).is_some_and(|f| matches!(f, Family::Community(_))) => {
            json_of(&UsersRequest {
                users: vec![41, 42],
            })
        }
        _ => return None,
    })
}

/// Writes the examples into `spec`: an `example` on every request and response media type.
pub fn add(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let Some(id) = op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        if let Some(content) = op
            .pointer_mut("/requestBody/content")
            .and_then(Value::as_object_mut)
        {
            for media in content.values_mut().filter_map(Value::as_object_mut) {
                if let Some(example) = request(&id) {
                    media.insert("example".to_owned(), example);
                }
            }
        }
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for (status, answer) in responses.iter_mut() {
            let Ok(status) = status.parse::<u16>() else {
                continue;
            };
            let Some(content) = answer.get_mut("content").and_then(Value::as_object_mut) else {
                continue;
            };
            for media in content.values_mut().filter_map(Value::as_object_mut) {
                if let Some(example) = response(&id, status) {
                    media.insert("example".to_owned(), example);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_examples_carry_their_status() {
        for (op, status) in [
            ("deleteOrgInvite", 400),
            ("deleteOrgInvite", 404),
            ("removeGroupInvitations", 400),
            ("joinCourse", 404),
            ("createServiceAccountToken", 401),
            ("health", 503),
            ("ready", 503),
            ("listGroupInvites", 429),
        ] {
            let body = response(op, status).unwrap();
            assert_eq!(body["error"], json!(status), "{op} {status}: {body}");
        }
        assert_eq!(
            response("deleteOrgInvite", 400).unwrap()["errorCode"],
            "CANNOT_DELETE_GROUP_INVITATION"
        );
        assert_eq!(response("removeCourseInvitations", 204), None);
    }
}
