//! The heap backend's state table: values by (key, namespace), one hash table per key group.
//!
//! This is the heap backend's storage. The key group of a key is computed once per record
//! when the operator sets its current key, and passed in as a slot index, so a lookup hashes
//! the key only once more (for the table itself). Lookups borrow the key and namespace; they
//! are cloned only when a new entry is inserted.

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use weir_core::key_group::StableHasher;
use weir_core::KeyGroupRange;

/// A borrowed (key, namespace) pair that hashes like the owned tuple.
struct Lookup<'a, K, N>(&'a K, &'a N);

impl<K: Hash, N: Hash> Hash for Lookup<'_, K, N> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // The same sequence of writes as `(K, N)::hash`.
        self.0.hash(h);
        self.1.hash(h);
    }
}

#[inline]
fn hash_of<K: Hash, N: Hash>(key: &K, ns: &N) -> u64 {
    BuildHasherDefault::<StableHasher>::default().hash_one(Lookup(key, ns))
}

type Slot<K, N, V> = ((K, N), V);

/// Owned entries per key group, as a snapshot copies them.
pub type KeyGroupEntries<K, N, V> = Vec<(u32, Vec<((K, N), V)>)>;

/// Values by (key, namespace), partitioned by key group.
pub struct HeapTable<K, N, V> {
    range: KeyGroupRange,
    groups: Vec<HashTable<Slot<K, N, V>>>,
    len: usize,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone, V> HeapTable<K, N, V> {
    /// An empty table for the key groups in `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        HeapTable {
            range,
            groups: (0..range.len()).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }

    /// The value of (`key`, `ns`) in key-group slot `slot` (key group minus range start).
    #[inline]
    pub fn get(&self, slot: usize, key: &K, ns: &N) -> Option<&V> {
        self.groups[slot]
            .find(hash_of(key, ns), |e| e.0 .0 == *key && e.0 .1 == *ns)
            .map(|e| &e.1)
    }

    /// The value for update.
    #[inline]
    pub fn get_mut(&mut self, slot: usize, key: &K, ns: &N) -> Option<&mut V> {
        self.groups[slot]
            .find_mut(hash_of(key, ns), |e| e.0 .0 == *key && e.0 .1 == *ns)
            .map(|e| &mut e.1)
    }

    /// The value for update, inserted with `init` if absent (one probe either way).
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        slot: usize,
        key: &K,
        ns: &N,
        init: impl FnOnce() -> V,
    ) -> &mut V {
        let hash = hash_of(key, ns);
        match self.groups[slot].entry(
            hash,
            |e| e.0 .0 == *key && e.0 .1 == *ns,
            |e| hash_of(&e.0 .0, &e.0 .1),
        ) {
            Entry::Occupied(o) => &mut o.into_mut().1,
            Entry::Vacant(v) => {
                self.len += 1;
                &mut v.insert(((key.clone(), ns.clone()), init())).into_mut().1
            }
        }
    }

    /// Sets the value; returns the previous one.
    #[inline]
    pub fn insert(&mut self, slot: usize, key: &K, ns: &N, value: V) -> Option<V> {
        let hash = hash_of(key, ns);
        match self.groups[slot].entry(
            hash,
            |e| e.0 .0 == *key && e.0 .1 == *ns,
            |e| hash_of(&e.0 .0, &e.0 .1),
        ) {
            Entry::Occupied(mut o) => Some(std::mem::replace(&mut o.get_mut().1, value)),
            Entry::Vacant(v) => {
                self.len += 1;
                v.insert(((key.clone(), ns.clone()), value));
                None
            }
        }
    }

    /// Removes the value.
    #[inline]
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N) -> Option<V> {
        let found =
            self.groups[slot].find_entry(hash_of(key, ns), |e| e.0 .0 == *key && e.0 .1 == *ns);
        match found {
            Ok(o) => {
                self.len -= 1;
                Some(o.remove().0 .1)
            }
            Err(_) => None,
        }
    }

    /// Keeps the entries for which `keep` returns true (it may change them), removes the
    /// others.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        let mut removed = 0;
        for g in &mut self.groups {
            g.retain(|e| {
                let k = keep(&mut e.1);
                if !k {
                    removed += 1;
                }
                k
            });
        }
        self.len -= removed;
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
        slot.into_iter()
            .flat_map(move |s| self.groups[s].iter().map(|e| (&e.0, &e.1)))
    }
}

impl<K, N, V> HeapTable<K, N, V>
where
    K: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    N: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// A copy of the entries per key group, as [`Self::snapshot`] encodes them.
    pub fn copy_entries(&self) -> KeyGroupEntries<K, N, V> {
        (self.range.start..self.range.end)
            .map(|kg| {
                let entries: Vec<((K, N), V)> = self
                    .iter_key_group(kg)
                    .map(|(kn, v)| (kn.clone(), v.clone()))
                    .collect();
                (kg, entries)
            })
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }

    /// Adds the entries to `out` per key group, as sections called `section`: a copy is
    /// taken now and encoded later.
    pub fn snapshot(
        &self,
        section: &str,
        out: &mut crate::snapshot::OperatorSubtaskState,
    ) -> crate::Result<()> {
        out.defer(crate::snapshot::defer_sections(
            section.to_string(),
            self.copy_entries(),
        ));
        Ok(())
    }

    /// Inserts the entries of the sections called `section` in `restored`.
    pub fn restore(
        &mut self,
        section: &str,
        restored: &crate::snapshot::RestoredState,
    ) -> crate::Result<()> {
        for (kg, bytes) in restored.sections(section) {
            if !self.range.contains(kg) {
                return Err(crate::StateError::KeyGroupOutOfRange {
                    key_group: kg,
                    start: self.range.start,
                    end: self.range.end,
                });
            }
            let slot = (kg - self.range.start) as usize;
            let entries: Vec<((K, N), V)> = crate::snapshot::decode(section, bytes)?;
            for ((k, n), v) in entries {
                self.insert(slot, &k, &n, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_by_key_and_namespace() {
        let mut t: HeapTable<String, i64, u32> = HeapTable::new(KeyGroupRange { start: 4, end: 8 });
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
