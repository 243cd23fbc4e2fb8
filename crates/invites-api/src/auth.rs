//! Authentication at the edge: HTTP Digest and service-account Bearer tokens for the Atlas and
//! Ops Manager families, Bearer tokens for the community family.
//!
//! [`Authenticate`] runs before routing and before any body is read (curl's `--digest` first sends
//! a bodiless request and expects the challenge). It puts the [`Principal`] into the request's
//! extensions; the security extractors ([`AtlasAuth`], [`OpsManagerAuth`], [`CommunityAuth`]) take it
//! from there and register the security schemes in the generated spec. poem-openapi has no Digest
//! scheme, so it is registered by hand.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use invites_digest::{parse_authorization, Algorithm, Failure, Verifier};
use invites_domain::{Error, Principal, PrincipalKind};
use invites_metrics::{AuthFailure, Lockout, Metrics};
use poem::http::{header, HeaderValue};
use poem::{Endpoint, Middleware, Request, Response};
use poem_openapi::registry::{MetaOAuthFlow, MetaOAuthFlows, MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::backend::Backend;
use crate::error::error_response;
use crate::guard::{ClientAddr, FailedAuthLimiter, TrustedProxies};

/// The Digest realm of Atlas and Ops Manager.
pub const REALM: &str = "MMS Public API";

/// Which credentials a path prefix takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// Digest API keys or service-account Bearer tokens.
    Atlas,
    /// Digest API keys only.
    OpsManager,
    /// Community user Bearer tokens only.
    Community,
    /// No credentials needed.
    Public,
}

