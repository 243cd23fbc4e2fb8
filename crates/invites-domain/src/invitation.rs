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
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
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
