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
use sqlx::Acquire;

use crate::audit::{AuditEntry, AuditRow};
use crate::{placeholders, Backend, Engine, Result, Store, StoreError, IDS_PER_STATEMENT};

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
pub(crate) fn ascending_unique(ids: &[i64]) -> Vec<i64> {
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
        .fetch_one(&mut *self.write_connection().await?)
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
        .fetch_one(&mut *self.write_connection().await?)
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
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO community_invitations (group_id, course_id, user_id, inviter_user_id, status, created_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5) RETURNING id",
        )
        .bind(group_id)
        .bind(course_id)
        .bind(user_id)
        .bind(inviter_user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        if self.backend() == Backend::Sqlite {
            count_pending(&mut tx, target_of(group_id, course_id), &[id], 1).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Marks a community invitation accepted.
    pub async fn accept_community_invitation(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut conn = self.write_connection().await?;
        let mut tx = conn.begin().await?;
        let accepted: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            "UPDATE community_invitations SET status = 'ACCEPTED', accepted_at = $2 \
             WHERE id = $1 AND status = 'PENDING' RETURNING group_id, course_id",
        )
        .bind(id)
        .bind(now.timestamp_millis())
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some((group_id, course_id)), Backend::Sqlite) = (accepted, self.backend()) {
            count_pending(&mut tx, target_of(group_id, course_id), &[id], -1).await?;
        }
        tx.commit().await?;
        Ok(accepted.is_some())
    }
}

/// The target an invitation row names (exactly one of its columns is set).
fn target_of(group_id: Option<i64>, course_id: Option<i64>) -> CommunityTarget {
    match (group_id, course_id) {
        (Some(group), _) => CommunityTarget::Group(group),
        (None, course) => CommunityTarget::Course(course.unwrap_or_default()),
    }
}

/// What `crate::sqlite::community`'s writer jobs add to the page counts, for the writes through
/// sqlx on SQLite (administration and the demo; see migration 8).
async fn count_pending(
    conn: &mut sqlx::AnyConnection,
    target: CommunityTarget,
    ids: &[i64],
    sign: i64,
) -> Result<()> {
    let kind = target_kind(target);
    let (total, chunks) = pending_changes(ids, sign);
    sqlx::query(ADD_PENDING_TOTAL_SQL)
        .bind(kind)
        .bind(target.id())
        .bind(total)
        .execute(&mut *conn)
        .await?;
    for (chunk, change) in chunks {
        sqlx::query(ADD_PENDING_CHUNK_SQL)
            .bind(kind)
            .bind(target.id())
            .bind(chunk)
            .bind(change)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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

/// A count chunk of migration 8 holds the invitation ids `chunk << CHUNK_BITS` up to the next
/// chunk's first id: runs of 256 ids.
pub(crate) const CHUNK_BITS: u32 = 8;

/// A target's pending invitations on SQLite, as the store's writes count them (parameters: the
/// target's kind, its id). PostgreSQL sums its slots instead (`postgres::community`).
pub(crate) const PENDING_TOTAL_SQL: &str =
    "SELECT pending FROM community_pending_totals WHERE kind = $1 AND target_id = $2";

/// A target's non-empty count chunks in id order on SQLite (parameters: kind, id): read only as
/// far as a page needs. PostgreSQL reads its slots' rows and sums them (`postgres::community`).
pub(crate) const PENDING_CHUNKS_SQL: &str = "SELECT chunk, pending FROM community_pending_chunks \
     WHERE kind = $1 AND target_id = $2 AND pending > 0 ORDER BY chunk";

/// Adds to a target's pending total (parameters: kind, target, the change). SQLite's writes run
/// it; on PostgreSQL the triggers of migration 8 keep the counts.
pub(crate) const ADD_PENDING_TOTAL_SQL: &str =
    "INSERT INTO community_pending_totals (kind, target_id, pending) VALUES ($1, $2, $3) \
     ON CONFLICT (kind, target_id) DO UPDATE SET pending = pending + excluded.pending";

/// Adds to a target's pending count of one chunk (parameters: kind, target, chunk, the change).
pub(crate) const ADD_PENDING_CHUNK_SQL: &str =
    "INSERT INTO community_pending_chunks (kind, target_id, chunk, pending) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (kind, target_id, chunk) DO UPDATE SET pending = pending + excluded.pending";

/// Counts every target's pending invitations again (SQLite, after SQL run as a script).
pub(crate) const RECOUNT_PENDING_SQL: &str = "DELETE FROM community_pending_totals;
DELETE FROM community_pending_chunks;
INSERT INTO community_pending_totals (kind, target_id, pending)
    SELECT group_id IS NULL, COALESCE(group_id, course_id), COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2;
INSERT INTO community_pending_chunks (kind, target_id, chunk, pending)
    SELECT group_id IS NULL, COALESCE(group_id, course_id), id >> 8, COUNT(*)
    FROM community_invitations WHERE status = 'PENDING' GROUP BY 1, 2, 3;";

/// The count changes when the invitations `ids` of one target become pending (`sign` 1) or stop
/// being pending (-1): the total's, and each chunk's in ascending chunk order.
pub(crate) fn pending_changes(ids: &[i64], sign: i64) -> (i64, Vec<(i64, i64)>) {
    let mut chunks: Vec<(i64, i64)> = Vec::new();
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    for id in sorted {
        let chunk = id >> CHUNK_BITS;
        match chunks.last_mut() {
            Some((c, n)) if *c == chunk => *n += sign,
            _ => chunks.push((chunk, sign)),
        }
    }
    (sign * ids.len() as i64, chunks)
}

/// How the count tables name a target's kind: the column of `community_invitations` that holds
/// it, 0 for `group_id`, 1 for `course_id` (migration 8).
pub(crate) fn target_kind(target: CommunityTarget) -> i64 {
    match target {
        CommunityTarget::Group(_) => 0,
        CommunityTarget::Course(_) => 1,
    }
}

/// The users of one run of a page of a target's pending invitations, in invitation order
/// (parameters: the target, the run's first id, the id after its last, limit, offset within the
/// run; rusqlite binds `$N` in order of appearance, so they appear in that order). A run is one
/// or more consecutive count chunks of [`PagePlan`], so the statement reads at
/// most 256 rows per chunk of the run, whatever the target has before it: the rows are walked by
/// primary key (`+{col}` keeps the planner off the (target, user) index, which would read every
/// pending invitation of the target and sort them), and only then are the page's users looked up.
pub(crate) fn invited_page_sql(target: CommunityTarget) -> &'static str {
    static PAGE: OnceLock<[String; 2]> = OnceLock::new();
    per_target(&PAGE, target, |col| {
        format!(
            "SELECT u.id, u.username, u.real_name, u.avatar, u.ext_id FROM \
             (SELECT id, user_id FROM community_invitations WHERE +{col} = $1 \
              AND status = 'PENDING' AND id >= $2 AND id < $3 ORDER BY id LIMIT $4 OFFSET $5) i \
             JOIN users u ON u.id = i.user_id ORDER BY i.id"
        )
    })
}

/// Where a page's rows are, from a target's count chunks: how many pending invitations of the
/// first run come before the page, and the runs of chunks to read (first id, id after the last),
/// ascending, consecutive chunks merged into one run. Only chunks that hold pending invitations
/// of the target are read, and no more of them than the page needs: at most `limit` + 1 chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PagePlan {
    pub(crate) skip: i64,
    pub(crate) runs: Vec<(i64, i64)>,
}

