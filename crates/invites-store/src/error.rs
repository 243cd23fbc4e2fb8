//! [`StoreError`] and the one place that classifies driver failures into it: SQLite result codes
//! (from sqlx's driver and from rusqlite, the writer thread's and the readers' library) and
//! PostgreSQL SQLSTATEs, each code a named constant.
//!
//! What a caller can do decides the class: retry later (busy), retry once space is freed (full),
//! nothing (a conflict: the write broke a uniqueness, foreign-key or check rule). `open_error`
//! reads a few more codes, also named here, to explain a database that cannot be opened.

use std::borrow::Cow;

/// A failure of the store, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is locked by another writer past the busy timeout: retry later.
    #[error("database busy")]
    Busy,
    /// The disk or database is full: retry once space is freed.
    #[error("database full")]
    Full,
    /// The database server cannot be reached (stopped, restarting, the connection cut or the
    /// server shutting it down): retry once it is back. The write in flight, if any, was not
    /// acknowledged; it committed or not as the server decided.
    #[error("database unreachable: {0}")]
    Unavailable(String),
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
    /// The database could not be opened: one line naming it, the reason and the fix.
    #[error("{0}")]
    Open(String),
    /// Anything else from the driver (its text in the message, not repeated as a source).
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Anything else from the SQLite writer thread (see `writer`).
    #[error("database error: {0}")]
    Sqlite(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The database away or every connection busy: trying again at once would wait as long again
    /// (a pool's acquire timeout), so whoever waits on the same database gets this answer at once.
    pub(crate) fn unreachable(&self) -> bool {
        matches!(self, StoreError::Busy | StoreError::Unavailable(_))
    }

    /// The same failure for another caller (one read answering several, `shared_reads`): the
    /// same class and message; a driver error keeps its text, not its source.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Busy => StoreError::Busy,
            StoreError::Full => StoreError::Full,
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::SchemaTooNew { found, known } => StoreError::SchemaTooNew {
                found: *found,
                known: *known,
            },
            StoreError::Open(m) => StoreError::Open(m.clone()),
            StoreError::Database(e) => StoreError::Database(sqlx::Error::Protocol(e.to_string())),
            StoreError::Sqlite(m) => StoreError::Sqlite(m.clone()),
        }
    }
}

// SQLite primary result codes (<https://sqlite.org/rescode.html>). An extended code keeps its
// primary code in the low byte: see [`sqlite_primary`].

/// Another connection holds the lock past the busy timeout.
pub(crate) const SQLITE_BUSY: i32 = 5;
/// A conflict within one connection (a shared-cache or same-connection lock).
pub(crate) const SQLITE_LOCKED: i32 = 6;
/// The file (or its directory, where SQLite writes its log) is read-only for this process.
pub(crate) const SQLITE_READONLY: i32 = 8;
/// The disk is full.
pub(crate) const SQLITE_FULL: i32 = 13;
/// The file is not a database.
pub(crate) const SQLITE_NOTADB: i32 = 26;

// SQLite extended result codes of the constraints counted as a conflict: the ones sqlx's driver
// calls unique, foreign-key and check violations. Other constraint codes (NOT NULL, a trigger's
// RAISE) are plain failures.

/// A CHECK constraint failed.
pub(crate) const SQLITE_CONSTRAINT_CHECK: i32 = 275;
/// A foreign key failed.
pub(crate) const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;
/// A PRIMARY KEY is taken.
pub(crate) const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
/// A UNIQUE index or constraint is taken.
pub(crate) const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;

// PostgreSQL SQLSTATEs (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).

/// Raised by `all_or_none` (PostgreSQL migration 13): a statement changed fewer rows than it was
/// given and was undone.
pub(crate) const PG_ALL_OR_NONE: &str = "IV001";
/// serialization_failure: retrying the transaction may succeed.
pub(crate) const PG_SERIALIZATION_FAILURE: &str = "40001";
/// deadlock_detected: this transaction was chosen to give way.
pub(crate) const PG_DEADLOCK_DETECTED: &str = "40P01";
/// lock_not_available.
pub(crate) const PG_LOCK_NOT_AVAILABLE: &str = "55P03";
/// admin_shutdown: the connection was terminated (`pg_terminate_backend`, a fast shutdown).
pub(crate) const PG_ADMIN_SHUTDOWN: &str = "57P01";
/// crash_shutdown: another server process crashed and this one was stopped with it.
pub(crate) const PG_CRASH_SHUTDOWN: &str = "57P02";
/// The SQLSTATE class of connection exceptions (08000, 08003, 08006, ...).
pub(crate) const PG_CONNECTION_EXCEPTION_CLASS: &str = "08";
/// cannot_connect_now: the server is starting up or shutting down.
pub(crate) const PG_CANNOT_CONNECT_NOW: &str = "57P03";
/// too_many_connections.
pub(crate) const PG_TOO_MANY_CONNECTIONS: &str = "53300";
/// configuration_limit_exceeded.
pub(crate) const PG_CONFIGURATION_LIMIT_EXCEEDED: &str = "53400";
/// disk_full.
pub(crate) const PG_DISK_FULL: &str = "53100";
/// out_of_memory.
pub(crate) const PG_OUT_OF_MEMORY: &str = "53200";
/// unique_violation.
pub(crate) const PG_UNIQUE_VIOLATION: &str = "23505";
/// foreign_key_violation.
pub(crate) const PG_FOREIGN_KEY_VIOLATION: &str = "23503";
/// check_violation.
pub(crate) const PG_CHECK_VIOLATION: &str = "23514";
/// invalid_password (read by `open_error`).
pub(crate) const PG_INVALID_PASSWORD: &str = "28P01";
/// invalid_authorization_specification: no pg_hba.conf entry (read by `open_error`).
pub(crate) const PG_INVALID_AUTHORIZATION: &str = "28000";
/// invalid_catalog_name: no such database (read by `open_error`).
pub(crate) const PG_INVALID_CATALOG_NAME: &str = "3D000";
/// insufficient_privilege (read by `open_error`).
pub(crate) const PG_INSUFFICIENT_PRIVILEGE: &str = "42501";

