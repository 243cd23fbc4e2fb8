//! The loop of a batching queue, one for the three kinds of batch: removals (`removals`),
//! community bulk removals (`postgres::bulk_removals`) and Digest nonce counts (`nonce_counts`).
//!
//! Requests queue on a channel for one task. The task takes a slot for one more batch in flight
//! ([`BatchSlots`]) first, then whatever has queued meanwhile, up to the kind's most, and runs
//! it on a task of its own, so under load a batch carries many requests and when idle it carries
//! one, with no waiting for a batch to fill. The kind decides what of the gathered requests can
//! run together ([`Batching::split`]); the rest waits for the next batch, ahead of what queues
//! later. While the database is away, a request queued before a batch found it away gets that
//! failure at once ([`answer_stale`]): waiting for it once more would take the request past the
//! 5 s in which a request must be answered during an outage (a pool's acquire timeout per
//! batch).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use invites_metrics::BatchHandles;
use tokio::sync::{mpsc, oneshot};

use crate::batch_slots::BatchSlots;
use crate::{Result, StoreError};

/// A kind of batch: its jobs, how many of them one batch takes, and how a batch runs.
pub(crate) trait Batching: Send + Sync + 'static {
    /// One queued request, with where its answer goes.
    type Job: Send + 'static;
    /// Most jobs per batch.
    const MOST: usize;
    /// When `job` was queued.
    fn queued(job: &Self::Job) -> Instant;
    /// Answers `job` with `error` without running it.
    fn fail(job: Self::Job, error: StoreError);
    /// Splits the jobs gathered (not empty) into the batch to run now, which takes the first,
    /// and the jobs that wait for the next batch.
    fn split(jobs: Vec<Self::Job>) -> (Vec<Self::Job>, Vec<Self::Job>) {
        (jobs, Vec::new())
    }
    /// Runs `batch` and answers each of its jobs, noting in `unreachable` how it ended
    /// ([`note_batch`]).
    fn execute(
        &self,
        batch: Vec<Self::Job>,
        unreachable: &Unreachable,
    ) -> impl Future<Output = ()> + Send;
}

/// Starts the batching task of `kind`, with room for `queue` jobs waiting (callers wait for room
/// beyond that) and `slots` batches in flight, recording each batch's size and time in
/// `metrics`; it ends when every sender is dropped.
pub(crate) fn start<B: Batching>(
    kind: B,
    queue: usize,
    slots: Arc<BatchSlots>,
    metrics: Option<BatchHandles>,
) -> mpsc::Sender<B::Job> {
    let (tx, rx) = mpsc::channel(queue);
    tokio::spawn(run(Arc::new(kind), rx, slots, metrics));
    tx
}

