//! `invites`: run the invitation service (`serve`), administer its data (`admin`), serve a mock
//! of OpenAPI documents (`mock`), print the OpenAPI document (`openapi`), and check a running
//! server's health for a container (`healthcheck`).

mod admin;
mod logging;

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
    /// Serve a mock of OpenAPI 3.0/3.1 documents (JSON or YAML, one file or many): validates
    /// requests, answers documented responses (pick one with `Prefer: code=404`); or, with
    /// --proxy, forward to a real server and report what breaks the document.
    Mock(MockArgs),
    /// Probe a running server's /health, or with --ready its /ready (exit 0 when it answers
    /// 200): the container health check, which needs no curl in the image.
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
    /// Probe /ready (the database is migrated and answers: send it traffic) instead of /health
    /// (the process serves: do not restart it).
    #[arg(long)]
    ready: bool,
}

/// `invites mock`: a mock (or, with --proxy, a validating proxy) of OpenAPI documents.
#[derive(clap::Args, Debug)]
#[command(after_help = MOCK_HELP)]
struct MockArgs {
    /// An OpenAPI 3.0 or 3.1 document, JSON or YAML (decided by its content), possibly split over
    /// files joined by relative `$ref`s (give the root file). Repeatable: each document answers
    /// under the path of its first `servers` URL.
    #[arg(long = "spec", default_value = "openapi/invites.json")]
    specs: Vec<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:4010")]
    listen: String,
    /// CORS headers on every answer and preflight requests answered (`--cors false` turns it off).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cors: bool,
    /// Do not check request parameters and bodies (credentials are still checked).
    #[arg(long)]
    no_validate: bool,
    /// Answer with generated data instead of the documented examples (per request:
    /// `Prefer: dynamic=true`).
    #[arg(long)]
    dynamic: bool,
    /// Makes generated data repeatable: the same request gets the same data.
    #[arg(long)]
    seed: Option<u64>,
    /// Proxy mode: forward every request to this server (`http://host:port`) and report each
    /// request and answer that breaks the document (log, `X-Mock-Violation`, summary at exit).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// With --proxy: a violation answers 502 with a problem+json body (as Prism's --errors).
    #[arg(long, requires = "proxy")]
    errors: bool,
    /// Largest document file read, in bytes (each file of a document split over several).
    #[arg(long, default_value_t = invites_contract::load::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Most files a document may span through its `$ref`s, the root included.
    #[arg(long, default_value_t = invites_contract::load::DEFAULT_MAX_FILES)]
    max_files: usize,
    /// Most bytes YAML aliases (`*name`, merge keys included) may add to a file, each counted
    /// at the size of what it repeats: refuses "billion laughs" before they are built.
    #[arg(long, default_value_t = invites_contract::yaml::DEFAULT_MAX_ALIAS_BYTES)]
    max_alias_bytes: usize,
    /// A folder outside the document's own that its `$ref`s may read (repeatable). Symbolic
    /// links are resolved before the check, so a link inside that points out is refused too.
    #[arg(long = "allow-ref-outside", value_name = "DIR")]
    allow_ref_outside: Vec<PathBuf>,
    /// Fetch `$ref`s that name `http://` URLs (without it no request leaves the machine;
    /// `https://` is never fetched: no TLS client). Each remote file within
    /// --remote-ref-timeout and --max-file-bytes, no redirect followed, read at each load.
    #[arg(long)]
    allow_remote_refs: bool,
    /// Seconds one remote file may take, connecting and reading included.
    #[arg(long, value_name = "SECS", default_value_t = invites_contract::load::DEFAULT_REMOTE_TIMEOUT.as_secs())]
    remote_ref_timeout: u64,
}

/// The mock's headers and query parameters, shown by `invites mock --help`.
const MOCK_HELP: &str = "\
Request headers:
  Prefer: code=404          answer that documented status (else 404 problem+json)
  Prefer: example=name      answer that named example of the response
  Prefer: dynamic=true      answer generated data (dynamic=false: the example)
  ?__code=404&__example=name&__dynamic=true   the same, when no Prefer header is sent
