//! SQLite only: one writer connection on its own thread that commits a batch of write jobs per
//! transaction.
//!
//! Why not sqlx here: sqlx's SQLite driver runs every statement as a round trip between the
//! async task and the connection's worker thread, so a removal (begin, delete, audit, commit)
//! cost four thread hand-offs, and the single writer spent more time waiting for them than
//! writing. This thread runs whole jobs with rusqlite (the same bundled SQLite library) and
//! cached prepared statements: one hand-off in, one out, per job, and one commit per batch.
//!
//! Jobs queue on a channel; the thread takes whatever has queued (up to [`MAX_BATCH`]) while
//! the previous batch was committing, so a transaction carries many jobs under load and one
//! when idle, with no waiting for a batch to fill. A job's result reaches its caller only after
//! the transaction committed.
//!
//! Each job runs as if alone: what it keeps is kept, and a job that fails or asks for its changes
//! to be undone leaves nothing behind while the others in the batch are unaffected. The thread
//! first runs the batch straight through in one transaction, with no savepoints: a savepoint
//! costs SQLite a copy of every page the job touches. Should any job fail or undo, that
//! transaction is rolled back and the batch runs again, each job in its own savepoint (so jobs
//! must be safe to run twice: the second run sees the database as the first did). If the
//! commit itself fails, every job in the batch gets that failure and none of their changes
//! remain.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use invites_metrics::StoreMetrics;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::batch_counts;
use crate::{Result, StoreError};

/// Most jobs per transaction.
const MAX_BATCH: usize = 128;
/// The writer thread's name.
pub(crate) const THREAD: &str = "invites-writer";
/// How long the writer naps between tries of a locked database, and how many tries it makes.
const BUSY_NAP: std::time::Duration = std::time::Duration::from_micros(200);
const BUSY_TRIES: i32 = 25_000;
/// Jobs waiting for the writer at most; callers wait for room beyond that.
const QUEUE: usize = 4096;

/// What a job wants done with its changes.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Keep them (committed with the batch), answer `T`.
    Keep(T),
    /// Undo them all, answer `T`.
    Undo(T),
}

/// How a job's run ended, as the batch sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    Kept,
    /// Undone or failed: its changes must not stay.
    Discarded,
}

/// A job as the thread sees it: run it (possibly twice), later answer with the commit's outcome.
trait Job: Send {
    fn run(&mut self, conn: &Connection) -> Ran;
    fn answer(self: Box<Self>, commit: Option<&rusqlite::Error>);
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<Outcome<T>> + Send,
{
    fn run(&mut self, conn: &Connection) -> Ran {
        // A job that panics (a bug) fails alone: its changes are rolled back with its savepoint,
        // and the thread goes on serving the others.
        let run = std::panic::AssertUnwindSafe(|| (self.work)(conn));
        let outcome = std::panic::catch_unwind(run).unwrap_or_else(|_| {
            tracing::error!("a write job panicked");
            Err(StoreError::Sqlite("the write job failed".into()))
        });
        let (result, ran) = match outcome {
            Ok(Outcome::Keep(t)) => (Ok(t), Ran::Kept),
            Ok(Outcome::Undo(t)) => (Ok(t), Ran::Discarded),
            Err(e) => (Err(e), Ran::Discarded),
        };
        self.result = Some(result);
        ran
    }

    fn answer(self: Box<Self>, commit: Option<&rusqlite::Error>) {
        let result = match (commit, self.result) {
            (Some(e), _) => Err(StoreError::from(e)),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Sqlite("the writer did not run the job".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// The handle to the writer thread; clones share it. The thread ends when every handle is gone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the thread; it opens `path` (which must exist and be migrated before the first job).
    /// Whenever `restart_wanted` is set, the thread restarts the write-ahead log between two
    /// batches and clears it (see `checkpoint`).
    /// Each batch's size and duration are recorded in `metrics`.
    pub(crate) fn start(
        path: PathBuf,
        restart_wanted: Arc<AtomicBool>,
        metrics: StoreMetrics,
    ) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || serve(&path, rx, &restart_wanted, &metrics))?;
        Ok(Writer { jobs })
    }

    /// Jobs sent and not yet taken by the thread.
    pub(crate) fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Runs `work` in the next batch, inside its transaction. `work` says whether its changes
    /// are kept or undone; an error undoes them too. It may be called a second time, after its
    /// first run's changes were rolled back (see the module documentation). The result comes
    /// back once the batch's transaction has committed.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<Outcome<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            reply,
        });
        let gone = || StoreError::Sqlite("the writer thread has stopped".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(super::CONNECTION_PRAGMAS)?;
    // SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so the writer
    // would oversleep a checkpoint's brief hold on the write lock by up to that much; with
    // everything queued behind it. Short naps instead, for the same 5 s in all.
    conn.busy_handler(Some(|attempt| {
        if attempt >= BUSY_TRIES {
            return false;
        }
        std::thread::sleep(BUSY_NAP);
        true
    }))?;
    // Batches of every size have statements of their own (see `removals`).
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn serve(
    path: &Path,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    restart_wanted: &AtomicBool,
    metrics: &StoreMetrics,
) {
    let mut conn = match open(path) {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "the writer cannot open the database");
            None
        }
    };
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        // Reopen after a failure to open (the file may have been unavailable for a moment).
        if conn.is_none() {
            conn = open(path).ok();
        }
        let started = Instant::now();
        let failure = match conn.as_mut() {
            Some(conn) => commit_batch(conn, &mut batch).err(),
            None => Some(rusqlite::Error::InvalidPath(path.to_owned())),
        };
        metrics
            .writer_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.writer_batch_size.observe(batch.len() as f64);
        for job in batch.drain(..) {
            job.answer(failure.as_ref());
        }
        if restart_wanted.swap(false, Ordering::AcqRel) {
            if let Some(conn) = &conn {
                restart_log(conn);
            }
        }
    }
}

