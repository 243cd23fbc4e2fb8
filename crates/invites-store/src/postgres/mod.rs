//! The PostgreSQL engine: one sqlx pool for everything, several replicas over one database.
//!
//! `invitations`, `community` and `removals` hold the PostgreSQL bodies of the hot-path
//! operations whose SQLite twins are in `crate::sqlite`; both share the SQL texts, row type and
//! audit-row builders of `crate::invitations`, `crate::community` and `crate::removals`.

mod community;
mod invitations;
pub(crate) mod removals;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use crate::audit::{self, AuditRow};
use crate::{Result, StoreError};

/// What a store on PostgreSQL holds.
#[derive(Clone)]
pub(crate) struct Postgres {
    /// Reads and writes, hot paths and administration alike (8 connections).
    pub(crate) pool: AnyPool,
}

/// Connects to the server `url` names: a pool of 8.
pub(crate) async fn connect(url: &str) -> Result<AnyPool> {
    match AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
    {
        Ok(pool) => Ok(pool),
        // The pool retries refused connections until its timeout and then says only that; one
        // direct attempt tells why.
        Err(sqlx::Error::PoolTimedOut) => {
            use sqlx::Connection;
            Err(match sqlx::AnyConnection::connect(url).await {
                Err(e) => StoreError::Database(e),
                Ok(_) => StoreError::Busy,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes audit rows in a transaction, up to [`audit::ROWS_PER_STATEMENT`] per statement.
pub(crate) async fn write_audit(
    conn: &mut sqlx::AnyConnection,
    rows: &[AuditRow<'_>],
) -> Result<()> {
    for chunk in rows.chunks(audit::ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(audit::insert_sql(chunk.len()));
        for row in chunk {
            query = query
                .bind(row.entry.at.timestamp_millis())
                .bind(&row.entry.actor_kind)
                .bind(&row.entry.actor_id)
                .bind(&row.entry.actor_display)
                .bind(row.action)
                .bind(row.target_kind)
                .bind(&row.target_id)
                .bind(&row.entry.remote_addr)
                .bind(&row.detail);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
