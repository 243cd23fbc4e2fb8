//! PostgreSQL invitation creates, batched: the creates that queue while others run share one
//! statement and one commit.
//!
//! A create on its own is one statement with its audit row (`postgres::invitations`); under load
//! most of its cost around the row is per statement and per commit (the scope versions' trigger,
//! a round trip, a log flush: benchmarks (g) and (h) ran 3,000-3,600 creates a second against
//! 12,000-20,000 batched removals, docs/benchmarks.md). Requests queue for one task
//! (`crate::batcher`), which, as for the removals, takes whatever queued while [`BATCHES`]
//! batches were in flight (the deployment's, split between the replicas creating at once:
//! `removing_replicas`): a batch of one runs the statement of one create; a batch of several
//! runs [`batch_sql`], one INSERT of every invitation, the INSERT of their audit rows and the
//! read of what was written, in one statement. If it fails for any reason but an unreachable
//! database (a uniqueness, foreign-key or check rule broken by one of them, a deadlock with
//! another batch), nothing of it was written and each create runs again on its own, at once, and
//! so gets its own answer: a create that conflicts costs the creates batched with it one undone
//! statement. A batch holds no two creates for the same user of the same scope (one would
//! conflict with the other); the second waits for the next batch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use invites_domain::{Invitation, NewInvitation, ObjectId};
use invites_metrics::BatchHandles;
use sqlx::FromRow;
use tokio::sync::{mpsc, oneshot};

use super::{bind_audit, select_written, Postgres};
use crate::audit::{self, AuditEntry};
use crate::batch_slots::BatchSlots;
use crate::batcher::{self, note_batch, Batching, Unreachable};
use crate::invitations::{audit_row, vanished, InvitationRow, CREATED, INSERT_SQL};
use crate::{Result, StoreError};

/// Most creates per batch.
pub(crate) const MAX_JOBS: usize = 32;
/// Batches in flight at once: one runs its statement while the other's commit waits for the log
/// flush. The deployment's, as `crate::removals::POSTGRES_BATCHES` (`removing_replicas`): two
/// replicas creating at once have one each, else each batch would be half the size.
pub(crate) const BATCHES: usize = 2;
/// Creates waiting at most; callers wait for room beyond that.
const QUEUE: usize = 1024;
/// Parameters of the invitation's row in [`INSERT_SQL`].
const ROW_PARAMETERS: usize = 10;
/// Parameters of one create in [`batch_sql`]: its row's, then its audit row's.
const PARAMETERS: usize = ROW_PARAMETERS + audit::COLUMNS;

/// One requested create: `id` is the new invitation's, `detail` its audit row's.
pub(crate) struct Job {
    pub(crate) id: ObjectId,
    pub(crate) new: NewInvitation,
    pub(crate) audit: AuditEntry,
    pub(crate) detail: serde_json::Value,
    pub(crate) reply: oneshot::Sender<Result<Invitation>>,
    /// When it was queued.
    pub(crate) queued: Instant,
}

/// Starts the batching task over `db`, with `slots` batches in flight, recording its batches in
/// `batches`; it ends when every sender is dropped.
pub(crate) fn start(
    db: Postgres,
    slots: Arc<BatchSlots>,
    batches: BatchHandles,
) -> mpsc::Sender<Job> {
    batcher::start(Creates(db), QUEUE, slots, Some(batches))
}

/// The creates' kind of batch.
struct Creates(Postgres);

impl Batching for Creates {
    type Job = Job;
    const MOST: usize = MAX_JOBS;

    fn queued(job: &Job) -> Instant {
        job.queued
    }

    fn fail(job: Job, error: StoreError) {
        let _ = job.reply.send(Err(error));
    }

    fn split(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
        distinct_users(jobs)
    }

    async fn execute(&self, jobs: Vec<Job>, unreachable: &Unreachable) {
        execute(&self.0, jobs, unreachable).await
    }
}

/// Splits `waiting` (not empty) into a batch, from its first job on, and the jobs for a user of
/// a scope already in it, which wait for the next.
fn distinct_users(waiting: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut users = HashSet::with_capacity(waiting.len());
    waiting.into_iter().partition(|job| {
        users.insert((job.new.org_id, job.new.project_id, job.new.username.clone()))
    })
}

