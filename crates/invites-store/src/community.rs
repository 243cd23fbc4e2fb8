//! Community groups and courses, and invitations to them.
//!
//! The hot paths (bulk invitations and removals, joins) dispatch to their engine's body
//! (`crate::sqlite::community`, `crate::postgres::community`); what both bodies share is here:
//! the SQL texts and the audit rows. The rest runs through sqlx on either engine.

use std::collections::HashSet;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use invites_domain::community::{CommunityTarget, InvitedUser};
use invites_domain::CommunityRole;

use crate::audit::{AuditEntry, AuditRow};
use crate::{placeholders, Engine, Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityGroupRecord {
    pub id: i64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CourseRecord {
    pub id: i64,
    pub name: String,
    pub creator_user_id: i64,
}

/// Each id once, ascending: PostgreSQL locks the rows in index order, so two replicas removing
/// overlapping lists wait for each other instead of deadlocking.
fn ascending_unique(ids: &[i64]) -> Vec<i64> {
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique
}

/// Removes the pending invitations of `n` users to `target` (parameters: the target's id, then
/// the users); returns (invitation id, user id) per removal.
pub(crate) fn removal_sql(target: CommunityTarget, n: usize) -> String {
    let col = invitation_column(target);
    format!(
        "DELETE FROM community_invitations WHERE {col} = $1 AND status = 'PENDING' \
         AND user_id IN ({}) RETURNING id, user_id",
        placeholders(2, n)
    )
}

/// The listed ids that removed nothing, in the order given; a duplicated id can remove only once.
pub(crate) fn offending(listed: &[i64], removed: &[(i64, i64)]) -> Vec<i64> {
    let gone: HashSet<i64> = removed.iter().map(|&(_, user)| user).collect();
    let mut used = HashSet::new();
    listed
        .iter()
        .copied()
        .filter(|id| !(gone.contains(id) && used.insert(*id)))
        .collect()
}

/// Audit actions of community invitations.
pub(crate) const CREATED: &str = "community_invitation.created";
pub(crate) const REMOVED: &str = "community_invitation.removed";
pub(crate) const ACCEPTED: &str = "community_invitation.accepted";

/// One audit row of `action` per (invitation id, user id) of `target`.
pub(crate) fn audit_rows<'a>(
    action: &'static str,
    target: CommunityTarget,
    invitations: &[(i64, i64)],
    entry: &'a AuditEntry,
) -> Vec<AuditRow<'a>> {
    invitations
        .iter()
        .map(|&(inv, user)| audit_row(entry, action, target, user, inv))
        .collect()
}

/// The audit row of `user`'s invitation `inv` to `target` accepted (a join).
pub(crate) fn accepted_audit(
    entry: &AuditEntry,
    target: CommunityTarget,
    user: i64,
    inv: i64,
) -> AuditRow<'_> {
    audit_row(entry, ACCEPTED, target, user, inv)
}

/// The audit row of `action` on `user`'s invitation `inv` to `target`.
fn audit_row<'a>(
    entry: &'a AuditEntry,
    action: &'static str,
    target: CommunityTarget,
    user: i64,
    inv: i64,
) -> AuditRow<'a> {
    AuditRow {
        entry,
        action,
        target_kind: "community_invitation",
        target_id: inv.to_string(),
        detail: serde_json::json!({ target.kind(): target.id(), "user": user }).to_string(),
    }
}

