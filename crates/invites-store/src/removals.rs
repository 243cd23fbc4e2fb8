//! Removal of pending Atlas and Ops Manager invitations, batched: many removals share one
//! transaction and one DELETE statement.
//!
//! Requests queue for one task (`batcher`), which takes whatever has queued (up to
//! [`MAX_BATCH`]) while the batches in flight were committing, so under load a transaction
//! carries many removals and when idle it carries one, with no waiting for a batch to fill. On
//! SQLite one batch is in flight at a time (the writer thread runs one transaction at a time
//! anyway); on PostgreSQL up to [`POSTGRES_BATCHES`], each on a connection of its own, so a
//! replica's removals are not bounded by one transaction's round trips and commit flush; those
//! are the deployment's, split between the replicas removing at once
//! (`postgres::removing_replicas`). A batch is one DELETE ... RETURNING of all its ids, one
//! multi-row audit INSERT and one query for the organization-scope misses: on SQLite as one job
//! of the writer thread (`sqlite::removals`), on PostgreSQL as one statement doing all three
//! (`postgres::removals`); the texts and the outcomes are worked out here for both. A removal is
//! answered only after its transaction committed. If a batch fails (a constraint, a trigger, a
//! full disk), its removals are retried one transaction each, so one bad row fails only its own
//! request; if it fails because the database is away or busy, every removal of it gets that
//! answer at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use invites_domain::ObjectId;
use invites_metrics::BatchHandles;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{AuditEntry, AuditRow};
use crate::batch_slots::BatchSlots;
use crate::batcher::{self, note_batch, Batching, Unreachable};
use crate::sqlite::writer::{Outcome, Writer};
use crate::{postgres, sqlite, InvitationScope, Result, Store, StoreError};

/// Most removals per transaction: 3 parameters each in the DELETE, 9 in the audit INSERT (5 on
/// PostgreSQL, which reuses the DELETE's id).
pub(crate) const MAX_BATCH: usize = 64;
/// Removals waiting for the writer at most; callers wait for room beyond that.
const QUEUE: usize = 4096;
/// Batches in flight at once on PostgreSQL, for the deployment (each replica removing at once
/// takes an equal share, at least one: `postgres::removing_replicas`): one runs its statement
/// while another's commit waits for the log flush. One alone left the replica idle during each
/// flush; four made smaller batches, more commits and more processes waiting for the machine's
/// cores: against four, two gave 16-19% more removals in benchmarks (b) and (c) (alternate rounds
/// of both builds, one replica each). A quarter of the native pool, which the other hot paths
/// share. Two batches with the same id are safe: the second waits for the first's row lock and
/// then finds the invitation gone; two batches that lock rows in opposite orders deadlock, and
/// the one PostgreSQL aborts is retried a removal at a time like any failed batch.
pub(crate) const POSTGRES_BATCHES: usize = 2;

/// What happened to one requested removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The pending invitation was removed and the removal audited.
    Removed,
    /// No pending invitation with that id exists in the scope.
    NotFound,
    /// A pending invitation with that id is a project invitation of the organization named as
    /// the scope: it must be removed through its project.
    ProjectInvitation,
}

/// Where batches run.
pub(crate) enum Executor {
    /// SQLite: jobs of the writer thread.
    Writer(Writer),
    /// PostgreSQL: transactions of the native pool.
    Pool(postgres::Postgres),
}

/// One requested removal.
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) scope: InvitationScope,
    pub(crate) id: ObjectId,
    pub(crate) audit: AuditEntry,
}

pub(crate) struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Removal>>,
    /// When it was queued.
    queued: std::time::Instant,
}

/// The batches in flight the queue over `executor` may have, at most: one on SQLite,
/// [`POSTGRES_BATCHES`] on PostgreSQL.
pub(crate) fn slots(executor: &Executor, batches: BatchHandles) -> Arc<BatchSlots> {
    let most = match executor {
        Executor::Writer(_) => 1,
        Executor::Pool(_) => POSTGRES_BATCHES,
    };
    BatchSlots::new(most, Some(batches))
}

