//! PostgreSQL bodies of the community hot paths: bulk invitations and removals and joins, each
//! one transaction of the native pool; list pages.

use futures_util::TryStreamExt;
use invites_domain::community::{CommunityTarget, InvitedUser};
use sqlx::Acquire;

use super::{write_audit, Postgres};
use crate::audit::AuditEntry;
use crate::community::{
    accepted_audit, audit_rows, invite_sql, invited_page_sql, invited_user, join_sql, offending,
    removal_sql, target_kind, InvitedUserRow, PageSeek, CREATED, REMOVED, USER_EXISTS_SQL,
};
use crate::{Result, IDS_PER_STATEMENT};

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
    pub(crate) async fn remove_invitations(
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
