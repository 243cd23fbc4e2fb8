//! Atlas and Ops Manager invitations: to an organization (no project) or to a project.

#[cfg(test)]
use chrono::Utc;
use invites_domain::invitation::expires_at;
use invites_domain::{GroupRoleAssignment, Invitation, InvitationStatus, NewInvitation, ObjectId};
use serde::Serialize;

use crate::audit::{self, AuditEntry};
use crate::{from_millis, parse_object_id, Result, Store, StoreError};

/// Where an invitation invites to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationScope {
    Org(ObjectId),
    Project(ObjectId),
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

const SELECT: &str =
    "SELECT i.id, i.org_id, o.name, i.project_id, p.name, i.username, i.inviter_username, \
     i.roles, i.team_ids, i.group_role_assignments, i.status, i.created_at, i.expires_at \
     FROM invitations i JOIN orgs o ON o.id = i.org_id LEFT JOIN projects p ON p.id = i.project_id";

/// A [`Row`] from rusqlite (see `reader`).
fn row_tuple(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn decode(row: Row) -> Result<Invitation> {
    let (
        id,
        org,
        org_name,
        project,
        project_name,
        username,
        inviter,
        roles,
        teams,
        gra,
        status,
        created,
        expires,
    ) = row;
    let json = |what: &str, s: &str| StoreError::Corrupt(format!("invitation {id} {what}: {s:?}"));
    Ok(Invitation {
        id: parse_object_id(&id)?,
        org_id: parse_object_id(&org)?,
        org_name,
        project_id: project.as_deref().map(parse_object_id).transpose()?,
        project_name,
        username,
        inviter_username: inviter,
        roles: serde_json::from_str(&roles).map_err(|_| json("roles", &roles))?,
        team_ids: serde_json::from_str(&teams).map_err(|_| json("team_ids", &teams))?,
        group_role_assignments: serde_json::from_str(&gra)
            .map_err(|_| json("group_role_assignments", &gra))?,
        status: InvitationStatus::parse(&status).ok_or_else(|| json("status", &status))?,
        created_at: from_millis(created)?,
        expires_at: from_millis(expires)?,
    })
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

impl Store {
    /// Creates a pending invitation and its audit row in one transaction.
    pub async fn create_invitation(
        &self,
        new: &NewInvitation,
        audit_entry: &AuditEntry,
    ) -> Result<Invitation> {
        let now = audit_entry.at;
        let id = ObjectId::generate(now.timestamp());
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO invitations (id, org_id, project_id, username, inviter_username, roles, team_ids, \
             group_role_assignments, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10)",
        )
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
        .execute(&mut *tx)
        .await?;
        audit::write(
            &mut tx,
            audit_entry,
            "invitation.created",
            "invitation",
            &id.to_string(),
            &serde_json::json!({"username": new.username, "roles": new.roles}),
        )
        .await?;
        tx.commit().await?;
        self.invitation(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("invitation {id} vanished after insert")))
    }

    /// One invitation by id, whatever its status.
    pub async fn invitation(&self, id: ObjectId) -> Result<Option<Invitation>> {
        let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE i.id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(decode).transpose()
    }

    /// Pending invitations in a scope, oldest first, optionally for one username. An org scope lists
    /// only organization invitations, a project scope only that project's.
    pub async fn pending_invitations(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<Vec<Invitation>> {
        let (clause, id) = match scope {
            InvitationScope::Org(o) => ("i.org_id = $1 AND i.project_id IS NULL", o),
            InvitationScope::Project(p) => ("i.project_id = $1", p),
        };
        let sql = format!(
            "{SELECT} WHERE {clause} AND i.status = 'PENDING' AND ($2 IS NULL OR i.username = $2) ORDER BY i.created_at, i.id"
        );
        if let Some(readers) = &self.sqlite_readers {
            let username = username.map(str::to_owned);
            return readers
                .read(move |conn| {
                    let mut statement = conn.prepare_cached(&sql)?;
                    let mut rows = statement.query(rusqlite::params![id.to_string(), username])?;
                    let mut found = Vec::new();
                    while let Some(row) = rows.next()? {
                        found.push(decode(row_tuple(row)?)?);
                    }
                    Ok(found)
                })
                .await;
        }
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(id.to_string())
            .bind(username)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Replaces the roles (and, for organization invitations, teams and project assignments) of a
    /// pending invitation. Returns None when no pending invitation has that id.
    pub async fn update_invitation(
        &self,
        id: ObjectId,
        roles: Option<&[String]>,
        team_ids: Option<&[String]>,
        group_role_assignments: Option<&[GroupRoleAssignment]>,
        audit_entry: &AuditEntry,
    ) -> Result<Option<Invitation>> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE invitations SET roles = COALESCE($2, roles), team_ids = COALESCE($3, team_ids), \
             group_role_assignments = COALESCE($4, group_role_assignments) WHERE id = $1 AND status = 'PENDING'",
        )
        .bind(id.to_string())
        .bind(roles.map(to_json))
        .bind(team_ids.map(to_json))
        .bind(group_role_assignments.map(to_json))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        audit::write(
            &mut tx,
            audit_entry,
            "invitation.updated",
            "invitation",
            &id.to_string(),
            &serde_json::json!({"roles": roles, "teamIds": team_ids}),
        )
        .await?;
        tx.commit().await?;
        self.invitation(id).await
    }

    /// Marks a pending invitation accepted. Returns false when there was none.
    pub async fn accept_invitation(&self, id: ObjectId, audit_entry: &AuditEntry) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        let done = sqlx::query("UPDATE invitations SET status = 'ACCEPTED', accepted_at = $2 WHERE id = $1 AND status = 'PENDING'")
            .bind(id.to_string())
            .bind(audit_entry.at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        audit::write(
            &mut tx,
            audit_entry,
            "invitation.accepted",
            "invitation",
            &id.to_string(),
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh;
    use crate::Removal;

    fn new(org: ObjectId, project: Option<ObjectId>, user: &str) -> NewInvitation {
        NewInvitation {
            org_id: org,
            project_id: project,
            username: user.into(),
            inviter_username: "owner@example.com".into(),
            roles: vec!["ORG_MEMBER".into()],
            team_ids: vec![],
            group_role_assignments: vec![],
        }
    }

    #[tokio::test]
    async fn lifecycle_with_audit_rows() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let a = AuditEntry::operator(now);
        let org_inv = store
            .create_invitation(&new(org.id, None, "u@example.com"), &a)
            .await
            .unwrap();
        let proj_inv = store
            .create_invitation(&new(org.id, Some(project.id), "u@example.com"), &a)
            .await
            .unwrap();
        assert_eq!(org_inv.org_name, "Acme");
        assert_eq!(proj_inv.project_name.as_deref(), Some("web"));
        assert_eq!(
            org_inv.expires_at - org_inv.created_at,
            chrono::Duration::days(30)
        );

        let org_list = store
            .pending_invitations(InvitationScope::Org(org.id), None)
            .await
            .unwrap();
        assert_eq!(org_list, vec![org_inv.clone()]);
        let proj_list = store
            .pending_invitations(InvitationScope::Project(project.id), Some("u@example.com"))
            .await
            .unwrap();
        assert_eq!(proj_list, vec![proj_inv.clone()]);

        // A project invitation is not removed through its organization, nor through another
        // project; removing it leaves the organization invitation in place.
        let org_scope = InvitationScope::Org(org.id);
        let project_scope = InvitationScope::Project(project.id);
        let remove = |scope, id| store.remove_pending_invitation(scope, id, &a);
        assert_eq!(
            remove(org_scope, proj_inv.id).await.unwrap(),
            Removal::ProjectInvitation
        );
        assert_eq!(
            remove(InvitationScope::Project(org.id), proj_inv.id)
                .await
                .unwrap(),
            Removal::NotFound
        );
        assert_eq!(
            remove(project_scope, org_inv.id).await.unwrap(),
            Removal::NotFound
        );
        assert_eq!(
            remove(project_scope, proj_inv.id).await.unwrap(),
            Removal::Removed
        );
        assert_eq!(
            remove(project_scope, proj_inv.id).await.unwrap(),
            Removal::NotFound
        );
        assert!(store.invitation(org_inv.id).await.unwrap().is_some());

        // An accepted invitation can no longer be removed.
        assert!(store.accept_invitation(org_inv.id, &a).await.unwrap());
        assert_eq!(
            remove(org_scope, org_inv.id).await.unwrap(),
            Removal::NotFound
        );

        let trail = store
            .audit_for("invitation", &org_inv.id.to_string())
            .await
            .unwrap();
        let actions: Vec<_> = trail.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["invitation.created", "invitation.accepted"]);
        let removed = store
            .audit_for("invitation", &proj_inv.id.to_string())
            .await
            .unwrap();
        assert_eq!(removed.last().unwrap().action, "invitation.removed");
    }

    #[tokio::test]
    async fn update_replaces_roles_of_pending_only() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let a = AuditEntry::operator(now);
        let inv = store
            .create_invitation(&new(org.id, None, "u@example.com"), &a)
            .await
            .unwrap();
        let roles = vec!["ORG_OWNER".to_owned()];
        let updated = store
            .update_invitation(inv.id, Some(&roles), None, None, &a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.roles, roles);
        store.accept_invitation(inv.id, &a).await.unwrap();
        assert!(store
            .update_invitation(inv.id, Some(&roles), None, None, &a)
            .await
            .unwrap()
            .is_none());
    }
}
