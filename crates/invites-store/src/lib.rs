//! Persistence for the invitation service: sqlx over SQLite (embedded, the default) or PostgreSQL
//! (several replicas over one database), chosen by the database URL; migrations embedded.
//!
//! One [`Store`] holds its engine (`Engine`). Every statement is parameterised with `$N`
//! placeholders, which both engines accept, and uses only portable SQL (`RETURNING`, `ON
//! CONFLICT`, partial indexes, BIGINT millisecond timestamps, TEXT for ids and JSON), so one text
//! serves both. Most operations run that text through sqlx's `Any` driver on either engine; the
//! hot paths (invitation writes and reads, community bulk writes and joins, batched removals)
//! have a body per engine, `sqlite::*` on rusqlite and `postgres::*` on sqlx's PostgreSQL
//! driver, sharing the texts of `invitations`, `community` and `removals`. The schema has a twin
//! per engine (`migrations/sqlite`, `migrations/postgres`). Callers get domain types back, never
//! rows, and [`StoreError`] (`error`) says whether retrying may help; raw SQL errors stay in this
//! crate and the log.

mod admin;
mod audit;
mod auth;
mod batch_slots;
mod batcher;
pub mod bench_bound;
mod community;
mod error;
mod invitations;
mod limits;
mod migrations;
mod nonce_counts;
mod open_error;
pub mod pool_bench;
mod postgres;
mod removals;
mod sqlite;
mod timed_pool;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::Acquire;

pub use admin::{ApiKeyRecord, OrgRecord, ProjectRecord, ServiceAccountRecord, UserRecord};
pub use audit::{AuditEntry, AuditRecord};
pub use auth::{ApiKeyAuth, ServiceAccountAuth, TokenOwner};
pub use community::{CommunityGroupRecord, CourseRecord};
pub use error::{Result, StoreError};
pub use invitations::InvitationScope;
pub use limits::{LimitCount, LimitTotals};
pub use migrations::{POSTGRES_MIGRATOR, SQLITE_MIGRATOR};
pub use postgres::{
    DEFAULT_CONNECTIONS as DEFAULT_POSTGRES_CONNECTIONS,
    MIN_CONNECTIONS as MIN_POSTGRES_CONNECTIONS,
};
pub use removals::Removal;

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names: `postgres://` or `postgresql://` is PostgreSQL, anything
    /// else (`sqlite:` URLs and plain file paths) SQLite.
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Tables whose integer keys are auto-numbered; on PostgreSQL their identity sequences are moved
/// past rows inserted with explicit ids (fixtures), so later inserts do not collide.
const IDENTITY_TABLES: [&str; 5] = [
    "users",
    "community_groups",
    "courses",
    "community_invitations",
    "audit_log",
];

/// The database behind the service.
#[derive(Clone)]
pub struct Store {
    /// The engine and what it holds (pools, SQLite's writer thread and readers).
    engine: Engine,
    /// See [`Store::auth_generation`].
    auth: Arc<AuthGeneration>,
    /// The queue of the task that removes invitations in batches (see `removals`).
    removals: tokio::sync::mpsc::Sender<removals::Job>,
    /// PostgreSQL: Digest nonce counts recorded by this store (see [`Store::record_nonce_count`]).
    nonce_counts: Arc<AtomicU64>,
    /// PostgreSQL: the queue of the task that records nonce counts in batches (`nonce_counts`).
    nonce_records: Option<tokio::sync::mpsc::Sender<nonce_counts::Record>>,
    /// PostgreSQL: the queue of the task that runs community bulk removals in batches
    /// (`postgres::bulk_removals`).
    bulk_removals: Option<tokio::sync::mpsc::Sender<postgres::bulk_removals::Job>>,
    /// PostgreSQL: the queue of the task that runs invitation creates in batches
    /// (`postgres::creates`).
    creates: Option<WriteQueue<postgres::creates::Create>>,
    /// PostgreSQL: the queue of the task that runs invitation updates in batches
    /// (`postgres::updates`).
    updates: Option<WriteQueue<postgres::updates::Update>>,
    /// PostgreSQL: the window of the last [`Store::merge_limit_counts`] (see `limits`).
    limit_window: Arc<AtomicI64>,
    /// The schema version a newer program migrated the database to while this one ran (0:
    /// none); see [`Store::superseded`].
    superseded: Arc<AtomicI64>,
    /// What the writer thread and the pools record (see [`Store::metrics`]).
    metrics: invites_metrics::StoreMetrics,
}

