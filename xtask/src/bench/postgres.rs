//! `cargo xtask bench server --database postgres`: the scenarios of `server.rs` on a throwaway
//! PostgreSQL cluster (`crate::postgres`) with production's durability (fsync and synchronous
//! commits on), 10,000 invitations and pools of deletable rows refilled between rounds, served by
//! one `invites serve` and by two over the same database in alternate rounds (with two, the load
//! generator's connections alternating between them); (h) beside (g) for the
//! lock on a scope's version row; then sqlx's `Any` driver against `PgPool` on the store's hot
//! paths (`invites-bench drivers`). Writes its own section of `docs/benchmarks.md`
//! (`report::postgres_section`), leaving the rest of the file as it is.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::cpu::Cost;
use super::report::{paired_ratio, postgres_section, PostgresRow, PostgresRun, StatementTime};
use super::scenario::Scenario;
use super::server::{
    bench_bin, build_release, ceiling, invites_bin, load, median_round, prepare, settle,
    start_server_from, write_replay, Pools, Seed, DELETE_POOL, FIRST_BULK_USER, LIST_SIZE,
};
use super::{free_port, with_section, POSTGRES};
use crate::postgres::{start_with, Durability};
use crate::root;

/// Invitations in the table (the 1M table is SQLite's run only: see the report).
pub(super) const TABLE: u64 = 10_000;
/// Organizations of (h), one per connection of the load generator.
pub(super) const SPREAD_ORGS: usize = 32;
/// The configurations measured in alternate rounds: one server, and two over the same database.
pub(super) const REPLICAS: [usize; 2] = [1, 2];

/// The cores this process may use, as the server counts them for its default worker threads.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker threads of each of `replicas` replicas: the server's default (one per core) for
/// one, an equal share of the cores, at least one, for several.
pub(super) fn replica_workers(replicas: usize) -> Option<usize> {
    (replicas > 1).then(|| (cores() / replicas).max(1))
}

/// The id of (h)'s organization `i`.
fn spread_org(i: usize) -> String {
    format!("ab{i:022x}")
}

/// What a configuration's rounds of a scenario measured: the rounds, and over them the seconds,
/// log flushes and statement time (what runs between rounds left out).
#[derive(Default)]
struct Measured {
    rounds: Vec<super::server::Figures>,
    /// CPU time of the rounds (warm-ups included) and their requests.
    cost: Cost,
    seconds: f64,
    syncs: u64,
    statements: StatementTime,
}

/// Removals per second per connection the pools are sized for: about 32,000 removals ((b),
/// (c)) and 16,000 bulk removals ((d)) a second over the 32 connections, about twice the most
/// measured here, as connections are served unevenly: sized for half that, a round of (d) used
/// up a connection's share at about 8,000 req/s (AMD EPYC, 2 cores). A faster machine stops the
/// run with `invites-bench`'s "pool is too small" rather than measure 404s.
const REMOVALS_PER_CONNECTION_S: u64 = 1000;
const BULK_PER_CONNECTION_S: u64 = 500;
/// Connections of the load generator (its default).
const CONNECTIONS: u64 = 32;

/// The pools of a run of `seconds` per round: no trigger puts removed rows back (on PostgreSQL
/// the re-insert cost more than the removal itself: its INSERT, foreign-key checks and count
/// trigger), so each connection needs a row for every request of a round (the warm-up second
/// included); [`refill_sql`] puts them back between rounds.
pub(super) fn pools(seconds: u64) -> Pools {
    let per_round = seconds + 1;
    Pools {
        delete: CONNECTIONS * REMOVALS_PER_CONNECTION_S * per_round,
        bulk_users: (CONNECTIONS * 10 * BULK_PER_CONNECTION_S * per_round) as i64,
        once: true,
    }
}

/// `'prefix' || 22 hex digits of x`, as the seed writes ids.
fn hex(prefix: &str, x: &str) -> String {
    format!("'{prefix}' || lpad(to_hex({x}), 22, '0')")
}