/// Builds a [`PagePlan`] from a target's count chunks fed in id order: the page at offset k
/// starts in the first chunk whose pending invitations, with those of the chunks before it,
/// exceed k, and ends in the chunk where `limit` of them have been passed from there. Rows of one
/// chunk may come one after another (PostgreSQL keeps a row per slot, migration 12): they are
/// summed before the chunk counts.
#[derive(Debug)]
pub(crate) struct PageSeek {
    offset: i64,
    limit: i64,
    /// Pending invitations in the chunks counted before the page's first.
    passed: i64,
    /// Once the page has started: its plan, and the pending invitations of its chunks from
    /// the page's first on.
    plan: Option<(PagePlan, i64)>,
    /// The chunk being fed and its pending count so far, not yet counted.
    current: Option<(i64, i64)>,
    /// The chunks counted hold the whole page.
    full: bool,
}

impl PageSeek {
    pub(crate) fn new(offset: i64, limit: i64) -> PageSeek {
        PageSeek {
            offset: offset.max(0),
            limit,
            passed: 0,
            plan: None,
            current: None,
            full: false,
        }
    }

    /// The next row of counts, a chunk and its pending count; true once the chunks before it
    /// hold the whole page (feed no more).
    pub(crate) fn feed(&mut self, chunk: i64, pending: i64) -> bool {
        if self.full {
            return true;
        }
        match &mut self.current {
            Some((c, n)) if *c == chunk => *n += pending,
            _ => {
                if let Some((c, n)) = self.current.replace((chunk, pending)) {
                    self.full = self.count(c, n);
                }
            }
        }
        self.full
    }

    /// The plan, or none when the page starts past every chunk fed (or its limit is 0).
    pub(crate) fn finish(mut self) -> Option<PagePlan> {
        if let (Some((c, n)), false) = (self.current.take(), self.full) {
            self.count(c, n);
        }
        self.plan.map(|(plan, _)| plan).filter(|_| self.limit > 0)
    }

