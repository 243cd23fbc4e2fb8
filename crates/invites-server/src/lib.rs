//! The invitation service assembled: the [`invites_api::Backend`] implemented over the store,
//! credential generation, the demo data set, and the server loop with graceful shutdown.
//!
//! `invites serve`, the integration tests and the benchmarks all start the service through
//! [`start`], so what is tested is what runs.

pub mod backend;
pub mod cache;
pub mod credentials;
pub mod demo;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use invites_api::{AppConfig, AuthConfig, REALM};
use invites_digest::{Algorithm, Verifier};
use invites_store::Store;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;

pub use backend::StoreBackend;
use invites_api::guard::{FailedAuthLimiter, TrustedProxies};

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
    let secret = server_secret(&store).await?;
    let verifier = Arc::new(Verifier::new(
        REALM,
        &secret,
        config.nonce_lifetime.as_millis() as u64,
    ));
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
        },
    ))
}

/// A service listening on a socket, running until its shutdown signal fires.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// Asks the server to stop and waits until in-flight requests are done.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Binds `listen` (use port 0 for any free port) and serves the application in a task.
pub async fn start(store: Store, listen: &str, config: &ServiceConfig) -> anyhow::Result<Running> {
    let app = application(store, config).await?;
    let acceptor = TcpListener::bind(listen.to_owned()).into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener has no socket address"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = rx.await;
                },
                Some(Duration::from_secs(10)),
            )
            .await
    });
    Ok(Running {
        addr,
        task,
        shutdown: Some(tx),
    })
}
