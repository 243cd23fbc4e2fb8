//! The Atlas `ApiError` body, the one error shape of every family, and its HTTP responses.

use invites_domain::{Error, ErrorCode};
use poem::http::{header, HeaderValue, StatusCode};
use poem_openapi::{payload::Json, ApiResponse, Object};
use serde::Serialize;

/// One offending request element.
#[derive(Object, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// A description of why the request element is bad.
    pub description: String,
    /// A path that leads to a field in the request body.
    pub field: String,
}

/// A named value an error is about.
#[derive(Object, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorParameter {
    /// What the value is (a parameter or field name).
    pub name: String,
    /// The value as the request gave it.
    pub value: String,
}

/// Bad request detail.
#[derive(Object, Serialize, Clone, Debug, PartialEq, Eq)]
#[oai(read_only_all)]
pub struct BadRequestDetail {
    /// Describes all violations in a client request.
    pub fields: Vec<FieldViolation>,
}

/// The error body of every operation.
#[derive(Object, Serialize, Clone, Debug, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// Bad request detail.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_request_detail: Option<BadRequestDetail>,
    /// Describes the specific conditions or reasons that cause each type of error.
    pub detail: Option<String>,
    /// HTTP status code returned with this error.
    #[oai(read_only)]
    pub error: i32,
    /// Application error code returned with this error.
    #[oai(read_only)]
    pub error_code: String,
    /// Parameters used to give more information about the error.
    #[oai(read_only)]
    pub parameters: Vec<ErrorParameter>,
    /// Application error message returned with this error.
    #[oai(read_only)]
    pub reason: Option<String>,
}