const INVITATION_COLUMNS: &str = "id, org_id, project_id, username, inviter_username, roles, team_ids, group_role_assignments, status, created_at, expires_at";
/// When the seeded rows were created, and when they expire.
const SEEDED_AT: i64 = 1_763_596_800_000;
const SEEDED_EXPIRY: i64 = SEEDED_AT + 30 * 86_400_000;

/// The deletable invitations and the bulk group's pending invitations, those missing put back
/// (`ON CONFLICT DO NOTHING`: the ones still there stay as they are). Through the store's own
/// triggers, so the scope versions and page counts stay right.
fn pool_rows_sql(seed: &Seed, pools: Pools) -> String {
    let Seed {
        delete_org, group, ..
    } = seed;
    let (cols, t, exp) = (INVITATION_COLUMNS, SEEDED_AT, SEEDED_EXPIRY);
    let dd = hex("dd", "x");
    let (last_delete, last_user) = (pools.delete - 1, pools.bulk_users - 1);
    format!(
        "INSERT INTO invitations ({cols})
SELECT {dd}, '{delete_org}', NULL, 'del' || x || '@bench.example', 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp}
FROM generate_series(0, {last_delete}) AS x ON CONFLICT DO NOTHING;
INSERT INTO community_invitations (group_id, user_id, status, created_at)
SELECT {group}, {FIRST_BULK_USER} + x, 'PENDING', {t} FROM generate_series(0, {last_user}) AS x
ON CONFLICT DO NOTHING;
"
    )
}

/// Rounds of each PostgreSQL scenario (SQLite's run has three): rounds of a few seconds on a
/// machine whose speed moves from minute to minute, so the median of five.
pub(super) const POSTGRES_ROUNDS: usize = 5;

/// The role the refill runs as, so that `pg_stat_statements` tells its statements from the
/// servers' (who connect as `postgres`).
const REFILL_ROLE: &str = "bench_refill";

/// Before each round of a scenario that removes or updates the pools' rows: the removed rows
/// back, then the dead ones vacuumed away (a round starts from the same table each time, not
/// from one bloated by the rounds before or vacuumed by autovacuum in the middle of a round).
pub(super) fn refill_sql(seed: &Seed, pools: Pools) -> Vec<String> {
    vec![
        format!("SET ROLE {REFILL_ROLE}"),
        pool_rows_sql(seed, pools),
        "VACUUM (ANALYZE) invitations, community_invitations, community_pending_totals, \
         community_pending_chunks, invitation_versions"
            .to_owned(),
        "CHECKPOINT".to_owned(),
    ]
}

