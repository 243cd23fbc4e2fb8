//! The service behind the HTTP edge: authorization, invitation rules and store access.

use chrono::Utc;
use invites_api::backend::{LimitCount, LimitKind, LimitTotals};
use invites_api::{ApiKeyCredential, Backend, Caller, IssuedToken, Scope};
use invites_digest::NonceUse;
use invites_domain::authz;
use invites_domain::community::{self, CommunityTarget, InvitedUser};
use invites_domain::invitation::{validate_input, InvitationInput, Level, Purpose, ValidInput};
use invites_domain::{CommunityRole, GroupRole, OrgRole};
use invites_domain::{
    Error, ErrorCode, Invitation, NewInvitation, ObjectId, Principal, PrincipalKind,
};
use invites_store::{
    AuditEntry, CourseRecord, InvitationScope, ProjectRecord, Removal, Store, StoreError,
    TokenOwner,
};
use subtle::ConstantTimeEq;

use crate::cache::{self, Cached};
use crate::credentials::{new_secret, sha256_hex};

/// How long the readiness check waits for the database.
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Lifetime of service-account access tokens.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// Converts a store failure into what the client may see; the cause goes to the log.
pub fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Busy => Error::database_busy(),
        StoreError::Full => Error::new(
            ErrorCode::ServiceUnavailable,
            "The database is out of space; retry later.",
        )
        .with_retry_after(30),
        StoreError::Unavailable(why) => {
            tracing::warn!(error = %why, "database unreachable");
            Error::new(
                ErrorCode::ServiceUnavailable,
                "The database cannot be reached; retry shortly.",
            )
            .with_retry_after(1)
        }
        other => {
            tracing::error!(error = %other, "store failure");
            Error::internal()
        }
    }
}

/// The answer of a replica whose database a newer version migrated (schema `found`, this
/// program's `known`): it serves nothing more; the client retries, reaching a new replica.
fn superseded(found: i64, known: i64) -> Error {
    Error::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "This server is an older version than its database (schema {found}, it knows up to \
             {known}) and no longer serves; retry shortly."
        ),
    )
    .with_retry_after(1)
}

/// What authentication and authorization read on every request, cached (see [`crate::cache`]).
#[derive(Default)]
struct Caches {
    api_keys: Cached<String, Option<ApiKeyCredential>>,
    /// By the token's SHA-256.
    tokens: Cached<String, Option<TokenOwner>>,
    /// By (principal, organization).
    org_roles: Cached<(ObjectId, ObjectId), Vec<OrgRole>>,
    /// By (principal, project).
    project_roles: Cached<(ObjectId, ObjectId), Vec<GroupRole>>,
    projects: Cached<ObjectId, Option<ProjectRecord>>,
    groups: Cached<i64, bool>,
    courses: Cached<i64, Option<CourseRecord>>,
    /// By (group or course, user).
    community_roles: Cached<(CommunityTarget, i64), Option<CommunityRole>>,
}

/// [`Backend`] over a [`Store`].
#[derive(Clone)]
pub struct StoreBackend {
    store: Store,
    caches: std::sync::Arc<Caches>,
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBackend").finish_non_exhaustive()
    }
}

/// Whether a looked-up value is worth keeping: things found are; lookups that found nothing are
/// not, so that guessing keys or ids cannot fill the cache.
fn found<T>(v: &Option<T>) -> bool {
    v.is_some()
}

impl StoreBackend {
    /// The backend over `store`; starts polling the store for credential and role changes made
    /// by other processes (the polling ends when the backend is dropped). Needs a Tokio runtime.
    pub fn new(store: Store) -> Self {
        let caches = std::sync::Arc::new(Caches::default());
        cache::poll(store.clone(), std::sync::Arc::downgrade(&caches));
        StoreBackend { store, caches }
    }

