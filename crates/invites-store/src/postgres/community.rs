//! PostgreSQL bodies of the community hot paths: bulk invitations and removals and joins, each
//! one transaction of the native pool; list pages.

use futures_util::TryStreamExt;
use invites_domain::community::{CommunityTarget, InvitedUser};
use sqlx::Acquire;

use super::{write_audit, Postgres};
use crate::audit::AuditEntry;
use crate::community::{
    accepted_audit, audit_rows, invitation_column, invite_sql, invited_page_sql, invited_user,
    join_sql, offending, removal_sql, target_kind, InvitedUserRow, PageSeek, CREATED, REMOVED,
    USER_EXISTS_SQL,
};
use crate::error::PG_ALL_OR_NONE;
use crate::{placeholders, Result, StoreError, IDS_PER_STATEMENT};

/// A target's pending invitations: the sum of its slots (migration 12), NULL before its first
/// (parameters: the target's kind, its id).
const PENDING_TOTAL_SQL: &str =
    "SELECT CAST(SUM(pending) AS BIGINT) FROM community_pending_totals \
     WHERE kind = $1 AND target_id = $2";

/// A target's count chunks in id order, one row per chunk and slot (parameters: kind, id): the
/// primary key's order, so they stream and are read only as far as a page needs; [`PageSeek`]
/// sums a chunk's rows.
const PENDING_CHUNKS_SQL: &str = "SELECT chunk, pending FROM community_pending_chunks \
     WHERE kind = $1 AND target_id = $2 ORDER BY chunk, slot";

/// A bulk removal of `n` distinct users' pending invitations to `target`, all or none, with an
/// audit row per invitation removed, as one statement (its own transaction): the DELETE removes
/// the listed users' pending invitations it finds (parameters: the target's id, then the users);
/// the INSERT audits what it removed (then, after parameter n + 2, the entry's time, actor kind,
/// id and display, remote address, and the detail as `audit_rows` writes it); the SELECT returns
/// them (id, user) once `all_or_none` (migration 13) saw as many removed as parameter n + 2 says
/// were listed (their repeats included, so that a repeat removes nothing, as `offending` says), and
/// otherwise aborts the statement with [`PG_ALL_OR_NONE`], undoing the removals and their audit.
/// One round trip where BEGIN, the DELETE, the audit INSERT and COMMIT took four, each a wait for
/// the replica's next statement while the rows and the page counts' slot rows stayed locked
/// (benchmark (d): "idle in transaction" was most of a removal's time in `pg_stat_activity`);
/// and one pass over the rows where locking them first (`FOR UPDATE`) took two.
fn removal_audited_sql(target: CommunityTarget, n: usize) -> String {
    let p = n + 2;
    format!(
        "WITH removed AS ({}), \
         audited AS (INSERT INTO audit_log ({names}) \
         SELECT ${}, ${}, ${}, ${}, '{REMOVED}', 'community_invitation', CAST(id AS TEXT), ${}, \
         '{{\"{}\":' || CAST($1 AS TEXT) || ',\"user\":' || CAST(user_id AS TEXT) || '}}' \
         FROM removed ORDER BY removed.id) \
         SELECT id, user_id FROM removed \
         WHERE (SELECT all_or_none(COUNT(*), ${p}) FROM removed)",
        removal_sql(target, n),
        p + 1,
        p + 2,
        p + 3,
        p + 4,
        p + 5,
        target.kind(),
        names = crate::audit::COLUMN_NAMES,
    )
}

/// The listed users' pending invitations to `target` (id, user), read when a removal of them was
/// undone (parameters: the target's id, then the users).
fn pending_of_sql(target: CommunityTarget, n: usize) -> String {
    format!(
        "SELECT id, user_id FROM community_invitations WHERE {} = $1 AND status = 'PENDING' \
         AND user_id IN ({})",
        invitation_column(target),
        placeholders(2, n)
    )
}

/// Times a bulk removal is tried when it was undone but every listed user then had a pending
/// invitation again (invited anew in between), before it answers "busy, retry".
const REMOVAL_TRIES: usize = 3;

impl Postgres {
    /// See [`crate::Store::invited_users`]. Statements outside a transaction (the total, the
    /// chunks, one per run of the page), like any offset paging under concurrent writes: a write
    /// between them moves the page by what it added or removed before it.
    pub(crate) async fn invited_users(
        &self,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>)> {
        let kind = target_kind(target);
        let total: Option<i64> = sqlx::query_scalar(PENDING_TOTAL_SQL)
            .bind(kind)
            .bind(target.id())
            .fetch_one(&mut *self.connection().await?)
            .await?;
        let total = total.unwrap_or(0);
        if offset >= total {
            return Ok((total, Vec::new()));
        }
        let plan = {
            let mut conn = self.connection().await?;
            let mut chunks = sqlx::query_as::<_, (i64, i64)>(PENDING_CHUNKS_SQL)
                .bind(kind)
                .bind(target.id())
                .fetch(&mut *conn);
            let mut seek = PageSeek::new(offset, limit);
            while let Some((chunk, pending)) = chunks.try_next().await? {
                if seek.feed(chunk, pending) {
                    break;
                }
            }
            seek.finish()
        };
        let Some(plan) = plan else {
            return Ok((total, Vec::new()));
        };
        let mut rows: Vec<InvitedUserRow> = Vec::new();
        let mut skip = plan.skip;
        for (first, after) in plan.runs {
            let run: Vec<InvitedUserRow> = sqlx::query_as(invited_page_sql(target))
                .bind(target.id())
                .bind(first)
                .bind(after)
                .bind(limit - rows.len() as i64)
                .bind(skip)
                .fetch_all(&mut *self.connection().await?)
                .await?;
            rows.extend(run);
            skip = 0;
            if rows.len() as i64 >= limit {
                break;
            }
        }
        Ok((total, rows.into_iter().map(invited_user).collect()))
    }