/// Starts the batching task over `executor`, with `slots` batches in flight ([`slots`]),
/// recording its batches in `batches`; it ends when every sender is dropped.
pub(crate) fn start(
    executor: Executor,
    slots: Arc<BatchSlots>,
    batches: BatchHandles,
) -> mpsc::Sender<Job> {
    batcher::start(Removals(executor), QUEUE, slots, Some(batches))
}

/// The removals' kind of batch.
struct Removals(Executor);

impl Batching for Removals {
    type Job = Job;
    const MOST: usize = MAX_BATCH;

    fn queued(job: &Job) -> std::time::Instant {
        job.queued
    }

    fn fail(job: Job, error: StoreError) {
        let _ = job.reply.send(Err(error));
    }

    /// The same id twice in one batch would be removed once but reported twice: the later
    /// requests wait for the next batch, where they find nothing, as they would have in turn.
    fn split(jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
        let mut ids = HashSet::with_capacity(jobs.len());
        jobs.into_iter().partition(|job| ids.insert(job.request.id))
    }

    async fn execute(&self, jobs: Vec<Job>, unreachable: &Unreachable) {
        execute(&self.0, jobs, unreachable).await
    }
}

async fn execute(executor: &Executor, jobs: Vec<Job>, unreachable: &Unreachable) {
    let (requests, replies): (Vec<Request>, Vec<_>) =
        jobs.into_iter().map(|job| (job.request, job.reply)).unzip();
    let requests: Arc<[Request]> = requests.into();
    let result = remove_batch(executor, Arc::clone(&requests)).await;
    note_batch(unreachable, result.as_ref().err());
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) if replies.len() == 1 => {
            let reply = replies.into_iter().next().expect("one job");
            let _ = reply.send(Err(e));
        }
        // The database away or every connection busy: one by one, each removal would wait as
        // long again (PostgreSQL: a pool's acquire timeout each, 3 s, so the fourth of a batch
        // answered after 15 s, past the 5 s in which a request must be answered during an
        // outage). Every removal of the batch gets that answer at once, as the nonce counts do.
        Err(e) if e.unreachable() => {
            for reply in replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, removals = replies.len(), "batch failed; removing one by one");
            for (request, reply) in requests.iter().zip(replies) {
                let result = remove_batch(executor, Arc::from([request.clone()]))
                    .await
                    .map(|outcomes| outcomes[0]);
                let _ = reply.send(result);
            }
        }
    }
}

/// Removes the pending invitations of `requests` (distinct ids) in one transaction and audits
/// each removal; returns an outcome per request, in order.
async fn remove_batch(executor: &Executor, requests: Arc<[Request]>) -> Result<Vec<Removal>> {
    #[cfg(feature = "bench-bounds")]
    if crate::bench_bound::current() == Some(crate::bench_bound::Bound::Queued) {
        let n = requests.len();
        return match executor {
            Executor::Writer(writer) => {
                writer
                    .run(move |_| Ok(Outcome::Keep(vec![Removal::Removed; n])))
                    .await
            }
            Executor::Pool(_) => Ok(vec![Removal::Removed; n]),
        };
    }
    match executor {
        Executor::Writer(writer) => {
            writer
                .run(move |conn| sqlite::removals::remove(conn, &requests).map(Outcome::Keep))
                .await
        }
        Executor::Pool(db) => postgres::removals::remove(db, &requests).await,
    }
}

/// Removed where the DELETE returned the id, not found otherwise (refined by the misses query).
pub(crate) fn outcomes(requests: &[Request], removed: &HashSet<String>) -> Vec<Removal> {
    requests
        .iter()
        .map(|r| {
            if removed.contains(&r.id.to_string()) {
                Removal::Removed
            } else {
                Removal::NotFound
            }
        })
        .collect()
}

/// Why the others were not removed: only an organization-scope removal of one of that
/// organization's project invitations differs from "not found". (index, id, organization).
pub(crate) fn org_misses(
    requests: &[Request],
    outcomes: &[Removal],
) -> Vec<(usize, ObjectId, ObjectId)> {
    requests
        .iter()
        .zip(outcomes)
        .enumerate()
        .filter_map(|(i, (r, outcome))| match (r.scope, outcome) {
            (InvitationScope::Org(org), Removal::NotFound) => Some((i, r.id, org)),
            _ => None,
        })
        .collect()
}

