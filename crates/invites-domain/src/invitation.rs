//! Invitation rules shared by all three API families.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ObjectId;

/// How long an invitation stays valid: Atlas invitations expire 30 days after they are sent.
pub const INVITATION_LIFETIME: Duration = Duration::days(30);

/// When an invitation created at `created_at` expires.
pub fn expires_at(created_at: DateTime<Utc>) -> DateTime<Utc> {
    created_at + INVITATION_LIFETIME
}

/// The state of an invitation. Removed invitations are deleted, not marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "PENDING",
            InvitationStatus::Accepted => "ACCEPTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(InvitationStatus::Pending),
            "ACCEPTED" => Some(InvitationStatus::Accepted),
            _ => None,
        }
    }
}

/// A project the user joins with a role when accepting an organization invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoleAssignment {
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(rename = "groupRole")]
    pub group_role: String,
}

/// What a caller supplies to create an Atlas or Ops Manager invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvitation {
    pub org_id: ObjectId,
    /// None: an organization invitation; Some: a project invitation.
    pub project_id: Option<ObjectId>,
    pub username: String,
    pub inviter_username: String,
    pub roles: Vec<String>,
    pub team_ids: Vec<String>,
    pub group_role_assignments: Vec<GroupRoleAssignment>,
}

/// An Atlas or Ops Manager invitation with the names of what it invites to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    pub id: ObjectId,
    pub org_id: ObjectId,
    pub org_name: String,
    pub project_id: Option<ObjectId>,
    pub project_name: Option<String>,
    pub username: String,
    pub inviter_username: String,
    pub roles: Vec<String>,
    pub team_ids: Vec<String>,
    pub group_role_assignments: Vec<GroupRoleAssignment>,
    pub status: InvitationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Formats a timestamp the way Atlas does: ISO 8601, UTC, whole seconds, `Z` suffix.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    // Not `format("%Y-%m-%dT%H:%M:%SZ")`: that parses the pattern on every call, a visible cost
    // in a list of a thousand invitations. The same text for years 0 to 9999 (tested).
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Checks a username the way Atlas does: it is an email address. The check is deliberately
/// simple (one `@`, non-empty local part and a dotted domain, no spaces) and bounded in length.
pub fn is_valid_username(s: &str) -> bool {
    if s.is_empty() || s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_thirty_days_after_creation() {
        let created = DateTime::parse_from_rfc3339("2024-01-31T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            format_timestamp(expires_at(created)),
            "2024-03-01T10:00:00Z"
        );
    }

    #[test]
    fn usernames_are_email_addresses() {
        assert!(is_valid_username("jane@example.com"));
        assert!(!is_valid_username("jane"));
        assert!(!is_valid_username("jane@localhost"));
        assert!(!is_valid_username("a b@example.com"));
        assert!(!is_valid_username("@example.com"));
    }

    #[test]
    fn status_round_trips() {
        for s in [InvitationStatus::Pending, InvitationStatus::Accepted] {
            assert_eq!(InvitationStatus::parse(s.as_str()), Some(s));
        }
    }
}

/// What a create or update request asks for, as sent (every field optional).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvitationInput {
    pub username: Option<String>,
    pub roles: Option<Vec<String>>,
    pub team_ids: Option<Vec<String>>,
    /// Project id and the roles in it.
    pub group_role_assignments: Option<Vec<(Option<String>, Vec<String>)>>,
}

/// The level an invitation invites to, which decides the valid roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Org,
    Project,
}

/// What a request must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Creating: username and at least one role.
    Create,
    /// Updating the invitation of a username named in the body.
    UpdateByUsername,
    /// Updating an invitation named by id: no username.
    UpdateById,
}

/// A request checked against the rules (a repeated role or team id is refused, not merged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidInput {
    pub username: Option<String>,
    pub roles: Option<Vec<String>>,
    pub team_ids: Option<Vec<String>>,
    pub group_role_assignments: Option<Vec<GroupRoleAssignment>>,
}

