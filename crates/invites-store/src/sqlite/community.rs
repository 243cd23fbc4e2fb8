//! SQLite bodies of the community hot paths: bulk invitations and removals and joins, each one
//! job of the writer thread, batched with other writes, instead of round trips per user; list
//! pages, each one read on a reader connection.

use invites_domain::community::{CommunityTarget, InvitedUser};
use rusqlite::OptionalExtension;

use super::writer::Outcome;
use super::{write_audit, Sqlite};
use crate::audit::AuditEntry;
use crate::community::{
    accepted_audit, audit_rows, invite_sql, invited_page_sql, invited_user, join_sql, offending,
    pending_changes, removal_sql, target_kind, InvitedUserRow, PageSeek, CREATED,
    PENDING_CHUNKS_SQL, PENDING_TOTAL_SQL, REMOVED, USER_EXISTS_SQL,
};
use crate::{Result, IDS_PER_STATEMENT};

impl Sqlite {
    /// See [`crate::Store::invited_users`]: the total, the chunks and the page's runs in one read
    /// transaction, so all are of the same moment.
    pub(crate) async fn invited_users(
        &self,
        target: CommunityTarget,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<InvitedUser>)> {
        self.readers
            .read(move |conn| {
                let read = conn.unchecked_transaction()?;
                let key = rusqlite::params![target_kind(target), target.id()];
                let total: i64 = read
                    .prepare_cached(PENDING_TOTAL_SQL)?
                    .query_row(key, |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let mut plan = None;
                if offset < total {
                    let mut chunks = read.prepare_cached(PENDING_CHUNKS_SQL)?;
                    let mut rows = chunks.query(key)?;
                    let mut seek = PageSeek::new(offset, limit);
                    while let Some(row) = rows.next()? {
                        if seek.feed(row.get(0)?, row.get(1)?) {
                            break;
                        }
                    }
                    plan = seek.finish();
                }
                let mut users = Vec::new();
                if let Some(plan) = plan {
                    let mut page = read.prepare_cached(invited_page_sql(target))?;
                    let mut skip = plan.skip;
                    for (first, after) in plan.runs {
                        let want = limit - users.len() as i64;
                        let params = rusqlite::params![target.id(), first, after, want, skip];
                        let mut rows = page.query(params)?;
                        while let Some(row) = rows.next()? {
                            let user: InvitedUserRow = (
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                            );
                            users.push(invited_user(user));
                        }
                        skip = 0;
                        if users.len() as i64 >= limit {
                            break;
                        }
                    }
                }
                Ok((total, users))
            })
            .await
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
        let (user_ids, audit_entry) = (user_ids.to_vec(), audit_entry.clone());
        self.writer
            .run(move |conn| {
                let mut exists = conn.prepare_cached(USER_EXISTS_SQL)?;
                let mut unknown = Vec::new();
                for &id in &user_ids {
                    if !exists.exists([id])? {
                        unknown.push(id);
                    }
                }
                if !unknown.is_empty() {
                    return Ok(Outcome::Keep(unknown));
                }
                let mut insert = conn.prepare_cached(insert)?;
                let mut created = Vec::with_capacity(user_ids.len());
                for &id in &user_ids {
                    let params = rusqlite::params![target.id(), id, inviter_user_id, at];
                    if let Some(inv) = insert.query_row(params, |row| row.get(0)).optional()? {
                        created.push((inv, id));
                    }
                }
                let new: Vec<i64> = created.iter().map(|&(inv, _)| inv).collect();
                count_pending(target, &new, 1);
                write_audit(conn, &audit_rows(CREATED, target, &created, &audit_entry))?;
                Ok(Outcome::Keep(Vec::new()))
            })
            .await
    }

    /// See [`crate::Store::remove_invitations`]; `unique` is `user_ids` ascending, each once.
    pub(crate) async fn remove_invitations(
        &self,
        target: CommunityTarget,
        user_ids: &[i64],
        unique: Vec<i64>,
        audit_entry: &AuditEntry,
    ) -> Result<Vec<i64>> {
        let (user_ids, audit_entry) = (user_ids.to_vec(), audit_entry.clone());
        self.writer
            .run(move |conn| {
                let mut removed = Vec::with_capacity(unique.len());
                for chunk in unique.chunks(IDS_PER_STATEMENT) {
                    let mut statement = conn.prepare_cached(&removal_sql(target, chunk.len()))?;
                    let params = std::iter::once(target.id()).chain(chunk.iter().copied());
                    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
                    while let Some(row) = rows.next()? {
                        removed.push((row.get(0)?, row.get(1)?));
                    }
                }
                let offending = offending(&user_ids, &removed);
                if !offending.is_empty() {
                    return Ok(Outcome::Undo(offending));
                }
                let gone: Vec<i64> = removed.iter().map(|&(inv, _)| inv).collect();
                count_pending(target, &gone, -1);
                write_audit(conn, &audit_rows(REMOVED, target, &removed, &audit_entry))?;
                Ok(Outcome::Keep(offending))
            })
            .await
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
        let audit_entry = audit_entry.clone();
        self.writer
            .run(move |conn| {
                // Named: the statement reads its parameters out of number order.
                let params = rusqlite::named_params! {
                    "$1": target.id(),
                    "$2": user_id,
                    "$3": at,
                };
                let accepted = conn
                    .prepare_cached(accept)?
                    .query_row(params, |row| row.get::<_, i64>(0));
                let Some(inv) = accepted.optional()? else {
                    return Ok(Outcome::Keep(false));
                };
                conn.prepare_cached(member)?
                    .execute(rusqlite::params![target.id(), user_id])?;
                count_pending(target, &[inv], -1);
                write_audit(conn, &[accepted_audit(&audit_entry, target, user_id, inv)])?;
                Ok(Outcome::Keep(true))
            })
            .await
    }
}

/// Adds to the page counts of migration 8 what a writer job did to the pending invitations `ids`
/// of `target`: they became pending (`sign` 1) or stopped being pending (-1). On SQLite the store
/// keeps the counts, not triggers (see the migration for why); the changes of a batch's kept jobs
/// are summed and written in its transaction just before it commits (`batch_counts`).
fn count_pending(target: CommunityTarget, ids: &[i64], sign: i64) {
    debug_assert_eq!(
        std::thread::current().name(),
        Some(super::writer::THREAD),
        "only the writer thread writes what batch_counts holds"
    );
    #[cfg(feature = "bench-bounds")]
    if crate::bench_bound::current() == Some(crate::bench_bound::Bound::Uncounted) {
        return;
    }
    if ids.is_empty() {
        return;
    }
    let (total, chunks) = pending_changes(ids, sign);
    super::batch_counts::add(target_kind(target), target.id(), total, &chunks);
}
