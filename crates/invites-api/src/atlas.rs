//! Family A: the twelve Atlas Administration API v2 invitation operations under `/api/atlas/v2`.
//!
//! Paths, operationIds, parameters, schemas, media types and status sets follow the reference
//! contract (`shared/reference/atlas-v2-invitations.openapi.json`);
//! `openapi/atlas-fidelity-allowlist.txt` lists, with reasons, the few places where our document
//! differs.
//! Handlers only parse and answer: authorization and data rules live behind [`Backend`]. Every
//! error goes through the operation's error enum, which answers only the documented statuses.

use std::sync::Arc;

use invites_domain::{Error, Invitation, ObjectId};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use crate::auth::AtlasAuth;
use crate::backend::{Backend, Caller, Scope};
use crate::body::AtlasBody;
use crate::error::{ErrorsWith400, ErrorsWithout400};
use crate::list_cache::{pending_list, JsonBytes, Key, ListCache};
use crate::model::{
    GroupInvitation, GroupInvitationRequest, GroupInvitationUpdateRequest, OrganizationInvitation,
    OrganizationInvitationRequest, OrganizationInvitationUpdateRequest,
};
use crate::params::{Flag, HexId};
use crate::ratelimit::RateInfo;
use crate::request::{base_url, caller_from, flags, username_filter};

/// The versioned media type of every successful Atlas answer and request body.
pub const ATLAS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";
const PREFIX: &str = "/api/atlas/v2";

#[derive(Tags)]
pub enum AtlasTags {
    /// Returns, adds, and edits organizational units in MongoDB Cloud.
    Organizations,
    /// Returns, adds, and edits collections of clusters and users in MongoDB Cloud.
    Projects,
}

