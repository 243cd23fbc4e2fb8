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
//! transaction, hands the connection back with [`TimedPool::keep`] instead: it goes to the
//! oldest acquisition waiting, else onto this pool's own stack of warm connections, which
//! [`TimedPool::acquire`] takes first (the most recent first). One kept longer than [`WARM_FOR`]
//! ago is tested before use, as sqlx tests an idle connection, and the others that old go back to
//! sqlx the usual way (pinged then). A connection that failed, or whose statement was abandoned
//! (a request that went away mid-statement), is dropped as before, so sqlx tests it.
//! An acquisition that finds no connection waits for one kept and, once it holds one of as many
//! places in sqlx's queue as the pool has connections, for sqlx's too (each connection sqlx
//! frees goes to one of them, and one whose waiter was served meanwhile keeps it for the next
//! waiter), whichever comes first, within sqlx's acquire timeout.
//! Every [`THROUGH_SQLX`]th connection handed back goes to sqlx anyway, so that its
//! `max_lifetime` (30 minutes) still retires connections that never idle for [`WARM_FOR`].
//! What is lost: a warm connection whose server went away since its last statement fails its
//! next statement instead of being replaced unseen; a connection taken idle from sqlx
//! (`try_acquire`) never was tested either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use invites_metrics::StoreMetrics;
use prometheus_client::metrics::counter::Counter;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::oneshot;

/// How long a kept connection waits in the warm stack before it goes back to sqlx.
pub(crate) const WARM_FOR: Duration = Duration::from_millis(250);
/// One connection of this many handed back to [`TimedPool::keep`] goes to sqlx instead (its
/// release checks the connection's age): one ping per 1,024 statements.
pub(crate) const THROUGH_SQLX: u64 = 1024;

/// A sqlx pool, its name in the pool metrics, its wait counters and its warm connections.
pub(crate) struct TimedPool<DB: Database> {
    pool: Pool<DB>,
    name: &'static str,
    /// Acquisitions that waited for a connection, and how long in all.
    waits: Counter,
    wait_seconds: Counter<f64, AtomicU64>,
    warm: Arc<Warm<DB>>,
}

/// The connections [`TimedPool::keep`] was handed, and the acquisitions waiting for one.
struct Warm<DB: Database> {
    state: Mutex<WarmState<DB>>,
    /// Connections handed to [`TimedPool::keep`] so far.
    handed_back: AtomicU64,
    /// Places in sqlx's queue for acquisitions that wait ([`TimedPool::acquire`]), as many as
    /// the pool's connections; an acquisition served by a kept connection leaves its sqlx
    /// acquisition to end on its own, holding its place until then. Without a bound each waiter
    /// so served left one behind: under load (benchmark (g), 32 requests over 8 connections)
    /// thousands waited out sqlx's acquire timeout, and a connection sqlx freed went from one to
    /// the next with a ping each.
    racing: Arc<tokio::sync::Semaphore>,
}

struct WarmState<DB: Database> {
    /// Kept connections, the oldest first, with when each was kept.
    stack: Vec<(PoolConnection<DB>, Instant)>,
    /// Acquisitions waiting for a connection, the oldest first: a kept connection goes to the
    /// oldest still waiting, before any newcomer can take it off the stack (sqlx's own queue is
    /// first come, first served too).
    waiters: VecDeque<oneshot::Sender<PoolConnection<DB>>>,
}