/// The bulk rows in PostgreSQL's dialect: what `server::bench_sql` writes for SQLite (deletable,
/// listed and background invitations, community users with pending invitations) without its
/// re-insert triggers (see [`pools`]), and (h)'s organizations with the service account as
/// owner.
fn postgres_sql(seed: &Seed, pools: Pools) -> String {
    // The pages of (i) and (j) run on SQLite's largest table only: no paged group here.
    let Seed {
        list_org,
        sa_principal,
        ..
    } = seed;
    let background = TABLE.saturating_sub(DELETE_POOL + LIST_SIZE);
    let orgs = background.div_ceil(1000);
    let (cols, t, exp) = (INVITATION_COLUMNS, SEEDED_AT, SEEDED_EXPIRY);
    let (ee, cc, ff, bb, ab) = (
        hex("ee", "x"),
        hex("cc", "x"),
        hex("ff", "x"),
        hex("bb", "x"),
        hex("ab", "x"),
    );
    let cc_of = hex("cc", "x / 1000");
    let last_list = LIST_SIZE - 1;
    let last_spread = SPREAD_ORGS - 1;
    let last_user = pools.bulk_users - 1;
    let pool_rows = pool_rows_sql(seed, pools);
    format!(
        "-- Generated by cargo xtask bench server --database postgres.
INSERT INTO invitations ({cols})
SELECT {ee}, '{list_org}', NULL, 'list' || x || '@bench.example', 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp}
FROM generate_series(0, {last_list}) AS x;
INSERT INTO orgs (id, name, created_at) SELECT {cc}, 'Background-' || x, {t} FROM generate_series(0, {orgs} - 1) AS x;
INSERT INTO invitations ({cols})
SELECT {ff}, {cc_of}, NULL, 'bg' || x || '@bench.example', 'bench', '[\"ORG_MEMBER\"]', '[]', '[]', 'PENDING', {t}, {exp}
FROM generate_series(0, {background} - 1) AS x;
INSERT INTO principals (id, kind, created_at) SELECT {bb}, 'user', {t} FROM generate_series(0, {last_user}) AS x;
INSERT INTO users (id, principal_id, username, real_name, created_at)
SELECT {FIRST_BULK_USER} + x, {bb}, 'bulk' || x || '@bench.example', '', {t} FROM generate_series(0, {last_user}) AS x;
{pool_rows}INSERT INTO orgs (id, name, created_at) SELECT {ab}, 'Spread-' || x, {t} FROM generate_series(0, {last_spread}) AS x;
INSERT INTO org_roles (org_id, principal_id, role)
SELECT {ab}, '{sa_principal}', 'ORG_OWNER' FROM generate_series(0, {last_spread}) AS x;
"
    )
}

/// The machine's CPU time so far, in ticks: (all, stolen by the hypervisor), from the `cpu` line
/// of /proc/stat (user nice system idle iowait irq softirq steal ...); (0, 0) where there is none.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
    let all = fields.iter().take(8).sum();
    (all, fields.get(7).copied().unwrap_or(0))
}

/// The percentage of the CPU time between two [`cpu_ticks`] that the hypervisor gave to other
/// machines: time this run's processes waited for a core they could not see was busy. A virtual
/// machine's speed moves with it (nearly 30% stolen during one run of this benchmark, 0-1%
/// during others).
fn stolen_percent(from: (u64, u64), to: (u64, u64)) -> f64 {
    let all = to.0.saturating_sub(from.0);
    if all == 0 {
        return 0.0;
    }
    100.0 * to.1.saturating_sub(from.1) as f64 / all as f64
}

/// The load average (1, 5 and 15 minutes), as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// How many times the cluster has synced its write-ahead log (`pg_stat_wal.wal_sync`: each a
/// flush that commits waited for, one or several at a time).
fn wal_syncs(cluster: &crate::postgres::Cluster) -> Result<u64> {
    let n = cluster.query("SELECT wal_sync FROM pg_stat_wal")?;
    n.parse()
        .with_context(|| format!("pg_stat_wal.wal_sync: {n:?}"))
}

/// PostgreSQL's statement time in the bench database since `pg_stat_statements` was last reset:
/// the statements of the limits shared by replicas (those on `limit_counts`: the batched add, the
/// read of changes, the purge of past windows) and all of them. Top-level statements only: the
/// cluster also tracks those run by triggers (`track=all`), whose time their statement includes.
/// The servers' statements only: the refill between rounds runs as [`REFILL_ROLE`].
fn statement_time(cluster: &crate::postgres::Cluster) -> Result<StatementTime> {
    let line = cluster.query(
        "SELECT COALESCE(SUM(calls) FILTER (WHERE query ILIKE '%limit_counts%'), 0), \
         COALESCE(SUM(total_exec_time) FILTER (WHERE query ILIKE '%limit_counts%'), 0), \
         COALESCE(SUM(total_exec_time), 0) \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = 'bench' AND s.toplevel AND s.userid = 'postgres'::regrole",
    )?;
    let parts: Vec<&str> = line.split('|').collect();
    let number = |i: usize| -> Result<f64> {
        parts
            .get(i)
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("pg_stat_statements: {line:?}"))
    };
    Ok(StatementTime {
        limit_calls: number(0)?,
        limit_ms: number(1)?,
        all_ms: number(2)?,
    })
}