/// Marks the misses whose id is a pending project invitation of the named organization.
pub(crate) fn mark_project_invitations(
    outcomes: &mut [Removal],
    misses: &[(usize, ObjectId, ObjectId)],
    owners: &HashMap<String, String>,
) {
    for (i, id, org) in misses {
        if owners.get(&id.to_string()) == Some(&org.to_string()) {
            outcomes[*i] = Removal::ProjectInvitation;
        }
    }
}

/// The audit rows of the removals that happened.
pub(crate) fn audit_rows<'a>(requests: &'a [Request], outcomes: &[Removal]) -> Vec<AuditRow<'a>> {
    requests
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| **outcome == Removal::Removed)
        .map(|(r, _)| audit_row(&r.audit, r.id))
        .collect()
}

/// The DELETE of `n` removals' pending invitations, returning the ids removed. One term per
/// removal; every term has the same shape, so a batch size has one statement text (built once).
pub(crate) fn delete_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=MAX_BATCH)
            .map(|n| {
                let terms: Vec<String> = (0..n).map(|i| matches(3 * i + 1)).collect();
                format!(
                    "DELETE FROM invitations WHERE status = 'PENDING' AND ({}) RETURNING id",
                    terms.join(" OR ")
                )
            })
            .collect()
    });
    &texts[n.clamp(1, MAX_BATCH) - 1]
}

/// The condition a removal matches a pending invitation on, with its three parameters numbered
/// from `first`: the id, the project (project scope) and the organization (organization scope,
/// invitations to no project); see [`scope_columns`]. `$N` placeholders, which SQLite reads by
/// position, so the writer thread and sqlx share it.
fn matches(first: usize) -> String {
    format!(
        "(id = ${} AND (project_id = ${} OR (project_id IS NULL AND org_id = ${})))",
        first,
        first + 1,
        first + 2
    )
}

/// Selects (id, org_id) of the pending project invitations among `n` ids: what tells a removal
/// through an organization's path that the invitation belongs to one of its projects.
pub(crate) fn project_owners_sql(n: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=MAX_BATCH)
            .map(|n| {
                format!(
                    "SELECT id, org_id FROM invitations WHERE status = 'PENDING' \
                     AND project_id IS NOT NULL AND id IN ({})",
                    crate::placeholders(1, n)
                )
            })
            .collect()
    });
    &texts[n.clamp(1, MAX_BATCH) - 1]
}

/// The audit row of a removal.
fn audit_row(entry: &AuditEntry, id: ObjectId) -> AuditRow<'_> {
    AuditRow {
        entry,
        action: "invitation.removed",
        target_kind: "invitation",
        target_id: id.to_string(),
        detail: "{}".to_owned(),
    }
}

/// The (project_id, org_id) a removal matches: a project, or an organization with no project.
/// The other is NULL, which matches nothing.
pub(crate) fn scope_columns(scope: InvitationScope) -> (Option<String>, Option<String>) {
    match scope {
        InvitationScope::Project(p) => (Some(p.to_string()), None),
        InvitationScope::Org(o) => (None, Some(o.to_string())),
    }
}

