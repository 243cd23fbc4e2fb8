//! The HTTP API of the invitation service: operation definitions (the source of the generated
//! OpenAPI document), the error body, authentication and the edge middleware.
//!
//! This crate compiles without a database: handlers reach data only through [`Backend`], which
//! the server crate implements. [`spec_json`] therefore needs nothing but this crate, and
//! [`app`] is the one application constructor shared by `invites serve`, tests and benchmarks.

pub mod atlas;
pub mod auth;
pub mod backend;
pub mod body;
pub mod community;
pub mod edge;
pub mod error;
pub mod examples;
pub mod guard;
pub mod limits;
pub mod list_cache;
pub mod model;
pub mod oauth;
pub mod opsmanager;
pub mod params;
pub mod ratelimit;
pub mod request;

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{get, Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;

pub use auth::{AuthConfig, REALM};
pub use backend::{ApiKeyCredential, Backend, Caller, IssuedToken, Scope};

/// Largest request body accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

type Apis = (
    atlas::AtlasApi,
    opsmanager::OpsManagerApi,
    community::CommunityApi,
    oauth::ServiceApi,
);

/// The document's introduction, shown at the top of `/docs` (CommonMark).
const DESCRIPTION: &str = "\
Invitation management for three API families in one server:

- **MongoDB Atlas Administration API v2** (`/api/atlas/v2`): organization and project \
invitations, answered field for field like the real Atlas contract. Authenticate with an API key \
over HTTP Digest (public key as user name, private key as password), or with a service \
account's Bearer token from `POST /api/oauth/token` (HTTP Basic with the client id and secret, \
`grant_type=client_credentials`).
- **Ops Manager Public API v1.0** (`/api/public/v1.0`): project invitations, Digest API keys.
- **Community platform API v2** (`/api/v2`): group and course invitations, Bearer tokens of \
community users.

**Trying it:** `invites serve --demo` prints demo API keys, a service account, community tokens \
and ready-to-paste `curl` commands; `invites admin` creates real ones. Use *Authorize* above with \
them, then *Try it out* calls this server.

**Why the Atlas invitation operations are shown deprecated:** the real Atlas contract deprecates \
them (Atlas now manages pending users through its users endpoints) and this server keeps its \
contract, `Deprecation` and `Sunset` headers included; they work as documented.

Every error is an `ApiError` JSON body; `envelope=true` wraps any answer as \
`{\"status\", \"content\"}` with HTTP 200 and `pretty=true` indents JSON.

Every answer carries an `X-Request-Id` header naming the request in the server's log: the \
request's own `X-Request-Id` when it is 1 to 128 characters of letters, digits, `.`, `_`, `:` \
and `-`, else a new one (32 hex digits).";

/// The docs page's title (poem-openapi's page says only "Swagger UI").
const DOCS_TITLE: &str = "Invitation service API: Atlas v2, Ops Manager v1.0, community v2";

/// The operations, over `lists` as the list cache (one per server; the spec does not use it).
fn service(lists: Arc<list_cache::ListCache>) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            atlas::AtlasApi {
                lists: Arc::clone(&lists),
            },
            opsmanager::OpsManagerApi { lists },
            community::CommunityApi,
            oauth::ServiceApi,
        ),
        "Invitation service",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(env!("CARGO_PKG_LICENSE"))
    .server("http://127.0.0.1:8080")
}

/// Response properties serialized as `null` when absent.
const NULLABLE: &[(&str, &str)] = &[
    ("CommunityInvitedUserPage", "next"),
    ("CommunityInvitedUserPage", "previous"),
    ("CommunityInvitedUser", "avatar"),
    ("CommunityInvitedUser", "ext_id"),
];

/// Response header names as the HTTP and Atlas documents spell them (poem-openapi upper-cases them).
const HEADER_SPELLINGS: &[&str] = &[
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "Deprecation",
    "Sunset",
    "Allow",
];

