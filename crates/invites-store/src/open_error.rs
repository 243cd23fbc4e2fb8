//! Why a database could not be opened, as one line that names the file or server and says what
//! to do: the driver's own text ("unable to open database file", "pool timed out") names neither.

use std::path::{Path, PathBuf};

use crate::error::{self, StoreError};

/// What `Store::open` was asked to open, for messages (a PostgreSQL password never appears).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres {
        host: String,
        port: u16,
        user: String,
        database: String,
    },
}

impl Target {
    pub(crate) fn of_url(url: &str) -> Target {
        match crate::Backend::of_url(url) {
            crate::Backend::Sqlite => Target::Sqlite(crate::sqlite::path_of_url(url)),
            crate::Backend::Postgres => {
                use std::str::FromStr;
                match sqlx::postgres::PgConnectOptions::from_str(url) {
                    Ok(o) => Target::Postgres {
                        host: o.get_host().to_owned(),
                        port: o.get_port(),
                        user: o.get_username().to_owned(),
                        database: o.get_database().unwrap_or(o.get_username()).to_owned(),
                    },
                    Err(_) => Target::Postgres {
                        host: "?".into(),
                        port: 0,
                        user: "?".into(),
                        database: "?".into(),
                    },
                }
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite database {}", path.display()),
            Target::Postgres {
                host,
                port,
                database,
                ..
            } => format!("PostgreSQL database {database} at {host}:{port}"),
        }
    }
}

/// Turns a failure of `Store::open` into [`StoreError::Open`]: one line naming what was opened,
/// why it failed and the fix. Failures that are not about reaching the database pass through.
pub(crate) fn explain(target: &Target, err: StoreError) -> StoreError {
    let reason = match (&err, target) {
        (StoreError::SchemaTooNew { found, known }, _) => format!(
            "it was migrated by a newer version of invites (schema {found}; this one knows up \
             to {known}): run that version or a newer one"
        ),
        (StoreError::Database(e), Target::Sqlite(path)) => sqlite_reason(path, e),
        (StoreError::Database(e), Target::Postgres { .. }) => postgres_reason(target, e),
        (StoreError::Busy, Target::Postgres { host, port, .. }) => format!(
            "no connection within 10 s (is PostgreSQL running and listening on {host}:{port}?)"
        ),
        (StoreError::Busy, Target::Sqlite(_)) => {
            "it stayed locked by another process for 10 s: stop the other writer, or retry".into()
        }
        (StoreError::Sqlite(message), _) => message.clone(),
        _ => return err,
    };
    StoreError::Open(format!("cannot open {}: {reason}", target.name()))
}

/// The reason SQLite could not open or create `path`, from the file system when it tells more
/// than SQLite's result code.
fn sqlite_reason(path: &Path, e: &sqlx::Error) -> String {
    match error::sqlx_sqlite_code(e).map(error::sqlite_primary) {
        Some(error::SQLITE_NOTADB) => {
            "the file is not an SQLite database (wrong path, or an encrypted file?)".into()
        }
        Some(error::SQLITE_READONLY) => format!(
            "it is read-only for this process: give the process write access to {} and its \
             directory (SQLite writes its log beside the file)",
            path.display()
        ),
        _ => file_system_reason(path).unwrap_or_else(|| e.to_string()),
    }
}

/// What stands between this process and reading, writing or creating `path`, if anything.
fn file_system_reason(path: &Path) -> Option<String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&parent) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "the directory {} does not exist: create it (mkdir -p {}) or give another \
                 --database-url",
                parent.display(),
                parent.display()
            ))
        }
        Err(e) => return Some(io_reason(&parent, &e)),
        Ok(m) if !m.is_dir() => {
            return Some(format!(
                "{} is not a directory: give a path inside a directory",
                parent.display()
            ))
        }
        Ok(_) => {}
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Some(format!(
                "{} is a directory: give a file path inside it, e.g. {}",
                path.display(),
                path.join("invites.db").display()
            ))
        }
        Ok(_) => {
            if let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                return Some(io_reason(path, &e));
            }
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Some(io_reason(path, &e)),
        Err(_) => {}
    }
    // The file is fine or absent: SQLite also creates files beside it (the log), so the
    // directory must take new files. Probe it with a file of our own, removed at once.
    let probe = parent.join(format!(".invites-open-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(io_reason(&parent, &e)),
    }
}

