//! The one domain error: a stable `errorCode`, the HTTP status it maps to, and safe detail text.
//!
//! The status-code policy lives here and in `docs/http-status-codes.md`: 400 for a request that is
//! malformed, 401 for missing or bad credentials, 403 for an authenticated caller without the role,
//! 404 for anything that does not exist *or that the caller may not see*, 429 when rate limited.
//! Internal failures become `UNEXPECTED_ERROR` with a generic text; their cause goes to the log.

use std::fmt;

/// Stable machine-readable error codes. The spelling is part of the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: a parameter or body field breaks a rule.
    InvalidAttribute,
    /// 400: the request as a whole is malformed (bad JSON, wrong content type...).
    ValidationError,
    /// 400: a 24-hex id is malformed.
    InvalidObjectId,
    /// 400: an org-path DELETE named a project invitation.
    CannotDeleteGroupInvitation,
    /// 400: an invitation for that user already exists.
    InvitationAlreadyExists,
    /// 400: community bulk operation named users without a pending invitation.
    InvalidUserIds,
    /// 401: no credentials, bad credentials or a stale nonce.
    NotAuthenticated,
    /// 403: authenticated, but without the role the operation needs.
    UserUnauthorized,
    /// 403: the API key may not be used from the caller's address.
    IpAddressNotOnAccessList,
    /// 404: no such route or generic resource.
    ResourceNotFound,
    /// 404: no such organization, or not visible to the caller.
    OrgNotFound,
    /// 404: no such project, or not visible to the caller.
    GroupNotFound,
    /// 404: no such pending invitation.
    InvitationNotFound,
    /// 404: no such community group or course.
    CommunityResourceNotFound,
    /// 405: known path, unsupported method.
    MethodNotAllowed,
    /// 408: the request's body did not arrive within the server's body timeout.
    RequestTimeout,
    /// 413: the request body is larger than the server accepts.
    RequestTooLarge,
    /// 414: the request target is longer than the server reads.
    UriTooLong,
    /// 431: too many header fields, or too many bytes of them.
    RequestHeadersTooLarge,
    /// 415: the request body's content type is not accepted.
    UnsupportedMediaType,
    /// 429: too many requests.
    RateLimited,
    /// 500: anything unexpected. Never carries internal text.
    UnexpectedError,
    /// 503: the database is busy or out of space; retrying later helps.
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidAttribute => "INVALID_ATTRIBUTE",
            ValidationError => "VALIDATION_ERROR",
            InvalidObjectId => "INVALID_OBJECT_ID",
            CannotDeleteGroupInvitation => "CANNOT_DELETE_GROUP_INVITATION",
            InvitationAlreadyExists => "INVITATION_ALREADY_EXISTS",
            InvalidUserIds => "INVALID_USER_IDS",
            NotAuthenticated => "NOT_AUTHENTICATED",
            UserUnauthorized => "USER_UNAUTHORIZED",
            IpAddressNotOnAccessList => "IP_ADDRESS_NOT_ON_ACCESS_LIST",
            ResourceNotFound => "RESOURCE_NOT_FOUND",
            OrgNotFound => "ORG_NOT_FOUND",
            GroupNotFound => "GROUP_NOT_FOUND",
            InvitationNotFound => "INVITATION_NOT_FOUND",
            CommunityResourceNotFound => "COMMUNITY_RESOURCE_NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            RequestTimeout => "REQUEST_TIMEOUT",
            RequestTooLarge => "REQUEST_TOO_LARGE",
            UriTooLong => "URI_TOO_LONG",
            RequestHeadersTooLarge => "REQUEST_HEADERS_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            RateLimited => "RATE_LIMITED",
            UnexpectedError => "UNEXPECTED_ERROR",
            ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status this code is always answered with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidAttribute
            | ValidationError
            | InvalidObjectId
            | CannotDeleteGroupInvitation
            | InvitationAlreadyExists
            | InvalidUserIds => 400,
            NotAuthenticated => 401,
            UserUnauthorized | IpAddressNotOnAccessList => 403,
            ResourceNotFound
            | OrgNotFound
            | GroupNotFound
            | InvitationNotFound
            | CommunityResourceNotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            RequestTooLarge => 413,
            UriTooLong => 414,
            RequestHeadersTooLarge => 431,
            UnsupportedMediaType => 415,
            RateLimited => 429,
            UnexpectedError => 500,
            ServiceUnavailable => 503,
        }
    }

    /// The HTTP reason phrase Atlas puts in `reason`.
    pub fn reason(self) -> &'static str {
        reason_phrase(self.status())
    }
}

