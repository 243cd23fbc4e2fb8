//! SQLite only: folds the write-ahead log into the database file from a background task, so the
//! writer connection never does it in the middle of a commit.
//!
//! SQLite's default is that the connection whose commit grows the log past 1,000 pages copies
//! the log into the database and syncs it before that commit returns: every thousandth write
//! waits milliseconds for the disk, and so does everything queued behind the single writer. Here
//! automatic checkpoints are off on every connection and this task runs a PASSIVE checkpoint
//! (which never blocks readers or the writer) on a read connection every [`INTERVAL`].
//!
//! Under a steady stream of writes the log never empties by itself (the writer appends while the
//! checkpoint copies), so once it holds more than [`RESTART_FRAMES`] the task asks the writer
//! thread to start it over: between two batches, right after a passive checkpoint copied almost
//! everything, the writer's own RESTART checkpoint has little left to copy and no lock to wait
//! for. Should the log still reach four times that (writes by other connections while the writer
//! thread is idle), this task runs the RESTART itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::timed_pool::TimedPool;

/// How often the log is folded into the database.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);
/// Log frames (pages) beyond which a checkpoint restarts the log: 64 MiB at 1 KiB pages. Each
/// restart holds the writer for a moment, so not much lower.
pub(crate) const RESTART_FRAMES: i64 = 65_536;

/// Starts the checkpointing task; it ends when `alive` can no longer be upgraded (every
/// [`crate::Store`] clone dropped) or the pool is closed.
/// `restart_wanted` is the flag the writer thread checks between batches (see
/// `writer::Writer::start`).
pub(crate) fn start<T: Send + Sync + 'static>(
    pool: TimedPool<sqlx::Any>,
    alive: Weak<T>,
    restart_wanted: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() || pool.inner().is_closed() {
                return;
            }
            match wal_checkpoint(&pool, "PASSIVE").await {
                Ok((_, frames, _)) if frames > 4 * RESTART_FRAMES => {
                    let restart = wal_checkpoint(&pool, "RESTART").await;
                    tracing::debug!(frames, ?restart, "write-ahead log restarted");
                }
                Ok((_, frames, _)) if frames > RESTART_FRAMES => {
                    restart_wanted.store(true, Ordering::Release);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "checkpoint failed; retrying"),
            }
        }
    });
}

/// `PRAGMA wal_checkpoint(mode)` on a connection of `pool` (PASSIVE, RESTART or TRUNCATE):
/// SQLite's (busy, frames in the log, frames checkpointed).
pub(crate) async fn wal_checkpoint(
    pool: &TimedPool<sqlx::Any>,
    mode: &str,
) -> sqlx::Result<(i64, i64, i64)> {
    let mut conn = pool.acquire().await?;
    sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
        .fetch_one(&mut *conn)
        .await
}
