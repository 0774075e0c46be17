//! A hash map partitioned by key group: the heap backend's storage for one keyed state.

use crate::error::{Result, StateError};
use crate::snapshot::{decode, defer_sections, OperatorSubtaskState, RestoredState};
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use weir_core::key_group::{key_group_for_hash, stable_hash};
use weir_core::KeyGroupRange;

/// Values by key, stored in one table per key group of the owning subtask's range. A key's
/// stable hash is computed once per access and serves both for its key group and as the
/// table hash.
pub struct KeyGroupedMap<K, V> {
    range: KeyGroupRange,
    max_parallelism: u32,
    groups: Vec<HashTable<(u64, K, V)>>,
    len: usize,
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    /// An empty map for the key groups `range` out of `max_parallelism`.
    pub fn new(range: KeyGroupRange, max_parallelism: u32) -> Self {
        KeyGroupedMap {
            range,
            max_parallelism,
            groups: (0..range.len()).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }

    /// The key group of `key`.
    #[inline]
    pub fn key_group_of(&self, key: &K) -> u32 {
        key_group_for_hash(stable_hash(key), self.max_parallelism)
    }

    /// The key's hash and key-group slot.
    #[inline]
    fn locate(&self, key: &K) -> Result<(u64, usize)> {
        let hash = stable_hash(key);
        let kg = key_group_for_hash(hash, self.max_parallelism);
        if self.range.contains(kg) {
            Ok((hash, (kg - self.range.start) as usize))
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
        let (h, s) = self.locate(key)?;
        Ok(self.groups[s]
            .find(h, |e| e.0 == h && e.1 == *key)
            .map(|e| &e.2))
    }

    /// The value of `key` for update, if any.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Result<Option<&mut V>> {
        let (h, s) = self.locate(key)?;
        Ok(self.groups[s]
            .find_mut(h, |e| e.0 == h && e.1 == *key)
            .map(|e| &mut e.2))
    }

    /// The value of `key` for update, inserted with `init` if absent (one probe).
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, init: impl FnOnce() -> V) -> Result<&mut V> {
        let (h, s) = self.locate(&key)?;
        Ok(
            match self.groups[s].entry(h, |e| e.0 == h && e.1 == key, |e| e.0) {
                Entry::Occupied(o) => &mut o.into_mut().2,
                Entry::Vacant(v) => {
                    self.len += 1;
                    &mut v.insert((h, key, init())).into_mut().2
                }
            },
        )
    }

    /// [`Self::get_or_insert_with`] with a borrowed key, cloned only if it is inserted.
    #[inline]
    pub fn get_or_insert_with_ref(&mut self, key: &K, init: impl FnOnce() -> V) -> Result<&mut V>
    where
        K: Clone,
    {
        let (h, s) = self.locate(key)?;
        Ok(
            match self.groups[s].entry(h, |e| e.0 == h && e.1 == *key, |e| e.0) {
                Entry::Occupied(o) => &mut o.into_mut().2,
                Entry::Vacant(v) => {
                    self.len += 1;
                    &mut v.insert((h, key.clone(), init())).into_mut().2
                }
            },
        )
    }

    /// Sets the value of `key`; returns the previous one.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>> {
        let (h, s) = self.locate(&key)?;
        Ok(
            match self.groups[s].entry(h, |e| e.0 == h && e.1 == key, |e| e.0) {
                Entry::Occupied(mut o) => Some(std::mem::replace(&mut o.get_mut().2, value)),
                Entry::Vacant(v) => {
                    self.len += 1;
                    v.insert((h, key, value));
                    None
                }
            },
        )
    }

    /// Removes the value of `key`.
    pub fn remove(&mut self, key: &K) -> Result<Option<V>> {
        let (h, s) = self.locate(key)?;
        Ok(
            match self.groups[s].find_entry(h, |e| e.0 == h && e.1 == *key) {
                Ok(o) => {
                    self.len -= 1;
                    Some(o.remove().0 .2)
                }
                Err(_) => None,
            },
        )
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
        let slot = self
            .range
            .contains(kg)
            .then(|| (kg - self.range.start) as usize);
        slot.into_iter()
            .flat_map(move |s| self.groups[s].iter().map(|e| (&e.1, &e.2)))
    }

    /// The key groups this map holds.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }
}

impl<K, V> KeyGroupedMap<K, V>
where
    K: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static,
    V: Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// Adds the entries to `out` per key group, as sections called `section`: a copy is
    /// taken now and encoded later (see [`OperatorSubtaskState::defer`]).
    pub fn snapshot(&self, section: &str, out: &mut OperatorSubtaskState) -> Result<()> {
        let copy: Vec<(u32, Vec<(K, V)>)> = (self.range.start..self.range.end)
            .map(|kg| {
                let entries: Vec<(K, V)> = self
                    .iter_key_group(kg)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (kg, entries)
            })
            .filter(|(_, e)| !e.is_empty())
            .collect();
        out.defer(defer_sections(section.to_string(), copy));
        Ok(())
    }

    /// Inserts the entries of the sections called `section` in `restored`.
    pub fn restore(&mut self, section: &str, restored: &RestoredState) -> Result<()> {
        for (_, bytes) in restored.sections(section) {
            let entries: Vec<(K, V)> = decode(section, bytes)?;
            for (k, v) in entries {
                self.insert(k, v)?;
            }
        }
        Ok(())
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
