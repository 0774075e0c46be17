//! Timers of a keyed operator: (timestamp, key, namespace) triples, deduplicated, deletable,
//! fired in timestamp order (Flink's `InternalTimerService` queues).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// A queue of timers for one time domain.
pub struct TimerQueue<K, N> {
    by_time: BTreeMap<i64, HashSet<(K, N)>>,
    len: usize,
}

impl<K, N> Default for TimerQueue<K, N> {
    fn default() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// Registers a timer; a timer for the same time, key and namespace exists only once.
    /// Returns true if it is new.
    pub fn register(&mut self, time: i64, key: K, ns: N) -> bool {
        let new = self.by_time.entry(time).or_default().insert((key, ns));
        if new {
            self.len += 1;
        }
        new
    }

    /// Deletes a timer; returns true if it existed.
    pub fn delete(&mut self, time: i64, key: &K, ns: &N) -> bool {
        let Some(set) = self.by_time.get_mut(&time) else {
            return false;
        };
        // The set holds owned pairs; a clone of the probe is the simple way to look it up.
        let removed = set.remove(&(key.clone(), ns.clone()));
        if set.is_empty() {
            self.by_time.remove(&time);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// The earliest timer's time.
    pub fn peek(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }

    /// Removes and returns the earliest timer if its time is at most `up_to`.
    pub fn pop_due(&mut self, up_to: i64) -> Option<(i64, K, N)> {
        let mut entry = self.by_time.first_entry()?;
        let time = *entry.key();
        if time > up_to {
            return None;
        }
        let set = entry.get_mut();
        let item = set.iter().next().cloned();
        let out = item.map(|kn| {
            set.remove(&kn);
            (time, kn.0, kn.1)
        });
        if set.is_empty() {
            entry.remove();
        }
        if out.is_some() {
            self.len -= 1;
        }
        out
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_delete_and_order() {
        let mut q: TimerQueue<&str, ()> = TimerQueue::default();
        assert!(q.register(30, "a", ()));
        assert!(q.register(10, "b", ()));
        assert!(!q.register(10, "b", ()), "deduplicated");
        assert!(q.register(10, "a", ()));
        assert!(q.register(20, "a", ()));
        assert!(q.delete(20, &"a", &()));
        assert!(!q.delete(20, &"a", &()));
        assert_eq!(q.len(), 3);
        assert_eq!(q.peek(), Some(10));
        let mut fired = Vec::new();
        while let Some((t, k, _)) = q.pop_due(25) {
            fired.push((t, k));
        }
        fired.sort();
        assert_eq!(fired, vec![(10, "a"), (10, "b")]);
        assert_eq!(q.pop_due(29), None);
        assert_eq!(q.pop_due(i64::MAX), Some((30, "a", ())));
        assert!(q.is_empty());
    }
}
