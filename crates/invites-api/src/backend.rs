//! The interface between the HTTP edge and the service behind it.
//!
//! Handlers parse and answer; everything that needs data (credentials, roles, invitations) goes
//! through [`Backend`], which the server crate implements over the store. Keeping the trait here
//! lets this crate, and so the generated spec, build without a database.

use async_trait::async_trait;
use invites_digest::NonceUse;
use invites_domain::community::{CommunityTarget, InvitedUser};
use invites_domain::invitation::InvitationInput;
use invites_domain::{Error, Invitation, ObjectId, Principal};

/// What the Digest check needs about an API key.
#[derive(Clone, Debug)]
pub struct ApiKeyCredential {
    pub principal: Principal,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// Networks the key may be used from; empty means anywhere.
    pub access_list: Vec<ipnet::IpNet>,
}

/// A newly issued OAuth2 access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// The caller of an operation: who, and from where.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub remote_addr: Option<String>,
}

/// Where an Atlas-style invitation lives, as named by the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/api/atlas/v2/orgs/{orgId}/...`
    AtlasOrg(ObjectId),
    /// `/api/atlas/v2/groups/{groupId}/...`
    AtlasProject(ObjectId),
    /// `/api/public/v1.0/groups/{GROUP-ID}/...`
    OpsManagerProject(ObjectId),
}

/// Which limit a shared count belongs to (see [`crate::limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Requests of a principal on the Atlas family (`--rate-limit-per-minute`).
    Rate,
    /// Failed authentications from a client address (`--failed-auth-per-address`).
    FailedAuthAddress,
    /// Failed authentications naming an API key (`--failed-auth-per-key`).
    FailedAuthKey,
}

impl LimitKind {
    /// The name stored with the count.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Rate => "rate",
            LimitKind::FailedAuthAddress => "auth_address",
            LimitKind::FailedAuthKey => "auth_key",
        }
    }

    /// The kind stored under `name`.
    pub fn parse(name: &str) -> Option<LimitKind> {
        [
            LimitKind::Rate,
            LimitKind::FailedAuthAddress,
            LimitKind::FailedAuthKey,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// A count of one subject (a principal id, an address, a username) in one limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCount {
    pub kind: LimitKind,
    pub subject: String,
    pub count: u64,
}

/// The deployment's counts of a window changed since a replica last asked, and the mark to ask
/// from next time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitTotals {
    pub changed: Vec<LimitCount>,
    pub seen: i64,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The API key with this public key, if any.
    async fn api_key(&self, public_key: &str) -> Result<Option<ApiKeyCredential>, Error>;
    /// The principal owning this Bearer token, if it is valid and unexpired.
    async fn bearer(&self, token: &str) -> Result<Option<Principal>, Error>;
    /// Exchanges service-account client credentials for an access token (None: wrong credentials).
    async fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Option<IssuedToken>, Error>;
    /// Records a Digest nonce count that this replica accepted where every replica sees it;
    /// false if one of them already had (a replay sent to another replica).
    async fn record_nonce_count(&self, used: NonceUse) -> Result<bool, Error>;
    /// Adds `counted`, what this replica counted toward the limits in the minute window starting
    /// at `window_start_ms` since its last call, to the counts every replica shares, and answers
    /// the window's totals changed since `since` (the last answer's `seen`; 0 the first time).
    /// None when nothing is shared: one process serves the database, so its counts are the
    /// deployment's.
    async fn merge_limit_counts(
        &self,
        window_start_ms: i64,
        counted: Vec<LimitCount>,
        since: i64,
    ) -> Result<Option<LimitTotals>, Error>;
    /// Checks that the database answers (the readiness check, `/ready`).
    async fn health(&self) -> Result<(), Error>;
    /// Why this process must not serve any request, if it must not: a newer version of the
    /// program migrated the database while it ran. Read on every request (a flag, no query).
    fn not_serving(&self) -> Option<Error> {
        None
    }

    /// The version of `scope`'s invitations, once the caller is known to be allowed to list them:
    /// it moves with every change to them, in the same transaction, whoever makes it.
    async fn invitations_version(&self, caller: &Caller, scope: Scope) -> Result<i64, Error>;
    /// Pending invitations in `scope`, optionally for one username, with the version of the scope
    /// they are as of (None: not one version, a change committed while they were read).
    async fn list_invitations_versioned(
        &self,
        caller: &Caller,
        scope: Scope,
        username: Option<&str>,
    ) -> Result<(Option<i64>, Vec<Invitation>), Error>;
    /// One pending invitation in `scope`.
    async fn get_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
    ) -> Result<Invitation, Error>;
    /// Removes one pending invitation in `scope`.
    async fn delete_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
    ) -> Result<(), Error>;
    /// Invites a user to `scope`; a pending invitation of the same user there gets the new roles.
    async fn create_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        input: InvitationInput,
    ) -> Result<Invitation, Error>;
    /// Replaces the roles (and teams, project assignments) of the pending invitation of the
    /// username the input names.
    async fn update_invitation_by_username(
        &self,
        caller: &Caller,
        scope: Scope,
        input: InvitationInput,
    ) -> Result<Invitation, Error>;
    /// Replaces the roles (and teams, project assignments) of one pending invitation.
    async fn update_invitation(
        &self,
        caller: &Caller,
        scope: Scope,
        id: ObjectId,
        input: InvitationInput,
    ) -> Result<Invitation, Error>;

    /// Users with a pending invitation to a community group or course: total and one page.
    /// Managers only (and a course's creator).
    async fn list_community_invitations(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>), Error>;
    /// Invites users to a community group or course, all or none.
    async fn invite_community_users(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        users: &[i64],
    ) -> Result<(), Error>;
    /// Removes the pending invitations of users, all or none (400 naming the users without one).
    async fn remove_community_invitations(
        &self,
        caller: &Caller,
        target: CommunityTarget,
        users: &[i64],
    ) -> Result<(), Error>;
    /// The caller accepts their pending invitation.
    async fn join_community(&self, caller: &Caller, target: CommunityTarget) -> Result<(), Error>;
}
