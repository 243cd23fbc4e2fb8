//! How many replicas run each batching queue at once, kept by heartbeats in PostgreSQL
//! (`removing_replicas`, migrations 14 and 15), and so each one's share of the batches in flight.
//!
//! A removal queue keeps up to two batches in flight ([`crate::removals::POSTGRES_BATCHES`]): one
//! runs its statement while the other's commit waits for the log flush. Two replicas with two
//! each made four, each gathered for half as long from half the load: batches a quarter of one
//! replica's, four times as many statements and commits per removal, each paying PostgreSQL's
//! fixed cost of a statement (benchmark (b): 261 against 174 ms of PostgreSQL's CPU per 1,000
//! removals, docs/benchmarks.md). So the two batches are the deployment's, not each replica's:
//! every [`TICK`] in which a queue ran a batch, the replica writes when (the database's clock)
//! in its row, reads how many other replicas' rows say the same queue ran within [`RECENT`], and
//! lets its queue have `most / replicas` batches in flight, at least one. An idle replica
//! writes nothing and does not count, so a replica alone keeps both batches however many idle
//! replicas run beside it. A failed heartbeat changes nothing (the limits stay as they were).
//! The queues so shared: the removals, the community bulk removals, the Digest nonce counts
//! (`crate::nonce_counts`, whose two batches per replica had made mostly single-record INSERTs
//! with two replicas; migration 15) and the invitation creates and updates
//! (`postgres::write_batches`, migration 16).

use std::sync::Weak;
use std::time::{Duration, Instant};

use invites_domain::ObjectId;

use super::Postgres;
use crate::batch_slots::BatchSlots;
use crate::Result;

/// How often a replica that runs batches says so and reads how many others do.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// How recent a replica's last batch of a queue must be for it to count as running that queue.
pub(crate) const RECENT: Duration = Duration::from_millis(500);
/// How long a replica's row stays after its last write.
const FORGOTTEN: Duration = Duration::from_secs(3600);
/// How often a replica deletes the forgotten rows (while it runs batches).
const SWEEP: Duration = Duration::from_secs(60);

/// Writes this replica's row (each queue's time now if it ran, else as it was) and reads, of the
/// other replicas, how many ran each queue within `$5` seconds.
const HEARTBEAT: &str = "WITH mine AS (\
     INSERT INTO removing_replicas (replica, removals_at, bulk_removals_at, nonce_counts_at, \
     creates_at, updates_at) \
     VALUES ($1, CASE WHEN $2 THEN now() END, CASE WHEN $3 THEN now() END, \
     CASE WHEN $4 THEN now() END, CASE WHEN $5 THEN now() END, CASE WHEN $6 THEN now() END) \
     ON CONFLICT (replica) DO UPDATE SET \
     removals_at = COALESCE(EXCLUDED.removals_at, removing_replicas.removals_at), \
     bulk_removals_at = COALESCE(EXCLUDED.bulk_removals_at, removing_replicas.bulk_removals_at), \
     nonce_counts_at = COALESCE(EXCLUDED.nonce_counts_at, removing_replicas.nonce_counts_at), \
     creates_at = COALESCE(EXCLUDED.creates_at, removing_replicas.creates_at), \
     updates_at = COALESCE(EXCLUDED.updates_at, removing_replicas.updates_at)) \
     SELECT count(*) FILTER (WHERE removals_at > now() - make_interval(secs => $7)), \
     count(*) FILTER (WHERE bulk_removals_at > now() - make_interval(secs => $7)), \
     count(*) FILTER (WHERE nonce_counts_at > now() - make_interval(secs => $7)), \
     count(*) FILTER (WHERE creates_at > now() - make_interval(secs => $7)), \
     count(*) FILTER (WHERE updates_at > now() - make_interval(secs => $7)) \
     FROM removing_replicas WHERE replica <> $1";

/// GREATEST skips NULLs: a row goes once every queue it ran is forgotten.
const SWEEP_SQL: &str = "DELETE FROM removing_replicas \
     WHERE GREATEST(removals_at, bulk_removals_at, nonce_counts_at, creates_at, updates_at) \
     < now() - make_interval(secs => $1)";

/// The batching queues whose batches a replica shares with the others.
pub(crate) struct Queues {
    pub(crate) removals: Weak<BatchSlots>,
    pub(crate) bulk_removals: Weak<BatchSlots>,
    pub(crate) nonce_counts: Weak<BatchSlots>,
    pub(crate) creates: Weak<BatchSlots>,
    pub(crate) updates: Weak<BatchSlots>,
}

