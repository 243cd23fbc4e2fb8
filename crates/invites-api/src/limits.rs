//! Counts per subject in fixed one-minute windows, for the rate limit (`ratelimit`) and the
//! failed-authentication lockout (`guard`), and the merge that makes them hold for a whole
//! deployment of replicas.
//!
//! A window is a minute of the wall clock (UNIX time / 60), not of the process's start, so every
//! replica counts the same window. A count is what this process knows: the deployment's total as
//! last merged plus what this process counted since. Deciding reads and moves only that, under a
//! short lock; no request waits for the database. With [`spawn_merge`] (the server starts it over
//! PostgreSQL), every [`MERGE_INTERVAL`] one call of [`Backend::merge_limit_counts`] sends what
//! this process counted since the last call and brings back the totals any replica changed.
//! Between merges a replica does not see what the others count, so a subject can pass its limit
//! by what it sends to the other replicas before they next merge (ARCHITECTURE.md gives the bound
//! and why this design). Without the merge (SQLite: one process serves the database) the counts
//! are the process's own, which is then the whole deployment.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use invites_domain::ObjectId;

use crate::backend::{Backend, LimitCount, LimitKind};
use crate::guard::FailedAuthLimiter;
use crate::ratelimit::Limiter;

/// The length of a window.
pub const WINDOW_SECS: u64 = 60;
/// How often a replica merges its counts with the other replicas'.
pub const MERGE_INTERVAL: Duration = Duration::from_millis(100);
const SHARDS: usize = 16;
/// Most subjects kept per shard: past it, other windows' entries go, then all (about 130,000
/// subjects in all, a few MiB).
const MAX_PER_SHARD: usize = 8_192;

/// Seconds since the UNIX epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The window a moment (UNIX seconds) falls in.
pub fn window_of(secs: u64) -> u64 {
    secs / WINDOW_SECS
}

/// Seconds from `secs` until the next window starts (1 to 60).
pub fn until_next_window(secs: u64) -> u64 {
    WINDOW_SECS - secs % WINDOW_SECS
}

/// What is counted: how it is named where replicas share it.
pub trait Subject: Hash + Eq + Clone + Send + 'static {
    /// Which of the counts' shards holds it.
    fn shard(&self) -> usize;
    /// The limit it is counted in.
    fn kind(&self) -> LimitKind;
    /// Its name in the shared counts.
    fn name(&self) -> String;
    /// The subject of a shared count, if this kind of counts holds it.
    fn from_name(kind: LimitKind, name: &str) -> Option<Self>;
}

impl Subject for ObjectId {
    fn shard(&self) -> usize {
        self.as_bytes()[11] as usize % SHARDS
    }

    fn kind(&self) -> LimitKind {
        LimitKind::Rate
    }

    fn name(&self) -> String {
        self.to_string()
    }

    fn from_name(kind: LimitKind, name: &str) -> Option<Self> {
        (kind == LimitKind::Rate)
            .then(|| name.parse().ok())
            .flatten()
    }
}

/// One subject's count in a window.
#[derive(Debug)]
struct Entry {
    window: u64,
    /// The deployment's total at the last merge plus what this process counted since.
    count: u64,
    /// What this process counted since it last handed its counts to a merge.
    counted: u64,
}

/// Counts per subject in the current window, sharded.
#[derive(Debug)]
pub struct WindowCounts<S> {
    shards: Vec<Mutex<HashMap<S, Entry>>>,
}

