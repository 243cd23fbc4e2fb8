//! Family C: the community platform's invitation endpoints under `/api/v2` (seeds 000 and 001).
//!
//! `group/{id}/invite/` and `course/{id}/invite/` list (GET), invite (POST) and remove (DELETE)
//! invitations for a list of users; `group/{id}/subscribe/` (SelfCommunity's own client's
//! spelling), `group/{id}/join/` and `course/{id}/join/` let an invited user accept. The `users` list arrives as JSON, as a form, or as JSON text under a form content type
//! (the documented example does that); removal is all or nothing.

use std::sync::Arc;

use invites_domain::community::{parse_users, CommunityTarget, InvitedUser};
use invites_domain::{Error, ErrorCode};
use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi, Tags,
};

use crate::auth::CommunityAuth;
use crate::backend::Backend;
use crate::error::CommunityErrors;
use crate::params::IntParam;
use crate::request::{base_url, caller_from};

#[derive(Tags)]
pub enum CommunityTags {
    /// Community platform API v2: invitations to groups and courses.
    Community,
}

/// The users a request is about.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "CommunityUsersRequest")]
pub struct UsersRequest {
    /// Ids of users (positive integers).
    pub users: Vec<i64>,
}

/// A user with a pending invitation.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "CommunityInvitedUser")]
pub struct InvitedUserObject {
    /// The user's id.
    pub id: i64,
    /// The user's username.
    pub username: String,
    /// The user's full name.
    pub real_name: String,
    /// URL of the user's avatar, if any.
    pub avatar: Option<String>,
    /// The user's id in an external system, if any.
    pub ext_id: Option<String>,
}

/// One page of invited users.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "CommunityInvitedUserPage")]
pub struct InvitedUserPage {
    /// How many users have a pending invitation.
    pub count: i64,
    /// URL of the next page, if any.
    pub next: Option<String>,
    /// URL of the previous page, if any.
    pub previous: Option<String>,
    /// The users of this page.
    pub results: Vec<InvitedUserObject>,
}

#[derive(ApiResponse)]
pub enum Listed {
    /// The invited users.
    #[oai(status = 200, content_type = "application/json")]
    Ok(Json<InvitedUserPage>),
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done; no body.
    #[oai(status = 204)]
    NoContent,
}

/// The `users` request body, read by [`parse_users`]: never fails the request itself.
pub struct UsersBody(pub Result<Vec<i64>, Error>);

/// Most bytes a `users` body may have (1000 ids fit easily).
const MAX_USERS_BODY: usize = 32 * 1024;

impl<'a> ApiExtractor<'a> for UsersBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        UsersRequest::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some("The users, as JSON (`{\"users\": [1, 2]}`), as a form (`users=1&users=2`), or as JSON text sent with the form content type."),
            content: vec![
                MetaMediaType { content_type: "application/json", schema: UsersRequest::schema_ref() },
                MetaMediaType { content_type: "application/x-www-form-urlencoded", schema: UsersRequest::schema_ref() },
            ],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let content_type = request.content_type().unwrap_or("").to_owned();
        // Over the limit is a 400 here: the community contract documents no 413.
        let parsed = crate::body::read_body(body, MAX_USERS_BODY, ErrorCode::ValidationError)
            .await
            .and_then(|bytes| parse_users(&content_type, &bytes));
        Ok(UsersBody(parsed))
    }
}