/// The OpenAPI document, exactly as committed under `openapi/invites.json`.
///
/// poem-openapi's output is adjusted in one place, here: the community paths get back their
/// trailing slash (poem-openapi drops it), response header names their usual spelling
/// (`HEADER_SPELLINGS`), the optional community fields sent as `null` are marked nullable
/// (`NULLABLE`), every body gets an example ([`examples`]), and the OAuth2 flow gets the
/// `scopes` object OpenAPI 3.0 requires even when empty (poem-openapi omits it).
pub fn spec_json() -> String {
    let mut spec: serde_json::Value = serde_json::from_str(&service(Default::default()).spec())
        .expect("poem-openapi emits valid JSON");
    // The community paths end with a slash, as documented; poem-openapi drops trailing slashes
    // from paths, and the edge routes both spellings.
    if let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let community: Vec<String> = paths
            .keys()
            .filter(|k| k.starts_with("/api/v2/"))
            .cloned()
            .collect();
        for key in community {
            if let Some(item) = paths.remove(&key) {
                paths.insert(format!("{key}/"), item);
            }
        }
    }
    if let Some(paths) = spec.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths
            .values_mut()
            .filter_map(|i| i.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for headers in responses
                .values_mut()
                .filter_map(|r| r.get_mut("headers"))
                .filter_map(|h| h.as_object_mut())
            {
                let names: Vec<String> = headers.keys().cloned().collect();
                for name in names {
                    if let Some(spelled) = HEADER_SPELLINGS
                        .iter()
                        .find(|s| s.eq_ignore_ascii_case(&name))
                    {
                        if let Some(v) = headers.remove(&name) {
                            headers.insert((*spelled).to_owned(), v);
                        }
                    }
                }
            }
        }
    }
    // Optional fields the community family sends as `null` (its pagination and user shapes);
    // poem-openapi does not mark `Option` fields nullable.
    for (schema, property) in NULLABLE {
        if let Some(p) = spec
            .pointer_mut(&format!(
                "/components/schemas/{schema}/properties/{property}"
            ))
            .and_then(|p| p.as_object_mut())
        {
            p.insert("nullable".to_owned(), serde_json::Value::Bool(true));
        }
    }
    examples::add(&mut spec);
    if let Some(flows) = spec
        .pointer_mut("/components/securitySchemes/ServiceAccounts/flows")
        .and_then(|f| f.as_object_mut())
    {
        for flow in flows.values_mut() {
            if let Some(flow) = flow.as_object_mut() {
                flow.entry("scopes")
                    .or_insert_with(|| serde_json::json!({}));
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&spec).expect("JSON values serialize");
    text.push('\n');
    text
}

/// Settings of the HTTP application.
#[derive(Clone)]
pub struct AppConfig {
    pub auth: AuthConfig,
    pub max_body_bytes: usize,
    /// Requests per principal per minute on the Atlas family.
    pub rate_limit_per_minute: u64,
    /// Whether the rate limit's and the lockout's counts are merged with other replicas' through
    /// [`Backend::merge_limit_counts`] (every 100 ms, see [`limits`]); false: this process's
    /// counts are the deployment's.
    pub merge_limits: bool,
    /// Where requests, authentication failures, lockouts, rate-limit refusals and list cache
    /// lookups are counted; none: nowhere.
    pub metrics: Option<Arc<invites_metrics::Metrics>>,
}

/// Default rate limit per principal per minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u64 = 6000;

/// Where a Swagger UI page from poem-openapi embeds its document: the byte range of the JSON in
/// `let spec = <document>;`.
fn embedded_document(page: &str) -> Option<std::ops::Range<usize>> {
    let start = page.find("let spec = ")? + "let spec = ".len();
    let len = page[start..].find(";\n")?;
    Some(start..start + len)
}

/// The docs page: poem-openapi's Swagger UI showing `spec` (the committed document, from
/// [`spec_json`]) rather than poem-openapi's own, with one server, the origin that served the
/// page, so "Try it out" calls the server being read wherever it listens.
fn docs_html(service: &OpenApiService<Apis, ()>, spec: &str) -> String {
    let mut spec: serde_json::Value =
        serde_json::from_str(spec).expect("spec_json emits valid JSON");
    spec["servers"] = serde_json::json!([{ "url": "/", "description": "this server" }]);
    let mut page = service.swagger_ui_html();
    let document = embedded_document(&page)
        .expect("poem-openapi's Swagger UI page embeds its document as `let spec = ...;`");
    page.replace_range(document, &spec.to_string());
    page.replacen(
        "<title>Swagger UI</title>",
        &format!("<title>{DOCS_TITLE}</title>"),
        1,
    )
}

/// The whole HTTP application over a backend.
pub fn app(backend: Arc<dyn Backend>, config: AppConfig) -> impl Endpoint {
    let metrics = config.metrics;
    let limiter = Arc::new(
        ratelimit::Limiter::new(config.rate_limit_per_minute).with_metrics(metrics.clone()),
    );
    if config.merge_limits {
        limits::spawn_merge(
            backend.clone(),
            Arc::downgrade(&limiter),
            Arc::downgrade(&config.auth.failed_auth),
        );
    }
    let service = service(Arc::new(
        list_cache::ListCache::new().with_metrics(metrics.clone()),
    ));
    let spec = spec_json();
    let docs = Html(docs_html(&service, &spec));
    let methods = Arc::new(edge::MethodTable::from_spec(
        &serde_json::from_str(&spec).expect("spec_json emits valid JSON"),
    ));
    let edge_metrics = metrics
        .as_ref()
        .map(|m| Arc::new(edge::EdgeMetrics::new(Arc::clone(m), &methods)));
    let spec_endpoint = make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(spec.clone())
    });
    let docs_endpoint = make_sync(move |_| {
        docs.0
            .clone()
            .into_response()
            .with_content_type("text/html; charset=utf-8")
    });
    Route::new()
        .at("/openapi.json", get(spec_endpoint))
        .at("/docs", get(docs_endpoint))
        .nest("/", service)
        .with(edge::BodyLimit(config.max_body_bytes))
        .with(ratelimit::RateLimit(limiter))
        .with(auth::Authenticate {
            backend: backend.clone(),
            config: config.auth,
            metrics,
        })
        .with(Serving(backend.clone()))
        .data(backend)
        // A bug that panics answers 500 with an ApiError (and is logged), rather than the
        // connection closing with no answer at all.
        .with(poem::middleware::CatchPanic::new().with_handler(answer_panic))
        .with(edge::Edge {
            methods,
            metrics: edge_metrics,
        })
}