async fn execute(db: &Postgres, jobs: Vec<Job>, unreachable: &Unreachable) {
    if jobs.len() > 1 {
        match create_together(db, &jobs).await {
            Ok(mut written) => {
                note_batch(unreachable, None);
                for job in jobs {
                    let answer = written
                        .remove(&job.id.to_string())
                        .ok_or_else(|| vanished(job.id))
                        .and_then(InvitationRow::decode);
                    let _ = job.reply.send(answer);
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
                tracing::debug!(error = %e, creates = jobs.len(), "batch failed; creating one by one");
            }
        }
    }
    // One create, or a batch that failed: each on its own, at once.
    let alone = jobs.into_iter().map(|job| async move {
        let result = db
            .create_invitation(job.id, &job.new, &job.audit, &job.detail)
            .await;
        (job.reply, result)
    });
    let answers = futures_util::future::join_all(alone).await;
    let away = answers
        .iter()
        .find_map(|(_, result)| result.as_ref().err().filter(|e| e.unreachable()));
    note_batch(unreachable, away);
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
}

/// Runs [`batch_sql`] for `jobs` (two or more, no user of a scope in two); the rows written, by
/// id.
async fn create_together(db: &Postgres, jobs: &[Job]) -> Result<HashMap<String, InvitationRow>> {
    let audits: Vec<_> = jobs
        .iter()
        .map(|job| audit_row(&job.audit, CREATED, job.id, &job.detail))
        .collect();
    let mut query = sqlx::query(batch_sql(jobs.len()));
    for (job, audit) in jobs.iter().zip(&audits) {
        query = bind_audit(
            super::invitations::bind_new(query, job.id, &job.new, job.audit.at),
            audit,
        );
    }
    let rows = db.native.run(async |c| query.fetch_all(c).await).await?;
    rows.iter()
        .map(|r| {
            let row = InvitationRow::from_row(r)?;
            Ok((row.id.clone(), row))
        })
        .collect()
}

/// The creates of `n` invitations in one statement: one INSERT of their rows (`written`), the
/// INSERT of the audit row of each, in request order, joined on the invitation it names, and the
/// invitations as written ([`select_written`]). Create `i` takes parameters `PARAMETERS * i + 1
/// ..= PARAMETERS * (i + 1)`: its row's, as [`INSERT_SQL`] numbers them, then its audit row's
/// ([`bind_audit`]). Built once per number of creates.
pub(crate) fn batch_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| (1..=MAX_JOBS).map(build_batch_sql).collect());
    &texts[n.clamp(1, MAX_JOBS) - 1]
}

