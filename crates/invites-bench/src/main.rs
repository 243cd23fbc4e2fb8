//! `invites-bench`: the load generator of `cargo xtask bench server` and `hostile`, the hostile
//! clients of `hostile` (`attack.rs`), and the bare poem server that sets the ceiling.
//!
//! `load` keeps N HTTP/1.1 keep-alive connections busy for a fixed time, one request in flight
//! per connection, and prints one JSON line: requests/s, latency percentiles and the statuses
//! seen. It speaks the service's credentials itself: Digest (one challenge per connection, then
//! an increasing nonce count on that nonce, as curl does) and Bearer tokens. Given several
//! servers (replicas over one database), the connections take them in turn; given several
//! organizations, so do the writes.
//!
//! `drivers` compares sqlx's `Any` driver with its native PostgreSQL driver on the store's hot
//! paths (`invites_store::pool_bench`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use invites_digest::{ha1, response, Algorithm};

mod attack;

/// Load generator and ceiling server for `cargo xtask bench server`.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A bare poem server whose `DELETE /ceiling` answers 204: the most any route can do here.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Load a server and print the figures as one JSON line.
    Load(Box<LoadArgs>),
    /// Hostile clients (slowloris, idle keep-alives, unfinished bodies, header floods) until the
    /// time is up: a `{"ready": N}` line once all are under way, then one JSON line of counts.
    Attack(attack::AttackArgs),
    /// The store's PostgreSQL hot paths through sqlx's `Any` pool and its `PgPool`, on a fresh
    /// database; prints one JSON line per path and driver.
    Drivers {
        /// A PostgreSQL database that nothing else uses (it is migrated and filled).
        #[arg(long)]
        database_url: String,
        /// Operations per path, driver and round.
        #[arg(long, default_value_t = 2000)]
        operations: usize,
        /// Rounds, the drivers alternating.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `DELETE /ceiling` on the ceiling server.
    Ceiling,
    /// `deleteOrgInvite` with Digest.
    Digest,
    /// `deleteOrgInvite` with a service-account Bearer token.
    Bearer,
    /// Community bulk `DELETE` of 10 users per request.
    Bulk,
    /// `listOrgInvites` of an organization.
    List,
    /// `updateOrgInvite`: new roles for the deletable invitations, with a Bearer token.
    Update,
    /// `createOrgInvite` of a new username every time, with a Bearer token.
    Create,
    /// A community list page of 20 of a group's pending invitations, at `--offset`.
    Page,
}

#[derive(clap::Args)]
struct LoadArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// The server, `127.0.0.1:PORT`; several, comma-separated (replicas over one database), take
    /// the connections in turn: connection i talks to the (i mod n)-th.
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Requests before this many seconds are not measured.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// The organization (digest, bearer, list, update, create); several, comma-separated
    /// (create only), take the connections in turn: connection i writes to the (i mod n)-th.
    #[arg(long, default_value = "")]
    org: String,
    /// Deletable invitation ids are `dd` followed by 22 hex digits of 0..COUNT (each connection
    /// cycles through its own share).
    #[arg(long, default_value_t = 0)]
    delete_ids: u64,
    /// Digest credentials.
    #[arg(long, default_value = "")]
    user: String,
    #[arg(long, default_value = "")]
    secret: String,
    /// Bearer token (bearer, bulk, list, page).
    #[arg(long, default_value = "")]
    token: String,
    /// Service-account credentials: the token is fetched from `/api/oauth/token` first.
    #[arg(long, default_value = "")]
    client_id: String,
    #[arg(long, default_value = "")]
    client_secret: String,
    /// Community group (bulk, page).
    #[arg(long, default_value_t = 0)]
    group: i64,
    /// Where the page starts in the group's pending invitations (page).
    #[arg(long, default_value_t = 0)]
    offset: i64,
    /// First of the users removed in bulk: connection c removes users FIRST+10c .. FIRST+10c+9
    /// (with `--bulk-users`, the tens of its own share in turn).
    #[arg(long, default_value_t = 0)]
    first_user: i64,
    /// Users with a pending invitation to the group from `--first-user` on (bulk): each
    /// connection cycles through its own share of them, ten at a time; 0 (the default) is ten
    /// per connection.
    #[arg(long, default_value_t = 0)]
    bulk_users: i64,
    /// The deletable ids and bulk users are not put back (no re-insert trigger): a connection
    /// that has used its whole share stops the run with an error rather than ask for one again
    /// (which would answer 404).
    #[arg(long)]
    once: bool,
}

