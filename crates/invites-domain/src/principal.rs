//! Who is calling: the authenticated principal that authorization decisions are made for.

use crate::ids::ObjectId;

/// What kind of credential authenticated the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A programmatic API key, authenticated with HTTP Digest.
    ApiKey,
    /// An Atlas service account, authenticated with an OAuth2 Bearer token.
    ServiceAccount,
    /// A community-platform user, authenticated with a Bearer access token.
    User,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::ServiceAccount => "service_account",
            PrincipalKind::User => "user",
        }
    }
}

/// An authenticated caller. Roles are not carried here: they are looked up for the resource
/// being acted on, so a change of role takes effect on the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The principal's id in the `principals` table.
    pub id: ObjectId,
    /// A human-readable name for logs and the audit trail (public key, client id or username).
    pub display: String,
    /// The community user id, for principals that are community users.
    pub user_id: Option<i64>,
}
