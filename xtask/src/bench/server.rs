//! `cargo xtask bench server`: the service under load (release build, loopback) on tables of
//! 10k and 1M invitations, each scenario against a bare poem route, then the delete scenarios
//! again under the `bench-bounds` feature; writes `docs/benchmarks.md` (`report.rs`). With
//! `--database postgres`, `postgres.rs` runs the scenarios on PostgreSQL instead, with what it
//! shares with this file: the seeding through `invites admin` ([`prepare`]), the servers and
//! the measurement.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::report::{bench_report, latency_svg};
use super::scenario::Scenario;
use super::{
    free_port, keeping_sections, peak_rss_mib, wait_listening, wait_ready_of, Server, HOSTILE,
    MOCK, POSTGRES,
};
use crate::{root, run};

/// Which database `cargo xtask bench server` serves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Database {
    /// A file per table size, one server (the service's default engine).
    Sqlite,
    /// A throwaway cluster with production's durability, one server and two in alternate rounds.
    Postgres,
}

/// Invitations in the table for each run.
pub(super) const TABLE_SIZES: [u64; 2] = [10_000, 1_000_000];
/// Deletable invitations (cycled through; a trigger puts each deleted row back).
pub(super) const DELETE_POOL: u64 = 3_200;
/// Users removed in bulk: 32 connections x 10.
pub(super) const BULK_USERS: i64 = 320;
pub(super) const FIRST_BULK_USER: i64 = 100_000;

/// The rows the removals of (b), (c) and (d) take: deletable invitations (`dd...` ids, also
/// what (f) updates) and users with a pending invitation to the bulk group (from
/// [`FIRST_BULK_USER`]), and whether the load generator may come back to a row it removed
/// (`once: false`: a trigger has put it back).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pools {
    pub(super) delete: u64,
    pub(super) bulk_users: i64,
    pub(super) once: bool,
}

/// SQLite's run: small pools cycled through, each removed row put back by a trigger.
pub(super) const REPLENISHED: Pools = Pools {
    delete: DELETE_POOL,
    bulk_users: BULK_USERS,
    once: false,
};
pub(super) const LIST_SIZE: u64 = 1_000;
/// Pending invitations of the group whose list pages (i) and (j) read, on the largest table only.
const PAGED_PENDING: i64 = 1_000_000;
const FIRST_PAGED_USER: i64 = 10_000_000;

/// One measured scenario.
#[derive(Debug, Clone)]
pub(super) struct Figures {
    pub(super) scenario: Scenario,
    pub(super) rows: Option<u64>,
    /// The benchmark bound in force (see `bounds`), for the bound rows only.
    pub(super) bound: Option<&'static str>,
    pub(super) rps: f64,
    /// The lowest and highest req/s of the rounds (see [`ROUNDS`]); `rps` is their median.
    pub(super) rps_range: (f64, f64),
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) p999: f64,
    /// Requests answered in the round, warm-up included (`invites-bench load`'s `answered`).
    pub(super) answered: u64,
}

/// Rounds of every scenario: its figures are those of the round with the median req/s, so one
/// disturbed round (the kernel writing back, another process) does not decide a target.
pub(super) const ROUNDS: usize = 3;
/// Rounds of each side of (d) with and without the page counts: more than [`ROUNDS`], as a 10%
/// target is within the spread of three rounds on a 2-core machine (3.9% and 12.2% slower in two
/// runs of the same SQLite code, rounds spreading 13,287-16,390 req/s).
pub(super) const COUNT_ROUNDS: usize = 5;

/// [`load`] [`ROUNDS`] times: the median round's figures, with the spread of req/s.
pub(super) fn measure(
    scenario: Scenario,
    addr: &str,
    extra: &[String],
    seconds: u64,
) -> Result<Figures> {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        rounds.push(load(scenario, addr, extra, seconds)?);
    }
    Ok(median_round(rounds))
}

/// The round with the median req/s, with the lowest and highest of `rounds` (not empty) as its
/// range.
pub(super) fn median_round(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|x, y| x.rps.total_cmp(&y.rps));
    let range = (rounds[0].rps, rounds[rounds.len() - 1].rps);
    let mut median = rounds.swap_remove(rounds.len() / 2);
    median.rps_range = range;
    median
}

