//! Response and request bodies of the Atlas and Ops Manager invitation resources, named and typed
//! as the Atlas specification names them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use invites_domain::invitation::format_timestamp;
use invites_domain::invitation::InvitationInput;
use invites_domain::Invitation;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::Object;

/// A UTC instant written as Atlas writes it: `2024-05-01T12:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string(date-time)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(format_timestamp(self.0)))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Timestamp(t.with_timezone(&Utc)))
                .map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

/// A related resource (RFC 5988).
#[derive(Object, Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Uniform Resource Locator (URL) that points another API resource to which this response has some relationship.
    pub href: Option<String>,
    /// Uniform Resource Locator (URL) that defines the semantic relationship between this resource and another API resource.
    pub rel: Option<String>,
}

/// A project the invited user joins, with its role.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "GroupRole", rename_all = "camelCase")]
pub struct GroupRoleObject {
    /// Unique 24-hexadecimal digit string that identifies the project to which this role belongs.
    pub group_id: Option<String>,
    /// Human-readable label that identifies the collection of privileges granted in the project.
    pub group_role: Option<String>,
}

/// An invitation to join an organization.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationInvitation {
    /// Date and time when MongoDB Cloud sent the invitation, ISO 8601 in UTC.
    #[oai(read_only)]
    pub created_at: Option<Timestamp>,
    /// Date and time when the invitation expires, ISO 8601 in UTC.
    #[oai(read_only)]
    pub expires_at: Option<Timestamp>,
    /// List of projects that the user will be added to when they accept their invitation to the organization.
    pub group_role_assignments: Option<Vec<GroupRoleObject>>,
    /// Unique 24-hexadecimal digit string that identifies this invitation.
    #[oai(read_only)]
    pub id: Option<String>,
    /// Email address of the MongoDB Cloud user who sent the invitation to join the organization.
    #[oai(read_only)]
    pub inviter_username: Option<String>,
    /// List of one or more Uniform Resource Locators (URLs) that point to API sub-resources, related API resources, or both.
    #[oai(read_only)]
    pub links: Option<Vec<Link>>,
    /// Unique 24-hexadecimal digit string that identifies the organization.
    #[oai(read_only)]
    pub org_id: Option<String>,
    /// Human-readable label that identifies this organization.
    pub org_name: String,
    /// One or more organization-level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
    /// List of unique 24-hexadecimal digit strings that identifies each team.
    #[oai(read_only)]
    pub team_ids: Option<Vec<String>>,
    /// Email address of the MongoDB Cloud user invited to join the organization.
    pub username: Option<String>,
}

/// An invitation to join a project.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct GroupInvitation {
    /// Date and time when MongoDB Cloud sent the invitation, ISO 8601 in UTC.
    #[oai(read_only)]
    pub created_at: Option<Timestamp>,
    /// Date and time when MongoDB Cloud expires the invitation, ISO 8601 in UTC.
    #[oai(read_only)]
    pub expires_at: Option<Timestamp>,
    /// Unique 24-hexadecimal character string that identifies the project.
    #[oai(read_only)]
    pub group_id: Option<String>,
    /// Human-readable label that identifies the project to which you invited the MongoDB Cloud user.
    #[oai(read_only)]
    pub group_name: Option<String>,
    /// Unique 24-hexadecimal character string that identifies the invitation.
    #[oai(read_only)]
    pub id: Option<String>,
    /// Email address of the MongoDB Cloud user who sent the invitation.
    #[oai(read_only)]
    pub inviter_username: Option<String>,
    /// List of one or more Uniform Resource Locators (URLs) that point to API sub-resources, related API resources, or both.
    #[oai(read_only)]
    pub links: Option<Vec<Link>>,
    /// One or more organization or project level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
    /// Email address of the MongoDB Cloud user invited to join the project.
    #[oai(read_only)]
    pub username: Option<String>,
}

fn self_link(base_url: &str, path: String) -> Option<Vec<Link>> {
    Some(vec![Link {
        href: Some(format!("{base_url}{path}")),
        rel: Some("self".to_owned()),
    }])
}

impl OrganizationInvitation {
    pub fn from_domain(inv: &Invitation, base_url: &str) -> Self {
        OrganizationInvitation {
            created_at: Some(Timestamp(inv.created_at)),
            expires_at: Some(Timestamp(inv.expires_at)),
            group_role_assignments: Some(
                inv.group_role_assignments
                    .iter()
                    .map(|a| GroupRoleObject {
                        group_id: Some(a.group_id.clone()),
                        group_role: Some(a.group_role.clone()),
                    })
                    .collect(),
            ),
            id: Some(inv.id.to_string()),
            inviter_username: Some(inv.inviter_username.clone()),
            links: self_link(
                base_url,
                format!("/api/atlas/v2/orgs/{}/invites/{}", inv.org_id, inv.id),
            ),
            org_id: Some(inv.org_id.to_string()),
            org_name: inv.org_name.clone(),
            roles: Some(inv.roles.clone()),
            team_ids: Some(inv.team_ids.clone()),
            username: Some(inv.username.clone()),
        }
    }
}

