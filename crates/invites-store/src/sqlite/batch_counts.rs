//! The community page counts' changes of one writer batch, summed over its kept jobs and written
//! once, just before the batch commits.
//!
//! On SQLite the store keeps the counts of migration 8 itself (no triggers: see the migration),
//! and each job used to write its own changes, an upsert for the target's total and one per
//! chunk it touched. Jobs of one batch mostly change the same target (a group's bulk removals
//! under load), so summed they make one upsert for the total per batch instead of one per job.
//! A job adds its changes here ([`add`]); the writer thread tells whether the job was kept
//! ([`job_kept`]) or undone ([`job_discarded`]), writes what the kept ones added before the
//! commit ([`write`]) and starts each batch afresh ([`clear`]). They live in the writer thread's
//! own storage: its jobs run one at a time on that thread alone.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::community::{ADD_PENDING_CHUNK_SQL, ADD_PENDING_TOTAL_SQL};

/// A count: (target kind, target id, chunk), the chunk `None` for the target's total.
type Count = (i64, i64, Option<i64>);

#[derive(Default)]
struct Changes {
    /// The running job's changes.
    job: Vec<(Count, i64)>,
    /// The batch's kept jobs' changes, summed.
    batch: BTreeMap<Count, i64>,
}

thread_local! {
    static CHANGES: RefCell<Changes> = RefCell::default();
}

/// Adds the running job's change of `kind`/`target`'s total and of each of its `chunks`.
pub(crate) fn add(kind: i64, target: i64, total: i64, chunks: &[(i64, i64)]) {
    CHANGES.with_borrow_mut(|c| {
        c.job.push(((kind, target, None), total));
        c.job.extend(
            chunks
                .iter()
                .map(|&(chunk, change)| ((kind, target, Some(chunk)), change)),
        );
    });
}

/// The running job was kept: its changes join the batch's.
pub(crate) fn job_kept() {
    CHANGES.with_borrow_mut(|c| {
        let Changes { job, batch } = c;
        for (count, change) in job.drain(..) {
            *batch.entry(count).or_default() += change;
        }
    });
}

/// The running job was undone or failed: its changes go with it.
pub(crate) fn job_discarded() {
    CHANGES.with_borrow_mut(|c| c.job.clear());
}

/// Forgets every change: a batch starts, or starts over.
pub(crate) fn clear() {
    CHANGES.with_borrow_mut(|c| {
        c.job.clear();
        c.batch.clear();
    });
}

/// Writes the batch's summed changes in its transaction (one upsert per count that changed) and
/// forgets them.
pub(crate) fn write(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let batch = CHANGES.with_borrow_mut(|c| std::mem::take(&mut c.batch));
    for ((kind, target, chunk), change) in batch {
        if change == 0 {
            continue;
        }
        match chunk {
            None => conn
                .prepare_cached(ADD_PENDING_TOTAL_SQL)?
                .execute(rusqlite::params![kind, target, change])?,
            Some(chunk) => conn
                .prepare_cached(ADD_PENDING_CHUNK_SQL)?
                .execute(rusqlite::params![kind, target, chunk, change])?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<(Count, i64)> {
        CHANGES.with_borrow(|c| c.batch.iter().map(|(k, v)| (*k, *v)).collect())
    }

    #[test]
    fn kept_jobs_are_summed_and_undone_ones_dropped() {
        clear();
        add(0, 7, -2, &[(3, -1), (4, -1)]);
        job_kept();
        add(0, 7, 5, &[(4, 5)]);
        job_discarded();
        add(0, 7, -1, &[(4, -1)]);
        add(1, 9, 1, &[(0, 1)]);
        job_kept();
        assert_eq!(
            batch(),
            [
                ((0, 7, None), -3),
                ((0, 7, Some(3)), -1),
                ((0, 7, Some(4)), -2),
                ((1, 9, None), 1),
                ((1, 9, Some(0)), 1),
            ]
        );
        clear();
        assert!(batch().is_empty());
    }

    #[test]
    fn writing_upserts_what_changed_and_forgets_it() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE community_pending_totals (kind SMALLINT NOT NULL, target_id BIGINT \
             NOT NULL, pending BIGINT NOT NULL, PRIMARY KEY (kind, target_id)) WITHOUT ROWID;
             CREATE TABLE community_pending_chunks (kind SMALLINT NOT NULL, target_id BIGINT \
             NOT NULL, chunk BIGINT NOT NULL, pending BIGINT NOT NULL, \
             PRIMARY KEY (kind, target_id, chunk)) WITHOUT ROWID;
             INSERT INTO community_pending_totals VALUES (0, 7, 10);
             INSERT INTO community_pending_chunks VALUES (0, 7, 3, 4), (0, 7, 4, 6);",
        )
        .unwrap();
        clear();
        add(0, 7, -2, &[(3, -1), (4, -1)]);
        job_kept();
        // A change that sums to nothing writes nothing (the chunk row 5 is never made).
        add(0, 7, 0, &[(5, 1)]);
        job_kept();
        add(0, 7, 0, &[(5, -1)]);
        job_kept();
        write(&conn).unwrap();
        let rows: Vec<(i64, i64)> = conn
            .prepare("SELECT chunk, pending FROM community_pending_chunks ORDER BY chunk")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(3, 3), (4, 5)]);
        let total: i64 = conn
            .query_row("SELECT pending FROM community_pending_totals", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(total, 8);
        assert!(batch().is_empty(), "written, then forgotten");
        write(&conn).unwrap();
        let again: i64 = conn
            .query_row("SELECT pending FROM community_pending_totals", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(again, 8, "nothing written twice");
    }
}
