//! Digest nonce counts recorded on PostgreSQL in batches: one multi-row INSERT for whatever has
//! queued, on the relaxed pool (see `Store::record_nonce_count`).
//!
//! Every Digest request records its (nonce, count) before it is served, so that a replay reaching
//! any replica is refused. One INSERT per request made the relaxed pool's two connections a queue
//! under load (benchmark (b): a request waited for a connection, then a round trip, then its
//! removal). Records queue for one task (`batcher`, as the removals do), which takes what has
//! queued (up to [`MAX_BATCH`]) while at most [`IN_FLIGHT`] batches run: under load a statement
//! carries many records, and when idle it carries one, with no waiting for a batch to fill. A
//! record is answered once its batch committed. While the database is away, a record queued
//! before a batch failed to reach it gets that failure at once (a CI run saw 6 s without that:
//! two batches stuck on the pool, then the record's own).

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::batch_slots::BatchSlots;
use crate::batcher::{self, note_batch, Batching, Unreachable};
use crate::postgres::Postgres;
use crate::{placeholders, Result, StoreError};

/// Most records per INSERT: three parameters each.
const MAX_BATCH: usize = 128;
/// Batches in flight at once, for the deployment (each replica recording at once takes an equal
/// share, at least one): the relaxed pool's connections.
const IN_FLIGHT: usize = crate::postgres::RELAXED_CONNECTIONS as usize;
/// Records waiting at most; callers wait for room beyond that.
const QUEUE: usize = 4096;

/// A nonce count to record: the nonce (hex), the count, when the nonce expires (ms), and where
/// the answer goes (true: recorded now; false: recorded before, a replay).
pub(crate) struct Record {
    pub(crate) nonce: String,
    pub(crate) nc: i64,
    pub(crate) expires_ms: i64,
    pub(crate) reply: oneshot::Sender<Result<bool>>,
    /// When it was queued.
    pub(crate) queued: std::time::Instant,
}

/// The batches the queue may have in flight, at most [`IN_FLIGHT`]: the deployment's, shared
/// with the other replicas recording at once (`postgres::removing_replicas`).
pub(crate) fn slots() -> Arc<BatchSlots> {
    BatchSlots::new(IN_FLIGHT, None)
}

/// Starts the batching task over `db`'s relaxed pool, with `slots` batches in flight
/// ([`slots`]); it ends when every sender is dropped.
pub(crate) fn start(db: Postgres, slots: Arc<BatchSlots>) -> mpsc::Sender<Record> {
    batcher::start(NonceCounts(db), QUEUE, slots, None)
}

/// The nonce counts' kind of batch (records of the same count in one batch are told apart by
/// [`insert`]).
struct NonceCounts(Postgres);

impl Batching for NonceCounts {
    type Job = Record;
    const MOST: usize = MAX_BATCH;

    fn queued(record: &Record) -> std::time::Instant {
        record.queued
    }

    fn fail(record: Record, error: StoreError) {
        let _ = record.reply.send(Err(error));
    }

    async fn execute(&self, batch: Vec<Record>, unreachable: &Unreachable) {
        execute(&self.0, batch, unreachable).await
    }
}

/// Records `batch` and answers each record. If the statement fails because the database is away
/// or every connection busy, every record gets that answer at once: tried one after the other,
/// each would wait as long again (a pool's acquire timeout each, minutes for a batch, past the
/// 5 s in which a request must be answered during an outage). If it fails otherwise, each record
/// is tried alone, so that each gets its own outcome.
async fn execute(db: &Postgres, batch: Vec<Record>, unreachable: &Unreachable) {
    let result = insert(db, &batch).await;
    note_batch(unreachable, result.as_ref().err());
    match result {
        Ok(answers) => {
            for (record, answer) in batch.into_iter().zip(answers) {
                let _ = record.reply.send(Ok(answer));
            }
            return;
        }
        Err(e) if e.unreachable() => {
            for record in batch {
                let _ = record.reply.send(Err(e.duplicate()));
            }
            return;
        }
        Err(e) if batch.len() == 1 => {
            let record = batch.into_iter().next().expect("one record");
            let _ = record.reply.send(Err(e));
            return;
        }
        Err(_) => {}
    }
    for record in batch {
        let answer = insert(db, std::slice::from_ref(&record))
            .await
            .map(|answers| answers[0]);
        let _ = record.reply.send(answer);
    }
}