    /// Counts a chunk's pending invitations (all its rows summed); true once the chunks counted
    /// hold the whole page.
    fn count(&mut self, chunk: i64, pending: i64) -> bool {
        let pending = pending.max(0);
        if pending == 0 || self.limit <= 0 {
            return self.limit <= 0;
        }
        let (first, after) = (chunk << CHUNK_BITS, (chunk + 1) << CHUNK_BITS);
        match &mut self.plan {
            None => {
                if self.passed + pending <= self.offset {
                    self.passed += pending;
                    return false;
                }
                let skip = self.offset - self.passed;
                let plan = PagePlan {
                    skip,
                    runs: vec![(first, after)],
                };
                self.plan = Some((plan, pending - skip));
            }
            Some((plan, held)) => {
                match plan.runs.last_mut() {
                    Some((_, end)) if *end == first => *end = after,
                    _ => plan.runs.push((first, after)),
                }
                *held += pending;
            }
        }
        self.plan
            .as_ref()
            .is_some_and(|(_, held)| *held >= self.limit)
    }
}

/// Id, username, real name, avatar and external id of an invited user.
pub(crate) type InvitedUserRow = (i64, String, String, Option<String>, Option<String>);

/// An invited user from its row.
pub(crate) fn invited_user(
    (id, username, real_name, avatar, ext_id): InvitedUserRow,
) -> InvitedUser {
    InvitedUser {
        id,
        username,
        real_name,
        avatar,
        ext_id,
    }
}