macro_rules! ok_response {
    ($(#[$meta:meta])* $name:ident, $body:ty) => {
        ok_response!($(#[$meta])* $name, $body, Json);
    };
    ($(#[$meta:meta])* $name:ident, $body:ty, $payload:ident) => {
        $(#[$meta])*
        #[derive(ApiResponse)]
        pub enum $name {
            /// OK
            #[oai(status = 200, content_type = "application/vnd.atlas.2023-01-01+json")]
            Ok(
                $payload<$body>,
                /// The maximum number of requests that a user can make within a specific time window.
                #[oai(header = "RateLimit-Limit")] i64,
                /// The number of requests remaining in the current rate limit window before the limit is reached.
                #[oai(header = "RateLimit-Remaining")] i64,
            ),
        }
    };
}

// Lists are sent from the list cache's bytes (see `list_cache`).
ok_response!(OrgInvitationList, Vec<OrganizationInvitation>, JsonBytes);
ok_response!(OrgInvitationOne, OrganizationInvitation);
ok_response!(GroupInvitationList, Vec<GroupInvitation>, JsonBytes);
ok_response!(GroupInvitationOne, GroupInvitation);

#[derive(ApiResponse)]
pub enum Removed {
    /// This endpoint does not return a response body.
    #[oai(status = 204)]
    NoContent(
        /// The maximum number of requests that a user can make within a specific time window.
        #[oai(header = "RateLimit-Limit")]
        i64,
        /// The number of requests remaining in the current rate limit window before the limit is reached.
        #[oai(header = "RateLimit-Remaining")]
        i64,
    ),
}

pub(crate) fn caller(auth: AtlasAuth, req: &Request) -> Caller {
    caller_from(auth.0, req)
}

/// The body of an Atlas list of `scope`'s pending invitations, as `render` writes them with the
/// base URL of the request's links, kept and served again by the list cache (see `list_cache`).
async fn list_body<T: poem_openapi::types::ToJSON>(
    backend: &dyn Backend,
    lists: &ListCache,
    auth: AtlasAuth,
    req: &Request,
    scope: Scope,
    username: &Query<Option<String>>,
    render: impl FnOnce(&[Invitation], &str) -> T,
) -> Result<bytes::Bytes, Error> {
    let key = Key {
        scope,
        username: username_filter(username)?.map(str::to_owned),
        base: base_url(req),
    };
    pending_list(backend, lists, &caller(auth, req), key, render).await
}

fn org_scope(id: &HexId) -> Result<Scope, Error> {
    Ok(Scope::AtlasOrg(
        id.parse_or(|raw| Error::invalid_object_id("orgId", raw))?,
    ))
}

fn group_scope(id: &HexId) -> Result<Scope, Error> {
    Ok(Scope::AtlasProject(id.parse_or(|raw| {
        Error::invalid_object_id("groupId", raw)
    })?))
}

fn invitation_id(raw: &str) -> Result<ObjectId, Error> {
    raw.parse()
        .map_err(|_| Error::invalid_object_id("invitationId", raw))
}

fn org_one(inv: &Invitation, req: &Request, rate: &RateInfo) -> OrgInvitationOne {
    OrgInvitationOne::Ok(
        Json(OrganizationInvitation::from_domain(inv, &base_url(req))),
        rate.limit,
        rate.remaining,
    )
}

fn group_one(inv: &Invitation, req: &Request, rate: &RateInfo) -> GroupInvitationOne {
    GroupInvitationOne::Ok(
        Json(GroupInvitation::from_domain(inv, &base_url(req), PREFIX)),
        rate.limit,
        rate.remaining,
    )
}

/// The Atlas operations; `lists` is the server's list cache (see `list_cache`).
pub struct AtlasApi {
    pub(crate) lists: Arc<ListCache>,
}

#[allow(clippy::too_many_arguments)]
#[OpenApi(prefix_path = "/api/atlas/v2")]
impl AtlasApi {
    /// Return All Invitations in One Organization
    ///
    /// Returns all pending invitations to the specified organization. To use this resource, the
    /// requesting Service Account or API Key must have the Organization Owner role.
    #[oai(
        path = "/orgs/:orgId/invites",
        method = "get",
        operation_id = "listOrgInvites",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn list_org_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Email address of the user account invited to this organization. If you exclude this parameter, this resource returns all pending invitations.
        username: Query<Option<String>>,
    ) -> Result<OrgInvitationList, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = org_scope(&org_id)?;
        let body = list_body(
            &***backend,
            &self.lists,
            auth,
            req,
            scope,
            &username,
            |list, base| {
                list.iter()
                    .map(|i| OrganizationInvitation::from_domain(i, base))
                    .collect::<Vec<_>>()
            },
        )
        .await?;
        Ok(OrgInvitationList::Ok(
            JsonBytes::new(body),
            rate.limit,
            rate.remaining,
        ))
    }

    /// Update One Invitation in One Organization
    ///
    /// Updates the details of one pending invitation to the specified organization. To specify
    /// which invitation, provide the username of the invited user. Roles are replaced, not merged.
    #[oai(
        path = "/orgs/:orgId/invites",
        method = "patch",
        operation_id = "updateOrgInvites",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn update_org_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Updates the details of one pending invitation to the specified organization.
        body: AtlasBody<OrganizationInvitationRequest>,
    ) -> Result<OrgInvitationOne, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = org_scope(&org_id)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation_by_username(&caller(auth, req), scope, input)
            .await?;
        Ok(org_one(&inv, req, &rate))
    }

    /// Create Invitation for One MongoDB Cloud User in One Organization
    ///
    /// Invites one MongoDB Cloud user to join the specified organization. The user must accept the
    /// invitation to access information within the specified organization. If the user already
    /// has a pending invitation to the organization, it is updated with the roles given.
    #[oai(
        path = "/orgs/:orgId/invites",
        method = "post",
        operation_id = "createOrgInvite",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn create_org_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Invites one MongoDB Cloud user to join the specified organization.
        body: AtlasBody<OrganizationInvitationRequest>,
    ) -> Result<OrgInvitationOne, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = org_scope(&org_id)?;
        let input = body.into_result()?.into();
        let inv = backend
            .create_invitation(&caller(auth, req), scope, input)
            .await?;
        Ok(org_one(&inv, req, &rate))
    }

    /// Remove One Invitation from One Organization
    ///
    /// Cancels one pending invitation sent to the specified MongoDB Cloud user to join an
    /// organization. You can't cancel an invitation that the user accepted. To use this resource,
    /// the requesting Service Account or API Key must have the Organization Owner role. A project
    /// invitation is never removed through this path (`CANNOT_DELETE_GROUP_INVITATION`).
    #[oai(
        path = "/orgs/:orgId/invites/:invitationId",
        method = "delete",
        operation_id = "deleteOrgInvite",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn delete_org_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<String>,
    ) -> Result<Removed, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = org_scope(&org_id)?;
        // The contract gives this invitationId no pattern: any string is a valid id, and one
        // that is not 24-hex names no invitation.
        let id = invitation
            .parse()
            .map_err(|_| Error::invitation_not_found(&invitation))?;
        backend
            .delete_invitation(&caller(auth, req), scope, id)
            .await?;
        Ok(Removed::NoContent(rate.limit, rate.remaining))
    }

    /// Return One Invitation in One Organization by Invitation ID
    ///
    /// Returns the details of one pending invitation to the specified organization. To use this
    /// resource, the requesting Service Account or API Key must have the Organization Owner role.
    #[oai(
        path = "/orgs/:orgId/invites/:invitationId",
        method = "get",
        operation_id = "getOrgInvite",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn get_org_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<HexId>,
    ) -> Result<OrgInvitationOne, ErrorsWith400> {
        flags(&envelope, &None)?;
        let scope = org_scope(&org_id)?;
        let inv = backend
            .get_invitation(&caller(auth, req), scope, invitation_id(&invitation.0 .0)?)
            .await?;
        Ok(org_one(&inv, req, &rate))
    }

    /// Update One Invitation in One Organization by Invitation ID
    ///
    /// Updates the details of one pending invitation to the specified organization. To specify
    /// which invitation, provide the unique identification string for that invitation. Roles are
    /// replaced, not merged.
    #[oai(
        path = "/orgs/:orgId/invites/:invitationId",
        method = "patch",
        operation_id = "updateOrgInviteById",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    async fn update_org_invite_by_id(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<HexId>,
        /// Updates the details of one pending invitation to the specified organization.
        body: AtlasBody<OrganizationInvitationUpdateRequest>,
    ) -> Result<OrgInvitationOne, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = org_scope(&org_id)?;
        let id = invitation_id(&invitation.0 .0)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation(&caller(auth, req), scope, id, input)
            .await?;
        Ok(org_one(&inv, req, &rate))
    }

    /// Return All Invitations in One Project
    ///
    /// Returns all pending invitations to the specified project. To use this resource, the
    /// requesting Service Account or API Key must have the Project Owner role.
    #[oai(
        path = "/groups/:groupId/invites",
        method = "get",
        operation_id = "listGroupInvites",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn list_group_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Email address of the user account invited to this project.
        username: Query<Option<String>>,
    ) -> Result<GroupInvitationList, ErrorsWithout400> {
        flags(&envelope, &pretty)?;
        let scope = group_scope(&group_id)?;
        let body = list_body(
            &***backend,
            &self.lists,
            auth,
            req,
            scope,
            &username,
            |list, base| {
                list.iter()
                    .map(|i| GroupInvitation::from_domain(i, base, PREFIX))
                    .collect::<Vec<_>>()
            },
        )
        .await?;
        Ok(GroupInvitationList::Ok(
            JsonBytes::new(body),
            rate.limit,
            rate.remaining,
        ))
    }

    /// Update One Invitation in One Project
    ///
    /// Updates the details of one pending invitation to the specified project. To specify which
    /// invitation to update, provide the username of the invited user. Roles are replaced.
    #[oai(
        path = "/groups/:groupId/invites",
        method = "patch",
        operation_id = "updateGroupInvites",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn update_group_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Updates the details of one pending invitation to the specified project.
        body: AtlasBody<GroupInvitationRequest>,
    ) -> Result<GroupInvitationOne, ErrorsWith400> {
        flags(&envelope, &pretty)?;
        let scope = group_scope(&group_id)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation_by_username(&caller(auth, req), scope, input)
            .await?;
        Ok(group_one(&inv, req, &rate))
    }

    /// Create Invitation for One MongoDB Cloud User in One Project
    ///
    /// Invites one MongoDB Cloud user to join the specified project. The MongoDB Cloud user must
    /// accept the invitation to access information within the specified project. This operation
    /// documents no 400: a body it cannot act on is answered 404 with the errorCode that says why.
    #[oai(
        path = "/groups/:groupId/invites",
        method = "post",
        operation_id = "createGroupInvite",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn create_group_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Invites one MongoDB Cloud user to join the specified project.
        body: AtlasBody<GroupInvitationRequest>,
    ) -> Result<GroupInvitationOne, ErrorsWithout400> {
        flags(&envelope, &pretty)?;
        let scope = group_scope(&group_id)?;
        let input = body.into_result()?.into();
        let inv = backend
            .create_invitation(&caller(auth, req), scope, input)
            .await?;
        Ok(group_one(&inv, req, &rate))
    }

    /// Remove One Invitation from One Project
    ///
    /// Cancels one pending invitation sent to the specified MongoDB Cloud user to join a project.
    /// You can't cancel an invitation that the user accepted. To use this resource, the requesting
    /// Service Account or API Key must have the Project Owner role. Deleting a project invitation
    /// does not delete an organization invitation even if they were created together.
    #[oai(
        path = "/groups/:groupId/invites/:invitationId",
        method = "delete",
        operation_id = "deleteGroupInvite",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn delete_group_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<HexId>,
    ) -> Result<Removed, ErrorsWithout400> {
        flags(&envelope, &None)?;
        let scope = group_scope(&group_id)?;
        backend
            .delete_invitation(&caller(auth, req), scope, invitation_id(&invitation.0 .0)?)
            .await?;
        Ok(Removed::NoContent(rate.limit, rate.remaining))
    }

    /// Return One Invitation in One Project by Invitation ID
    ///
    /// Returns the details of one pending invitation to the specified project. To use this
    /// resource, the requesting Service Account or API Key must have the Project Owner role.
    #[oai(
        path = "/groups/:groupId/invites/:invitationId",
        method = "get",
        operation_id = "getGroupInvite",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn get_group_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        pretty: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<HexId>,
    ) -> Result<GroupInvitationOne, ErrorsWithout400> {
        flags(&envelope, &pretty)?;
        let scope = group_scope(&group_id)?;
        let inv = backend
            .get_invitation(&caller(auth, req), scope, invitation_id(&invitation.0 .0)?)
            .await?;
        Ok(group_one(&inv, req, &rate))
    }

    /// Update One Invitation in One Project by Invitation ID
    ///
    /// Updates the details of one pending invitation to the specified project. To specify which
    /// invitation to update, provide the unique identification string for that invitation. Roles
    /// are replaced, not merged.
    #[oai(
        path = "/groups/:groupId/invites/:invitationId",
        method = "patch",
        operation_id = "updateGroupInviteById",
        tag = "AtlasTags::Projects",
        deprecated
    )]
    async fn update_group_invite_by_id(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        rate: Data<&RateInfo>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        envelope: Query<Option<Flag>>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation: Path<HexId>,
        /// Updates the details of one pending invitation to the specified project.
        body: AtlasBody<GroupInvitationUpdateRequest>,
    ) -> Result<GroupInvitationOne, ErrorsWith400> {
        flags(&envelope, &None)?;
        let scope = group_scope(&group_id)?;
        let id = invitation_id(&invitation.0 .0)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation(&caller(auth, req), scope, id, input)
            .await?;
        Ok(group_one(&inv, req, &rate))
    }
}