/// SQLSTATEs after which retrying may succeed.
const PG_BUSY: [&str; 5] = [
    PG_SERIALIZATION_FAILURE,
    PG_DEADLOCK_DETECTED,
    PG_LOCK_NOT_AVAILABLE,
    PG_TOO_MANY_CONNECTIONS,
    PG_CONFIGURATION_LIMIT_EXCEEDED,
];
/// SQLSTATEs of a server that is going away or not there yet (besides class 08).
const PG_UNAVAILABLE: [&str; 3] = [PG_ADMIN_SHUTDOWN, PG_CRASH_SHUTDOWN, PG_CANNOT_CONNECT_NOW];
/// SQLSTATEs of a server out of disk or memory.
const PG_FULL: [&str; 2] = [PG_DISK_FULL, PG_OUT_OF_MEMORY];
/// SQLSTATEs of a write refused by a rule.
const PG_CONFLICT: [&str; 3] = [
    PG_UNIQUE_VIOLATION,
    PG_FOREIGN_KEY_VIOLATION,
    PG_CHECK_VIOLATION,
];
/// SQLite extended codes of a write refused by a rule.
const SQLITE_CONFLICT: [i32; 4] = [
    SQLITE_CONSTRAINT_UNIQUE,
    SQLITE_CONSTRAINT_PRIMARYKEY,
    SQLITE_CONSTRAINT_FOREIGNKEY,
    SQLITE_CONSTRAINT_CHECK,
];

/// The primary result code of an SQLite (extended) result code.
pub(crate) fn sqlite_primary(code: i32) -> i32 {
    code & 0xff
}

/// The SQLite result code of an sqlx error from SQLite, if it is one.
pub(crate) fn sqlx_sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse().ok()),
        _ => None,
    }
}

/// What an SQLite extended result code means for the caller; `None` for any other failure.
/// `message` is the driver's text, taken only for a conflict.
fn classify_sqlite(code: i32, message: impl FnOnce() -> String) -> Option<StoreError> {
    match sqlite_primary(code) {
        SQLITE_BUSY | SQLITE_LOCKED => Some(StoreError::Busy),
        SQLITE_FULL => Some(StoreError::Full),
        _ if SQLITE_CONFLICT.contains(&code) => Some(StoreError::Conflict(message())),
        _ => None,
    }
}

/// What a PostgreSQL SQLSTATE means for the caller; `None` for any other failure.
fn classify_postgres(sqlstate: &str, message: impl FnOnce() -> String) -> Option<StoreError> {
    if PG_BUSY.contains(&sqlstate) {
        Some(StoreError::Busy)
    } else if PG_UNAVAILABLE.contains(&sqlstate)
        || sqlstate.starts_with(PG_CONNECTION_EXCEPTION_CLASS)
    {
        Some(StoreError::Unavailable(message()))
    } else if PG_FULL.contains(&sqlstate) {
        Some(StoreError::Full)
    } else if PG_CONFLICT.contains(&sqlstate) {
        Some(StoreError::Conflict(message()))
    } else {
        None
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let code = db.code().unwrap_or(Cow::Borrowed(""));
            let message = || db.message().to_owned();
            let class = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse()
                    .ok()
                    .and_then(|code| classify_sqlite(code, message))
            } else {
                classify_postgres(&code, message)
            };
            if let Some(class) = class {
                return class;
            }
        }
        match e {
            // Every connection is in use past the pool's acquire timeout, or none can be opened
            // (the server is down: the pool retries until the timeout).
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            // The connection broke under a query: the server stopped, restarted or cut it.
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
                StoreError::Unavailable(e.to_string())
            }
            e => StoreError::Database(e),
        }
    }
}

