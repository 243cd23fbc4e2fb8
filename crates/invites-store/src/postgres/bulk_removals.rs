//! PostgreSQL community bulk removals, batched: the bulk removals that queue while others run
//! share one statement and one commit, each still all or none.
//!
//! A bulk removal on its own is one statement (`postgres::community`); under load most of a
//! request's cost around it is per statement and per commit (the page counts' triggers, a round
//! trip, a log flush). Requests queue for one task (`crate::batcher`), which, as for the
//! removals, takes whatever queued while [`BATCHES`] batches were in flight (the
//! deployment's, split between the replicas removing at once: `removing_replicas`): a batch of
//! one runs the statement of one removal; a batch of several runs [`batch_sql`], a DELETE and its
//! audit INSERT per removal in one statement, which `all_or_none` (migration 13) undoes unless
//! every listed user of every removal had a pending invitation. Then, and only then, each removal
//! of the batch runs on its own, and so learns its own offending ids: a request with a missing
//! user costs the requests batched with it one undone statement. A batch holds removals of one
//! kind of target (groups or courses), no two listing the same user of the same target (else one
//! would remove what the other counted); the others wait for the next batch.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use invites_domain::community::CommunityTarget;
use invites_metrics::BatchHandles;
use tokio::sync::{mpsc, oneshot};

use super::Postgres;
use crate::audit::AuditEntry;
use crate::batch_slots::BatchSlots;
use crate::batcher::{self, note_batch, Batching, Unreachable};
use crate::community::{invitation_column, REMOVED};
use crate::error::PG_ALL_OR_NONE;
use crate::{Result, StoreError, IDS_PER_STATEMENT};

/// Most removals per batch.
pub(crate) const MAX_JOBS: usize = 16;
/// Batches in flight at once (as `crate::removals::POSTGRES_BATCHES`, and for its reason).
pub(crate) const BATCHES: usize = 2;
/// Removals waiting at most; callers wait for room beyond that.
const QUEUE: usize = 1024;
/// Parameters of one removal in [`batch_sql`]: the target, the users (an array), the audit
/// entry's time, actor kind, id and display, and remote address.
const PARAMETERS: usize = 7;

/// One requested bulk removal: `unique` is `user_ids` ascending, each once, at most
/// [`IDS_PER_STATEMENT`] of them.
pub(crate) struct Job {
    pub(crate) target: CommunityTarget,
    pub(crate) user_ids: Vec<i64>,
    pub(crate) unique: Vec<i64>,
    pub(crate) audit: AuditEntry,
    pub(crate) reply: oneshot::Sender<Result<Vec<i64>>>,
    /// When it was queued.
    pub(crate) queued: Instant,
}

/// Starts the batching task over `db`, with `slots` batches in flight (at most [`BATCHES`]),
/// recording its batches in `batches`; it ends when every sender is dropped.
pub(crate) fn start(
    db: Postgres,
    slots: Arc<BatchSlots>,
    batches: BatchHandles,
) -> mpsc::Sender<Job> {
    batcher::start(BulkRemovals(db), QUEUE, slots, Some(batches))
}

/// The bulk removals' kind of batch.
struct BulkRemovals(Postgres);

impl Batching for BulkRemovals {
    type Job = Job;
    const MOST: usize = MAX_JOBS;

    fn queued(job: &Job) -> Instant {
        job.queued
    }

    fn fail(job: Job, error: StoreError) {
        let _ = job.reply.send(Err(error));
    }

    fn split(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
        compatible(jobs)
    }

    async fn execute(&self, jobs: Vec<Job>, unreachable: &Unreachable) {
        execute(&self.0, jobs, unreachable).await
    }
}