/// Flushes what earlier steps wrote, so their write-back does not land in the next measurement.
pub(super) fn settle() -> Result<()> {
    run(&mut Command::new("sync"))
}

pub(super) fn bench_bin() -> PathBuf {
    root().join("target/release/invites-bench")
}

pub(super) fn invites_bin() -> PathBuf {
    root().join("target/release/invites")
}

/// Runs `invites admin ... ` on `db` (a file or a URL) and returns its JSON.
fn admin(db: &OsStr, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(invites_bin())
        .args(["admin", "--database-url"])
        .arg(db)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "invites admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub(super) fn load(
    scenario: Scenario,
    addr: &str,
    extra: &[String],
    seconds: u64,
) -> Result<Figures> {
    let expect = scenario.success();
    let out = Command::new(bench_bin())
        .args(["load", "--scenario", scenario.load_name(), "--addr", addr])
        .args(["--duration-secs", &seconds.to_string()])
        .args(extra)
        .output()
        .context("running invites-bench")?;
    if !out.status.success() {
        bail!(
            "invites-bench load {}: {}",
            scenario.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let statuses = v["statuses"].as_object().cloned().unwrap_or_default();
    // A benchmark that measured errors measured nothing: every answer must be the success.
    let unexpected: Vec<String> = statuses
        .iter()
        .filter(|(s, _)| s.as_str() != expect.to_string())
        .map(|(s, n)| format!("{n} x {s}"))
        .collect();
    if !unexpected.is_empty() || v["errors"].as_u64().unwrap_or(0) > 0 {
        bail!(
            "{}: answers other than {expect}: {unexpected:?}, transport errors {}",
            scenario.name(),
            v["errors"]
        );
    }
    Ok(Figures {
        scenario,
        rows: None,
        bound: None,
        rps: v["rps"].as_f64().unwrap_or(0.0),
        rps_range: (0.0, 0.0),
        p50: v["p50_ms"].as_f64().unwrap_or(0.0),
        p99: v["p99_ms"].as_f64().unwrap_or(0.0),
        p999: v["p999_ms"].as_f64().unwrap_or(0.0),
        answered: v["answered"].as_u64().unwrap_or(0),
    })
}

/// The bulk data: deletable and listed invitations, background rows up to `rows`, community
/// users with pending invitations, and the triggers that put deleted benchmark rows back.
fn bench_sql(seed: &Seed, rows: u64) -> String {
    let (delete_org, list_org, group) = (&seed.delete_org, &seed.list_org, seed.group);
    let background = rows.saturating_sub(DELETE_POOL + LIST_SIZE);
    let orgs = background.div_ceil(1000);
    let t = 1_763_596_800_000_i64;
    let exp = t + 30 * 86_400_000;
    let cols = "id, org_id, project_id, username, inviter_username, roles, team_ids, group_role_assignments, status, created_at, expires_at";
    let paged = seed.paged.map_or(String::new(), |g| paged_sql(g, t));
    format!(
        "-- Generated by cargo xtask bench server.
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {DELETE_POOL})
INSERT INTO invitations ({cols})
SELECT printf('dd%022x', x), '{delete_org}', NULL, printf('del%d@bench.example', x), 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {LIST_SIZE})
INSERT INTO invitations ({cols})
SELECT printf('ee%022x', x), '{list_org}', NULL, printf('list%d@bench.example', x), 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {orgs})
INSERT INTO orgs (id, name, created_at) SELECT printf('cc%022x', x), printf('Background-%d', x), {t} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {background})
INSERT INTO invitations ({cols})
SELECT printf('ff%022x', x), printf('cc%022x', x / 1000), NULL, printf('bg%d@bench.example', x), 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {BULK_USERS})
INSERT INTO principals (id, kind, created_at) SELECT printf('bb%022x', x), 'user', {t} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {BULK_USERS})
INSERT INTO users (id, principal_id, username, real_name, created_at)
SELECT {FIRST_BULK_USER} + x, printf('bb%022x', x), printf('bulk%d@bench.example', x), '', {t} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {BULK_USERS})
INSERT INTO community_invitations (group_id, user_id, status, created_at)
SELECT {group}, {FIRST_BULK_USER} + x, 'PENDING', {t} FROM n;
{paged}-- Deleted benchmark rows come back, so the table keeps its size and ids can be reused. The
-- re-insert is work a real delete does not do: the figures are pessimistic by that much.
CREATE TRIGGER bench_replenish AFTER DELETE ON invitations WHEN OLD.org_id = '{delete_org}'
BEGIN
    INSERT INTO invitations ({cols}) VALUES (OLD.id, OLD.org_id, OLD.project_id, OLD.username,
        OLD.inviter_username, OLD.roles, OLD.team_ids, OLD.group_role_assignments, OLD.status,
        OLD.created_at, OLD.expires_at);
