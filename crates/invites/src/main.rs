//! `invites`: run the invitation service, administer its data, print its OpenAPI document.

mod admin;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use invites_digest::Algorithm;
use invites_server::ServiceConfig;
use invites_store::Store;

/// The invitation service: Atlas v2, Ops Manager v1.0 and community invitation APIs in one server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Create organizations, projects, users, roles, API keys, service accounts and tokens (prints JSON).
    Admin(admin::AdminArgs),
    /// Print the OpenAPI document generated from the code.
    Openapi,
    /// Serve a mock of any OpenAPI 3.0 document: validates requests, replays documented responses
    /// (pick one with `Prefer: code=404` or `Prefer: example=name`).
    Mock(MockArgs),
    /// Probe a running server's /health (exit 0 when it answers 200): the container health
    /// check, which needs no curl in the image.
    Healthcheck(HealthcheckArgs),
}

#[derive(clap::Args, Debug)]
struct HealthcheckArgs {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

#[derive(clap::Args, Debug)]
struct MockArgs {
    /// The OpenAPI 3.0 document (JSON) to serve.
    #[arg(long, default_value = "openapi/invites.json")]
    spec: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:4010")]
    listen: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DigestAlgorithm {
    Md5,
    Sha256,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "INVITES_LISTEN")]
    listen: String,
    /// Database: an SQLite file path or `sqlite://path` URL (created if missing), or a
    /// `postgres://user:password@host:port/db` URL for several replicas; migrated on start.
    #[arg(long, default_value = "invites.db", env = "INVITES_DATABASE_URL")]
    database_url: String,
    /// Seed demo data (or rotate its credentials) and print the demo credentials.
    #[arg(long)]
    demo: bool,
    /// Also write the demo credentials as JSON to this file.
    #[arg(long, requires = "demo")]
    demo_out: Option<PathBuf>,
    /// Digest algorithm offered in challenges.
    #[arg(long, value_enum, default_value = "md5")]
    digest_algorithm: DigestAlgorithm,
    /// Seconds a Digest nonce stays fresh.
    #[arg(long, default_value_t = 300)]
    nonce_lifetime_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = invites_api::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Requests per API key or service account per minute on the Atlas family (429 beyond).
    #[arg(long, default_value_t = invites_api::DEFAULT_RATE_LIMIT_PER_MINUTE)]
    rate_limit_per_minute: u64,
    /// A proxy (address or CIDR block) whose X-Forwarded-For names the client, for access lists,
    /// the audit log and failed-attempt limits (repeatable; none by default).
    #[arg(
        long = "trusted-proxy",
        env = "INVITES_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Failed authentication attempts allowed per client address per minute (0: no limit).
    #[arg(long, default_value_t = invites_api::auth::DEFAULT_FAILED_AUTH_PER_ADDRESS)]
    failed_auth_per_address: u32,
    /// Failed authentication attempts allowed per API key per minute (0: no limit).
    #[arg(long, default_value_t = invites_api::auth::DEFAULT_FAILED_AUTH_PER_KEY)]
    failed_auth_per_key: u32,
}

/// An address or CIDR block; a bare address is a one-address block.
fn parse_network(s: &str) -> anyhow::Result<ipnet::IpNet> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            anyhow::anyhow!("trusted proxy {s:?} is neither an IP address nor a CIDR block")
        })
}

/// `GET /health` over plain HTTP/1.1 with a deadline; Ok when the status is 200.
fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let addr = args
        .addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", args.addr))?
        .next()
        .with_context(|| format!("{} resolves to no address", args.addr))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.addr
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(
        status == "200",
        "/health answered {:?}",
        line.lines().next().unwrap_or("")
    );
    println!("healthy");
    Ok(())
}