impl Store {
    pub async fn create_community_group(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<CommunityGroupRecord> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO community_groups (name, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(now.timestamp_millis())
        .fetch_one(self.writer())
        .await?;
        self.auth_changed();
        Ok(CommunityGroupRecord {
            id,
            name: name.to_owned(),
        })
    }

    pub async fn create_course(
        &self,
        name: &str,
        creator_user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<CourseRecord> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO courses (name, creator_user_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(creator_user_id)
        .bind(now.timestamp_millis())
        .fetch_one(self.writer())
        .await?;
        self.auth_changed();
        Ok(CourseRecord {
            id,
            name: name.to_owned(),
            creator_user_id,
        })
    }

    /// Invites `user_id` to a community group (`group_id`) or course (`course_id`); exactly one is set.
    /// Inviting someone already invited is a no-op. Returns the invitation id.
    pub async fn invite_to_community(
        &self,
        group_id: Option<i64>,
        course_id: Option<i64>,
        user_id: i64,
        inviter_user_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO community_invitations (group_id, course_id, user_id, inviter_user_id, status, created_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5) RETURNING id",
        )
        .bind(group_id)
        .bind(course_id)
        .bind(user_id)
        .bind(inviter_user_id)
        .bind(now.timestamp_millis())
        .fetch_one(self.writer())
        .await?;
        Ok(id)
    }

    /// Marks a community invitation accepted.
    pub async fn accept_community_invitation(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE community_invitations SET status = 'ACCEPTED', accepted_at = $2 WHERE id = $1 AND status = 'PENDING'",
        )
        .bind(id)
        .bind(now.timestamp_millis())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Whether a user exists (parameter: the id).
pub(crate) const USER_EXISTS_SQL: &str = "SELECT id FROM users WHERE id = $1";

/// `build(column)` for each kind of target, built once into `texts`, `column` naming the target
/// in the invitation and membership tables (see [`invitation_column`]).
fn per_target(
    texts: &'static OnceLock<[String; 2]>,
    target: CommunityTarget,
    build: fn(&str) -> String,
) -> &'static str {
    let [group, course] = texts.get_or_init(|| {
        [CommunityTarget::Group(0), CommunityTarget::Course(0)].map(|t| build(invitation_column(t)))
    });
    match target {
        CommunityTarget::Group(_) => group,
        CommunityTarget::Course(_) => course,
    }
}

/// Invites one user to a target unless already invited (parameters: target, user, inviter,
/// time); returns the new invitation's id, or no row.
pub(crate) fn invite_sql(target: CommunityTarget) -> &'static str {
    static TEXTS: OnceLock<[String; 2]> = OnceLock::new();
    per_target(&TEXTS, target, |col| {
        format!(
            "INSERT INTO community_invitations ({col}, user_id, inviter_user_id, status, created_at) \
             VALUES ($1, $2, $3, 'PENDING', $4) ON CONFLICT ({col}, user_id) WHERE {col} IS NOT NULL DO NOTHING RETURNING id"
        )
    })
}

/// Joining a target: the acceptance (parameters: target, user, time; returns the invitation's
/// id) and the membership it grants (target, user).
pub(crate) fn join_sql(target: CommunityTarget) -> (&'static str, &'static str) {
    static ACCEPT: OnceLock<[String; 2]> = OnceLock::new();
    let accept = per_target(&ACCEPT, target, |col| {
        format!(
            "UPDATE community_invitations SET status = 'ACCEPTED', accepted_at = $3 \
             WHERE {col} = $1 AND user_id = $2 AND status = 'PENDING' RETURNING id"
        )
    });
    let member = match target {
        CommunityTarget::Group(_) => {
            "INSERT INTO community_group_members (group_id, user_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING"
        }
        CommunityTarget::Course(_) => {
            "INSERT INTO course_members (course_id, user_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING"
        }
    };
    (accept, member)
}

