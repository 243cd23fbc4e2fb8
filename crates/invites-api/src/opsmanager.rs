//! Family B: Ops Manager Public API v1.0 project invitations under `/api/public/v1.0`.
//!
//! The same invitation domain as the Atlas family (one backend, [`Scope::OpsManagerProject`]); what
//! differs is the contract: `application/json`, Digest API keys only, Project User Admin or Project
//! Owner may act, and the response fields Ops Manager documents. The seed's example spells the
//! collection `/invitations/`; the edge routes that spelling here as an alias of `/invites/`.

use std::sync::Arc;

use invites_domain::invitation::InvitationInput;
use invites_domain::{Error, Invitation, ObjectId};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::auth::OpsManagerAuth;
use crate::backend::{Backend, Scope};
use crate::body::OpsManagerBody;
use crate::error::OpsManagerErrors;
use crate::list_cache::{pending_list, JsonBytes, Key, ListCache};
use crate::model::Timestamp;
use crate::params::{Flag, HexId};
use crate::request::{caller_from, flags, username_filter};

#[derive(Tags)]
pub enum OpsManagerTags {
    /// Ops Manager Public API v1.0: invitations to projects.
    #[oai(rename = "Ops Manager Project Invitations")]
    OpsManagerProjectInvitations,
}

/// An invitation to an Ops Manager project.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "OpsManagerProjectInvitation", rename_all = "camelCase")]
pub struct OpsManagerInvitation {
    /// When the invitation was sent (ISO 8601, UTC).
    pub created_at: Timestamp,
    /// When the invitation expires (ISO 8601, UTC): 30 days after it was sent.
    pub expires_at: Timestamp,
    /// Unique 24-hexadecimal digit string that identifies the project.
    pub group_id: String,
    /// Name of the project.
    pub group_name: String,
    /// Unique 24-hexadecimal digit string that identifies the invitation.
    pub id: String,
    /// Username of the user who sent the invitation.
    pub inviter_username: String,
    /// Project roles the invited user gets on accepting.
    pub roles: Vec<String>,
    /// Username (email address) of the invited user.
    pub username: String,
}

impl OpsManagerInvitation {
    pub(crate) fn from_domain(inv: &Invitation) -> Self {
        OpsManagerInvitation {
            created_at: Timestamp(inv.created_at),
            expires_at: Timestamp(inv.expires_at),
            group_id: inv.project_id.map(|p| p.to_string()).unwrap_or_default(),
            group_name: inv.project_name.clone().unwrap_or_default(),
            id: inv.id.to_string(),
            inviter_username: inv.inviter_username.clone(),
            roles: inv.roles.clone(),
            username: inv.username.clone(),
        }
    }
}

/// Invites a user to a project, or names the user whose pending invitation to update.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "OpsManagerProjectInvitationRequest")]
pub struct OpsManagerInvitationRequest {
    /// Project roles to grant; they replace any roles the invitation had.
    pub roles: Option<Vec<String>>,
    /// Username (email address) of the invited user.
    pub username: Option<String>,
}

/// New roles for one pending invitation.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "OpsManagerProjectInvitationUpdate")]
pub struct OpsManagerInvitationUpdate {
    /// Project roles to grant; they replace the roles the invitation had.
    pub roles: Option<Vec<String>>,
}

impl From<OpsManagerInvitationRequest> for InvitationInput {
    fn from(r: OpsManagerInvitationRequest) -> Self {
        InvitationInput {
            username: r.username,
            roles: r.roles,
            ..Default::default()
        }
    }
}

impl From<OpsManagerInvitationUpdate> for InvitationInput {
    fn from(r: OpsManagerInvitationUpdate) -> Self {
        InvitationInput {
            roles: r.roles,
            ..Default::default()
        }
    }
}

#[derive(ApiResponse)]
pub enum OmList {
    /// The pending invitations.
    #[oai(status = 200, content_type = "application/json")]
    Ok(JsonBytes<Vec<OpsManagerInvitation>>),
}

#[derive(ApiResponse)]
pub enum OmOne {
    /// The invitation.
    #[oai(status = 200, content_type = "application/json")]
    Ok(Json<OpsManagerInvitation>),
}

#[derive(ApiResponse)]
pub enum OmRemoved {
    /// The invitation was deleted; no body.
    #[oai(status = 204)]
    NoContent,
}

fn project(id: &HexId) -> Result<Scope, Error> {
    Ok(Scope::OpsManagerProject(id.parse_or(|raw| {
        Error::invalid_object_id("GROUP-ID", raw)
    })?))
}

fn invitation(id: &HexId) -> Result<ObjectId, Error> {
    id.parse_or(|raw| Error::invalid_object_id("INVITATION-ID", raw))
}

/// The Ops Manager operations; `lists` is the server's list cache (see `list_cache`).
pub struct OpsManagerApi {
    pub(crate) lists: Arc<ListCache>,
}