/// A non-integer id names no group or course.
fn target(
    kind: fn(i64) -> CommunityTarget,
    id: &IntParam,
    what: &str,
) -> Result<CommunityTarget, Error> {
    id.or(|raw| {
        Error::new(
            ErrorCode::CommunityResourceNotFound,
            format!("No {what} with id {raw:?} exists."),
        )
        .with_parameter("id", raw)
    })
    .map(kind)
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// `limit`: 1 to [`MAX_LIMIT`], documented so.
type Limit = IntParam<1, MAX_LIMIT>;
/// `offset`: not negative, documented so.
type Offset = IntParam<0>;

/// A `limit` or `offset` outside its documented range.
pub(crate) fn bad_page_param(name: &str, raw: String, rule: &str) -> Error {
    Error::new(
        ErrorCode::InvalidAttribute,
        format!("Query parameter {name} {rule}; got {raw:?}."),
    )
    .with_parameter(name, raw)
    .with_field(name, rule)
}

fn page_params(limit: &Option<Limit>, offset: &Option<Offset>) -> Result<(i64, i64), Error> {
    let bad = bad_page_param;
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(p) => match &p.0 {
            Ok(v) if (1..=MAX_LIMIT).contains(v) => *v,
            Ok(v) => return Err(bad("limit", v.to_string(), "must be between 1 and 1000")),
            Err(raw) => return Err(bad("limit", raw.clone(), "must be an integer")),
        },
    };
    let offset = match offset {
        None => 0,
        Some(p) => match &p.0 {
            Ok(v) if *v >= 0 => *v,
            Ok(v) => return Err(bad("offset", v.to_string(), "must not be negative")),
            Err(raw) => return Err(bad("offset", raw.clone(), "must be an integer")),
        },
    };
    Ok((limit, offset))
}

fn page(
    req: &Request,
    target: CommunityTarget,
    limit: i64,
    offset: i64,
    count: i64,
    users: Vec<InvitedUser>,
) -> InvitedUserPage {
    let url = |o: i64| {
        format!(
            "{}/api/v2/{}/{}/invite/?limit={limit}&offset={o}",
            base_url(req),
            target.kind(),
            target.id()
        )
    };
    InvitedUserPage {
        count,
        next: (offset.saturating_add(limit) < count).then(|| url(offset + limit)),
        previous: (offset > 0).then(|| url((offset - limit).max(0))),
        results: users
            .into_iter()
            .map(|u| InvitedUserObject {
                id: u.id,
                username: u.username,
                real_name: u.real_name,
                avatar: u.avatar,
                ext_id: u.ext_id,
            })
            .collect(),
    }
}

async fn list(
    backend: &Arc<dyn Backend>,
    auth: CommunityAuth,
    req: &Request,
    target: CommunityTarget,
    limit: &Option<Limit>,
    offset: &Option<Offset>,
) -> Result<Listed, CommunityErrors> {
    let (limit, offset) = page_params(limit, offset)?;
    let (count, users) = backend
        .list_community_invitations(&caller_from(auth.0, req), target, limit, offset)
        .await?;
    Ok(Listed::Ok(Json(page(
        req, target, limit, offset, count, users,
    ))))
}

pub struct CommunityApi;