fn build_batch_sql(n: usize) -> String {
    let (insert, row) = INSERT_SQL
        .split_once(" VALUES ")
        .expect("INSERT_SQL has a VALUES list");
    let rows: Vec<String> = (0..n).map(|i| shifted(row, PARAMETERS * i)).collect();
    let audits: Vec<String> = (0..n)
        .map(|i| {
            let first = PARAMETERS * i + ROW_PARAMETERS + 1;
            format!("({i}, {})", crate::placeholders(first, audit::COLUMNS))
        })
        .collect();
    format!(
        "WITH written AS ({insert} VALUES {} RETURNING *), audited AS (INSERT INTO audit_log \
         ({names}) SELECT {selected} FROM (VALUES {}) AS a (n, {names}) \
         JOIN written ON written.id = a.target_id ORDER BY a.n) {}",
        rows.join(", "),
        audits.join(", "),
        select_written(),
        names = audit::COLUMN_NAMES,
        selected = audit::COLUMN_NAMES
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// `text` with every `$k` placeholder made `$(k + by)`.
fn shifted(text: &str, by: usize) -> String {
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
mod tests {
    use super::*;
    use crate::postgres::removals::tests::placeholders;

    fn job(org: ObjectId, project: Option<ObjectId>, username: &str) -> Job {
        let audit = AuditEntry::operator(chrono::Utc::now());
        Job {
            id: ObjectId::generate(audit.at.timestamp()),
            new: NewInvitation {
                org_id: org,
                project_id: project,
                username: username.to_owned(),
                inviter_username: "admin@example.com".to_owned(),
                roles: vec![],
                team_ids: vec![],
                group_role_assignments: vec![],
            },
            audit,
            detail: serde_json::json!({}),
            reply: oneshot::channel().0,
            queued: Instant::now(),
        }
    }

    #[test]
    fn a_batch_takes_each_user_of_a_scope_once() {
        let (org, other, project) = (
            ObjectId::generate(1),
            ObjectId::generate(2),
            ObjectId::generate(3),
        );
        let waiting = vec![
            job(org, None, "a"),
            job(org, None, "b"),
            job(org, None, "a"),
            job(other, None, "a"),
            job(org, Some(project), "a"),
            job(org, Some(project), "a"),
        ];
        let (batch, later) = distinct_users(waiting);
        let scopes = |jobs: &[Job]| -> Vec<(ObjectId, Option<ObjectId>, String)> {
            jobs.iter()
                .map(|j| (j.new.org_id, j.new.project_id, j.new.username.clone()))
                .collect()
        };
        assert_eq!(
            scopes(&batch),
            vec![
                (org, None, "a".to_owned()),
                (org, None, "b".to_owned()),
                (other, None, "a".to_owned()),
                (org, Some(project), "a".to_owned()),
            ]
        );
        assert_eq!(
            scopes(&later),
            vec![
                (org, None, "a".to_owned()),
                (org, Some(project), "a".to_owned())
            ]
        );
    }

    #[test]
    fn the_statement_numbers_every_parameter_once() {
        for n in [2, MAX_JOBS] {
            let mut seen = placeholders(batch_sql(n));
            seen.sort_unstable();
            assert_eq!(seen, (1..=PARAMETERS * n).collect::<Vec<_>>());
        }
        let sql = batch_sql(2);
        // The second create's row takes $20..$29, its audit row $30..$38.
        assert!(sql
            .contains("($20, $21, $22, $23, $24, $25, $26, $27, 'PENDING', $28, $29) RETURNING *"));
        assert!(sql.contains("(1, $30, $31, $32, $33, $34, $35, $36, $37, $38)"));
        assert!(sql.ends_with(&select_written()));
    }

    /// What `execute` answered each of `jobs` (run as one batch), as (username, created or why
    /// not).
    async fn run_batch(db: &Postgres, jobs: Vec<Job>) -> Vec<Result<Invitation>> {
        let mut answers = Vec::new();
        let mut sent = Vec::new();
        for mut job in jobs {
            let (reply, answer) = oneshot::channel();
            job.reply = reply;
            answers.push(answer);
            sent.push(job);
        }
        execute(db, sent, &Unreachable::default()).await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await.expect("every job is answered"));
        }
        got
    }

    /// A batch is one statement (its rows share a transaction id); one that fails, here on a
    /// user already invited and on an organization that does not exist, writes nothing and runs
    /// each create alone, each with its own answer.
    #[tokio::test]
    async fn a_batch_is_one_statement_and_a_failed_one_runs_each_create_alone() {
        let (store, _dir) = crate::test_util::fresh().await;
        let crate::Engine::Postgres(db) = &store.engine else {
            return;
        };
        let now = chrono::Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "web", now).await.unwrap();
        let batch = vec![
            job(org.id, None, "a@example.com"),
            job(org.id, Some(project.id), "a@example.com"),
            job(org.id, None, "b@example.com"),
        ];
        let ids: Vec<String> = batch.iter().map(|j| j.id.to_string()).collect();
        let created = run_batch(db, batch).await;
        let created: Vec<Invitation> = created.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            created.iter().map(|i| i.id.to_string()).collect::<Vec<_>>(),
            ids
        );
        assert_eq!(created[1].project_name.as_deref(), Some("web"));
        assert!(created.iter().all(|i| i.org_name == "Acme"));
        let transactions: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT CAST(xmin AS TEXT)) FROM invitations WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(db.native.inner())
        .await
        .unwrap();
        assert_eq!(transactions, 1, "one statement wrote the batch");
        let audited = || async {
            sqlx::query_as::<_, (String, String)>(
                "SELECT target_id, detail FROM audit_log WHERE action = $1 ORDER BY id",
            )
            .bind(CREATED)
            .fetch_all(db.native.inner())
            .await
            .unwrap()
        };
        let rows = audited().await;
        assert_eq!(
            rows.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            ids,
            "an audit row each, in request order"
        );
        // A user invited already, and an organization that does not exist.
        let failing = vec![
            job(org.id, None, "c@example.com"),
            job(org.id, None, "a@example.com"),
            job(ObjectId::generate(1), None, "d@example.com"),
            job(org.id, Some(project.id), "c@example.com"),
        ];
        let answers = run_batch(db, failing).await;
        assert_eq!(answers[0].as_ref().unwrap().username, "c@example.com");
        assert!(
            matches!(answers[1], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[1]
        );
        assert!(
            matches!(answers[2], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[2]
        );
        assert_eq!(answers[3].as_ref().unwrap().project_id, Some(project.id));
        assert_eq!(
            audited().await.len(),
            5,
            "the two created, each alone, audited"
        );
        let pending = store
            .pending_invitations(crate::InvitationScope::Org(org.id), None)
            .await
            .unwrap();
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn shifting_renumbers_every_placeholder_and_keeps_the_rest() {
        assert_eq!(shifted("($1, 'x', $10)", 19), "($20, 'x', $29)");
        assert_eq!(shifted("no parameters", 5), "no parameters");
    }
}