Answer headers:
  X-Mock-Operation          the operationId that matched
  X-Mock-Violation          the rule a request (or, with --proxy, an answer) broke
Errors: an invalid request gets the operation's documented 422, else 400, else 4XX, else
default; missing credentials its 401; an unaccepted body type 415; an Accept nothing documented
satisfies 406; where none is documented, application/problem+json naming the rule.
The document is read again when one of its files changes (an invalid new version keeps the old
one serving).
Limits on documents, besides the flags above: 128 levels of nesting (JSON and YAML), 4,000,000
values per YAML file once aliases are expanded, $ref cycles refused, patterns compiled within
2 MiB (a larger one, or one with look-around, is noted at start-up and not enforced). $refs stay
in the document's folder (--allow-ref-outside) and off the network (--allow-remote-refs, http://
only). Each refusal is one line naming the file and the place in it.";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DigestAlgorithm {
    Md5,
    Sha256,
}

/// `invites serve`. Every flag also reads an `INVITES_...` variable (the flag wins), shown by
/// `--help`; `serve_help_names_an_environment_variable_for_every_flag` keeps it so.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Every option is also read from the environment variable shown as [env: ...]; \
                  an option given on the command line wins."
)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", env = "INVITES_LISTEN")]
    listen: String,
    /// Database: an SQLite file path or `sqlite://path` URL (created if missing), or a
    /// `postgres://user:password@host:port/db` URL for several replicas; migrated on start.
    // hide_env_values: `--help` must not print a password it finds in the environment.
    #[arg(
        long,
        default_value = "invites.db",
        env = "INVITES_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: String,
    /// PostgreSQL only: connections of each of this replica's two main pools (8 by default, at
    /// least 4; the Digest nonce counts' pool keeps its 2). Replicas sharing one server: give
    /// each its share of what the server should run at once, not each the whole (see the
    /// README's "Several replicas").
    #[arg(
        long,
        value_name = "N",
        env = "INVITES_DATABASE_CONNECTIONS",
        value_parser = clap::value_parser!(u32).range(i64::from(invites_store::MIN_POSTGRES_CONNECTIONS)..)
    )]
    database_connections: Option<u32>,
    /// Seed demo data (or rotate its credentials) and print the demo credentials (from the
    /// environment: `true` or `false`).
    #[arg(long, env = "INVITES_DEMO")]
    demo: bool,
    /// Also write the demo credentials as JSON to this file.
    #[arg(long, requires = "demo", env = "INVITES_DEMO_OUT")]
    demo_out: Option<PathBuf>,
    /// Digest algorithm offered in challenges.
    #[arg(
        long,
        value_enum,
        default_value = "md5",
        env = "INVITES_DIGEST_ALGORITHM"
    )]
    digest_algorithm: DigestAlgorithm,
    /// Seconds a Digest nonce stays fresh.
    #[arg(long, default_value_t = 300, env = "INVITES_NONCE_LIFETIME_SECS")]
    nonce_lifetime_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(
        long,
        default_value_t = invites_api::DEFAULT_MAX_BODY_BYTES,
        env = "INVITES_MAX_BODY_BYTES"
    )]
    max_body_bytes: usize,
    /// Requests per API key or service account per minute on the Atlas family (429 beyond).
    #[arg(
        long,
        default_value_t = invites_api::DEFAULT_RATE_LIMIT_PER_MINUTE,
        env = "INVITES_RATE_LIMIT_PER_MINUTE"
    )]
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
    #[arg(
        long,
        default_value_t = invites_api::auth::DEFAULT_FAILED_AUTH_PER_ADDRESS,
        env = "INVITES_FAILED_AUTH_PER_ADDRESS"
    )]
    failed_auth_per_address: u32,
    /// Failed authentication attempts allowed per API key per minute (0: no limit).
    #[arg(
        long,
        default_value_t = invites_api::auth::DEFAULT_FAILED_AUTH_PER_KEY,
        env = "INVITES_FAILED_AUTH_PER_KEY"
    )]
    failed_auth_per_key: u32,
    /// Seconds a client may take to send a request head; also how long a keep-alive connection
    /// may wait idle for its next request. Past it the connection is closed.
    #[arg(
        long,
        default_value_t = invites_server::connections::DEFAULT_HEADER_TIMEOUT.as_secs_f64(),
        env = "INVITES_HEADER_TIMEOUT_SECS"
    )]
    header_timeout_secs: f64,
    /// Seconds a client may take to send a request body after its head (408 and the connection
    /// closed beyond).
    #[arg(
        long,
        default_value_t = invites_server::connections::DEFAULT_BODY_TIMEOUT.as_secs_f64(),
        env = "INVITES_BODY_TIMEOUT_SECS"
    )]
    body_timeout_secs: f64,
    /// Connections open at once; at the limit new ones wait in the listen backlog. Keep it
    /// below the open-file limit (`ulimit -n`).
    #[arg(
        long,
        default_value_t = invites_server::connections::DEFAULT_MAX_CONNECTIONS,
        env = "INVITES_MAX_CONNECTIONS"
    )]
    max_connections: usize,
    /// Header fields allowed in a request (431 beyond).
    #[arg(
        long,
        default_value_t = invites_server::connections::DEFAULT_MAX_HEADERS,
        env = "INVITES_MAX_HEADERS"
    )]
    max_headers: usize,
    /// Bytes allowed in a request head, request line included (431 beyond).
    #[arg(
        long,
        default_value_t = invites_server::connections::DEFAULT_MAX_HEADER_BYTES,
        env = "INVITES_MAX_HEADER_BYTES"
    )]
    max_header_bytes: usize,
    /// Serve Prometheus metrics at `GET /metrics` on this address (HOST:PORT), a listener of its
    /// own, apart from the API's; none by default (and then requests are not counted).
    #[arg(long, value_name = "ADDR", env = "INVITES_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Log lines on stderr: `text` for a person, `json` (one object per line: timestamp, level,
    /// request id, method, path template, status, latency, principal kind) for a collector.
    #[arg(long, value_enum, default_value = "text", env = "INVITES_LOG_FORMAT")]
    log_format: logging::LogFormat,
    /// Threads that run requests (default: the cores this process may use, cgroup quotas
    /// included; 1 runs everything on one thread, tokio's current-thread scheduler). Replicas
    /// sharing one host's cores: give each its share, so that they do not contend for the same
    /// cores with more threads than there are (see the README's "Several replicas").
    #[arg(
        long,
        value_name = "N",
        env = "INVITES_WORKER_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    worker_threads: Option<u16>,
}