END;
CREATE TRIGGER bench_replenish_community AFTER DELETE ON community_invitations WHEN OLD.group_id = {group}
BEGIN
    INSERT INTO community_invitations (group_id, user_id, status, created_at)
    VALUES (OLD.group_id, OLD.user_id, OLD.status, OLD.created_at);
END;
"
    )
}

/// What [`prepare`] made: each scenario's load arguments.
pub(super) struct Prepared {
    /// The scenarios (b) to (g) with their `invites-bench load` arguments, in running order.
    pub(super) scenarios: Vec<(Scenario, Vec<String>)>,
    /// The service account's arguments (its client id and secret).
    pub(super) service_account: Vec<String>,
    /// The rows the scenarios use.
    pub(super) seed: Seed,
}

/// The rows the bulk SQL refers to.
pub(super) struct Seed {
    pub(super) delete_org: String,
    pub(super) list_org: String,
    pub(super) group: i64,
    /// The service account's principal, owner of the delete and list organizations.
    pub(super) sa_principal: String,
    /// The group whose pages (i) and (j) read, on the largest table only.
    pub(super) paged: Option<i64>,
}

/// The group of (i) and (j): [`PAGED_PENDING`] users, each with a pending invitation to `group`
/// (SQLite).
fn paged_sql(group: i64, t: i64) -> String {
    format!(
        "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {PAGED_PENDING})
INSERT INTO principals (id, kind, created_at) SELECT printf('pp%022x', x), 'user', {t} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {PAGED_PENDING})
INSERT INTO users (id, principal_id, username, real_name, created_at)
SELECT {FIRST_PAGED_USER} + x, printf('pp%022x', x), printf('paged%d@bench.example', x), '', {t} FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {PAGED_PENDING})
INSERT INTO community_invitations (group_id, user_id, status, created_at)
SELECT {group}, {FIRST_PAGED_USER} + x, 'PENDING', {t} FROM n;
"
    )
}