/// The reason phrase of an error status.
pub fn reason_phrase(status: u16) -> &'static str {
    {
        match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            413 => "Payload Too Large",
            414 => "URI Too Long",
            415 => "Unsupported Media Type",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One offending request element, reported in `badRequestDetail.fields`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A failure to answer a request, safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub detail: String,
    /// Named values the error is about (`name`, `value`).
    pub parameters: Vec<(String, String)>,
    pub fields: Vec<FieldViolation>,
    /// Seconds after which retrying may succeed (429 and 503).
    pub retry_after: Option<u64>,
}

impl Error {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Error {
            code,
            detail: detail.into(),
            parameters: Vec::new(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// Adds a named value the error is about.
    pub fn with_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    pub fn with_field(mut self, field: impl Into<String>, description: impl Into<String>) -> Self {
        self.fields.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// An internal failure. The caller logs the cause; the client sees only this generic text.
    pub fn internal() -> Self {
        Error::new(
            ErrorCode::UnexpectedError,
            "Unexpected error. The incident has been logged.",
        )
    }

    pub fn not_authenticated() -> Self {
        Error::new(
            ErrorCode::NotAuthenticated,
            "You are not authorized for this resource.",
        )
    }

    pub fn forbidden() -> Self {
        Error::new(
            ErrorCode::UserUnauthorized,
            "Current user is not authorized to perform this action.",
        )
    }

    pub fn org_not_found(id: &str) -> Self {
        Error::new(
            ErrorCode::OrgNotFound,
            format!("No organization with ID {id} exists."),
        )
        .with_parameter("orgId", id)
    }

    pub fn group_not_found(id: &str) -> Self {
        Error::new(
            ErrorCode::GroupNotFound,
            format!("No group with ID {id} exists."),
        )
        .with_parameter("groupId", id)
    }

    pub fn invitation_not_found(id: &str) -> Self {
        Error::new(
            ErrorCode::InvitationNotFound,
            format!("No pending invitation with ID {id} exists."),
        )
        .with_parameter("invitationId", id)
    }

    /// An organization path naming a project invitation: it is removed through its project.
    pub fn project_invitation_via_org(id: &str) -> Self {
        Error::new(
            ErrorCode::CannotDeleteGroupInvitation,
            format!("Invitation {id} is a project invitation; remove it through its project."),
        )
        .with_parameter("invitationId", id)
    }

    /// Over the per-minute request limit.
    pub fn rate_limited(limit: i64, retry_after: u64) -> Self {
        Error::new(
            ErrorCode::RateLimited,
            format!(
                "Too many requests: the limit is {limit} per minute. Retry after {retry_after} s."
            ),
        )
        .with_retry_after(retry_after)
    }

    /// The database is busy (SQLite's lock, PostgreSQL's serialization or pool timeout).
    pub fn database_busy() -> Self {
        Error::new(
            ErrorCode::ServiceUnavailable,
            "The database is busy; retry shortly.",
        )
        .with_retry_after(1)
    }

    pub fn invalid_object_id(field: &str, value: &str) -> Self {
        Error::new(
            ErrorCode::InvalidObjectId,
            format!("An invalid ID {value} was specified for {field}."),
        )
        .with_parameter(field, value)
        .with_field(field, "must be a 24-character lowercase hexadecimal string")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status(), self.detail)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_documented_statuses() {
        assert_eq!(ErrorCode::CannotDeleteGroupInvitation.status(), 400);
        assert_eq!(ErrorCode::NotAuthenticated.status(), 401);
        assert_eq!(ErrorCode::UserUnauthorized.status(), 403);
        assert_eq!(ErrorCode::InvitationNotFound.status(), 404);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::UnexpectedError.status(), 500);
    }

    #[test]
    fn internal_errors_say_nothing_internal() {
        let e = Error::internal();
        assert_eq!(e.code.as_str(), "UNEXPECTED_ERROR");
        assert!(!e.detail.to_lowercase().contains("sql"));
    }
}