/// Starts the heartbeat of a new replica over `db`, on its relaxed pool; it ends once the
/// queues have ended.
pub(crate) fn start(db: Postgres, queues: Queues) {
    let replica = ObjectId::generate(chrono::Utc::now().timestamp()).to_string();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut swept: Option<Instant> = None;
        loop {
            ticks.tick().await;
            let (Some(removals), Some(bulk), Some(nonces), Some(creates), Some(updates)) = (
                queues.removals.upgrade(),
                queues.bulk_removals.upgrade(),
                queues.nonce_counts.upgrade(),
                queues.creates.upgrade(),
                queues.updates.upgrade(),
            ) else {
                return;
            };
            let slots = [removals, bulk, nonces, creates, updates];
            let ran = slots.each_ref().map(|s| s.take_ran());
            if ran == [false; QUEUES] {
                continue;
            }
            match heartbeat(&db, &replica, ran).await {
                Ok(others) => {
                    for (slots, others) in slots.iter().zip(others) {
                        slots.limit(share(slots.most(), others));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "batching heartbeat failed"),
            }
            if swept.is_none_or(|at| at.elapsed() >= SWEEP) {
                swept = Some(Instant::now());
                if let Err(e) = sweep(&db).await {
                    tracing::debug!(error = %e, "batching heartbeat rows not swept");
                }
            }
        }
    });
}

/// A replica's share of `most` batches in flight when `others` replicas run the queue too: an
/// equal share, at least one.
pub(crate) fn share(most: usize, others: i64) -> usize {
    let replicas = usize::try_from(others).unwrap_or(0).saturating_add(1);
    (most / replicas).max(1)
}

/// The queues shared, in the order of [`heartbeat`]'s arrays.
const QUEUES: usize = 5;

/// Writes `replica`'s row (which queues ran: removals, bulk removals, nonce counts, creates,
/// updates) and returns how many other replicas ran each queue recently.
pub(crate) async fn heartbeat(
    db: &Postgres,
    replica: &str,
    ran: [bool; QUEUES],
) -> Result<[i64; QUEUES]> {
    let mut conn = db.relaxed.acquire().await?;
    let mut query = sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(HEARTBEAT).bind(replica);
    for ran in ran {
        query = query.bind(ran);
    }
    let (removals, bulk, nonces, creates, updates) = query
        .bind(RECENT.as_secs_f64())
        .fetch_one(&mut *conn)
        .await?;
    Ok([removals, bulk, nonces, creates, updates])
}