impl GroupInvitation {
    /// `path_prefix` is the family's base, e.g. `/api/atlas/v2` or `/api/public/v1.0`.
    pub fn from_domain(inv: &Invitation, base_url: &str, path_prefix: &str) -> Self {
        let group_id = inv.project_id.map(|p| p.to_string()).unwrap_or_default();
        GroupInvitation {
            created_at: Some(Timestamp(inv.created_at)),
            expires_at: Some(Timestamp(inv.expires_at)),
            links: self_link(
                base_url,
                format!("{path_prefix}/groups/{group_id}/invites/{}", inv.id),
            ),
            group_id: Some(group_id),
            group_name: inv.project_name.clone(),
            id: Some(inv.id.to_string()),
            inviter_username: Some(inv.inviter_username.clone()),
            roles: Some(inv.roles.clone()),
            username: Some(inv.username.clone()),
        }
    }
}

/// Projects the invited user joins, with roles, when accepting an organization invitation.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationInvitationGroupRoleAssignmentsRequest {
    /// Unique 24-hexadecimal digit string that identifies the project to which these roles belong.
    pub group_id: Option<String>,
    /// One or more project-level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
}

/// Invites one MongoDB Cloud user to join an organization, or names the one whose pending
/// invitation to update.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationInvitationRequest {
    /// List of projects that the user will be added to when they accept their invitation to the organization.
    pub group_role_assignments: Option<Vec<OrganizationInvitationGroupRoleAssignmentsRequest>>,
    /// One or more organization level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
    /// List of teams to which you want to invite the desired MongoDB Cloud user.
    pub team_ids: Option<Vec<String>>,
    /// Email address that belongs to the desired MongoDB Cloud user.
    pub username: Option<String>,
}

/// Changes to one pending organization invitation.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct OrganizationInvitationUpdateRequest {
    /// List of projects that the user will be added to when they accept their invitation to the organization.
    pub group_role_assignments: Option<Vec<OrganizationInvitationGroupRoleAssignmentsRequest>>,
    /// One or more organization level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
    /// List of teams to which you want to invite the desired MongoDB Cloud user.
    pub team_ids: Option<Vec<String>>,
}

/// Invites one MongoDB Cloud user to a project, or names the one whose pending invitation to update.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct GroupInvitationRequest {
    /// One or more project level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
    /// Email address of the MongoDB Cloud user invited to the specified project.
    pub username: Option<String>,
}

/// Changes to one pending project invitation.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct GroupInvitationUpdateRequest {
    /// One or more project-level roles to assign to the MongoDB Cloud user.
    pub roles: Option<Vec<String>>,
}

fn assignments(
    gra: Option<Vec<OrganizationInvitationGroupRoleAssignmentsRequest>>,
) -> Option<Vec<(Option<String>, Vec<String>)>> {
    gra.map(|v| {
        v.into_iter()
            .map(|a| (a.group_id, a.roles.unwrap_or_default()))
            .collect()
    })
}

impl From<OrganizationInvitationRequest> for InvitationInput {
    fn from(r: OrganizationInvitationRequest) -> Self {
        InvitationInput {
            username: r.username,
            roles: r.roles,
            team_ids: r.team_ids,
            group_role_assignments: assignments(r.group_role_assignments),
        }
    }
}

impl From<OrganizationInvitationUpdateRequest> for InvitationInput {
    fn from(r: OrganizationInvitationUpdateRequest) -> Self {
        InvitationInput {
            username: None,
            roles: r.roles,
            team_ids: r.team_ids,
            group_role_assignments: assignments(r.group_role_assignments),
        }
    }
}

impl From<GroupInvitationRequest> for InvitationInput {
    fn from(r: GroupInvitationRequest) -> Self {
        InvitationInput {
            username: r.username,
            roles: r.roles,
            ..Default::default()
        }
    }
}

impl From<GroupInvitationUpdateRequest> for InvitationInput {
    fn from(r: GroupInvitationUpdateRequest) -> Self {
        InvitationInput {
            roles: r.roles,
            ..Default::default()
        }
    }
}
