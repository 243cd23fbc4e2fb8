//! The report of `cargo xtask bench server`: the table and targets of `docs/benchmarks.md`,
//! the bounds section and the latency plot (`docs/benchmarks-latency.svg`).

use std::time::Duration;

use super::scenario::Scenario;
use super::server::{Figures, COUNT_ROUNDS, TABLE_SIZES};

/// The lowest and highest req/s of a scenario's rounds.
fn range(f: &Figures) -> String {
    format!("{:.0}-{:.0}", f.rps_range.0, f.rps_range.1)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

pub(super) fn bench_report(
    a: &Figures,
    ceiling_rss: f64,
    rows: &[Figures],
    bound_rows: &[Figures],
    page_counts: Option<&(Figures, Figures)>,
    server_rss: &[(u64, f64)],
    cold: &[(u64, Duration)],
) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let mut md = String::from(
        "# Benchmarks\n\nProduced by `cargo xtask bench server` (release build, loopback, `invites-bench` load generator: 32 \
         HTTP/1.1 keep-alive connections, one request in flight each, 1 s warm-up then the measured seconds given, 10 by default). \
         Every answer is checked to be the scenario's success status; a run with any other answer fails. Each scenario runs \
         three rounds: its row gives the round with the median req/s, and the range column the lowest and highest of the three \
         (5-15% apart on this machine is usual).\n\n",
    );
    md.push_str(&format!("Machine: {}.\n\n", machine()));
    md.push_str("| scenario | invitations in table | req/s | of (a) | p50 ms | p99 ms | p99.9 ms | req/s of the rounds |\n|---|---|---|---|---|---|---|---|\n");
    md.push_str(&format!(
        "| {} | - | {:.0} | 100% | {:.2} | {:.2} | {:.2} | {} |\n",
        Scenario::Ceiling.title(),
        a.rps,
        a.p50,
        a.p99,
        a.p999,
        range(a)
    ));
    for f in rows {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {} |\n",
            f.scenario.title(),
            f.rows.unwrap_or(0),
            f.rps,
            100.0 * f.rps / a.rps.max(1.0),
            f.p50,
            f.p99,
            f.p999,
            range(f)
        ));
    }
    md.push_str(&format!(
        "\nPeak resident memory: ceiling server {ceiling_rss:.1} MiB; invitation server {}.\n",
        server_rss
            .iter()
            .map(|(t, r)| format!("{r:.1} MiB ({t} rows)"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md.push_str(&format!(
        "Cold start to first answered `/ready`: {}.\n\n",
        cold.iter()
            .map(|(t, d)| format!("{} ms ({t} rows)", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    md.push_str("## Targets\n\n");
    let get = |s: Scenario, t: u64| rows.iter().find(|f| f.scenario == s && f.rows == Some(t));
    for s in [Scenario::Digest, Scenario::Bearer] {
        if let Some(f) = get(s, TABLE_SIZES[0]) {
            let share = f.rps / a.rps.max(1.0);
            md.push_str(&format!(
                "- ({}) at least 40% of (a): {:.0}%, {}.\n",
                s.letter(),
                100.0 * share,
                verdict(share >= 0.4)
            ));
        }
    }
    let worst_p99 = rows
        .iter()
        .filter(|f| Scenario::TARGETED.contains(&f.scenario))
        .map(|f| f.p99)
        .fold(0.0, f64::max);
    md.push_str(&format!(
        "- p99 under 10 ms in every scenario (b) to (e): worst {worst_p99:.2} ms, {}.\n",
        verdict(worst_p99 < 10.0)
    ));
    for s in Scenario::TARGETED {
        if let (Some(small), Some(large)) = (get(s, TABLE_SIZES[0]), get(s, TABLE_SIZES[1])) {
            let share = large.rps / small.rps.max(1.0);
            md.push_str(&format!(
                "- {}: 1M-row req/s within 80% of 10k-row: {:.0}%, {}.\n",
                s.name(),
                100.0 * share,
                verdict(share >= 0.8)
            ));
        }
    }
    for (s, offset) in Scenario::PAGES {
        if let Some(f) = rows.iter().find(|f| f.scenario == s) {
            md.push_str(&format!(
                "- ({}) a page of 20 at offset {offset} of a group with 1,000,000 pending: p99 under 10 ms \
                 and at least 5,000 req/s: {:.2} ms, {:.0} req/s, {}.\n",
                s.letter(),
                f.p99,
                f.rps,
                verdict(f.p99 < 10.0 && f.rps >= 5000.0)
            ));
        }
    }
    if let Some((d, before)) = page_counts {
        let slower = 100.0 * (1.0 - d.rps / before.rps.max(1.0));
        let change = if slower >= 0.0 {
            format!("{slower:.1}% slower")
        } else {
            format!("{:.1}% faster", -slower)
        };
        md.push_str(&format!(
            "- (d) with the page counts at most 10% slower than without them (measured after the rest on \
             the {}-row database, alternating a round of the served build and a round of the bench-bounds \
             build keeping no counts, which goes first alternating too, each started afresh, {COUNT_ROUNDS} \
             rounds each; medians): {:.0} against {:.0} \
             req/s (rounds {:.0}-{:.0} against {:.0}-{:.0}; p99 {:.2} against {:.2} ms), {change}, {}.\n",
            TABLE_SIZES[0],
            d.rps,
            before.rps,
            d.rps_range.0,
            d.rps_range.1,
            before.rps_range.0,
            before.rps_range.1,
            d.p99,
            before.p99,
            verdict(slower <= 10.0)
        ));
    }
    let max_rss = server_rss.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    md.push_str(&format!(
        "- Peak RSS under 64 MiB: {max_rss:.1} MiB, {}.\n",
        verdict(max_rss < 64.0)
    ));
    let max_cold = cold.iter().map(|(_, d)| d.as_millis()).max().unwrap_or(0);
    md.push_str(&format!(
        "- Cold start to first served request under 200 ms: {max_cold} ms, {}.\n",
        verdict(max_cold < 200)
    ));
    md.push_str(
        "\nMethod notes: each DELETE removes a row that a trigger puts back in the same transaction, so the \
         table keeps its size and ids can be reused; that re-insert is work a real delete does not do (with \
         it dropped, (c) measured the same: see below). Digest clients fetch one challenge per connection and then count \
         nonces up on it, as curl does. Digest verification alone is measured by `cargo bench -p invites-digest` \
         (about 2.6 us per request here). (f) and (g), beyond the issue's five, measure the rest of the \
         lifecycle: (f) gives the deletable invitations new roles in turn, (g) invites a new user every \
         time and runs last, so the table grows by what it creates (about 10 s times its rate).\n\n",
    );
    md.push_str(&bounds_section(a, rows, bound_rows));
    md.push_str(
        "## Where the time goes\n\n\
         Removals ((b), (c), (d)) on SQLite: a task batches what has queued into one writer-thread job \
         (one DELETE for the batch, one audit INSERT; see ARCHITECTURE.md, `removals` and `writer`), \
         committed once per batch. Measured during (c) at 10k rows (per-thread CPU from /proc, perf, \
         vmstat): the server uses about 1.2 cores, of which the writer thread half a core; the load \
         generator about a third of a core; the kernel writing the log back to disk (about 150 MB/s) \
         most of the rest, and the machine is about 80% busy. The writer is busy about two thirds of \
         the time with batches of about 11 removals: no single stage is saturated, the five busy \
         threads share two cores, and 64 or 128 connections instead of 32 gain at most 10%. The \
         batching task waits for its batch about 90% of the time, about 300 us per batch of about \
         10 removals (a temporary counter, not committed); in the same 3 s the writer ran 1.6 s and \
         waited 0.6 s for a core, each tokio worker ran 0.9 s and waited 1.2 s (`/proc/<tid>/schedstat`): \
         the threads queue for the two cores rather than for each other. Not kept, each measured \
         against the same build: two batches in flight instead of one (the writer merges them; same \
         req/s), the writer and the tokio workers pinned to separate cores (same or worse), the \
         database on tmpfs instead of ext4 (+13%: the ceiling of anything that makes the log's \
         writes cheaper). Per \
         removal the server spends about 33 us of CPU against 7 us per answer of the ceiling server: \
         about 14 us in the writer (a third of it the log's `pwrite` calls, two per page, about four \
         pages per removal) and about 18 us on the HTTP side (TCP send and receive, wake-ups, then \
         middleware, authentication and the handler in many small parts). The benchmark's re-insert \
         trigger is not what limits it: with the trigger dropped and a 400,000-row pool of deletable \
         rows instead, throughput measured the same. A `WITHOUT ROWID` invitations table measured no \
         faster. The list (e) answers 1,000 invitations, 418 KB of JSON: built once, then served from the \
         list cache (ARCHITECTURE.md, `list_cache`) while the organization's invitation version stands, \
         so an answer costs authorization, one indexed read of that version and sending the bytes; a \
         static 418 KB answer from a bare poem route reaches about 15,000 req/s here (wrk), and building \
         the list for every answer reached about 520 req/s (p99 90 ms). The ceiling (a) varies between runs and \
         machines (50,000-150,000 req/s seen on the same build), and the ratios with it; 5 s runs of \
         one scenario vary by about 10%.\n\n\
         Metrics (`--metrics-listen`, `docs/metrics.md`) are off in these runs, as they are by \
         default. Their cost on (c) at 10k rows was measured apart: 16 alternating 5 s rounds of \
         `invites-bench load --scenario bearer` against the same release build without and with \
         `--metrics-listen`, each server on a fresh copy of the 10k database, while other builds kept \
         the machine busy (load average 6-7, so the figures are below the table's): req/s 12,175 \
         without and 12,563 with on average (medians 12,180 and 12,550; rounds 9,293-16,154 and \
         10,754-15,399), p99 12.0 and 11.4 ms (medians), server CPU per removal 65.4 and 65.2 us on \
         average (medians 64.1 and 65.8; utime and stime from /proc over the audit rows the run \
         added): differences of the rounds' noise, either way. Recording \
         a request (the in-flight gauge, a counter, the latency histogram) costs about 45 ns on one \
         thread, plus about 50 ns reading the clock.\n\n\
         ![latency percentiles](benchmarks-latency.svg)\n",
    );
    md
}

/// The bounds of (b) and (c): what a removal reaches when it skips part of its work.
fn bounds_section(a: &Figures, rows: &[Figures], bound_rows: &[Figures]) -> String {
    if bound_rows.is_empty() {
        return String::new();
    }
    let share = |f: &Figures| 100.0 * f.rps / a.rps.max(1.0);
    let mut md = format!(
        "## Bounds of (b) and (c)\n\n\
         The same loads on the {}-row table, served by a separate build with the `bench-bounds` feature \
         (its own target directory; no served build has it, see invites-store's `bench_bound`), where a removal \
         skips part of its work and nothing is removed: *authorized* answers 204 as soon as the request is \
         authenticated and authorized (HTTP, middleware, Digest or Bearer, the role check: everything but the \
         store); *queued* also sends the removal through the removal queue into a writer-thread transaction, \
         which executes no SQL (no row deleted, no audit row, no log page written).\n\n\
         | scenario | bound | req/s | of (a) | p50 ms | p99 ms | req/s of the rounds | the same without a bound |\n|---|---|---|---|---|---|---|---|\n",
        TABLE_SIZES[0]
    );
    for f in bound_rows {
        let real = rows
            .iter()
            .find(|r| r.scenario == f.scenario && r.rows == f.rows && r.bound.is_none());
        md.push_str(&format!(
            "| ({}) | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {} | {} |\n",
            f.scenario.letter(),
            f.bound.unwrap_or("-"),
            f.rps,
            share(f),
            f.p50,
            f.p99,
            range(f),
            real.map_or("-".to_owned(), |r| format!(
                "{:.0} req/s, {:.0}%",
                r.rps,
                share(r)
            )),
        ));
    }
    let queued = bound_rows
        .iter()
        .filter(|f| f.bound == Some("queued"))
        .map(share)
        .fold(f64::NAN, f64::max);
    let reading = if queued >= 40.0 {
        "so the 40% target asks a removal that deletes its row, writes its audit row and commits both to the \
         log to cost about as much as one that writes nothing"
    } else {
        "so even a removal that writes nothing falls short of the 40% target"
    };
    md.push_str(&format!(
        "\nWith the queue and an empty transaction but no SQL, the best of (b) and (c) reaches {queued:.0}% of (a), \
         {reading}. Authentication, Digest and HTTP are not what keeps (b) and (c) from it: compare *authorized* \
         with (a).\n\n"
    ));
    md
}

/// Grouped bars of p50 / p99 / p99.9 per scenario, on a log scale.
pub(super) fn latency_svg(a: &Figures, rows: &[Figures]) -> String {
    let mut bars: Vec<(String, [f64; 3])> = vec![("(a) ceiling".into(), [a.p50, a.p99, a.p999])];
    for f in rows {
        bars.push((
            format!("{} {}k", f.scenario.name(), f.rows.unwrap_or(0) / 1000),
            [f.p50, f.p99, f.p999],
        ));
    }
    let (w, h, left, bottom) = (140.0 * bars.len() as f64 + 80.0, 360.0, 60.0, 300.0);
    let max = bars
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0_f64, f64::max);
    let top_log = max.log10().ceil().max(1.0);
    let bottom_log = -2.0_f64; // 0.01 ms
    let y = |ms: f64| {
        let l = ms.max(0.01).log10();
        bottom - (l - bottom_log) / (top_log - bottom_log) * (bottom - 20.0)
    };
    let colors = ["#4e79a7", "#f28e2b", "#e15759"];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"14\" font-size=\"13\">Latency percentiles (ms, log scale): p50, p99, p99.9</text>\n"
    );
    let mut tick = bottom_log;
    while tick <= top_log {
        let ty = y(10f64.powf(tick));
        svg.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{:.1}\">{}</text>\n",
            w - 10.0,
            ty + 4.0,
            10f64.powf(tick)
        ));
        tick += 1.0;
    }
    for (i, (label, values)) in bars.iter().enumerate() {
        let x0 = left + 10.0 + 140.0 * i as f64;
        for (j, v) in values.iter().enumerate() {
            let x = x0 + 30.0 * j as f64;
            let top = y(*v);
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"26\" height=\"{:.1}\" fill=\"{}\"><title>{v:.3} ms</title></rect>\n",
                (bottom - top).max(0.5),
                colors[j]
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{x0:.1}\" y=\"{:.1}\">{label}</text>\n",
            bottom + 16.0
        ));
    }
    for (j, name) in ["p50", "p99", "p99.9"].iter().enumerate() {
        let x = left + 80.0 * j as f64;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n",
            bottom + 30.0,
            colors[j],
            x + 14.0,
            bottom + 39.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// What `cargo xtask bench server --database postgres` measured.
pub(super) struct PostgresRun {
    pub(super) seconds: u64,
    /// The server's version and durability settings, as it reported them.
    pub(super) settings: String,
    /// The load average when the measurements started and when they ended.
    pub(super) load: (String, String),
    /// The percentage of the machine's CPU time stolen by the hypervisor over the measurements.
    pub(super) stolen: f64,
    /// `pg_test_fsync`'s synchronous 8 kB writes per second.
    pub(super) fdatasync_per_s: f64,
    /// The rows the removals take.
    pub(super) pools: super::server::Pools,
    pub(super) a: Figures,
    pub(super) rows: Vec<PostgresRow>,
    /// `invites-bench drivers`' lines: path, driver, operations, ops_per_s, ops_per_s_range,
    /// cpu_us_per_op.
    pub(super) drivers: Vec<serde_json::Value>,
}

/// One scenario measured on PostgreSQL.
pub(super) struct PostgresRow {
    /// How many `invites serve` shared the load.
    pub(super) replicas: usize,
    pub(super) figures: Figures,
    /// Syncs of the write-ahead log per second over the scenario's rounds (warm-ups included).
    pub(super) flushes_per_s: f64,
    /// PostgreSQL's statement time per second over the same time.
    pub(super) statements: StatementTime,
    /// CPU time of the scenario's rounds, warm-ups included, and their requests.
    pub(super) cost: super::cpu::Cost,
    /// Each round's req/s, in the order the rounds ran.
    pub(super) rounds_rps: Vec<f64>,
}

/// Round by round, the second configuration's req/s over the first's, each round of the second
/// against the round of the first just before it (the rounds alternate): the median ratio and
/// the lowest and highest, or `None` without a pair. Seconds apart, a pair shares the machine's
/// speed of that minute, which the medians of each configuration's rounds taken apart do not.
pub(super) fn paired_ratio(first: &[f64], second: &[f64]) -> Option<(f64, f64, f64)> {
    let mut ratios: Vec<f64> = first
        .iter()
        .zip(second)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| b / a)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    Some((median, ratios[0], ratios[n - 1]))
}

/// Statement time in PostgreSQL (`pg_stat_statements`): totals since a reset, or per second.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StatementTime {
    /// Calls of the statements on `limit_counts` (the limits shared by replicas).
    pub(super) limit_calls: f64,
    /// Their execution time, ms.
    pub(super) limit_ms: f64,
    /// The execution time of every statement of the bench database, ms.
    pub(super) all_ms: f64,
}

impl StatementTime {
    /// What was added since `before` (both totals since the same reset).
    pub(super) fn minus(self, before: StatementTime) -> StatementTime {
        StatementTime {
            limit_calls: self.limit_calls - before.limit_calls,
            limit_ms: self.limit_ms - before.limit_ms,
            all_ms: self.all_ms - before.all_ms,
        }
    }

    /// Both together.
    pub(super) fn plus(self, other: StatementTime) -> StatementTime {
        StatementTime {
            limit_calls: self.limit_calls + other.limit_calls,
            limit_ms: self.limit_ms + other.limit_ms,
            all_ms: self.all_ms + other.all_ms,
        }
    }

    /// The same over `seconds`, per second.
    pub(super) fn per_second(self, seconds: f64) -> StatementTime {
        let s = seconds.max(0.001);
        StatementTime {
            limit_calls: self.limit_calls / s,
            limit_ms: self.limit_ms / s,
            all_ms: self.all_ms / s,
        }
    }
}

impl PostgresRow {
    /// Requests per log flush: how many commits one flush carried, for the writes.
    fn per_flush(&self) -> f64 {
        self.figures.rps / self.flushes_per_s.max(0.001)
    }
}

/// The PostgreSQL section of `docs/benchmarks.md`, markers included.
pub(super) fn postgres_section(run: &PostgresRun) -> String {
    use super::postgres::{POSTGRES_ROUNDS, REPLICAS, SPREAD_ORGS, TABLE};
    use super::server::DELETE_POOL;
    use super::POSTGRES;
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let a = &run.a;
    let get = |s: Scenario, r: usize| {
        run.rows
            .iter()
            .find(|row| row.replicas == r && row.figures.scenario == s)
    };
    let begin = POSTGRES.begin;
    let cores = super::postgres::cores();
    let half = super::postgres::replica_workers(2).unwrap_or(cores);
    let mut md = format!(
        "{begin}\n\n## PostgreSQL\n\n\
         Produced by `cargo xtask bench server --database postgres --seconds {}`: the scenarios above on a \
         throwaway PostgreSQL cluster on the same machine (`xtask/src/postgres.rs`, loopback) with \
         production's durability: {}. A commit is acknowledged once its log record is on disk; the disk \
         takes {:.0} synchronous 8 kB writes per second (`pg_test_fsync`, fdatasync), about {:.2} ms each. \
         The table is seeded as on SQLite ({TABLE} invitations; the 1M-row table is SQLite's run only, to \
         keep this run to a few minutes) but without SQLite's re-insert triggers: (b), (c) and (f) take {} \
         deletable invitations and (d) {} users with a pending invitation to the bulk group, each \
         connection its own share, each row removed at most once in a round (`invites-bench load --once`), \
         so a round starts with {} invitations; before each round of (b), (c), (d) and (f), outside the \
         measured time (and out of the log flushes and statement times below), the removed rows are put \
         back through the store's own triggers (scope versions and page counts stay right) and the tables \
         vacuumed. On PostgreSQL a re-insert cost more than the removal it followed: during (d) the \
         trigger's INSERT took 1.13 ms of the DELETE's 2.02 ms (`pg_stat_statements` with \
         `track=all`, which this cluster keeps: each scenario's costliest statements are printed with \
         its figures). Each `invites serve` has its pool of 8 connections. *1 replica*: one `invites serve` \
         with the server's default worker threads, one per core ({cores}). *2 replicas*: two other \
         `invites serve` processes over the same database, each with its share of the cores \
         (`--worker-threads {half}`, as replicas sharing a host are sized, README), the load generator's \
         32 connections alternating between them (`invites-bench load --addr A,B`); the replicas, \
         PostgreSQL and the load generator share the machine's cores, so a second replica adds \
         connections and queues, not CPU. All three servers run throughout, and the rounds alternate: one \
         with the load on the one replica (the other two idle), the next with it over the two, so that the \
         machine's speed, which moves from minute to minute, weighs on both alike. The same load generator, warm-up and checks, {POSTGRES_ROUNDS} rounds per \
         scenario (the median round's figures), {} measured seconds each, each round started right after a \
         `CHECKPOINT` (one had cut a round by half). (h) is (g) with each connection creating in an organization of its \
         own (32), see below. Load average (1, 5, 15 min) when the measurements started: {}; when they \
         ended: {} (2 cores); CPU time stolen by the hypervisor meanwhile: {:.1}% (/proc/stat; \
         this virtual machine's speed moves with it, so compare runs only at like figures).\n\n",
        run.seconds,
        run.settings,
        run.fdatasync_per_s,
        1000.0 / run.fdatasync_per_s.max(1.0),
        run.pools.delete,
        run.pools.bulk_users,
        TABLE - DELETE_POOL + run.pools.delete,
        run.seconds,
        run.load.0,
        run.load.1,
        run.stolen,
    );
    md.push_str(&format!("Machine: {}.\n\n", machine()));
    md.push_str("| scenario | replicas | req/s | of (a) | p50 ms | p99 ms | p99.9 ms | req/s of the rounds | log flushes/s | req per flush |\n|---|---|---|---|---|---|---|---|---|---|\n");
    md.push_str(&format!(
        "| {} | - | {:.0} | 100% | {:.2} | {:.2} | {:.2} | {} | - | - |\n",
        Scenario::Ceiling.title(),
        a.rps,
        a.p50,
        a.p99,
        a.p999,
        range(a)
    ));
    for row in &run.rows {
        let f = &row.figures;
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.1} |\n",
            f.scenario.title(),
            row.replicas,
            f.rps,
            100.0 * f.rps / a.rps.max(1.0),
            f.p50,
            f.p99,
            f.p999,
            range(f),
            row.flushes_per_s,
            row.per_flush(),
        ));
    }
    md.push_str(
        "\n*log flushes/s*: syncs of the write-ahead log per second over the scenario's rounds \
         (`pg_stat_wal.wal_sync`, warm-ups included); *req per flush*: req/s over that, how many \
         requests' commits one flush carried (for (e), which writes nothing, meaningless).\n",
    );
    md.push_str(
        "\nCPU time per 1,000 requests, ms, over each configuration's rounds (warm-ups included): \
         of the `invites serve` processes (all three, as all run throughout; an idle one costs next to nothing), of the cluster's \
         processes and of the load generator (`/proc`, `xtask/src/bench/cpu.rs`). Unlike req/s, \
         it hardly moves with the machine's speed between rounds, so it says which configuration \
         does more work for the same requests.\n\n\
         | scenario | replicas | servers | PostgreSQL | load generator | all | all, of 1 replica's |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in &run.rows {
        let [servers, postgres, loadgen, all] = row.cost.per_thousand();
        let one = get(row.figures.scenario, 1).map_or(all, |one| one.cost.per_thousand()[3]);
        md.push_str(&format!(
            "| {} | {} | {servers:.0} | {postgres:.0} | {loadgen:.0} | {all:.0} | {:.0}% |\n",
            row.figures.scenario.title(),
            row.replicas,
            100.0 * all / one.max(0.001),
        ));
    }
    md.push_str("\n### Targets on PostgreSQL\n\n");
    for replicas in REPLICAS {
        let Some(worst) = run
            .rows
            .iter()
            .filter(|r| r.replicas == replicas && Scenario::TARGETED.contains(&r.figures.scenario))
            .map(|r| &r.figures)
            .max_by(|x, y| x.p99.total_cmp(&y.p99))
        else {
            continue;
        };
        md.push_str(&format!(
            "- p99 under 20 ms in every scenario (b) to (e), {replicas} replica{}: worst {:.2} ms ({}, {:.0} req/s), {}.\n",
            if replicas == 1 { "" } else { "s" },
            worst.p99,
            worst.scenario.letter(),
            worst.rps,
            verdict(worst.p99 < 20.0)
        ));
    }
    md.push_str(
        "  The load keeps 32 requests in flight, so a request's mean latency is 32 / req/s (Little's law): \
         a p99 under 20 ms asks for well over 1,600 req/s, so the p99 follows from the throughput this \
         machine gave PostgreSQL, the servers and the load generator.\n",
    );
    md.push_str(
        "- Two replicas no slower than one in total req/s (the medians' ratio; round by round: the \
         median and range of each two-replica round's req/s over the one-replica round's just \
         before it):\n",
    );
    for one_row in run.rows.iter().filter(|r| r.replicas == 1) {
        let one = &one_row.figures;
        let Some(two_row) = get(one.scenario, 2) else {
            continue;
        };
        let two = &two_row.figures;
        let share = two.rps / one.rps.max(1.0);
        let within = two.rps_range.1 >= one.rps_range.0;
        let cpu = two_row.cost.per_thousand()[3] / one_row.cost.per_thousand()[3].max(0.001);
        let paired = paired_ratio(&one_row.rounds_rps, &two_row.rounds_rps)
            .map(|(median, low, high)| {
                format!(
                    "; round by round {:.0}% ({:.0}-{:.0}%)",
                    100.0 * median,
                    100.0 * low,
                    100.0 * high
                )
            })
            .unwrap_or_default();
        md.push_str(&format!(
            "  - ({}) {}: {:.0} against {:.0} req/s, {:.0}%, {}{paired}; CPU per request {:.0}% of one replica's.\n",
            one.scenario.letter(),
            one.scenario.name(),
            two.rps,
            one.rps,
            100.0 * share,
            if share >= 1.0 {
                "met".to_owned()
            } else if within {
                "**not met**, within the rounds' spread".to_owned()
            } else {
                "**not met**".to_owned()
            },
            100.0 * cpu,
        ));
    }
    md.push_str(
        "  Where a second replica's cost goes: the replicas, PostgreSQL and the load generator share one \
         machine's cores, so a second replica adds processes, connections and queues, not CPU, and two \
         replicas keep up with one only where they do no more work per request (the CPU table's last \
         column). What was found, and what was done about it:\n\
         \x20 - Batches. Each replica kept two removal batches in flight, so two replicas kept four, each \
         gathered from half the load for half as long: PostgreSQL took 261 ms of CPU per 1,000 removals \
         of (b) with two replicas against 174 with one (`perf record -a`, session 14). Since migrations 14 \
         and 15 the two batches of each queue (removals, bulk removals, Digest nonce counts) are the \
         deployment's, shared by the replicas using it at once, one each for two (`removing_replicas`, \
         ARCHITECTURE.md): two replicas went from 87%, 79% and 80% of one in (b), (c) and (d) to 101%, \
         93% and 94% (`--only bcd`, Intel Xeon). With the sharing turned off in this build (`--only \
         cd`, AMD EPYC), two replicas gave 79% and 85% of one, spending 42% and 38% more CPU per request.\n\
         \x20 - Worker threads. Two replicas of one tokio worker thread each, their share of the cores, \
         against the default two each: 89%, 101%, 107% and 97% of one replica in (b) to (e) against 94%, \
         93%, 93% and 92%, the servers' CPU per 1,000 requests 221, 124, 155 and 377 ms against 247, 151, \
         199 and 380 (Intel Xeon, session 16); on this build, two threads each gave 82%, 96% and 88% in \
         (c) to (e), the servers' CPU per request 37%, 20% and 5% above one replica's (`--only cde`, AMD \
         EPYC). A replica of one worker thread now runs tokio's current-thread scheduler, not the \
         multi-thread one with one worker: two replicas of each, alternate rounds (`--baseline` with \
         `--baseline-replicas 2`, `--only bc`, AMD EPYC, 0% stolen), 13,301 against 10,965 req/s in \
         (b) and 18,790-20,564 against 16,489-19,029 in (c) over four runs (+7% to +14%). perf gave \
         both the same CPU time, under 1% of it in the scheduler; what differs is the work per \
         request: PostgreSQL's CPU per (b) request 64 against 86 ms per 1,000, more requests per \
         log flush in (c) (11.7 against 10.6), so more requests join each removal batch.\n\
         \x20 - Round trips. sqlx pings every connection put back in its pool, a round trip more per \
         statement; the hot paths keep theirs warm instead (`TimedPool::run`, ARCHITECTURE.md). One \
         replica of this build against one of the build before, alternate rounds (`--baseline`, \
         `--only bcde`, 0% stolen): 10,838 against 9,599 req/s in (b), 19,589 against 16,702 in (c), \
         8,264 against 7,485 in (d), 7,442 against 7,040 in (e); PostgreSQL's CPU per (b) request \
         halved (the nonce counts paid it too). Both configurations gained: two replicas went from 94%, \
         96%, 93% and 92% of one in (b) to (e) (a full run of the build before, AMD EPYC) to 97%, 93%, \
         112% and 100% (a full run of commit 92ae4af, before the current-thread scheduler).\n\
         \x20 - Waits for a connection. Where every request ran its own statements ((f) to (h) before \
         their writes were batched: 32 requests over a pool of 8), nearly every acquisition waited; each waiter served by a \
         connection another request handed back had left an acquisition behind in sqlx's queue, \
         thousands of them, and connections sqlx freed went round those with a ping each. Bounded \
         to as many as the pool's connections (`timed_pool.rs`), one replica against the build \
         before, alternate rounds (`--baseline`, `--only cegh`): (g) 3,102 against 2,593 req/s, \
         (h) 3,021 against 2,785, the servers' CPU per request a quarter less; (c) and (e), whose \
         statements rarely wait, the same. One replica gains most (32 requests on its 8 \
         connections, against 16 on each replica's 8). A replica's pool of 16 connections \
         instead of 8 (`--database-connections 16`) cost PostgreSQL 14% and 6% more CPU per \
         request of (g) and (h) (one replica each, `--baseline`): more statements at once on 2 \
         cores, as with two replicas of 8.\n\
         \x20 - Writes batched. A create or update was one statement and one commit of its own; the \
         creates, and the updates, that queue while others run now share one statement \
         (`postgres::write_batches`, ARCHITECTURE.md: up to 32, two batches in flight, a failed \
         batch run again one write at a time). Creates first: One \
         replica against the build before, alternate rounds (`--baseline`, `--only gh`, AMD EPYC, \
         0.1% stolen): (g) 5,237 against 3,168 req/s, (h) 5,129 against 2,911, p99 11.69 against \
         17.02 ms and 12.01 against 19.61; PostgreSQL's CPU per 1,000 creates 176 against 356 ms and \
         178 against 397, the servers' 139 against 179 and 136 against 192. With each replica \
         keeping two batches in flight of its own, two replicas made batches of half the size and \
         gave 92% and 97% of one replica in (g) and (h), PostgreSQL spending 23% and 14% more CPU \
         per create; the create queue's batches are now the deployment's like the other queues' \
         (migration 16), and the same run gave 104% and 106% round by round, PostgreSQL 5% and 9% \
         more per create (`--only fgh`). Then updates, the same way: one replica's (f) 4,920 req/s \
         (p99 13.51 ms, PostgreSQL 190 ms of CPU per 1,000 updates) against 2,808-3,350 req/s \
         (p99 17-21 ms, 336-382 ms) in three runs of the build before that day (`--only fgh`; \
         the two builds' migrations differ, so no `--baseline` run).\n\
         \x20 - What remains is most where the work per request is least batched. In (e) each replica \
         shares a list's version read only among its own requests (3-4 requests a read with two \
         replicas, 6-8 with one, session 15), so PostgreSQL answers about twice as many reads; its \
         CPU per request is about the same with one replica and two, and so is the throughput, \
         either side of 100% from run to run. Before writes were batched, in (f) to (h) two \
         replicas ran up to 16 statements at once against one replica's 8, which cost PostgreSQL \
         more CPU per request (see the pool of 16 above); pools of 4 each, the one replica's 8 in all, gave two replicas 8% more of \
         (c) but 14% less of (g), whose creates then queued for a connection (`--baseline-replicas \
         2`, alternate rounds; session 15 had found 4 and 8 within the rounds' spread); the \
         benchmark keeps 8. One statement text \
         bound with arrays for every batch size, instead of a text per size, cost PostgreSQL more CPU \
         per removal (200 against 173 ms per 1,000 with one replica), not less (tried, not kept). Where \
         each replica has cores of its own, a second replica adds CPU, which one 2-core machine cannot \
         show.\n",
    );
    md.push_str("\n### Writes to one scope and to many: the version rows\n\n");
    for replicas in REPLICAS {
        if let (Some(one_row), Some(many_row)) = (
            get(Scenario::Create, replicas),
            get(Scenario::CreateSpread, replicas),
        ) {
            let (one, many) = (&one_row.figures, &many_row.figures);
            md.push_str(&format!(
                "- {replicas} replica{}: (g) one organization {:.0} req/s (p99 {:.2} ms, {:.1} requests per log \
                 flush), (h) {SPREAD_ORGS} organizations {:.0} req/s (p99 {:.2} ms, {:.1} requests per log \
                 flush): {:.2} times as many.\n",
                if replicas == 1 { "" } else { "s" },
                one.rps,
                one.p99,
                one_row.per_flush(),
                many.rps,
                many.p99,
                many_row.per_flush(),
                many.rps / one.rps.max(1.0),
            ));
        }
    }
    md.push_str(
        "\nWhy they are alike: every change to a scope's invitations moves the scope's version \
         (`invitation_versions`, migration 6, by a statement trigger's `INSERT ... ON CONFLICT DO UPDATE`), \
         and an updated row stays locked until its transaction ends, which with `synchronous_commit=on` is \
         once its commit record is on disk. With one version row per scope, writes to one scope committed one \
         after the other, one log flush each, however many connections or replicas sent them: a run before \
         migration 11 (this section as of commit 7a5ee93, same command) had (g) at 840 req/s against (h)'s \
         1,240 with one replica, and at 519 against 1,256 with two, where (f) fell to 476 req/s (38% of one \
         replica). Migration 11 splits a scope's version over 16 rows, each transaction adding to the row of \
         its transaction id modulo 16 and readers summing them, so concurrent writes to one scope lock \
         different rows and their commit records share flushes (group commit), like writes to different \
         scopes: one organization now takes creates about as fast as 32. Migration 12 does the same for the \
         community page counts, whose per-group rows serialized the bulk removals of (d). Removals ((b), \
         (c)) also put up to 64 of a replica's removals in one transaction (the removal queue, \
         ARCHITECTURE.md, `removals`), bulk removals ((d)) up to 16 in one statement \
         (`postgres::bulk_removals`) and updates and creates ((f) to (h)) up to 32 \
         (`postgres::write_batches`); (b) also records the Digest nonce counts (`digest_nonce_counts`, in \
         batches whose commits do not wait for the disk).\n",
    );
    md.push_str("\n### Limits shared by replicas: their cost on (c)\n\n");
    md.push_str(
        "Each replica counts the rate limit and failed authentications in memory, as on SQLite, and every \
         100 ms sends what it counted and reads the others' changes (`limit_counts`, ARCHITECTURE.md): \
         statements per replica per 100 ms, never per request. Their cost, from `pg_stat_statements` over \
         each configuration's rounds of (c) (their warm-ups included), against the time of every statement \
         of those rounds; both replicas run throughout, so the one-replica rounds also count the idle \
         replica's 10 reads a second:\n\n",
    );
    for row in run
        .rows
        .iter()
        .filter(|r| r.figures.scenario == Scenario::Bearer)
    {
        let t = row.statements;
        md.push_str(&format!(
            "- {} replica{}: {:.1} limit statements/s taking {:.2} ms of PostgreSQL time per second, {:.2}% of \
             all statements' {:.0} ms/s, {:.4} ms per request of (c)'s {:.0} req/s.\n",
            row.replicas,
            if row.replicas == 1 { "" } else { "s" },
            t.limit_calls,
            t.limit_ms,
            100.0 * t.limit_ms / t.all_ms.max(0.001),
            t.all_ms,
            t.limit_ms / row.figures.rps.max(1.0),
            row.figures.rps,
        ));
    }
    md.push_str("\n### sqlx's `Any` driver against `PgPool`\n\n");
    md.push_str(
        "`invites-bench drivers` (`invites_store::pool_bench`) runs the store's PostgreSQL hot paths through \
         an `AnyPool` (as the store runs everything off its hot paths) and through a `PgPool` (as it runs \
         them), with the same SQL texts, binds, row type \
         and decoding: a create (the invitation and its audit row in one transaction, then read back by id), \
         a get by id, a list of 1,000 pending invitations decoded, a delete (one-removal DELETE ... RETURNING \
         and its audit row in one transaction). Eight tasks on a pool of eight, each writing to its own \
         organization; three rounds with the drivers alternating, the median round by operations per \
         second; CPU is the load generator's process (user and system), where the driver runs, per \
         operation. The decision it informs is in ARCHITECTURE.md (\"Choices\").\n\n\
         | path | operations | Any ops/s | PgPool ops/s | PgPool / Any | Any CPU us/op | PgPool CPU us/op |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for path in ["create", "get", "list", "delete"] {
        let find = |driver: &str| {
            run.drivers
                .iter()
                .find(|d| d["path"] == path && d["driver"] == driver)
        };
        if let (Some(any), Some(pg)) = (find("any"), find("pg")) {
            let f = |d: &serde_json::Value, k: &str| d[k].as_f64().unwrap_or(f64::NAN);
            let rounds = |d: &serde_json::Value| {
                format!(
                    "{:.0} ({:.0}-{:.0})",
                    f(d, "ops_per_s"),
                    d["ops_per_s_range"][0].as_f64().unwrap_or(f64::NAN),
                    d["ops_per_s_range"][1].as_f64().unwrap_or(f64::NAN)
                )
            };
            md.push_str(&format!(
                "| {path} | {} | {} | {} | {:.2} | {:.1} | {:.1} |\n",
                any["operations"],
                rounds(any),
                rounds(pg),
                f(pg, "ops_per_s") / f(any, "ops_per_s"),
                f(any, "cpu_us_per_op"),
                f(pg, "cpu_us_per_op"),
            ));
        }
    }
    md.push_str(&format!("\n{}", POSTGRES.end));
    md
}
