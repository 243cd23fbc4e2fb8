//! Persistence for the invitation service: sqlx over SQLite, migrations embedded, queries portable.
//!
//! One [`Store`] wraps the connection pool. Every statement is parameterised with `$N`
//! placeholders, which both SQLite and PostgreSQL accept, and uses only portable SQL
//! (`RETURNING`, partial indexes, BIGINT millisecond timestamps), so a PostgreSQL pool can be
//! added beside the SQLite one without rewriting queries. Callers get domain types back, never
//! rows, and [`StoreError`] says whether retrying may help; raw SQL errors stay in this crate
//! and the log.

mod admin;
mod audit;
mod auth;
mod community;
mod invitations;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use admin::{ApiKeyRecord, OrgRecord, ProjectRecord, ServiceAccountRecord, UserRecord};
pub use audit::{AuditEntry, AuditRecord};
pub use auth::{ApiKeyAuth, ServiceAccountAuth};
pub use community::{CommunityGroupRecord, CourseRecord};
pub use invitations::InvitationScope;

/// The migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A failure of the store, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is locked by another writer past the busy timeout: retry later.
    #[error("database busy")]
    Busy,
    /// The disk or database is full: retry once space is freed.
    #[error("database full")]
    Full,
    /// A uniqueness or foreign-key rule refused the write.
    #[error("constraint violated: {0}")]
    Conflict(String),
    /// A named thing the write refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored value could not be decoded (data written by something else).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer version of this program.
    #[error("database schema version {found} is newer than this program knows ({known}); upgrade the program")]
    SchemaTooNew { found: i64, known: i64 },
    /// Anything else from the driver.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // SQLite primary result codes: 5 BUSY, 6 LOCKED, 13 FULL; extended codes keep the
            // primary code in their low byte.
            if let Some(code) = db.code().and_then(|c| c.parse::<i64>().ok()) {
                match code & 0xff {
                    5 | 6 => return StoreError::Busy,
                    13 => return StoreError::Full,
                    _ => {}
                }
            }
            if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation()
            {
                return StoreError::Conflict(db.message().to_owned());
            }
        }
        if let sqlx::Error::PoolTimedOut = e {
            return StoreError::Busy;
        }
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database behind the service.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite:path` or a
    /// plain file path), in WAL mode with foreign keys on and a busy timeout, and migrates it.
    pub async fn open(url: &str) -> Result<Store> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations, refusing a database that a newer version has migrated.
    pub async fn migrate(&self) -> Result<()> {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let table: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        if table.is_some() {
            let (found,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(&self.pool)
                    .await?;
            if let Some(found) = found.filter(|f| *f > known) {
                return Err(StoreError::SchemaTooNew { found, known });
            }
        }
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from(e),
            other => StoreError::Database(sqlx::Error::Migrate(Box::new(other))),
        })
    }

    /// Reads a server setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT value FROM server_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    /// Stores `value` under `name` unless a value is there already; returns the stored value.
    /// Replicas racing to initialise a setting all end up with the first writer's value.
    pub async fn setting_or_init(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
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
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Checks that the database answers, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`ok` when sound).
    pub async fn integrity_check(&self) -> Result<String> {
        let (verdict,): (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(verdict)
    }

    /// Runs an SQL script (several statements) in one transaction: all of it applies or none.
    /// For fixture sets and operator repairs; the script is trusted, it is not user input.
    pub async fn run_script(&self, script: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::raw_sql(script).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
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

    /// A fresh, migrated database in a temporary directory that lives as long as the guard.
    pub async fn fresh() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_migrates_and_is_sound() {
        let (store, _dir) = test_util::fresh().await;
        store.ping().await.unwrap();
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        // Migrating again is a no-op.
        store.migrate().await.unwrap();
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
        assert_eq!(count(store).await, 1);
    }

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_version() {
        let (store, _dir) = test_util::fresh().await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'future', TRUE, X'00', 0)",
        )
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