/// Seeds `db` (an SQLite file or a PostgreSQL URL) through `invites admin`: the organizations,
/// credentials, community group and manager of the scenarios, then the bulk rows of `sql` (the
/// engine's dialect) with `load-fixtures`; the script is kept in `dir` beside the database.
pub(super) fn prepare(
    dir: &Path,
    db: &OsStr,
    table: u64,
    pools: Pools,
    sql: impl Fn(&Seed) -> String,
) -> Result<Prepared> {
    let delete_org = admin(db, &["create-org", "--name", "Bench-Delete"])?["id"]
        .as_str()
        .context("org id")?
        .to_owned();
    let list_org = admin(db, &["create-org", "--name", "Bench-List"])?["id"]
        .as_str()
        .context("org id")?
        .to_owned();
    let key = admin(
        db,
        &[
            "create-api-key",
            "--org",
            &delete_org,
            "--org-role",
            "ORG_OWNER",
        ],
    )?;
    let sa = admin(
        db,
        &[
            "create-service-account",
            "--org",
            &delete_org,
            "--name",
            "bench",
            "--org-role",
            "ORG_OWNER",
        ],
    )?;
    let sa_principal = sa["principalId"].as_str().context("principal")?.to_owned();
    admin(
        db,
        &[
            "grant-org-role",
            "--org",
            &list_org,
            "--principal",
            &sa_principal,
            "--role",
            "ORG_OWNER",
        ],
    )?;
    let group = admin(db, &["create-community-group", "--name", "Bench Group"])?["id"]
        .as_i64()
        .context("group id")?;
    let manager = admin(db, &["create-user", "--username", "manager@bench.example"])?["id"]
        .as_i64()
        .context("user id")?;
    admin(
        db,
        &[
            "set-community-role",
            "--group",
            &group.to_string(),
            "--user-id",
            &manager.to_string(),
            "--role",
            "manager",
        ],
    )?;
    // The group whose pages (i) and (j) read: on the largest table only (it adds a million
    // users and invitations to the preparation).
    let paged = if table == TABLE_SIZES[TABLE_SIZES.len() - 1] {
        let paged = admin(db, &["create-community-group", "--name", "Bench Paged"])?["id"]
            .as_i64()
            .context("group id")?;
        admin(
            db,
            &[
                "set-community-role",
                "--group",
                &paged.to_string(),
                "--user-id",
                &manager.to_string(),
                "--role",
                "manager",
            ],
        )?;
        Some(paged)
    } else {
        None
    };
    let token = admin(db, &["create-token", "--user-id", &manager.to_string()])?["token"]
        .as_str()
        .context("token")?
        .to_owned();
    let seed = Seed {
        delete_org,
        list_org,
        group,
        sa_principal,
        paged,
    };
    let script = dir.join(format!("bench-{table}.sql"));
    std::fs::write(&script, sql(&seed))?;
    admin(db, &["load-fixtures", script.to_str().context("path")?])?;
    let ids = vec!["--delete-ids".to_owned(), pools.delete.to_string()];
    let once = if pools.once {
        vec!["--once".to_owned()]
    } else {
        Vec::new()
    };
    let org = vec!["--org".to_owned(), seed.delete_org.clone()];
    let sa_args = vec![
        "--client-id".to_owned(),
        sa["clientId"].as_str().context("client id")?.to_owned(),
        "--client-secret".to_owned(),
        sa["clientSecret"].as_str().context("secret")?.to_owned(),
    ];
    let mut scenarios: Vec<(Scenario, Vec<String>)> = vec![
        (
            Scenario::Digest,
            [
                ids.clone(),
                once.clone(),
                org.clone(),
                vec![
                    "--user".into(),
                    key["publicKey"].as_str().context("key")?.into(),
                    "--secret".into(),
                    key["privateKey"].as_str().context("key")?.into(),
                ],
            ]
            .concat(),
        ),
        (
            Scenario::Bearer,
            [ids.clone(), once.clone(), org.clone(), sa_args.clone()].concat(),
        ),
        (
            Scenario::Bulk,
            [
                vec![
                    "--token".into(),
                    token.clone(),
                    "--group".into(),
                    seed.group.to_string(),
                    "--first-user".into(),
                    FIRST_BULK_USER.to_string(),
                    "--bulk-users".into(),
                    pools.bulk_users.to_string(),
                ],
                once.clone(),
            ]
            .concat(),
        ),
        (
            Scenario::List,
            [
                vec!["--org".to_owned(), seed.list_org.clone()],
                sa_args.clone(),
            ]
            .concat(),
        ),
        // Beyond the five: the rest of the lifecycle. Creates come last, as they
        // grow the table (by what they create).
        (
            Scenario::Update,
            [ids.clone(), org.clone(), sa_args.clone()].concat(),
        ),
        (Scenario::Create, [org.clone(), sa_args.clone()].concat()),
    ];
    if let Some(paged) = seed.paged {
        for (scenario, offset) in Scenario::PAGES {
            let args = [
                "--token",
                &token,
                "--group",
                &paged.to_string(),
                "--offset",
                &offset.to_string(),
            ];
            scenarios.push((scenario, args.map(str::to_owned).to_vec()));
        }
    }
    Ok(Prepared {
        scenarios,
        service_account: sa_args,
        seed,
    })
}

/// Time from spawning the server to its first answered `/ready`.
pub(super) fn start_server(db: &OsStr, port: u16) -> Result<(Server, Duration)> {
    start_server_from(&invites_bin(), db, port, None)
}

