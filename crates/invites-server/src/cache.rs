//! Credentials, roles and tenants read from the store, kept in memory for as long as the store's
//! auth generation ([`invites_store::Store::auth_generation`]) stays the same.
//!
//! Every map is tagged with the generation its entries were read under; a lookup under another
//! generation misses, and the first insert under the new generation empties the map. A value is
//! inserted only if the generation did not move while it was being read, so a read that raced
//! with a change can never be kept. Changes made through this process invalidate at once;
//! changes made elsewhere (the admin command, another replica) when [`poll`] next sees the
//! database's `auth_epoch` counter move.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{RwLock, Weak};
use std::time::Duration;

use invites_store::Store;

/// How often each process checks the database for credential and role changes made elsewhere:
/// the longest a revoked key, token or role keeps working on a replica that did not make the
/// change.
pub const AUTH_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Entries per map at most; a full map is emptied (lookups then refill it).
const CAPACITY: usize = 100_000;

/// One map of cached values.
pub struct Cached<K, V> {
    inner: RwLock<(u64, HashMap<K, V>)>,
}

impl<K: Hash + Eq, V: Clone> Default for Cached<K, V> {
    fn default() -> Self {
        Cached {
            inner: RwLock::new((0, HashMap::new())),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Cached<K, V> {
    /// The value for `key` read under `generation`, if cached.
    pub fn get(&self, generation: u64, key: &K) -> Option<V> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if inner.0 != generation {
            return None;
        }
        inner.1.get(key).cloned()
    }

    /// Keeps `value`, read from the store under `read_under`, if `now` (the generation after the
    /// read) is still the same.
    pub fn put(&self, read_under: u64, now: u64, key: K, value: V) {
        if read_under != now {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.0 != now || inner.1.len() >= CAPACITY {
            inner.0 = now;
            inner.1.clear();
        }
        inner.1.insert(key, value);
    }

    /// Number of entries (under any generation).
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).1.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `key` through `cache`: a cached value if there is one, else `load`'s, which is kept
/// when `keep` says so (lookups that found nothing are usually not kept, so that guessing keys
/// cannot fill the cache).
pub async fn through<K, V, E, F>(
    store: &Store,
    cache: &Cached<K, V>,
    key: K,
    keep: impl FnOnce(&V) -> bool,
    load: F,
) -> Result<V, E>
where
    K: Hash + Eq,
    V: Clone,
    F: std::future::Future<Output = Result<V, E>>,
{
    let generation = store.auth_generation();
    if let Some(v) = cache.get(generation, &key) {
        return Ok(v);
    }
    let v = load.await?;
    if keep(&v) {
        cache.put(generation, store.auth_generation(), key, v.clone());
    }
    Ok(v)
}

/// Polls the database's `auth_epoch` every [`AUTH_POLL_INTERVAL`] while `alive` lives.
pub fn poll<T: Send + Sync + 'static>(store: Store, alive: Weak<T>) {
    tokio::spawn(async move {
        let mut failing = false;
        let mut tick = tokio::time::interval(AUTH_POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() {
                return;
            }
            match store.poll_auth_epoch().await {
                Ok(_) if failing => {
                    tracing::info!("auth epoch readable again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot read the auth epoch; cached credentials stay until it can be read");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_served_only_under_the_generation_it_was_read_under() {
        let c: Cached<&str, u32> = Cached::default();
        c.put(1, 1, "a", 10);
        assert_eq!(c.get(1, &"a"), Some(10));
        assert_eq!(c.get(2, &"a"), None);
        // A read that raced with a change is not kept.
        c.put(1, 2, "b", 20);
        assert_eq!(c.get(1, &"b"), None);
        assert_eq!(c.get(2, &"b"), None);
        // The first insert under a new generation drops the old entries.
        c.put(2, 2, "b", 21);
        assert_eq!(c.get(2, &"b"), Some(21));
        assert_eq!(c.get(2, &"a"), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_map_is_emptied_not_grown() {
        let c: Cached<usize, ()> = Cached::default();
        for i in 0..CAPACITY + 5 {
            c.put(0, 0, i, ());
        }
        assert!(c.len() <= CAPACITY);
        assert_eq!(c.len(), 5);
    }
}
