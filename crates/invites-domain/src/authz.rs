//! Who may do what: the authorization rules of the three families, as pure functions of roles.
//!
//! Roles are never inherited across levels here: an organization owner is a project owner only
//! if the data says so, as the issue and Atlas require.

use crate::roles::{GroupRole, OrgRole};

/// Atlas organization invitations need Organization Owner.
pub fn may_manage_org_invitations(roles: &[OrgRole]) -> bool {
    roles.contains(&OrgRole::Owner)
}

/// Atlas project invitations need Project Owner.
pub fn may_manage_atlas_project_invitations(roles: &[GroupRole]) -> bool {
    roles.contains(&GroupRole::Owner)
}

/// Ops Manager project invitations need Project User Admin or Project Owner.
pub fn may_manage_ops_manager_project_invitations(roles: &[GroupRole]) -> bool {
    roles
        .iter()
        .any(|r| matches!(r, GroupRole::Owner | GroupRole::UserAdmin))
}

/// Whether any role at all is held: a principal with no role in a tenant may not even learn
/// that the tenant exists, so the answer is 404, not 403.
pub fn sees_tenant<R>(roles: &[R]) -> bool {
    !roles.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_manage_org_invitations() {
        assert!(may_manage_org_invitations(&[
            OrgRole::Member,
            OrgRole::Owner
        ]));
        assert!(!may_manage_org_invitations(&[
            OrgRole::Member,
            OrgRole::GroupCreator
        ]));
    }

    #[test]
    fn ops_manager_accepts_user_admins() {
        assert!(may_manage_ops_manager_project_invitations(&[
            GroupRole::UserAdmin
        ]));
        assert!(!may_manage_atlas_project_invitations(&[
            GroupRole::UserAdmin
        ]));
        assert!(!may_manage_ops_manager_project_invitations(&[
            GroupRole::ReadOnly
        ]));
    }
}
