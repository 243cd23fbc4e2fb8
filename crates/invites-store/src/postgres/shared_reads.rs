//! Reads shared by the requests that ask for the same thing at once: one query answers every
//! request that asked before the query started.
//!
//! A list served from the list cache costs one query, the scope's version (`invitations`); 3,000
//! lists a second of one organization were 3,000 identical queries, each a round trip to
//! PostgreSQL and a turn of one of its backends. Here the first request of a key starts a read;
//! the requests that ask while it runs wait for the next read, which starts once it ends and
//! answers all of them, and so on while requests keep coming. A request is never answered by a
//! read that started before it asked, so it sees every write acknowledged before it asked, as its
//! own query would have: sharing changes how many queries run, not what a request can see. What
//! it costs: a request that asks while a read runs waits for the rest of that read, then its own.
//!
//! The reads run in a task of their own, so a request that goes away (its client disconnected)
//! does not take the read the others wait for with it; a read that panics answers its waiters
//! with an error and the next request starts afresh. A read that finds the database away or busy
//! also answers those that asked while it ran: the failure came after they asked, and their own
//! read would wait as long again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

type Answer<V> = std::result::Result<V, Arc<StoreError>>;

/// Shared reads of values `V` by key `K`.
pub(crate) struct SharedReads<K, V> {
    /// The requests waiting for each key's next read. A key is here while a read of it runs (its
    /// task owns the key until it finds no one waiting).
    slots: Mutex<HashMap<K, Vec<oneshot::Sender<Answer<V>>>>>,
}

impl<K, V> Default for SharedReads<K, V> {
    fn default() -> Self {
        SharedReads {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> SharedReads<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `key`'s value as read by a `read(key)` started after this call: the one running when none
    /// is, else the next.
    pub(crate) async fn get<F, Fut>(self: &Arc<Self>, key: K, read: F) -> Result<V>
    where
        F: Fn(K) -> Fut + Send + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get_mut(&key) {
                Some(waiting) => {
                    waiting.push(tx);
                    false
                }
                None => {
                    slots.insert(key.clone(), vec![tx]);
                    true
                }
            }
        };
        if lead {
            tokio::spawn(Arc::clone(self).serve(key, read));
        }
        match rx.await {
            Ok(answer) => answer.map_err(|e| e.duplicate()),
            Err(_) => Err(StoreError::Unavailable(
                "the shared read this request waited for failed".to_owned(),
            )),
        }
    }