fn io_reason(path: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied => format!(
            "permission denied on {}: give this user read and write access (chown or chmod), \
             or run as its owner",
            path.display()
        ),
        ErrorKind::ReadOnlyFilesystem => format!(
            "{} is on a read-only file system: put the database on a writable one",
            path.display()
        ),
        _ => format!("{}: {e}", path.display()),
    }
}

/// The reason PostgreSQL could not be reached or refused us.
fn postgres_reason(target: &Target, e: &sqlx::Error) -> String {
    let Target::Postgres {
        host,
        port,
        user,
        database,
    } = target
    else {
        return e.to_string();
    };
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!(
                "connection refused: is PostgreSQL running and listening on {host}:{port}? \
                 (check the host and port of --database-url)"
            ),
            std::io::ErrorKind::TimedOut => format!(
                "no answer from {host}:{port} (a firewall, or the wrong host in --database-url?)"
            ),
            _ if io.to_string().contains("failed to lookup address") => {
                format!("the host name {host} does not resolve: check the host of --database-url")
            }
            _ => format!("{io} (check the host and port of --database-url)"),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                error::PG_INVALID_PASSWORD => format!(
                    "password authentication failed for user {user}: check the user and \
                     password in --database-url"
                ),
                // pg_hba.conf has no entry for this user
                error::PG_INVALID_AUTHORIZATION => format!(
                    "PostgreSQL refused user {user} ({}): allow it in pg_hba.conf or use \
                     another user",
                    db.message()
                ),
                error::PG_INVALID_CATALOG_NAME => format!(
                    "the database {database} does not exist: create it (createdb -h {host} -p \
                     {port} -U {user} {database}) or name another in --database-url"
                ),
                error::PG_INSUFFICIENT_PRIVILEGE => format!(
                    "user {user} may not create the tables ({}): grant it CREATE on the schema, \
                     or migrate once as the owner",
                    db.message()
                ),
                _ => format!("{} (SQLSTATE {code})", db.message()),
            }
        }
        sqlx::Error::Tls(t) => format!("TLS failed: {t}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(path: &Path) -> Target {
        Target::Sqlite(path.to_path_buf())
    }

    #[test]
    fn a_missing_directory_is_named_with_the_fix() {
        let t = sqlite(Path::new("/nonexistent/dir/x.db"));
        let err = explain(
            &t,
            StoreError::Database(sqlx::Error::Io(std::io::Error::other("x"))),
        )
        .to_string();
        assert_eq!(
            err,
            "cannot open SQLite database /nonexistent/dir/x.db: the directory /nonexistent/dir \
             does not exist: create it (mkdir -p /nonexistent/dir) or give another --database-url"
        );
    }

    #[test]
    fn a_directory_given_as_the_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let reason = file_system_reason(dir.path()).unwrap();
        assert!(reason.contains("is a directory"), "{reason}");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let reason = file_system_reason(&file.join("x.db")).unwrap();
        assert!(reason.contains("is not a directory"), "{reason}");
        assert_eq!(file_system_reason(&dir.path().join("new.db")), None);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count() == 1,
            "the probe file is removed"
        );
    }

    #[test]
    fn io_failures_say_what_to_do() {
        let p = Path::new("/srv/x.db");
        let denied = io_reason(
            p,
            &std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(
            denied.contains("permission denied on /srv/x.db"),
            "{denied}"
        );
        assert!(denied.contains("chown or chmod"), "{denied}");
        let ro = io_reason(
            p,
            &std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem),
        );
        assert!(ro.contains("read-only file system"), "{ro}");
    }

    #[test]
    fn postgres_targets_hide_the_password() {
        let t = Target::of_url("postgres://app:s3cret@db.internal:6543/invites");
        assert_eq!(
            t,
            Target::Postgres {
                host: "db.internal".into(),
                port: 6543,
                user: "app".into(),
                database: "invites".into()
            }
        );
        let refused = explain(
            &t,
            StoreError::Database(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        )
        .to_string();
        assert_eq!(
            refused,
            "cannot open PostgreSQL database invites at db.internal:6543: connection refused: is \
             PostgreSQL running and listening on db.internal:6543? (check the host and port of \
             --database-url)"
        );
        assert!(!refused.contains("s3cret"));
    }

    #[test]
    fn a_newer_schema_says_which_program_to_run() {
        let err = explain(
            &sqlite(Path::new("a.db")),
            StoreError::SchemaTooNew { found: 9, known: 7 },
        )
        .to_string();
        assert_eq!(
            err,
            "cannot open SQLite database a.db: it was migrated by a newer version of invites \
             (schema 9; this one knows up to 7): run that version or a newer one"
        );
    }
}