/// What request `i` of connection `index` removes: the index of a deletable id (of
/// `--delete-ids`) or of a ten of bulk users (of `--bulk-users` / 10), from the connection's own
/// share of `pool` items. `None` when `once` and the share is used up.
fn pool_item(pool: u64, connections: usize, index: usize, i: u64, once: bool) -> Option<u64> {
    let share = (pool / connections as u64).max(1);
    if once && i >= share {
        return None;
    }
    Some(index as u64 * share + i % share)
}

/// The id of deletable invitation `i`, as the bench fixtures create them.
pub fn delete_id(i: u64) -> String {
    format!("dd{i:022x}")
}

struct DigestState {
    ha1: String,
    nonce: String,
    opaque: String,
    algorithm: Algorithm,
    nc: u32,
}

fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    challenge
        .strip_prefix("Digest ")?
        .split(", ")
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| v.trim_matches('"').to_owned())
        })
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The (i mod n)-th of the comma-separated `list`.
fn nth(list: &str, i: usize) -> &str {
    let items: Vec<&str> = list.split(',').collect();
    items[i % items.len()]
}

async fn connect(addr: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    host: &str,
    method: Method,
    path: &str,
    auth: Option<String>,
    body: Option<String>,
) -> Result<(u16, Option<String>)> {
    sender.ready().await?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, host);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    let body = match body {
        Some(b) => {
            req = req.header(CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(b))
        }
        None => Full::new(Bytes::new()),
    };
    let resp = sender.send_request(req.body(body)?).await?;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    resp.into_body().collect().await?;
    Ok((status, challenge))
}

/// A fresh Digest nonce for this connection.
async fn handshake(
    sender: &mut Sender,
    args: &LoadArgs,
    host: &str,
    path: &str,
) -> Result<DigestState> {
    let (status, challenge) = send(sender, host, Method::GET, path, None, None).await?;
    let challenge = challenge.context("no WWW-Authenticate on the challenge")?;
    if status != 401 {
        bail!("expected a 401 challenge, got {status}");
    }
    let algorithm = Algorithm::parse(challenge_param(&challenge, "algorithm").as_deref())
        .context("unknown algorithm in the challenge")?;
    Ok(DigestState {
        ha1: ha1(algorithm, &args.user, "MMS Public API", &args.secret),
        nonce: challenge_param(&challenge, "nonce").context("no nonce")?,
        opaque: challenge_param(&challenge, "opaque").unwrap_or_default(),
        algorithm,
        nc: 0,
    })
}