/// Index of the first item that repeats an earlier one (the contract marks these lists `uniqueItems`).
fn first_repeat(v: &[String]) -> Option<usize> {
    (1..v.len()).find(|&i| v[..i].contains(&v[i]))
}

/// Checks an invitation request, reporting every violation at once as field violations of one
/// `INVALID_ATTRIBUTE` error.
pub fn validate_input(
    input: &InvitationInput,
    level: Level,
    purpose: Purpose,
) -> Result<ValidInput, crate::Error> {
    use crate::roles::{GroupRole, OrgRole};
    let mut violations: Vec<(String, String)> = Vec::new();
    let mut bad =
        |field: String, description: &str| violations.push((field, description.to_owned()));

    match (&input.username, purpose) {
        (None, Purpose::Create | Purpose::UpdateByUsername) => {
            bad("username".into(), "is required")
        }
        (Some(u), _) if !is_valid_username(u) => bad("username".into(), "must be an email address"),
        _ => {}
    }
    let role_ok = |r: &str| match level {
        Level::Org => r.parse::<OrgRole>().is_ok(),
        Level::Project => r.parse::<GroupRole>().is_ok(),
    };
    match &input.roles {
        None if purpose == Purpose::Create => bad("roles".into(), "is required"),
        Some(roles) if roles.is_empty() => bad("roles".into(), "must name at least one role"),
        Some(roles) => {
            if let Some(i) = first_repeat(roles) {
                bad(format!("roles[{i}]"), "repeats a role already listed");
            }
            for (i, r) in roles.iter().enumerate() {
                if !role_ok(r) {
                    let what = match level {
                        Level::Org => "is not an organization role",
                        Level::Project => "is not a project role",
                    };
                    bad(format!("roles[{i}]"), what);
                }
            }
        }
        None => {}
    }
    if let Some(teams) = &input.team_ids {
        if level == Level::Project {
            bad("teamIds".into(), "is not accepted on project invitations");
        }
        if let Some(i) = first_repeat(teams) {
            bad(format!("teamIds[{i}]"), "repeats a team already listed");
        }
        for (i, t) in teams.iter().enumerate() {
            if t.parse::<crate::ObjectId>().is_err() {
                bad(
                    format!("teamIds[{i}]"),
                    "must be a 24-hexadecimal digit string",
                );
            }
        }
    }
    let mut assignments = None;
    if let Some(gra) = &input.group_role_assignments {
        if level == Level::Project {
            bad(
                "groupRoleAssignments".into(),
                "is not accepted on project invitations",
            );
        }
        let mut flat = Vec::new();
        for (i, (group_id, roles)) in gra.iter().enumerate() {
            match group_id {
                Some(g) if g.parse::<crate::ObjectId>().is_ok() => {}
                Some(_) => bad(
                    format!("groupRoleAssignments[{i}].groupId"),
                    "must be a 24-hexadecimal digit string",
                ),
                None => bad(format!("groupRoleAssignments[{i}].groupId"), "is required"),
            }
            if roles.is_empty() {
                bad(
                    format!("groupRoleAssignments[{i}].roles"),
                    "must name at least one role",
                );
            }
            for (j, r) in roles.iter().enumerate() {
                if r.parse::<GroupRole>().is_err() {
                    bad(
                        format!("groupRoleAssignments[{i}].roles[{j}]"),
                        "is not a project role",
                    );
                }
            }
            if let Some(j) = first_repeat(roles) {
                bad(
                    format!("groupRoleAssignments[{i}].roles[{j}]"),
                    "repeats a role already listed",
                );
            }
            for r in roles.iter().cloned() {
                let a = GroupRoleAssignment {
                    group_id: group_id.clone().unwrap_or_default(),
                    group_role: r,
                };
                if !flat.contains(&a) {
                    flat.push(a);
                }
            }
        }
        assignments = Some(flat);
    }
    if !violations.is_empty() {
        let fields: Vec<String> = violations.iter().map(|(f, _)| f.clone()).collect();
        let mut err = crate::Error::new(
            crate::ErrorCode::InvalidAttribute,
            format!(
                "Invalid attribute(s) in the request: {}.",
                fields.join(", ")
            ),
        );
        for (f, d) in violations {
            err = err.with_parameter("field", f.clone()).with_field(f, d);
        }
        return Err(err);
    }
    Ok(ValidInput {
        username: input.username.clone(),
        roles: input.roles.clone(),
        team_ids: input.team_ids.clone(),
        group_role_assignments: assignments,
    })
}