/// What the server answers between binding its socket and having its database open and
/// migrated: `/health` 200 (the process serves), `/ready` its documented 503, and every other
/// request the 500 with `Retry-After` every operation documents for a database that cannot
/// serve yet (`SERVICE_UNAVAILABLE`); through the same edge, request ids and log lines included.
pub fn starting_app() -> impl Endpoint<Output = poem::Response> {
    let spec: serde_json::Value =
        serde_json::from_str(&spec_json()).expect("spec_json emits valid JSON");
    let methods = Arc::new(edge::MethodTable::from_spec(&spec));
    make_sync(|req| match req.uri().path() {
        "/health" => poem::Response::builder()
            .content_type("application/json")
            .body(r#"{"status":"ok"}"#),
        "/ready" => error::error_response(&oauth::starting()),
        _ => cannot_serve(&oauth::starting()),
    })
    .with(edge::Edge {
        methods,
        metrics: None,
    })
}

/// The answer of an operation when the server cannot serve at all (`e`, a
/// `SERVICE_UNAVAILABLE` with `Retry-After`): 503 is documented by the readiness check alone, and
/// the operations document 500 with Retry-After for a database that cannot serve (see
/// `error_responses!`).
fn cannot_serve(e: &invites_domain::Error) -> poem::Response {
    let body = error::ApiError {
        error: 500,
        reason: Some(invites_domain::error::reason_phrase(500).to_owned()),
        ..error::ApiError::from(e)
    };
    poem::Response::builder()
        .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
        .content_type("application/json")
        .header(poem::http::header::RETRY_AFTER, e.retry_after.unwrap_or(1))
        .body(serde_json::to_vec(&body).expect("ApiError serializes"))
}

/// Requests while the backend says it must not serve ([`Backend::not_serving`]): `/health` and
/// `/ready` as usual (the process lives; the readiness check answers 503), every other request
/// [`cannot_serve`].
struct Serving(Arc<dyn Backend>);

impl<E: Endpoint> poem::Middleware<E> for Serving {
    type Output = ServingEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ServingEndpoint(ep, self.0.clone())
    }
}