fn digest_header(d: &mut DigestState, user: &str, method: &str, uri: &str) -> String {
    d.nc += 1;
    let nc = format!("{:08x}", d.nc);
    let resp = response(
        d.algorithm,
        &d.ha1,
        &d.nonce,
        &nc,
        "b3nch",
        "auth",
        method,
        uri,
    );
    format!(
        "Digest username=\"{user}\", realm=\"MMS Public API\", nonce=\"{}\", uri=\"{uri}\", \
         algorithm={}, response=\"{resp}\", opaque=\"{}\", qop=auth, nc={nc}, cnonce=\"b3nch\"",
        d.nonce,
        d.algorithm.as_str(),
        d.opaque
    )
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// Every request answered, warm-up included (for a cost per request).
    answered: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

async fn connection(args: &LoadArgs, index: usize, start: Instant) -> Result<Tally> {
    let addr = nth(&args.addr, index);
    let org = nth(&args.org, index);
    let mut sender = connect(addr).await?;
    let warmup = start + Duration::from_secs(args.warmup_secs);
    let end = warmup + Duration::from_secs(args.duration_secs);
    let tens = (args.bulk_users / 10).max(0) as u64;
    let (pool, unit) = match args.scenario {
        Scenario::Bulk => (tens, "ten bulk users"),
        _ => (args.delete_ids, "deletable ids"),
    };
    let mut digest = None;
    let list_path = format!("/api/atlas/v2/orgs/{org}/invites");
    if args.scenario == Scenario::Digest {
        digest = Some(handshake(&mut sender, args, addr, &list_path).await?);
    }
    let mut tally = Tally::default();
    // Created usernames must be new in every run, on the same database too.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut i: u64 = 0;
    while Instant::now() < end {
        let consumes = matches!(
            args.scenario,
            Scenario::Digest | Scenario::Bearer | Scenario::Bulk
        );
        let Some(item) = pool_item(pool, args.connections, index, i, args.once && consumes) else {
            bail!(
                "connection {index} used its whole share of {pool} {unit} after {i} requests: \
                 the pool is too small for this run (--once: deleted rows are not put back)"
            );
        };
        let victim = delete_id(item);
        let (method, path, body) = match args.scenario {
            Scenario::Ceiling => (Method::DELETE, "/ceiling".to_owned(), None),
            Scenario::Digest | Scenario::Bearer => (
                Method::DELETE,
                format!("/api/atlas/v2/orgs/{org}/invites/{victim}"),
                None,
            ),
            Scenario::Bulk => {
                let first = args.first_user + 10 * item as i64;
                let users: Vec<i64> = (first..first + 10).collect();
                (
                    Method::DELETE,
                    format!("/api/v2/group/{}/invite/", args.group),
                    Some(serde_json::json!({ "users": users }).to_string()),
                )
            }
            Scenario::List => (Method::GET, list_path.clone(), None),
            Scenario::Page => (
                Method::GET,
                format!(
                    "/api/v2/group/{}/invite/?limit=20&offset={}",
                    args.group, args.offset
                ),
                None,
            ),
            Scenario::Update => (
                Method::PATCH,
                format!("/api/atlas/v2/orgs/{org}/invites/{victim}"),
                Some(r#"{"roles":["ORG_MEMBER"]}"#.to_owned()),
            ),
            Scenario::Create => (
                Method::POST,
                list_path.clone(),
                Some(
                    serde_json::json!({
                        "username": format!("new-{run}-{index}-{i}@bench.example"),
                        "roles": ["ORG_MEMBER"],
                    })
                    .to_string(),
                ),
            ),
        };
        let auth = match (args.scenario, digest.as_mut()) {
            (Scenario::Digest, Some(d)) => {
                Some(digest_header(d, &args.user, method.as_str(), &path))
            }
            (Scenario::Ceiling, _) => None,
            _ => Some(format!("Bearer {}", args.token)),
        };
        let sent = Instant::now();
        match send(&mut sender, addr, method, &path, auth, body).await {
            Ok((status, challenge)) => {
                tally.answered += 1;
                if sent >= warmup {
                    tally
                        .latencies_us
                        .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    *tally.statuses.entry(status).or_default() += 1;
                }
                // An expired nonce: take the fresh one the server offers, as clients do.
                if status == 401 && challenge.is_some_and(|c| c.contains("stale=true")) {
                    digest = Some(handshake(&mut sender, args, addr, &list_path).await?);
                }
            }
            Err(_) => {
                tally.errors += 1;
                sender = connect(addr).await?;
            }
        }
        i += 1;
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The smallest sample with at least p% of the samples at or below it (a hair of slack so
    // 99.9% of 1000 is rank 999, not 1000 by rounding).
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Exchanges service-account credentials for a Bearer token (at one server: every replica over
/// the database accepts it).
async fn fetch_token(addr: &str, client_id: &str, client_secret: &str) -> Result<String> {
    use base64::Engine;
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut sender = connect(addr).await?;
    sender.ready().await?;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/oauth/token")
        .header(HOST, addr)
        .header(
            AUTHORIZATION,
            format!("Basic {}", encode(&format!("{client_id}:{client_secret}"))),
        )
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != 200 {
        bail!(
            "token request answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the token answer")
}

async fn load(mut args: LoadArgs) -> Result<()> {
    if args.token.is_empty() && !args.client_id.is_empty() {
        args.token = fetch_token(nth(&args.addr, 0), &args.client_id, &args.client_secret).await?;
    }
    let args = std::sync::Arc::new(args);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..args.connections {
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            connection(&args, index, start).await
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let tally = t.await??;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        all.answered += tally.answered;
        for (s, n) in tally.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
    }
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let out = serde_json::json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "requests": n,
        "answered": all.answered,
        "rps": n as f64 / args.duration_secs as f64,
        "p50_ms": percentile(&all.latencies_us, 50.0),
        "p99_ms": percentile(&all.latencies_us, 99.0),
        "p999_ms": percentile(&all.latencies_us, 99.9),
        "statuses": all.statuses,
        "errors": all.errors,
    });
    println!("{out}");
    Ok(())
}

async fn ceiling(listen: &str) -> Result<()> {
    use poem::listener::{Acceptor, Listener, TcpListener};
    use poem::{handler, http::StatusCode, Route};
    #[handler]
    fn no_content() -> StatusCode {
        StatusCode::NO_CONTENT
    }
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .context("no socket address")?;
    println!("ceiling listening on http://{addr}");
    poem::Server::new_with_acceptor(acceptor)
        .run(Route::new().at("/ceiling", poem::delete(no_content)))
        .await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Ceiling { listen } => ceiling(&listen).await,
        Command::Load(args) => load(*args).await,
        Command::Attack(args) => attack::attack(args).await,
        Command::Drivers {
            database_url,
            operations,
            rounds,
        } => {
            let figures =
                invites_store::pool_bench::compare(&database_url, operations, rounds).await?;
            for f in figures {
                println!("{}", serde_json::to_string(&f)?);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_the_sorted_sample() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 0.5);
        assert_eq!(percentile(&v, 99.0), 0.99);
        assert_eq!(percentile(&v, 99.9), 0.999);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn connections_take_the_listed_servers_in_turn() {
        let addrs = "127.0.0.1:1,127.0.0.1:2";
        let picked: Vec<&str> = (0..4).map(|i| nth(addrs, i)).collect();
        assert_eq!(
            picked,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
        assert_eq!(nth("127.0.0.1:1", 7), "127.0.0.1:1");
        assert_eq!(nth("", 3), "");
    }

    #[test]
    fn connections_cycle_through_shares_of_their_own() {
        // 3,200 ids over 32 connections: connection 2 takes 200..299 and comes back to 200.
        let items: Vec<u64> = [0, 1, 99, 100]
            .iter()
            .map(|&i| pool_item(3_200, 32, 2, i, false).unwrap())
            .collect();
        assert_eq!(items, [200, 201, 299, 200]);
        // No pool (bulk's default): each connection keeps its one item, its own ten users.
        assert_eq!(pool_item(0, 32, 5, 0, false), Some(5));
        assert_eq!(pool_item(0, 32, 5, 9, false), Some(5));
        // Shares never overlap, whatever the request.
        let mut seen = std::collections::HashSet::new();
        for index in 0..4 {
            for i in 0..25 {
                assert!(seen.insert(pool_item(100, 4, index, i, true).unwrap()));
            }
        }
        assert_eq!(seen.len(), 100);
    }

    #[test]
    fn once_stops_at_the_end_of_a_share_instead_of_reusing() {
        assert_eq!(pool_item(3_200, 32, 31, 99, true), Some(3_199));
        assert_eq!(pool_item(3_200, 32, 31, 100, true), None);
        assert_eq!(pool_item(3_200, 32, 31, 100, false), Some(3_100));
    }

    #[test]
    fn ids_are_24_hex() {
        assert_eq!(delete_id(255), "dd00000000000000000000ff");
        assert_eq!(delete_id(0).len(), 24);
    }
}
