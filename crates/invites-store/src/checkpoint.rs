//! SQLite only: folds the write-ahead log into the database file from a background task, so the
//! writer connection never does it in the middle of a commit.
//!
//! SQLite's default is that the connection whose commit grows the log past 1,000 pages copies
//! the log into the database and syncs it before that commit returns: every thousandth write
//! waits milliseconds for the disk, and so does everything queued behind the single writer. Here
//! automatic checkpoints are off on every connection and this task runs a PASSIVE checkpoint
//! (which never blocks readers or the writer) on a read connection every [`INTERVAL`]. Should
//! the log still grow past [`RESTART_FRAMES`] (writes outpacing passive checkpoints), a RESTART
//! checkpoint waits for the writer once and starts the log over, which bounds its size.

use std::sync::Weak;
use std::time::Duration;

use sqlx::AnyPool;

/// How often the log is folded into the database.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);
/// Log frames (pages) beyond which a checkpoint restarts the log: 64 MiB at 1 KiB pages. Each
/// restart holds the writer for a moment, so not much lower.
pub(crate) const RESTART_FRAMES: i64 = 65_536;

/// Starts the checkpointing task; it ends when `alive` can no longer be upgraded (every
/// [`crate::Store`] clone dropped) or the pool is closed.
pub(crate) fn start<T: Send + Sync + 'static>(pool: AnyPool, alive: Weak<T>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() || pool.is_closed() {
                return;
            }
            let passive: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await;
            match passive {
                Ok((_, frames, _)) if frames > RESTART_FRAMES => {
                    let restart: Result<(i64, i64, i64), _> =
                        sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
                            .fetch_one(&pool)
                            .await;
                    tracing::debug!(frames, ?restart, "write-ahead log restarted");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "checkpoint failed; retrying"),
            }
        }
    });
}