/// One INSERT of `records`' distinct counts; for each record, whether it was the one that
/// recorded its count: false if the count was recorded before, or by an earlier record of the
/// same batch (the same count twice at once: one of them is the replay).
async fn insert(db: &Postgres, records: &[Record]) -> Result<Vec<bool>> {
    let mut seen = HashSet::with_capacity(records.len());
    let first: Vec<bool> = records
        .iter()
        .map(|r| seen.insert((r.nonce.as_str(), r.nc)))
        .collect();
    let distinct: Vec<&Record> = records
        .iter()
        .zip(&first)
        .filter_map(|(r, &first)| first.then_some(r))
        .collect();
    let mut query = sqlx::query_as::<_, (String, i64)>(insert_sql(distinct.len()));
    for r in &distinct {
        query = query.bind(&r.nonce).bind(r.nc).bind(r.expires_ms);
    }
    let inserted: HashSet<(String, i64)> = db
        .relaxed
        .run(async |c| query.fetch_all(c).await)
        .await?
        .into_iter()
        .collect();
    Ok(records
        .iter()
        .zip(first)
        .map(|(r, first)| first && inserted.contains(&(r.nonce.clone(), r.nc)))
        .collect())
}

/// The INSERT of `n` distinct counts, returning those not recorded before. Built once per size.
fn insert_sql(n: usize) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=MAX_BATCH)
            .map(|n| {
                let rows: Vec<String> = (0..n)
                    .map(|i| format!("({})", placeholders(3 * i + 1, 3)))
                    .collect();
                format!(
                    "INSERT INTO digest_nonce_counts (nonce, nc, expires_at) VALUES {} \
                     ON CONFLICT DO NOTHING RETURNING nonce, nc",
                    rows.join(", ")
                )
            })
            .collect()
    });
    &texts[n.clamp(1, MAX_BATCH) - 1]
}

/// Sends `record` to the batching task behind `queue` and waits for its answer.
pub(crate) async fn record(
    queue: &mpsc::Sender<Record>,
    nonce: String,
    nc: i64,
    expires_ms: i64,
) -> Result<bool> {
    let (reply, answer) = oneshot::channel();
    // The queue stops only with the store: as a pool that was closed.
    let closed = || StoreError::Database(sqlx::Error::PoolClosed);
    queue
        .send(Record {
            nonce,
            nc,
            expires_ms,
            reply,
            queued: std::time::Instant::now(),
        })
        .await
        .map_err(|_| closed())?;
    answer.await.map_err(|_| closed())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_has_three_parameters_a_row_and_returns_what_it_recorded() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO digest_nonce_counts (nonce, nc, expires_at) VALUES ($1, $2, $3), \
             ($4, $5, $6) ON CONFLICT DO NOTHING RETURNING nonce, nc"
        );
        assert!(insert_sql(MAX_BATCH).contains(&format!("${})", 3 * MAX_BATCH)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_recorded_at_once_are_each_accepted_once() {
        let (store, _d) = crate::test_util::fresh().await;
        if store.backend() == crate::Backend::Sqlite {
            return; // Nothing is recorded on SQLite (see Store::record_nonce_count).
        }
        // 200 records at once, so that batches form: counts 1..=50 of one nonce, each four
        // times. Each count is accepted exactly once, whichever batch its copies land in.
        let nonce = [3u8; 16];
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let nc = i % 50 + 1;
                    let accepted = store
                        .record_nonce_count(&nonce, nc, 60_000, 0)
                        .await
                        .unwrap();
                    (nc, accepted)
                })
            })
            .collect();
        let mut accepted = std::collections::BTreeMap::<u32, usize>::new();
        for task in tasks {
            let (nc, ok) = task.await.unwrap();
            *accepted.entry(nc).or_default() += usize::from(ok);
        }
        assert_eq!(accepted.len(), 50);
        assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
        // And afterwards each is a replay.
        assert!(!store
            .record_nonce_count(&nonce, 7, 60_000, 0)
            .await
            .unwrap());
        assert!(store
            .record_nonce_count(&nonce, 51, 60_000, 0)
            .await
            .unwrap());
    }
}
