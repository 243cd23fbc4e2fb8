//! SQLite only: the hot reads (lists of up to thousands of rows, an invitation by id) on
//! rusqlite connections in blocking tasks.
//!
//! sqlx's SQLite driver hands every row from its worker thread to the async task separately, so
//! a list of 1,000 invitations cost about as many thread wake-ups as rows, and even a single row
//! costs several. Here a query runs to the end on one thread and its rows come back together:
//! one hand-off per query. At most
//! [`READERS`] run at once; their connections are kept for reuse.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::{Result, StoreError};

/// Reads running at once at most, and connections kept.
const READERS: usize = 4;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Arc<Readers> {
        Arc::new(Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(READERS),
        })
    }

    /// Runs `read` on a read-only connection in a blocking task.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Sqlite("the readers are closed".into()))?;
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
