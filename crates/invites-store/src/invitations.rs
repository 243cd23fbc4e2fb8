//! Atlas and Ops Manager invitations: to an organization (no project) or to a project.
//!
//! The [`Store`] methods dispatch to their engine's body (`crate::sqlite::invitations`,
//! `crate::postgres::invitations`); what both bodies share is here: the SQL texts, the row type
//! [`InvitationRow`] and its parsing, and the audit rows.

use std::sync::OnceLock;

#[cfg(test)]
use chrono::Utc;
use invites_domain::{GroupRoleAssignment, Invitation, InvitationStatus, NewInvitation, ObjectId};
use serde::Serialize;

use crate::audit::{AuditEntry, AuditRow};
use crate::{from_millis, parse_object_id, Engine, Result, Store, StoreError};

/// Where an invitation invites to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationScope {
    Org(ObjectId),
    Project(ObjectId),
}

/// An invitation as [`SELECT`] reads it, before its ids, JSON lists, status and times are
/// parsed: the one row type of both engines' decoders.
#[derive(Debug)]
pub(crate) struct InvitationRow {
    pub id: String,
    pub org_id: String,
    pub org_name: String,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub username: String,
    pub inviter_username: String,
    /// JSON array of role names.
    pub roles: String,
    /// JSON array of team ids.
    pub team_ids: String,
    /// JSON array of project role assignments.
    pub group_role_assignments: String,
    pub status: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// Where each field of an [`InvitationRow`] is in [`SELECT`]'s column list (read by index: no
/// name lookup per column and row).
pub(crate) mod col {
    pub const ID: usize = 0;
    pub const ORG_ID: usize = 1;
    pub const ORG_NAME: usize = 2;
    pub const PROJECT_ID: usize = 3;
    pub const PROJECT_NAME: usize = 4;
    pub const USERNAME: usize = 5;
    pub const INVITER_USERNAME: usize = 6;
    pub const ROLES: usize = 7;
    pub const TEAM_IDS: usize = 8;
    pub const GROUP_ROLE_ASSIGNMENTS: usize = 9;
    pub const STATUS: usize = 10;
    pub const CREATED_AT: usize = 11;
    pub const EXPIRES_AT: usize = 12;
}

/// The invitations with their organization's and project's names; [`col`] names its columns.
pub(crate) const SELECT: &str =
    "SELECT i.id, i.org_id, o.name, i.project_id, p.name, i.username, i.inviter_username, \
     i.roles, i.team_ids, i.group_role_assignments, i.status, i.created_at, i.expires_at \
     FROM invitations i JOIN orgs o ON o.id = i.org_id LEFT JOIN projects p ON p.id = i.project_id";

impl InvitationRow {
    /// The invitation the row stores; [`StoreError::Corrupt`] if a value does not parse.
    pub(crate) fn decode(self) -> Result<Invitation> {
        let id = &self.id;
        let json =
            |what: &str, s: &str| StoreError::Corrupt(format!("invitation {id} {what}: {s:?}"));
        Ok(Invitation {
            id: parse_object_id(id)?,
            org_id: parse_object_id(&self.org_id)?,
            org_name: self.org_name,
            project_id: self
                .project_id
                .as_deref()
                .map(parse_object_id)
                .transpose()?,
            project_name: self.project_name,
            username: self.username,
            inviter_username: self.inviter_username,
            roles: serde_json::from_str(&self.roles).map_err(|_| json("roles", &self.roles))?,
            team_ids: serde_json::from_str(&self.team_ids)
                .map_err(|_| json("team_ids", &self.team_ids))?,
            group_role_assignments: serde_json::from_str(&self.group_role_assignments)
                .map_err(|_| json("group_role_assignments", &self.group_role_assignments))?,
            status: InvitationStatus::parse(&self.status)
                .ok_or_else(|| json("status", &self.status))?,
            created_at: from_millis(self.created_at)?,
            expires_at: from_millis(self.expires_at)?,
        })
    }
}

/// A new pending invitation; its ten parameters in order of appearance (as rusqlite binds them
/// by position): id, organization, project, username, inviter, roles, teams, project role
/// assignments (JSON), creation and expiry (milliseconds).
pub(crate) const INSERT_SQL: &str = "INSERT INTO invitations (id, org_id, project_id, username, \
     inviter_username, roles, team_ids, group_role_assignments, status, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10)";

/// New roles, teams and project assignments (each kept when NULL) for a pending invitation.
pub(crate) const UPDATE_SQL: &str = "UPDATE invitations SET roles = COALESCE($2, roles), \
     team_ids = COALESCE($3, team_ids), group_role_assignments = COALESCE($4, group_role_assignments) \
     WHERE id = $1 AND status = 'PENDING'";

/// A pending invitation accepted at a time.
pub(crate) const ACCEPT_SQL: &str = "UPDATE invitations SET status = 'ACCEPTED', accepted_at = $2 \
     WHERE id = $1 AND status = 'PENDING'";

/// The version of a scope on SQLite (parameter: [`scope_id`]); no row before its first change.
/// PostgreSQL sums the scope's slots instead (its migration 11).
pub(crate) const VERSION_SQL: &str = "SELECT version FROM invitation_versions WHERE scope_id = $1";

/// The invitation with an id, any status.
pub(crate) fn by_id_sql() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format!("{SELECT} WHERE i.id = $1"))
}