impl Store {
    /// Removes the pending invitation `id` from `scope` and audits it, committed before this
    /// returns. Removals from all callers are batched into shared transactions (see the module
    /// documentation); the outcome is this removal's alone.
    pub async fn remove_pending_invitation(
        &self,
        scope: InvitationScope,
        id: ObjectId,
        audit: &AuditEntry,
    ) -> Result<Removal> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request: Request {
                scope,
                id,
                audit: audit.clone(),
            },
            reply,
            queued: std::time::Instant::now(),
        };
        // The queue stops only with the store: as a pool that was closed.
        let closed = || StoreError::Database(sqlx::Error::PoolClosed);
        self.removals.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fresh;
    use chrono::Utc;
    use invites_domain::NewInvitation;

    async fn invitations(store: &Store, org: ObjectId, n: usize) -> Vec<ObjectId> {
        invitations_in(store, org, None, n).await
    }

    /// `n` pending invitations of `org`, to `project` if one is named.
    async fn invitations_in(
        store: &Store,
        org: ObjectId,
        project: Option<ObjectId>,
        n: usize,
    ) -> Vec<ObjectId> {
        let a = AuditEntry::operator(Utc::now());
        let mut ids = Vec::new();
        for i in 0..n {
            let new = NewInvitation {
                org_id: org,
                project_id: project,
                username: format!(
                    "{}{i}@example.com",
                    if project.is_some() { "p" } else { "u" }
                ),
                inviter_username: "owner@example.com".into(),
                roles: vec!["ORG_MEMBER".into()],
                team_ids: vec![],
                group_role_assignments: vec![],
            };
            ids.push(store.create_invitation(&new, &a).await.unwrap().id);
        }
        ids
    }

    async fn audit_count(store: &Store, action: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(store.pool())
            .await
            .unwrap();
        n
    }

    /// Removes each of `ids` from `org`'s invitations, all at once from separate tasks.
    async fn remove_at_once(
        store: &Store,
        org: ObjectId,
        ids: &[ObjectId],
    ) -> Vec<(ObjectId, Result<Removal>)> {
        let requests = ids
            .iter()
            .map(|&id| {
                (
                    InvitationScope::Org(org),
                    id,
                    AuditEntry::operator(Utc::now()),
                )
            })
            .collect();
        ids.iter()
            .copied()
            .zip(remove_all_at_once(store, requests).await)
            .collect()
    }

    /// Runs each (scope, id, entry) removal, all at once from separate tasks; the outcomes in
    /// the order given.
    async fn remove_all_at_once(
        store: &Store,
        requests: Vec<(InvitationScope, ObjectId, AuditEntry)>,
    ) -> Vec<Result<Removal>> {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(scope, id, a)| {
                let store = store.clone();
                tokio::spawn(async move { store.remove_pending_invitation(scope, id, &a).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        outcomes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_tells_project_invitations_from_missing_ones() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let project = store.create_project(org.id, "Web", now).await.unwrap();
        let a = AuditEntry::operator(now);
        let org_ids = invitations(&store, org.id, 10).await;
        let project_ids = invitations_in(&store, org.id, Some(project.id), 10).await;
        let unknown: Vec<ObjectId> = (0..5).map(|_| ObjectId::generate(0)).collect();
        // All at once, so that batches mix the four cases.
        let mut requests: Vec<(InvitationScope, ObjectId, Removal)> = Vec::new();
        for &id in &org_ids {
            requests.push((InvitationScope::Org(org.id), id, Removal::Removed));
        }
        for &id in &project_ids[..5] {
            requests.push((InvitationScope::Org(org.id), id, Removal::ProjectInvitation));
        }
        for &id in &project_ids[5..] {
            requests.push((InvitationScope::Project(project.id), id, Removal::Removed));
        }
        for &id in &unknown {
            requests.push((InvitationScope::Org(org.id), id, Removal::NotFound));
        }
        let outcomes = remove_all_at_once(
            &store,
            requests
                .iter()
                .map(|&(scope, id, _)| (scope, id, a.clone()))
                .collect(),
        )
        .await;
        for (outcome, (_, id, expected)) in outcomes.into_iter().zip(&requests) {
            assert_eq!(outcome.unwrap(), *expected, "{id}");
        }
        for &id in &project_ids[..5] {
            assert!(store.invitation(id).await.unwrap().is_some(), "not removed");
        }
        assert_eq!(audit_count(&store, "invitation.removed").await, 15);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_removal_of_a_batch_is_audited_with_its_own_entry() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let ids = invitations(&store, org.id, 40).await;
        // All at once, so that batches carry several removals with different entries.
        let entry = |i: usize| {
            let mut a = AuditEntry::operator(now + chrono::Duration::milliseconds(i as i64));
            a.actor_display = format!("operator {i}");
            a.remote_addr = i.is_multiple_of(2).then(|| format!("10.0.0.{i}"));
            a
        };
        let requests = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (InvitationScope::Org(org.id), id, entry(i)))
            .collect();
        for outcome in remove_all_at_once(&store, requests).await {
            assert_eq!(outcome.unwrap(), Removal::Removed);
        }
        for (i, id) in ids.iter().enumerate() {
            let trail = store
                .audit_for("invitation", &id.to_string())
                .await
                .unwrap();
            let removed = trail.last().unwrap();
            let a = entry(i);
            assert_eq!(removed.action, "invitation.removed");
            assert_eq!(removed.at_ms, a.at.timestamp_millis());
            assert_eq!(removed.actor_kind, a.actor_kind);
            assert_eq!(removed.actor_display, a.actor_display);
            assert_eq!(removed.remote_addr, a.remote_addr);
            assert_eq!(removed.detail, "{}");
        }
        assert_eq!(audit_count(&store, "invitation.removed").await, 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_removals_each_win_once_and_are_audited_once() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let ids = invitations(&store, org.id, 150).await;
        // Every id requested three times at once, so batches hold duplicates.
        let thrice: Vec<ObjectId> = [&ids[..], &ids[..], &ids[..]].concat();
        let mut removed: HashMap<ObjectId, usize> = HashMap::new();
        for (id, outcome) in remove_at_once(&store, org.id, &thrice).await {
            match outcome.unwrap() {
                Removal::Removed => *removed.entry(id).or_default() += 1,
                Removal::NotFound => {}
                Removal::ProjectInvitation => panic!("{id} is an organization invitation"),
            }
        }
        assert_eq!(removed.len(), ids.len(), "every invitation removed");
        assert!(removed.values().all(|n| *n == 1), "each exactly once");
        assert_eq!(audit_count(&store, "invitation.removed").await, 150);
        for id in ids {
            assert!(store.invitation(id).await.unwrap().is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_row_fails_only_its_own_removal() {
        let (store, _d) = fresh().await;
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let ids = invitations(&store, org.id, 40).await;
        let bad = ids[7];
        let trigger = match store.backend() {
            crate::Backend::Sqlite => format!(
                "CREATE TRIGGER refuse BEFORE DELETE ON invitations WHEN OLD.id = '{bad}' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;"
            ),
            crate::Backend::Postgres => format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF OLD.id = '{bad}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN OLD; END; $$; \
                 CREATE TRIGGER refuse BEFORE DELETE ON invitations FOR EACH ROW EXECUTE FUNCTION refuse();"
            ),
        };
        store.run_script(&trigger).await.unwrap();
        for (id, outcome) in remove_at_once(&store, org.id, &ids).await {
            if id == bad {
                assert!(
                    matches!(
                        outcome,
                        Err(StoreError::Database(_) | StoreError::Sqlite(_))
                    ),
                    "{outcome:?}"
                );
            } else {
                assert_eq!(outcome.unwrap(), Removal::Removed);
            }
        }
        assert!(store.invitation(bad).await.unwrap().is_some());
        assert_eq!(audit_count(&store, "invitation.removed").await, 39);
    }

    /// On PostgreSQL a removal stuck behind a row lock does not hold up the others: batches
    /// run side by side ([`POSTGRES_BATCHES`]). (SQLite's one writer runs a batch at a time;
    /// there the test has nothing to show.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removal_waiting_for_a_lock_does_not_hold_up_the_others_on_postgres() {
        let (store, url, _d) = crate::test_util::fresh_with_url().await;
        if store.backend() != crate::Backend::Postgres {
            return;
        }
        let now = Utc::now();
        let org = store.create_org("Acme", now).await.unwrap();
        let ids = invitations(&store, org.id, 3).await;
        // Another session holds the first invitation's row until told to let go.
        use sqlx::Connection;
        let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut tx = holder.begin().await.unwrap();
        sqlx::query("SELECT id FROM invitations WHERE id = $1 FOR UPDATE")
            .bind(ids[0].to_string())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let stuck = {
            let store = store.clone();
            let id = ids[0];
            tokio::spawn(async move {
                let a = AuditEntry::operator(Utc::now());
                store
                    .remove_pending_invitation(InvitationScope::Org(org.id), id, &a)
                    .await
            })
        };
        // Let the stuck removal's batch reach the lock.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!stuck.is_finished());
        for &id in &ids[1..] {
            let a = AuditEntry::operator(Utc::now());
            let removed = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                store.remove_pending_invitation(InvitationScope::Org(org.id), id, &a),
            )
            .await
            .expect("a removal behind the locked one still runs");
            assert_eq!(removed.unwrap(), Removal::Removed);
        }
        assert!(!stuck.is_finished());
        tx.rollback().await.unwrap();
        assert_eq!(stuck.await.unwrap().unwrap(), Removal::Removed);
        assert_eq!(audit_count(&store, "invitation.removed").await, 3);
    }
}