#[allow(clippy::too_many_arguments)]
#[OpenApi(
    prefix_path = "/api/public/v1.0",
    tag = "OpsManagerTags::OpsManagerProjectInvitations"
)]
impl OpsManagerApi {
    /// Get All Project Invitations
    ///
    /// Returns the pending invitations to the project, optionally only the one for `username`.
    /// Requires the Project User Admin or Project Owner role.
    #[oai(
        path = "/groups/:GROUP-ID/invites",
        method = "get",
        operation_id = "opsManagerListProjectInvitations"
    )]
    async fn list(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Username (email address) of the invited user; without it, all pending invitations.
        username: Query<Option<String>>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
    ) -> Result<OmList, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        let username = username_filter(&username)?;
        // The bodies have no links: the same bytes whatever the host.
        let key = Key {
            scope,
            username: username.map(str::to_owned),
            base: String::new(),
        };
        let body = pending_list(
            &***backend,
            &self.lists,
            &caller_from(auth.0, req),
            key,
            |list, _| {
                list.iter()
                    .map(OpsManagerInvitation::from_domain)
                    .collect::<Vec<_>>()
            },
        )
        .await?;
        Ok(OmList::Ok(JsonBytes::new(body)))
    }

    /// Create One Project Invitation
    ///
    /// Invites one user to the project with the given roles. A pending invitation of the same
    /// user gets the new roles instead. Requires the Project User Admin or Project Owner role.
    #[oai(
        path = "/groups/:GROUP-ID/invites",
        method = "post",
        operation_id = "opsManagerCreateProjectInvitation"
    )]
    async fn create(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
        /// The user to invite and the roles to grant.
        body: OpsManagerBody<OpsManagerInvitationRequest>,
    ) -> Result<OmOne, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        let input = body.into_result()?.into();
        let inv = backend
            .create_invitation(&caller_from(auth.0, req), scope, input)
            .await?;
        Ok(OmOne::Ok(Json(OpsManagerInvitation::from_domain(&inv))))
    }

    /// Update One Project Invitation by Username
    ///
    /// Replaces the roles of the pending invitation of the user named in the body (roles are
    /// replaced, not merged). Requires the Project User Admin or Project Owner role.
    #[oai(
        path = "/groups/:GROUP-ID/invites",
        method = "patch",
        operation_id = "opsManagerUpdateProjectInvitationByUsername"
    )]
    async fn update_by_username(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
        /// The invited user and the new roles.
        body: OpsManagerBody<OpsManagerInvitationRequest>,
    ) -> Result<OmOne, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation_by_username(&caller_from(auth.0, req), scope, input)
            .await?;
        Ok(OmOne::Ok(Json(OpsManagerInvitation::from_domain(&inv))))
    }

    /// Get One Project Invitation
    ///
    /// Returns one pending invitation to the project. Requires the Project User Admin or Project
    /// Owner role.
    #[oai(
        path = "/groups/:GROUP-ID/invites/:INVITATION-ID",
        method = "get",
        operation_id = "opsManagerGetProjectInvitation"
    )]
    async fn get(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "INVITATION-ID")]
        id: Path<HexId>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
    ) -> Result<OmOne, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        let inv = backend
            .get_invitation(&caller_from(auth.0, req), scope, invitation(&id)?)
            .await?;
        Ok(OmOne::Ok(Json(OpsManagerInvitation::from_domain(&inv))))
    }

    /// Update One Project Invitation
    ///
    /// Replaces the roles of one pending invitation (roles are replaced, not merged). Requires the
    /// Project User Admin or Project Owner role.
    #[oai(
        path = "/groups/:GROUP-ID/invites/:INVITATION-ID",
        method = "patch",
        operation_id = "opsManagerUpdateProjectInvitation"
    )]
    async fn update(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "INVITATION-ID")]
        id: Path<HexId>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
        /// The new roles.
        body: OpsManagerBody<OpsManagerInvitationUpdate>,
    ) -> Result<OmOne, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        let id = invitation(&id)?;
        let input = body.into_result()?.into();
        let inv = backend
            .update_invitation(&caller_from(auth.0, req), scope, id, input)
            .await?;
        Ok(OmOne::Ok(Json(OpsManagerInvitation::from_domain(&inv))))
    }

    /// Delete One Project Invitation
    ///
    /// Deletes one pending invitation to the project. You can't delete an invitation that a user
    /// has accepted. Requires the Project User Admin role (or Project Owner). The seed's example
    /// URL spelling `.../groups/{GROUP-ID}/invitations/{INVITATION-ID}` is accepted as an alias.
    #[oai(
        path = "/groups/:GROUP-ID/invites/:INVITATION-ID",
        method = "delete",
        operation_id = "opsManagerDeleteProjectInvitation"
    )]
    async fn delete(
        &self,
        auth: OpsManagerAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// Unique 24-hexadecimal digit string that identifies the project.
        #[oai(name = "GROUP-ID")]
        group: Path<HexId>,
        /// Unique 24-hexadecimal digit string that identifies the invitation.
        #[oai(name = "INVITATION-ID")]
        id: Path<HexId>,
        /// Indent the JSON answer.
        pretty: Query<Option<Flag>>,
        /// Wrap the answer as `{"status", "content"}` with HTTP 200.
        envelope: Query<Option<Flag>>,
    ) -> Result<OmRemoved, OpsManagerErrors> {
        flags(&envelope, &pretty)?;
        let scope = project(&group)?;
        backend
            .delete_invitation(&caller_from(auth.0, req), scope, invitation(&id)?)
            .await?;
        Ok(OmRemoved::NoContent)
    }
}
