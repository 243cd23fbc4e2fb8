//! A sqlx pool whose waits for a connection are counted in the pool-wait metrics
//! (`invites_db_pool_waits_total`, `invites_db_pool_wait_seconds_total`), and whose connections
//! can come back without sqlx's round trip on release.
//!
//! sqlx does not report how long an acquisition waited, so every connection of the store's sqlx
//! pools is taken through [`TimedPool::acquire`]: an idle connection is taken at once and counts
//! nothing; otherwise (every connection busy, or a new one being opened) the wait is timed and
//! counted under the pool's name. The SQLite readers, which are not an sqlx pool, count theirs
//! the same way in `sqlite::reader`.
//!
//! A connection dropped back into an sqlx pool is pinged first (a round trip: sqlx 0.8 sends a
//! `Sync` and waits for the server's answer, to flush a rollback an abandoned transaction left
//! and to find a broken connection), in a task of its own, before another request can take it:
//! on PostgreSQL, one round trip more per statement, and a turn of a backend, for every batch
//! of removals (7-19% of (b) to (d)'s throughput in `cargo xtask bench server --database
//! postgres`, sqlx patched without it). A caller whose statement has just ended well, outside a
//! transaction, hands the connection back with [`TimedPool::keep`] instead: it waits in this
//! pool's own stack of warm connections, which [`TimedPool::acquire`] takes first (the most
//! recent first), for at most [`WARM_FOR`]; one kept longer goes back to sqlx the usual way (and
//! is pinged then) when the pool is next used. A connection that failed, or whose statement was
//! abandoned (a request that went away mid-statement), is dropped as before, so sqlx tests it.
//! What is lost: a warm connection whose server went away since its last statement fails its
//! next statement instead of being replaced unseen; a connection taken idle from sqlx
//! (`try_acquire`) never was tested either.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use invites_metrics::StoreMetrics;
use prometheus_client::metrics::counter::Counter;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::Notify;

/// How long a kept connection waits in the warm stack before it goes back to sqlx.
pub(crate) const WARM_FOR: Duration = Duration::from_millis(250);

/// A sqlx pool, its name in the pool metrics, its wait counters and its warm connections.
pub(crate) struct TimedPool<DB: Database> {
    pool: Pool<DB>,
    name: &'static str,
    /// Acquisitions that waited for a connection, and how long in all.
    waits: Counter,
    wait_seconds: Counter<f64, AtomicU64>,
    warm: Arc<Warm<DB>>,
}

/// Connections kept by [`TimedPool::keep`], the oldest first, with when each was kept; and the
/// signal to acquisitions waiting in sqlx that one was kept.
struct Warm<DB: Database> {
    stack: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    kept: Notify,
}

// Not derived: that would ask `DB: Clone`, which the driver types are not.
impl<DB: Database> Clone for TimedPool<DB> {
    fn clone(&self) -> Self {
        TimedPool {
            pool: self.pool.clone(),
            name: self.name,
            waits: self.waits.clone(),
            wait_seconds: self.wait_seconds.clone(),
            warm: Arc::clone(&self.warm),
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
            warm: Arc::new(Warm {
                stack: Mutex::new(Vec::new()),
                kept: Notify::new(),
            }),
        }
    }

    /// A connection of the pool: a warm one, else an idle one of sqlx's; when there is neither,
    /// the wait (for sqlx, or for a connection kept meanwhile, whichever comes first) is counted.
    pub(crate) async fn acquire(&self) -> sqlx::Result<PoolConnection<DB>> {
        if let Some(conn) = self.take_warm() {
            return Ok(conn);
        }
        if let Some(conn) = self.pool.try_acquire() {
            return Ok(conn);
        }
        let started = Instant::now();
        let from_sqlx = self.pool.acquire();
        tokio::pin!(from_sqlx);
        let conn = loop {
            let kept = self.warm.kept.notified();
            tokio::pin!(kept);
            // Registered before looking, so that a connection kept after the look wakes it.
            kept.as_mut().enable();
            if let Some(conn) = self.take_warm() {
                break conn;
            }
            tokio::select! {
                conn = &mut from_sqlx => break conn?,
                () = &mut kept => {}
            }
        };
        self.waits.inc();
        self.wait_seconds.inc_by(started.elapsed().as_secs_f64());
        Ok(conn)
    }

    /// Runs `statement`, one statement and not a transaction, on a connection of the pool
    /// ([`TimedPool::acquire`]), which goes back warm ([`TimedPool::keep`]) if it ended well and
    /// the usual way if it failed or was abandoned.
    pub(crate) async fn run<T>(
        &self,
        statement: impl AsyncFnOnce(&mut DB::Connection) -> sqlx::Result<T>,
    ) -> sqlx::Result<T> {
        let mut conn = self.acquire().await?;
        let done = statement(&mut conn).await?;
        self.keep(conn);
        Ok(done)
    }

    /// Hands `conn` back without sqlx's ping: only right after a statement of its own (not in a
    /// transaction) ended well, its answer read.
    pub(crate) fn keep(&self, conn: PoolConnection<DB>) {
        let now = Instant::now();
        let stale = {
            let mut stack = self.warm.stack.lock().unwrap_or_else(|e| e.into_inner());
            // Looked at under the lock: `close` marks the pool closed before it empties the
            // stack under it, so nothing kept stays behind once it has.
            if self.pool.is_closed() {
                drop(stack);
                drop(conn);
                return;
            }
            let stale = take_stale(&mut stack, now);
            stack.push((conn, now));
            stale
        };
        self.warm.kept.notify_one();
        // Back to sqlx, outside the lock (each drop spawns sqlx's ping).
        drop(stale);
    }

