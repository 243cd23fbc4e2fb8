//! SQLite bodies of the invitation operations: writes are jobs of the writer thread (each read
//! back in its own job: one hand-off in all), reads run on the reader connections.

use invites_domain::invitation::expires_at;
use invites_domain::{Invitation, NewInvitation, ObjectId};
use rusqlite::OptionalExtension;

use super::writer::Outcome;
use super::{write_audit, Sqlite};
use crate::audit::AuditEntry;
use crate::invitations::{
    audit_row, by_id_sql, col, pending_sql, scope_id, to_json, vanished, InvitationRow,
    InvitationScope, ACCEPTED, ACCEPT_SQL, CREATED, INSERT_SQL, UPDATED, UPDATE_SQL, VERSION_SQL,
};
use crate::Result;

impl InvitationRow {
    /// A row from rusqlite.
    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationRow> {
        Ok(InvitationRow {
            id: r.get(col::ID)?,
            org_id: r.get(col::ORG_ID)?,
            org_name: r.get(col::ORG_NAME)?,
            project_id: r.get(col::PROJECT_ID)?,
            project_name: r.get(col::PROJECT_NAME)?,
            username: r.get(col::USERNAME)?,
            inviter_username: r.get(col::INVITER_USERNAME)?,
            roles: r.get(col::ROLES)?,
            team_ids: r.get(col::TEAM_IDS)?,
            group_role_assignments: r.get(col::GROUP_ROLE_ASSIGNMENTS)?,
            status: r.get(col::STATUS)?,
            created_at: r.get(col::CREATED_AT)?,
            expires_at: r.get(col::EXPIRES_AT)?,
        })
    }
}

impl Sqlite {
    /// See [`crate::Store::create_invitation`]: `id` is the new invitation's, `detail` its audit
    /// row's.
    pub(crate) async fn create_invitation(
        &self,
        id: ObjectId,
        new: &NewInvitation,
        audit_entry: &AuditEntry,
        detail: serde_json::Value,
    ) -> Result<Invitation> {
        // A job of the writer thread, batched with whatever else is being written, and read
        // back in its own transaction: one hand-off in all.
        let now = audit_entry.at;
        let (new, audit_entry) = (new.clone(), audit_entry.clone());
        self.writer
            .run(move |conn| {
                conn.prepare_cached(INSERT_SQL)?.execute(rusqlite::params![
                    id.to_string(),
                    new.org_id.to_string(),
                    new.project_id.map(|p| p.to_string()),
                    &new.username,
                    &new.inviter_username,
                    to_json(&new.roles),
                    to_json(&new.team_ids),
                    to_json(&new.group_role_assignments),
                    now.timestamp_millis(),
                    expires_at(now).timestamp_millis(),
                ])?;
                write_audit(conn, &[audit_row(&audit_entry, CREATED, id, &detail)])?;
                let created = invitation_on(conn, id)?.ok_or_else(|| vanished(id))?;
                Ok(Outcome::Keep(created))
            })
            .await
    }

    /// See [`crate::Store::invitation`].
    pub(crate) async fn invitation(&self, id: ObjectId) -> Result<Option<Invitation>> {
        self.readers.read(move |conn| invitation_on(conn, id)).await
    }

    /// See [`crate::Store::pending_invitations`].
    pub(crate) async fn pending_invitations(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<Vec<Invitation>> {
        let (sql, id) = pending_sql(scope, username.is_some());
        let username = username.map(str::to_owned);
        self.readers
            .read(move |conn| pending_on(conn, sql, id, username))
            .await
    }

    /// See [`crate::Store::invitations_version`].
    pub(crate) async fn invitations_version(&self, scope: InvitationScope) -> Result<i64> {
        let id = scope_id(scope);
        self.readers.read(move |conn| version_on(conn, &id)).await
    }

    /// See [`crate::Store::pending_invitations_versioned`]: one read transaction, so the version
    /// and the rows come from the same snapshot.
    pub(crate) async fn pending_invitations_versioned(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<(Option<i64>, Vec<Invitation>)> {
        let (sql, id) = pending_sql(scope, username.is_some());
        let username = username.map(str::to_owned);
        self.readers
            .read(move |conn| {
                let tx = conn.unchecked_transaction()?;
                let version = version_on(&tx, &scope_id(scope))?;
                let found = pending_on(&tx, sql, id, username)?;
                tx.commit()?;
                Ok((Some(version), found))
            })
            .await
    }

    /// See [`crate::Store::update_invitation`]; the JSON of what changes, `detail` the audit
    /// row's.
    pub(crate) async fn update_invitation(
        &self,
        id: ObjectId,
        roles_json: Option<String>,
        teams_json: Option<String>,
        assignments_json: Option<String>,
        audit_entry: &AuditEntry,
        detail: serde_json::Value,
    ) -> Result<Option<Invitation>> {
        let audit_entry = audit_entry.clone();
        self.writer
            .run(move |conn| {
                // By name: the parameters do not appear in the order of their numbers.
                let changed =
                    conn.prepare_cached(UPDATE_SQL)?
                        .execute(rusqlite::named_params! {
                            "$1": id.to_string(),
                            "$2": roles_json,
                            "$3": teams_json,
                            "$4": assignments_json,
                        })?;
                if changed == 0 {
                    return Ok(Outcome::Keep(None));
                }
                write_audit(conn, &[audit_row(&audit_entry, UPDATED, id, &detail)])?;
                Ok(Outcome::Keep(invitation_on(conn, id)?))
            })
            .await
    }

    /// See [`crate::Store::accept_invitation`].
    pub(crate) async fn accept_invitation(
        &self,
        id: ObjectId,
        audit_entry: &AuditEntry,
    ) -> Result<bool> {
        let audit_entry = audit_entry.clone();
        self.writer
            .run(move |conn| {
                let changed =
                    conn.prepare_cached(ACCEPT_SQL)?
                        .execute(rusqlite::named_params! {
                            "$1": id.to_string(),
                            "$2": audit_entry.at.timestamp_millis(),
                        })?;
                if changed == 0 {
                    return Ok(Outcome::Keep(false));
                }
                let detail = serde_json::json!({});
                write_audit(conn, &[audit_row(&audit_entry, ACCEPTED, id, &detail)])?;
                Ok(Outcome::Keep(true))
            })
            .await
    }
}

/// Runs [`pending_sql`] on a connection.
fn pending_on(
    conn: &rusqlite::Connection,
    sql: &str,
    id: ObjectId,
    username: Option<String>,
) -> Result<Vec<Invitation>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = match username {
        Some(username) => statement.query(rusqlite::params![id.to_string(), username])?,
        None => statement.query([id.to_string()])?,
    };
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(InvitationRow::from_sqlite(row)?.decode()?);
    }
    Ok(found)
}

/// The invitation with an id, any status, on a connection.
fn invitation_on(conn: &rusqlite::Connection, id: ObjectId) -> Result<Option<Invitation>> {
    conn.prepare_cached(by_id_sql())?
        .query_row([id.to_string()], InvitationRow::from_sqlite)
        .optional()?
        .map(InvitationRow::decode)
        .transpose()
}

/// A scope's version on a connection.
fn version_on(conn: &rusqlite::Connection, scope_id: &str) -> Result<i64> {
    let version: Option<i64> = conn
        .prepare_cached(VERSION_SQL)?
        .query_row([scope_id], |row| row.get(0))
        .optional()?;
    Ok(version.unwrap_or(0))
}
