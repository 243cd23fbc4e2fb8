//! PostgreSQL bodies of the invitation operations, on the native pool: each write is one
//! statement with its audit row, returning the invitation as written.

use invites_domain::invitation::expires_at;
use invites_domain::{Invitation, NewInvitation, ObjectId};

use sqlx::FromRow;

use super::{audited_sql, bind_audit, Postgres};
use crate::audit::AuditEntry;
use crate::invitations::{
    audit_row, by_id_sql, col, pending_sql, scope_id, to_json, vanished, InvitationRow,
    InvitationScope, ACCEPTED, ACCEPT_SQL, CREATED, INSERT_SQL, UPDATED, UPDATE_SQL,
};
use crate::Result;

/// A row through sqlx's PostgreSQL driver.
impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for InvitationRow {
    fn from_row(r: &sqlx::postgres::PgRow) -> sqlx::Result<InvitationRow> {
        use sqlx::Row;
        Ok(InvitationRow {
            id: r.try_get(col::ID)?,
            org_id: r.try_get(col::ORG_ID)?,
            org_name: r.try_get(col::ORG_NAME)?,
            project_id: r.try_get(col::PROJECT_ID)?,
            project_name: r.try_get(col::PROJECT_NAME)?,
            username: r.try_get(col::USERNAME)?,
            inviter_username: r.try_get(col::INVITER_USERNAME)?,
            roles: r.try_get(col::ROLES)?,
            team_ids: r.try_get(col::TEAM_IDS)?,
            group_role_assignments: r.try_get(col::GROUP_ROLE_ASSIGNMENTS)?,
            status: r.try_get(col::STATUS)?,
            created_at: r.try_get(col::CREATED_AT)?,
            expires_at: r.try_get(col::EXPIRES_AT)?,
        })
    }
}

/// The version of a scope (parameter: [`scope_id`]): the sum of its slots (migration 11), NULL
/// before its first change.
const VERSION_SQL: &str =
    "SELECT CAST(SUM(version) AS BIGINT) FROM invitation_versions WHERE scope_id = $1";

/// The create, update and accept, each with its audit row in the same statement
/// ([`audited_sql`]).
static CREATE_AUDITED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| audited_sql(INSERT_SQL, 10));
static UPDATE_AUDITED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| audited_sql(UPDATE_SQL, 4));
static ACCEPT_AUDITED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| audited_sql(ACCEPT_SQL, 2));

/// `query` with the ten values of a new invitation's row bound, as [`INSERT_SQL`] numbers them:
/// `id`, what `new` says, created `now`.
pub(crate) fn bind_new<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    id: ObjectId,
    new: &'q NewInvitation,
    now: chrono::DateTime<chrono::Utc>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(id.to_string())
        .bind(new.org_id.to_string())
        .bind(new.project_id.map(|p| p.to_string()))
        .bind(&new.username)
        .bind(&new.inviter_username)
        .bind(to_json(&new.roles))
        .bind(to_json(&new.team_ids))
        .bind(to_json(&new.group_role_assignments))
        .bind(now.timestamp_millis())
        .bind(expires_at(now).timestamp_millis())
}

impl Postgres {
    /// See [`crate::Store::create_invitation`]: `id` is the new invitation's, `detail` its audit
    /// row's.
    pub(crate) async fn create_invitation(
        &self,
        id: ObjectId,
        new: &NewInvitation,
        audit_entry: &AuditEntry,
        detail: &serde_json::Value,
    ) -> Result<Invitation> {
        let audit = audit_row(audit_entry, CREATED, id, detail);
        let query = bind_new(sqlx::query(&CREATE_AUDITED), id, new, audit_entry.at);
        let query = bind_audit(query, &audit);
        let row: Option<InvitationRow> = self
            .native
            .run(async |c| query.fetch_optional(c).await)
            .await?
            .map(|r| InvitationRow::from_row(&r))
            .transpose()?;
        row.ok_or_else(|| vanished(id))?.decode()
    }

    /// See [`crate::Store::invitation`].
    pub(crate) async fn invitation(&self, id: ObjectId) -> Result<Option<Invitation>> {
        let query = sqlx::query_as(by_id_sql()).bind(id.to_string());
        let row: Option<InvitationRow> = self
            .native
            .run(async |c| query.fetch_optional(c).await)
            .await?;
        row.map(InvitationRow::decode).transpose()
    }

    /// See [`crate::Store::pending_invitations`].
    pub(crate) async fn pending_invitations(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<Vec<Invitation>> {
        let (sql, id) = pending_sql(scope, username.is_some());
        let mut query = sqlx::query_as(sql).bind(id.to_string());
        if let Some(username) = username {
            query = query.bind(username);
        }
        let rows: Vec<InvitationRow> = self.native.run(async |c| query.fetch_all(c).await).await?;
        rows.into_iter().map(InvitationRow::decode).collect()
    }

    /// See [`crate::Store::invitations_version`]: one query for the requests that ask at once
    /// ([`super::shared_reads`]).
    pub(crate) async fn invitations_version(&self, scope: InvitationScope) -> Result<i64> {
        let this = self.clone();
        self.versions
            .get(scope_id(scope), move |id| {
                let this = this.clone();
                async move { this.read_version(id).await }
            })
            .await
    }

    /// The version of the scope `id` names, read now.
    async fn read_version(&self, id: String) -> Result<i64> {
        let query = sqlx::query_scalar(VERSION_SQL).bind(id);
        let version: Option<i64> = self.native.run(async |c| query.fetch_one(c).await).await?;
        Ok(version.unwrap_or(0))
    }

    /// See [`crate::Store::pending_invitations_versioned`]: the list between two reads of the
    /// version, as of that version only when both are equal.
    pub(crate) async fn pending_invitations_versioned(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<(Option<i64>, Vec<Invitation>)> {
        let before = self.invitations_version(scope).await?;
        let found = self.pending_invitations(scope, username).await?;
        let after = self.invitations_version(scope).await?;
        Ok(((before == after).then_some(before), found))
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
        detail: &serde_json::Value,
    ) -> Result<Option<Invitation>> {
        let audit = audit_row(audit_entry, UPDATED, id, detail);
        let query = sqlx::query(&UPDATE_AUDITED)
            .bind(id.to_string())
            .bind(roles_json)
            .bind(teams_json)
            .bind(assignments_json);
        let query = bind_audit(query, &audit);
        let row = self
            .native
            .run(async |c| query.fetch_optional(c).await)
            .await?;
        row.map(|r| InvitationRow::from_row(&r)?.decode())
            .transpose()
    }

    /// See [`crate::Store::accept_invitation`].
    pub(crate) async fn accept_invitation(
        &self,
        id: ObjectId,
        audit_entry: &AuditEntry,
    ) -> Result<bool> {
        let detail = serde_json::json!({});
        let audit = audit_row(audit_entry, ACCEPTED, id, &detail);
        let query = sqlx::query(&ACCEPT_AUDITED)
            .bind(id.to_string())
            .bind(audit_entry.at.timestamp_millis());
        let query = bind_audit(query, &audit);
        let accepted = self
            .native
            .run(async |c| query.fetch_optional(c).await)
            .await?;
        Ok(accepted.is_some())
    }
}