#[allow(clippy::too_many_arguments)]
#[OpenApi(prefix_path = "/api/v2", tag = "CommunityTags::Community")]
impl CommunityApi {
    /// List Invitations To Group
    ///
    /// Lists the users with a pending invitation to the group. Requires being a manager of the group.
    #[oai(
        path = "/group/:id/invite",
        method = "get",
        operation_id = "listGroupInvitations"
    )]
    async fn list_group(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this group.
        id: Path<IntParam>,
        /// Number of results to return per page (1 to 1000, default 100).
        limit: Query<Option<Limit>>,
        /// The initial index from which to return the results (default 0).
        offset: Query<Option<Offset>>,
    ) -> Result<Listed, CommunityErrors> {
        let t = target(CommunityTarget::Group, &id, "group")?;
        list(&backend, auth, req, t, &limit, &offset).await
    }

    /// Invite Users To Group
    ///
    /// Invites the listed users to the group, all or none (unknown users: 400, nothing written).
    /// Users already invited stay invited. Requires being a manager of the group.
    #[oai(
        path = "/group/:id/invite",
        method = "post",
        operation_id = "inviteToGroup"
    )]
    async fn invite_group(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this group.
        id: Path<IntParam>,
        /// The users to invite.
        body: UsersBody,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Group, &id, "group")?;
        let users = body.0?;
        backend
            .invite_community_users(&caller_from(auth.0, req), t, &users)
            .await?;
        Ok(Done::NoContent)
    }

    /// Remove Invitation To Group
    ///
    /// Removes the pending invitations of the listed users to the group, all or none: if any
    /// listed user has no pending invitation, the answer is 400 naming them and nothing is
    /// removed. Requires being a manager of the group.
    #[oai(
        path = "/group/:id/invite",
        method = "delete",
        operation_id = "removeGroupInvitations"
    )]
    async fn remove_group(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this group.
        id: Path<IntParam>,
        /// The users whose invitations to remove.
        body: UsersBody,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Group, &id, "group")?;
        let users = body.0?;
        backend
            .remove_community_invitations(&caller_from(auth.0, req), t, &users)
            .await?;
        Ok(Done::NoContent)
    }

    /// Join Group
    ///
    /// The caller accepts their pending invitation to the group and becomes a member.
    #[oai(path = "/group/:id/join", method = "post", operation_id = "joinGroup")]
    async fn join_group(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this group.
        id: Path<IntParam>,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Group, &id, "group")?;
        backend.join_community(&caller_from(auth.0, req), t).await?;
        Ok(Done::NoContent)
    }

    /// Subscribe To Group
    ///
    /// The caller accepts their pending invitation to the group and becomes a member: what
    /// SelfCommunity's own JavaScript client sends (`GroupService.subscribeToGroup`); `join/` does
    /// the same.
    #[oai(
        path = "/group/:id/subscribe",
        method = "post",
        operation_id = "subscribeToGroup"
    )]
    async fn subscribe_group(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this group.
        id: Path<IntParam>,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Group, &id, "group")?;
        backend.join_community(&caller_from(auth.0, req), t).await?;
        Ok(Done::NoContent)
    }

    /// List Invitations To Course
    ///
    /// Lists the users with a pending invitation to the course. Requires being the creator or a
    /// manager of the course.
    #[oai(
        path = "/course/:id/invite",
        method = "get",
        operation_id = "listCourseInvitations"
    )]
    async fn list_course(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this course.
        id: Path<IntParam>,
        /// Number of results to return per page (1 to 1000, default 100).
        limit: Query<Option<Limit>>,
        /// The initial index from which to return the results (default 0).
        offset: Query<Option<Offset>>,
    ) -> Result<Listed, CommunityErrors> {
        let t = target(CommunityTarget::Course, &id, "course")?;
        list(&backend, auth, req, t, &limit, &offset).await
    }

    /// Invite Users To Course
    ///
    /// Invites the listed users to the course, all or none. Requires being the creator or a
    /// manager of the course.
    #[oai(
        path = "/course/:id/invite",
        method = "post",
        operation_id = "inviteToCourse"
    )]
    async fn invite_course(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this course.
        id: Path<IntParam>,
        /// The users to invite.
        body: UsersBody,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Course, &id, "course")?;
        let users = body.0?;
        backend
            .invite_community_users(&caller_from(auth.0, req), t, &users)
            .await?;
        Ok(Done::NoContent)
    }

    /// Remove Invitation To Course
    ///
    /// Removes the pending invitations of the listed users to the course, all or none. Requires
    /// being the creator or a manager of the course.
    #[oai(
        path = "/course/:id/invite",
        method = "delete",
        operation_id = "removeCourseInvitations"
    )]
    async fn remove_course(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this course.
        id: Path<IntParam>,
        /// The users whose invitations to remove.
        body: UsersBody,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Course, &id, "course")?;
        let users = body.0?;
        backend
            .remove_community_invitations(&caller_from(auth.0, req), t, &users)
            .await?;
        Ok(Done::NoContent)
    }

    /// Join Course
    ///
    /// The caller accepts their pending invitation to the course and becomes a member.
    #[oai(
        path = "/course/:id/join",
        method = "post",
        operation_id = "joinCourse"
    )]
    async fn join_course(
        &self,
        auth: CommunityAuth,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        /// A unique integer value identifying this course.
        id: Path<IntParam>,
    ) -> Result<Done, CommunityErrors> {
        let t = target(CommunityTarget::Course, &id, "course")?;
        backend.join_community(&caller_from(auth.0, req), t).await?;
        Ok(Done::NoContent)
    }
}
