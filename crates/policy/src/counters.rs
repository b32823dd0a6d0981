//! Concurrency caps: how many connections, WebSockets or in-flight requests
//! one key holds at once. A slot is a guard; dropping it gives it back, so
//! a slot can never leak on an early return or a panic.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Per-key counters, sharded so concurrent requests rarely share a lock.
pub struct Counters<K> {
    shards: Vec<Mutex<HashMap<K, u32>>>,
    hasher: RandomState,
}

/// One held slot; given back on drop.
pub struct Slot<K: Hash + Eq + Clone> {
    owner: Arc<Counters<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counters<K> {
    pub fn new() -> Arc<Counters<K>> {
        Arc::new(Counters {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        })
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, u32>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot if `key` holds fewer than `cap`.
    pub fn try_take(self: &Arc<Self>, key: K, cap: u32) -> Option<Slot<K>> {
        let mut shard = self.shard(&key);
        let n = shard.entry(key.clone()).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                shard.remove(&key);
            }
            return None;
        }
        *n += 1;
        drop(shard);
        Some(Slot {
            owner: self.clone(),
            key,
        })
    }

    /// Slots `key` holds now.
    pub fn held(&self, key: &K) -> u32 {
        self.shard(key).get(key).copied().unwrap_or(0)
    }

    /// Keys holding at least one slot (memory is bounded by live slots).
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut shard = self.owner.shard(&self.key);
        if let Some(n) = shard.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_given_back_on_drop() {
        let c = Counters::<u32>::new();
        let a: Vec<_> = (0..4).filter_map(|_| c.try_take(1, 4)).collect();
        assert_eq!(a.len(), 4);
        assert!(c.try_take(1, 4).is_none());
        assert!(c.try_take(2, 4).is_some());
        drop(a);
        assert_eq!(c.held(&1), 0);
        assert_eq!(c.keys(), 0);
        assert!(c.try_take(1, 0).is_none());
        assert_eq!(c.keys(), 0);
    }
}