    /// `load`'s value through `cache` (see [`cache::through`]).
    async fn cached<K, V>(
        &self,
        cache: &Cached<K, V>,
        key: K,
        keep: impl FnOnce(&V) -> bool,
        load: impl std::future::Future<Output = Result<V, StoreError>>,
    ) -> Result<V, Error>
    where
        K: std::hash::Hash + Eq,
        V: Clone,
    {
        cache::through(&self.store, cache, key, keep, load)
            .await
            .map_err(store_error)
    }

    async fn org_roles(&self, principal: ObjectId, org: ObjectId) -> Result<Vec<OrgRole>, Error> {
        let load = self.store.org_roles(principal, org);
        self.cached(&self.caches.org_roles, (principal, org), |_| true, load)
            .await
    }

    async fn project_roles(
        &self,
        principal: ObjectId,
        p: ObjectId,
    ) -> Result<Vec<GroupRole>, Error> {
        let load = self.store.project_roles(principal, p);
        self.cached(&self.caches.project_roles, (principal, p), |_| true, load)
            .await
    }

    async fn project(&self, id: ObjectId) -> Result<Option<ProjectRecord>, Error> {
        let load = self.store.project(id);
        self.cached(&self.caches.projects, id, found, load).await
    }

    async fn course(&self, id: i64) -> Result<Option<CourseRecord>, Error> {
        let load = self.store.course(id);
        self.cached(&self.caches.courses, id, found, load).await
    }

    async fn group_exists(&self, id: i64) -> Result<bool, Error> {
        let load = async { Ok(self.store.community_group(id).await?.is_some()) };
        self.cached(&self.caches.groups, id, |e| *e, load).await
    }

    async fn community_role(
        &self,
        target: CommunityTarget,
        user: i64,
    ) -> Result<Option<CommunityRole>, Error> {
        let load = self.store.community_role(target, user);
        self.cached(&self.caches.community_roles, (target, user), |_| true, load)
            .await
    }

    /// The API key with this public key from the store, its access list parsed.
    async fn load_api_key(&self, public_key: &str) -> Result<Option<ApiKeyCredential>, Error> {
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

    /// Checks that `principal` may manage invitations in `scope` and returns the organization the
    /// scope belongs to. Someone with no role at all in the tenant is told it does not exist (404);
    /// someone in it without the role gets 403.
    async fn authorize(&self, principal: &Principal, scope: Scope) -> Result<ObjectId, Error> {
        match scope {
            Scope::AtlasOrg(org) => {
                let roles = self.org_roles(principal.id, org).await?;
                if !authz::sees_tenant(&roles) {
                    return Err(Error::org_not_found(&org.to_string()));
                }
                if !authz::may_manage_org_invitations(&roles) {
                    return Err(Error::forbidden());
                }
                Ok(org)
            }
            Scope::AtlasProject(p) | Scope::OpsManagerProject(p) => {
                let not_found = || Error::group_not_found(&p.to_string());
                let project = self.project(p).await?.ok_or_else(not_found)?;
                let roles = self.project_roles(principal.id, p).await?;
                let org_roles = self.org_roles(principal.id, project.org_id).await?;
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
                Ok(project.org_id)
            }
        }
    }

    /// Checks that every project an organization invitation assigns belongs to that organization.
    async fn check_assignments(&self, org: ObjectId, input: &ValidInput) -> Result<(), Error> {
        let Some(assignments) = &input.group_role_assignments else {
            return Ok(());
        };
        let mut err: Option<Error> = None;
        let mut seen: Vec<&str> = Vec::new();
        for a in assignments {
            if seen.contains(&a.group_id.as_str()) {
                continue;
            }
            seen.push(&a.group_id);
            let id: ObjectId = a.group_id.parse().map_err(|_| Error::internal())?;
            let project = self.project(id).await?;
            if project.is_none_or(|p| p.org_id != org) {
                let e = err.take().unwrap_or_else(|| {
                    Error::new(
                        ErrorCode::InvalidAttribute,
                        "groupRoleAssignments names projects outside this organization.",
                    )
                });
                err = Some(e.with_field(
                    "groupRoleAssignments.groupId",
                    format!("{} is not a project of this organization", a.group_id),
                ));
            }
        }
        err.map_or(Ok(()), Err)
    }

    async fn pending_by_username(
        &self,
        scope: Scope,
        username: &str,
    ) -> Result<Option<Invitation>, Error> {
        Ok(self
            .store
            .pending_invitations(store_scope(scope), Some(username))
            .await
            .map_err(store_error)?
            .into_iter()
            .next())
    }

    async fn apply_update(
        &self,
        caller: &Caller,
        id: ObjectId,
        input: &ValidInput,
    ) -> Result<Invitation, Error> {
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        self.store
            .update_invitation(
                id,
                input.roles.as_deref(),
                input.team_ids.as_deref(),
                input.group_role_assignments.as_deref(),
                &audit,
            )
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::invitation_not_found(&id.to_string()))
    }