impl From<&Error> for ApiError {
    fn from(e: &Error) -> Self {
        ApiError {
            bad_request_detail: (!e.fields.is_empty()).then(|| BadRequestDetail {
                fields: e
                    .fields
                    .iter()
                    .map(|f| FieldViolation {
                        description: f.description.clone(),
                        field: f.field.clone(),
                    })
                    .collect(),
            }),
            detail: Some(e.detail.clone()),
            error: i32::from(e.status()),
            error_code: e.code.as_str().to_owned(),
            parameters: e
                .parameters
                .iter()
                .map(|(name, value)| ErrorParameter {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            reason: Some(e.code.reason().to_owned()),
        }
    }
}

/// Builds a complete `application/json` error response outside poem-openapi (middleware, fallbacks).
pub fn error_response(e: &Error) -> poem::Response {
    let body = serde_json::to_vec(&ApiError::from(e)).expect("ApiError serializes");
    let mut resp = poem::Response::builder()
        .status(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body);
    if let Some(s) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// Declares an error-response enum for a set of documented statuses, and its conversion from a
/// domain [`Error`].
///
/// - Variants under `retry` also carry `Retry-After`, `RateLimit-Limit` and `RateLimit-Remaining`
///   (429 and 503).
/// - `fold S => Variant = T` answers an error whose natural status S the operation does not
///   document with status T instead, keeping its `errorCode`, detail and field violations, so
///   the client still learns exactly what was wrong (e.g. a malformed id where only 404 is
///   documented).
/// - Any other status outside the set is a server bug: logged and answered as 500, which every
///   operation documents.
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident {
        $($variant:ident = $status:literal : $desc:literal),* $(,)?
        $(; retry $($rvariant:ident = $rstatus:literal : $rdesc:literal),+ $(,)?)?
        $(; fold $($from:literal => $fvariant:ident = $fstatus:literal),+ $(,)?)?
        $(; rename $($old:literal => $new:literal),+ $(,)?)?
    }) => {
        $(#[$meta])*
        #[derive(ApiResponse, Debug)]
        pub enum $name {
            $(
                #[doc = $desc]
                #[oai(status = $status, content_type = "application/json")]
                $variant(Json<ApiError>),
            )*
            $($(
                #[doc = $rdesc]
                #[oai(status = $rstatus, content_type = "application/json")]
                $rvariant(
                    Json<ApiError>,
                    /// The minimum time you should wait, in seconds, before retrying the API request.
                    #[oai(header = "Retry-After")] Option<u64>,
                    /// The maximum number of requests that a user can make within a specific time window.
                    #[oai(header = "RateLimit-Limit")] Option<i64>,
                    /// The number of requests remaining in the current rate limit window before the limit is reached.
                    #[oai(header = "RateLimit-Remaining")] Option<i64>,
                ),
            )+)?
            /// Internal Server Error.
            #[oai(status = 500, content_type = "application/json")]
            Internal(
                Json<ApiError>,
                /// Set when the database is busy or out of space: retrying after this many seconds may succeed.
                #[oai(header = "Retry-After")] Option<u64>,
            ),
        }

        impl From<Error> for $name {
            fn from(e: Error) -> Self {
                #[allow(unused_mut)]
                let mut body = ApiError::from(&e);
                // Parameters named as this family's contract spells them.
                $($(
                    for p in body.parameters.iter_mut().filter(|p| p.name == $old) {
                        p.name = $new.to_owned();
                    }
                )+)?
                match e.status() {
                    $($status => $name::$variant(Json(body)),)*
                    $($($rstatus => $name::$rvariant(Json(body), e.retry_after, None, None),)+)?
                    $($($from => {
                        body.error = $fstatus;
                        body.reason = Some(invites_domain::error::reason_phrase($fstatus).to_owned());
                        $name::$fvariant(Json(body))
                    })+)?
                    500 => $name::Internal(Json(body), None),
                    // The database is busy or full and the operation documents no 503: its 500,
                    // keeping the errorCode, the detail and Retry-After (retrying helps).
                    other if other == 503 => {
                        body.error = 500;
                        body.reason = Some(invites_domain::error::reason_phrase(500).to_owned());
                        $name::Internal(Json(body), e.retry_after)
                    }
                    other => {
                        tracing::error!(status = other, code = %e.code, "{} cannot answer status {other}", stringify!($name));
                        $name::Internal(Json(ApiError::from(&Error::internal())), None)
                    }
                }
            }
        }
    };
}

error_responses!(
    /// The errors of operations that document 400, 401, 403, 404 and 429.
    ErrorsWith400 {
        BadRequest = 400: "Bad Request.",
        Unauthorized = 401: "Unauthorized.",
        Forbidden = 403: "Forbidden.",
        NotFound = 404: "Not Found.";
        retry TooManyRequests = 429: "Too Many Requests.";
        fold 415 => BadRequest = 400,
    }
);

error_responses!(
    /// The errors of operations that document 401, 403, 404 and 429 but not 400: what would be a
    /// 400 names nothing the operation can act on, and is answered 404 with its own errorCode.
    ErrorsWithout400 {
        Unauthorized = 401: "Unauthorized.",
        Forbidden = 403: "Forbidden.",
        NotFound = 404: "Not Found.";
        retry TooManyRequests = 429: "Too Many Requests.";
        fold 400 => NotFound = 404, 415 => NotFound = 404,
    }
);

error_responses!(
    /// The errors of the Ops Manager operations.
    OpsManagerErrors {
        BadRequest = 400: "Bad Request.",
        Unauthorized = 401: "Unauthorized.",
        Forbidden = 403: "Forbidden.",
        NotFound = 404: "Not Found.";
        fold 415 => BadRequest = 400;
        rename "groupId" => "GROUP-ID", "invitationId" => "INVITATION-ID",
    }
);

error_responses!(
    /// The errors of the community operations.
    CommunityErrors {
        BadRequest = 400: "Bad Request: the users list or a parameter is not acceptable; nothing was changed.",
        Unauthorized = 401: "Unauthorized: no valid Bearer token.",
        Forbidden = 403: "Forbidden: only managers (and a course's creator) may do this.",
        NotFound = 404: "Not Found: no such group or course, or no pending invitation.";
        fold 415 => BadRequest = 400,
    }
);

error_responses!(
    /// The errors of the OAuth2 token endpoint.
    TokenErrors {
        BadRequest = 400: "Bad Request: grant type or body not accepted.",
        Unauthorized = 401: "Unauthorized: unknown client or wrong secret.";
        retry TooManyRequests = 429: "Too Many Requests.";
        fold 415 => BadRequest = 400,
    }
);

error_responses!(
    /// The errors of the liveness check.
    HealthErrors {
        ; retry Unavailable = 503: "Service Unavailable (not answered since 0.1.0's check of the database moved to /ready).",
    }
);

error_responses!(
    /// The errors of the readiness check.
    ReadyErrors {
        ; retry Unavailable = 503: "Service Unavailable: the server is starting, or its database does not answer.",
    }
);

/// Maps a status seen at the edge (outside handlers) to the error code that explains it.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::ValidationError,
        401 => ErrorCode::NotAuthenticated,
        403 => ErrorCode::UserUnauthorized,
        404 => ErrorCode::ResourceNotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::RequestTimeout,
        413 => ErrorCode::RequestTooLarge,
        414 => ErrorCode::UriTooLong,
        415 => ErrorCode::UnsupportedMediaType,
        429 => ErrorCode::RateLimited,
        431 => ErrorCode::RequestHeadersTooLarge,
        503 => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::UnexpectedError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_has_the_atlas_field_names() {
        let e = Error::invalid_object_id("orgId", "xyz");
        let v = serde_json::to_value(ApiError::from(&e)).unwrap();
        insta::assert_json_snapshot!(v, @r###"
        {
          "badRequestDetail": {
            "fields": [
              {
                "description": "must be a 24-character lowercase hexadecimal string",
                "field": "orgId"
              }
            ]
          },
          "detail": "An invalid ID xyz was specified for orgId.",
          "error": 400,
          "errorCode": "INVALID_OBJECT_ID",
          "parameters": [
            {
              "name": "orgId",
              "value": "xyz"
            }
          ],
          "reason": "Bad Request"
        }
        "###);
    }

    #[test]
    fn a_400_folds_into_404_where_400_is_not_documented() {
        let r = ErrorsWithout400::from(Error::invalid_object_id("groupId", "x"));
        let ErrorsWithout400::NotFound(body) = r else {
            panic!("expected NotFound")
        };
        assert_eq!(body.error, 404);
        assert_eq!(body.error_code, "INVALID_OBJECT_ID");
        assert!(body.bad_request_detail.is_some());
    }

    #[test]
    fn a_status_outside_the_documented_set_becomes_500() {
        let r = TokenErrors::from(Error::forbidden());
        assert!(matches!(r, TokenErrors::Internal(_, None)));
    }
}
