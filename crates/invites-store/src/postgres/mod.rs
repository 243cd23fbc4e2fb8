//! The PostgreSQL engine: several replicas over one database, two sqlx pools.
//!
//! `invitations`, `community` and `removals` hold the PostgreSQL bodies of the hot-path
//! operations whose SQLite twins are in `crate::sqlite`; both share the SQL texts, row type and
//! audit-row builders of `crate::invitations`, `crate::community` and `crate::removals`. Those
//! bodies run on sqlx's PostgreSQL driver (`Postgres::native`, connections taken through
//! [`Postgres::connection`], which counts the waits); everything else runs the texts it shares
//! with SQLite through sqlx's `Any` driver (`Postgres::pool`). The native driver reads rows
//! without `Any`'s conversion of every value (`crate::pool_bench` measures both; the figures
//! are in docs/benchmarks.md, the choice in ARCHITECTURE.md).

mod community;
mod invitations;
pub(crate) mod removals;

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AnyPool, PgPool};

use crate::audit::{self, AuditRow};
use crate::{Result, StoreError};

/// Connections of each pool.
const CONNECTIONS: u32 = 8;

/// The native pool's name in the pool metrics (the `Any` pool's is `postgres`).
pub(crate) const NATIVE_POOL: &str = "postgres_native";

/// What a store on PostgreSQL holds.
#[derive(Clone)]
pub(crate) struct Postgres {
    /// Administration, authentication, settings, community lists: the texts shared with SQLite,
    /// through sqlx's `Any` driver (8 connections).
    pub(crate) pool: AnyPool,
    /// The hot paths of `invitations`, `community` and `removals` (8 connections).
    pub(crate) native: PgPool,
    /// Acquisitions of `native` that waited for a connection, and how long in all.
    waits: Counter,
    wait_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

/// How long a request waits for a connection of a pool: every one busy, or none can be opened
/// because the server is down (the pool keeps trying until then). Past it the request is
/// answered "retry later" (`Retry-After`), well inside the 5 s that a stopped server may cost a
/// request (issue 18; the fault test in crates/invites/tests/cli/pg_faults.rs holds it).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Postgres {
    /// Connects both pools to the server `url` names.
    pub(crate) async fn connect(
        url: &str,
        metrics: &invites_metrics::StoreMetrics,
    ) -> Result<Postgres> {
        let pool = explained(
            url,
            AnyPoolOptions::new()
                .max_connections(CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await,
        )
        .await?;
        let native = explained(
            url,
            PgPoolOptions::new()
                .max_connections(CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await,
        )
        .await?;
        let (waits, wait_seconds) = metrics.pool_wait_handles(NATIVE_POOL);
        Ok(Postgres {
            pool,
            native,
            waits,
            wait_seconds,
        })
    }

    /// A connection of the native pool; when none is idle, the wait is counted.
    pub(crate) async fn connection(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        if let Some(conn) = self.native.try_acquire() {
            return Ok(conn);
        }
        let started = Instant::now();
        let conn = self.native.acquire().await?;
        self.waits.inc();
        self.wait_seconds.inc_by(started.elapsed().as_secs_f64());
        Ok(conn)
    }
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
            query = query
                .bind(row.entry.at.timestamp_millis())
                .bind(&row.entry.actor_kind)
                .bind(&row.entry.actor_id)
                .bind(&row.entry.actor_display)
                .bind(row.action)
                .bind(row.target_kind)
                .bind(&row.target_id)
                .bind(&row.entry.remote_addr)
                .bind(&row.detail);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
