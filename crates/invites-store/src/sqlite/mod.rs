//! The SQLite engine: sqlx pools for reads and administration, and the hot paths on rusqlite
//! (the writer thread, the reader connections), with the background checkpointer.
//!
//! `invitations`, `community` and `removals` hold the SQLite bodies of the hot-path operations
//! whose PostgreSQL twins are in `crate::postgres`; both share the SQL texts, row type and
//! audit-row builders of `crate::invitations`, `crate::community` and `crate::removals`.

mod batch_counts;
pub(crate) mod checkpoint;
mod community;
mod invitations;
pub(crate) mod reader;
pub(crate) mod removals;
pub(crate) mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use crate::audit::{self, AuditRow};
use crate::timed_pool::TimedPool;
use crate::{Result, StoreError};

/// The read pool's name in the pool metrics.
const READ_POOL: &str = "sqlx_read";
/// The write pool's name in the pool metrics.
const WRITE_POOL: &str = "sqlx_write";

/// What a store on SQLite holds.
#[derive(Clone)]
pub(crate) struct Sqlite {
    /// sqlx connections for reads outside the hot paths (administration, authentication).
    pub(crate) pool: TimedPool<sqlx::Any>,
    /// One sqlx connection for writes outside the hot paths. SQLite runs one writer at a time,
    /// and writers on several connections would wait for each other in SQLite's busy handler,
    /// which sleeps; queueing for this connection in the pool costs nothing (but is counted in
    /// the pool-wait metrics, like every pool's).
    pub(crate) sqlx_writer: TimedPool<sqlx::Any>,
    /// The writer thread: hot-path writes, batched (see `writer`).
    pub(crate) writer: writer::Writer,
    /// Connections for the hot reads (see `reader`).
    pub(crate) readers: Arc<reader::Readers>,
    /// The checkpointer runs while this lives (in every clone of the store).
    _alive: Arc<()>,
}

/// Settings of every SQLite connection that writes, through sqlx or on the writer thread:
/// checkpoints run in the background (see `checkpoint`), statement journals stay in memory.
pub(crate) const CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;";

/// The file an `sqlite:` URL names (`sqlite://path?options` or `sqlite:path`).
pub(crate) fn path_of_url(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let file = rest.split_once('?').map_or(rest, |(file, _)| file);
    PathBuf::from(file)
}

/// Opens (creating it if missing) the database `url` names (`sqlite://path`, `sqlite:path` or a
/// plain path): the pool for reads (4 connections), the one for writes (1), both counting their
/// waits in `metrics`, and the file's path.
pub(crate) async fn connect(
    url: &str,
    metrics: &invites_metrics::StoreMetrics,
) -> Result<(TimedPool<sqlx::Any>, TimedPool<sqlx::Any>, PathBuf)> {
    // Every connection (the pools, the writer thread, the readers) opens the file anew; in
    // memory, each would see a database of its own.
    if path_of_url(url).as_os_str() == ":memory:" || url.contains("mode=memory") {
        return Err(StoreError::Sqlite(
            "an in-memory SQLite database cannot be shared by the server's connections; \
             give a file path"
                .into(),
        ));
    }
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    let url = if url.contains('?') {
        url
    } else {
        format!("{url}?mode=rwc")
    };
    let options = |connections: u32| {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // 1 KiB pages (new databases only; before WAL mode): a write rewrites a
                    // whole page per index it touches, so smaller pages mean less to log and
                    // sync; measured 1.5-2x the removals/s of 4 KiB pages here.
                    conn.execute("PRAGMA page_size = 1024;").await?;
                    conn.execute(CONNECTION_PRAGMAS).await?;
                    Ok(())
                })
            })
    };
    // The writer first: it creates the file and switches it to WAL.
    let writer = options(1).connect(&url).await?;
    let pool = options(4).connect(&url).await?;
    Ok((
        TimedPool::new(pool, READ_POOL, metrics),
        TimedPool::new(writer, WRITE_POOL, metrics),
        path_of_url(&url),
    ))
}

impl Sqlite {
    /// The engine over pools of a migrated database at `path`: starts the checkpointer (which
    /// runs while this or a clone lives), the readers and the writer thread.
    pub(crate) fn start(
        pool: TimedPool<sqlx::Any>,
        sqlx_writer: TimedPool<sqlx::Any>,
        path: PathBuf,
        metrics: &invites_metrics::StoreMetrics,
    ) -> Result<Sqlite> {
        let alive = Arc::new(());
        let restart_wanted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        checkpoint::start(
            pool.clone(),
            Arc::downgrade(&alive),
            Arc::clone(&restart_wanted),
        );
        let readers = reader::Readers::new(path.clone(), metrics);
        let writer = writer::Writer::start(path, restart_wanted, metrics.clone())
            .map_err(|e| StoreError::Sqlite(format!("cannot start the writer: {e}")))?;
        Ok(Sqlite {
            pool,
            sqlx_writer,
            writer,
            readers,
            _alive: alive,
        })
    }
}

/// Writes audit rows on the writer thread, up to [`audit::ROWS_PER_STATEMENT`] per statement.
pub(crate) fn write_audit(conn: &rusqlite::Connection, rows: &[AuditRow<'_>]) -> Result<()> {
    use rusqlite::ToSql;
    for chunk in rows.chunks(audit::ROWS_PER_STATEMENT) {
        let at: Vec<i64> = chunk
            .iter()
            .map(|r| r.entry.at.timestamp_millis())
            .collect();
        let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * audit::COLUMNS);
        for (row, at) in chunk.iter().zip(&at) {
            values.extend([
                at as &dyn ToSql,
                &row.entry.actor_kind,
                &row.entry.actor_id,
                &row.entry.actor_display,
                &row.action,
                &row.target_kind,
                &row.target_id,
                &row.entry.remote_addr,
                &row.detail,
            ]);
        }
        conn.prepare_cached(audit::insert_sql(chunk.len()))?
            .execute(values.as_slice())?;
    }
    Ok(())
}