/// How `serve` opens its database: `--database-connections` applies to PostgreSQL alone, and
/// is refused for SQLite rather than ignored.
fn open_options(args: &ServeArgs) -> anyhow::Result<invites_store::OpenOptions> {
    let mut options = invites_store::OpenOptions::default();
    if let Some(n) = args.database_connections {
        if invites_store::Backend::of_url(&args.database_url) != invites_store::Backend::Postgres {
            anyhow::bail!(
                "--database-connections (INVITES_DATABASE_CONNECTIONS) sizes PostgreSQL's pools; \
                 {} is an SQLite database, whose pools are fixed: leave it out",
                args.database_url
            );
        }
        options.postgres_connections = n;
    }
    Ok(options)
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

/// `GET /health` (or `/ready`) over plain HTTP/1.1 with a deadline; Ok when the status is 200.
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
    let path = if args.ready { "/ready" } else { "/health" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.addr
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(
        status == "200",
        "{path} answered {:?}",
        line.lines().next().unwrap_or("")
    );
    println!("{}", if args.ready { "ready" } else { "healthy" });
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => logging::LogFormat::Text,
    });
    let workers = match &cli.command {
        Command::Serve(ServeArgs { worker_threads, .. }) => *worker_threads,
        _ => None,
    };
    // One worker thread: tokio's current-thread scheduler, everything on the thread that starts
    // it. Two replicas of one thread each served 8-14% more of (c) and 21% more of (b) on it
    // than on the multi-thread scheduler with one worker (docs/benchmarks.md, "Worker threads").
    let mut runtime = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all();
    if let Some(n) = workers.filter(|&n| n > 1) {
        runtime.worker_threads(usize::from(n));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
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
        Some(bound) => tracing::warn!(?bound, "benchmark bound in force: {}", bound.effect()),
        None => tracing::warn!("built with bench-bounds, but no INVITES_BENCH_BOUND is set"),
    }
    // Flags first, then the socket: a start that fails on either changes nothing.
    let open_options = open_options(&args)?;
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
        connections: invites_server::ConnectionLimits {
            header_timeout: seconds(args.header_timeout_secs, "--header-timeout-secs")?,
            body_timeout: seconds(args.body_timeout_secs, "--body-timeout-secs")?,
            max_connections: args.max_connections.max(1),
            max_headers: args.max_headers,
            max_header_bytes: args.max_header_bytes,
        },
    };
    // Bind first: a start that cannot listen must change nothing in the database (a second
    // `serve --demo` on a taken port would otherwise rotate the running server's demo secrets).
    let listening = invites_server::listen(&args.listen).await?;
    let metrics = match &args.metrics_listen {
        Some(addr) => Some(invites_server::listen_metrics(addr).await?),
        None => None,
    };
    // Answer at once: /health 200, /ready 503 until the database is open, migrated (and the demo
    // seeded), so probes see a starting server rather than a silent socket.
    let starting = listening.serve_starting(&config.connections);
    let store = Store::open_with(&args.database_url, open_options).await?;
    let demo = if args.demo {
        Some(
            invites_server::demo::seed(&store)
                .await
                .context("seeding demo data")?,
        )
    } else {
        None
    };
    let running = starting
        .serve_with_metrics(store.clone(), &config, metrics)
        .await?;
    let base = format!("http://{}", running.addr);
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "invites listening on {base} (database {}, {workers} worker thread{})",
        redact_password(&args.database_url),
        if workers == 1 { "" } else { "s" }
    );
    if let Some(addr) = running.metrics_addr() {
        println!("  metrics: http://{addr}/metrics");
    }
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
    let options = invites_contract::LoadOptions {
        max_file_bytes: args.max_file_bytes,
        max_files: args.max_files,
        allow_outside: args.allow_ref_outside.clone(),
        yaml: invites_contract::yaml::Limits {
            max_alias_bytes: args.max_alias_bytes,
            ..Default::default()
        },
        allow_remote_refs: args.allow_remote_refs,
        remote_timeout: Duration::from_secs(args.remote_ref_timeout),
    };
    let mut specs = Vec::new();
    for path in &args.specs {
        let served = invites_mock::Served::load(path, &options)
            .map_err(|e| anyhow::anyhow!("{} cannot be served: {e}", path.display()))?;
        specs.push(served);
    }
    if let Some(url) = &args.proxy {
        anyhow::ensure!(
            url.starts_with("http://"),
            "--proxy {url:?}: give an http:// URL (the proxy does not speak TLS)"
        );
    }
    let mock = std::sync::Arc::new(invites_mock::Mock::new(
        specs,
        invites_mock::MockConfig {
            cors: args.cors,
            validate: !args.no_validate,
            dynamic: args.dynamic,
            seed: args.seed,
            proxy: args
                .proxy
                .clone()
                .map(|upstream| invites_mock::ProxyConfig {
                    upstream,
                    errors: args.errors,
                }),
        },
    ));
    let acceptor = poem::listener::TcpListener::bind(args.listen.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let ready = started.elapsed().as_millis();
    for s in mock.specs() {
        let c = s.contract();
        let base = if c.base_path().is_empty() {
            "/"
        } else {
            c.base_path()
        };
        println!(
            "{} {} ({} operations{}) at http://{addr}{base}",
            if args.proxy.is_some() {
                "proxy for"
            } else {
                "mock of"
            },
            s.name,
            c.operations().len(),
            if c.title().is_empty() {
                String::new()
            } else {
                format!(", {}", c.title())
            },
        );
        for w in c.warnings() {
            println!("  note: {w}");
        }
    }
    match &args.proxy {
        Some(url) => {
            println!("forwarding to {url}; listening on http://{addr} (ready in {ready} ms)")
        }
        None => println!("listening on http://{addr} (ready in {ready} ms)"),
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    // The documents are read again when a file changes.
    let watched = std::sync::Arc::clone(&mock);
    let watcher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let m = std::sync::Arc::clone(&watched);
            let _ = tokio::task::spawn_blocking(move || m.reload_changed()).await;
        }
    });
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            mock.endpoint(),
            shutdown.recv(),
            Some(Duration::from_secs(5)),
        )
        .await?;
    watcher.abort();
    if let Some(summary) = mock.summary() {
        eprint!("{summary}");
    } else if args.proxy.is_some() {
        eprintln!("no contract violations seen");
    }
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
    println!(
        "  pending invitations of invitee@demo.example: org {}, project {}",
        c.pending_org_invitation_id, c.pending_project_invitation_id
    );
    let invited: Vec<String> = c.invited_user_ids.iter().map(i64::to_string).collect();
    println!(
        "  users with a pending invitation to group {} and course {}: {}",
        c.community_group_id,
        c.course_id,
        invited.join(", ")
    );
    println!("\nTry (each start makes again what these remove):");
    for line in demo_examples(base, c) {
        println!("  {line}");
    }
}