/// A database URL fit for printing: its password, if any, masked.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INVITES_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a file or a collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Mock(args) => mock(args).await,
        Command::Healthcheck(args) => healthcheck(&args),
        Command::Openapi => {
            print!("{}", invites_api::spec_json());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Listen for SIGINT/SIGTERM before anything else, so a signal that arrives during start-up
    // still stops the server gracefully.
    let shutdown = ShutdownSignals::register().context("registering signal handlers")?;
    #[cfg(feature = "bench-bounds")]
    match invites_store::bench_bound::check().map_err(anyhow::Error::msg)? {
        Some(bound) => tracing::warn!(?bound, "benchmark bound in force: removals remove nothing"),
        None => tracing::warn!("built with bench-bounds, but no INVITES_BENCH_BOUND is set"),
    }
    let store = Store::open(&args.database_url)
        .await
        .with_context(|| format!("opening database {}", redact_password(&args.database_url)))?;
    let demo = if args.demo {
        Some(
            invites_server::demo::seed(&store)
                .await
                .context("seeding demo data")?,
        )
    } else {
        None
    };
    let config = ServiceConfig {
        nonce_lifetime: Duration::from_secs(args.nonce_lifetime_secs),
        challenge_algorithm: match args.digest_algorithm {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        },
        max_body_bytes: args.max_body_bytes,
        rate_limit_per_minute: args.rate_limit_per_minute,
        trusted_proxies: args
            .trusted_proxies
            .iter()
            .map(|s| parse_network(s))
            .collect::<anyhow::Result<_>>()?,
        failed_auth_per_address: args.failed_auth_per_address,
        failed_auth_per_key: args.failed_auth_per_key,
    };
    // Bind first: a start that cannot listen must change nothing in the database (a second
    // `serve --demo` on a taken port would otherwise rotate the running server's demo secrets).
    let listening = invites_server::listen(&args.listen).await?;
    let store = Store::open(&args.database_url).await?;
    let demo = if args.demo {
        Some(
            invites_server::demo::seed(&store)
                .await
                .context("seeding demo data")?,
        )
    } else {
        None
    };
    let running = listening.serve(store.clone(), &config).await?;
    let base = format!("http://{}", running.addr);
    println!(
        "invites listening on {base} (database {})",
        redact_password(&args.database_url)
    );
    println!("  OpenAPI document: {base}/openapi.json   docs: {base}/docs");
    if let Some(creds) = &demo {
        print_demo(&base, creds);
        if let Some(path) = &args.demo_out {
            std::fs::write(path, serde_json::to_string_pretty(creds)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("  demo credentials written to {}", path.display());
        }
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    shutdown.recv().await;
    tracing::info!("shutting down");
    running.stop().await?;
    store.close().await;
    Ok(())
}

async fn mock(args: MockArgs) -> anyhow::Result<()> {
    use poem::listener::{Acceptor, Listener};
    let shutdown = ShutdownSignals::register().context("registering signal handlers")?;
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading {}", args.spec.display()))?;
    let mock = invites_mock::Mock::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{} cannot be served: {e}", args.spec.display()))?;
    let operations = mock.operations().len();
    let acceptor = poem::listener::TcpListener::bind(args.listen.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied());
    println!(
        "mock of {} ({operations} operations) listening on http://{} (ready in {} ms)",
        args.spec.display(),
        addr.map(|a| a.to_string()).unwrap_or_default(),
        started.elapsed().as_millis()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(mock, shutdown.recv(), Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

fn print_demo(base: &str, c: &invites_server::demo::DemoCredentials) {
    println!("\nDemo data (org {}, project {}):", c.org_id, c.project_id);
    for k in &c.api_keys {
        println!(
            "  API key ({:<10}) public {}  private {}",
            k.role, k.public_key, k.private_key
        );
    }
    println!(
        "  service account  client_id {}  client_secret {}",
        c.service_account.client_id, c.service_account.client_secret
    );
    println!(
        "  community group {}, course {}",
        c.community_group_id, c.course_id
    );
    for u in &c.community_users {
        println!(
            "  community {:<8} user {} ({})  Bearer {}",
            u.role, u.user_id, u.username, u.token
        );
    }
    let owner = &c.api_keys[0];
    println!("\nTry:");
    println!(
        "  curl --digest --user {}:{} -H 'Accept: application/vnd.atlas.2023-01-01+json' '{base}/api/atlas/v2/orgs/{}/invites?pretty=true'",
        owner.public_key, owner.private_key, c.org_id
    );
    println!(
        "  curl --digest --user {}:{} -X DELETE '{base}/api/atlas/v2/groups/{}/invites/{}'",
        owner.public_key, owner.private_key, c.project_id, c.pending_project_invitation_id
    );
}

/// SIGINT and SIGTERM, registered at once (so a signal during start-up is not lost) and awaited later.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn printed_database_urls_hide_passwords() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/invites"),
            "postgres://app:***@db:5432/invites"
        );
        assert_eq!(
            redact_password("postgres://app@db/invites"),
            "postgres://app@db/invites"
        );
        assert_eq!(redact_password("invites.db"), "invites.db");
    }
}