impl<DB: Database> Warm<DB> {
    fn lock(&self) -> std::sync::MutexGuard<'_, WarmState<DB>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<DB: Database> Drop for Warm<DB> {
    /// A pool dropped unclosed outside a runtime: its warm connections are closed where they
    /// are, since giving them back to sqlx spawns a task (which needs a runtime).
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            for (conn, _) in state.stack.drain(..) {
                drop(conn.detach());
            }
        }
    }
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
        let places = pool.options().get_max_connections() as usize;
        TimedPool {
            pool,
            name,
            waits,
            wait_seconds,
            warm: Arc::new(Warm {
                state: Mutex::new(WarmState {
                    stack: Vec::new(),
                    waiters: VecDeque::new(),
                }),
                handed_back: AtomicU64::new(0),
                racing: Arc::new(tokio::sync::Semaphore::new(places)),
            }),
        }
    }

    /// A connection of the pool: a warm one, else an idle one of sqlx's; when there is neither,
    /// the wait (for sqlx, or for a connection kept meanwhile, whichever comes first) is counted.
    pub(crate) async fn acquire(&self) -> sqlx::Result<PoolConnection<DB>> {
        if let Some(conn) = self.take_warm().await {
            return Ok(conn);
        }
        if let Some(conn) = self.pool.try_acquire() {
            return Ok(conn);
        }
        let started = Instant::now();
        let (waiter, handed) = oneshot::channel();
        let kept_meanwhile = {
            let mut state = self.warm.lock();
            match state.stack.pop() {
                Some((conn, _)) => Some(conn),
                None => {
                    // Senders whose acquisition ended (through sqlx) go first: the queue only
                    // holds acquisitions still waiting.
                    state.waiters.retain(|w| !w.is_closed());
                    state.waiters.push_back(waiter);
                    None
                }
            }
        };
        let conn = match kept_meanwhile {
            Some(conn) => conn,
            None => {
                let timeout = self.pool.options().get_acquire_timeout();
                tokio::time::timeout(timeout, self.wait_for_one(handed))
                    .await
                    .unwrap_or(Err(sqlx::Error::PoolTimedOut))?
            }
        };
        self.waits.inc();
        self.wait_seconds.inc_by(started.elapsed().as_secs_f64());
        Ok(conn)
    }

    /// The wait of an acquisition registered as a waiter (`handed`): for a kept connection, and
    /// once it has a place in sqlx's queue ([`Warm::racing`]) for sqlx's too, whichever comes
    /// first. The places are as many as the pool's connections: each connection sqlx frees goes
    /// to one of them, and from one whose waiter was served meanwhile to the oldest waiter.
    async fn wait_for_one(
        &self,
        mut handed: oneshot::Receiver<PoolConnection<DB>>,
    ) -> sqlx::Result<PoolConnection<DB>> {
        let place = tokio::select! {
            biased;
            conn = &mut handed => return conn.map_err(|_| sqlx::Error::PoolClosed),
            place = Arc::clone(&self.warm.racing).acquire_owned() => {
                place.map_err(|_| sqlx::Error::PoolClosed)?
            }
        };
        let pool = self.pool.clone();
        let mut from_sqlx = Box::pin(async move {
            let conn = pool.acquire().await;
            drop(place);
            conn
        });
        tokio::select! {
            conn = &mut from_sqlx => conn,
            Ok(conn) = &mut handed => {
                // sqlx may be opening or testing a connection for this acquisition: cut off,
                // it would close that connection. It ends on its own, and the connection it
                // brings is kept, as one fresh from a statement: dropped, sqlx would ping it
                // and hand it to the next acquisition in its queue, as often as not one like
                // this, whose waiter was served meanwhile; so under load connections went
                // round those with a ping each.
                let pool = self.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = from_sqlx.await {
                        pool.keep(conn);
                    }
                });
                Ok(conn)
            }
        }
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
    /// transaction) ended well, its answer read, or as sqlx handed it out. It goes to the oldest
    /// acquisition waiting, else on the warm stack.
    pub(crate) fn keep(&self, mut conn: PoolConnection<DB>) {
        let handed_back = self.warm.handed_back.fetch_add(1, Ordering::Relaxed);
        if handed_back % THROUGH_SQLX == THROUGH_SQLX - 1 {
            drop(conn);
            return;
        }
        let now = Instant::now();
        let stale = {
            let mut state = self.warm.lock();
            // Looked at under the lock: `close` marks the pool closed before it empties the
            // stack under it, so nothing kept stays behind once it has.
            if self.pool.is_closed() {
                drop(state);
                drop(conn);
                return;
            }
            while let Some(waiter) = state.waiters.pop_front() {
                match waiter.send(conn) {
                    Ok(()) => return,
                    // That acquisition ended meanwhile.
                    Err(back) => conn = back,
                }
            }
            let stale = take_stale(&mut state.stack, now);
            state.stack.push((conn, now));
            stale
        };
        // Back to sqlx, outside the lock (each drop spawns sqlx's ping).
        drop(stale);
    }

    /// The most recently kept connection; one kept longer than [`WARM_FOR`] ago is tested first,
    /// as sqlx tests an idle connection before handing it out, and the others that old go back to
    /// sqlx.
    async fn take_warm(&self) -> Option<PoolConnection<DB>> {
        let now = Instant::now();
        let (newest, older) = {
            let mut state = self.warm.lock();
            let newest = state.stack.pop();
            (newest, take_stale(&mut state.stack, now))
        };
        drop(older);
        let (mut conn, kept_at) = newest?;
        if now.saturating_duration_since(kept_at) <= WARM_FOR {
            return Some(conn);
        }
        use sqlx::Connection;
        // A connection that fails its test goes to sqlx, which closes it.
        conn.ping().await.ok().map(|()| conn)
    }

    /// How many connections wait in the warm stack.
    pub(crate) fn warm(&self) -> usize {
        self.warm.lock().stack.len()
    }

    /// Sets the pool's gauges of open and idle connections in `metrics` (warm ones are idle).
    pub(crate) fn set_gauges(&self, metrics: &StoreMetrics) {
        let idle = self.pool.num_idle() + self.warm();
        metrics.set_pool(self.name, self.pool.size(), idle);
    }

    /// Closes the pool: the warm connections go back to sqlx first, which waits for every
    /// connection to come back; acquisitions waiting end with sqlx's.
    pub(crate) async fn close(&self) {
        // sqlx marks the pool closed when `close` is called, before its future runs.
        let closing = self.pool.close();
        let (warm, waiters) = {
            let mut state = self.warm.lock();
            (
                std::mem::take(&mut state.stack),
                std::mem::take(&mut state.waiters),
            )
        };
        drop((warm, waiters));
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
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
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
        memory_pool_waiting(max, Duration::from_secs(5), metrics).await
    }

    /// [`memory_pool`] whose acquisitions give up after `timeout`.
    async fn memory_pool_waiting(
        max: u32,
        timeout: Duration,
        metrics: &StoreMetrics,
    ) -> TimedPool<sqlx::Any> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(timeout)
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
    async fn one_connection_in_so_many_goes_back_to_sqlx_to_have_its_age_checked() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        until_idle(&timed).await;
        let mut through_sqlx = Vec::new();
        for i in 0..2 * THROUGH_SQLX {
            timed
                .run(async |c| sqlx::query("SELECT 1").execute(c).await)
                .await
                .unwrap();
            if timed.warm() == 0 {
                through_sqlx.push(i);
            }
        }
        assert_eq!(through_sqlx, [THROUGH_SQLX - 1, 2 * THROUGH_SQLX - 1]);
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
    async fn a_connection_kept_too_long_is_tested_and_the_older_go_back_to_sqlx() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(2, &metrics).await;
        let older = timed.acquire().await.unwrap();
        let mut newest = timed.acquire().await.unwrap();
        mark(&mut newest).await.unwrap();
        timed.keep(older);
        timed.keep(newest);
        assert_eq!(timed.warm(), 2);
        tokio::time::sleep(WARM_FOR + Duration::from_millis(50)).await;
        let mut conn = timed.acquire().await.unwrap();
        assert!(marked(&mut conn).await, "not the newest");
        assert_eq!(timed.warm(), 0);
        // The older one is back in sqlx's pool.
        until_idle(&timed).await;
    }

    #[tokio::test]
    async fn kept_connections_go_to_the_acquisitions_waiting_oldest_first() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        let only = timed.acquire().await.unwrap();
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut waiting = Vec::new();
        for who in 0..3 {
            let (timed, order_tx) = (timed.clone(), order_tx.clone());
            waiting.push(tokio::spawn(async move {
                let conn = timed.acquire().await.unwrap();
                order_tx.send(who).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                timed.keep(conn);
            }));
            // Each asks after the one before.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        timed.keep(only);
        for task in waiting {
            task.await.unwrap();
        }
        let served: Vec<i32> = std::iter::from_fn(|| order.try_recv().ok()).collect();
        assert_eq!(served, [0, 1, 2]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn acquisitions_left_in_sqlx_are_no_more_than_its_connections() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(2, &metrics).await;
        // sqlx's own tasks, if any.
        let before = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let tasks = |n| {
            (0..n)
                .map(|_| {
                    let timed = timed.clone();
                    tokio::spawn(async move {
                        for _ in 0..100 {
                            let select = async |c: &mut sqlx::AnyConnection| {
                                sqlx::query("SELECT 1").execute(c).await.map(|_| ())
                            };
                            timed.run(select).await.unwrap();
                        }
                    })
                })
                .collect::<Vec<_>>()
        };
        for task in tasks(16) {
            task.await.unwrap();
        }
        // 1,600 statements of 16 tasks over 2 connections: most waited (1,200-1,600 in
        // runs), most of those served by a connection kept meanwhile. What they left in sqlx's queue (a task each,
        // waiting out the 5 s acquire timeout) is at most the pool's 2, not one per wait.
        let (waits, _) = metrics.pool_wait_handles("test");
        assert!(waits.get() > 100, "{} waits", waits.get());
        let racing = 2 - timed.warm.racing.available_permits();
        assert!(racing <= 2, "{racing} acquisitions in sqlx's queue");
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(alive <= before + 2, "{alive} tasks left, {before} before");
    }

    #[tokio::test]
    async fn a_waiter_beyond_them_gives_up_in_sqlx_time() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool_waiting(1, Duration::from_millis(200), &metrics).await;
        let only = timed.acquire().await.unwrap();
        let wait = |timed: TimedPool<sqlx::Any>| {
            tokio::spawn(async move {
                let started = Instant::now();
                (timed.acquire().await.map(drop), started.elapsed())
            })
        };
        // The first waits in sqlx's queue too, the second for a kept connection alone.
        let first = wait(timed.clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            timed.warm.racing.available_permits(),
            0,
            "the one place taken"
        );
        let second = wait(timed.clone());
        for waiter in [first, second] {
            let (got, waited) = waiter.await.unwrap();
            assert!(matches!(got, Err(sqlx::Error::PoolTimedOut)), "{got:?}");
            assert!(
                waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
                "{waited:?}"
            );
        }
        assert_eq!(
            timed.warm.racing.available_permits(),
            1,
            "its place given back"
        );
        drop(only);
    }

    #[tokio::test]
    async fn connections_given_back_to_sqlx_reach_every_waiter() {
        let metrics = StoreMetrics::default();
        let timed = memory_pool(1, &metrics).await;
        let only = timed.acquire().await.unwrap();
        // Three wait for the one connection; the pool's one place in sqlx's queue goes to the
        // first. Each drops what it gets (as after a failed statement or a transaction), so it
        // goes back through sqlx, never kept: the others must still get it in turn, long before
        // the 5 s acquire timeout.
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let timed = timed.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let conn = timed.acquire().await;
                    (conn.map(drop), started.elapsed())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(only);
        for waiter in waiting {
            let (got, waited) = waiter.await.unwrap();
            assert!(got.is_ok(), "{got:?}");
            assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        }
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