    async fn valid_input(
        &self,
        scope: Scope,
        org: ObjectId,
        input: &InvitationInput,
        purpose: Purpose,
    ) -> Result<ValidInput, Error> {
        let level = match scope {
            Scope::AtlasOrg(_) => Level::Org,
            Scope::AtlasProject(_) | Scope::OpsManagerProject(_) => Level::Project,
        };
        let valid = validate_input(input, level, purpose)?;
        self.check_assignments(org, &valid).await?;
        Ok(valid)
    }

    /// The pending invitation `id` if it belongs to `scope` (an organization's invitations are
    /// those to no project).
    async fn pending_in(&self, scope: Scope, id: ObjectId) -> Result<Invitation, Error> {
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
            return Err(not_found());
        }
        Ok(inv)
    }
}

impl StoreBackend {
    /// Checks that the target exists and that the caller may manage its invitations; returns the
    /// caller's community user id.
    async fn authorize_community(
        &self,
        caller: &Caller,
        target: CommunityTarget,
    ) -> Result<i64, Error> {
        let user_id = self.community_user(caller, target).await?;
        let is_creator = match target {
            CommunityTarget::Course(id) => self
                .course(id)
                .await?
                .is_some_and(|c| c.creator_user_id == user_id),
            CommunityTarget::Group(_) => false,
        };
        let role = self.community_role(target, user_id).await?;
        if !community::may_manage(target, role, is_creator) {
            return Err(community::not_a_manager(target));
        }
        Ok(user_id)
    }

    /// The caller's community user id, once the target is known to exist.
    async fn community_user(&self, caller: &Caller, target: CommunityTarget) -> Result<i64, Error> {
        let exists = match target {
            CommunityTarget::Group(id) => self.group_exists(id).await?,
            CommunityTarget::Course(id) => self.course(id).await?.is_some(),
        };
        if !exists {
            return Err(community::not_found(target));
        }
        caller.principal.user_id.ok_or_else(Error::forbidden)
    }
}