impl From<&rusqlite::Error> for StoreError {
    fn from(e: &rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, message) = e {
            let message = || message.clone().unwrap_or_else(|| e.to_string());
            if let Some(class) = classify_sqlite(failure.extended_code, message) {
                return class;
            }
        }
        StoreError::Sqlite(e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_going_away_or_a_cut_connection_is_unavailable() {
        for code in ["57P01", "57P02", "57P03", "08000", "08003", "08006"] {
            let class = classify_postgres(code, || "m".into());
            assert!(
                matches!(class, Some(StoreError::Unavailable(_))),
                "{code}: {class:?}"
            );
        }
        let cut = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(cut)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Busy
        ));
        assert!(matches!(
            classify_postgres("40001", String::new),
            Some(StoreError::Busy)
        ));
    }

    /// A failure as rusqlite reports it.
    fn rusqlite_failure(extended: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(extended),
            Some("the message".into()),
        )
    }

    #[test]
    fn the_named_sqlite_codes_are_sqlites() {
        use rusqlite::ffi;
        assert_eq!(
            [
                SQLITE_BUSY,
                SQLITE_LOCKED,
                SQLITE_READONLY,
                SQLITE_FULL,
                SQLITE_NOTADB
            ],
            [
                ffi::SQLITE_BUSY,
                ffi::SQLITE_LOCKED,
                ffi::SQLITE_READONLY,
                ffi::SQLITE_FULL,
                ffi::SQLITE_NOTADB
            ]
        );
        assert_eq!(
            SQLITE_CONFLICT,
            [
                ffi::SQLITE_CONSTRAINT_UNIQUE,
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
                ffi::SQLITE_CONSTRAINT_CHECK
            ]
        );
    }

    #[test]
    fn sqlite_busy_and_locked_are_busy_extended_codes_included() {
        // SQLITE_BUSY_SNAPSHOT (517) and SQLITE_LOCKED_SHAREDCACHE (262) keep the primary code.
        for code in [SQLITE_BUSY, SQLITE_LOCKED, 517, 262] {
            assert!(
                matches!(classify_sqlite(code, String::new), Some(StoreError::Busy)),
                "{code}"
            );
            let e = StoreError::from(rusqlite_failure(code));
            assert!(matches!(e, StoreError::Busy), "{code}: {e:?}");
        }
    }

    #[test]
    fn sqlite_full_is_full() {
        assert!(matches!(
            classify_sqlite(SQLITE_FULL, String::new),
            Some(StoreError::Full)
        ));
        let e = StoreError::from(rusqlite_failure(SQLITE_FULL));
        assert!(matches!(e, StoreError::Full), "{e:?}");
    }

    #[test]
    fn sqlite_unique_primary_key_foreign_key_and_check_are_conflicts_with_the_message() {
        for code in SQLITE_CONFLICT {
            let e = StoreError::from(rusqlite_failure(code));
            assert!(
                matches!(&e, StoreError::Conflict(m) if m == "the message"),
                "{code}: {e:?}"
            );
        }
    }

    #[test]
    fn other_sqlite_constraints_and_failures_are_plain_failures() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_CONSTRAINT_NOTNULL,
            ffi::SQLITE_CONSTRAINT_TRIGGER,
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_ERROR,
            SQLITE_READONLY,
            SQLITE_NOTADB,
        ] {
            assert!(classify_sqlite(code, String::new).is_none(), "{code}");
            let e = StoreError::from(rusqlite_failure(code));
            assert!(matches!(e, StoreError::Sqlite(_)), "{code}: {e:?}");
        }
        let e = StoreError::from(rusqlite::Error::QueryReturnedNoRows);
        assert!(matches!(e, StoreError::Sqlite(_)), "{e:?}");
    }

    #[test]
    fn postgres_sqlstates_are_classified() {
        for code in PG_BUSY {
            let e = classify_postgres(code, String::new);
            assert!(matches!(e, Some(StoreError::Busy)), "{code}: {e:?}");
        }
        for code in PG_FULL {
            let e = classify_postgres(code, String::new);
            assert!(matches!(e, Some(StoreError::Full)), "{code}: {e:?}");
        }
        for code in PG_CONFLICT {
            let e = classify_postgres(code, || "the message".into());
            assert!(
                matches!(&e, Some(StoreError::Conflict(m)) if m == "the message"),
                "{code}: {e:?}"
            );
        }
        // not_null_violation and raise_exception (a trigger's) are plain failures.
        for code in ["23502", "P0001", PG_INVALID_PASSWORD, ""] {
            assert!(classify_postgres(code, String::new).is_none(), "{code}");
        }
    }

    #[tokio::test]
    async fn sqlx_sqlite_failures_are_classified_by_their_code() {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
            .await
            .unwrap();
        conn.execute("INSERT INTO t VALUES (1, 'a')").await.unwrap();
        async fn failure(conn: &mut sqlx::SqliteConnection, sql: &str) -> StoreError {
            StoreError::from(conn.execute(sql).await.unwrap_err())
        }
        let unique = failure(&mut conn, "INSERT INTO t VALUES (2, 'a')").await;
        assert!(matches!(unique, StoreError::Conflict(_)), "{unique:?}");
        let key = failure(&mut conn, "INSERT INTO t VALUES (1, 'b')").await;
        assert!(matches!(key, StoreError::Conflict(_)), "{key:?}");
        let not_null = failure(&mut conn, "INSERT INTO t VALUES (3, NULL)").await;
        assert!(matches!(not_null, StoreError::Database(_)), "{not_null:?}");
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Busy
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }
}
