//! The PostgreSQL engine: several replicas over one database, three sqlx pools.
//!
//! `invitations`, `community` and `removals` hold the PostgreSQL bodies of the hot-path
//! operations whose SQLite twins are in `crate::sqlite` (and `bulk_removals` puts the community
//! bulk removals that queue together in one statement); both share the SQL texts, row type and
//! audit-row builders of `crate::invitations`, `crate::community` and `crate::removals`. Those
//! bodies run on sqlx's PostgreSQL driver (`Postgres::native`, connections taken through
//! [`Postgres::connection`]); everything else runs the texts it shares with SQLite through sqlx's
//! `Any` driver (`Postgres::pool`); the Digest nonce counts are written through a small pool of
//! their own whose commits do not wait for the disk (`Postgres::relaxed`). Every pool counts its
//! waits for a connection (`crate::timed_pool`). The native driver reads rows without `Any`'s conversion of every value
//! (`crate::pool_bench` measures both; the figures are in docs/benchmarks.md, the choice in
//! ARCHITECTURE.md).

pub(crate) mod bulk_removals;
mod community;
pub(crate) mod creates;
pub(crate) mod invitations;
pub(crate) mod removals;
pub(crate) mod removing_replicas;
mod shared_reads;
pub(crate) mod updates;
pub(crate) mod write_batches;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::audit::{self, AuditRow};
use crate::timed_pool::TimedPool;
use crate::{Result, StoreError};

/// Connections of the `Any` pool and of the native pool, each, unless the store is opened with
/// other ([`crate::OpenOptions::postgres_connections`]).
pub const DEFAULT_CONNECTIONS: u32 = 8;
/// The fewest connections a pool may be given: the removal queue's two batches in flight
/// (`removals::POSTGRES_BATCHES`) and room for the other requests beside them.
pub const MIN_CONNECTIONS: u32 = 4;

/// The `Any` pool's name in the pool metrics.
const ANY_POOL: &str = "postgres";
/// The native pool's name in the pool metrics.
const NATIVE_POOL: &str = "postgres_native";
/// The relaxed pool's name in the pool metrics, and its connections.
const RELAXED_POOL: &str = "postgres_relaxed";
pub(crate) const RELAXED_CONNECTIONS: u32 = 2;

/// What a store on PostgreSQL holds.
#[derive(Clone)]
pub(crate) struct Postgres {
    /// Administration, authentication, settings, community lists: the texts shared with SQLite,
    /// through sqlx's `Any` driver (8 connections unless opened with other).
    pub(crate) pool: TimedPool<sqlx::Any>,
    /// The hot paths of `invitations`, `community` and `removals` (8 connections).
    pub(crate) native: TimedPool<sqlx::Postgres>,
    /// The Digest nonce counts (`crate::auth`), 2 connections with `synchronous_commit=off`: a
    /// count is visible to every replica as soon as it commits, as with any commit, but the
    /// commit does not wait for its log record to reach the disk, which took a log flush per
    /// Digest request. What that risks: if PostgreSQL itself crashes, the counts of the last
    /// moment before it (at most three `wal_writer_delay`s, 600 ms by default) are lost, and a
    /// request captured then could be replayed once while its nonce is still valid. Nothing else
    /// runs on it but the removal heartbeats (`removing_replicas`), which lose nothing if lost.
    pub(crate) relaxed: TimedPool<sqlx::Postgres>,
    /// The scopes' invitation versions, read once for the requests that ask at once (the list
    /// cache asks for one per list served).
    pub(crate) versions: Arc<shared_reads::SharedReads<String, i64>>,
}

/// How long a request waits for a connection of a pool: every one busy, or none can be opened
/// because the server is down (the pool keeps trying until then). Past it the request is
/// answered "retry later" (`Retry-After`), well inside the 5 s that a stopped server may cost a
/// request (issue 18; the fault test in crates/invites/tests/cli/pg_faults.rs holds it).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Postgres {
    /// Connects the three pools to the server `url` names: the `Any` and the native pool of
    /// `connections` each.
    pub(crate) async fn connect(
        url: &str,
        connections: u32,
        metrics: &invites_metrics::StoreMetrics,
    ) -> Result<Postgres> {
        let pool = explained(
            url,
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await,
        )
        .await?;
        let options = PgConnectOptions::from_str(url).map_err(StoreError::Database)?;
        let native = native_pool(url, options.clone(), connections).await?;
        let relaxed_options = options.options([("synchronous_commit", "off")]);
        let relaxed = native_pool(url, relaxed_options, RELAXED_CONNECTIONS).await?;
        Ok(Postgres {
            pool: TimedPool::new(pool, ANY_POOL, metrics),
            native: TimedPool::new(native, NATIVE_POOL, metrics),
            relaxed: TimedPool::new(relaxed, RELAXED_POOL, metrics),
            versions: Arc::default(),
        })
    }

    /// A connection of the native pool; when none is idle, the wait is counted.
    pub(crate) async fn connection(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        Ok(self.native.acquire().await?)
    }
}

