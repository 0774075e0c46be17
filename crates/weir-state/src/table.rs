//! A state table: values by (key, namespace), one hash table per key group.
//!
//! This is the heap backend's storage. The key group of a key is computed once per record
//! when the operator sets its current key, and passed in as a slot index, so a lookup hashes
//! the key only once more (for the table itself). Lookups borrow the key and namespace; they
//! are cloned only when a new entry is inserted.

use hashbrown::{Equivalent, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use weir_core::key_group::StableHasher;
use weir_core::KeyGroupRange;

/// A borrowed (key, namespace) pair that hashes and compares like the owned tuple.
struct Lookup<'a, K, N>(&'a K, &'a N);

impl<K: Hash, N: Hash> Hash for Lookup<'_, K, N> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // The same sequence of writes as `(K, N)::hash`.
        self.0.hash(h);
        self.1.hash(h);
    }
}

impl<K: Eq, N: Eq> Equivalent<(K, N)> for Lookup<'_, K, N> {
    fn equivalent(&self, other: &(K, N)) -> bool {
        *self.0 == other.0 && *self.1 == other.1
    }
}

type Map<K, N, V> = HashMap<(K, N), V, BuildHasherDefault<StableHasher>>;

/// Values by (key, namespace), partitioned by key group.
pub struct StateTable<K, N, V> {
    range: KeyGroupRange,
    groups: Vec<Map<K, N, V>>,
    len: usize,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone, V> StateTable<K, N, V> {
    /// An empty table for the key groups in `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        StateTable {
            range,
            groups: (0..range.len()).map(|_| Map::default()).collect(),
            len: 0,
        }
    }

    /// The value of (`key`, `ns`) in key-group slot `slot` (key group minus range start).
    #[inline]
    pub fn get(&self, slot: usize, key: &K, ns: &N) -> Option<&V> {
        self.groups[slot].get(&Lookup(key, ns))
    }

    /// The value for update.
    #[inline]
    pub fn get_mut(&mut self, slot: usize, key: &K, ns: &N) -> Option<&mut V> {
        self.groups[slot].get_mut(&Lookup(key, ns))
    }

    /// The value for update, inserted with `init` if absent.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        slot: usize,
        key: &K,
        ns: &N,
        init: impl FnOnce() -> V,
    ) -> &mut V {
        let map = &mut self.groups[slot];
        if !map.contains_key(&Lookup(key, ns)) {
            map.insert((key.clone(), ns.clone()), init());
            self.len += 1;
        }
        map.get_mut(&Lookup(key, ns))
            .expect("the entry was just inserted")
    }

    /// Sets the value; returns the previous one.
    #[inline]
    pub fn insert(&mut self, slot: usize, key: &K, ns: &N, value: V) -> Option<V> {
        let map = &mut self.groups[slot];
        if let Some(v) = map.get_mut(&Lookup(key, ns)) {
            return Some(std::mem::replace(v, value));
        }
        map.insert((key.clone(), ns.clone()), value);
        self.len += 1;
        None
    }

    /// Removes the value.
    #[inline]
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N) -> Option<V> {
        let v = self.groups[slot].remove(&Lookup(key, ns));
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Number of (key, namespace) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key groups of the table.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Entries of key group `kg` (nothing if not owned).
    pub fn iter_key_group(&self, kg: u32) -> impl Iterator<Item = (&(K, N), &V)> {
        let slot = self
            .range
            .contains(kg)
            .then(|| (kg - self.range.start) as usize);
        slot.into_iter().flat_map(move |s| self.groups[s].iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_by_key_and_namespace() {
        let mut t: StateTable<String, i64, u32> =
            StateTable::new(KeyGroupRange { start: 4, end: 8 });
        let k = "a".to_string();
        assert_eq!(t.insert(0, &k, &1, 10), None);
        assert_eq!(t.insert(0, &k, &2, 20), None);
        assert_eq!(t.insert(0, &k, &1, 11), Some(10));
        *t.get_or_insert_with(1, &k, &1, || 0) += 5;
        assert_eq!(t.get(1, &k, &1), Some(&5));
        assert_eq!(t.get(0, &k, &1), Some(&11));
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove(0, &k, &2), Some(20));
        assert_eq!(t.len(), 2);
        assert_eq!(t.iter_key_group(5).count(), 1);
        assert_eq!(t.iter_key_group(100).count(), 0);
    }
}