fn family_of(path: &str) -> Family {
    if path.starts_with("/api/atlas/") {
        Family::Atlas
    } else if path.starts_with("/api/public/") {
        Family::OpsManager
    } else if path.starts_with("/api/v2/") {
        Family::Community
    } else {
        Family::Public
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Settings of the authentication middleware.
#[derive(Clone)]
pub struct AuthConfig {
    pub verifier: Arc<Verifier>,
    /// The algorithm offered in challenges (clients answer with the one offered).
    pub challenge_algorithm: Algorithm,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Failed-authentication limits per address and per key.
    pub failed_auth: Arc<FailedAuthLimiter>,
}

impl AuthConfig {
    /// No trusted proxies; the default failed-authentication limits.
    pub fn new(verifier: Arc<Verifier>, challenge_algorithm: Algorithm) -> Self {
        AuthConfig {
            verifier,
            challenge_algorithm,
            trusted_proxies: Arc::new(TrustedProxies::default()),
            failed_auth: Arc::new(FailedAuthLimiter::new(
                DEFAULT_FAILED_AUTH_PER_ADDRESS,
                DEFAULT_FAILED_AUTH_PER_KEY,
            )),
        }
    }
}

/// Failed authentication attempts allowed per client address per minute.
pub const DEFAULT_FAILED_AUTH_PER_ADDRESS: u32 = 60;
/// Failed authentication attempts allowed per API key (Digest username) per minute.
pub const DEFAULT_FAILED_AUTH_PER_KEY: u32 = 20;

/// The middleware that authenticates every request under an API family's prefix.
pub struct Authenticate {
    pub backend: Arc<dyn Backend>,
    pub config: AuthConfig,
    /// Where failures and lockouts are counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl<E: Endpoint> Middleware<E> for Authenticate {
    type Output = AuthenticateEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AuthenticateEndpoint {
            inner: ep,
            backend: self.backend.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct AuthenticateEndpoint<E> {
    inner: E,
    backend: Arc<dyn Backend>,
    config: AuthConfig,
    metrics: Option<Arc<Metrics>>,
}

/// The outcome of checking a request's credentials.
enum Verdict {
    Allowed(Principal),
    /// 401 with a challenge; `stale` sets `stale=true` on a Digest challenge.
    Challenge {
        detail: &'static str,
        stale: bool,
        reason: AuthFailure,
    },
    /// Any other error (403 off the access list, 5xx from the backend).
    Refused(Error),
    /// Too many failed attempts from this address or for this key: retry after this many seconds.
    Throttled(u64, Lockout),
}

/// Whether a verdict is a failed credential check that counts toward the limit, and the Digest
/// username it named.
struct Attempt {
    failed: bool,
    username: Option<String>,
}

impl<E: Endpoint> AuthenticateEndpoint<E> {
    async fn check(&self, req: &Request, family: Family, attempt: &mut Attempt) -> Verdict {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Verdict::Challenge {
                detail: "You are not authorized for this resource.",
                stale: false,
                reason: AuthFailure::Missing,
            };
        };
        let Ok(value) = value.to_str() else {
            return Verdict::Challenge {
                detail: "The Authorization header is malformed.",
                stale: false,
                reason: AuthFailure::Malformed,
            };
        };
        // Only a checked secret counts as a failed attempt: a scheme this family does not take
        // guesses nothing (nor does a valid token of another family, see `check_bearer`).
        let scheme = value.split_ascii_whitespace().next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("bearer") && family != Family::OpsManager {
            attempt.failed = true;
            return self.check_bearer(value, family, attempt).await;
        }
        if scheme.eq_ignore_ascii_case("digest") && family != Family::Community {
            attempt.failed = true;
            return self.check_digest(req, value, attempt).await;
        }
        Verdict::Challenge {
            detail: "The Authorization scheme is not accepted here.",
            stale: false,
            reason: AuthFailure::Scheme,
        }
    }

    async fn check_bearer(&self, value: &str, family: Family, attempt: &mut Attempt) -> Verdict {
        let token = value[6..].trim();
        if token.is_empty() || token.len() > 512 {
            return Verdict::Challenge {
                detail: "The Bearer token is malformed.",
                stale: false,
                reason: AuthFailure::Malformed,
            };
        }
        let principal = match self.backend.bearer(token).await {
            Ok(p) => p,
            Err(e) => return Verdict::Refused(e),
        };
        let wanted = match family {
            Family::Community => PrincipalKind::User,
            _ => PrincipalKind::ServiceAccount,
        };
        match principal {
            Some(p) if p.kind == wanted => Verdict::Allowed(p),
            // A live token of the other family: its holder made a mistake, not a guess.
            Some(_) => {
                attempt.failed = false;
                Verdict::Challenge {
                    detail: match family {
                        Family::Community => {
                            "This Bearer token is a service account's; this API takes a user's."
                        }
                        _ => "This Bearer token is a user's; this API takes a service account's.",
                    },
                    stale: false,
                    reason: AuthFailure::TokenWrongFamily,
                }
            }
            None => Verdict::Challenge {
                detail: "The Bearer token is invalid or expired.",
                stale: false,
                reason: AuthFailure::TokenInvalid,
            },
        }
    }

    async fn check_digest(&self, req: &Request, value: &str, attempt: &mut Attempt) -> Verdict {
        let failed = |f: Failure| Verdict::Challenge {
            detail: f.client_text(),
            stale: f.is_stale(),
            reason: match f {
                Failure::Malformed(_) => AuthFailure::Malformed,
                Failure::UnknownUser => AuthFailure::UnknownKey,
                Failure::WrongResponse => AuthFailure::WrongResponse,
                Failure::StaleNonce => AuthFailure::StaleNonce,
                Failure::Replayed => AuthFailure::Replayed,
                _ => AuthFailure::DigestRefused,
            },
        };
        let creds = match parse_authorization(value) {
            Ok(c) => c,
            Err(e) => return failed(Failure::Malformed(e)),
        };
        attempt.username = Some(creds.username.to_owned());
        if let Some(retry) = self.config.failed_auth.key_blocked(creds.username) {
            attempt.failed = false;
            return Verdict::Throttled(retry, Lockout::Key);
        }
        let target = req
            .original_uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let verifier = &self.config.verifier;
        if let Err(f) = verifier.precheck(&creds, target) {
            return failed(f);
        }
        let key = match self.backend.api_key(creds.username).await {
            Ok(k) => k,
            Err(e) => return Verdict::Refused(e),
        };
        let Some(key) = key else {
            // Do the digest work of a wrong secret too, so timing does not tell that the key is unknown.
            const NO_KEY_HA1: &str = "00000000000000000000000000000000";
            let _ = verifier.verify(&creds, NO_KEY_HA1, req.method().as_str(), now_ms());
            return failed(Failure::UnknownUser);
        };
        let ha1 = match Algorithm::parse(creds.algorithm) {
            Some(Algorithm::Sha256) => &key.ha1_sha256,
            _ => &key.ha1_md5,
        };
        let used = match verifier.verify(&creds, ha1, req.method().as_str(), now_ms()) {
            Ok(used) => used,
            Err(f) => return failed(f),
        };
        // This replica has not seen the count; make sure no other one has.
        match self.backend.record_nonce_count(used).await {
            Ok(true) => {}
            Ok(false) => return failed(Failure::Replayed),
            Err(e) => return Verdict::Refused(e),
        }
        if !key.access_list.is_empty() {
            let addr: Option<IpAddr> = req.extensions().get::<ClientAddr>().and_then(|c| c.0);
            let allowed =
                addr.is_some_and(|ip| key.access_list.iter().any(|net| net.contains(&ip)));
            if !allowed {
                let shown = addr
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "unknown".into());
                return Verdict::Refused(
                    Error::new(
                        invites_domain::ErrorCode::IpAddressNotOnAccessList,
                        format!("IP address {shown} is not allowed to access this resource."),
                    )
                    .with_parameter("address", shown),
                );
            }
        }
        Verdict::Allowed(key.principal)
    }

    /// Too many failed attempts: 429 where the family documents it (Atlas), else its 401; both
    /// with `Retry-After`.
    fn throttled(&self, family: Family, retry: u64) -> Response {
        let detail =
            format!("Too many failed authentication attempts; retry after {retry} seconds.");
        let mut resp = match family {
            Family::Atlas => error_response(
                &Error::new(invites_domain::ErrorCode::RateLimited, detail).with_retry_after(retry),
            ),
            _ => self.challenge(family, &detail, false),
        };
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    fn challenge(&self, family: Family, detail: &str, stale: bool) -> Response {
        let mut resp = error_response(&Error::new(
            invites_domain::ErrorCode::NotAuthenticated,
            detail,
        ));
        let value = match family {
            Family::Community => "Bearer realm=\"community\"".to_owned(),
            _ => self
                .config
                .verifier
                .challenge(now_ms(), self.config.challenge_algorithm, stale),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

impl<E: Endpoint> Endpoint for AuthenticateEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let family = family_of(req.uri().path());
        if family == Family::Public {
            return self
                .inner
                .call(req)
                .await
                .map(poem::IntoResponse::into_response);
        }
        let addr = self.config.trusted_proxies.client_addr(&req);
        req.extensions_mut().insert(ClientAddr(addr));
        let limiter = &self.config.failed_auth;
        let verdict = match limiter.address_blocked(addr) {
            Some(retry) if req.headers().contains_key(header::AUTHORIZATION) => {
                Verdict::Throttled(retry, Lockout::Address)
            }
            _ => {
                let mut attempt = Attempt {
                    failed: false,
                    username: None,
                };
                let verdict = self.check(&req, family, &mut attempt).await;
                // An expired nonce is a normal part of Digest, not a wrong guess.
                if attempt.failed && matches!(verdict, Verdict::Challenge { stale: false, .. }) {
                    limiter.record_failure(addr, attempt.username.as_deref());
                }
                verdict
            }
        };
        if let Some(metrics) = &self.metrics {
            match &verdict {
                Verdict::Allowed(_) => {}
                Verdict::Challenge { reason, .. } => metrics.auth_failed(*reason),
                Verdict::Refused(e) => {
                    if e.code == invites_domain::ErrorCode::IpAddressNotOnAccessList {
                        metrics.auth_failed(AuthFailure::AccessList);
                    }
                }
                Verdict::Throttled(_, by) => metrics.locked_out(*by),
            }
        }
        match verdict {
            Verdict::Allowed(principal) => {
                if let Some(slot) = req.extensions().get::<crate::edge::PrincipalSlot>() {
                    slot.set(principal.kind);
                }
                req.extensions_mut().insert(principal);
                self.inner
                    .call(req)
                    .await
                    .map(poem::IntoResponse::into_response)
            }
            Verdict::Challenge { detail, stale, .. } => {
                Ok(drain_or_close(&mut req, self.challenge(family, detail, stale)).await)
            }
            Verdict::Refused(e) => Ok(drain_or_close(&mut req, error_response(&e)).await),
            Verdict::Throttled(retry, _) => {
                Ok(drain_or_close(&mut req, self.throttled(family, retry)).await)
            }
        }
    }
}

/// The most of an unauthenticated request's body read (and dropped) so that its connection can
/// carry the next request: a Digest client sends its body with the first, unauthenticated
/// request and repeats the request, body and all, on the same connection after the challenge.
const DRAIN_LIMIT: usize = 64 * 1024;

/// How long reading that body may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A refusal answered before the request's body was read. Left unread, the body makes hyper
/// close the connection once the answer is out, and a client that reuses it at once (httpx's
/// `DigestAuth` answering the challenge) finds it closed with no answer. So a body of at most
/// [`DRAIN_LIMIT`] bytes that arrives within [`DRAIN_TIME`] is read and dropped, and the
/// connection kept; a larger or slower one is not read (no work for an unauthenticated sender)
/// and the answer says `Connection: close`, so the client opens a new connection.
async fn drain_or_close(req: &mut Request, mut resp: Response) -> Response {
    let headers = req.headers();
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let drained = match (length, chunked) {
        (None | Some(0), false) => true,
        (Some(n), false) if n > DRAIN_LIMIT as u64 => false,
        _ => {
            let body = req.take_body();
            matches!(
                tokio::time::timeout(DRAIN_TIME, body.into_bytes_limit(DRAIN_LIMIT)).await,
                Ok(Ok(_))
            )
        }
    };
    if !drained {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn principal_from(req: &Request) -> poem::Result<Principal> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::UNAUTHORIZED))
}

fn register_digest(registry: &mut Registry) {
    registry.create_security_scheme(
        "DigestAuth",
        MetaSecurityScheme {
            ty: "http",
            description: Some("HTTP Digest (RFC 7616), realm `MMS Public API`, qop `auth`, MD5 or SHA-256: username = API public key, password = private key."),
            name: None,
            key_in: None,
            scheme: Some("digest"),
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

macro_rules! security_extractor {
    ($(#[$meta:meta])* $name:ident, [$($scheme:literal),+], $register:expr) => {
        $(#[$meta])*
        pub struct $name(pub Principal);

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                ($register)(registry)
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$($scheme),+]
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut poem::RequestBody,
                _opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                principal_from(req).map($name)
            }
        }
    };
}

security_extractor!(
    /// A caller of the Atlas family: a Digest API key or a service account.
    AtlasAuth,
    ["ServiceAccounts", "DigestAuth"],
    |registry: &mut Registry| {
        register_digest(registry);
        registry.create_security_scheme(
            "ServiceAccounts",
            MetaSecurityScheme {
                ty: "oauth2",
                description: Some("OAuth2 client credentials: exchange a service account's client id and secret at `POST /api/oauth/token` for a Bearer token valid 3600 s."),
                name: None,
                key_in: None,
                scheme: None,
                bearer_format: None,
                flows: Some(MetaOAuthFlows {
                    implicit: None,
                    password: None,
                    client_credentials: Some(MetaOAuthFlow {
                        authorization_url: None,
                        token_url: Some("/api/oauth/token"),
                        refresh_url: None,
                        scopes: Vec::new(),
                    }),
                    authorization_code: None,
                }),
                openid_connect_url: None,
            },
        );
    }
);

security_extractor!(
    /// A caller of the Ops Manager family: a Digest API key.
    OpsManagerAuth,
    ["DigestAuth"],
    register_digest
);

security_extractor!(
    /// A caller of the community family: a user with a Bearer access token.
    CommunityAuth,
    ["BearerAuth"],
    |registry: &mut Registry| {
        registry.create_security_scheme(
            "BearerAuth",
            MetaSecurityScheme {
                ty: "http",
                description: Some("A community user's access token: `Authorization: Bearer <token>`."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_prefix() {
        assert_eq!(family_of("/api/atlas/v2/orgs/x/invites"), Family::Atlas);
        assert_eq!(
            family_of("/api/public/v1.0/groups/x/invites"),
            Family::OpsManager
        );
        assert_eq!(family_of("/api/v2/group/1/invite/"), Family::Community);
        assert_eq!(family_of("/api/oauth/token"), Family::Public);
        assert_eq!(family_of("/openapi.json"), Family::Public);
    }
}