/// Copies what is left of the log into the database and starts the log over.
fn restart_log(conn: &Connection) {
    let started = Instant::now();
    let result = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    });
    tracing::debug!(?result, took = ?started.elapsed(), "write-ahead log restarted by the writer");
}

/// Runs the batch's jobs in one transaction and commits it, with the page-count changes of the
/// jobs kept (`batch_counts`) written just before the commit; should that write fail, every job
/// gets the failure, as when the commit fails.
fn commit_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    batch_counts::clear();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if batch
        .iter_mut()
        .all(|job| counted(job.run(&tx)) == Ran::Kept)
    {
        batch_counts::write(&tx)?;
        return tx.commit();
    }
    // Some job failed or undid its changes, which may be mixed with the others': start over,
    // each job in its own savepoint.
    tx.rollback()?;
    batch_counts::clear();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        step(&tx, "SAVEPOINT job")?;
        if counted(job.run(&tx)) == Ran::Discarded {
            step(&tx, "ROLLBACK TO job")?;
        }
        step(&tx, "RELEASE job")?;
    }
    batch_counts::write(&tx)?;
    tx.commit()
}

/// Keeps or drops the page-count changes of the job that just `ran`.
fn counted(ran: Ran) -> Ran {
    match ran {
        Ran::Kept => batch_counts::job_kept(),
        Ran::Discarded => batch_counts::job_discarded(),
    }
    ran
}

/// Runs a statement without parameters or rows, prepared once.
fn step(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh_sqlite;

    async fn sqlite_writer() -> (crate::Store, Writer, tempfile::TempDir) {
        let (store, url, dir) = fresh_sqlite().await;
        let writer =
            Writer::start(PathBuf::from(url), Arc::default(), StoreMetrics::default()).unwrap();
        (store, writer, dir)
    }

    #[tokio::test]
    async fn the_writer_restarts_the_log_when_asked() {
        let (store, url, _dir) = fresh_sqlite().await;
        // No background checkpointer: with nothing else copying the log, it can only start over
        // through the writer's restart.
        store.close().await;
        drop(store);
        let wal = PathBuf::from(format!("{url}-wal"));
        // The log's header counts restarts (its "checkpoint sequence number", bytes 12..16).
        let restarts = || {
            let header = std::fs::read(&wal).unwrap();
            u32::from_be_bytes(header[12..16].try_into().unwrap())
        };
        let wanted = Arc::new(AtomicBool::new(false));
        let writer = Writer::start(
            PathBuf::from(&url),
            Arc::clone(&wanted),
            StoreMetrics::default(),
        )
        .unwrap();
        for i in 0..300 {
            writer.run(insert_org(format!("{i}"), true)).await.unwrap();
        }
        let before = restarts();
        writer.run(insert_org("1000".into(), true)).await.unwrap();
        assert_eq!(restarts(), before, "nothing restarts the log unasked");
        wanted.store(true, Ordering::Release);
        writer.run(insert_org("1001".into(), true)).await.unwrap();
        // The restart runs after that batch's answers went out; the next commit starts the log
        // over.
        writer.run(insert_org("1002".into(), true)).await.unwrap();
        assert!(!wanted.load(Ordering::Acquire), "the request was taken");
        assert!(restarts() > before, "the log started over");
        let store = crate::Store::open(&url).await.unwrap();
        assert_eq!(count(&store).await, 303);
    }

    async fn count(store: &crate::Store) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
            .fetch_one(store.pool())
            .await
            .unwrap();
        n
    }

    fn insert_org(name: String, keep: bool) -> impl FnMut(&Connection) -> Result<Outcome<()>> {
        move |conn| {
            conn.execute(
                "INSERT INTO orgs (id, name, created_at) VALUES (printf('%024x', ?1), ?1, 0)",
                [&name],
            )?;
            Ok(if keep {
                Outcome::Keep(())
            } else {
                Outcome::Undo(())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_keep_what_they_commit_and_fail_alone() {
        let (store, writer, _dir) = sqlite_writer().await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                match i % 10 {
                    // Fails: the same id twice violates the primary key.
                    0 => {
                        writer
                            .run(move |conn| {
                                insert_org(format!("{}", 100_000 + i), true)(conn)?;
                                Err::<Outcome<()>, _>(StoreError::NotFound("made up".into()))
                            })
                            .await
                    }
                    // Runs but does not commit its savepoint.
                    1 => {
                        writer
                            .run(insert_org(format!("{}", 200_000 + i), false))
                            .await
                    }
                    _ => writer.run(insert_org(format!("{i}"), true)).await,
                }
            }));
        }
        let mut failed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        assert_eq!(count(&store).await, 160);
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_the_writer_goes_on() {
        let (store, writer, _dir) = sqlite_writer().await;
        let panicking = writer
            .run(|conn| -> Result<Outcome<()>> {
                conn.execute(
                    "INSERT INTO orgs (id, name, created_at) VALUES (printf('%024x', 1), 'p', 0)",
                    [],
                )?;
                panic!("a bug in a job, its changes half made")
            })
            .await;
        assert!(
            matches!(panicking, Err(StoreError::Sqlite(_))),
            "{panicking:?}"
        );
        writer.run(insert_org("2".into(), true)).await.unwrap();
        assert_eq!(
            count(&store).await,
            1,
            "the panicking job's row was rolled back"
        );
    }

    #[tokio::test]
    async fn a_constraint_violation_is_a_conflict() {
        let (_store, writer, _dir) = sqlite_writer().await;
        writer.run(insert_org("x".into(), true)).await.unwrap();
        let again = writer.run(insert_org("x".into(), true)).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }
}