/// [`start_server`] of the build `bin`, with `workers` worker threads (`--worker-threads`) if
/// given.
pub(super) fn start_server_from(
    bin: &Path,
    db: &OsStr,
    port: u16,
    workers: Option<usize>,
) -> Result<(Server, Duration)> {
    let mut command = Command::new(bin);
    if let Some(n) = workers {
        command.env("INVITES_WORKER_THREADS", n.to_string());
    }
    let logs = root().join("target/bench-logs");
    std::fs::create_dir_all(&logs)?;
    start_command(command, db, port, &logs.join(format!("invites-{port}.log")))
}

/// Starts `bin` serving `db`, with `INVITES_BENCH_BOUND` set to `bound` if given and its log
/// (warnings and worse) to the file `log`; returns once `/ready` answers.
fn start_server_with(
    bin: &Path,
    db: &OsStr,
    port: u16,
    bound: Option<&str>,
    log: &Path,
) -> Result<(Server, Duration)> {
    let mut command = Command::new(bin);
    if let Some(bound) = bound {
        command.env("INVITES_BENCH_BOUND", bound);
    }
    start_command(command, db, port, log)
}

/// Starts `command` (`invites` and its environment) serving `db` on `port` with the benchmark's
/// flags and its log (warnings and worse) to the file `log`; returns once `/ready` answers, or
/// fails with the end of the log if it exits first or does not answer within 30 s.
fn start_command(
    mut command: Command,
    db: &OsStr,
    port: u16,
    log: &Path,
) -> Result<(Server, Duration)> {
    let started = Instant::now();
    let child = command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
        ])
        .arg(db)
        .args([
            "--rate-limit-per-minute",
            "1000000000",
            "--failed-auth-per-address",
            "0",
            "--failed-auth-per-key",
            "0",
        ])
        .env("INVITES_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let mut server = Server(child);
    wait_ready_of(&mut server.0, log, port, Duration::from_secs(30))?;
    Ok((server, started.elapsed()))
}

/// `cargo xtask bench server`: every scenario `seconds` long (three rounds each) on `database`;
/// on PostgreSQL, only those whose letters are in `only` when it is given.
pub fn server(
    seconds: u64,
    database: Database,
    only: Option<&str>,
    baseline: Option<(&Path, usize)>,
) -> Result<()> {
    match database {
        Database::Sqlite if only.is_some() || baseline.is_some() => {
            bail!("--only and --baseline are for --database postgres (SQLite's run reports every scenario)")
        }
        Database::Sqlite => sqlite(seconds),
        Database::Postgres => super::postgres::postgres(seconds, only, baseline),
    }
}

/// Builds the release binaries the benchmark runs.
pub(super) fn build_release() -> Result<()> {
    println!("building release binaries (invites, invites-bench)");
    run(Command::new("cargo").args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "invites",
        "-p",
        "invites-bench",
    ]))
}