/// The pending-invitations query of a scope, for one username or all, and the id it binds first
/// (the username second). Two texts rather than one `($2 IS NULL OR username = $2)`: with the
/// username named the planner seeks the scope's unique (scope, username) index instead of
/// reading every pending invitation of the scope, which made a create in a scope of thousands of
/// invitations cost thousands of rows.
pub(crate) fn pending_sql(scope: InvitationScope, by_username: bool) -> (&'static str, ObjectId) {
    static TEXTS: OnceLock<[String; 4]> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        let text = |clause: &str, username: &str| {
            format!(
                "{SELECT} WHERE {clause} AND i.status = 'PENDING'{username} ORDER BY i.created_at, i.id"
            )
        };
        let (org, project) = ("i.org_id = $1 AND i.project_id IS NULL", "i.project_id = $1");
        let one = " AND i.username = $2";
        [text(org, ""), text(org, one), text(project, ""), text(project, one)]
    });
    let (base, id) = match scope {
        InvitationScope::Org(o) => (0, o),
        InvitationScope::Project(p) => (2, p),
    };
    (&texts[base + usize::from(by_username)], id)
}

/// The key of a scope in `invitation_versions`: the project's id, or the organization's.
pub(crate) fn scope_id(scope: InvitationScope) -> String {
    match scope {
        InvitationScope::Org(id) | InvitationScope::Project(id) => id.to_string(),
    }
}

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

/// An invitation just inserted could not be read back in the same transaction.
pub(crate) fn vanished(id: ObjectId) -> StoreError {
    StoreError::Corrupt(format!("invitation {id} vanished after insert"))
}

/// Audit actions of invitations (removals: see `removals`).
pub(crate) const CREATED: &str = "invitation.created";
pub(crate) const UPDATED: &str = "invitation.updated";
pub(crate) const ACCEPTED: &str = "invitation.accepted";

/// The audit row of `action` on invitation `id`.
pub(crate) fn audit_row<'a>(
    entry: &'a AuditEntry,
    action: &'static str,
    id: ObjectId,
    detail: &serde_json::Value,
) -> AuditRow<'a> {
    AuditRow {
        entry,
        action,
        target_kind: "invitation",
        target_id: id.to_string(),
        detail: detail.to_string(),
    }
}

impl Store {
    /// Creates a pending invitation and its audit row in one transaction (on PostgreSQL shared
    /// with the creates queued meanwhile, `postgres::write_batches`).
    pub async fn create_invitation(
        &self,
        new: &NewInvitation,
        audit_entry: &AuditEntry,
    ) -> Result<Invitation> {
        let id = ObjectId::generate(audit_entry.at.timestamp());
        let detail = serde_json::json!({"username": new.username, "roles": new.roles});
        match (&self.engine, &self.creates) {
            (Engine::Sqlite(db), _) => db.create_invitation(id, new, audit_entry, detail).await,
            (Engine::Postgres(_), Some(queue)) => {
                let create = crate::postgres::creates::Create {
                    id,
                    new: new.clone(),
                    audit: audit_entry.clone(),
                    detail,
                };
                crate::postgres::write_batches::send(queue, create).await
            }
            (Engine::Postgres(db), None) => {
                db.create_invitation(id, new, audit_entry, &detail).await
            }
        }
    }