    /// Reads `key` for whoever waits, again and again until no one does.
    async fn serve<F, Fut>(self: Arc<Self>, key: K, read: F)
    where
        F: Fn(K) -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        // Gives the key up however this ends: a panic in `read` drops the waiters' senders
        // (they answer an error) instead of leaving the key taken for good.
        let mut owned = Owned {
            reads: &self,
            key: Some(key.clone()),
        };
        loop {
            let batch = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let waiting = slots.get_mut(&key).expect("a running read owns its key");
                if waiting.is_empty() {
                    slots.remove(&key);
                    owned.key = None;
                    return;
                }
                std::mem::take(waiting)
            };
            let answer = read(key.clone()).await.map_err(Arc::new);
            let unreachable = matches!(&answer, Err(e) if e.unreachable());
            for waiter in batch {
                let _ = waiter.send(answer.clone());
            }
            if unreachable {
                // The database was away (or every connection busy) after those who asked during
                // this read had asked: their own read would wait as long again (a pool's acquire
                // timeout, 3 s, twice past the 5 s in which a request must be answered during an
                // outage). They get the same answer now.
                let late = std::mem::take(
                    self.slots
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&key)
                        .expect("a running read owns its key"),
                );
                for waiter in late {
                    let _ = waiter.send(answer.clone());
                }
            }
        }
    }

    /// Keys with a read running (for tests).
    #[cfg(test)]
    fn running(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The key a read task owns, given up when the task ends before it gave it up itself.
struct Owned<'a, K: Eq + Hash, V> {
    reads: &'a SharedReads<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash, V> Drop for Owned<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.reads
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A read that counts its starts, holds until let go, then answers the count it started as
    /// (or, `failing`, that the database is away).
    #[derive(Clone)]
    struct Gated {
        started: Arc<AtomicU64>,
        gate: Arc<tokio::sync::Semaphore>,
        failing: bool,
    }

    impl Default for Gated {
        fn default() -> Self {
            Gated {
                started: Arc::default(),
                gate: Arc::new(tokio::sync::Semaphore::new(0)),
                failing: false,
            }
        }
    }

    impl Gated {
        fn read(
            &self,
        ) -> impl Fn(&'static str) -> futures_util::future::BoxFuture<'static, Result<u64>>
        {
            let this = self.clone();
            move |_key| {
                let this = this.clone();
                Box::pin(async move {
                    let n = this.started.fetch_add(1, Ordering::SeqCst) + 1;
                    this.gate.acquire().await.expect("open").forget();
                    if this.failing {
                        return Err(StoreError::Unavailable("stopped".to_owned()));
                    }
                    Ok(n)
                })
            }
        }

        async fn wait_started(&self, n: u64) {
            tokio::time::timeout(Duration::from_secs(5), async {
                while self.started.load(Ordering::SeqCst) < n {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the read started");
        }
    }

    #[tokio::test]
    async fn requests_that_ask_during_a_read_share_the_next_one() {
        let reads = Arc::new(SharedReads::default());
        let gated = Gated::default();
        let first = tokio::spawn({
            let (reads, read) = (reads.clone(), gated.read());
            async move { reads.get("org", read).await }
        });
        gated.wait_started(1).await;
        // Fifty requests ask while the first read runs: none may be answered by it.
        let later: Vec<_> = (0..50)
            .map(|_| {
                let (reads, read) = (reads.clone(), gated.read());
                tokio::spawn(async move { reads.get("org", read).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gated.gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for request in later {
            assert_eq!(
                request.await.unwrap().unwrap(),
                2,
                "answered by the read after"
            );
        }
        assert_eq!(gated.started.load(Ordering::SeqCst), 2, "two reads for 51");
        tokio::time::timeout(Duration::from_secs(5), async {
            while reads.running() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the key is given up once no one waits");
    }

    #[tokio::test]
    async fn keys_are_read_apart() {
        let reads = Arc::new(SharedReads::default());
        let gated = Gated::default();
        gated.gate.add_permits(2);
        let a = reads.get("a", gated.read()).await.unwrap();
        let b = reads.get("b", gated.read()).await.unwrap();
        assert_eq!((a, b), (1, 2));
    }

    #[tokio::test]
    async fn a_failed_read_fails_each_waiter_and_the_next_read_runs() {
        let reads: Arc<SharedReads<&str, u64>> = Arc::new(SharedReads::default());
        let failing = |_| async { Err(StoreError::Unavailable("stopped".to_owned())) };
        let answers = futures_util::future::join_all((0..5).map(|_| reads.get("k", failing))).await;
        for answer in answers {
            assert!(matches!(answer, Err(StoreError::Unavailable(m)) if m == "stopped"));
        }
        assert_eq!(reads.get("k", |_| async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn those_who_ask_during_a_read_that_finds_the_database_away_get_its_answer() {
        let reads = Arc::new(SharedReads::default());
        let gated = Gated {
            failing: true,
            ..Gated::default()
        };
        let first = tokio::spawn({
            let (reads, read) = (reads.clone(), gated.read());
            async move { reads.get("k", read).await }
        });
        gated.wait_started(1).await;
        let later: Vec<_> = (0..5)
            .map(|_| {
                let (reads, read) = (reads.clone(), gated.read());
                tokio::spawn(async move { reads.get("k", read).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gated.gate.add_permits(10);
        for request in std::iter::once(first).chain(later) {
            let answer = request.await.unwrap();
            assert!(
                matches!(answer, Err(StoreError::Unavailable(_))),
                "{answer:?}"
            );
        }
        assert_eq!(
            gated.started.load(Ordering::SeqCst),
            1,
            "no second wait for the database"
        );
    }

    #[tokio::test]
    async fn a_read_that_panics_fails_its_waiters_and_frees_the_key() {
        let reads: Arc<SharedReads<&str, u64>> = Arc::new(SharedReads::default());
        let answer = reads
            .get("k", |_| async { panic!("a bug in the read") })
            .await;
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{answer:?}"
        );
        assert_eq!(reads.running(), 0);
        assert_eq!(reads.get("k", |_| async { Ok(3) }).await.unwrap(), 3);
    }
}
