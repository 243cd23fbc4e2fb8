//! The audit log: one row for every invitation created, changed, accepted or removed.

use chrono::{DateTime, Utc};
use invites_domain::Principal;

use crate::{placeholders, Result, Store};

/// Who did what to which invitation, from where. Written in the same transaction as the change.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_display: String,
    pub remote_addr: Option<String>,
    pub at: DateTime<Utc>,
}

impl AuditEntry {
    pub fn by(principal: &Principal, remote_addr: Option<String>, at: DateTime<Utc>) -> Self {
        AuditEntry {
            actor_kind: principal.kind.as_str().to_owned(),
            actor_id: principal.id.to_string(),
            actor_display: principal.display.clone(),
            remote_addr,
            at,
        }
    }

    /// An entry for changes made by an operator through the command line.
    pub fn operator(at: DateTime<Utc>) -> Self {
        AuditEntry {
            actor_kind: "operator".into(),
            actor_id: "cli".into(),
            actor_display: "invites admin".into(),
            remote_addr: None,
            at,
        }
    }
}

/// A stored audit row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub actor_kind: String,
    pub actor_display: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub remote_addr: Option<String>,
    pub detail: String,
}

/// One audit row to write: what was done to which target, and the detail as JSON text.
pub(crate) struct AuditRow<'a> {
    pub entry: &'a AuditEntry,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: String,
    pub detail: String,
}

/// Values per audit row in [`insert_sql`].
pub(crate) const COLUMNS: usize = 9;
/// Audit rows per INSERT: 900 parameters, far below either engine's limit.
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

/// The audit rows' columns, in bind order (`postgres::bind_audit`, [`COLUMNS`] of them).
pub(crate) const COLUMN_NAMES: &str =
    "at, actor_kind, actor_id, actor_display, action, target_kind, target_id, remote_addr, detail";
/// The audit INSERT's columns, in bind order.
static INSERT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("INSERT INTO audit_log ({COLUMN_NAMES}) VALUES "));

/// The INSERT of `rows` audit rows (`$N` placeholders, which SQLite reads by position too), built
/// once per number of rows; each engine binds a row's values in [`INSERT`]'s column order
/// (`sqlite::write_audit`, `postgres::write_audit`).
pub(crate) fn insert_sql(rows: usize) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=ROWS_PER_STATEMENT)
            .map(|rows| {
                let values: Vec<String> = (0..rows)
                    .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
                    .collect();
                format!("{}{}", *INSERT, values.join(", "))
            })
            .collect()
    });
    &texts[rows.clamp(1, ROWS_PER_STATEMENT) - 1]
}

impl Store {
    /// The audit rows about one target, oldest first.
    pub async fn audit_for(&self, target_kind: &str, target_id: &str) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRecord> = sqlx::query_as(
            "SELECT at AS at_ms, actor_kind, actor_display, action, target_kind, target_id, remote_addr, detail \
             FROM audit_log WHERE target_kind = $1 AND target_id = $2 ORDER BY id",
        )
        .bind(target_kind)
        .bind(target_id)
        .fetch_all(&mut *self.read_connection().await?)
        .await?;
        Ok(rows)
    }
}