    /// See [`crate::Store::invite_users`].
    pub(crate) async fn invite_users(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        inviter_user_id: Option<i64>,
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        let insert = invite_sql(target);
        let at = audit_entry.at.timestamp_millis();
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let mut unknown = Vec::new();
        for &id in user_ids {
            let exists: Option<(i64,)> = sqlx::query_as(USER_EXISTS_SQL)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                unknown.push(id);
            }
        }
        if !unknown.is_empty() {
            return Ok(unknown);
        }
        let mut created = Vec::with_capacity(user_ids.len());
        for &id in user_ids {
            let row: Option<(i64,)> = sqlx::query_as(insert)
                .bind(target.id())
                .bind(id)
                .bind(inviter_user_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some((inv,)) = row {
                created.push((inv, id));
            }
        }
        write_audit(&mut tx, &audit_rows(CREATED, target, &created, audit_entry)).await?;
        tx.commit().await?;
        Ok(Vec::new())
    }

    /// See [`crate::Store::remove_invitations`]; `unique` is `user_ids` ascending, each once.
    /// Up to [`IDS_PER_STATEMENT`] users, one statement ([`removal_audited_sql`]; the store
    /// queues those for `bulk_removals` instead); more, a transaction of a DELETE per chunk and
    /// the audit INSERTs.
    pub(crate) async fn remove_invitations(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        unique: Vec<i64>,
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        if unique.len() > IDS_PER_STATEMENT {
            return self
                .remove_invitations_in_chunks(target, user_ids, unique, audit_entry)
                .await;
        }
        self.remove_invitations_alone(target, user_ids, &unique, audit_entry)
            .await
    }

    /// [`Self::remove_invitations`] of 1 to [`IDS_PER_STATEMENT`] users as one statement of its
    /// own (`bulk_removals` batches several when they queue).
    pub(crate) async fn remove_invitations_alone(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        unique: &[i64],
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        let sql = removal_audited_sql(target, unique.len());
        for _ in 0..REMOVAL_TRIES {
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql).bind(target.id());
            for &id in unique {
                query = query.bind(id);
            }
            let done = query
                .bind(user_ids.len() as i64)
                .bind(audit_entry.at.timestamp_millis())
                .bind(&audit_entry.actor_kind)
                .bind(&audit_entry.actor_id)
                .bind(&audit_entry.actor_display)
                .bind(&audit_entry.remote_addr)
                .fetch_all(&mut *self.connection().await?)
                .await;
            match done {
                Ok(_) => return Ok(Vec::new()),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(PG_ALL_OR_NONE) => {}
                Err(e) => return Err(e.into()),
            }
            // Undone: some listed user had no pending invitation (or was listed twice) when
            // it ran; these are the ones, unless all were invited again since.
            let pending = pending_of_sql(target, unique.len());
            let mut query = sqlx::query_as::<_, (i64, i64)>(&pending).bind(target.id());
            for &id in unique {
                query = query.bind(id);
            }
            let found = query.fetch_all(&mut *self.connection().await?).await?;
            let offending = offending(user_ids, &found);
            if !offending.is_empty() {
                return Ok(offending);
            }
        }
        Err(StoreError::Busy)
    }

    /// [`Self::remove_invitations`] of more users than one statement takes.
    async fn remove_invitations_in_chunks(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        unique: Vec<i64>,
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let mut removed: Vec<(i64, i64)> = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(IDS_PER_STATEMENT) {
            let sql = removal_sql(target, chunk.len());
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql).bind(target.id());
            for &id in chunk {
                query = query.bind(id);
            }
            removed.extend(query.fetch_all(&mut *tx).await?);
        }
        let offending = offending(user_ids, &removed);
        if !offending.is_empty() {
            tx.rollback().await?;
            return Ok(offending);
        }
        write_audit(&mut tx, &audit_rows(REMOVED, target, &removed, audit_entry)).await?;
        tx.commit().await?;
        Ok(Vec::new())
    }

    /// See [`crate::Store::join`].
    pub(crate) async fn join(
        &self,
        target: CommunityTarget,
        user_id: i64,
        audit_entry: &AuditEntry,
    ) -> Result<bool> {
        let (accept, member) = join_sql(target);
        let at = audit_entry.at.timestamp_millis();
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let row: Option<(i64,)> = sqlx::query_as(accept)
            .bind(target.id())
            .bind(user_id)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((inv,)) = row else {
            return Ok(false);
        };
        sqlx::query(member)
            .bind(target.id())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        write_audit(
            &mut tx,
            &[accepted_audit(audit_entry, target, user_id, inv)],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