async fn run<B: Batching>(
    kind: Arc<B>,
    mut rx: mpsc::Receiver<B::Job>,
    slots: Arc<BatchSlots>,
    metrics: Option<BatchHandles>,
) {
    let unreachable: Unreachable = Arc::default();
    let mut queued: Vec<B::Job> = Vec::with_capacity(B::MOST);
    let mut carried: Vec<B::Job> = Vec::new();
    loop {
        // Room for one more batch first: what queues meanwhile joins it.
        let permit = slots.acquire().await;
        if carried.is_empty() && rx.recv_many(&mut queued, B::MOST).await == 0 {
            return;
        }
        let mut waiting = std::mem::take(&mut carried);
        waiting.append(&mut queued);
        while waiting.len() < B::MOST {
            match rx.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        let waiting = answer_stale(&unreachable, waiting, B::queued, B::fail);
        if waiting.is_empty() {
            continue;
        }
        slots.ran();
        let (batch, later) = B::split(waiting);
        carried = later;
        let (kind, unreachable, metrics) =
            (Arc::clone(&kind), Arc::clone(&unreachable), metrics.clone());
        tokio::spawn(async move {
            let (started, jobs) = (Instant::now(), batch.len());
            kind.execute(batch, &unreachable).await;
            if let Some(metrics) = metrics {
                metrics.record(jobs, started.elapsed());
            }
            drop(permit);
        });
    }
}

/// The last batch's failure to reach the database (away, or every connection busy), and when it
/// ended; None once a batch got through. One per queue.
pub(crate) type Unreachable = Arc<std::sync::Mutex<Option<(Instant, StoreError)>>>;

/// Records how a batch ended: `error`, if it failed to reach the database, with the time now;
/// else nothing (the database was reached, or the failure was of another kind).
pub(crate) fn note_batch(unreachable: &Unreachable, error: Option<&StoreError>) {
    *unreachable.lock().unwrap_or_else(|e| e.into_inner()) = error
        .filter(|e| e.unreachable())
        .map(|e| (Instant::now(), e.duplicate()));
}

/// Runs the jobs of a batch each on its own, at once (`alone`: each job's run, ending with where
/// its answer goes and the answer), notes in `unreachable` whether any found the database away,
/// and answers each.
pub(crate) async fn each_alone<T>(
    unreachable: &Unreachable,
    alone: impl IntoIterator<Item = impl Future<Output = (oneshot::Sender<Result<T>>, Result<T>)>>,
) {
    let answers = futures_util::future::join_all(alone).await;
    let away = answers
        .iter()
        .find_map(|(_, result)| result.as_ref().err().filter(|e| e.unreachable()));
    note_batch(unreachable, away);
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
}

/// Answers the jobs of `waiting` queued (`queued`) before the last failure to reach the database
/// with that failure (`fail`), and returns the others.
pub(crate) fn answer_stale<J>(
    unreachable: &Unreachable,
    waiting: Vec<J>,
    queued: impl Fn(&J) -> Instant,
    fail: impl Fn(J, StoreError),
) -> Vec<J> {
    let failed = unreachable
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|(at, e)| (*at, e.duplicate()));
    let Some((at, e)) = failed else {
        return waiting;
    };
    let (stale, fresh): (Vec<J>, Vec<J>) = waiting.into_iter().partition(|job| queued(job) < at);
    for job in stale {
        fail(job, e.duplicate());
    }
    fresh
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::{oneshot, Semaphore};

    use super::*;

    #[test]
    fn what_queued_before_the_database_was_found_away_gets_that_answer() {
        let unreachable: Unreachable = Arc::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let failed = std::sync::Mutex::new(Vec::new());
        let fail = |job: (u64, Instant), e: StoreError| {
            assert!(e.unreachable());
            failed.lock().unwrap().push(job.0);
        };
        // No failure yet: every job goes on.
        let jobs = vec![(1, at(0)), (2, at(10))];
        let kept = answer_stale(&unreachable, jobs.clone(), |j| j.1, fail);
        assert_eq!(kept, jobs);
        // A batch found the database away at 5 ms: what queued before is answered, not retried.
        *unreachable.lock().unwrap() = Some((at(5), StoreError::Busy));
        let kept = answer_stale(&unreachable, jobs, |j| j.1, fail);
        assert_eq!(kept.iter().map(|j| j.0).collect::<Vec<_>>(), [2]);
        assert_eq!(*failed.lock().unwrap(), [1]);
    }

    #[test]
    fn only_a_failure_to_reach_the_database_is_noted_and_one_that_got_through_clears_it() {
        let unreachable: Unreachable = Arc::default();
        note_batch(&unreachable, Some(&StoreError::Busy));
        assert!(unreachable.lock().unwrap().is_some());
        note_batch(&unreachable, None);
        assert!(unreachable.lock().unwrap().is_none());
        note_batch(
            &unreachable,
            Some(&StoreError::Database(sqlx::Error::RowNotFound)),
        );
        assert!(unreachable.lock().unwrap().is_none());
    }

    /// A kind for the loop's test: a job is a number; a batch takes a permit of `gate` (given
    /// by the test), then answers each job with the numbers of its batch. Even and odd numbers
    /// never share a batch.
    struct Parity {
        gate: Arc<Semaphore>,
        running: Arc<AtomicUsize>,
        most_running: Arc<AtomicUsize>,
    }

    type Answer = oneshot::Receiver<Result<Vec<u32>, StoreError>>;
    struct Number(u32, oneshot::Sender<Result<Vec<u32>, StoreError>>, Instant);

    impl Batching for Parity {
        type Job = Number;
        const MOST: usize = 4;
        fn queued(job: &Number) -> Instant {
            job.2
        }
        fn fail(job: Number, error: StoreError) {
            let _ = job.1.send(Err(error));
        }
        fn split(jobs: Vec<Number>) -> (Vec<Number>, Vec<Number>) {
            let parity = jobs[0].0 % 2;
            jobs.into_iter().partition(|job| job.0 % 2 == parity)
        }
        async fn execute(&self, batch: Vec<Number>, _: &Unreachable) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            self.running.fetch_sub(1, Ordering::SeqCst);
            let numbers: Vec<u32> = batch.iter().map(|job| job.0).collect();
            for job in batch {
                let _ = job.1.send(Ok(numbers.clone()));
            }
        }
    }

    #[tokio::test]
    async fn a_batch_gathers_what_queued_while_the_slots_were_busy_and_the_rest_waits_its_turn() {
        let gate = Arc::new(Semaphore::new(0));
        let (running, most_running) = (Arc::new(AtomicUsize::new(0)), Arc::default());
        let kind = Parity {
            gate: Arc::clone(&gate),
            running: Arc::clone(&running),
            most_running: Arc::clone(&most_running),
        };
        let tx = start(kind, 64, BatchSlots::new(1, None), None);
        let send = |n: u32| -> Answer {
            let (reply, answer) = oneshot::channel();
            tx.try_send(Number(n, reply, Instant::now()))
                .expect("room in the queue");
            answer
        };
        // 0 runs alone and holds the only slot; 1 to 10 queue meanwhile.
        let mut answers: Vec<Answer> = vec![send(0)];
        for _ in 0..100 {
            if running.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            running.load(Ordering::SeqCst),
            1,
            "the first batch never ran"
        );
        for n in 1..=10 {
            answers.push(send(n));
        }
        gate.add_permits(5);
        let mut batches = std::collections::BTreeSet::new();
        for answer in answers {
            let batch = tokio::time::timeout(Duration::from_secs(5), answer)
                .await
                .expect("answered")
                .unwrap()
                .unwrap();
            batches.insert(batch);
        }
        // Four at most taken at a time; of them, those of the first one's parity run, the
        // others are carried ahead of what queued after them.
        assert_eq!(
            batches.into_iter().collect::<Vec<_>>(),
            [
                vec![0],
                vec![1, 3],
                vec![2, 4, 6],
                vec![5, 7, 9],
                vec![8, 10]
            ]
        );
        assert_eq!(
            most_running.load(Ordering::SeqCst),
            1,
            "one slot, one batch at a time"
        );
    }
}