async fn sweep(db: &Postgres) -> Result<()> {
    let mut conn = db.relaxed.acquire().await?;
    sqlx::query(SWEEP_SQL)
        .bind(FORGOTTEN.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::audit::AuditEntry;
    use crate::test_util::fresh_postgres;
    use crate::{InvitationScope, Store};

    /// The removal queue's batches allowed in flight, as its gauge says.
    fn allowed(store: &Store) -> i64 {
        store
            .metrics()
            .removal_batches
            .allowed
            .get_or_create(&[("queue", "removals")])
            .get()
    }

    /// Polls `done` every 20 ms for at most 5 s; whether it came true.
    async fn within_5s(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done()
    }

    /// Removes unknown invitations of `org` through `store` until `stop` (at most 20 s).
    fn remove_until(
        store: &Store,
        org: ObjectId,
        stop: &Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let (store, stop) = (store.clone(), Arc::clone(stop));
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let id = ObjectId::generate(Utc::now().timestamp());
                let audit = AuditEntry::operator(Utc::now());
                store
                    .remove_pending_invitation(InvitationScope::Org(org), id, &audit)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// Two stores over one fresh PostgreSQL database, as two replicas, and an organization; none
    /// without a server to test on.
    async fn two_replicas() -> Option<(Store, Store, ObjectId)> {
        let admin_url = std::env::var("INVITES_STORE_TEST_POSTGRES_URL").ok()?;
        let url = fresh_postgres(&admin_url).await;
        let (a, b) = (
            Store::open(&url).await.unwrap(),
            Store::open(&url).await.unwrap(),
        );
        let org = a.create_org("Acme", Utc::now()).await.unwrap().id;
        Some((a, b, org))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_removing_at_once_share_the_batches_and_one_alone_takes_them_back() {
        let Some((a, b, org)) = two_replicas().await else {
            return;
        };
        assert_eq!((allowed(&a), allowed(&b)), (2, 2), "each alone at first");

        let (stop_a, stop_b) = (Arc::default(), Arc::default());
        let load_a = remove_until(&a, org, &stop_a);
        let load_b = remove_until(&b, org, &stop_b);
        assert!(
            within_5s(|| allowed(&a) == 1 && allowed(&b) == 1).await,
            "two replicas removing at once take one batch each: {} and {}",
            allowed(&a),
            allowed(&b)
        );

        // The second goes idle: the first takes both batches back, the second writes nothing.
        stop_b.store(true, Ordering::Relaxed);
        load_b.await.unwrap();
        assert!(
            within_5s(|| allowed(&a) == 2).await,
            "a replica removing alone again takes both batches: {}",
            allowed(&a)
        );
        let (rows, removing): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE removals_at > now() - interval '400 ms') \
             FROM removing_replicas",
        )
        .fetch_one(a.pool())
        .await
        .unwrap();
        assert_eq!(
            (rows, removing),
            (2, 1),
            "both replicas' rows, one removing"
        );
        stop_a.store(true, Ordering::Relaxed);
        load_a.await.unwrap();
    }

    /// The create queue's batches allowed in flight, as its gauge says.
    fn creates_allowed(store: &Store) -> i64 {
        store
            .metrics()
            .write_batches
            .allowed
            .get_or_create(&[("queue", "creates")])
            .get()
    }

    /// Creates invitations of `org` through `store`, `tag` naming the users, until `stop` (at
    /// most 20 s).
    fn create_until(
        store: &Store,
        org: ObjectId,
        tag: &'static str,
        stop: &Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let (store, stop) = (store.clone(), Arc::clone(stop));
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                n += 1;
                let new = invites_domain::NewInvitation {
                    org_id: org,
                    project_id: None,
                    username: format!("{tag}{n}@example.com"),
                    inviter_username: "owner@example.com".into(),
                    roles: vec!["ORG_MEMBER".into()],
                    team_ids: vec![],
                    group_role_assignments: vec![],
                };
                let audit = AuditEntry::operator(Utc::now());
                store.create_invitation(&new, &audit).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_creating_at_once_share_the_create_batches() {
        let Some((a, b, org)) = two_replicas().await else {
            return;
        };
        assert_eq!((creates_allowed(&a), creates_allowed(&b)), (2, 2));
        let (stop_a, stop_b) = (Arc::default(), Arc::default());
        let load_a = create_until(&a, org, "a", &stop_a);
        let load_b = create_until(&b, org, "b", &stop_b);
        assert!(
            within_5s(|| creates_allowed(&a) == 1 && creates_allowed(&b) == 1).await,
            "two replicas creating at once take one batch each: {} and {}",
            creates_allowed(&a),
            creates_allowed(&b)
        );
        stop_b.store(true, Ordering::Relaxed);
        load_b.await.unwrap();
        assert!(
            within_5s(|| creates_allowed(&a) == 2).await,
            "a replica creating alone again takes both batches: {}",
            creates_allowed(&a)
        );
        // Removals are another queue: neither replica removed, so neither shares its batches.
        assert_eq!((allowed(&a), allowed(&b)), (2, 2));
        stop_a.store(true, Ordering::Relaxed);
        load_a.await.unwrap();
    }

    #[tokio::test]
    async fn each_queue_counts_the_other_replicas_that_ran_it_lately() {
        let Ok(admin_url) = std::env::var("INVITES_STORE_TEST_POSTGRES_URL") else {
            return;
        };
        let store = Store::open(&fresh_postgres(&admin_url).await)
            .await
            .unwrap();
        let crate::Engine::Postgres(db) = &store.engine else {
            unreachable!("a PostgreSQL URL")
        };
        // Queues in order: removals, bulk removals, nonce counts, creates, updates. The store's
        // own heartbeat writes nothing: it runs no batch here.
        assert_eq!(
            heartbeat(db, "a", [true, false, true, false, true])
                .await
                .unwrap(),
            [0; QUEUES]
        );
        assert_eq!(
            heartbeat(db, "b", [false, true, true, true, false])
                .await
                .unwrap(),
            [1, 0, 1, 0, 1],
            "b sees a's removals, nonce counts and updates"
        );
        assert_eq!(
            heartbeat(db, "a", [false; QUEUES]).await.unwrap(),
            [0, 1, 1, 1, 0],
            "a sees b's bulk removals, nonce counts and creates, not its own"
        );
        tokio::time::sleep(RECENT + Duration::from_millis(100)).await;
        assert_eq!(
            heartbeat(db, "b", [false; QUEUES]).await.unwrap(),
            [0; QUEUES],
            "nothing recent"
        );
    }

    #[test]
    fn a_replica_takes_an_equal_share_and_at_least_one() {
        assert_eq!(share(2, 0), 2);
        assert_eq!(share(2, 1), 1);
        assert_eq!(share(2, 5), 1);
        assert_eq!(share(4, 1), 2);
        assert_eq!(share(4, 2), 1);
        assert_eq!(share(2, -1), 2, "a count below zero is none");
        assert_eq!(share(2, i64::MAX), 1);
    }
}