/// Splits `waiting` (not empty) into a batch, from its first job on, and the jobs that wait for
/// the next: another kind of target than the first's, a user of a target already listed, or
/// more than [`IDS_PER_STATEMENT`] users in all.
fn compatible(waiting: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let kind = waiting[0].target.kind();
    let mut listed: HashSet<(i64, i64)> = HashSet::new();
    let mut users = 0;
    let (mut batch, mut later) = (Vec::new(), Vec::new());
    for job in waiting {
        let fits = job.target.kind() == kind
            && users + job.user_ids.len() <= IDS_PER_STATEMENT
            && job
                .unique
                .iter()
                .all(|&user| !listed.contains(&(job.target.id(), user)));
        if fits || batch.is_empty() {
            users += job.user_ids.len();
            listed.extend(job.unique.iter().map(|&user| (job.target.id(), user)));
            batch.push(job);
        } else {
            later.push(job);
        }
    }
    (batch, later)
}

async fn execute(db: &Postgres, jobs: Vec<Job>, unreachable: &Unreachable) {
    let together = if jobs.len() > 1 {
        Some(remove_together(db, &jobs).await)
    } else {
        None
    };
    match together {
        Some(Ok(())) => {
            note_batch(unreachable, None);
            for job in jobs {
                let _ = job.reply.send(Ok(Vec::new()));
            }
        }
        Some(Err(e)) if e.unreachable() => {
            note_batch(unreachable, Some(&e));
            for job in jobs {
                let _ = job.reply.send(Err(e.duplicate()));
            }
        }
        // One removal, or a batch undone (a removal with a user who had no pending invitation)
        // or failed otherwise (a deadlock with another batch): each on its own, at once.
        _ => {
            let alone = jobs.into_iter().map(|job| async move {
                let result = db
                    .remove_invitations_alone(job.target, &job.user_ids, &job.unique, &job.audit)
                    .await;
                (job.reply, result)
            });
            batcher::each_alone(unreachable, alone).await;
        }
    }
}