    /// One invitation by id, whatever its status.
    pub async fn invitation(&self, id: ObjectId) -> Result<Option<Invitation>> {
        match &self.engine {
            Engine::Sqlite(db) => db.invitation(id).await,
            Engine::Postgres(db) => db.invitation(id).await,
        }
    }

    /// Pending invitations in a scope, oldest first, optionally for one username. An org scope lists
    /// only organization invitations, a project scope only that project's.
    pub async fn pending_invitations(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<Vec<Invitation>> {
        match &self.engine {
            Engine::Sqlite(db) => db.pending_invitations(scope, username).await,
            Engine::Postgres(db) => db.pending_invitations(scope, username).await,
        }
    }

    /// The version of `scope`'s invitations: it moves, in the same transaction, with every change
    /// to them (triggers of migration 6); 0 before the first.
    pub async fn invitations_version(&self, scope: InvitationScope) -> Result<i64> {
        match &self.engine {
            Engine::Sqlite(db) => db.invitations_version(scope).await,
            Engine::Postgres(db) => db.invitations_version(scope).await,
        }
    }

    /// [`Store::pending_invitations`] with the version of the scope they are as of, or `None`
    /// when a change committed while they were read (so they may be as of no one version).
    pub async fn pending_invitations_versioned(
        &self,
        scope: InvitationScope,
        username: Option<&str>,
    ) -> Result<(Option<i64>, Vec<Invitation>)> {
        match &self.engine {
            Engine::Sqlite(db) => db.pending_invitations_versioned(scope, username).await,
            Engine::Postgres(db) => db.pending_invitations_versioned(scope, username).await,
        }
    }

    /// Replaces the roles (and, for organization invitations, teams and project assignments) of a
    /// pending invitation, with its audit row in one transaction (on PostgreSQL shared with the
    /// updates queued meanwhile, `postgres::write_batches`). Returns None when no pending
    /// invitation has that id.
    pub async fn update_invitation(
        &self,
        id: ObjectId,
        roles: Option<&[String]>,
        team_ids: Option<&[String]>,
        group_role_assignments: Option<&[GroupRoleAssignment]>,
        audit_entry: &AuditEntry,
    ) -> Result<Option<Invitation>> {
        let (r, t, a) = (
            roles.map(to_json),
            team_ids.map(to_json),
            group_role_assignments.map(to_json),
        );
        let detail = serde_json::json!({"roles": roles, "teamIds": team_ids});
        match (&self.engine, &self.updates) {
            (Engine::Sqlite(db), _) => db.update_invitation(id, r, t, a, audit_entry, detail).await,
            (Engine::Postgres(_), Some(queue)) => {
                let update = crate::postgres::updates::Update {
                    id,
                    roles: r,
                    team_ids: t,
                    group_role_assignments: a,
                    audit: audit_entry.clone(),
                    detail,
                };
                crate::postgres::write_batches::send(queue, update).await
            }
            (Engine::Postgres(db), None) => {
                db.update_invitation(id, r, t, a, audit_entry, &detail)
                    .await
            }
        }
    }

    /// Marks a pending invitation accepted. Returns false when there was none.
    pub async fn accept_invitation(&self, id: ObjectId, audit_entry: &AuditEntry) -> Result<bool> {
        match &self.engine {
            Engine::Sqlite(db) => db.accept_invitation(id, audit_entry).await,
            Engine::Postgres(db) => db.accept_invitation(id, audit_entry).await,
        }
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

    #[test]
    fn the_row_decoders_read_the_columns_of_select_in_order() {
        let (columns, _) = SELECT
            .strip_prefix("SELECT ")
            .and_then(|s| s.split_once(" FROM "))
            .unwrap();
        let columns: Vec<&str> = columns.split(", ").collect();
        let named = [
            (col::ID, "i.id"),
            (col::ORG_ID, "i.org_id"),
            (col::ORG_NAME, "o.name"),
            (col::PROJECT_ID, "i.project_id"),
            (col::PROJECT_NAME, "p.name"),
            (col::USERNAME, "i.username"),
            (col::INVITER_USERNAME, "i.inviter_username"),
            (col::ROLES, "i.roles"),
            (col::TEAM_IDS, "i.team_ids"),
            (col::GROUP_ROLE_ASSIGNMENTS, "i.group_role_assignments"),
            (col::STATUS, "i.status"),
            (col::CREATED_AT, "i.created_at"),
            (col::EXPIRES_AT, "i.expires_at"),
        ];
        assert_eq!(columns.len(), named.len(), "{columns:?}");
        for (index, column) in named {
            assert_eq!(columns[index], column, "column {index}");
        }
    }

    #[test]
    fn a_row_that_does_not_parse_is_corrupt_and_names_the_invitation() {
        let row = || InvitationRow {
            id: "6b0f1ae6e652eb5912000001".into(),
            org_id: "6b0f1ae6e652eb5912000002".into(),
            org_name: "Acme".into(),
            project_id: None,
            project_name: None,
            username: "u@example.com".into(),
            inviter_username: "o@example.com".into(),
            roles: r#"["ORG_MEMBER"]"#.into(),
            team_ids: "[]".into(),
            group_role_assignments: "[]".into(),
            status: "PENDING".into(),
            created_at: 0,
            expires_at: 1,
        };
        let good = row().decode().unwrap();
        assert_eq!(
            (good.roles.as_slice(), good.status),
            (&["ORG_MEMBER".to_owned()][..], InvitationStatus::Pending)
        );
        let mut bad = row();
        bad.team_ids = "[1".into();
        let err = bad.decode().unwrap_err().to_string();
        assert!(err.contains("6b0f1ae6e652eb5912000001 team_ids"), "{err}");
        let mut bad = row();
        bad.status = "GONE".into();
        assert!(matches!(bad.decode(), Err(StoreError::Corrupt(_))));
    }

    #[tokio::test]
    async fn a_scope_version_moves_with_every_change_to_its_invitations_and_no_other() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let a = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let other = store.create_org("Other", now).await.unwrap();
        let (o, p) = (
            InvitationScope::Org(org.id),
            InvitationScope::Project(project.id),
        );
        let versions = || async {
            (
                store.invitations_version(o).await.unwrap(),
                store.invitations_version(p).await.unwrap(),
                store
                    .invitations_version(InvitationScope::Org(other.id))
                    .await
                    .unwrap(),
            )
        };
        assert_eq!(versions().await, (0, 0, 0), "nothing changed yet");
        let org_inv = store
            .create_invitation(&new(org.id, None, "u@example.com"), &a)
            .await
            .unwrap();
        let v1 = versions().await;
        assert!(v1.0 > 0 && v1.1 == 0 && v1.2 == 0, "{v1:?}");
        let proj_inv = store
            .create_invitation(&new(org.id, Some(project.id), "u@example.com"), &a)
            .await
            .unwrap();
        let v2 = versions().await;
        assert!(
            v2.0 == v1.0 && v2.1 > 0,
            "a project invitation moves the project: {v2:?}"
        );
        let roles = ["ORG_OWNER".to_owned()];
        store
            .update_invitation(org_inv.id, Some(&roles), None, None, &a)
            .await
            .unwrap();
        let v3 = versions().await;
        assert!(v3.0 > v2.0 && v3.1 == v2.1, "{v3:?}");
        store.accept_invitation(proj_inv.id, &a).await.unwrap();
        let v4 = versions().await;
        assert!(v4.0 == v3.0 && v4.1 > v3.1, "{v4:?}");
        let removed = store
            .remove_pending_invitation(o, org_inv.id, &a)
            .await
            .unwrap();
        assert_eq!(removed, Removal::Removed);
        let v5 = versions().await;
        assert!(v5.0 > v4.0 && v5.1 == v4.1 && v5.2 == 0, "{v5:?}");
        // A list comes with the version it is as of.
        let (at, list) = store.pending_invitations_versioned(o, None).await.unwrap();
        assert_eq!((at, list.len()), (Some(v5.0), 0));
    }

    /// Creates sent at once (on PostgreSQL batched, `postgres::creates`): each answers for
    /// itself, twins sent together make one invitation and one conflict, and every invitation
    /// created has its audit row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creates_at_once_each_answer_for_themselves() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let a = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let mut asked: Vec<NewInvitation> = (0..40)
            .map(|i| {
                let project = (i % 4 == 0).then_some(project.id);
                new(org.id, project, &format!("u{i}@example.com"))
            })
            .collect();
        asked.push(new(org.id, None, "u1@example.com"));
        asked.push(new(org.id, Some(project.id), "u0@example.com"));
        let answers = futures_util::future::join_all(asked.iter().map(|n| {
            let (store, a) = (store.clone(), a.clone());
            async move { store.create_invitation(n, &a).await }
        }))
        .await;
        for (n, answer) in asked.iter().zip(&answers) {
            if let Ok(created) = answer {
                assert_eq!(
                    (
                        &created.username,
                        created.project_id,
                        created.org_name.as_str()
                    ),
                    (&n.username, n.project_id, "Acme")
                );
            }
        }
        for twins in [(1, 40), (0, 41)] {
            let (first, second) = (&answers[twins.0], &answers[twins.1]);
            assert!(
                first.is_ok() != second.is_ok(),
                "one of the twins {twins:?} is created: {first:?} {second:?}"
            );
            let refused = if first.is_ok() { second } else { first };
            assert!(
                matches!(refused, Err(StoreError::Conflict(_))),
                "{refused:?}"
            );
        }
        let created: Vec<String> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().map(|i| i.id.to_string()))
            .collect();
        assert_eq!(created.len(), 40);
        let mut audited: Vec<String> =
            sqlx::query_scalar("SELECT target_id FROM audit_log WHERE action = $1")
                .bind(CREATED)
                .fetch_all(store.pool())
                .await
                .unwrap();
        audited.sort();
        let mut expected = created.clone();
        expected.sort();
        assert_eq!(audited, expected);
        let listed = |scope| {
            let store = store.clone();
            async move { store.pending_invitations(scope, None).await.unwrap().len() }
        };
        assert_eq!(listed(InvitationScope::Org(org.id)).await, 30);
        assert_eq!(listed(InvitationScope::Project(project.id)).await, 10);
        // PostgreSQL's create queue counted each of the 42 in one batch.
        assert_write_batches_counted(&store, "creates", 42);
    }

    /// On PostgreSQL, that the write queue `queue`'s batches held `writes` in all; on SQLite,
    /// which has no write queues, that there is no such series.
    fn assert_write_batches_counted(store: &Store, queue: &str, writes: u32) {
        let text = invites_metrics::Metrics::new(store.metrics()).encode();
        let series = format!("invites_write_batch_size_sum{{queue=\"{queue}\"}} ");
        let sum = text.lines().find_map(|l| l.strip_prefix(series.as_str()));
        match store.backend() {
            crate::Backend::Postgres => {
                assert_eq!(sum, Some(format!("{writes}.0").as_str()), "{text}")
            }
            crate::Backend::Sqlite => assert_eq!(sum, None, "{text}"),
        }
    }

    /// Updates sent at once (on PostgreSQL batched, `postgres::write_batches`), several of one
    /// invitation among them: each answers for itself, each invitation ends with one of the
    /// roles it was given, and every update has its audit row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_at_once_each_answer_for_themselves() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let a = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..10 {
            let created = store
                .create_invitation(&new(org.id, None, &format!("u{i}@example.com")), &a)
                .await
                .unwrap();
            ids.push(created.id);
        }
        store.accept_invitation(ids[9], &a).await.unwrap();
        // Three rounds over the ten, the first invitation in each round twice.
        let asked: Vec<(ObjectId, String)> = (0..3)
            .flat_map(|round| {
                let mut ids: Vec<ObjectId> = ids.clone();
                ids.push(ids[0]);
                ids.into_iter().map(move |id| (id, format!("ROLE_{round}")))
            })
            .collect();
        let answers = futures_util::future::join_all(asked.iter().map(|(id, role)| {
            let (store, a) = (store.clone(), a.clone());
            async move {
                let roles = [role.clone()];
                store
                    .update_invitation(*id, Some(&roles), None, None, &a)
                    .await
            }
        }))
        .await;
        for ((id, role), answer) in asked.iter().zip(&answers) {
            match answer.as_ref().unwrap() {
                Some(updated) => {
                    assert_eq!((updated.id, &updated.roles[..]), (*id, &[role.clone()][..]));
                    assert_eq!(updated.org_name, "Acme");
                }
                None => assert_eq!(*id, ids[9], "only the accepted one is not pending"),
            }
        }
        for id in &ids[..9] {
            let roles = store.invitation(*id).await.unwrap().unwrap().roles;
            assert!(
                roles.len() == 1 && roles[0].starts_with("ROLE_"),
                "{roles:?}"
            );
        }
        let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(UPDATED)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            audited,
            3 * 10,
            "ten updates of the nine pending a round, one audit row each"
        );
        assert_write_batches_counted(&store, "updates", 33);
    }

    #[tokio::test]
    async fn a_pending_invitation_by_username_is_an_index_seek_not_a_scan_of_its_scope() {
        let (_store, url, _d) = crate::test_util::fresh_sqlite().await;
        let conn = rusqlite::Connection::open(&url).unwrap();
        let plan = |sql: &str| crate::test_util::query_plan(&conn, sql);
        let scope_ids = [ObjectId::generate(0), ObjectId::generate(0)];
        let org = plan(pending_sql(InvitationScope::Org(scope_ids[0]), true).0);
        assert!(
            org.contains("invitations_pending_org_user (org_id=? AND username=?)"),
            "{org}"
        );
        let project = plan(pending_sql(InvitationScope::Project(scope_ids[1]), true).0);
        assert!(
            project.contains("invitations_pending_project_user (project_id=? AND username=?)"),
            "{project}"
        );
        // Without a username a list reads the scope's part of the same index.
        let list = plan(pending_sql(InvitationScope::Org(scope_ids[0]), false).0);
        assert!(
            list.contains("invitations_pending_org_user (org_id=?)"),
            "{list}"
        );
    }

    #[tokio::test]
    async fn pending_invitations_by_username_find_that_user_only_in_that_scope() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let a = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        for user in ["a@example.com", "b@example.com"] {
            for scope in [None, Some(project.id)] {
                store
                    .create_invitation(&new(org.id, scope, user), &a)
                    .await
                    .unwrap();
            }
        }
        for (scope, project_id) in [
            (InvitationScope::Org(org.id), None),
            (InvitationScope::Project(project.id), Some(project.id)),
        ] {
            let found = store
                .pending_invitations(scope, Some("b@example.com"))
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "{scope:?}");
            assert_eq!(
                (found[0].username.as_str(), found[0].project_id),
                ("b@example.com", project_id)
            );
            let none = store
                .pending_invitations(scope, Some("c@example.com"))
                .await
                .unwrap();
            assert!(none.is_empty());
            assert_eq!(
                store.pending_invitations(scope, None).await.unwrap().len(),
                2
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_for_one_user_make_one_invitation_and_lose_no_other() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let store = std::sync::Arc::new(store);
        // Ten users, each invited twice at once: the creates share writer batches, and a
        // conflicting one must fail alone.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let user = format!("u{}@example.com", i % 10);
                store
                    .create_invitation(&new(org.id, None, &user), &AuditEntry::operator(now))
                    .await
            }));
        }
        let (mut created, mut conflicts) = (Vec::new(), 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(inv) => created.push(inv),
                Err(StoreError::Conflict(_)) => conflicts += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!((created.len(), conflicts), (10, 10));
        let mut users: Vec<_> = created.iter().map(|i| i.username.clone()).collect();
        users.sort();
        users.dedup();
        assert_eq!(users.len(), 10, "one invitation per user");
        let pending = store
            .pending_invitations(InvitationScope::Org(org.id), None)
            .await
            .unwrap();
        assert_eq!(pending.len(), 10);
        for inv in &created {
            assert_eq!(store.invitation(inv.id).await.unwrap().as_ref(), Some(inv));
            let audit = store
                .audit_for("invitation", &inv.id.to_string())
                .await
                .unwrap();
            assert_eq!(audit.len(), 1, "audited once: {audit:?}");
            assert_eq!(audit[0].action, "invitation.created");
        }
    }

    #[tokio::test]
    async fn an_invitation_read_by_id_is_the_one_written_whatever_its_status() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let a = AuditEntry::operator(now);
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let mut input = new(org.id, Some(project.id), "u@example.com");
        input.roles = vec!["GROUP_READ_ONLY".into(), "GROUP_OWNER".into()];
        input.team_ids = vec!["6b0f1ae6e652eb5912000001".into()];
        let created = store.create_invitation(&input, &a).await.unwrap();
        let read = store.invitation(created.id).await.unwrap().expect("found");
        assert_eq!(read, created);
        assert_eq!(
            (read.org_name.as_str(), read.project_name.as_deref()),
            ("Acme", Some("web"))
        );
        assert_eq!(read.roles, input.roles);
        assert_eq!(read.team_ids, input.team_ids);
        store.accept_invitation(created.id, &a).await.unwrap();
        let accepted = store.invitation(created.id).await.unwrap().expect("kept");
        assert_eq!(accepted.status, InvitationStatus::Accepted);
        assert_eq!(store.invitation(ObjectId::generate(0)).await.unwrap(), None);
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
    async fn an_update_changes_what_it_names_keeps_the_rest_and_only_a_pending_one_changes() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let a = AuditEntry::operator(now);
        let inv = store
            .create_invitation(&new(org.id, None, "u@example.com"), &a)
            .await
            .unwrap();
        let teams = vec!["6b0f1ae6e652eb5912000001".to_owned()];
        let assignments = vec![GroupRoleAssignment {
            group_id: "6b0f1ae6e652eb5912000002".into(),
            group_role: "GROUP_READ_ONLY".into(),
        }];
        let read = || async { store.invitation(inv.id).await.unwrap().unwrap() };
        // Each field alone, in turn: the others stay as they were.
        let teamed = store
            .update_invitation(inv.id, None, Some(&teams), None, &a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                &teamed.roles,
                &teamed.team_ids,
                &teamed.group_role_assignments
            ),
            (&inv.roles, &teams, &vec![])
        );
        let assigned = store
            .update_invitation(inv.id, None, None, Some(&assignments), &a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                &assigned.roles,
                &assigned.team_ids,
                &assigned.group_role_assignments
            ),
            (&inv.roles, &teams, &assignments)
        );
        let roles = vec!["ORG_BILLING_ADMIN".to_owned()];
        let renamed = store
            .update_invitation(inv.id, Some(&roles), None, None, &a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                &renamed.roles,
                &renamed.team_ids,
                &renamed.group_role_assignments
            ),
            (&roles, &teams, &assignments)
        );
        assert_eq!(read().await, renamed, "what was answered is what is stored");
        assert!(store.accept_invitation(inv.id, &a).await.unwrap());
        assert!(!store.accept_invitation(inv.id, &a).await.unwrap(), "once");
        assert!(!store
            .accept_invitation(ObjectId::generate(0), &a)
            .await
            .unwrap());
        assert_eq!(read().await.status, InvitationStatus::Accepted);
        assert!(
            store
                .update_invitation(inv.id, Some(&roles), None, None, &a)
                .await
                .unwrap()
                .is_none(),
            "only a pending invitation is updated"
        );
        let actions: Vec<String> = store
            .audit_for("invitation", &inv.id.to_string())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "invitation.created",
                "invitation.updated",
                "invitation.updated",
                "invitation.updated",
                "invitation.accepted"
            ]
        );
        // Each row with the entry it was written with and a JSON object as its detail.
        for record in store
            .audit_for("invitation", &inv.id.to_string())
            .await
            .unwrap()
        {
            assert_eq!(record.at_ms, a.at.timestamp_millis());
            assert_eq!(
                (
                    &record.actor_kind,
                    &record.actor_display,
                    &record.remote_addr
                ),
                (&a.actor_kind, &a.actor_display, &a.remote_addr)
            );
            let detail: serde_json::Value = serde_json::from_str(&record.detail).unwrap();
            assert!(detail.is_object(), "{}", record.detail);
        }
    }
}
