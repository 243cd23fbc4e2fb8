//! PostgreSQL invitation writes, batched: the creates (`creates`) or updates (`updates`) that
//! queue while others run share one statement and one commit.
//!
//! A write on its own is one statement with its audit row (`postgres::invitations`); under load
//! most of its cost around the row is per statement and per commit (the scope versions' trigger,
//! a round trip, a log flush: benchmarks (f) to (h) ran 2,800-4,100 writes a second against
//! 12,000-20,000 batched removals, docs/benchmarks.md). Requests of a kind queue for one task
//! (`crate::batcher`), which, as for the removals, takes whatever queued while [`BATCHES`]
//! batches were in flight (the deployment's, split between the replicas running the queue at
//! once: `removing_replicas`): a batch of one runs the write's own statement; a batch of several
//! runs the kind's statement ([`Write::batch_sql`]): the rows' write, the INSERT of their audit
//! rows joined on what it wrote, and the invitations as written. If it fails for any reason but
//! an unreachable database (a uniqueness, foreign-key or check rule broken by one of them, a
//! deadlock with another batch), nothing of it was written and each write runs again on its own,
//! at once, and so gets its own answer: a write that fails costs the writes batched with it one
//! undone statement. A batch holds no two writes of the same key ([`Write::key`]: a user of a
//! scope for creates, an invitation for updates); the second waits for the next batch. Its rows
//! are bound in id order, so that two batches lock the rows they share in the same order.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Instant;

use invites_domain::ObjectId;
use invites_metrics::BatchHandles;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::FromRow;
use tokio::sync::{mpsc, oneshot};

use super::{bind_audit, Postgres};
use crate::audit::AuditRow;
use crate::batch_slots::BatchSlots;
use crate::batcher::{self, note_batch, Batching, Unreachable};
use crate::invitations::InvitationRow;
use crate::{Result, StoreError};

/// Batches in flight at once: one runs its statement while the other's commit waits for the log
/// flush. The deployment's, as `crate::removals::POSTGRES_BATCHES` (`removing_replicas`): two
/// replicas writing at once have one each, else each batch would be half the size.
pub(crate) const BATCHES: usize = 2;
/// Writes waiting at most per queue; callers wait for room beyond that.
const QUEUE: usize = 1024;

/// A query of sqlx's PostgreSQL driver, as the writes bind theirs.
pub(crate) type PgQuery<'q> = Query<'q, sqlx::Postgres, PgArguments>;

/// A kind of invitation write that batches.
pub(crate) trait Write: Send + Sync + 'static {
    /// What the caller is answered.
    type Answer: Send + 'static;
    /// What two writes of one batch must not share.
    type Key: Eq + Hash;
    /// Most writes per batch.
    const MOST: usize;
    /// The invitation it writes.
    fn id(&self) -> ObjectId;
    /// What two writes of one batch must not share.
    fn key(&self) -> Self::Key;
    /// Its audit row.
    fn audit(&self) -> AuditRow<'_>;
    /// The statement of `n` writes (2 to [`Write::MOST`]): write `i` takes the parameters
    /// `PARAMETERS * i + 1 ..= PARAMETERS * (i + 1)`, its row's ([`Write::bind`]) and then its
    /// audit row's; it returns the invitations written, as [`super::select_written`] reads them.
    fn batch_sql(n: usize) -> &'static str;
    /// `query` with this write's row values bound.
    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q>;
    /// The write on its own, in its own statement.
    fn alone(
        &self,
        db: &Postgres,
    ) -> impl std::future::Future<Output = Result<Self::Answer>> + Send;
    /// The answer of a write of a batch that committed, from the row it wrote if any.
    fn answer(&self, written: Option<InvitationRow>) -> Result<Self::Answer>;
}

/// One queued write.
pub(crate) struct Job<W: Write> {
    pub(crate) write: W,
    pub(crate) reply: oneshot::Sender<Result<W::Answer>>,
    /// When it was queued.
    pub(crate) queued: Instant,
}

/// Starts the batching task of `W` over `db`, with `slots` batches in flight, recording its
/// batches in `batches`; it ends when every sender is dropped.
pub(crate) fn start<W: Write>(
    db: Postgres,
    slots: Arc<BatchSlots>,
    batches: BatchHandles,
) -> mpsc::Sender<Job<W>> {
    batcher::start(
        Writes::<W>(db, std::marker::PhantomData),
        QUEUE,
        slots,
        Some(batches),
    )
}

/// Queues `write` on `queue` and waits for its answer.
pub(crate) async fn send<W: Write>(queue: &mpsc::Sender<Job<W>>, write: W) -> Result<W::Answer> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        write,
        reply,
        queued: Instant::now(),
    };
    // The queue stops only with the store: as a pool that was closed.
    let closed = || StoreError::Database(sqlx::Error::PoolClosed);
    queue.send(job).await.map_err(|_| closed())?;
    answer.await.map_err(|_| closed())?
}

/// The batches of one kind of write.
struct Writes<W>(Postgres, std::marker::PhantomData<fn() -> W>);

impl<W: Write> Batching for Writes<W> {
    type Job = Job<W>;
    const MOST: usize = W::MOST;

    fn queued(job: &Job<W>) -> Instant {
        job.queued
    }

    fn fail(job: Job<W>, error: StoreError) {
        let _ = job.reply.send(Err(error));
    }