/// A positive number of seconds, as a duration.
fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("{flag} must be a positive number of seconds, not {value}"))
}

/// The example commands `serve --demo` prints, over the demo's own ids and secrets.
fn demo_examples(base: &str, c: &invites_server::demo::DemoCredentials) -> Vec<String> {
    let owner = &c.api_keys[0];
    let digest = format!("--digest --user {}:{}", owner.public_key, owner.private_key);
    let manager = c
        .community_users
        .iter()
        .find(|u| u.role == "manager")
        .map(|u| u.token.as_str())
        .unwrap_or_default();
    let users: Vec<String> = c
        .invited_user_ids
        .iter()
        .take(2)
        .map(|id| format!("users={id}"))
        .collect();
    vec![
        format!(
            "curl {digest} -H 'Accept: application/vnd.atlas.2023-01-01+json' '{base}/api/atlas/v2/orgs/{}/invites?pretty=true'",
            c.org_id
        ),
        format!(
            "curl {digest} -X DELETE '{base}/api/atlas/v2/groups/{}/invites/{}'",
            c.project_id, c.pending_project_invitation_id
        ),
        format!(
            "curl {digest} '{base}/api/public/v1.0/groups/{}/invites?pretty=true'",
            c.project_id
        ),
        format!(
            "curl -u {}:{} -d grant_type=client_credentials '{base}/api/oauth/token'",
            c.service_account.client_id, c.service_account.client_secret
        ),
        format!(
            "curl -H 'Authorization: Bearer {manager}' '{base}/api/v2/group/{}/invite/'",
            c.community_group_id
        ),
        format!(
            "curl -X DELETE -H 'Authorization: Bearer {manager}' -d '{}' '{base}/api/v2/group/{}/invite/'",
            users.join("&"),
            c.community_group_id
        ),
    ]
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