/// The `inviterUsername` of an invitation: the caller's username when it is an email address;
/// programmatic callers get an address under the reserved `.invalid` domain naming their key.
fn inviter(principal: &Principal) -> String {
    if invites_domain::invitation::is_valid_username(&principal.display) {
        principal.display.clone()
    } else {
        format!(
            "{}@{}.invalid",
            principal.display,
            principal.kind.as_str().replace('_', "-")
        )
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
        let load = self.load_api_key(public_key);
        let cache = &self.caches.api_keys;
        cache::through(&self.store, cache, public_key.to_owned(), found, load).await
    }

    async fn bearer(&self, token: &str) -> Result<Option<Principal>, Error> {
        let digest = sha256_hex(token);
        let load = self.store.token_owner(&digest);
        let owner = self
            .cached(&self.caches.tokens, digest.clone(), found, load)
            .await?;
        Ok(owner.and_then(|owner| owner.principal_at(Utc::now()).cloned()))
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

    async fn record_nonce_count(&self, used: NonceUse) -> Result<bool, Error> {
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        self.store
            .record_nonce_count(&used.nonce, used.nc, used.expires_ms, now_ms)
            .await
            .map_err(store_error)
    }

    async fn merge_limit_counts(
        &self,
        window_start_ms: i64,
        counted: Vec<LimitCount>,
        since: i64,
    ) -> Result<Option<LimitTotals>, Error> {
        let counted: Vec<invites_store::LimitCount> = counted
            .into_iter()
            .map(|c| invites_store::LimitCount {
                kind: c.kind.as_str().to_owned(),
                subject: c.subject,
                count: i64::try_from(c.count).unwrap_or(i64::MAX),
            })
            .collect();
        // Not through `store_error`: the caller is the background merge, which logs a failure
        // once rather than every 100 ms, and no client sees this error.
        let totals = self
            .store
            .merge_limit_counts(window_start_ms, &counted, since)
            .await
            .map_err(|e| Error::new(ErrorCode::ServiceUnavailable, e.to_string()))?;
        Ok(totals.map(|t| LimitTotals {
            changed: t
                .changed
                .into_iter()
                .filter_map(|c| {
                    Some(LimitCount {
                        kind: LimitKind::parse(&c.kind)?,
                        subject: c.subject,
                        count: u64::try_from(c.count).unwrap_or(0),
                    })
                })
                .collect(),
            seen: t.seen,
        }))
    }

    fn not_serving(&self) -> Option<Error> {
        self.store
            .superseded()
            .map(|(found, known)| superseded(found, known))
    }

    async fn health(&self) -> Result<(), Error> {
        // Bounded: a database that does not answer at all (a PostgreSQL host gone) would hold
        // the probe for the pool's 30 s acquire timeout.
        match tokio::time::timeout(READINESS_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(StoreError::SchemaTooNew { found, known })) => Err(superseded(found, known)),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "readiness: the database does not answer");
                Err(invites_api::oauth::database_unavailable())
            }
            Err(_) => {
                tracing::error!(
                    "readiness: the database did not answer within {READINESS_TIMEOUT:?}"
                );
                Err(invites_api::oauth::database_unavailable())
            }
        }
    }

    async fn invitations_version(&self, caller: &Caller, scope: Scope) -> Result<i64, Error> {
        self.authorize(&caller.principal, scope).await?;
        self.store
            .invitations_version(store_scope(scope))
            .await
            .map_err(store_error)
    }

    async fn list_invitations_versioned(
        &self,
        caller: &Caller,
        scope: Scope,
        username: Option<&str>,
    ) -> Result<(Option<i64>, Vec<Invitation>), Error> {
        self.authorize(&caller.principal, scope).await?;
        self.store
            .pending_invitations_versioned(store_scope(scope), username)
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
        self.pending_in(scope, id).await
    }

    async fn delete_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
    ) -> Result<(), Error> {
        self.authorize(&caller.principal, scope).await?;
        #[cfg(feature = "bench-bounds")]
        if invites_store::bench_bound::current()
            == Some(invites_store::bench_bound::Bound::Authorized)
        {
            return Ok(());
        }
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        match self
            .store
            .remove_pending_invitation(store_scope(scope), id, &audit)
            .await
            .map_err(store_error)?
        {
            Removal::Removed => Ok(()),
            Removal::NotFound => Err(Error::invitation_not_found(&id.to_string())),
            Removal::ProjectInvitation => Err(Error::project_invitation_via_org(&id.to_string())),
        }
    }

    async fn create_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        input: InvitationInput,
    ) -> Result<Invitation, Error> {
        let org = self.authorize(&caller.principal, scope).await?;
        let valid = self
            .valid_input(scope, org, &input, Purpose::Create)
            .await?;
        let username = valid.username.clone().unwrap_or_default();
        if let Some(existing) = self.pending_by_username(scope, &username).await? {
            return self.apply_update(caller, existing.id, &valid).await;
        }
        let new = NewInvitation {
            org_id: org,
            project_id: match scope {
                Scope::AtlasOrg(_) => None,
                Scope::AtlasProject(p) | Scope::OpsManagerProject(p) => Some(p),
            },
            username: username.clone(),
            inviter_username: inviter(&caller.principal),
            roles: valid.roles.clone().unwrap_or_default(),
            team_ids: valid.team_ids.clone().unwrap_or_default(),
            group_role_assignments: valid.group_role_assignments.clone().unwrap_or_default(),
        };
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        match self.store.create_invitation(&new, &audit).await {
            Ok(inv) => Ok(inv),
            // A concurrent create for the same user won the race: update that one instead.
            Err(StoreError::Conflict(_)) => match self.pending_by_username(scope, &username).await?
            {
                Some(existing) => self.apply_update(caller, existing.id, &valid).await,
                None => Err(Error::new(
                    ErrorCode::ServiceUnavailable,
                    "A concurrent change interfered; retry.",
                )
                .with_retry_after(1)),
            },
            Err(e) => Err(store_error(e)),
        }
    }

    async fn update_invitation_by_username(
        &self,
        caller: &Caller,
        scope: Scope,
        input: InvitationInput,
    ) -> Result<Invitation, Error> {
        let org = self.authorize(&caller.principal, scope).await?;
        let valid = self
            .valid_input(scope, org, &input, Purpose::UpdateByUsername)
            .await?;
        let username = valid.username.clone().unwrap_or_default();
        let existing = self
            .pending_by_username(scope, &username)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InvitationNotFound,
                    format!("No pending invitation for {username} exists."),
                )
                .with_parameter("username", username.clone())
            })?;
        self.apply_update(caller, existing.id, &valid).await
    }

    async fn update_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
        input: InvitationInput,
    ) -> Result<Invitation, Error> {
        let org = self.authorize(&caller.principal, scope).await?;
        let valid = self
            .valid_input(scope, org, &input, Purpose::UpdateById)
            .await?;
        self.pending_in(scope, id).await?;
        self.apply_update(caller, id, &valid).await
    }

    async fn list_community_invitations(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>), Error> {
        self.authorize_community(caller, target).await?;
        self.store
            .invited_users(target, limit, offset)
            .await
            .map_err(store_error)
    }

    async fn invite_community_users(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        users: &[i64],
    ) -> Result<(), Error> {
        let inviter = self.authorize_community(caller, target).await?;
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        let unknown = self
            .store
            .invite_users(target, users, Some(inviter), &audit)
            .await
            .map_err(store_error)?;
        offending_users(unknown, "No user exists with id")
    }

    async fn remove_community_invitations(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        users: &[i64],
    ) -> Result<(), Error> {
        self.authorize_community(caller, target).await?;
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        let offending = self
            .store
            .remove_invitations(target, users, &audit)
            .await
            .map_err(store_error)?;
        offending_users(offending, "No pending invitation for user")
    }

    async fn join_community(&self, caller: &Caller, target: CommunityTarget) -> Result<(), Error> {
        let user_id = self.community_user(caller, target).await?;
        let audit = AuditEntry::by(&caller.principal, caller.remote_addr.clone(), Utc::now());
        if self
            .store
            .join(target, user_id, &audit)
            .await
            .map_err(store_error)?
        {
            Ok(())
        } else {
            Err(community::no_pending_invitation(target))
        }
    }
}

/// A 400 naming the users a bulk request could not act on; nothing was changed.
fn offending_users(ids: Vec<i64>, what: &str) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let mut e = Error::new(
        ErrorCode::InvalidUserIds,
        format!("{what} {}; nothing was changed.", list.join(", ")),
    )
    .with_field("users", format!("{what} {}", list.join(", ")));
    for id in list {
        e = e.with_parameter("user", id);
    }
    Err(e)
}
