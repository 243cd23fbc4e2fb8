//! Family A: the Atlas Administration API v2 invitation operations under `/api/atlas/v2`.
//!
//! Paths, operationIds, parameters, schemas and media types follow the reference contract
//! (`shared/reference/atlas-v2-invitations.openapi.json`). Handlers only parse and answer;
//! authorization and data rules live behind [`Backend`].

use std::sync::Arc;

use invites_domain::{Error, ObjectId};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use crate::auth::AtlasAuth;
use crate::backend::{Backend, Caller, Scope};
use crate::error::{ErrorsWith400, ErrorsWithout400};
use crate::model::{GroupInvitation, OrganizationInvitation};
use crate::params::HexId;

/// The versioned media type of every successful Atlas answer.
pub const ATLAS_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";
const PREFIX: &str = "/api/atlas/v2";

#[derive(Tags)]
pub enum AtlasTags {
    /// Returns, adds, and edits organizational units in MongoDB Cloud.
    Organizations,
    /// Returns, adds, and edits collections of clusters and users in MongoDB Cloud.
    Projects,
}

#[derive(ApiResponse)]
pub enum OrgInvitationList {
    /// OK
    #[oai(status = 200, content_type = "application/vnd.atlas.2023-01-01+json")]
    Ok(Json<Vec<OrganizationInvitation>>),
}

#[derive(ApiResponse)]
pub enum OrgInvitationOne {
    /// OK
    #[oai(status = 200, content_type = "application/vnd.atlas.2023-01-01+json")]
    Ok(Json<OrganizationInvitation>),
}

#[derive(ApiResponse)]
pub enum GroupInvitationList {
    /// OK
    #[oai(status = 200, content_type = "application/vnd.atlas.2023-01-01+json")]
    Ok(Json<Vec<GroupInvitation>>),
}

#[derive(ApiResponse)]
pub enum GroupInvitationOne {
    /// OK
    #[oai(status = 200, content_type = "application/vnd.atlas.2023-01-01+json")]
    Ok(Json<GroupInvitation>),
}

#[derive(ApiResponse)]
pub enum Removed {
    /// This endpoint does not return a response body.
    #[oai(status = 204)]
    NoContent,
}

/// `http://host` as the client addressed us, for `links`.
pub(crate) fn base_url(req: &Request) -> String {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() < 256 && !h.contains(['/', ' ', '"']))
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub(crate) fn caller(auth: AtlasAuth, req: &Request) -> Caller {
    Caller {
        principal: auth.0,
        remote_addr: req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string()),
    }
}

fn malformed_org(raw: &str) -> Error {
    Error::invalid_object_id("orgId", raw)
}

fn malformed_invitation_400(raw: &str) -> Error {
    Error::invalid_object_id("invitationId", raw)
}

/// Where 400 is not documented, a malformed id names nothing that exists: 404.
fn group_not_found(raw: &str) -> Error {
    Error::group_not_found(raw)
}

fn invitation_not_found(raw: &str) -> Error {
    Error::invitation_not_found(raw)
}

fn org_of(id: &HexId) -> Result<ObjectId, Error> {
    id.parse_or(malformed_org)
}

pub struct AtlasApi;