struct ServingEndpoint<E>(E, Arc<dyn Backend>);

impl<E: Endpoint> Endpoint for ServingEndpoint<E> {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if let Some(e) = self.1.not_serving() {
            if !matches!(req.uri().path(), "/health" | "/ready") {
                return Ok(cannot_serve(&e));
            }
        }
        self.0.call(req).await.map(IntoResponse::into_response)
    }
}

/// A panic inside a request, logged (within the request's span) and answered as a 500 `ApiError`.
fn answer_panic(panic: Box<dyn std::any::Any + Send>) -> poem::Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = what, "a request handler panicked");
    error::error_response(&invites_domain::Error::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document is what the code generates. To rewrite it: `cargo xtask openapi`.
    #[test]
    fn committed_spec_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/invites.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == spec_json(),
            "openapi/invites.json is stale: run `cargo xtask openapi` and commit the result"
        );
    }

    #[test]
    fn the_docs_page_shows_the_committed_document_served_from_where_it_is_read() {
        let page = docs_html(&service(Default::default()), &spec_json());
        let embedded = &page[embedded_document(&page).expect("the page embeds its document")];
        let mut shown: serde_json::Value = serde_json::from_str(embedded).unwrap();
        assert_eq!(
            shown["servers"],
            serde_json::json!([{ "url": "/", "description": "this server" }])
        );
        assert!(page.contains(&format!("<title>{DOCS_TITLE}</title>")));
        assert!(!page.contains("<title>Swagger UI</title>"));
        let mut committed: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        shown.as_object_mut().unwrap().remove("servers");
        committed.as_object_mut().unwrap().remove("servers");
        assert_eq!(shown, committed);
    }

    /// A panic is answered as the app answers it, request id included.
    #[tokio::test]
    async fn a_panic_is_a_500_api_error_with_a_request_id() {
        let app = Route::new()
            .at(
                "/boom",
                get(make_sync(|_| -> &'static str { panic!("boom") })),
            )
            .with(poem::middleware::CatchPanic::new().with_handler(answer_panic))
            .with(edge::Edge {
                methods: Default::default(),
                metrics: None,
            });
        let req = poem::Request::builder()
            .uri_str("/boom")
            .header("X-Request-Id", "panic-1")
            .finish();
        let resp = app.call(req).await.expect("the edge answers every request");
        assert_eq!(resp.status(), poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["x-request-id"], "panic-1");
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
        assert_eq!(body["errorCode"], "UNEXPECTED_ERROR");
    }

    #[test]
    fn spec_documents_the_security_schemes() {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        let schemes = &spec["components"]["securitySchemes"];
        assert_eq!(schemes["DigestAuth"]["scheme"], "digest");
        assert_eq!(
            schemes["ServiceAccounts"]["flows"]["clientCredentials"]["scopes"],
            serde_json::json!({})
        );
        let delete = &spec["paths"]["/api/atlas/v2/orgs/{orgId}/invites/{invitationId}"]["delete"];
        assert_eq!(delete["operationId"], "deleteOrgInvite");
        assert!(delete["responses"]["429"]["headers"]["Retry-After"].is_object());
    }
}
