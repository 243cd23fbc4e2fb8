//! The invitation service assembled: the [`invites_api::Backend`] implemented over the store,
//! credential generation, the demo data set, the server loop with graceful shutdown, and the
//! metrics listener (`GET /metrics`, on its own socket).
//!
//! `invites serve`, the integration tests and the benchmarks all start the service through
//! [`start`], so what is tested is what runs.

pub mod backend;
pub mod cache;
pub mod connections;
pub mod credentials;
pub mod demo;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use invites_api::{AppConfig, AuthConfig, REALM};
use invites_digest::{Algorithm, Verifier};
use invites_store::Store;
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, Request, Response};

pub use backend::StoreBackend;
use connections::ConnectionLoop;
pub use connections::{ConnectionLimits, OpenConnections};
use invites_api::guard::{FailedAuthLimiter, TrustedProxies};
use invites_metrics::Metrics;

/// How long a Digest nonce stays fresh.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Settings of a running service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub nonce_lifetime: Duration,
    pub challenge_algorithm: Algorithm,
    pub max_body_bytes: usize,
    pub rate_limit_per_minute: u64,
    /// Proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed authentication attempts per client address per minute (0: no limit).
    pub failed_auth_per_address: u32,
    /// Failed authentication attempts per API key per minute (0: no limit).
    pub failed_auth_per_key: u32,
    /// Timeouts and limits of every connection (slow and malformed clients).
    pub connections: ConnectionLimits,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            challenge_algorithm: Algorithm::Md5,
            max_body_bytes: invites_api::DEFAULT_MAX_BODY_BYTES,
            rate_limit_per_minute: invites_api::DEFAULT_RATE_LIMIT_PER_MINUTE,
            trusted_proxies: Vec::new(),
            failed_auth_per_address: invites_api::auth::DEFAULT_FAILED_AUTH_PER_ADDRESS,
            failed_auth_per_key: invites_api::auth::DEFAULT_FAILED_AUTH_PER_KEY,
            connections: ConnectionLimits::default(),
        }
    }
}

/// The nonce-signing secret: created once per database and shared by every replica using it.
pub async fn server_secret(store: &Store) -> anyhow::Result<Vec<u8>> {
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let stored = store.setting_or_init("nonce_secret", &fresh).await?;
    Ok(hex::decode(stored)?)
}

/// The HTTP application over `store`.
pub async fn application(
    store: Store,
    config: &ServiceConfig,
) -> anyhow::Result<impl poem::Endpoint> {
    application_with_metrics(store, config, None).await
}

/// The HTTP application over `store`, counting what happens in `metrics` when given.
pub async fn application_with_metrics(
    store: Store,
    config: &ServiceConfig,
    metrics: Option<Arc<Metrics>>,
) -> anyhow::Result<impl poem::Endpoint> {
    let secret = server_secret(&store).await?;
    let verifier = Arc::new(Verifier::new(
        REALM,
        &secret,
        config.nonce_lifetime.as_millis() as u64,
    ));
    // Over PostgreSQL several replicas may serve the database, so their limit counts are merged;
    // an SQLite database is served by this process alone, whose counts are then the whole.
    let merge_limits = store.backend() == invites_store::Backend::Postgres;
    let backend: Arc<dyn invites_api::Backend> = Arc::new(StoreBackend::new(store));
    Ok(invites_api::app(
        backend,
        AppConfig {
            auth: AuthConfig {
                trusted_proxies: Arc::new(TrustedProxies(config.trusted_proxies.clone())),
                failed_auth: Arc::new(FailedAuthLimiter::new(
                    config.failed_auth_per_address,
                    config.failed_auth_per_key,
                )),
                ..AuthConfig::new(verifier, config.challenge_algorithm)
            },
            max_body_bytes: config.max_body_bytes,
            rate_limit_per_minute: config.rate_limit_per_minute,
            merge_limits,
            metrics,
        },
    ))
}

/// The metrics listener's application: `GET /metrics`, everything `metrics` and `store` record
/// in the Prometheus text format (the store's gauges read at that moment); anything else 404.
pub fn metrics_app(metrics: Arc<Metrics>, store: Store) -> impl Endpoint<Output = Response> {
    let scrape = poem::endpoint::make_sync(move |_| {
        store.refresh_metrics();
        Response::builder()
            .content_type(invites_metrics::CONTENT_TYPE)
            .body(metrics.encode())
    });
    poem::Route::new()
        .at("/metrics", poem::get(scrape))
        .map_to_response()
}

/// A service listening on a socket, running until its shutdown signal fires.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The metrics listener, when there is one (it stops with the service).
    metrics: Option<Box<Running>>,
    connections: OpenConnections,
}

impl Running {
    /// The API's connections open now (bounded by `ConnectionLimits::max_connections`).
    pub fn open_connections(&self) -> usize {
        self.connections.count()
    }

    /// Where the metrics listener listens, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Asks the server to stop and waits until in-flight requests are done.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(metrics) = self.metrics.take() {
            Box::pin(metrics.stop()).await?;
        }
        served
    }
}

/// Serves `app` on `acceptor` under `limits` in a task until the returned shutdown sender fires
/// (or is dropped).
fn spawn_server(
    acceptor: TcpAcceptor,
    app: impl Endpoint + 'static,
    limits: &ConnectionLimits,
) -> (
    tokio::task::JoinHandle<std::io::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
    OpenConnections,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let connections = ConnectionLoop::new(acceptor, limits.clone());
    let open = connections.open_connections();
    let task = tokio::spawn(connections.run(app, async {
        let _ = rx.await;
    }));
    (task, tx, open)
}