/// A pool of `connections` on sqlx's PostgreSQL driver over `options` (parsed from `url`, which
/// names the server in errors).
async fn native_pool(url: &str, options: PgConnectOptions, connections: u32) -> Result<PgPool> {
    explained(
        url,
        PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await,
    )
    .await
}

/// A pool's connection outcome; a pool timeout is explained by one direct attempt, since the
/// pool retries refused connections until its timeout and then says only that.
async fn explained<P>(url: &str, connected: sqlx::Result<P>) -> Result<P> {
    match connected {
        Ok(pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => {
            use sqlx::Connection;
            Err(match sqlx::AnyConnection::connect(url).await {
                Err(e) => StoreError::Database(e),
                Ok(_) => StoreError::Busy,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes audit rows in a transaction, up to [`audit::ROWS_PER_STATEMENT`] per statement.
pub(crate) async fn write_audit(
    conn: &mut sqlx::PgConnection,
    rows: &[AuditRow<'_>],
) -> Result<()> {
    for chunk in rows.chunks(audit::ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(audit::insert_sql(chunk.len()));
        for row in chunk {
            query = bind_audit(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `query` with an audit row's values bound, in the audit INSERT's column order.
pub(crate) fn bind_audit<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    row: &'q AuditRow<'_>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(row.entry.at.timestamp_millis())
        .bind(&row.entry.actor_kind)
        .bind(&row.entry.actor_id)
        .bind(&row.entry.actor_display)
        .bind(row.action)
        .bind(row.target_kind)
        .bind(&row.target_id)
        .bind(&row.entry.remote_addr)
        .bind(&row.detail)
}

/// `write`, an INSERT or UPDATE of invitations with parameters `$1` to `$n` that writes at most
/// one row, and an audit row if it wrote one (parameters `$n+1` on, [`bind_audit`]), as one
/// statement: its own transaction, one round trip where BEGIN, the write, the audit INSERT,
/// COMMIT and the read of the invitation took five, the first four each a wait for the replica's
/// next statement with the row and the scope's version slot locked (benchmarks (f) and (g): "idle
/// in transaction" was most of a write's time in `pg_stat_activity` on a busy machine). Returns
/// the invitation as written, as [`crate::invitations::SELECT`] reads it (its organization's and
/// project's names joined to what the write returned), no row if it wrote none.
pub(crate) fn audited_sql(write: &str, n: usize) -> String {
    let audit: Vec<String> = (n + 1..=n + audit::COLUMNS)
        .map(|p| format!("${p}"))
        .collect();
    format!(
        "WITH written AS ({write} RETURNING *), audited AS (INSERT INTO audit_log ({}) \
         SELECT {} FROM written) {}",
        audit::COLUMN_NAMES,
        audit.join(", "),
        select_written()
    )
}

/// [`crate::invitations::SELECT`] over a statement's `written` rows (a CTE of the invitations
/// it wrote) instead of the table: what the write returns, with the names of each
/// invitation's organization and project joined.
pub(crate) fn select_written() -> String {
    let from = "FROM invitations i";
    assert!(
        crate::invitations::SELECT.contains(from),
        "SELECT reads {from}"
    );
    crate::invitations::SELECT.replacen(from, "FROM written i", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audited_write_numbers_the_audit_after_the_write_and_reads_what_it_wrote() {
        let sql = audited_sql(crate::invitations::UPDATE_SQL, 4);
        assert!(sql.starts_with(&format!(
            "WITH written AS ({} RETURNING *)",
            crate::invitations::UPDATE_SQL
        )));
        assert!(sql.contains("SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM written)"));
        assert!(!sql.contains("$14"));
        // The invitation as written, with the names of its organization and project joined.
        assert!(sql.ends_with(
            "FROM written i JOIN orgs o ON o.id = i.org_id LEFT JOIN projects p ON p.id = i.project_id"
        ));
        assert!(!sql.contains("FROM invitations i"));
    }
}