/// A target's pending invitations: how many (parameter: the target), and the users of one page
/// in invitation order (the target, limit, offset). The page is cut from the invitations alone
/// and only then are its users looked up: joining first looked up the user of every invitation
/// of the target before skipping to the offset. (An index on (target, id) of the pending
/// invitations would also spare the sort, but costs every write: see ARCHITECTURE.md.)
fn invited_sql(target: CommunityTarget) -> (&'static str, &'static str) {
    static COUNT: OnceLock<[String; 2]> = OnceLock::new();
    static PAGE: OnceLock<[String; 2]> = OnceLock::new();
    let count = per_target(&COUNT, target, |col| {
        format!(
            "SELECT COUNT(*) FROM community_invitations WHERE {col} = $1 AND status = 'PENDING'"
        )
    });
    let page = per_target(&PAGE, target, |col| {
        format!(
            "SELECT u.id, u.username, u.real_name, u.avatar, u.ext_id FROM \
             (SELECT id, user_id FROM community_invitations WHERE {col} = $1 AND status = 'PENDING' \
              ORDER BY id LIMIT $2 OFFSET $3) i \
             JOIN users u ON u.id = i.user_id ORDER BY i.id"
        )
    });
    (count, page)
}

/// Id, username, real name, avatar and external id of an invited user.
type InvitedUserRow = (i64, String, String, Option<String>, Option<String>);

/// The column that names a target in the invitation and membership tables. Both are constants,
/// chosen by the enum: no SQL is built from input.
fn invitation_column(target: CommunityTarget) -> &'static str {
    match target {
        CommunityTarget::Group(_) => "group_id",
        CommunityTarget::Course(_) => "course_id",
    }
}