#[OpenApi(prefix_path = "/api/atlas/v2")]
impl AtlasApi {
    /// Return All Organization Invitations
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
    #[allow(clippy::too_many_arguments)]
    async fn list_org_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        #[oai(default)]
        pretty: Query<bool>,
        /// Email address of the user account invited to this organization. If you exclude this parameter, this resource returns all pending invitations.
        username: Query<Option<String>>,
    ) -> Result<OrgInvitationList, ErrorsWith400> {
        let _ = (envelope, pretty);
        let org = org_of(&org_id.0)?;
        let list = backend
            .list_invitations(
                &caller(auth, req),
                Scope::AtlasOrg(org),
                username.0.as_deref(),
            )
            .await?;
        let base = base_url(req);
        Ok(OrgInvitationList::Ok(Json(
            list.iter()
                .map(|i| OrganizationInvitation::from_domain(i, &base))
                .collect(),
        )))
    }

    /// Return One Organization Invitation
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
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation_id: Path<String>,
    ) -> Result<OrgInvitationOne, ErrorsWith400> {
        let _ = envelope;
        let org = org_of(&org_id.0)?;
        let id = HexId(invitation_id.0).parse_or(malformed_invitation_400)?;
        let inv = backend
            .get_invitation(&caller(auth, req), Scope::AtlasOrg(org), id)
            .await?;
        Ok(OrgInvitationOne::Ok(Json(
            OrganizationInvitation::from_domain(&inv, &base_url(req)),
        )))
    }

    /// Remove One Invitation from One Organization
    ///
    /// Cancels one pending invitation sent to the specified MongoDB Cloud user to join an
    /// organization. You can't cancel an invitation that the user accepted. To use this resource,
    /// the requesting Service Account or API Key must have the Organization Owner role.
    #[oai(
        path = "/orgs/:orgId/invites/:invitationId",
        method = "delete",
        operation_id = "deleteOrgInvite",
        tag = "AtlasTags::Organizations",
        deprecated
    )]
    #[allow(clippy::too_many_arguments)]
    async fn delete_org_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Unique 24-hexadecimal digit string that identifies the organization that contains your projects.
        #[oai(name = "orgId")]
        org_id: Path<HexId>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        #[oai(default)]
        pretty: Query<bool>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation_id: Path<String>,
    ) -> Result<Removed, ErrorsWith400> {
        let _ = (envelope, pretty);
        let org = org_of(&org_id.0)?;
        let id = HexId(invitation_id.0).parse_or(malformed_invitation_400)?;
        backend
            .delete_invitation(&caller(auth, req), Scope::AtlasOrg(org), id)
            .await?;
        Ok(Removed::NoContent)
    }

    /// Return All Project Invitations
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
    #[allow(clippy::too_many_arguments)]
    async fn list_group_invites(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        #[oai(default)]
        pretty: Query<bool>,
        /// Email address of the user account invited to this project.
        username: Query<Option<String>>,
    ) -> Result<GroupInvitationList, ErrorsWithout400> {
        let _ = (envelope, pretty);
        let group = group_id.0.parse_or(group_not_found)?;
        let list = backend
            .list_invitations(
                &caller(auth, req),
                Scope::AtlasProject(group),
                username.0.as_deref(),
            )
            .await?;
        let base = base_url(req);
        Ok(GroupInvitationList::Ok(Json(
            list.iter()
                .map(|i| GroupInvitation::from_domain(i, &base, PREFIX))
                .collect(),
        )))
    }

    /// Return One Project Invitation
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
    #[allow(clippy::too_many_arguments)]
    async fn get_group_invite(
        &self,
        auth: AtlasAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Flag that indicates whether the response body should be in the prettyprint format.
        #[oai(default)]
        pretty: Query<bool>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation_id: Path<String>,
    ) -> Result<GroupInvitationOne, ErrorsWithout400> {
        let _ = (envelope, pretty);
        let group = group_id.0.parse_or(group_not_found)?;
        let id = HexId(invitation_id.0).parse_or(invitation_not_found)?;
        let inv = backend
            .get_invitation(&caller(auth, req), Scope::AtlasProject(group), id)
            .await?;
        Ok(GroupInvitationOne::Ok(Json(GroupInvitation::from_domain(
            &inv,
            &base_url(req),
            PREFIX,
        ))))
    }

    /// Remove One Project Invitation
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
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies your project.
        #[oai(name = "groupId")]
        group_id: Path<HexId>,
        /// Flag that indicates whether Application wraps the response in an `envelope` JSON object.
        #[oai(default)]
        envelope: Query<bool>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "invitationId")]
        invitation_id: Path<String>,
    ) -> Result<Removed, ErrorsWithout400> {
        let _ = envelope;
        let group = group_id.0.parse_or(group_not_found)?;
        let id = HexId(invitation_id.0).parse_or(invitation_not_found)?;
        backend
            .delete_invitation(&caller(auth, req), Scope::AtlasProject(group), id)
            .await?;
        Ok(Removed::NoContent)
    }
}