/// (a), the ceiling: the bare poem route under the same load; its figures and peak memory.
pub(super) fn ceiling(seconds: u64) -> Result<(Figures, f64)> {
    let port = free_port()?;
    let ceiling = Server(
        Command::new(bench_bin())
            .args(["ceiling", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_listening(port, Duration::from_secs(10))?;
    println!("{}", Scenario::Ceiling.title());
    let a = measure(
        Scenario::Ceiling,
        &format!("127.0.0.1:{port}"),
        &[],
        seconds,
    )?;
    let rss = peak_rss_mib(ceiling.0.id()).unwrap_or(f64::NAN);
    println!("    {:.0} req/s, p99 {:.2} ms", a.rps, a.p99);
    Ok((a, rss))
}

/// Writes each scenario's load arguments to `path`, so one scenario can be replayed by hand
/// (`invites serve` on the database or a copy, then `invites-bench load`).
pub(super) fn write_replay(path: &Path, scenarios: &[(Scenario, Vec<String>)]) -> Result<()> {
    // Keyed by letter and name ("d-bulk"): the pages share a name.
    let replay: serde_json::Map<String, serde_json::Value> = scenarios
        .iter()
        .map(|(scenario, extra)| {
            let key = format!("{}-{}", scenario.letter(), scenario.name());
            (key, serde_json::json!(extra))
        })
        .collect();
    std::fs::write(path, serde_json::to_string_pretty(&replay)?)?;
    Ok(())
}

fn sqlite(seconds: u64) -> Result<()> {
    let dir = root().join("target/bench/server");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    build_release()?;
    let mut rows = Vec::new();
    let (a, ceiling_rss) = ceiling(seconds)?;
    let mut server_rss = Vec::new();
    let mut cold_starts = Vec::new();
    // The smaller table's database and delete scenarios, measured again under the bounds.
    let mut bound_runs: Option<(PathBuf, Vec<DeleteScenario>)> = None;
    // The same database's (d) load, measured again without the page counts.
    let mut bulk_run: Option<(PathBuf, Vec<String>)> = None;
    for table in TABLE_SIZES {
        let db = dir.join(format!("bench-{table}.db"));
        println!("\n== {table} invitations: preparing {}", db.display());
        let prepared = Instant::now();
        let prepared_db = prepare(&dir, db.as_os_str(), table, REPLENISHED, |seed| {
            bench_sql(seed, table)
        })?;
        settle()?;
        println!("    prepared in {:.1} s", prepared.elapsed().as_secs_f64());
        let port = free_port()?;
        let (server, cold) = start_server(db.as_os_str(), port)?;
        println!("    cold start to first /ready: {} ms", cold.as_millis());
        cold_starts.push((table, cold));
        let addr = format!("127.0.0.1:{port}");
        let scenarios = prepared_db.scenarios;
        write_replay(
            &dir.join(format!("bench-{table}.scenarios.json")),
            &scenarios,
        )?;
        if bound_runs.is_none() {
            let deletes = scenarios
                .iter()
                .filter(|(scenario, _)| matches!(scenario, Scenario::Digest | Scenario::Bearer))
                .cloned()
                .collect();
            bound_runs = Some((db.clone(), deletes));
            bulk_run = scenarios
                .iter()
                .find(|(scenario, _)| *scenario == Scenario::Bulk)
                .map(|(_, extra)| (db.clone(), extra.clone()));
        }
        for (scenario, extra) in scenarios {
            println!("  {}", scenario.title());
            let mut f = measure(scenario, &addr, &extra, seconds)?;
            f.rows = Some(table);
            println!(
                "    {:.0} req/s ({:.0}% of the ceiling), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
                f.rps,
                100.0 * f.rps / a.rps.max(1.0),
                f.p50,
                f.p99,
                f.p999
            );
            rows.push(f);
        }
        server_rss.push((table, peak_rss_mib(server.0.id()).unwrap_or(f64::NAN)));
        drop(server);
        settle()?;
    }
    let bound_rows = match bound_runs {
        Some((db, deletes)) => bounds(&dir, db.as_os_str(), &deletes, &a, seconds)?,
        None => Vec::new(),
    };
    let page_counts = match bulk_run {
        Some((db, extra)) => Some(bulk_with_and_without_page_counts(
            &dir, &db, &extra, &a, seconds,
        )?),
        None => None,
    };
    let report = bench_report(
        &a,
        ceiling_rss,
        &rows,
        &bound_rows,
        page_counts.as_ref(),
        &server_rss,
        &cold_starts,
    );
    println!("\n{report}");
    let path = root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    // The other runs' sections stay as they are.
    let report = keeping_sections(report, &old, &[&MOCK, &HOSTILE, &POSTGRES]);
    std::fs::write(&path, &report)?;
    std::fs::write(
        root().join("docs/benchmarks-latency.svg"),
        latency_svg(&a, &rows),
    )?;
    println!("written: docs/benchmarks.md, docs/benchmarks-latency.svg");
    Ok(())
}

/// (d) with the page counts and without them, on `db` (the smaller table's, after every other
/// run on it): the served build, then the bench-bounds build under the `uncounted` bound (no page
/// counts kept: bulk removals as they were before list pages scaled, issue 18), a round each in
/// turn, [`COUNT_ROUNDS`] times, which side goes first alternating from round to round (else the
/// first of each pair always met the database and the machine as the other left them), each
/// server started afresh on the same file, so that both sides share the database's state and the
/// machine's moments. Migration 8's partial indexes are gone since
/// migration 10, so the counts are all that migration 8 adds to a removal. Returns (with, without),
/// each the median round with the rounds' range.
fn bulk_with_and_without_page_counts(
    dir: &Path,
    db: &Path,
    extra: &[String],
    a: &Figures,
    seconds: u64,
) -> Result<(Figures, Figures)> {
    println!(
        "\n== (d) with and without the page counts of migration 8, {} invitations, alternating",
        TABLE_SIZES[0]
    );
    let log = dir.join("bound-uncounted.log");
    let mut sides: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    for round in 0..COUNT_ROUNDS {
        let mut order = [(0, None), (1, Some("uncounted"))];
        if round % 2 == 1 {
            order.reverse();
        }
        for (side, bound) in order {
            settle()?;
            let port = free_port()?;
            let bin = match bound {
                None => invites_bin(),
                Some(_) => root().join("target/bench-bounds/release/invites"),
            };
            let (server, _) = start_server_with(&bin, db.as_os_str(), port, bound, &log)?;
            if bound.is_some()
                && !std::fs::read_to_string(&log)?.contains("benchmark bound in force")
            {
                bail!(
                    "the bench-bounds server did not report the bound uncounted: {}",
                    log.display()
                );
            }
            let f = load(Scenario::Bulk, &format!("127.0.0.1:{port}"), extra, seconds)?;
            drop(server);
            println!(
                "    round {} {}: {:.0} req/s ({:.0}% of the ceiling), p99 {:.2} ms",
                round + 1,
                if bound.is_some() { "without" } else { "with" },
                f.rps,
                100.0 * f.rps / a.rps.max(1.0),
                f.p99
            );
            sides[side].push(f);
        }
    }
    let [with, without] = sides.map(|rounds| Figures {
        rows: Some(TABLE_SIZES[0]),
        ..median_round(rounds)
    });
    Ok((with, without))
}

/// Benchmark bounds: what (b) and (c) would reach if a removal skipped part of its work,
/// measured with a separate build of the server that has the `bench-bounds` feature (in its own
/// target directory, so the served binary never has it; see invites-store's `bench_bound`).
fn bounds(
    dir: &Path,
    db: &OsStr,
    deletes: &[DeleteScenario],
    a: &Figures,
    seconds: u64,
) -> Result<Vec<Figures>> {
    println!(
        "\n== bounds of (b) and (c), {} invitations: building invites with the bench-bounds feature \
         (target/bench-bounds)",
        TABLE_SIZES[0]
    );
    run(Command::new("cargo").args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "invites",
        "--features",
        "bench-bounds",
        "--target-dir",
        "target/bench-bounds",
    ]))?;
    let bin = root().join("target/bench-bounds/release/invites");
    let mut rows = Vec::new();
    for bound in BOUNDS {
        let log = dir.join(format!("bound-{bound}.log"));
        let port = free_port()?;
        let (server, _) = start_server_with(&bin, db, port, Some(bound), &log)?;
        // Without the bound in force these rows would be the ordinary figures under another name.
        let said = std::fs::read_to_string(&log)?;
        if !said.contains("benchmark bound in force") {
            bail!(
                "the bench-bounds server did not report the bound {bound}: {}",
                log.display()
            );
        }
        for (scenario, extra) in deletes {
            println!("  ({}) bound {bound}", scenario.letter());
            let mut f = measure(*scenario, &format!("127.0.0.1:{port}"), extra, seconds)?;
            f.rows = Some(TABLE_SIZES[0]);
            f.bound = Some(bound);
            println!(
                "    {:.0} req/s ({:.0}% of the ceiling), p99 {:.2} ms",
                f.rps,
                100.0 * f.rps / a.rps.max(1.0),
                f.p99
            );
            rows.push(f);
        }
        drop(server);
    }
    Ok(rows)
}

/// A delete scenario's name and load arguments.
type DeleteScenario = (Scenario, Vec<String>);

/// The bounds measured, as `INVITES_BENCH_BOUND` names them.
pub(super) const BOUNDS: [&str; 2] = ["authorized", "queued"];
