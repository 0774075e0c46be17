//! Timers of a keyed operator: (timestamp, key, namespace) triples, deduplicated, deletable,
//! fired in timestamp order (Flink's `InternalTimerService` queues).
//!
//! Timers are grouped by timestamp; many keys usually share one (every key's window ends at
//! the same time). When the earliest timestamp is due, its whole group becomes the firing
//! batch and is handed out one timer at a time; timers deleted or registered again for that
//! timestamp while it fires are honoured through the batch's set.

use crate::error::Result;
use crate::snapshot::{decode, defer_sections, OperatorSubtaskState, RestoredState};
use hashbrown::HashSet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hash};
use weir_core::key_group::{key_group_for_key, StableHasher};

type Set<T> = HashSet<T, BuildHasherDefault<StableHasher>>;

/// A queue of timers for one time domain.
pub struct TimerQueue<K, N> {
    by_time: BTreeMap<i64, Set<(K, N)>>,
    /// The timestamp being fired, its remaining timers (a set for lookups) and their order.
    batch_time: i64,
    batch: Set<(K, N)>,
    batch_order: Vec<(K, N)>,
    len: usize,
}

impl<K, N> Default for TimerQueue<K, N> {
    fn default() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
            batch_time: i64::MIN,
            batch: Set::default(),
            batch_order: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// Registers a timer; a timer for the same time, key and namespace exists only once.
    /// Returns true if it is new.
    pub fn register(&mut self, time: i64, key: K, ns: N) -> bool {
        let kn = (key, ns);
        if time == self.batch_time && self.batch.contains(&kn) {
            return false;
        }
        let new = self.by_time.entry(time).or_default().insert(kn);
        if new {
            self.len += 1;
        }
        new
    }

    /// Deletes a timer; returns true if it existed.
    pub fn delete(&mut self, time: i64, key: &K, ns: &N) -> bool {
        // The sets hold owned pairs; a clone of the probe is the simple way to look one up.
        let kn = (key.clone(), ns.clone());
        if time == self.batch_time && self.batch.remove(&kn) {
            self.len -= 1;
            if self.batch.is_empty() {
                self.batch_order.clear();
            }
            return true;
        }
        let Some(set) = self.by_time.get_mut(&time) else {
            return false;
        };
        let removed = set.remove(&kn);
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
        let pending = self.by_time.keys().next().copied();
        if self.batch.is_empty() {
            pending
        } else {
            Some(pending.map_or(self.batch_time, |p| p.min(self.batch_time)))
        }
    }

    /// Removes and returns the earliest timer if its time is at most `up_to`.
    pub fn pop_due(&mut self, up_to: i64) -> Option<(i64, K, N)> {
        loop {
            // A group registered earlier than the current batch (while it fired) goes first.
            if let Some((&t, _)) = self.by_time.first_key_value() {
                if t <= up_to && (self.batch.is_empty() || t < self.batch_time) {
                    if !self.batch.is_empty() {
                        // Put the rest of the current batch back: it fires after.
                        let rest = std::mem::take(&mut self.batch);
                        self.by_time
                            .entry(self.batch_time)
                            .or_default()
                            .extend(rest);
                        self.batch_order.clear();
                    }
                    let (t, set) = self.by_time.pop_first()?;
                    self.batch_time = t;
                    self.batch_order.extend(set.iter().cloned());
                    self.batch = set;
                }
            }
            if self.batch.is_empty() || self.batch_time > up_to {
                return None;
            }
            match self.batch_order.pop() {
                Some(kn) => {
                    if self.batch.remove(&kn) {
                        self.len -= 1;
                        if self.batch.is_empty() {
                            self.batch_order.clear();
                        }
                        return Some((self.batch_time, kn.0, kn.1));
                    }
                    // Deleted while the batch fired.
                }
                None => {
                    // Only re-registered timers remain, without order: take them in any order.
                    self.batch_order.extend(self.batch.iter().cloned());
                }
            }
        }
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every registered timer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &K, &N)> {
        let batch = self.batch.iter().map(|kn| (self.batch_time, &kn.0, &kn.1));
        self.by_time
            .iter()
            .flat_map(|(t, set)| set.iter().map(move |kn| (*t, &kn.0, &kn.1)))
            .chain(batch)
    }
}

impl<K, N> TimerQueue<K, N>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    N: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// Adds the timers to `out` per key group, as sections called `section`: copied now,
    /// encoded later.
    pub fn snapshot(
        &self,
        section: &str,
        max_parallelism: u32,
        out: &mut OperatorSubtaskState,
    ) -> Result<()> {
        let mut per_kg: BTreeMap<u32, Vec<(i64, K, N)>> = BTreeMap::new();
        for (t, k, n) in self.iter() {
            per_kg
                .entry(key_group_for_key(k, max_parallelism))
                .or_default()
                .push((t, k.clone(), n.clone()));
        }
        out.defer(defer_sections(
            section.to_string(),
            per_kg.into_iter().collect(),
        ));
        Ok(())
    }

    /// Registers the timers of the sections called `section` in `restored`.
    pub fn restore(&mut self, section: &str, restored: &RestoredState) -> Result<()> {
        for (_, bytes) in restored.sections(section) {
            let timers: Vec<(i64, K, N)> = decode(section, bytes)?;
            for (t, k, n) in timers {
                self.register(t, k, n);
            }
        }
        Ok(())
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

    #[test]
    fn changes_while_a_batch_fires() {
        let mut q: TimerQueue<u32, ()> = TimerQueue::default();
        for k in 0..5 {
            q.register(10, k, ());
        }
        let (_, first, _) = q.pop_due(100).unwrap();
        // Delete another timer of the batch, re-register the fired one, add an earlier one.
        let other = (0..5).find(|k| *k != first).unwrap();
        assert!(q.delete(10, &other, &()));
        assert!(
            q.register(10, first, ()),
            "a fired timer can be registered again"
        );
        assert!(!q.register(10, first, ()));
        q.register(5, 99, ());
        assert_eq!(
            q.pop_due(100).map(|t| (t.0, t.1)),
            Some((5, 99)),
            "earlier timers first"
        );
        let mut rest = Vec::new();
        while let Some((t, k, _)) = q.pop_due(100) {
            rest.push((t, k));
        }
        rest.sort();
        let mut want: Vec<(i64, u32)> = (0..5).filter(|k| *k != other).map(|k| (10, k)).collect();
        want.sort();
        assert_eq!(rest, want);
        assert!(q.is_empty());
        assert_eq!(q.peek(), None);
    }
}
