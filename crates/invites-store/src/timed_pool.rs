//! A sqlx pool whose waits for a connection are counted in the pool-wait metrics
//! (`invites_db_pool_waits_total`, `invites_db_pool_wait_seconds_total`).
//!
//! sqlx does not report how long an acquisition waited, so every connection of the store's sqlx
//! pools is taken through [`TimedPool::acquire`]: an idle connection is taken at once and counts
//! nothing; otherwise (every connection busy, or a new one being opened) the wait is timed and
//! counted under the pool's name. The SQLite readers, which are not an sqlx pool, count theirs
//! the same way in `sqlite::reader`.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use invites_metrics::StoreMetrics;
use prometheus_client::metrics::counter::Counter;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// A sqlx pool, its name in the pool metrics and its wait counters.
pub(crate) struct TimedPool<DB: Database> {
    pool: Pool<DB>,
    name: &'static str,
    /// Acquisitions that waited for a connection, and how long in all.
    waits: Counter,
    wait_seconds: Counter<f64, AtomicU64>,
}

// Not derived: that would ask `DB: Clone`, which the driver types are not.
impl<DB: Database> Clone for TimedPool<DB> {
    fn clone(&self) -> Self {
        TimedPool {
            pool: self.pool.clone(),
            name: self.name,
            waits: self.waits.clone(),
            wait_seconds: self.wait_seconds.clone(),
        }
    }
}

impl<DB: Database> TimedPool<DB> {
    /// `pool`, whose waits are counted in `metrics` under `name` (the name of its connection
    /// gauges too, see [`TimedPool::set_gauges`]).
    pub(crate) fn new(pool: Pool<DB>, name: &'static str, metrics: &StoreMetrics) -> Self {
        let (waits, wait_seconds) = metrics.pool_wait_handles(name);
        TimedPool {
            pool,
            name,
            waits,
            wait_seconds,
        }
    }

    /// A connection of the pool; when none is idle, the wait is counted.
    pub(crate) async fn acquire(&self) -> sqlx::Result<PoolConnection<DB>> {
        if let Some(conn) = self.pool.try_acquire() {
            return Ok(conn);
        }
        let started = Instant::now();
        let conn = self.pool.acquire().await?;
        self.waits.inc();
        self.wait_seconds.inc_by(started.elapsed().as_secs_f64());
        Ok(conn)
    }

    /// Sets the pool's gauges of open and idle connections in `metrics`.
    pub(crate) fn set_gauges(&self, metrics: &StoreMetrics) {
        metrics.set_pool(self.name, self.pool.size(), self.pool.num_idle());
    }

    /// The pool itself, for closing it and for tests; statements take their connection through
    /// [`TimedPool::acquire`], so that waits are counted.
    pub(crate) fn inner(&self) -> &Pool<DB> {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::any::AnyPoolOptions;

    use super::*;

    /// Waits (up to a second) until the pool's one connection is back and idle: a dropped
    /// connection returns to its pool from a task of its own.
    async fn until_idle(pool: &TimedPool<sqlx::Any>) {
        let started = Instant::now();
        while pool.inner().num_idle() < 1 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "the connection did not come back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_wait_for_a_busy_connection_is_counted_and_an_idle_one_is_not() {
        sqlx::any::install_default_drivers();
        let metrics = StoreMetrics::default();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let timed = TimedPool::new(pool, "test", &metrics);
        let (waits, wait_seconds) = metrics.pool_wait_handles("test");
        until_idle(&timed).await;

        // The idle connection is taken at once: nothing counted.
        let mut first = timed.acquire().await.unwrap();
        assert_eq!(waits.get(), 0);
        assert_eq!(wait_seconds.get(), 0.0);

        // A second acquisition waits until the first connection is released.
        let second = tokio::spawn({
            let timed = timed.clone();
            async move {
                let mut conn = timed.acquire().await.unwrap();
                let (one,): (i64,) = sqlx::query_as("SELECT 1")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                one
            }
        });
        let (one,): (i64,) = sqlx::query_as("SELECT 1")
            .fetch_one(&mut *first)
            .await
            .unwrap();
        assert_eq!(one, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "the second acquisition did not wait");
        drop(first);
        assert_eq!(second.await.unwrap(), 1);
        assert_eq!(waits.get(), 1);
        assert!(
            wait_seconds.get() >= 0.02,
            "waited {} s, at least 0.02 s expected",
            wait_seconds.get()
        );

        // Once it is idle again, taking it counts nothing more.
        until_idle(&timed).await;
        let _third = timed.acquire().await.unwrap();
        assert_eq!(waits.get(), 1);
    }
}