/// The database engine a [`Store`] runs on. The hot paths have a body per engine
/// (`sqlite::{invitations, community, removals}` on rusqlite, `postgres::...` on sqlx) that
/// [`Store`]'s methods choose by matching on this; everything else is sqlx through its `Any`
/// driver on the pools of `Store::reads` and `Store::writes` (connections taken through
/// [`Store::read_connection`] and [`Store::write_connection`], which count the waits), one text
/// for both.
#[derive(Clone)]
pub(crate) enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// The queue of a PostgreSQL batching task of invitation writes (`postgres::write_batches`).
type WriteQueue<W> = tokio::sync::mpsc::Sender<postgres::write_batches::Job<W>>;

/// The in-process side of the `auth_epoch` counter.
#[derive(Debug)]
struct AuthGeneration {
    /// Moves whenever something cached from the auth tables may have changed.
    generation: AtomicU64,
    /// The database's `auth_epoch` when last polled (-1: never).
    seen_epoch: AtomicI64,
}

/// How [`Store::open_with`] opens a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// Connections of each of a PostgreSQL store's two main pools (the `Any` pool and the native
    /// one; the Digest nonce counts' pool keeps its 2), at least [`MIN_POSTGRES_CONNECTIONS`]
    /// (fewer are taken as that many). Several replicas on one server: a share each of what
    /// the server is given, rather than each the whole of it (see the README's "Several
    /// replicas").
    pub postgres_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            postgres_connections: DEFAULT_POSTGRES_CONNECTIONS,
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `url` and migrates it. A `postgres://` URL opens PostgreSQL (pools
    /// of [`DEFAULT_POSTGRES_CONNECTIONS`]); anything else is SQLite (`sqlite://path`,
    /// `sqlite:path` or a plain file path), created if missing, in WAL mode with foreign keys on
    /// and a 5 s busy timeout (a pool of 4).
    ///
    /// A failure is a [`StoreError::Open`] that names the file or server, why and what to do
    /// (a missing directory, a file without permission, a PostgreSQL server that refuses the
    /// connection or the password, a database migrated by a newer version).
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, OpenOptions::default()).await
    }

    /// [`Store::open`] with `options` (what they change applies to PostgreSQL alone).
    pub async fn open_with(url: &str, options: OpenOptions) -> Result<Store> {
        let target = open_error::Target::of_url(url);
        Self::open_unexplained(url, options)
            .await
            .map_err(|e| open_error::explain(&target, e))
    }

    async fn open_unexplained(url: &str, options: OpenOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let metrics = invites_metrics::StoreMetrics::default();
        let engine = match Backend::of_url(url) {
            Backend::Postgres => {
                let connections = options.postgres_connections.max(MIN_POSTGRES_CONNECTIONS);
                let db = postgres::Postgres::connect(url, connections, &metrics).await?;
                migrations::migrate(Backend::Postgres, &db.pool, &db.pool).await?;
                Engine::Postgres(db)
            }
            Backend::Sqlite => {
                let (pool, sqlx_writer, path) = sqlite::connect(url, &metrics).await?;
                migrations::migrate(Backend::Sqlite, &pool, &sqlx_writer).await?;
                Engine::Sqlite(sqlite::Sqlite::start(pool, sqlx_writer, path, &metrics)?)
            }
        };
        let executor = match &engine {
            Engine::Sqlite(db) => removals::Executor::Writer(db.writer.clone()),
            Engine::Postgres(db) => removals::Executor::Pool(db.clone()),
        };
        let handles = metrics.removal_batch_handles("removals");
        let removal_slots = removals::slots(&executor, handles.clone());
        let removals = removals::start(executor, Arc::clone(&removal_slots), handles);
        let (nonce_records, bulk_removals, creates, updates) = match &engine {
            Engine::Sqlite(_) => (None, None, None, None),
            Engine::Postgres(db) => {
                let handles = metrics.removal_batch_handles("bulk_removals");
                let slots = batch_slots::BatchSlots::new(
                    postgres::bulk_removals::BATCHES,
                    Some(handles.clone()),
                );
                let nonce_slots = nonce_counts::slots();
                let write_slots = |queue| {
                    let handles = metrics.write_batch_handles(queue);
                    let slots = batch_slots::BatchSlots::new(
                        postgres::write_batches::BATCHES,
                        Some(handles.clone()),
                    );
                    (slots, handles)
                };
                let (create_slots, create_handles) = write_slots("creates");
                let (update_slots, update_handles) = write_slots("updates");
                // The five queues' batches in flight are the deployment's: shared with the other
                // replicas running the same queue at once.
                postgres::removing_replicas::start(
                    db.clone(),
                    postgres::removing_replicas::Queues {
                        removals: Arc::downgrade(&removal_slots),
                        bulk_removals: Arc::downgrade(&slots),
                        nonce_counts: Arc::downgrade(&nonce_slots),
                        creates: Arc::downgrade(&create_slots),
                        updates: Arc::downgrade(&update_slots),
                    },
                );
                (
                    Some(nonce_counts::start(db.clone(), nonce_slots)),
                    Some(postgres::bulk_removals::start(db.clone(), slots, handles)),
                    Some(postgres::write_batches::start(
                        db.clone(),
                        create_slots,
                        create_handles,
                    )),
                    Some(postgres::write_batches::start(
                        db.clone(),
                        update_slots,
                        update_handles,
                    )),
                )
            }
        };
        Ok(Store {
            engine,
            auth: Arc::new(AuthGeneration {
                generation: AtomicU64::new(0),
                seen_epoch: AtomicI64::new(-1),
            }),
            removals,
            nonce_counts: Arc::new(AtomicU64::new(0)),
            nonce_records,
            bulk_removals,
            creates,
            updates,
            limit_window: Arc::new(AtomicI64::new(i64::MIN)),
            superseded: Arc::new(AtomicI64::new(0)),
            metrics,
        })
    }

    /// What this store records (the SQLite writer's batches and commits, waits for a connection
    /// of each pool); [`Store::refresh_metrics`] sets the gauges read off live values.
    pub fn metrics(&self) -> &invites_metrics::StoreMetrics {
        &self.metrics
    }

    /// Sets the gauges of [`Store::metrics`] to what they are now: the writer thread's queue and
    /// each pool's open and idle connections (`sqlx_read`, `sqlx_write` and `sqlite_readers` on
    /// SQLite, `postgres` on PostgreSQL).
    pub fn refresh_metrics(&self) {
        let m = &self.metrics;
        match &self.engine {
            Engine::Sqlite(db) => {
                m.writer_queue_depth.set(db.writer.queue_depth() as i64);
                db.pool.set_gauges(m);
                db.sqlx_writer.set_gauges(m);
                let (open, idle) = db.readers.connections();
                m.set_pool(sqlite::reader::POOL, open, idle);
            }
            Engine::Postgres(db) => {
                db.pool.set_gauges(m);
                db.native.set_gauges(m);
                db.relaxed.set_gauges(m);
            }
        }
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations, refusing a database that a newer version has migrated.
    pub async fn migrate(&self) -> Result<()> {
        migrations::migrate(self.backend(), self.reads(), self.writes()).await
    }

    /// A number that moves whenever credentials, roles, tenants or memberships may have changed:
    /// at once for changes made through this process's [`Store`]s, and for changes made by any
    /// other process (the admin command, another replica, plain SQL) at the next
    /// [`Store::poll_auth_epoch`], which reads the `auth_epoch` counter that triggers on those
    /// tables bump. Anything cached from those tables is valid only while this number stays the
    /// same.
    pub fn auth_generation(&self) -> u64 {
        self.auth.generation.load(Ordering::Acquire)
    }

    /// Reads the database's `auth_epoch` counter and moves [`Store::auth_generation`] if the
    /// counter moved since the last poll. Returns whether it moved.
    pub async fn poll_auth_epoch(&self) -> Result<bool> {
        // The schema version rides along: a newer program that migrates the database while this
        // one runs (a rolling upgrade across a migration) makes this one stop serving.
        let (epoch, schema): (i64, Option<i64>) = sqlx::query_as(
            "SELECT epoch, (SELECT MAX(version) FROM _sqlx_migrations) FROM auth_epoch WHERE id = 1",
        )
        .fetch_one(&mut *self.read_connection().await?)
        .await?;
        self.note_schema(schema.unwrap_or(0));
        let before = self.auth.seen_epoch.swap(epoch, Ordering::AcqRel);
        if before != epoch {
            self.auth_changed();
        }
        Ok(before != epoch)
    }

    /// Records the database's schema version `found`: newer than this program's, the store is
    /// superseded from now on (logged once).
    fn note_schema(&self, found: i64) {
        let known = migrations::known_version(self.backend());
        if found > known && self.superseded.swap(found, Ordering::AcqRel) == 0 {
            tracing::error!(
                found,
                known,
                "a newer version of this program migrated the database: this process stops \
                 serving (its statements are those of the older schema); replace it with the new \
                 version"
            );
        }
    }

    /// `Some((found, known))` once a newer version of this program has migrated the database
    /// to schema version `found` while this one, which knows up to `known`, ran: its statements
    /// may no longer be right (migration 11 changed how a scope's version is read, and an older
    /// replica would serve stale lists), so it must not serve. Noticed by
    /// [`Store::poll_auth_epoch`] (the server polls it every 100 ms); [`Store::ping`] fails from
    /// then on, so `/ready` answers 503 and a load balancer drains the replica.
    pub fn superseded(&self) -> Option<(i64, i64)> {
        match self.superseded.load(Ordering::Acquire) {
            0 => None,
            found => Some((found, migrations::known_version(self.backend()))),
        }
    }

    /// Marks cached credentials and roles stale, after this process changed them.
    pub(crate) fn auth_changed(&self) {
        self.auth.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads a server setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM server_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.read_connection().await?)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// Stores `value` under `name` unless a value is there already; returns the stored value.
    /// Replicas racing to initialise a setting all end up with the first writer's value.
    pub async fn setting_or_init(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&mut *self.write_connection().await?)
            .await?;
        self.setting(name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("setting {name} vanished")))
    }

    /// Sets a server setting, replacing any value.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&mut *self.write_connection().await?)
            .await?;
        Ok(())
    }

    /// Checks that the database answers, for health checks; [`StoreError::SchemaTooNew`] once
    /// the store is [`Store::superseded`].
    pub async fn ping(&self) -> Result<()> {
        if let Some((found, known)) = self.superseded() {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        sqlx::query("SELECT 1")
            .execute(&mut *self.read_connection().await?)
            .await?;
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check` verdict (`ok` when sound). PostgreSQL has no
    /// equivalent statement (its pages are checksummed by the server); there it answers `ok`
    /// once the database answers a query.
    pub async fn integrity_check(&self) -> Result<String> {
        match self.backend() {
            Backend::Sqlite => {
                let (verdict,): (String,) = sqlx::query_as("PRAGMA integrity_check")
                    .fetch_one(&mut *self.read_connection().await?)
                    .await?;
                Ok(verdict)
            }
            Backend::Postgres => {
                self.ping().await?;
                Ok("ok".to_owned())
            }
        }
    }

    /// Runs an SQL script (several statements) in one transaction: all of it applies or none.
    /// For fixture sets and operator repairs; the script is trusted, it is not user input.
    /// On PostgreSQL the identity sequences are then moved past any explicit ids the script
    /// inserted; on SQLite the community page counts are counted again (migration 8).
    pub async fn run_script(&self, script: &str) -> Result<()> {
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(script).execute(&mut *tx).await?;
        if self.backend() == Backend::Sqlite {
            // A script may change pending invitations: their page counts are the store's to
            // keep on SQLite (migration 8), so count them again.
            sqlx::raw_sql(community::RECOUNT_PENDING_SQL)
                .execute(&mut *tx)
                .await?;
        }
        if self.backend() == Backend::Postgres {
            for table in IDENTITY_TABLES {
                sqlx::raw_sql(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.auth_changed();
        Ok(())
    }

    /// Closes the pools, waiting for connections to finish. On SQLite the write-ahead log is
    /// first folded into the database and truncated, so the next process does not have to
    /// read a large log at start (a fixture or bulk load can leave hundreds of megabytes).
    pub async fn close(&self) {
        if self.backend() == Backend::Sqlite {
            // The background checkpointer may hold the checkpoint lock for a moment, in which
            // case SQLite answers busy at once: try again, for up to a second.
            for attempt in 0..100 {
                match sqlite::checkpoint::wal_checkpoint(self.writes(), "TRUNCATE").await {
                    Ok((0, _, _)) => break,
                    Ok(_) if attempt < 99 => tokio::time::sleep(Duration::from_millis(10)).await,
                    Ok(_) => tracing::warn!("WAL checkpoint at close stayed busy"),
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint at close failed");
                        break;
                    }
                }
            }
        }
        self.writes().close().await;
        self.reads().close().await;
        if let Engine::Postgres(db) = &self.engine {
            db.native.close().await;
            // The nonce counts' and the removal heartbeats' pool: what runs on it now ends with
            // the pool closed.
            db.relaxed.close().await;
        }
    }

    /// The sqlx pool for reads off the hot paths: `sqlx_read` on SQLite, the `Any` pool
    /// (`postgres`) on PostgreSQL.
    fn reads(&self) -> &timed_pool::TimedPool<sqlx::Any> {
        match &self.engine {
            Engine::Sqlite(db) => &db.pool,
            Engine::Postgres(db) => &db.pool,
        }
    }

    /// The sqlx pool for writes off the hot paths: the one connection of `sqlx_write` on
    /// SQLite, the `Any` pool (`postgres`) on PostgreSQL.
    fn writes(&self) -> &timed_pool::TimedPool<sqlx::Any> {
        match &self.engine {
            Engine::Sqlite(db) => &db.sqlx_writer,
            Engine::Postgres(db) => &db.pool,
        }
    }

    /// A connection for a read off the hot paths (see `reads`); a wait for one is counted.
    /// It goes back to its pool when dropped: take it for one statement
    /// (`.fetch_one(&mut *self.read_connection().await?)`) or hold it no longer than the
    /// statements that need it.
    pub(crate) async fn read_connection(&self) -> Result<PoolConnection<sqlx::Any>> {
        Ok(self.reads().acquire().await?)
    }

    /// A connection for a write or a transaction off the hot paths (see `writes`); a wait for
    /// one is counted. On SQLite it is the only one of its pool: whoever holds it must not ask
    /// for another before dropping it.
    pub(crate) async fn write_connection(&self) -> Result<PoolConnection<sqlx::Any>> {
        Ok(self.writes().acquire().await?)
    }

    /// For tests only: the read pool itself, used as an executor (its waits are not counted).
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.reads().inner()
    }

    /// For tests only: the write pool itself, used as an executor (its waits are not counted).
    #[cfg(test)]
    pub(crate) fn writer(&self) -> &sqlx::AnyPool {
        self.writes().inner()
    }
}

/// The most ids one statement binds: far below SQLite's (32,766) and PostgreSQL's (65,535)
/// parameter limits, so a statement's text stays a reasonable size too.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// `$first, $first+1, ...`: `n` numbered placeholders for a list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in first..first + n {
        if i > first {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&i.to_string());
    }
    s
}

/// Milliseconds since the epoch to a UTC timestamp.
pub(crate) fn from_millis(ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

pub(crate) fn parse_object_id(s: &str) -> Result<invites_domain::ObjectId> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("stored id {s:?} is not 24-hex")))
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A fresh, migrated database that lives as long as the guard: an SQLite file in a temporary
    /// directory, or, when `INVITES_STORE_TEST_POSTGRES_URL` names a PostgreSQL server, a new database
    /// created on it (the test command runs the store tests both ways).
    pub async fn fresh() -> (Store, tempfile::TempDir) {
        let (store, _, dir) = fresh_with_url().await;
        (store, dir)
    }

    /// [`fresh`], and the database's URL, for opening it a second time as another process would.
    pub async fn fresh_with_url() -> (Store, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = match std::env::var("INVITES_STORE_TEST_POSTGRES_URL") {
            Ok(admin_url) => fresh_postgres(&admin_url).await,
            Err(_) => dir.path().join("t.db").to_str().unwrap().to_owned(),
        };
        let store = Store::open(&url).await.unwrap();
        (store, url, dir)
    }

    /// A fresh SQLite database (`t.db` in the directory) whatever the environment names, and its
    /// path: for the tests of what only SQLite has (the writer thread, the write-ahead log, query
    /// plans), which thus run, on SQLite, in the PostgreSQL run too instead of passing without
    /// testing anything.
    pub async fn fresh_sqlite() -> (Store, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").to_str().unwrap().to_owned();
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        (store, path, dir)
    }

    /// SQLite's plan for `sql` on `conn`, its steps joined by "; ". The plan does not depend on
    /// the values, so every parameter is bound to NULL.
    pub fn query_plan(conn: &rusqlite::Connection, sql: &str) -> String {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let unbound = vec![rusqlite::types::Null; statement.parameter_count()];
        let details = statement
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        details.join("; ")
    }

    /// Creates a database with a random name on the server of `admin_url`; returns its URL.
    pub async fn fresh_postgres(admin_url: &str) -> String {
        use sqlx::{Connection, Executor};
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pools of a PostgreSQL store take the connections it was opened with, never fewer than
    /// the least (with no `INVITES_STORE_TEST_POSTGRES_URL`, nothing to open: SQLite has no
    /// such pools).
    #[tokio::test]
    async fn a_postgres_store_sizes_its_pools_as_asked() {
        let Ok(admin_url) = std::env::var("INVITES_STORE_TEST_POSTGRES_URL") else {
            return;
        };
        let url = test_util::fresh_postgres(&admin_url).await;
        for (asked, taken) in [
            (DEFAULT_POSTGRES_CONNECTIONS, 8),
            (5, 5),
            (1, MIN_POSTGRES_CONNECTIONS),
        ] {
            let options = OpenOptions {
                postgres_connections: asked,
            };
            let store = Store::open_with(&url, options).await.unwrap();
            let Engine::Postgres(db) = &store.engine else {
                panic!("{url} opened as SQLite");
            };
            assert_eq!(db.pool.inner().options().get_max_connections(), taken);
            assert_eq!(db.native.inner().options().get_max_connections(), taken);
            assert_eq!(
                db.relaxed.inner().options().get_max_connections(),
                postgres::RELAXED_CONNECTIONS
            );
        }
        assert_eq!(OpenOptions::default().postgres_connections, 8);
    }

    #[tokio::test]
    async fn a_store_is_superseded_once_a_newer_version_migrates_its_database() {
        let (store, _dir) = test_util::fresh().await;
        store.poll_auth_epoch().await.unwrap();
        assert_eq!(store.superseded(), None);
        store.ping().await.unwrap();
        let known = migrations::known_version(store.backend());
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, 'from a newer version', TRUE, $2, 0)",
        )
        .bind(known + 1)
        .bind(vec![0u8])
        .execute(store.pool())
        .await
        .unwrap();
        store.poll_auth_epoch().await.unwrap();
        assert_eq!(store.superseded(), Some((known + 1, known)));
        assert!(matches!(
            store.ping().await,
            Err(StoreError::SchemaTooNew { found, .. }) if found == known + 1
        ));
        // And it stays so (the flag is not a reading of the moment).
        store.poll_auth_epoch().await.unwrap();
        assert!(store.superseded().is_some());
    }

    #[tokio::test]
    async fn opens_migrates_and_is_sound() {
        let (store, _dir) = test_util::fresh().await;
        store.ping().await.unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        // Migrating again is a no-op.
        store.migrate().await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_connections_use_wal_foreign_keys_small_pages_and_normal_sync() {
        let (store, _path, _dir) = test_util::fresh_sqlite().await;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        // Small pages: a removal rewrites a leaf page per index it touches, and the log and the
        // disk carry every one of them.
        let (page,): (i64,) = sqlx::query_as("PRAGMA page_size")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(page, 1024);
        // NORMAL: in WAL mode a commit does not wait for the disk (durable at checkpoints).
        for pool in [store.pool(), store.writer()] {
            let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(sync, 1);
        }
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_a_reason() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let err = Store::open(url).await.expect_err(url);
            assert!(err.to_string().contains("in-memory"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn a_script_applies_whole_or_not_at_all() {
        let (store, _dir) = test_util::fresh().await;
        let org =
            "INSERT INTO orgs (id, name, created_at) VALUES ('aaaaaaaaaaaaaaaaaaaaaaaa', 'A', 0);";
        let err = store
            .run_script(&format!("{org}\nINSERT INTO orgs (id) VALUES ('b');"))
            .await;
        assert!(err.is_err(), "the second statement violates NOT NULL");
        let count = |s: Store| async move {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
                .fetch_one(s.pool())
                .await
                .unwrap();
            n
        };
        assert_eq!(
            count(store.clone()).await,
            0,
            "nothing of a failed script stays"
        );
        store.run_script(org).await.unwrap();
        assert_eq!(count(store.clone()).await, 1);
        // Rows inserted with explicit ids do not make later auto-numbered inserts collide
        // (PostgreSQL identity sequences are moved past them).
        store
            .run_script("INSERT INTO community_groups (id, name, created_at) VALUES (5, 'G', 0);")
            .await
            .unwrap();
        let g = store
            .create_community_group("H", chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(g.id, 6);
    }

    /// Inserts `n` organizations in one script.
    async fn insert_orgs(store: &Store, n: u32) {
        store
            .run_script(&format!(
                "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x + 1 < {n}) \
                 INSERT INTO orgs (id, name, created_at) SELECT printf('%024x', x), 'o', 0 FROM n;"
            ))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn closing_folds_the_write_ahead_log_into_the_database() {
        let (store, _path, dir) = test_util::fresh_sqlite().await;
        insert_orgs(&store, 20000).await;
        let wal = dir.path().join("t.db-wal");
        assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 100_000);
        store.close().await;
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn the_log_is_folded_into_the_database_file_in_the_background() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::ConnectOptions;
        let (store, _path, dir) = test_util::fresh_sqlite().await;
        insert_orgs(&store, 500).await;
        // An immutable connection reads the database file alone, ignoring the log: it sees the
        // rows once a checkpoint (which the writer no longer runs) has copied them there.
        let file_rows = || async {
            let mut conn = SqliteConnectOptions::new()
                .filename(dir.path().join("t.db"))
                .immutable(true)
                .connect()
                .await
                .unwrap();
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
                .fetch_one(&mut conn)
                .await
                .unwrap_or((0,));
            n
        };
        let started = std::time::Instant::now();
        while file_rows().await < 500 {
            assert!(
                started.elapsed() < sqlite::checkpoint::INTERVAL * 50,
                "rows still only in the log"
            );
            tokio::time::sleep(sqlite::checkpoint::INTERVAL / 2).await;
        }
        store.close().await;
    }

    #[tokio::test]
    async fn credential_changes_move_the_auth_generation_here_at_once_and_elsewhere_when_polled() {
        let (here, url, _dir) = test_util::fresh_with_url().await;
        let elsewhere = Store::open(&url).await.unwrap();
        here.poll_auth_epoch().await.unwrap();
        elsewhere.poll_auth_epoch().await.unwrap();
        assert!(
            !here.poll_auth_epoch().await.unwrap(),
            "nothing changed yet"
        );
        let (g_here, g_elsewhere) = (here.auth_generation(), elsewhere.auth_generation());

        let now = chrono::Utc::now();
        let org = here.create_org("Acme", now).await.unwrap();
        assert!(here.auth_generation() > g_here, "this process's own change");
        assert_eq!(elsewhere.auth_generation(), g_elsewhere, "not polled yet");
        assert!(elsewhere.poll_auth_epoch().await.unwrap());
        assert!(elsewhere.auth_generation() > g_elsewhere);

        // Issuing a token changes nothing cached; revoking (deleting) tokens does.
        let user = here.create_user("u@example.com", "U", now).await.unwrap();
        elsewhere.poll_auth_epoch().await.unwrap();
        let g = elsewhere.auth_generation();
        here.create_access_token(user.principal_id, "ab", Some(now), now)
            .await
            .unwrap();
        assert!(!elsewhere.poll_auth_epoch().await.unwrap());
        here.purge_expired_tokens(now).await.unwrap();
        assert!(elsewhere.poll_auth_epoch().await.unwrap());
        assert!(elsewhere.auth_generation() > g);

        // Plain SQL from outside (an operator's repair) is seen too.
        here.grant_org_role(org.id, user.principal_id, invites_domain::OrgRole::Owner)
            .await
            .unwrap();
        elsewhere.poll_auth_epoch().await.unwrap();
        sqlx::query("DELETE FROM org_roles")
            .execute(here.writer())
            .await
            .unwrap();
        assert!(elsewhere.poll_auth_epoch().await.unwrap());
        elsewhere.close().await;
    }

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_version() {
        let (store, _dir) = test_util::fresh().await;
        let blob = match store.backend() {
            Backend::Sqlite => "X'00'",
            Backend::Postgres => "'\\x00'::bytea",
        };
        sqlx::query(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'future', TRUE, {blob}, 0)"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        let err = store.migrate().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 99990101000000,
                    ..
                }
            ),
            "{err}"
        );
    }
}