/// The statements that took most of PostgreSQL's time in the bench database since the last reset,
/// triggers' statements included (`track=all`; a statement's time includes its triggers'), one
/// line each: milliseconds in all, calls, milliseconds per call, whether top-level, the text's
/// start. The servers' statements only, printed with each scenario, for whoever looks for where
/// a scenario's time goes; but the foreign-key checks of the refill's INSERTs show among them
/// (nested `SELECT ... FOR KEY SHARE`), as PostgreSQL runs them as the tables' owner.
fn top_statements(cluster: &crate::postgres::Cluster) -> Result<String> {
    cluster.query(
        "SELECT round(total_exec_time::numeric, 1) || ' ms, ' || calls || ' calls, ' \
         || round((total_exec_time / calls)::numeric, 4) || ' ms/call, ' \
         || CASE WHEN toplevel THEN 'top' ELSE 'nested' END || ': ' \
         || left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = 'bench' AND s.userid = 'postgres'::regrole \
         ORDER BY total_exec_time DESC LIMIT 8",
    )
}

/// Synchronous 8 kB writes per second the cluster's disk takes with `fdatasync` (PostgreSQL's
/// `wal_sync_method` on Linux), by `pg_test_fsync`: what a commit waits for.
fn fdatasync_per_s(cluster: &crate::postgres::Cluster) -> Result<f64> {
    let file = cluster.dir().join("pg_test_fsync.out");
    let out = cluster
        .program("pg_test_fsync")
        .args(["-s", "1", "-f"])
        .arg(&file)
        .output()
        .context("running pg_test_fsync")?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    // The first fdatasync line is that of "one 8kB write".
    text.lines()
        .find(|l| l.trim_start().starts_with("fdatasync"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no fdatasync figure in pg_test_fsync's output: {text}"))
}

/// With `baseline` (and `only`), a build and how many replicas of it to run: the alternate rounds
/// compare this build with that one, the same replicas each, instead of one replica and two.
pub fn postgres(seconds: u64, only: Option<&str>, baseline: Option<(&Path, usize)>) -> Result<()> {
    if let Some((bin, _)) = baseline {
        if only.is_none() {
            bail!("--baseline compares builds on some scenarios: it needs --only");
        }
        if !bin.is_file() {
            bail!("--baseline {}: no such file", bin.display());
        }
    }
    if let Some(letters) = only {
        // (a) always runs.
        let known: String = Scenario::ON_POSTGRES.iter().map(|s| s.letter()).collect();
        if letters.is_empty() || letters.chars().any(|c| !known.contains(c)) {
            bail!("--only takes letters of the PostgreSQL scenarios ({known}), not {letters:?}");
        }
    }
    let dir = root().join("target/bench/postgres");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    build_release()?;
    let cluster = start_with(Durability::On)?;
    let settings = cluster.query(
        "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') \
         || ', synchronous_commit=' || current_setting('synchronous_commit') \
         || ', full_page_writes=' || current_setting('full_page_writes') \
         || ', wal_sync_method=' || current_setting('wal_sync_method')",
    )?;
    if !settings.contains("fsync=on") || !settings.contains("synchronous_commit=on") {
        bail!("the benchmark cluster is not durable: {settings}");
    }
    println!("PostgreSQL {settings}");
    let url = cluster.create_database("bench")?;
    cluster.query("CREATE EXTENSION pg_stat_statements")?;
    cluster.query(&format!("CREATE ROLE {REFILL_ROLE} SUPERUSER"))?;
    println!("\n== {TABLE} invitations: preparing {url}");
    let pools = pools(seconds);
    let mut prepared = prepare(&dir, OsStr::new(&url), TABLE, pools, |seed| {
        postgres_sql(seed, pools)
    })?;
    let refill = refill_sql(&prepared.seed, pools);
    let checkpoint = vec![format!("SET ROLE {REFILL_ROLE}"), "CHECKPOINT".to_owned()];
    let spread: Vec<String> = (0..SPREAD_ORGS).map(spread_org).collect();
    prepared.scenarios.push((
        Scenario::CreateSpread,
        [
            vec!["--org".to_owned(), spread.join(",")],
            prepared.service_account.clone(),
        ]
        .concat(),
    ));
    if let Some(letters) = only {
        prepared
            .scenarios
            .retain(|(s, _)| letters.contains(s.letter()));
    }
    write_replay(&dir.join("bench.scenarios.json"), &prepared.scenarios)?;
    settle()?;
    let load_before = load_average();
    let ticks_before = cpu_ticks();
    let (a, _) = ceiling(seconds)?;
    // Every server runs throughout; a round loads one configuration's, in turn, so that the
    // machine's drifts from minute to minute fall on each alike. One replica has the machine's
    // cores (the server's default worker threads); several replicas each have their share of
    // them (`--worker-threads`), as replicas sharing a host's cores are sized (README, "Several
    // replicas"): with the default, two replicas ran twice as many worker threads as there are
    // cores, beside PostgreSQL and the load generator.
    let mut servers = Vec::new();
    // What each configuration is called, and the servers its load goes to.
    let mut configurations: Vec<(String, String)> = Vec::new();
    // Starts `replicas` servers of `bin`, each with its share of the cores; their addresses,
    // comma-separated, as the load generator takes them.
    let mut start = |bin: &Path, replicas: usize| -> Result<String> {
        let workers = replica_workers(replicas);
        let addrs = (0..replicas)
            .map(|_| {
                let port = free_port()?;
                servers.push(start_server_from(bin, OsStr::new(&url), port, workers)?.0);
                Ok(format!("127.0.0.1:{port}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(addrs.join(","))
    };
    match baseline {
        None => {
            for replicas in REPLICAS {
                let addrs = start(&invites_bin(), replicas)?;
                configurations.push((format!("{replicas} replica(s)"), addrs));
            }
        }
        Some((bin, replicas)) => {
            for (name, bin) in [
                ("this build", invites_bin()),
                ("baseline", bin.to_path_buf()),
            ] {
                configurations.push((name.to_owned(), start(&bin, replicas)?));
            }
        }
    }
    let server_pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    let postmaster = cluster.postmaster_pid();
    match baseline {
        None => println!("\n== 1 and 2 replicas over {url}, in alternate rounds"),
        Some((bin, replicas)) => println!(
            "\n== this build against {} over {url}, {replicas} replica(s) each, in alternate \
             rounds",
            bin.display()
        ),
    }
    let mut rows: Vec<Vec<PostgresRow>> = REPLICAS.iter().map(|_| Vec::new()).collect();
    for (scenario, extra) in &prepared.scenarios {
        println!("  {}", scenario.title());
        cluster.query("SELECT pg_stat_statements_reset()")?;
        // Rounds that remove or update the pools' rows start from the whole pools, and every
        // round right after a checkpoint, so that none pays for one (a checkpoint and the
        // full-page writes after it had cut a round by half).
        let uses_pools = matches!(
            scenario,
            Scenario::Digest | Scenario::Bearer | Scenario::Bulk | Scenario::Update
        );
        let between: &[String] = if uses_pools { &refill } else { &checkpoint };
        let mut measured: Vec<Measured> = REPLICAS.iter().map(|_| Measured::default()).collect();
        let scenario_ticks = cpu_ticks();
        for _ in 0..POSTGRES_ROUNDS {
            for (i, (_, addr)) in configurations.iter().enumerate() {
                cluster.run_in("bench", between)?;
                let (syncs, statements) = (wal_syncs(&cluster)?, statement_time(&cluster)?);
                let started = std::time::Instant::now();
                let cpu_before = Cost::now(&server_pids, postmaster);
                let round = load(*scenario, addr, extra, seconds)?;
                let mut cost = Cost::now(&server_pids, postmaster).minus(cpu_before);
                cost.requests = round.answered;
                let m = &mut measured[i];
                m.cost += cost;
                m.seconds += started.elapsed().as_secs_f64();
                m.syncs += wal_syncs(&cluster)? - syncs;
                m.statements = m
                    .statements
                    .plus(statement_time(&cluster)?.minus(statements));
                m.rounds.push(round);
            }
        }
        println!(
            "      CPU time stolen by the hypervisor: {:.1}%",
            stolen_percent(scenario_ticks, cpu_ticks())
        );
        for line in top_statements(&cluster)?.lines() {
            println!("      {line}");
        }
        let rounds_rps: Vec<Vec<f64>> = measured
            .iter()
            .map(|m| m.rounds.iter().map(|r| r.rps).collect())
            .collect();
        if let Some((median, low, high)) = paired_ratio(&rounds_rps[0], &rounds_rps[1]) {
            println!(
                "    round by round, {} against {}: {:.0}% ({:.0}-{:.0}%)",
                configurations[1].0,
                configurations[0].0,
                100.0 * median,
                100.0 * low,
                100.0 * high
            );
        }
        for (((i, &replicas), m), rounds_rps) in
            REPLICAS.iter().enumerate().zip(measured).zip(rounds_rps)
        {
            let flushes_per_s = m.syncs as f64 / m.seconds;
            let statements = m.statements.per_second(m.seconds);
            let mut f = median_round(m.rounds);
            f.rows = Some(TABLE);
            let [servers_ms, postgres_ms, loadgen_ms, all_ms] = m.cost.per_thousand();
            println!(
                "    {}: {:.0} req/s ({:.0}-{:.0}), p50 {:.2} ms, p99 {:.2} ms, \
                 p99.9 {:.2} ms, {flushes_per_s:.0} log flushes/s; CPU per 1,000 requests: \
                 servers {servers_ms:.0} ms, PostgreSQL {postgres_ms:.0}, load generator \
                 {loadgen_ms:.0}, all {all_ms:.0}",
                configurations[i].0, f.rps, f.rps_range.0, f.rps_range.1, f.p50, f.p99, f.p999
            );
            rows[i].push(PostgresRow {
                replicas,
                figures: f,
                flushes_per_s,
                statements,
                cost: m.cost,
                rounds_rps,
            });
        }
    }
    drop(servers);
    if only.is_some() {
        println!("\n--only: docs/benchmarks.md left as it is");
        return Ok(());
    }
    settle()?;
    let rows: Vec<PostgresRow> = rows.into_iter().flatten().collect();
    println!("\n== sqlx drivers: Any against PgPool");
    let drivers_url = cluster.create_database("drivers")?;
    let out = Command::new(bench_bin())
        .args(["drivers", "--database-url", &drivers_url])
        .output()
        .context("running invites-bench drivers")?;
    if !out.status.success() {
        bail!(
            "invites-bench drivers: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let drivers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    for d in &drivers {
        println!("    {d}");
    }
    let load_after = load_average();
    let stolen = stolen_percent(ticks_before, cpu_ticks());
    println!("\n== the disk: pg_test_fsync");
    let fsync = fdatasync_per_s(&cluster)?;
    println!("    {fsync:.0} fdatasync/s");
    drop(cluster);
    let section = postgres_section(&PostgresRun {
        seconds,
        settings,
        load: (load_before, load_after),
        stolen,
        fdatasync_per_s: fsync,
        pools,
        a,
        rows,
        drivers,
    });
    println!("\n{section}");
    let path = root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, with_section(&old, &POSTGRES, &section))?;
    println!("written: docs/benchmarks.md (its PostgreSQL section)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stolen_time_is_a_share_of_the_ticks_between_two_readings() {
        assert_eq!(stolen_percent((1_000, 10), (1_200, 70)), 30.0);
        assert_eq!(
            stolen_percent((1_000, 10), (1_000, 10)),
            0.0,
            "no time passed"
        );
        let (all, stolen) = cpu_ticks();
        if std::path::Path::new("/proc/stat").exists() {
            assert!(all > 0 && stolen <= all);
        }
    }

    #[test]
    fn paired_ratios_compare_each_round_with_the_one_before() {
        // The machine's speed moves from round to round and a slow spell hits the second's
        // last round: 10% faster in two pairs of three, where the medians taken apart (1,900
        // against 1,100) make it 58%.
        let first = [1000.0, 1900.0, 3000.0];
        let second = [1100.0, 2090.0, 1000.0];
        let (median, low, high) = paired_ratio(&first, &second).unwrap();
        assert!((median - 1.1).abs() < 1e-9, "{median}");
        assert!((low - 1.0 / 3.0).abs() < 1e-9 && (high - 1.1).abs() < 1e-9);
        let (median, ..) = paired_ratio(&[100.0, 200.0], &[110.0, 180.0]).unwrap();
        assert!(
            (median - 1.0).abs() < 1e-9,
            "an even count averages the middle two"
        );
        assert_eq!(paired_ratio(&[], &[]), None);
        assert_eq!(
            paired_ratio(&[0.0], &[5.0]),
            None,
            "a round of nothing is no pair"
        );
    }

    #[test]
    fn spread_organizations_are_24_hex_and_distinct() {
        let orgs: std::collections::BTreeSet<String> = (0..SPREAD_ORGS).map(spread_org).collect();
        assert_eq!(orgs.len(), SPREAD_ORGS);
        assert!(orgs
            .iter()
            .all(|o| o.len() == 24 && o.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    fn seed() -> Seed {
        Seed {
            delete_org: "d".repeat(24),
            list_org: "e".repeat(24),
            group: 7,
            sa_principal: "5".repeat(24),
            paged: None,
        }
    }

    #[test]
    fn the_seed_grants_the_service_account_every_spread_organization() {
        let sql = postgres_sql(&seed(), pools(3));
        assert!(sql.contains(&format!(
            "SELECT 'ab' || lpad(to_hex(x), 22, '0'), '{}', 'ORG_OWNER' FROM generate_series(0, {})",
            "5".repeat(24),
            SPREAD_ORGS - 1
        )));
        // No re-insert trigger: the pools are refilled between rounds instead.
        assert!(!sql.contains("TRIGGER"));
    }

    #[test]
    fn the_pools_hold_a_round_and_the_refill_puts_back_only_what_is_missing() {
        let p = pools(3);
        assert_eq!((p.delete, p.bulk_users, p.once), (128_000, 640_000, true));
        // A round of 3 s and its warm-up second at the rates the pools are sized for.
        assert!(p.delete >= CONNECTIONS * REMOVALS_PER_CONNECTION_S * 4);
        let sql = postgres_sql(&seed(), p);
        // Every bulk user exists, as does its pending invitation.
        assert!(sql.contains("INSERT INTO users"));
        assert!(sql.contains(&format!("generate_series(0, {})", p.bulk_users - 1)));
        assert!(sql.contains(&format!("generate_series(0, {})", p.delete - 1)));
        let refill = refill_sql(&seed(), p);
        // Statements of their own: VACUUM cannot share psql's -c with the INSERTs.
        assert_eq!(refill.len(), 4);
        assert_eq!(refill[0], "SET ROLE bench_refill");
        assert_eq!(refill[1].matches("ON CONFLICT DO NOTHING").count(), 2);
        assert!(refill[1].contains(&format!("'{}'", "d".repeat(24))));
        assert!(refill[1].contains("SELECT 7, 100000 + x"));
        assert!(refill[2].starts_with("VACUUM"));
        // Each round starts right after a checkpoint.
        assert_eq!(refill[3], "CHECKPOINT");
    }
}