/// The column that names a target in the invitation and membership tables. Both are constants,
/// chosen by the enum: no SQL is built from input.
pub(crate) fn invitation_column(target: CommunityTarget) -> &'static str {
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
                .fetch_optional(&mut *self.read_connection().await?)
                .await?;
        Ok(row.map(|(name,)| CommunityGroupRecord { id, name }))
    }

    pub async fn course(&self, id: i64) -> Result<Option<CourseRecord>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT name, creator_user_id FROM courses WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *self.read_connection().await?)
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
            .fetch_optional(&mut *self.read_connection().await?)
            .await?;
        row.map(|(r,)| {
            r.parse()
                .map_err(|_| StoreError::Corrupt(format!("community role {r:?}")))
        })
        .transpose()
    }

    /// Users with a pending invitation to `target`, in invitation order: the total and one page.
    /// Both come from what migration 8 keeps: the total is one row, and the page costs the count
    /// chunks up to its own (one per 256 invitation ids with any of the target's) and at most 256
    /// rows read by primary key per chunk it spans, not a count and a skip of every pending
    /// invitation before it (see `PagePlan`).
    pub async fn invited_users(
        &self,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>)> {
        match &self.engine {
            Engine::Sqlite(db) => db.invited_users(target, limit, offset).await,
            Engine::Postgres(db) => db.invited_users(target, limit, offset).await,
        }
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
            Engine::Postgres(db) => match &self.bulk_removals {
                Some(queue) if !unique.is_empty() && unique.len() <= IDS_PER_STATEMENT => {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    let job = crate::postgres::bulk_removals::Job {
                        target,
                        user_ids: user_ids.to_vec(),
                        unique,
                        audit: audit_entry.clone(),
                        reply,
                        queued: std::time::Instant::now(),
                    };
                    // The queue stops only with the store: as a pool that was closed.
                    let closed = || StoreError::Database(sqlx::Error::PoolClosed);
                    queue.send(job).await.map_err(|_| closed())?;
                    answer.await.map_err(|_| closed())?
                }
                _ => {
                    db.remove_invitations(target, user_ids, unique, audit_entry)
                        .await
                }
            },
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

    /// Each page (limit, offset) of `target` against `pending`, its users with a pending
    /// invitation in invitation order: the total, and the page's users.
    async fn assert_pages(
        store: &Store,
        target: CommunityTarget,
        pending: &[i64],
        pages: &[(i64, i64)],
    ) {
        for &(limit, offset) in pages {
            let (total, users) = store.invited_users(target, limit, offset).await.unwrap();
            assert_eq!(total, pending.len() as i64);
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
    async fn a_bulk_removal_audits_each_invitation_and_a_repeated_id_removes_nothing() {
        let (store, _dir, t, a, ids) = group_with_users(3).await;
        store.invite_users(t, &ids, None, &a).await.unwrap();
        // Listed twice: the second is offending, and nothing is removed.
        assert_eq!(
            store
                .remove_invitations(t, &[ids[0], ids[1], ids[0]], &a)
                .await
                .unwrap(),
            vec![ids[0]]
        );
        assert_eq!(store.invited_users(t, 10, 0).await.unwrap().0, 3);
        let invited: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, user_id FROM community_invitations WHERE status = 'PENDING'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(invited.len(), 3);
        assert_eq!(
            store.remove_invitations(t, &ids, &a).await.unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(store.invited_users(t, 10, 0).await.unwrap().0, 0);
        // One audit row per invitation removed, with the entry and the detail of `audit_rows`.
        // at, actor kind, actor display, target kind, target id, remote address, detail.
        type Audited = (i64, String, String, String, String, Option<String>, String);
        let rows: Vec<Audited> = sqlx::query_as(
            "SELECT at, actor_kind, actor_display, target_kind, target_id, remote_addr, \
                 detail FROM audit_log WHERE action = $1 ORDER BY target_id",
        )
        .bind(REMOVED)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut expected: Vec<_> = invited
            .iter()
            .map(|&(invitation, user)| {
                (
                    a.at.timestamp_millis(),
                    a.actor_kind.clone(),
                    a.actor_display.clone(),
                    "community_invitation".to_owned(),
                    invitation.to_string(),
                    a.remote_addr.clone(),
                    serde_json::json!({ "group": t.id(), "user": user }).to_string(),
                )
            })
            .collect();
        expected.sort_by(|x, y| x.4.cmp(&y.4));
        assert_eq!(rows, expected);
    }

    #[tokio::test]
    async fn a_bulk_removal_longer_than_one_statement_is_all_or_nothing_too() {
        let n = crate::IDS_PER_STATEMENT + 3;
        let (store, _dir, t, a, ids) = group_with_users(n).await;
        store.invite_users(t, &ids[1..], None, &a).await.unwrap();
        // The first has no invitation: nothing removed, in any of the statements.
        assert_eq!(
            store.remove_invitations(t, &ids, &a).await.unwrap(),
            vec![ids[0]]
        );
        assert_eq!(store.invited_users(t, 1, 0).await.unwrap().0, n as i64 - 1);
        assert!(store
            .remove_invitations(t, &ids[1..], &a)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.invited_users(t, 1, 0).await.unwrap().0, 0);
        let (audited,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(REMOVED)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(audited, n as i64 - 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_bulk_removals_remove_each_invitation_once() {
        let (store, _dir, t, a, ids) = group_with_users(20).await;
        store.invite_users(t, &ids, None, &a).await.unwrap();
        // Ten removals at once, each of two users, each user in two of them: the ones that
        // find both of their users pending remove them, the others remove nothing.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let (store, a) = (store.clone(), a.clone());
                let pair = [ids[(2 * i) % 20], ids[(2 * i + 1) % 20]];
                let overlap = [ids[(2 * i + 1) % 20], ids[(2 * i + 2) % 20]];
                tokio::spawn(async move {
                    let first = store.remove_invitations(t, &pair, &a).await.unwrap();
                    let second = store.remove_invitations(t, &overlap, &a).await.unwrap();
                    (first, second)
                })
            })
            .collect();
        let mut removals = 0;
        for task in tasks {
            let (first, second) = task.await.unwrap();
            removals += usize::from(first.is_empty()) + usize::from(second.is_empty());
        }
        let (pending, _) = store.invited_users(t, 100, 0).await.unwrap();
        assert_eq!(pending, 20 - 2 * removals as i64);
        let (audited,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(REMOVED)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(audited, 2 * removals as i64);
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
    async fn a_list_page_reads_rows_by_primary_key_and_only_its_own_users() {
        let (_store, url, _d) = crate::test_util::fresh_sqlite().await;
        let conn = rusqlite::Connection::open(&url).unwrap();
        for target in [CommunityTarget::Group(1), CommunityTarget::Course(1)] {
            let plan = crate::test_util::query_plan(&conn, invited_page_sql(target));
            // The page (LIMIT/OFFSET) is a subquery run to completion before the join reads it,
            // and it walks one run of ids by primary key: no index of the target, no sort.
            let (page, join) = plan.split_once("SCAN i;").expect(&plan);
            assert!(page.starts_with("CO-ROUTINE i"), "{plan}");
            assert!(
                page.contains(
                    "SEARCH community_invitations USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
                ),
                "{plan}"
            );
            assert!(!page.contains("INDEX"), "{plan}");
            assert!(!page.contains("TEMP B-TREE"), "{plan}");
            assert!(!page.contains("SEARCH u"), "{plan}");
            assert!(
                join.contains("SEARCH u USING INTEGER PRIMARY KEY"),
                "{plan}"
            );
            for sql in [PENDING_TOTAL_SQL, PENDING_CHUNKS_SQL] {
                let plan = crate::test_util::query_plan(&conn, sql);
                assert!(plan.contains("USING PRIMARY KEY"), "{plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
        }
    }

    #[tokio::test]
    async fn pages_of_a_target_whose_invitations_are_spread_among_others() {
        let (store, _dir, t, a, ids) = group_with_users(40).await;
        let now = a.at;
        let other =
            CommunityTarget::Group(store.create_community_group("H", now).await.unwrap().id);
        // Ids spread over chunks with gaps between: before each ten of t's invitations after the
        // first ten, another group's accepted invitation 600 ids further on.
        store.invite_users(t, &ids[..10], None, &a).await.unwrap();
        for (i, &user) in ids[10..].iter().enumerate() {
            if i % 10 == 0 {
                sqlx::query(
                    "INSERT INTO community_invitations (id, group_id, user_id, status, created_at) \
                     SELECT COALESCE(MAX(id), 0) + 600, $1, $2, 'ACCEPTED', 0 FROM community_invitations",
                )
                .bind(other.id())
                .bind(user)
                .execute(store.pool())
                .await
                .unwrap();
            }
            store.invite_users(t, &[user], None, &a).await.unwrap();
        }
        let all: Vec<i64> = store
            .invited_users(t, 100, 0)
            .await
            .unwrap()
            .1
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(all, ids);
        assert_pages(
            &store,
            t,
            &ids,
            &[
                (1, 0),
                (7, 3),
                (20, 9),
                (20, 10),
                (15, 25),
                (20, 35),
                (5, 39),
            ],
        )
        .await;
        assert!(store.invited_users(t, 10, 40).await.unwrap().1.is_empty());
    }

    /// The counts of migration 8 and what they count, recounted: (kind, target, chunk or -1 for
    /// the total, pending), the non-zero ones, in order.
    async fn counts_and_recount(
        store: &Store,
    ) -> (Vec<(i64, i64, i64, i64)>, Vec<(i64, i64, i64, i64)>) {
        let kept: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT CAST(kind AS BIGINT), target_id, -1, CAST(SUM(pending) AS BIGINT) \
             FROM community_pending_totals GROUP BY kind, target_id HAVING SUM(pending) <> 0 \
             UNION ALL SELECT CAST(kind AS BIGINT), target_id, chunk, CAST(SUM(pending) AS BIGINT) \
             FROM community_pending_chunks GROUP BY kind, target_id, chunk HAVING SUM(pending) <> 0 \
             ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let recount: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "WITH p AS (SELECT CASE WHEN group_id IS NULL THEN 1 ELSE 0 END AS kind, \
                    COALESCE(group_id, course_id) AS target_id, id FROM community_invitations \
                    WHERE status = 'PENDING') \
             SELECT CAST(kind AS BIGINT), target_id, -1, COUNT(*) FROM p GROUP BY kind, target_id \
             UNION ALL SELECT CAST(kind AS BIGINT), target_id, id / 256, COUNT(*) FROM p GROUP BY kind, target_id, id / 256 \
             ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        (kept, recount)
    }

    #[test]
    fn changes_are_summed_per_chunk_in_chunk_order() {
        let ids = [600, 3, 255, 256, 1 << CHUNK_BITS | 7];
        assert_eq!(
            pending_changes(&ids, -1),
            (-5, vec![(0, -2), (1, -2), (2, -1)])
        );
        assert_eq!(pending_changes(&[], 1), (0, vec![]));
    }

    #[tokio::test]
    async fn pending_counts_follow_every_writer() {
        let (store, _dir, t, a, ids) = group_with_users(12).await;
        let now = Utc::now();
        let course = store.create_course("C", ids[0], now).await.unwrap();
        let c = CommunityTarget::Course(course.id);
        store.invite_users(t, &ids[..8], None, &a).await.unwrap();
        store.invite_users(c, &ids[4..], None, &a).await.unwrap();
        store.remove_invitations(t, &ids[1..3], &a).await.unwrap();
        store.join(t, ids[3], &a).await.unwrap();
        store.join(c, ids[5], &a).await.unwrap();
        let (kept, recount) = counts_and_recount(&store).await;
        assert_eq!(kept, recount);
        assert_eq!(
            kept.iter()
                .filter(|r| r.2 == -1)
                .map(|r| r.3)
                .collect::<Vec<_>>(),
            [5, 7]
        );
        // The writes through sqlx (administration, the demo) are counted too.
        let extra = store
            .invite_to_community(Some(t.id()), None, ids[10], None, now)
            .await
            .unwrap();
        store.accept_community_invitation(extra, now).await.unwrap();
        store
            .invite_to_community(None, Some(course.id), ids[1], None, now)
            .await
            .unwrap();
        let (kept, recount) = counts_and_recount(&store).await;
        assert_eq!(kept, recount);
        // And SQL run as a script (fixture loads, an operator's repair): an insert with an id in
        // another chunk, an acceptance, a deletion, and a group deleted with its invitations.
        let g = t.id();
        for sql in [
            format!("INSERT INTO community_invitations (id, group_id, user_id, status, created_at) VALUES (100000, {g}, {}, 'PENDING', 0)", ids[9]),
            format!("UPDATE community_invitations SET status = 'ACCEPTED' WHERE group_id = {g} AND user_id = {}", ids[4]),
            format!("UPDATE community_invitations SET status = 'PENDING' WHERE group_id = {g} AND user_id = {}", ids[4]),
            format!("DELETE FROM community_invitations WHERE group_id = {g} AND user_id = {}", ids[0]),
            format!("UPDATE community_invitations SET inviter_user_id = {} WHERE group_id = {g}", ids[1]),
        ] {
            store.run_script(&sql).await.unwrap();
            let (kept, recount) = counts_and_recount(&store).await;
            assert_eq!(kept, recount, "{sql}");
        }
        assert_eq!(store.invited_users(t, 100, 0).await.unwrap().0, 5);
        store
            .run_script(&format!("DELETE FROM community_groups WHERE id = {g}"))
            .await
            .unwrap();
        let (kept, recount) = counts_and_recount(&store).await;
        assert_eq!(kept, recount);
        assert_eq!(store.invited_users(t, 100, 0).await.unwrap(), (0, vec![]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_counts_hold_when_a_batch_undoes_some_of_its_removals() {
        let (store, _dir, t, a, ids) = group_with_users(100).await;
        store.invite_users(t, &ids[..90], None, &a).await.unwrap();
        let never_invited = ids[95];
        let store = std::sync::Arc::new(store);
        // Three waves of fifteen bulk removals at once, sharing writer batches: the even ones
        // remove two invited users each; the odd ones name a user never invited too, so each is
        // refused and undone whole. A batch with one refused makes the writer run it again, each
        // job in a savepoint: the count changes of the first run must not stay.
        for wave in 0..3 {
            let tasks: Vec<_> = (0..15)
                .map(|i| {
                    let (store, a) = (std::sync::Arc::clone(&store), a.clone());
                    let first = 30 * wave + 2 * i;
                    let users = if i % 2 == 0 {
                        vec![ids[first], ids[first + 1]]
                    } else {
                        vec![ids[first], never_invited]
                    };
                    tokio::spawn(async move { store.remove_invitations(t, &users, &a).await })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                let offending = task.await.unwrap().unwrap();
                assert_eq!(
                    offending.is_empty(),
                    i % 2 == 0,
                    "removal {i}: {offending:?}"
                );
            }
            let (kept, recount) = counts_and_recount(&store).await;
            assert_eq!(kept, recount, "wave {wave}");
        }
        // 90 invited, 3 waves of 8 removals of two kept.
        assert_eq!(store.invited_users(t, 100, 0).await.unwrap().0, 42);
    }

    #[tokio::test]
    async fn pages_at_any_offset_follow_the_invitation_order_across_chunks() {
        let (store, _dir, t, a, ids) = group_with_users(700).await;
        let g2 = store
            .create_community_group("G2", Utc::now())
            .await
            .unwrap();
        let other = CommunityTarget::Group(g2.id);
        // Invitations to the two groups in turns of 5, so the group's ids spread over chunks
        // with gaps; then some removed and some accepted.
        for (turn, batch) in ids.chunks(5).enumerate() {
            let to = if turn % 3 == 2 { other } else { t };
            store.invite_users(to, batch, None, &a).await.unwrap();
        }
        let gone: Vec<i64> = ids.iter().copied().step_by(7).collect();
        let _ = store.remove_invitations(t, &gone[..10], &a).await;
        for &user in ids.iter().skip(3).step_by(11).take(20) {
            store.join(t, user, &a).await.unwrap();
        }
        let order: Vec<(i64,)> = sqlx::query_as(
            "SELECT user_id FROM community_invitations WHERE group_id = $1 AND status = 'PENDING' ORDER BY id",
        )
        .bind(t.id())
        .fetch_all(store.pool())
        .await
        .unwrap();
        let order: Vec<i64> = order.into_iter().map(|(u,)| u).collect();
        let (max_id,): (i64,) = sqlx::query_as("SELECT MAX(id) FROM community_invitations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(max_id >= 2 * 256, "the test spans several chunks: {max_id}");
        let n = order.len() as i64;
        let mut offsets: Vec<i64> = (0..=n + 1).step_by(17).collect();
        offsets.extend([n - 1, n, n + 1]);
        for offset in offsets {
            for limit in [1, 20, 300] {
                let (count, users) = store.invited_users(t, limit, offset).await.unwrap();
                assert_eq!(count, n);
                let want: Vec<i64> = order
                    .iter()
                    .copied()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .collect();
                let got: Vec<i64> = users.iter().map(|u| u.id).collect();
                assert_eq!(got, want, "limit {limit} offset {offset}");
            }
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
        assert_pages(
            &store,
            t,
            &pending,
            &[(2, 0), (2, 2), (2, 4), (10, 1), (3, 5)],
        )
        .await;
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

    /// The plan of a page of `limit` at `offset` over `chunks` (chunk, pending).
    fn plan_of(chunks: &[(i64, i64)], offset: i64, limit: i64) -> Option<PagePlan> {
        let mut seek = PageSeek::new(offset, limit);
        for &(c, n) in chunks {
            if seek.feed(c, n) {
                break;
            }
        }
        seek.finish()
    }

    #[test]
    fn a_page_reads_from_the_chunk_where_the_counts_pass_its_offset_to_where_it_is_full() {
        let chunks = [(3, 2), (4, 0), (7, 5), (8, 3), (9, 1), (12, 4)];
        let run = |from: i64, to: i64| (from << CHUNK_BITS, (to + 1) << CHUNK_BITS);
        let plan = |skip, runs: Vec<(i64, i64)>| Some(PagePlan { skip, runs });
        assert_eq!(plan_of(&chunks, 0, 1), plan(0, vec![run(3, 3)]));
        assert_eq!(plan_of(&chunks, 0, 2), plan(0, vec![run(3, 3)]));
        assert_eq!(plan_of(&chunks, 1, 2), plan(1, vec![run(3, 3), run(7, 7)]));
        assert_eq!(plan_of(&chunks, 2, 6), plan(0, vec![run(7, 8)]));
        assert_eq!(plan_of(&chunks, 6, 3), plan(4, vec![run(7, 8)]));
        assert_eq!(plan_of(&chunks, 6, 5), plan(4, vec![run(7, 9)]));
        // Past the last chunk: as far as there is.
        assert_eq!(
            plan_of(&chunks, 10, 20),
            plan(0, vec![run(9, 9), run(12, 12)])
        );
        assert_eq!(
            plan_of(&chunks, 9, 20),
            plan(2, vec![run(8, 9), run(12, 12)])
        );
        assert_eq!(plan_of(&chunks, 14, 1), plan(3, vec![run(12, 12)]));
        assert_eq!(plan_of(&chunks, 15, 1), None);
        assert_eq!(plan_of(&chunks, 0, 0), None);
        // A chunk's rows (PostgreSQL's slots) are summed before it counts, one below zero too.
        assert_eq!(
            plan_of(&[(3, 1), (3, 1), (7, 4), (7, -1), (7, 2), (9, 1)], 1, 2),
            plan_of(&chunks[..3], 1, 2)
        );
        assert_eq!(
            plan_of(&[(3, 1), (3, 1), (7, 4), (7, -1), (7, 2), (9, 1)], 6, 3),
            plan(4, vec![run(7, 7), run(9, 9)])
        );
        // Counts below zero (drifted) count as none.
        assert_eq!(plan_of(&[(1, -3), (2, 1)], 0, 1), plan(0, vec![run(2, 2)]));
    }

    proptest::proptest! {
        /// Against the invitations themselves: reading the plan's runs, skipping its `skip` and
        /// taking `limit` gives the page, from no more than `limit` + 1 chunks.
        #[test]
        fn a_page_plan_agrees_with_walking_the_ids(
            ids in proptest::collection::btree_set(0_i64..5_000, 0..400),
            offset in 0_i64..450,
            limit in 1_i64..60,
        ) {
            let ids: Vec<i64> = ids.into_iter().collect();
            let mut chunks: Vec<(i64, i64)> = Vec::new();
            for id in &ids {
                match chunks.last_mut() {
                    Some((c, n)) if *c == id >> CHUNK_BITS => *n += 1,
                    _ => chunks.push((id >> CHUNK_BITS, 1)),
                }
            }
            let want: Vec<i64> = ids.iter().copied().skip(offset as usize).take(limit as usize).collect();
            match plan_of(&chunks, offset, limit) {
                None => proptest::prop_assert!(want.is_empty()),
                Some(plan) => {
                    let read: Vec<i64> = ids
                        .iter()
                        .copied()
                        .filter(|&i| plan.runs.iter().any(|&(a, b)| a <= i && i < b))
                        .collect();
                    let page: Vec<i64> = read.iter().copied().skip(plan.skip as usize).take(limit as usize).collect();
                    proptest::prop_assert_eq!(page, want);
                    let spanned: i64 = plan.runs.iter().map(|&(a, b)| (b - a) >> CHUNK_BITS).sum();
                    let held = chunks.iter().filter(|&&(c, _)| plan.runs.iter().any(|&(a, b)| a <= c << CHUNK_BITS && c << CHUNK_BITS < b)).count() as i64;
                    proptest::prop_assert!(held <= limit + 1);
                    // Runs are merged only over chunks that hold some: nothing between is read.
                    proptest::prop_assert_eq!(spanned, held);
                    proptest::prop_assert!(plan.runs.windows(2).all(|w| w[0].1 < w[1].0));
                }
            }
        }
    }

    /// Bulk removals sent at once, on PostgreSQL batched (`postgres::bulk_removals`): each
    /// answers for itself, all or none, and the counts, pages and audit agree with the answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_removals_at_once_each_answer_for_themselves() {
        let (store, _dir, g, a, ids) = group_with_users(44).await;
        let course = store.create_course("C", ids[0], Utc::now()).await.unwrap();
        let c = CommunityTarget::Course(course.id);
        store.invite_users(g, &ids[..40], None, &a).await.unwrap();
        store.invite_users(c, &ids[..10], None, &a).await.unwrap();
        let five = |k: usize| ids[5 * k..5 * k + 5].to_vec();
        // Groups: six removals of five each; one with a user never invited; one with a repeat;
        // two alike (one of them wins). Course: two.
        let mut asked: Vec<(CommunityTarget, Vec<i64>)> = (0..6).map(|k| (g, five(k))).collect();
        asked.push((g, vec![ids[30], ids[42]]));
        asked.push((g, vec![ids[31], ids[32], ids[31]]));
        asked.push((g, five(7)));
        asked.push((g, five(7)));
        asked.push((c, ids[..3].to_vec()));
        asked.push((c, vec![ids[3], ids[43]]));
        let answers = futures_util::future::join_all(asked.iter().map(|(t, users)| {
            let (store, a) = (store.clone(), a.clone());
            async move { store.remove_invitations(*t, users, &a).await.unwrap() }
        }))
        .await;
        assert!(answers[..6].iter().all(Vec::is_empty), "{answers:?}");
        assert_eq!(answers[6], vec![ids[42]]);
        assert_eq!(answers[7], vec![ids[31]]);
        let mut twins = [answers[8].clone(), answers[9].clone()];
        twins.sort();
        assert_eq!(twins, [Vec::new(), five(7)]);
        assert_eq!(answers[10], Vec::<i64>::new());
        assert_eq!(answers[11], vec![ids[43]]);
        // Left: the group's 30..35 (the two removals naming them removed nothing; one twin
        // removed 35..40), the course's 3..10.
        let left_g: Vec<i64> = ids[30..35].to_vec();
        assert_pages(&store, g, &left_g, &[(2, 0), (10, 0), (3, 4)]).await;
        assert_pages(&store, c, &ids[3..10], &[(4, 0), (10, 2)]).await;
        let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(REMOVED)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(audited, 30 + 5 + 3);
        // What the bulk queue recorded (PostgreSQL): the twelve, each in one batch (one undone
        // and run alone counts once). SQLite has no bulk queue, and no series of one.
        let text = invites_metrics::Metrics::new(store.metrics()).encode();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .map(|v| v.parse::<f64>().unwrap())
        };
        match store.backend() {
            Backend::Postgres => {
                let sum = value("invites_removal_batch_size_sum{queue=\"bulk_removals\"}");
                assert_eq!(sum, Some(12.0), "{text}");
                let count = value("invites_removal_batch_size_count{queue=\"bulk_removals\"}");
                assert!((1.0..=12.0).contains(&count.unwrap()), "{text}");
            }
            Backend::Sqlite => assert!(!text.contains("queue=\"bulk_removals\""), "{text}"),
        }
    }

    /// A batch of PostgreSQL bulk removals is one statement: all of its removals or none.
    #[tokio::test]
    async fn a_postgres_batch_of_bulk_removals_removes_all_or_none() {
        use crate::postgres::bulk_removals::tests::job_of;
        use crate::postgres::bulk_removals::{remove_together, Job};
        let (store, _dir, g, a, ids) = group_with_users(12).await;
        let Engine::Postgres(db) = &store.engine else {
            return;
        };
        let g2 = CommunityTarget::Group(
            store
                .create_community_group("H", Utc::now())
                .await
                .unwrap()
                .id,
        );
        store.invite_users(g, &ids[..10], None, &a).await.unwrap();
        store.invite_users(g2, &ids[..4], None, &a).await.unwrap();
        let jobs = |asked: &[(CommunityTarget, &[i64])]| -> Vec<Job> {
            asked
                .iter()
                .map(|&(target, users)| job_of(target, users, &a))
                .collect()
        };
        let audited = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE action = $1")
                .bind(REMOVED)
                .fetch_one(store.pool())
                .await
                .unwrap()
        };
        // The last removal lists two users without an invitation: nothing of the batch is removed.
        let undone = remove_together(
            db,
            &jobs(&[(g, &ids[..3]), (g2, &ids[..2]), (g, &ids[9..12])]),
        )
        .await
        .unwrap_err();
        assert!(
            undone
                .to_string()
                .contains("changed 6 of the 8 rows listed"),
            "{undone}"
        );
        // A repeat too: listed four times, removable three.
        assert!(
            remove_together(db, &jobs(&[(g, &ids[..2]), (g2, &[ids[0], ids[0]])]))
                .await
                .is_err()
        );
        assert_pages(&store, g, &ids[..10], &[(10, 0)]).await;
        assert_pages(&store, g2, &ids[..4], &[(10, 0)]).await;
        assert_eq!(audited().await, 0);
        remove_together(
            db,
            &jobs(&[(g, &ids[..3]), (g2, &ids[1..3]), (g, &ids[7..9])]),
        )
        .await
        .unwrap();
        assert_pages(
            &store,
            g,
            &[&ids[3..7], &ids[9..10]].concat(),
            &[(2, 0), (10, 1)],
        )
        .await;
        assert_pages(&store, g2, &[ids[0], ids[3]], &[(10, 0)]).await;
        // An audit row per invitation removed, each with its own target in the detail.
        let details: Vec<String> =
            sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 ORDER BY id")
                .bind(REMOVED)
                .fetch_all(store.pool())
                .await
                .unwrap();
        let mut want: Vec<String> = [(g, &ids[..3]), (g2, &ids[1..3]), (g, &ids[7..9])]
            .iter()
            .flat_map(|(t, users)| {
                users
                    .iter()
                    .map(|u| serde_json::json!({ t.kind(): t.id(), "user": u }).to_string())
            })
            .collect();
        let mut got = details.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