impl Store {
    pub async fn community_group(&self, id: i64) -> Result<Option<CommunityGroupRecord>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT name FROM community_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(name,)| CommunityGroupRecord { id, name }))
    }

    pub async fn course(&self, id: i64) -> Result<Option<CourseRecord>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT name, creator_user_id FROM courses WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(name, creator_user_id)| CourseRecord {
            id,
            name,
            creator_user_id,
        }))
    }

    /// The role `user_id` holds in a group or course, if any.
    pub async fn community_role(
        &self,
        target: CommunityTarget,
        user_id: i64,
    ) -> Result<Option<CommunityRole>> {
        let sql = match target {
            CommunityTarget::Group(_) => {
                "SELECT role FROM community_group_members WHERE group_id = $1 AND user_id = $2"
            }
            CommunityTarget::Course(_) => {
                "SELECT role FROM course_members WHERE course_id = $1 AND user_id = $2"
            }
        };
        let row: Option<(String,)> = sqlx::query_as(sql)
            .bind(target.id())
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|(r,)| {
            r.parse()
                .map_err(|_| StoreError::Corrupt(format!("community role {r:?}")))
        })
        .transpose()
    }

    /// Users with a pending invitation to `target`, in invitation order: the total and one page.
    pub async fn invited_users(
        &self,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>)> {
        let (count_sql, page_sql) = invited_sql(target);
        let (count,): (i64,) = sqlx::query_as(count_sql)
            .bind(target.id())
            .fetch_one(self.pool())
            .await?;
        let rows: Vec<InvitedUserRow> = sqlx::query_as(page_sql)
            .bind(target.id())
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let users = rows
            .into_iter()
            .map(|(id, username, real_name, avatar, ext_id)| InvitedUser {
                id,
                username,
                real_name,
                avatar,
                ext_id,
            })
            .collect();
        Ok((count, users))
    }

    /// Invites every user of `user_ids` to `target`, all or none: if any id names no user, nothing
    /// is written and those ids are returned. Users already invited (or who joined) are left as
    /// they are; each new invitation gets its audit row.
    pub async fn invite_users(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        inviter_user_id: Option<i64>,
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        match &self.engine {
            Engine::Sqlite(db) => {
                db.invite_users(target, user_ids, inviter_user_id, audit_entry)
                    .await
            }
            Engine::Postgres(db) => {
                db.invite_users(target, user_ids, inviter_user_id, audit_entry)
                    .await
            }
        }
    }

    /// Removes the pending invitations of `user_ids` to `target` in one transaction, all or none:
    /// if any listed user has no pending invitation there, nothing is removed and those ids are
    /// returned, in the order given.
    pub async fn remove_invitations(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        let unique = ascending_unique(user_ids);
        match &self.engine {
            Engine::Sqlite(db) => {
                db.remove_invitations(target, user_ids, unique, audit_entry)
                    .await
            }
            Engine::Postgres(db) => {
                db.remove_invitations(target, user_ids, unique, audit_entry)
                    .await
            }
        }
    }

    /// Accepts `user_id`'s pending invitation to `target`, making them a member. False when there
    /// was no pending invitation.
    pub async fn join(
        &self,
        target: CommunityTarget,
        user_id: i64,
        audit_entry: &AuditEntry,
    ) -> Result<bool> {
        let joined = match &self.engine {
            Engine::Sqlite(db) => db.join(target, user_id, audit_entry).await?,
            Engine::Postgres(db) => db.join(target, user_id, audit_entry).await?,
        };
        if joined {
            // Membership is part of what a user may do.
            self.auth_changed();
        }
        Ok(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh;

    /// A fresh store (and the directory it lives in), a community group, an operator's audit
    /// entry and `n` users, none invited yet.
    async fn group_with_users(
        n: usize,
    ) -> (
        Store,
        tempfile::TempDir,
        CommunityTarget,
        AuditEntry,
        Vec<i64>,
    ) {
        let (store, dir) = fresh().await;
        let now = Utc::now();
        let g = store.create_community_group("G", now).await.unwrap();
        let ids = users(&store, n, now).await;
        let target = CommunityTarget::Group(g.id);
        (store, dir, target, AuditEntry::operator(now), ids)
    }

    /// `n` new users' ids.
    async fn users(store: &Store, n: usize, now: DateTime<Utc>) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let user = store.create_user(&format!("u{i}@x.io"), "", now).await;
            ids.push(user.unwrap().id);
        }
        ids
    }

    #[tokio::test]
    async fn bulk_removal_is_all_or_nothing() {
        let (store, _dir, t, a, ids) = group_with_users(3).await;
        assert_eq!(
            store.invite_users(t, &ids[..2], None, &a).await.unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(
            store.invite_users(t, &[999], None, &a).await.unwrap(),
            vec![999]
        );
        // ids[2] has no invitation: nothing is removed.
        assert_eq!(
            store.remove_invitations(t, &ids, &a).await.unwrap(),
            vec![ids[2]]
        );
        assert_eq!(store.invited_users(t, 10, 0).await.unwrap().0, 2);
        assert_eq!(
            store.remove_invitations(t, &ids[..2], &a).await.unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(store.invited_users(t, 10, 0).await.unwrap().0, 0);
    }

    #[tokio::test]
    async fn each_new_invitation_is_audited_once_and_repeats_are_left_alone() {
        let (store, _dir, t, a, ids) = group_with_users(3).await;
        let now = a.at;
        store.invite_users(t, &ids[..1], None, &a).await.unwrap();
        // Listed twice, and one already invited: two new invitations.
        let listed = [ids[1], ids[0], ids[2], ids[1]];
        assert!(store
            .invite_users(t, &listed, None, &a)
            .await
            .unwrap()
            .is_empty());
        let (count, users) = store.invited_users(t, 10, 0).await.unwrap();
        assert_eq!(count, 3);
        assert_eq!(
            users.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![ids[0], ids[1], ids[2]]
        );
        let (audited,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'community_invitation.created'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(audited, 3);
        // An unknown id among them: nothing is written, not even for the known ones.
        let other =
            CommunityTarget::Group(store.create_community_group("H", now).await.unwrap().id);
        assert_eq!(
            store
                .invite_users(other, &[ids[0], 999, ids[1], 998], None, &a)
                .await
                .unwrap(),
            vec![999, 998]
        );
        assert_eq!(store.invited_users(other, 10, 0).await.unwrap().0, 0);
        // The audit rows name the invitation, the target and the user.
        let (inv,): (i64,) = sqlx::query_as(
            "SELECT id FROM community_invitations WHERE group_id = $1 AND user_id = $2",
        )
        .bind(t.id())
        .bind(ids[2])
        .fetch_one(store.pool())
        .await
        .unwrap();
        let rows = store
            .audit_for("community_invitation", &inv.to_string())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].action, "community_invitation.created");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&rows[0].detail).unwrap(),
            serde_json::json!({"group": t.id(), "user": ids[2]})
        );
    }

    #[tokio::test]
    async fn a_list_page_looks_up_only_its_own_users() {
        let (_store, url, _d) = crate::test_util::fresh_sqlite().await;
        let conn = rusqlite::Connection::open(&url).unwrap();
        for target in [CommunityTarget::Group(1), CommunityTarget::Course(1)] {
            let plan = crate::test_util::query_plan(&conn, invited_sql(target).1);
            // The page (LIMIT/OFFSET) is a subquery run to completion before the join reads it.
            let (page, join) = plan.split_once("SCAN i;").expect(&plan);
            assert!(page.starts_with("CO-ROUTINE i"), "{plan}");
            assert!(!page.contains("SEARCH u"), "{plan}");
            assert!(
                join.contains("SEARCH u USING INTEGER PRIMARY KEY"),
                "{plan}"
            );
        }
    }

    #[tokio::test]
    async fn pages_follow_invitation_order_and_skip_the_removed() {
        let (store, _dir, t, a, ids) = group_with_users(7).await;
        // Invited in an order that is not the users' id order.
        let order = [ids[4], ids[0], ids[6], ids[2], ids[5], ids[1], ids[3]];
        for id in order {
            store.invite_users(t, &[id], None, &a).await.unwrap();
        }
        store.remove_invitations(t, &[ids[6]], &a).await.unwrap();
        store.join(t, ids[5], &a).await.unwrap();
        let pending = [ids[4], ids[0], ids[2], ids[1], ids[3]];
        for (limit, offset) in [(2, 0), (2, 2), (2, 4), (10, 1), (3, 5)] {
            let (count, users) = store.invited_users(t, limit, offset).await.unwrap();
            assert_eq!(count, 5);
            let want: Vec<i64> = pending
                .iter()
                .copied()
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            assert_eq!(
                users.iter().map(|u| u.id).collect::<Vec<_>>(),
                want,
                "{limit} {offset}"
            );
        }
    }

    #[tokio::test]
    async fn joining_accepts_and_makes_a_member() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let creator = store.create_user("c@x.io", "", now).await.unwrap();
        let c = store.create_course("C", creator.id, now).await.unwrap();
        let t = CommunityTarget::Course(c.id);
        let u = store.create_user("u@x.io", "", now).await.unwrap();
        let a = AuditEntry::operator(now);
        store
            .invite_users(t, &[u.id], Some(creator.id), &a)
            .await
            .unwrap();
        assert!(store.join(t, u.id, &a).await.unwrap());
        assert!(!store.join(t, u.id, &a).await.unwrap());
        let (inv,): (i64,) = sqlx::query_as(
            "SELECT id FROM community_invitations WHERE course_id = $1 AND user_id = $2 AND status = 'ACCEPTED'",
        )
        .bind(c.id)
        .bind(u.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let actions: Vec<String> = store
            .audit_for("community_invitation", &inv.to_string())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "community_invitation.created",
                "community_invitation.accepted"
            ]
        );
        // No invitation to a group: no membership.
        let g = CommunityTarget::Group(store.create_community_group("G", now).await.unwrap().id);
        assert!(!store.join(g, u.id, &a).await.unwrap());
        assert_eq!(store.community_role(g, u.id).await.unwrap(), None);
        assert_eq!(
            store.community_role(t, u.id).await.unwrap(),
            Some(CommunityRole::Member)
        );
        assert_eq!(store.invited_users(t, 10, 0).await.unwrap().0, 0);
    }
}
