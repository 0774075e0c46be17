//! A hash map partitioned by key group: the heap backend's storage for one keyed state.

use crate::error::{Result, StateError};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};
use weir_core::key_group::{key_group_for_hash, stable_hash, StableHasher};
use weir_core::KeyGroupRange;

type Table<K, V> = HashMap<K, V, BuildHasherDefault<StableHasher>>;

/// Values by key, stored in one table per key group of the owning subtask's range.
pub struct KeyGroupedMap<K, V> {
    range: KeyGroupRange,
    max_parallelism: u32,
    groups: Vec<Table<K, V>>,
    len: usize,
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    /// An empty map for the key groups `range` out of `max_parallelism`.
    pub fn new(range: KeyGroupRange, max_parallelism: u32) -> Self {
        KeyGroupedMap {
            range,
            max_parallelism,
            groups: (0..range.len()).map(|_| Table::default()).collect(),
            len: 0,
        }
    }

    /// The key group of `key`.
    #[inline]
    pub fn key_group_of(&self, key: &K) -> u32 {
        key_group_for_hash(stable_hash(key), self.max_parallelism)
    }

    #[inline]
    fn slot(&self, kg: u32) -> Result<usize> {
        if self.range.contains(kg) {
            Ok((kg - self.range.start) as usize)
        } else {
            Err(StateError::KeyGroupOutOfRange {
                key_group: kg,
                start: self.range.start,
                end: self.range.end,
            })
        }
    }

    /// The value of `key`, if any.
    #[inline]
    pub fn get(&self, key: &K) -> Result<Option<&V>> {
        let s = self.slot(self.key_group_of(key))?;
        Ok(self.groups[s].get(key))
    }

    /// The value of `key` for update, if any.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>> {
        let s = self.slot(self.key_group_of(key))?;
        Ok(self.groups[s].get_mut(key))
    }

    /// The value of `key` for update, inserted with `init` if absent.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, init: impl FnOnce() -> V) -> Result<&mut V> {
        let s = self.slot(self.key_group_of(&key))?;
        use std::collections::hash_map::Entry;
        Ok(match self.groups[s].entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                self.len += 1;
                v.insert(init())
            }
        })
    }

    /// Sets the value of `key`; returns the previous one.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>> {
        let s = self.slot(self.key_group_of(&key))?;
        let old = self.groups[s].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// Removes the value of `key`.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>> {
        let s = self.slot(self.key_group_of(key))?;
        let old = self.groups[s].remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        Ok(old)
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries of key group `kg` (empty if not owned).
    pub fn iter_key_group(&self, kg: u32) -> impl Iterator<Item = (&K, &V)> {
        self.slot(kg)
            .ok()
            .into_iter()
            .flat_map(move |s| self.groups[s].iter())
    }

    /// The key groups this map holds.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::key_group::operator_index_for_key_group;

    #[test]
    fn stores_per_key_group_and_rejects_foreign_keys() {
        let range = KeyGroupRange::for_subtask(128, 2, 0);
        let mut m: KeyGroupedMap<String, i64> = KeyGroupedMap::new(range, 128);
        let mut own = Vec::new();
        let mut foreign = None;
        for i in 0..100 {
            let k = format!("k{i}");
            let kg = m.key_group_of(&k);
            if operator_index_for_key_group(128, 2, kg) == 0 {
                own.push(k);
            } else {
                foreign = Some(k);
            }
        }
        for (i, k) in own.iter().enumerate() {
            m.insert(k.clone(), i as i64).unwrap();
        }
        assert_eq!(m.len(), own.len());
        assert_eq!(m.get(&own[3]).unwrap(), Some(&3));
        *m.get_or_insert_with(own[3].clone(), || 0).unwrap() += 10;
        assert_eq!(m.get(&own[3]).unwrap(), Some(&13));
        assert_eq!(m.remove(&own[3]).unwrap(), Some(13));
        assert_eq!(m.len(), own.len() - 1);
        let err = m.insert(foreign.unwrap(), 1).unwrap_err();
        assert!(err.to_string().contains("not owned by this subtask"));
        let total: usize = (0..128).map(|kg| m.iter_key_group(kg).count()).sum();
        assert_eq!(total, m.len());
    }
}
