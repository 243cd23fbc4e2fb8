//! The batches a removal queue may have in flight: at most a fixed number, fewer while other
//! replicas share the database's work (`postgres::removing_replicas` moves the limit).
//!
//! A queue takes a slot before it gathers a batch (what queues while every slot is busy joins the
//! next batch), so the slots decide how large batches grow under load: with two in flight a
//! replica's batch gathers for half a batch's time, with one for a whole one. Lowering the limit
//! while batches run takes effect as they end: a freed slot is kept out of use rather than given
//! to the queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use invites_metrics::BatchHandles;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A queue's batches in flight (see the module's text).
pub(crate) struct BatchSlots {
    semaphore: Arc<Semaphore>,
    /// The most batches in flight, whatever the limit.
    most: usize,
    /// Slots kept out of use, `most - limit` as soon as enough batches have ended.
    kept: Mutex<Vec<OwnedSemaphorePermit>>,
    /// How many slots the limit keeps out of use.
    keep: AtomicUsize,
    /// Whether a batch started since [`BatchSlots::take_ran`] last asked.
    ran: AtomicBool,
    /// The queue's metrics, if it has them: the limit goes to its gauge.
    handles: Option<BatchHandles>,
}

impl BatchSlots {
    /// Slots for `most` batches in flight (at least one), all of them usable.
    pub(crate) fn new(most: usize, handles: Option<BatchHandles>) -> Arc<BatchSlots> {
        let most = most.max(1);
        if let Some(handles) = &handles {
            handles.set_allowed(most);
        }
        Arc::new(BatchSlots {
            semaphore: Arc::new(Semaphore::new(most)),
            most,
            kept: Mutex::new(Vec::new()),
            keep: AtomicUsize::new(0),
            ran: AtomicBool::new(false),
            handles,
        })
    }

    /// Waits for a slot; the batch it is taken for runs until the permit is dropped.
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            let permit = Arc::clone(&self.semaphore)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() < self.keep.load(Ordering::Relaxed) {
                // The limit was lowered while this slot was busy: keep it out of use.
                kept.push(permit);
                continue;
            }
            return permit;
        }
    }

    /// Notes that a batch started (see [`BatchSlots::take_ran`]).
    pub(crate) fn ran(&self) {
        self.ran.store(true, Ordering::Relaxed);
    }

    /// Whether a batch started since the last call.
    pub(crate) fn take_ran(&self) -> bool {
        self.ran.swap(false, Ordering::Relaxed)
    }

    /// The most batches in flight, whatever the limit.
    pub(crate) fn most(&self) -> usize {
        self.most
    }

    /// Lets at most `batches` (1 to [`BatchSlots::most`]) be in flight: slots kept out of use
    /// are given back at once; slots to keep out are taken as they are free, now or when the
    /// batches on them end.
    pub(crate) fn limit(&self, batches: usize) {
        let batches = batches.clamp(1, self.most);
        let keep = self.most - batches;
        self.keep.store(keep, Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.truncate(keep);
        while kept.len() < keep {
            match Arc::clone(&self.semaphore).try_acquire_owned() {
                Ok(permit) => kept.push(permit),
                Err(_) => break,
            }
        }
        if let Some(handles) = &self.handles {
            handles.set_allowed(batches);
        }
    }

    /// The limit now (what [`BatchSlots::limit`] last set).
    #[cfg(test)]
    pub(crate) fn allowed(&self) -> usize {
        self.most - self.keep.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slots(most: usize) -> Arc<BatchSlots> {
        BatchSlots::new(
            most,
            Some(invites_metrics::StoreMetrics::default().removal_batch_handles("removals")),
        )
    }

    /// How many slots can be taken at once now, within a short wait each.
    async fn takeable(slots: &Arc<BatchSlots>) -> (usize, Vec<OwnedSemaphorePermit>) {
        let mut taken = Vec::new();
        while let Ok(permit) =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await
        {
            taken.push(permit);
            assert!(taken.len() <= slots.most(), "more slots than the most");
        }
        (taken.len(), taken)
    }

    #[tokio::test]
    async fn a_lowered_limit_holds_once_the_busy_slots_end() {
        let s = slots(2);
        assert_eq!(takeable(&s).await.0, 2);
        let (_, busy) = takeable(&s).await;
        // Lowered while both are busy: nothing free to keep out yet.
        s.limit(1);
        assert_eq!(s.allowed(), 1);
        drop(busy);
        assert_eq!(
            takeable(&s).await.0,
            1,
            "one slot only, once the batches ended"
        );
        s.limit(2);
        assert_eq!(takeable(&s).await.0, 2, "raised: both slots again");
    }

    #[tokio::test]
    async fn the_limit_stays_between_one_and_the_most() {
        let s = slots(2);
        s.limit(0);
        assert_eq!((s.allowed(), takeable(&s).await.0), (1, 1));
        s.limit(9);
        assert_eq!((s.allowed(), takeable(&s).await.0), (2, 2));
        let one = slots(1);
        one.limit(1);
        assert_eq!(takeable(&one).await.0, 1);
    }

    #[tokio::test]
    async fn ran_is_reported_once() {
        let s = slots(2);
        assert!(!s.take_ran());
        s.ran();
        assert!(s.take_ran());
        assert!(!s.take_ran());
    }
}
