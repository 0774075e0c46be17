//! The table of a map state, on either backend: per (key, namespace) a map of user keys to
//! values.
//!
//! On the heap each (key, namespace) holds one hash map, changed in place. In RocksDB each
//! user key is its own entry ([`RocksMapTable`]), so reading or writing one user key does
//! not decode the map. Both write the same snapshot sections: a `Vec<((K, N),
//! HashMap<UK, V>)>` per key group, so savepoints move between the backends.

use crate::error::Result;
use crate::heap_table::HeapTable;
use crate::rocks_map::RocksMapTable;
use crate::snapshot::{decode, OperatorSubtaskState};
use crate::table::{slot_of, TableTypes};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use weir_core::KeyGroupRange;

/// User key -> value maps by (key, namespace), on the heap or in RocksDB.
pub enum MapTable<K, N, UK, V> {
    /// One hash map per (key, namespace), in hash tables per key group.
    Heap(HeapTable<K, N, HashMap<UK, V>>),
    /// One RocksDB entry per user key.
    Rocks(RocksMapTable<K, N, UK, V>),
}

impl<K, N, UK, V> MapTable<K, N, UK, V>
where
    K: TableTypes,
    N: TableTypes,
    UK: TableTypes,
    V: Clone + Send + Serialize + DeserializeOwned + 'static,
{
    /// The value of `user_key` in the map of (`key`, `ns`).
    pub fn get(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK) -> Result<Option<V>> {
        match self {
            MapTable::Heap(t) => Ok(t.get(slot, key, ns).and_then(|m| m.get(user_key)).cloned()),
            MapTable::Rocks(t) => t.get(slot, key, ns, user_key),
        }
    }

    /// Sets the value of `user_key`.
    pub fn put(&mut self, slot: usize, key: &K, ns: &N, user_key: UK, value: V) -> Result<()> {
        match self {
            MapTable::Heap(t) => {
                t.get_or_insert_with(slot, key, ns, HashMap::new)
                    .insert(user_key, value);
                Ok(())
            }
            MapTable::Rocks(t) => t.put(slot, key, ns, &user_key, &value),
        }
    }

    /// Removes `user_key` (and, on the heap, the map when it is left empty).
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        match self {
            MapTable::Heap(t) => {
                if let Some(m) = t.get_mut(slot, key, ns) {
                    m.remove(user_key);
                    if m.is_empty() {
                        t.remove(slot, key, ns);
                    }
                }
                Ok(())
            }
            MapTable::Rocks(t) => t.remove(slot, key, ns, user_key),
        }
    }

    /// Every entry of the map of (`key`, `ns`) (unordered on the heap, by user-key bytes in
    /// RocksDB).
    pub fn entries(&mut self, slot: usize, key: &K, ns: &N) -> Result<Vec<(UK, V)>> {
        match self {
            MapTable::Heap(t) => Ok(t
                .get(slot, key, ns)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()),
            MapTable::Rocks(t) => t.entries(slot, key, ns),
        }
    }

    /// True if the map of (`key`, `ns`) has no entry.
    pub fn map_is_empty(&mut self, slot: usize, key: &K, ns: &N) -> Result<bool> {
        match self {
            MapTable::Heap(t) => Ok(t.get(slot, key, ns).is_none_or(HashMap::is_empty)),
            MapTable::Rocks(t) => t.map_is_empty(slot, key, ns),
        }
    }

    /// Removes the map of (`key`, `ns`).
    pub fn clear(&mut self, slot: usize, key: &K, ns: &N) -> Result<()> {
        match self {
            MapTable::Heap(t) => {
                t.remove(slot, key, ns);
                Ok(())
            }
            MapTable::Rocks(t) => t.clear(slot, key, ns),
        }
    }

    /// Number of (key, namespace) pairs holding a map.
    pub fn len(&self) -> usize {
        match self {
            MapTable::Heap(t) => t.len(),
            MapTable::Rocks(t) => t.len(),
        }
    }

    /// True if no (key, namespace) holds a map.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key groups of the table.
    pub fn key_group_range(&self) -> KeyGroupRange {
        match self {
            MapTable::Heap(t) => t.key_group_range(),
            MapTable::Rocks(t) => t.key_group_range(),
        }
    }

    /// The keys holding a map in namespace `ns`, over all key groups of the table.
    pub fn keys_in(&mut self, ns: &N) -> Result<Vec<K>> {
        let range = self.key_group_range();
        let mut out = Vec::new();
        for kg in range.start..range.end {
            match self {
                MapTable::Heap(t) => out.extend(
                    t.iter_key_group(kg)
                        .filter(|((_, n), _)| n == ns)
                        .map(|((k, _), _)| k.clone()),
                ),
                MapTable::Rocks(t) => out.extend(
                    t.maps_of_key_group(kg)?
                        .into_iter()
                        .filter(|(_, n)| n == ns)
                        .map(|(k, _)| k),
                ),
            }
        }
        Ok(out)
    }

    /// Changes or drops each map with `keep` (heap tables; a RocksDB table is left as it
    /// is).
    pub fn retain_heap(&mut self, keep: impl FnMut(&mut HashMap<UK, V>) -> bool) {
        if let MapTable::Heap(t) = self {
            t.retain(keep);
        }
    }

    /// Adds the maps to `out` as sections called `section`: the heap copies them now; a
    /// RocksDB table holds nothing back, its store's snapshot has the entries.
    pub fn snapshot(&mut self, section: &str, out: &mut OperatorSubtaskState) -> Result<()> {
        match self {
            MapTable::Heap(t) => t.snapshot(section, out),
            MapTable::Rocks(_) => Ok(()),
        }
    }

    /// Inserts the maps of a snapshot section of key group `kg` (either backend's).
    pub fn restore_key_group(&mut self, kg: u32, bytes: &[u8], name: &str) -> Result<()> {
        let slot = slot_of(self.key_group_range(), kg)?;
        let maps: Vec<((K, N), HashMap<UK, V>)> = decode(name, bytes)?;
        for ((k, n), map) in maps {
            match self {
                MapTable::Heap(t) => {
                    t.get_or_insert_with(slot, &k, &n, HashMap::new).extend(map);
                }
                MapTable::Rocks(t) => {
                    for (uk, v) in map {
                        t.put(slot, &k, &n, &uk, &v)?;
                    }
                }
            }
        }
        Ok(())
    }
}