impl<S: Subject> Default for WindowCounts<S> {
    fn default() -> Self {
        WindowCounts {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<S: Subject> WindowCounts<S> {
    fn shard(&self, subject: &S) -> MutexGuard<'_, HashMap<S, Entry>> {
        self.shards[subject.shard() % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `subject` in `window`, new or reset when it was of another window.
    fn entry(map: &mut HashMap<S, Entry>, subject: S, window: u64) -> &mut Entry {
        if map.len() >= MAX_PER_SHARD && !map.contains_key(&subject) {
            map.retain(|_, e| e.window == window);
            if map.len() >= MAX_PER_SHARD {
                map.clear();
            }
        }
        let entry = map.entry(subject).or_insert(Entry {
            window,
            count: 0,
            counted: 0,
        });
        if entry.window != window {
            *entry = Entry {
                window,
                count: 0,
                counted: 0,
            };
        }
        entry
    }

    /// The count of `subject` in `window`.
    pub fn get(&self, subject: &S, window: u64) -> u64 {
        match self.shard(subject).get(subject) {
            Some(e) if e.window == window => e.count,
            _ => 0,
        }
    }

    /// Counts one for `subject` in `window` unless its count already reached `limit`: the count
    /// after it, or the count that refused it.
    pub fn add_below(&self, subject: S, window: u64, limit: u64) -> Result<u64, u64> {
        let mut map = self.shard(&subject);
        let entry = Self::entry(&mut map, subject, window);
        if entry.count >= limit {
            return Err(entry.count);
        }
        entry.count += 1;
        entry.counted += 1;
        Ok(entry.count)
    }

    /// Counts one for `subject` in `window`.
    pub fn add(&self, subject: S, window: u64) {
        let mut map = self.shard(&subject);
        let entry = Self::entry(&mut map, subject, window);
        entry.count = entry.count.saturating_add(1);
        entry.counted = entry.counted.saturating_add(1);
    }

    /// What this process counted in `window` since the last call, each subject once.
    pub fn take_counted(&self, window: u64) -> Vec<(S, u64)> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (subject, e) in map.iter_mut() {
                if e.window == window && e.counted > 0 {
                    taken.push((subject.clone(), std::mem::take(&mut e.counted)));
                }
            }
        }
        taken
    }

    /// Gives back what a merge that failed took, to be sent with the next one.
    pub fn give_back(&self, window: u64, taken: Vec<(S, u64)>) {
        for (subject, n) in taken {
            let mut map = self.shard(&subject);
            if let Some(e) = map.get_mut(&subject).filter(|e| e.window == window) {
                e.counted = e.counted.saturating_add(n);
            }
        }
    }

    /// Sets what the deployment counted for `subject` in `window` (this process's counts up to
    /// its last merge included): the count becomes that plus what this process counted since.
    pub fn set_total(&self, subject: S, window: u64, total: u64) {
        let mut map = self.shard(&subject);
        let entry = Self::entry(&mut map, subject, window);
        entry.count = total.saturating_add(entry.counted);
    }
}

/// The milliseconds since the epoch at which `window` starts.
fn window_start_ms(window: u64) -> i64 {
    i64::try_from(window.saturating_mul(WINDOW_SECS * 1000)).unwrap_or(i64::MAX)
}

fn to_counts<S: Subject>(taken: &[(S, u64)]) -> impl Iterator<Item = LimitCount> + '_ {
    taken.iter().map(|(s, n)| LimitCount {
        kind: s.kind(),
        subject: s.name(),
        count: *n,
    })
}

/// One merge: this process's counts of the current window out, the deployment's changed totals
/// in. `since` is the mark of the last merge, moved to this one's; false when the backend shares
/// nothing (then there is nothing to merge, ever).
async fn merge_once(
    backend: &dyn Backend,
    rate: &Limiter,
    failed: &FailedAuthLimiter,
    since: &mut i64,
    failing: &mut bool,
) -> bool {
    let window = window_of(unix_secs());
    let rate_taken = rate.counts().take_counted(window);
    let failed_taken = failed.counts().take_counted(window);
    let counted = to_counts(&rate_taken)
        .chain(to_counts(&failed_taken))
        .collect();
    match backend
        .merge_limit_counts(window_start_ms(window), counted, *since)
        .await
    {
        Ok(Some(totals)) => {
            *since = totals.seen;
            for c in totals.changed {
                if let Some(s) = ObjectId::from_name(c.kind, &c.subject) {
                    rate.counts().set_total(s, window, c.count);
                } else if let Some(s) = crate::guard::Subject::from_name(c.kind, &c.subject) {
                    failed.counts().set_total(s, window, c.count);
                }
            }
            if std::mem::take(failing) {
                tracing::info!("limit counts merge with the other replicas' again");
            }
            true
        }
        Ok(None) => false,
        Err(e) => {
            rate.counts().give_back(window, rate_taken);
            failed.counts().give_back(window, failed_taken);
            if !std::mem::replace(failing, true) {
                tracing::warn!(
                    error = %e.detail,
                    "cannot merge limit counts with the other replicas'; each counts alone until it can"
                );
            }
            true
        }
    }
}

/// Merges the counts of `rate` and `failed` with the other replicas' through `backend` every
/// [`MERGE_INTERVAL`], while both live.
pub fn spawn_merge(
    backend: Arc<dyn Backend>,
    rate: Weak<Limiter>,
    failed: Weak<FailedAuthLimiter>,
) {
    tokio::spawn(async move {
        let mut since = 0;
        let mut failing = false;
        let mut tick = tokio::time::interval(MERGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(rate), Some(failed)) = (rate.upgrade(), failed.upgrade()) else {
                return;
            };
            if !merge_once(&*backend, &rate, &failed, &mut since, &mut failing).await {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_the_merged_total_plus_what_was_counted_since() {
        let c: WindowCounts<ObjectId> = WindowCounts::default();
        let a = ObjectId::from_bytes([1; 12]);
        assert_eq!(c.add_below(a, 5, 3), Ok(1));
        assert_eq!(c.add_below(a, 5, 3), Ok(2));
        let taken = c.take_counted(5);
        assert_eq!(taken, [(a, 2)]);
        assert_eq!(c.take_counted(5), []);
        // Counted while the merge ran, then the deployment's total arrives (ours included).
        c.add(a, 5);
        c.set_total(a, 5, 2);
        assert_eq!(c.get(&a, 5), 3);
        // Another replica's counts arrive: the limit holds for the sum.
        c.set_total(a, 5, 4);
        assert_eq!(c.get(&a, 5), 5);
        assert_eq!(c.add_below(a, 5, 5), Err(5));
        // A failed merge gives its counts back for the next.
        let taken = c.take_counted(5);
        assert_eq!(taken, [(a, 1)]);
        c.give_back(5, taken);
        assert_eq!(c.take_counted(5), [(a, 1)]);
        // A new window starts from nothing.
        assert_eq!(c.get(&a, 6), 0);
        assert_eq!(c.add_below(a, 6, 5), Ok(1));
        assert_eq!(c.take_counted(5), []);
    }

    #[test]
    fn windows_are_minutes_of_the_wall_clock() {
        assert_eq!((window_of(59), window_of(60)), (0, 1));
        assert_eq!((until_next_window(60), until_next_window(119)), (60, 1));
        assert_eq!(window_start_ms(2), 120_000);
        let id = ObjectId::from_bytes([7; 12]);
        assert_eq!(ObjectId::from_name(LimitKind::Rate, &id.name()), Some(id));
        assert_eq!(
            ObjectId::from_name(LimitKind::FailedAuthKey, &id.name()),
            None
        );
    }
}
