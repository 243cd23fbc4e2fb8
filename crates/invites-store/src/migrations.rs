//! The schema's migrations, one folder per engine (`migrations/sqlite`, `migrations/postgres`),
//! embedded in the binary, and the rule that keeps the two folders twins: the same versions with
//! the same names, except the versions listed in `ENGINE_ONLY`.

use sqlx::migrate::Migrator;

use crate::timed_pool::TimedPool;
use crate::{Backend, Result, StoreError};

/// The SQLite schema.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The PostgreSQL twin: the same versions, tables and constraints, but for `ENGINE_ONLY`.
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Migrations that exist for one engine only: (version, the engine, why). Every other version is
/// in both folders under the same name; a test holds the folders to that.
#[cfg(test)]
const ENGINE_ONLY: [(i64, Backend, &str); 8] = [
    (
        20261201000007,
        Backend::Postgres,
        "digest_nonce_counts: replicas share the Digest nonce counts they accepted; one process \
         serves an SQLite database and its memory is the whole record",
    ),
    (
        20261202000009,
        Backend::Postgres,
        "limit_counts: replicas share their rate-limit and failed-authentication counts; one \
         process serves an SQLite database and its counts are the deployment's",
    ),
    (
        20261203000011,
        Backend::Postgres,
        "invitation_version_slots: a scope's version over 16 rows so that concurrent writes to \
         one scope do not wait for each other's commits; SQLite has one writer, which never waits",
    ),
    (
        20261203000012,
        Backend::Postgres,
        "community_pending_count_slots: the page counts over 16 rows per key so that concurrent \
         writes to one group or course do not wait for each other's commits; SQLite's one writer \
         never waits",
    ),
    (
        20261203000013,
        Backend::Postgres,
        "all_or_none: a function that undoes a bulk removal that found fewer invitations than \
         listed, in place of locking them first; SQLite's writer job decides in Rust between \
         its statements",
    ),
    (
        20261203000014,
        Backend::Postgres,
        "removing_replicas: replicas removing at once share the removal batches in flight; one \
         process serves an SQLite database and one batch at a time goes to its writer thread",
    ),
    (
        20261203000015,
        Backend::Postgres,
        "removing_replicas.nonce_counts_at: the nonce-count queue's heartbeat beside the \
         removal queues'; SQLite records no nonce counts and has no such table",
    ),
    (
        20261204000016,
        Backend::Postgres,
        "removing_replicas.creates_at and updates_at: the write queues' heartbeats beside the \
         others'; SQLite's creates and updates go to its writer thread, with no such queues and \
         no such table",
    ),
];

fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// The latest schema version this program knows for `backend`.
pub(crate) fn known_version(backend: Backend) -> i64 {
    migrator(backend)
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Applies `backend`'s pending migrations through `writer`, refusing (read through `pool`) a
/// database that a newer version has migrated.
pub(crate) async fn migrate(
    backend: Backend,
    pool: &TimedPool<sqlx::Any>,
    writer: &TimedPool<sqlx::Any>,
) -> Result<()> {
    let migrator = migrator(backend);
    let known = known_version(backend);
    let exists = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let table: Option<(String,)> = sqlx::query_as(exists)
        .fetch_optional(&mut *pool.acquire().await?)
        .await?;
    if table.is_some() {
        let (found,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *pool.acquire().await?)
            .await?;
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::SchemaTooNew { found, known });
        }
    }
    let mut conn = writer.acquire().await?;
    migrator.run(&mut *conn).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => StoreError::from(e),
        other => StoreError::Database(sqlx::Error::Migrate(Box::new(other))),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    /// The migrations in `migrations/<folder>`: version to description, from the file names
    /// (`<version>_<description>.sql`).
    fn folder(name: &str) -> BTreeMap<i64, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(name);
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let (version, description) = file
                .strip_suffix(".sql")
                .and_then(|stem| stem.split_once('_'))
                .unwrap_or_else(|| panic!("{name}/{file} is not <version>_<description>.sql"));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("{name}/{file}: the version is not a number"));
            let before = found.insert(version, description.to_owned());
            assert!(before.is_none(), "{name}: version {version} twice");
        }
        found
    }

    #[test]
    fn the_engines_have_the_same_migrations_but_the_engine_only_ones() {
        let mut sqlite = folder("sqlite");
        let mut postgres = folder("postgres");
        for (version, engine, why) in ENGINE_ONLY {
            assert!(!why.is_empty());
            let (only, other) = match engine {
                Backend::Sqlite => (&mut sqlite, &postgres),
                Backend::Postgres => (&mut postgres, &sqlite),
            };
            assert!(
                only.remove(&version).is_some(),
                "ENGINE_ONLY lists {version} for {engine:?}, which has no such migration"
            );
            assert!(
                !other.contains_key(&version),
                "ENGINE_ONLY lists {version} for {engine:?} only, but both engines have it"
            );
        }
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres differ (versions and names); a migration \
             for one engine only belongs in ENGINE_ONLY with its reason"
        );
    }

    #[test]
    fn the_embedded_migrations_are_the_folders() {
        for (migrator, name) in [
            (&SQLITE_MIGRATOR, "sqlite"),
            (&POSTGRES_MIGRATOR, "postgres"),
        ] {
            let embedded: BTreeMap<i64, String> = migrator
                .iter()
                .map(|m| (m.version, m.description.replace(' ', "_")))
                .collect();
            // sqlx::migrate! reads the folder when the crate compiles, and cargo does not
            // recompile it for a new file alone.
            assert_eq!(
                embedded,
                folder(name),
                "{name}: the binary embeds other migrations than the folder holds (a file added \
                 since this crate compiled? touch src/migrations.rs)"
            );
        }
    }
}