    /// The most recently kept connection, unless it waited longer than [`WARM_FOR`]; those that
    /// did go back to sqlx.
    fn take_warm(&self) -> Option<PoolConnection<DB>> {
        let now = Instant::now();
        let (taken, stale) = {
            let mut stack = self.warm.stack.lock().unwrap_or_else(|e| e.into_inner());
            let stale = take_stale(&mut stack, now);
            (stack.pop().map(|(conn, _)| conn), stale)
        };
        drop(stale);
        taken
    }

    /// How many connections wait in the warm stack.
    pub(crate) fn warm(&self) -> usize {
        self.warm
            .stack
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Sets the pool's gauges of open and idle connections in `metrics` (warm ones are idle).
    pub(crate) fn set_gauges(&self, metrics: &StoreMetrics) {
        let idle = self.pool.num_idle() + self.warm();
        metrics.set_pool(self.name, self.pool.size(), idle);
    }

    /// Closes the pool: the warm connections go back to sqlx first, which waits for every
    /// connection to come back.
    pub(crate) async fn close(&self) {
        // sqlx marks the pool closed when `close` is called, before its future runs.
        let closing = self.pool.close();
        let warm = std::mem::take(&mut *self.warm.stack.lock().unwrap_or_else(|e| e.into_inner()));
        drop(warm);
        closing.await;
    }

    /// The pool itself, for tests and sqlx's own uses (migrations); statements take their
    /// connection through [`TimedPool::acquire`], so that waits are counted.
    pub(crate) fn inner(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// The connections of `stack` kept longer than [`WARM_FOR`] before `now` (the oldest are at the
/// bottom), taken off it.
fn take_stale<C>(stack: &mut Vec<(C, Instant)>, now: Instant) -> Vec<(C, Instant)> {
    let fresh = stack.partition_point(|(_, at)| now.saturating_duration_since(*at) > WARM_FOR);
    stack.drain(..fresh).collect()
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

    /// A pool of `max` connections to one in-memory SQLite database each.
    async fn memory_pool(max: u32, metrics: &StoreMetrics) -> TimedPool<sqlx::Any> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect("sqlite::memory:")
            .await
            .unwrap();
        TimedPool::new(pool, "test", metrics)
    }

    /// Whether `conn` is the connection that ran [`mark`] (each has a database of its own).
    async fn marked(conn: &mut sqlx::AnyConnection) -> bool {
        sqlx::query("SELECT 1 FROM marked")
            .execute(conn)
            .await
            .is_ok()
    }

    async fn mark(conn: &mut sqlx::AnyConnection) -> sqlx::Result<()> {
        sqlx::query("CREATE TABLE marked (x INTEGER)")
            .execute(conn)
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn a_kept_connection_is_taken_next_and_counts_as_idle() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(2, &metrics).await;
        until_idle(&timed).await;
        timed.run(async |c| mark(c).await).await.unwrap();
        assert_eq!(timed.warm(), 1);
        timed.set_gauges(&metrics);
        let idle = metrics.pool_idle.get_or_create(&[("pool", "test")]).get();
        assert_eq!(idle, 1, "a warm connection is an idle one");
        let mut conn = timed.acquire().await.unwrap();
        assert!(marked(&mut conn).await, "the warm connection was not taken");
        assert_eq!(timed.warm(), 0);
    }

    #[tokio::test]
    async fn a_failed_statement_gives_its_connection_back_to_sqlx() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        until_idle(&timed).await;
        let failed = timed
            .run(async |c| sqlx::query("SELECT * FROM missing").execute(c).await)
            .await;
        assert!(failed.is_err());
        assert_eq!(timed.warm(), 0);
        until_idle(&timed).await;
    }

    #[tokio::test]
    async fn a_connection_kept_too_long_goes_back_to_sqlx() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        until_idle(&timed).await;
        timed.run(async |c| mark(c).await).await.unwrap();
        assert_eq!(timed.warm(), 1);
        tokio::time::sleep(WARM_FOR + Duration::from_millis(50)).await;
        // Taken from sqlx (the same connection: the pool has one), after the warm stack gave it
        // back.
        let mut conn = timed.acquire().await.unwrap();
        assert!(marked(&mut conn).await);
        assert_eq!(timed.warm(), 0);
    }

    #[tokio::test]
    async fn an_acquisition_waiting_for_sqlx_takes_a_connection_kept_meanwhile() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        until_idle(&timed).await;
        let mut only = timed.acquire().await.unwrap();
        mark(&mut only).await.unwrap();
        let waiting = tokio::spawn({
            let timed = timed.clone();
            async move {
                let started = Instant::now();
                let mut conn = timed.acquire().await.unwrap();
                (marked(&mut conn).await, started.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the acquisition did not wait");
        timed.keep(only);
        let (same, waited) = waiting.await.unwrap();
        assert!(same);
        // Well before sqlx's acquire timeout (5 s here) would have ended the wait.
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        let (waits, _) = metrics.pool_wait_handles("test");
        assert_eq!(waits.get(), 1);
    }

    #[tokio::test]
    async fn closing_takes_the_warm_connections_back_and_keeps_no_more() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(2, &metrics).await;
        let late = timed.acquire().await.unwrap();
        timed.run(async |c| mark(c).await).await.unwrap();
        assert_eq!(timed.warm(), 1);
        // `close` waits for every connection: `late` comes back while it does.
        let closing = tokio::spawn({
            let timed = timed.clone();
            async move { timed.close().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        timed.keep(late);
        assert_eq!(timed.warm(), 0);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close ended")
            .unwrap();
        assert!(timed.inner().is_closed());
    }
}
