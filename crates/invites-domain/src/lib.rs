//! The invitation domain: identifiers, roles, invitation rules and the one error type, with no I/O.
//!
//! Every other crate speaks these types. Nothing here knows about HTTP, SQL or the clock: callers pass
//! the current time in, so the rules are plain functions that unit tests and property tests can drive.

pub mod authz;
pub mod community;
pub mod error;
pub mod ids;
pub mod invitation;
pub mod principal;
pub mod roles;

pub use error::{Error, ErrorCode, FieldViolation};
pub use ids::{ObjectId, ParseObjectIdError};
pub use invitation::{
    GroupRoleAssignment, Invitation, InvitationStatus, NewInvitation, INVITATION_LIFETIME,
};
pub use principal::{Principal, PrincipalKind};
pub use roles::{CommunityRole, GroupRole, OrgRole};