#[cfg(test)]
mod input_tests {
    use super::*;
    use proptest::prelude::*;

    fn input(username: Option<&str>, roles: &[&str]) -> InvitationInput {
        InvitationInput {
            username: username.map(str::to_owned),
            roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_create_passes_and_repeated_roles_are_refused() {
        let v = validate_input(
            &input(Some("a@b.co"), &["ORG_MEMBER", "ORG_OWNER"]),
            Level::Org,
            Purpose::Create,
        )
        .unwrap();
        assert_eq!(
            v.roles,
            Some(vec!["ORG_MEMBER".to_owned(), "ORG_OWNER".to_owned()])
        );
        let e = validate_input(
            &input(Some("a@b.co"), &["ORG_MEMBER", "ORG_MEMBER"]),
            Level::Org,
            Purpose::Create,
        )
        .unwrap_err();
        assert_eq!(e.fields[0].field, "roles[1]");
    }

    #[test]
    fn every_violation_is_reported() {
        let e = validate_input(
            &input(Some("nope"), &["GROUP_OWNER", "ORG_OWNER"]),
            Level::Org,
            Purpose::Create,
        )
        .unwrap_err();
        let fields: Vec<_> = e.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["username", "roles[0]"]);
        assert_eq!(e.code, crate::ErrorCode::InvalidAttribute);
        let e = validate_input(&InvitationInput::default(), Level::Project, Purpose::Create)
            .unwrap_err();
        let fields: Vec<_> = e.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["username", "roles"]);
    }

    #[test]
    fn updates_by_id_need_no_username_and_may_omit_roles() {
        assert!(validate_input(
            &InvitationInput::default(),
            Level::Project,
            Purpose::UpdateById
        )
        .is_ok());
        let e = validate_input(
            &InvitationInput::default(),
            Level::Project,
            Purpose::UpdateByUsername,
        )
        .unwrap_err();
        assert_eq!(e.fields[0].field, "username");
    }

    #[test]
    fn project_level_refuses_org_only_fields() {
        let mut i = input(Some("a@b.co"), &["GROUP_OWNER"]);
        i.team_ids = Some(vec![]);
        let e = validate_input(&i, Level::Project, Purpose::Create).unwrap_err();
        assert_eq!(e.fields[0].field, "teamIds");
    }

    proptest! {
        #[test]
        fn timestamps_read_like_atlas_s_for_every_second_of_years_0_to_9999(
            secs in -62_167_219_200i64..253_402_300_800i64,
            millis in 0u32..1000,
        ) {
            let t = DateTime::from_timestamp(secs, millis * 1_000_000).unwrap();
            prop_assert_eq!(format_timestamp(t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }

        #[test]
        fn validation_never_panics_and_valid_results_only_hold_known_roles(
            username in proptest::option::of("\\PC{0,40}"),
            roles in proptest::option::of(proptest::collection::vec("[A-Z_]{0,30}", 0..5)),
            teams in proptest::option::of(proptest::collection::vec("[0-9a-f]{0,30}", 0..3)),
        ) {
            let i = InvitationInput { username, roles, team_ids: teams, group_role_assignments: None };
            if let Ok(v) = validate_input(&i, Level::Org, Purpose::Create) {
                for r in v.roles.unwrap() {
                    prop_assert!(r.parse::<crate::OrgRole>().is_ok());
                }
            }
        }
    }
}