#[cfg(test)]
mod batch_tests {
    //! `commit_batch` driven directly, so a test decides what one batch holds.
    use super::*;
    use crate::test_util::fresh_sqlite;
    use std::sync::atomic::AtomicUsize;

    type Runs = Arc<AtomicUsize>;

    /// A job that inserts organization `name`, counts its runs in `runs` and ends as `end` says.
    fn job(
        name: &str,
        end: fn() -> Result<Outcome<()>>,
        runs: &Runs,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<()>>) {
        let (reply, answer) = oneshot::channel();
        let (name, runs) = (name.to_owned(), Arc::clone(runs));
        let work = move |conn: &Connection| {
            runs.fetch_add(1, Ordering::SeqCst);
            conn.execute(
                "INSERT INTO orgs (id, name, created_at) VALUES (printf('%024x', ?1), ?1, 0)",
                [&name],
            )?;
            end()
        };
        let job: Box<dyn Job> = Box::new(Pending {
            work,
            result: None,
            reply,
        });
        (job, answer)
    }

    fn keep() -> Result<Outcome<()>> {
        Ok(Outcome::Keep(()))
    }
    fn undo() -> Result<Outcome<()>> {
        Ok(Outcome::Undo(()))
    }
    fn fail() -> Result<Outcome<()>> {
        Err(StoreError::NotFound("made up".into()))
    }

    /// Runs one batch of `ends` (job i inserts organization "i") and returns each job's runs, each
    /// job's answer and the organizations left.
    async fn batch(ends: &[fn() -> Result<Outcome<()>>]) -> (Vec<usize>, Vec<bool>, Vec<String>) {
        let (_store, url, _dir) = fresh_sqlite().await;
        let mut conn = open(Path::new(&url)).unwrap();
        let runs: Vec<Runs> = ends.iter().map(|_| Runs::default()).collect();
        let (mut jobs, answers): (Vec<_>, Vec<_>) = ends
            .iter()
            .zip(&runs)
            .enumerate()
            .map(|(i, (end, runs))| job(&i.to_string(), *end, runs))
            .unzip();
        commit_batch(&mut conn, &mut jobs).unwrap();
        for job in jobs {
            job.answer(None);
        }
        let mut answered = Vec::new();
        for answer in answers {
            answered.push(answer.await.unwrap().is_ok());
        }
        let mut names: Vec<String> = conn
            .prepare("SELECT name FROM orgs ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        names.sort();
        let runs = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        (runs, answered, names)
    }

    #[tokio::test]
    async fn a_batch_that_keeps_everything_runs_each_job_once() {
        let (runs, answered, names) = batch(&[keep, keep, keep]).await;
        assert_eq!(runs, [1, 1, 1], "no second pass");
        assert_eq!(answered, [true, true, true]);
        assert_eq!(names, ["0", "1", "2"]);
    }

    #[tokio::test]
    async fn an_undo_or_a_failure_reruns_the_batch_and_removes_only_its_own_changes() {
        let (runs, answered, names) = batch(&[keep, undo, keep, fail, keep]).await;
        // The first pass stops at the first job that undoes; the second runs everything.
        assert_eq!(runs, [2, 2, 1, 1, 1]);
        assert_eq!(answered, [true, true, true, false, true]);
        assert_eq!(
            names,
            ["0", "2", "4"],
            "the undone and the failed rows are gone"
        );
    }
}