/// Runs [`batch_sql`] for `jobs` (two or more, of one kind of target, no user of a target in two).
pub(crate) async fn remove_together(db: &Postgres, jobs: &[Job]) -> Result<()> {
    let mut query = sqlx::query_scalar::<_, bool>(batch_sql(jobs[0].target, jobs.len()));
    let mut listed = 0;
    for job in jobs {
        listed += job.user_ids.len() as i64;
        let entry = &job.audit;
        query = query
            .bind(job.target.id())
            .bind(&job.unique)
            .bind(entry.at.timestamp_millis())
            .bind(&entry.actor_kind)
            .bind(&entry.actor_id)
            .bind(&entry.actor_display)
            .bind(&entry.remote_addr);
    }
    let query = query.bind(listed);
    let done = db.native.run(async |c| query.fetch_one(c).await).await;
    match done {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(PG_ALL_OR_NONE) => {
            Err(StoreError::Database(sqlx::Error::Database(e)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The bulk removals of `n` targets of `kind`'s kind in one statement: per removal `i`, a DELETE
/// of the listed users' pending invitations to its target (`r{i}`) and the INSERT of an audit row
/// per invitation it removed (`a{i}`), as `postgres::community`'s statement for one; then
/// `all_or_none` of what they removed in all against parameter `PARAMETERS * n + 1`, how many
/// users were listed in all (repeats included, so that a repeat undoes the batch). Removal `i`
/// takes parameters `PARAMETERS * i + 1 ..= PARAMETERS * (i + 1)` (see [`PARAMETERS`]). Built once
/// per kind and number of removals.
pub(crate) fn batch_sql(kind: CommunityTarget, n: usize) -> &'static str {
    static TEXTS: OnceLock<[Vec<String>; 2]> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        [CommunityTarget::Group(0), CommunityTarget::Course(0)]
            .map(|kind| (1..=MAX_JOBS).map(|n| build_batch_sql(kind, n)).collect())
    });
    let of_kind = match kind {
        CommunityTarget::Group(_) => &texts[0],
        CommunityTarget::Course(_) => &texts[1],
    };
    &of_kind[n.clamp(1, MAX_JOBS) - 1]
}

fn build_batch_sql(kind: CommunityTarget, n: usize) -> String {
    let col = invitation_column(kind);
    let ctes: Vec<String> = (0..n)
        .map(|i| {
            let p = PARAMETERS * i;
            format!(
                "r{i} AS (DELETE FROM community_invitations WHERE {col} = ${} \
                 AND status = 'PENDING' AND user_id = ANY(${}) RETURNING id, user_id), \
                 a{i} AS (INSERT INTO audit_log ({names}) \
                 SELECT ${}, ${}, ${}, ${}, '{REMOVED}', 'community_invitation', \
                 CAST(r{i}.id AS TEXT), ${}, \
                 '{{\"{}\":' || CAST(${} AS TEXT) || ',\"user\":' || CAST(r{i}.user_id AS TEXT) \
                 || '}}' FROM r{i} ORDER BY r{i}.id)",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                kind.kind(),
                p + 1,
                names = crate::audit::COLUMN_NAMES,
            )
        })
        .collect();
    let counts: Vec<String> = (0..n)
        .map(|i| format!("(SELECT COUNT(*) FROM r{i})"))
        .collect();
    format!(
        "WITH {} SELECT all_or_none({}, ${})",
        ctes.join(", "),
        counts.join(" + "),
        PARAMETERS * n + 1
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A job removing `users` from `target`, audited as `audit`, whose answer nobody reads (also
    /// `community`'s tests).
    pub(crate) fn job_of(target: CommunityTarget, users: &[i64], audit: &AuditEntry) -> Job {
        Job {
            target,
            user_ids: users.to_vec(),
            unique: crate::community::ascending_unique(users),
            audit: audit.clone(),
            reply: oneshot::channel().0,
            queued: Instant::now(),
        }
    }

    fn job(target: CommunityTarget, users: &[i64]) -> Job {
        job_of(target, users, &AuditEntry::operator(chrono::Utc::now()))
    }

    fn targets(jobs: &[Job]) -> Vec<(CommunityTarget, Vec<i64>)> {
        jobs.iter()
            .map(|j| (j.target, j.user_ids.clone()))
            .collect()
    }

    #[test]
    fn a_batch_takes_one_kind_and_each_user_of_a_target_once() {
        use CommunityTarget::{Course, Group};
        let waiting = vec![
            job(Group(1), &[1, 2]),
            job(Course(1), &[3]),
            job(Group(1), &[2, 4]),
            job(Group(2), &[2]),
            job(Group(1), &[5, 5]),
        ];
        let (batch, later) = compatible(waiting);
        assert_eq!(
            targets(&batch),
            vec![
                (Group(1), vec![1, 2]),
                (Group(2), vec![2]),
                (Group(1), vec![5, 5])
            ]
        );
        assert_eq!(
            targets(&later),
            vec![(Course(1), vec![3]), (Group(1), vec![2, 4])]
        );
    }

    #[test]
    fn a_batch_stays_within_one_statement_s_users_but_takes_its_first_job() {
        use CommunityTarget::Group;
        let big: Vec<i64> = (0..IDS_PER_STATEMENT as i64).collect();
        let (batch, later) = compatible(vec![job(Group(1), &big), job(Group(2), &[1])]);
        assert_eq!((batch.len(), later.len()), (1, 1));
    }

    #[test]
    fn the_statement_numbers_every_parameter_once_but_the_targets() {
        for n in [2, MAX_JOBS] {
            let sql = batch_sql(CommunityTarget::Course(0), n);
            assert!(sql.contains("course_id = $1 "));
            let seen = crate::postgres::removals::tests::placeholders(sql);
            let distinct: std::collections::BTreeSet<usize> = seen.iter().copied().collect();
            assert_eq!(distinct, (1..=PARAMETERS * n + 1).collect());
            // Each target twice (its DELETE, its audit rows' detail), every other one once.
            assert_eq!(seen.len(), PARAMETERS * n + 1 + n);
        }
        assert!(batch_sql(CommunityTarget::Group(0), 2)
            .contains("group_id = $8 AND status = 'PENDING' AND user_id = ANY($9)"));
    }
}
