//! SQLite only: the hot reads (lists of up to thousands of rows, an invitation by id) on
//! rusqlite connections in blocking tasks.
//!
//! sqlx's SQLite driver hands every row from its worker thread to the async task separately, so
//! a list of 1,000 invitations cost about as many thread wake-ups as rows, and even a single row
//! costs several. Here a query runs to the end on one thread and its rows come back together:
//! one hand-off per query. At most
//! [`READERS`] run at once; their connections are kept for reuse.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use invites_metrics::StoreMetrics;
use prometheus_client::metrics::counter::Counter;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::{Result, StoreError};

/// Reads running at once at most, and connections kept.
const READERS: usize = 4;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    /// Reads that waited for a permit, and how long in all.
    waits: Counter,
    wait_seconds: Counter<f64, AtomicU64>,
}

/// The readers' name in the pool metrics.
pub(crate) const POOL: &str = "sqlite_readers";

impl Readers {
    pub(crate) fn new(path: PathBuf, metrics: &StoreMetrics) -> Arc<Readers> {
        let (waits, wait_seconds) = metrics.pool_wait_handles(POOL);
        Arc::new(Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
            waits,
            wait_seconds,
        })
    }

    /// Connections open, and those idle (neither counts one being opened).
    pub(crate) fn connections(&self) -> (u32, usize) {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let busy = READERS - self.permits.available_permits();
        ((idle + busy) as u32, idle)
    }

    /// Runs `read` on a read-only connection in a blocking task.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let closed = |_| StoreError::Sqlite("the readers are closed".into());
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let started = Instant::now();
                let permit = self.permits.acquire().await.map_err(closed)?;
                self.waits.inc();
                self.wait_seconds.inc_by(started.elapsed().as_secs_f64());
                permit
            }
        };
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let reuse = me.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match reuse {
                Some(conn) => conn,
                None => open(&me.path)?,
            };
            let result = read(&conn);
            me.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("read task failed: {e}")))?
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}