/// A socket bound and listening, nothing served yet.
///
/// `invites serve` binds before it opens, migrates or seeds the database, so a start that cannot
/// listen (the port is taken) changes nothing: the demo credentials of a server already running
/// there stay the ones it printed.
pub struct Listening {
    acceptor: TcpAcceptor,
    pub addr: SocketAddr,
}

/// Binds `listen` (port 0 picks any free port). The error says what to do when the address is
/// taken or not an address.
pub async fn listen(listen: &str) -> anyhow::Result<Listening> {
    bind(listen, "--listen").await
}

/// Binds the metrics listener's `listen`, as [`listen`] does (its error names `--metrics-listen`).
pub async fn listen_metrics(listen: &str) -> anyhow::Result<Listening> {
    bind(listen, "--metrics-listen").await
}

async fn bind(listen: &str, flag: &str) -> anyhow::Result<Listening> {
    let acceptor = match TcpListener::bind(listen.to_owned()).into_acceptor().await {
        Ok(a) => a,
        Err(e) => anyhow::bail!("{}", explain_bind_error(listen, flag, &e)),
    };
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener on {listen} has no socket address"))?;
    Ok(Listening { acceptor, addr })
}

/// One line for a failed bind: the address, the cause, and the fix.
fn explain_bind_error(listen: &str, flag: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {listen}: the address is already in use (another server runs there?); \
             stop it, or pick another address with {flag} (port 0 picks a free one)"
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {listen}: permission denied (ports below 1024 need privileges); \
             pick a port above 1024 with {flag}"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {listen}: no network interface of this machine has that address; \
             use 127.0.0.1 or 0.0.0.0 with {flag}"
        ),
        _ => format!("cannot listen on {listen}: {e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"),
    }
}

impl Listening {
    /// Starts answering on this socket at once, in a task: until [`Starting::serve`] hands the
    /// application over, requests get [`invites_api::starting_app`]'s answers (`/health` 200,
    /// `/ready` 503), rather than waiting unanswered while the database is opened and migrated
    /// (on PostgreSQL, possibly behind another replica's migration lock). Every connection is
    /// held to `limits` from the start.
    pub fn serve_starting(self, limits: &ConnectionLimits) -> Starting {
        let app: Arc<OnceLock<BoxEndpoint<'static>>> = Arc::default();
        let gate = Gate {
            app: Arc::clone(&app),
            starting: invites_api::starting_app().boxed(),
        };
        let (task, tx, connections) = spawn_server(self.acceptor, gate, limits);
        Starting {
            running: Running {
                addr: self.addr,
                task,
                shutdown: Some(tx),
                metrics: None,
                connections,
            },
            app,
        }
    }

    /// Serves the application over `store` on this socket, in a task.
    pub async fn serve(self, store: Store, config: &ServiceConfig) -> anyhow::Result<Running> {
        self.serve_starting(&config.connections)
            .serve(store, config)
            .await
    }
}

/// A socket answering "starting" (`/ready` 503) until the application is handed over; dropped,
/// it stops serving.
pub struct Starting {
    running: Running,
    app: Arc<OnceLock<BoxEndpoint<'static>>>,
}

impl Starting {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Builds the application over `store` (open and migrated) and answers with it from now on.
    pub async fn serve(self, store: Store, config: &ServiceConfig) -> anyhow::Result<Running> {
        self.serve_with_metrics(store, config, None).await
    }

    /// As [`Starting::serve`], and with `metrics` (a socket bound with [`listen`]) serves
    /// `GET /metrics` there ([`metrics_app`]): what the application and the store record.
    /// Without it nothing is recorded and no path answers metrics.
    pub async fn serve_with_metrics(
        mut self,
        store: Store,
        config: &ServiceConfig,
        metrics: Option<Listening>,
    ) -> anyhow::Result<Running> {
        let recorded = metrics
            .as_ref()
            .map(|_| Arc::new(Metrics::new(store.metrics())));
        let app = application_with_metrics(store.clone(), config, recorded.clone()).await?;
        if let (Some(listening), Some(recorded)) = (metrics, recorded) {
            let (task, tx, connections) = spawn_server(
                listening.acceptor,
                metrics_app(recorded, store),
                &config.connections,
            );
            self.running.metrics = Some(Box::new(Running {
                addr: listening.addr,
                task,
                shutdown: Some(tx),
                metrics: None,
                connections,
            }));
        }
        // Set once: a `Starting` is consumed here.
        let _ = self.app.set(app.map_to_response().boxed());
        Ok(self.running)
    }
}

/// The served endpoint: the application once it is set, the starting answers until then.
struct Gate {
    app: Arc<OnceLock<BoxEndpoint<'static>>>,
    starting: BoxEndpoint<'static>,
}

impl Endpoint for Gate {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match self.app.get() {
            Some(app) => app.call(req).await,
            None => self.starting.call(req).await,
        }
    }
}

/// Binds `listen` (use port 0 for any free port), then serves the application in a task.
pub async fn start(store: Store, listen: &str, config: &ServiceConfig) -> anyhow::Result<Running> {
    self::listen(listen).await?.serve(store, config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_is_explained_in_one_line() {
        let first = listen("127.0.0.1:0").await.unwrap();
        let taken = first.addr.to_string();
        let err = listen(&taken).await.err().unwrap().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot listen on {taken}: the address is already in use"
            )),
            "{err}"
        );
        assert!(err.contains("--listen") && !err.contains('\n'), "{err}");
        let err = listen_metrics(&taken).await.err().unwrap().to_string();
        assert!(err.contains("with --metrics-listen"), "{err}");
        let err = listen("nonsense").await.err().unwrap().to_string();
        assert!(err.contains("expected HOST:PORT"), "{err}");
    }
}
