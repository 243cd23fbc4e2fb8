//! Refuses a nonce count already seen with the same nonce, in bounded memory.
//!
//! Each nonce keeps its highest count and a 64-bit window of the counts just below it, the
//! anti-replay window of IPsec: counts may arrive out of order (concurrent requests) or jump
//! ahead (clients that keep one counter across nonces), but none is accepted twice. Entries
//! expire with their nonce; the table is sharded to keep lock contention low.

use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 16;
const WINDOW: u32 = 64;

struct Entry {
    expires_ms: u64,
    max_nc: u32,
    /// Bit i set: count `max_nc - i` was seen.
    seen: u64,
}

/// The record of nonce counts seen per nonce.
pub struct ReplayGuard {
    shards: Vec<Mutex<HashMap<[u8; 16], Entry>>>,
    capacity_per_shard: usize,
}

impl ReplayGuard {
    /// A guard that tracks at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Records `nc` for the nonce identified by `mac`. Returns false if it was seen before, is zero,
    /// or is too far below the highest count seen to be told apart from a replay; also false when
    /// the table is full of live nonces, which makes the client fetch a new nonce.
    pub fn record(&self, mac: [u8; 16], nc: u32, expires_ms: u64, now_ms: u64) -> bool {
        if nc == 0 {
            return false;
        }
        let shard = &self.shards[mac[0] as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&mac) {
            if nc > e.max_nc {
                let shift = nc - e.max_nc;
                e.seen = if shift >= WINDOW { 0 } else { e.seen << shift };
                e.seen |= 1;
                e.max_nc = nc;
                return true;
            }
            let back = e.max_nc - nc;
            if back >= WINDOW || e.seen & (1 << back) != 0 {
                return false;
            }
            e.seen |= 1 << back;
            return true;
        }
        if map.len() >= self.capacity_per_shard {
            map.retain(|_, e| e.expires_ms > now_ms);
            if map.len() >= self.capacity_per_shard {
                return false;
            }
        }
        map.insert(
            mac,
            Entry {
                expires_ms,
                max_nc: nc,
                seen: 1,
            },
        );
        true
    }

    /// How many nonces are tracked now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn increasing_counts_pass_and_repeats_fail() {
        let g = ReplayGuard::new(10);
        let m = [1u8; 16];
        assert!(g.record(m, 1, 100, 0));
        assert!(!g.record(m, 1, 100, 0));
        assert!(g.record(m, 2, 100, 0));
        assert!(g.record(m, 5, 100, 0));
        assert!(g.record(m, 3, 100, 0), "out of order but unseen");
        assert!(!g.record(m, 3, 100, 0));
        assert!(!g.record(m, 0, 100, 0));
    }

    #[test]
    fn full_table_evicts_expired_entries() {
        let g = ReplayGuard::new(16);
        for i in 0..16u8 {
            let mut m = [0u8; 16];
            m[0] = i;
            assert!(g.record(m, 1, 100, 0));
        }
        let mut m = [0u8; 16];
        m[1] = 9;
        assert!(!g.record(m, 1, 100, 50), "shard full of live nonces");
        assert!(g.record(m, 1, 300, 200), "expired entries were purged");
    }

    proptest! {
        #[test]
        fn no_count_is_ever_accepted_twice(counts in proptest::collection::vec(1u32..200, 1..100)) {
            let g = ReplayGuard::new(10);
            let m = [7u8; 16];
            let mut accepted = std::collections::HashSet::new();
            for nc in counts {
                if g.record(m, nc, 100, 0) {
                    prop_assert!(accepted.insert(nc), "count {} accepted twice", nc);
                }
            }
        }
    }
}
