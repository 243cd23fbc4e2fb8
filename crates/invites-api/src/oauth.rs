//! The OAuth2 client-credentials token endpoint for service accounts, and the operational checks:
//! `/health` (liveness: the process serves requests) and `/ready` (readiness: its database
//! answers, so requests can be served).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use invites_domain::{Error, ErrorCode};
use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::backend::Backend;
use crate::body::LenientForm;
use crate::error::{HealthErrors, ReadyErrors, TokenErrors};

#[derive(Tags)]
pub enum ServiceTags {
    /// Service-account authentication (OAuth2 client credentials).
    #[oai(rename = "OAuth")]
    OAuth,
    /// Operational endpoints.
    Operations,
}

/// A token request: `grant_type=client_credentials`, with the client id and secret in an HTTP
/// Basic `Authorization` header (preferred) or in the body.
#[derive(Object, Debug, serde::Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: String,
    /// The service account's client id, when not sent with HTTP Basic.
    pub client_id: Option<String>,
    /// The service account's secret, when not sent with HTTP Basic.
    pub client_secret: Option<String>,
}

/// An issued access token.
#[derive(Object, Debug)]
pub struct TokenResponse {
    /// The Bearer token to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

#[derive(ApiResponse)]
pub enum TokenIssued {
    /// The token.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
}

/// Liveness of the service.
#[derive(Object, Debug)]
pub struct Health {
    /// `ok`: the process serves requests (the database is not asked; see `/ready`).
    pub status: String,
}

#[derive(ApiResponse)]
pub enum Healthy {
    /// The process serves requests.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

/// Readiness of the service.
#[derive(Object, Debug)]
pub struct Readiness {
    /// `ready`: the database is migrated and answers.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum Ready {
    /// The database is migrated and answers: requests can be served.
    #[oai(status = 200)]
    Ok(Json<Readiness>),
}

/// The database does not answer (the readiness check's 503).
pub fn database_unavailable() -> Error {
    Error::new(
        ErrorCode::ServiceUnavailable,
        "The database does not answer.",
    )
    .with_retry_after(5)
}

/// The server listens but has not finished opening and migrating its database.
pub fn starting() -> Error {
    Error::new(
        ErrorCode::ServiceUnavailable,
        "The server is starting (opening and migrating its database); retry shortly.",
    )
    .with_retry_after(1)
}

/// A `grant_type` other than `client_credentials`.
pub(crate) fn unsupported_grant() -> Error {
    Error::new(
        ErrorCode::InvalidAttribute,
        "grant_type must be client_credentials.",
    )
    .with_field("grant_type", "must be client_credentials")
}

/// Neither HTTP Basic credentials nor `client_id` and `client_secret`.
fn missing_credentials() -> Error {
    Error::new(
        ErrorCode::NotAuthenticated,
        "Client credentials are required (HTTP Basic or client_id and client_secret).",
    )
}

/// Credentials that match no service account.
pub(crate) fn invalid_client() -> Error {
    Error::new(ErrorCode::NotAuthenticated, "Invalid client credentials.")
}

fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub struct ServiceApi;

#[OpenApi]
impl ServiceApi {
    /// Issue a service-account access token
    ///
    /// OAuth2 client credentials grant (RFC 6749 section 4.4). Send the service account's client id
    /// and secret with HTTP Basic authentication and `grant_type=client_credentials` as a form body;
    /// the answer is a Bearer token valid for 3600 seconds on the Atlas family.
    #[oai(
        path = "/api/oauth/token",
        method = "post",
        operation_id = "createServiceAccountToken",
        tag = "ServiceTags::OAuth"
    )]
    async fn token(
        &self,
        backend: Data<&Arc<dyn Backend>>,
        req: &Request,
        body: LenientForm<TokenRequest>,
    ) -> Result<TokenIssued, TokenErrors> {
        let body = body.into_result()?;
        if body.grant_type != "client_credentials" {
            return Err(unsupported_grant().into());
        }
        let (id, secret) = match (basic_credentials(req), &body.client_id, &body.client_secret) {
            (Some(pair), _, _) => pair,
            (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => return Err(missing_credentials().into()),
        };
        match backend.issue_token(&id, &secret).await? {
            Some(t) => Ok(TokenIssued::Ok(Json(TokenResponse {
                access_token: t.access_token,
                token_type: "Bearer".to_owned(),
                expires_in: t.expires_in,
            }))),
            None => Err(invalid_client().into()),
        }
    }

    /// Liveness check
    ///
    /// Answers 200 while the process serves requests. It does not ask the database, so an
    /// orchestrator restarting processes that fail it does not restart every replica when the
    /// database is away; whether requests can be served is `/ready`'s answer. The 503 stays in
    /// the contract of 0.1.0 (when this check asked the database) and is no longer answered.
    #[oai(
        path = "/health",
        method = "get",
        operation_id = "health",
        tag = "ServiceTags::Operations"
    )]
    async fn health(&self) -> Result<Healthy, HealthErrors> {
        Ok(Healthy::Ok(Json(Health {
            status: "ok".to_owned(),
        })))
    }

    /// Readiness check
    ///
    /// Answers 200 when the database is migrated and answers, so requests can be served; 503 with
    /// `Retry-After` while the server is starting (opening and migrating its database), whenever
    /// the database does not answer, and for good once a newer version of the service has
    /// migrated the database (this one then serves nothing but this check and `/health`). For
    /// load balancers and orchestrators deciding where to send traffic.
    #[oai(
        path = "/ready",
        method = "get",
        operation_id = "ready",
        tag = "ServiceTags::Operations"
    )]
    async fn ready(&self, backend: Data<&Arc<dyn Backend>>) -> Result<Ready, ReadyErrors> {
        backend.health().await?;
        Ok(Ready::Ok(Json(Readiness {
            status: "ready".to_owned(),
        })))
    }
}