    fn split(jobs: Vec<Job<W>>) -> (Vec<Job<W>>, Vec<Job<W>>) {
        distinct(jobs)
    }

    async fn execute(&self, jobs: Vec<Job<W>>, unreachable: &Unreachable) {
        execute(&self.0, jobs, unreachable).await
    }
}

/// Splits `waiting` (not empty) into a batch, from its first job on, and the jobs whose key is
/// already in it, which wait for the next.
pub(crate) fn distinct<W: Write>(waiting: Vec<Job<W>>) -> (Vec<Job<W>>, Vec<Job<W>>) {
    let mut keys = HashSet::with_capacity(waiting.len());
    waiting
        .into_iter()
        .partition(|job| keys.insert(job.write.key()))
}

/// Runs `jobs` as one batch and answers each.
pub(crate) async fn execute<W: Write>(
    db: &Postgres,
    mut jobs: Vec<Job<W>>,
    unreachable: &Unreachable,
) {
    if jobs.len() > 1 {
        jobs.sort_by_key(|job| job.write.id());
        match together(db, &jobs).await {
            Ok(mut written) => {
                note_batch(unreachable, None);
                for job in jobs {
                    let row = written.remove(&job.write.id().to_string());
                    let _ = job.reply.send(job.write.answer(row));
                }
                return;
            }
            Err(e) if e.unreachable() => {
                note_batch(unreachable, Some(&e));
                for job in jobs {
                    let _ = job.reply.send(Err(e.duplicate()));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = jobs.len(), "batch failed; writing one by one");
            }
        }
    }
    // One write, or a batch that failed: each on its own, at once.
    let alone = jobs.into_iter().map(|job| async move {
        let result = job.write.alone(db).await;
        (job.reply, result)
    });
    batcher::each_alone(unreachable, alone).await;
}

/// Runs `W`'s statement for `jobs` (two or more, no key twice); the rows written, by id.
async fn together<W: Write>(
    db: &Postgres,
    jobs: &[Job<W>],
) -> Result<HashMap<String, InvitationRow>> {
    let audits: Vec<AuditRow<'_>> = jobs.iter().map(|job| job.write.audit()).collect();
    let mut query = sqlx::query(W::batch_sql(jobs.len()));
    for (job, audit) in jobs.iter().zip(&audits) {
        query = bind_audit(job.write.bind(query), audit);
    }
    let rows = db.native.run(async |c| query.fetch_all(c).await).await?;
    rows.iter()
        .map(|r| {
            let row = InvitationRow::from_row(r)?;
            Ok((row.id.clone(), row))
        })
        .collect()
}

/// The audit rows of `n` writes, each joined on the invitation it names among the statement's
/// `written` rows, in the statement's order: the CTE that follows a write's `written` (write `i`'s
/// audit row takes the [`crate::audit::COLUMNS`] parameters from `PARAMETERS * i + first`).
pub(crate) fn audited_cte(n: usize, parameters: usize, first: usize) -> String {
    let names = crate::audit::COLUMN_NAMES;
    let audits: Vec<String> = (0..n)
        .map(|i| {
            let p = parameters * i + first;
            format!("({i}, {})", crate::placeholders(p, crate::audit::COLUMNS))
        })
        .collect();
    let selected: Vec<String> = names.split(", ").map(|c| format!("a.{c}")).collect();
    format!(
        "audited AS (INSERT INTO audit_log ({names}) SELECT {} FROM (VALUES {}) AS a (n, {names}) \
         JOIN written ON written.id = a.target_id ORDER BY a.n)",
        selected.join(", "),
        audits.join(", "),
    )
}

/// `text` with every `$k` placeholder made `$(k + by)`.
pub(crate) fn shifted(text: &str, by: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let k: usize = rest[..digits].parse().expect("a number after $");
        out.push_str(&(k + by).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `execute` answered each of `writes`, run as one batch.
    pub(crate) async fn run_batch<W: Write>(
        db: &Postgres,
        writes: Vec<W>,
    ) -> Vec<Result<W::Answer>> {
        let mut answers = Vec::new();
        let mut jobs = Vec::new();
        for write in writes {
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            jobs.push(Job {
                write,
                reply,
                queued: Instant::now(),
            });
        }
        execute(db, jobs, &Unreachable::default()).await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await.expect("every job is answered"));
        }
        got
    }

    /// How many transactions wrote the invitations `ids` (a batch: one).
    pub(crate) async fn transactions(db: &Postgres, ids: &[String]) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(DISTINCT CAST(xmin AS TEXT)) FROM invitations WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_one(db.native.inner())
        .await
        .unwrap()
    }

    #[test]
    fn shifting_renumbers_every_placeholder_and_keeps_the_rest() {
        assert_eq!(shifted("($1, 'x', $10)", 19), "($20, 'x', $29)");
        assert_eq!(shifted("no parameters", 5), "no parameters");
    }

    #[test]
    fn the_audit_rows_take_their_parameters_after_each_write_s_own() {
        let cte = audited_cte(2, 13, 5);
        assert!(
            cte.contains("(0, $5, $6, $7, $8, $9, $10, $11, $12, $13), (1, $18,"),
            "{cte}"
        );
        assert!(cte.ends_with("JOIN written ON written.id = a.target_id ORDER BY a.n)"));
    }
}
