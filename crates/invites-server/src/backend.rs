//! The service behind the HTTP edge: authorization, invitation rules and store access.

use chrono::Utc;
use invites_api::{ApiKeyCredential, Backend, Caller, IssuedToken, Scope};
use invites_domain::authz;
use invites_domain::{Error, ErrorCode, Invitation, ObjectId, Principal, PrincipalKind};
use invites_store::{AuditEntry, InvitationScope, Store, StoreError};
use subtle::ConstantTimeEq;

use crate::credentials::{new_secret, sha256_hex};

/// Lifetime of service-account access tokens.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// Converts a store failure into what the client may see; the cause goes to the log.
pub fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Busy => Error::new(
            ErrorCode::ServiceUnavailable,
            "The database is busy; retry shortly.",
        )
        .with_retry_after(1),
        StoreError::Full => Error::new(
            ErrorCode::ServiceUnavailable,
            "The database is out of space; retry later.",
        )
        .with_retry_after(30),
        other => {
            tracing::error!(error = %other, "store failure");
            Error::internal()
        }
    }
}

/// [`Backend`] over a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreBackend {
    store: Store,
}

impl StoreBackend {
    pub fn new(store: Store) -> Self {
        StoreBackend { store }
    }

    /// Checks that `principal` may manage invitations in `scope`. Someone with no role at all in
    /// the tenant is told it does not exist (404); someone in it without the role gets 403.
    async fn authorize(&self, principal: &Principal, scope: Scope) -> Result<(), Error> {
        match scope {
            Scope::AtlasOrg(org) => {
                let roles = self
                    .store
                    .org_roles(principal.id, org)
                    .await
                    .map_err(store_error)?;
                if !authz::sees_tenant(&roles) {
                    return Err(Error::org_not_found(&org.to_string()));
                }
                if !authz::may_manage_org_invitations(&roles) {
                    return Err(Error::forbidden());
                }
            }
            Scope::AtlasProject(p) | Scope::OpsManagerProject(p) => {
                let not_found = || Error::group_not_found(&p.to_string());
                let project = self
                    .store
                    .project(p)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(not_found)?;
                let roles = self
                    .store
                    .project_roles(principal.id, p)
                    .await
                    .map_err(store_error)?;
                let org_roles = self
                    .store
                    .org_roles(principal.id, project.org_id)
                    .await
                    .map_err(store_error)?;
                if !authz::sees_tenant(&roles) && !authz::sees_tenant(&org_roles) {
                    return Err(not_found());
                }
                let allowed = match scope {
                    Scope::OpsManagerProject(_) => {
                        authz::may_manage_ops_manager_project_invitations(&roles)
                    }
                    _ => authz::may_manage_atlas_project_invitations(&roles),
                };
                if !allowed {
                    return Err(Error::forbidden());
                }
            }
        }
        Ok(())
    }

    /// The pending invitation `id` if it belongs to `scope`. Removing a project invitation through
    /// its organization's path is refused with `CANNOT_DELETE_GROUP_INVITATION`.
    async fn pending_in(
        &self,
        scope: Scope,
        id: ObjectId,
        for_delete: bool,
    ) -> Result<Invitation, Error> {
        let not_found = || Error::invitation_not_found(&id.to_string());
        let inv = self
            .store
            .invitation(id)
            .await
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        if inv.status != invites_domain::InvitationStatus::Pending {
            return Err(not_found());
        }
        let belongs = match scope {
            Scope::AtlasOrg(org) => inv.org_id == org && inv.project_id.is_none(),
            Scope::AtlasProject(p) | Scope::OpsManagerProject(p) => inv.project_id == Some(p),
        };
        if !belongs {
            if let (Scope::AtlasOrg(org), Some(_)) = (scope, inv.project_id) {
                if for_delete && inv.org_id == org {
                    return Err(Error::new(
                        ErrorCode::CannotDeleteGroupInvitation,
                        format!("Invitation {id} is a project invitation; remove it through its project."),
                    )
                    .with_parameters([id.to_string()]));
                }
            }
            return Err(not_found());
        }
        Ok(inv)
    }
}

fn store_scope(scope: Scope) -> InvitationScope {
    match scope {
        Scope::AtlasOrg(o) => InvitationScope::Org(o),
        Scope::AtlasProject(p) | Scope::OpsManagerProject(p) => InvitationScope::Project(p),
    }
}

#[async_trait::async_trait]
impl Backend for StoreBackend {
    async fn api_key(&self, public_key: &str) -> Result<Option<ApiKeyCredential>, Error> {
        let Some(key) = self
            .store
            .api_key_by_public_key(public_key)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let access_list = key
            .access_list
            .iter()
            .filter_map(|entry| {
                let parsed = entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                if parsed.is_err() {
                    tracing::warn!(entry, public_key, "ignoring unparsable access-list entry");
                }
                parsed.ok()
            })
            .collect();
        Ok(Some(ApiKeyCredential {
            principal: Principal {
                kind: PrincipalKind::ApiKey,
                id: key.principal_id,
                display: key.public_key,
                user_id: None,
            },
            ha1_md5: key.ha1_md5,
            ha1_sha256: key.ha1_sha256,
            access_list,
        }))
    }

    async fn bearer(&self, token: &str) -> Result<Option<Principal>, Error> {
        self.store
            .principal_by_token(&sha256_hex(token), Utc::now())
            .await
            .map_err(store_error)
    }

    async fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Option<IssuedToken>, Error> {
        let Some(sa) = self
            .store
            .service_account_by_client_id(client_id)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let given = sha256_hex(client_secret);
        if !bool::from(given.as_bytes().ct_eq(sa.secret_sha256.as_bytes())) {
            return Ok(None);
        }
        let token = new_secret("mdb_sa_tk_");
        let now = Utc::now();
        self.store
            .create_access_token(
                sa.principal_id,
                &sha256_hex(&token),
                Some(now + chrono::Duration::seconds(TOKEN_LIFETIME_SECS as i64)),
                now,
            )
            .await
            .map_err(store_error)?;
        Ok(Some(IssuedToken {
            access_token: token,
            expires_in: TOKEN_LIFETIME_SECS,
        }))
    }

    async fn health(&self) -> Result<(), Error> {
        self.store.ping().await.map_err(|e| {
            tracing::error!(error = %e, "health check failed");
            Error::new(
                ErrorCode::ServiceUnavailable,
                "The database does not answer.",
            )
            .with_retry_after(5)
        })
    }

    async fn list_invitations(
        &self,
        caller: &Caller,
        scope: Scope,
        username: Option<&str>,
    ) -> Result<Vec<Invitation>, Error> {
        self.authorize(&caller.principal, scope).await?;
        self.store
            .pending_invitations(store_scope(scope), username)
            .await
            .map_err(store_error)
    }

    async fn get_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
    ) -> Result<Invitation, Error> {
        self.authorize(&caller.principal, scope).await?;
        self.pending_in(scope, id, false).await
    }

    async fn delete_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
    ) -> Result<(), Error> {
        self.authorize(&caller.principal, scope).await?;
        self.pending_in(scope, id, true).await?;
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        if self
            .store
            .delete_pending_invitation(id, &audit)
            .await
            .map_err(store_error)?
        {
            Ok(())
        } else {
            Err(Error::invitation_not_found(&id.to_string()))
        }
    }
}
