//! A state table of either backend, and the per-operator store that makes them.
//!
//! Operators keep their keyed structures (registered states, a keyed reduce's values,
//! window contents, join buffers) in [`StateTable`]s made by their [`KeyedStore`]: hash
//! tables on the heap, or tables of the operator's RocksDB instance. The API is the same;
//! every access is fallible because RocksDB reads and writes can fail.
//!
//! A snapshot writes each table ([`StateTable::snapshot`]) and then the store
//! ([`KeyedStore::snapshot`]): heap tables copy themselves, RocksDB tables only write back
//! their cached entry and the store snapshots the whole instance once.

use crate::error::Result;
use crate::heap_table::HeapTable;
use crate::map_table::MapTable;
use crate::rocks::{RocksDbOptions, RocksStore, RocksTable};
use crate::rocks_map::RocksMapTable;
use crate::rocks_memory::{RocksMemory, DEFAULT_BUDGET};
use crate::snapshot::{OperatorSubtaskState, RestoredState};
use crate::StateError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::sync::Arc;
use weir_core::config::{StateBackendConfig, StateBackendKind};
use weir_core::KeyGroupRange;

/// Values by (key, namespace), partitioned by key group, on the heap or in RocksDB.
pub enum StateTable<K, N, V> {
    /// Hash tables per key group.
    Heap(HeapTable<K, N, V>),
    /// A table of the operator's RocksDB instance.
    Rocks(RocksTable<K, N, V>),
}

/// What a table's key, namespace and value must be.
pub trait TableTypes: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> TableTypes for T {}

impl<K: TableTypes, N: TableTypes, V: Clone + Send + Serialize + DeserializeOwned + 'static>
    StateTable<K, N, V>
{
    /// A heap table for the key groups in `range`.
    pub fn heap(range: KeyGroupRange) -> Self {
        StateTable::Heap(HeapTable::new(range))
    }

    /// The value of (`key`, `ns`) in key-group slot `slot` (key group minus range start).
    #[inline]
    pub fn get(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<&V>> {
        match self {
            StateTable::Heap(t) => Ok(t.get(slot, key, ns)),
            StateTable::Rocks(t) => t.get(slot, key, ns),
        }
    }

    /// The value for update.
    #[inline]
    pub fn get_mut(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<&mut V>> {
        match self {
            StateTable::Heap(t) => Ok(t.get_mut(slot, key, ns)),
            StateTable::Rocks(t) => t.get_mut(slot, key, ns),
        }
    }

    /// The value for update, inserted with `init` if absent.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        slot: usize,
        key: &K,
        ns: &N,
        init: impl FnOnce() -> V,
    ) -> Result<&mut V> {
        match self {
            StateTable::Heap(t) => Ok(t.get_or_insert_with(slot, key, ns, init)),
            StateTable::Rocks(t) => t.get_or_insert_with(slot, key, ns, init),
        }
    }

    /// Sets the value.
    #[inline]
    pub fn insert(&mut self, slot: usize, key: &K, ns: &N, value: V) -> Result<()> {
        match self {
            StateTable::Heap(t) => {
                t.insert(slot, key, ns, value);
                Ok(())
            }
            StateTable::Rocks(t) => t.insert(slot, key, ns, value),
        }
    }

    /// Removes the value.
    #[inline]
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<V>> {
        match self {
            StateTable::Heap(t) => Ok(t.remove(slot, key, ns)),
            StateTable::Rocks(t) => t.remove(slot, key, ns),
        }
    }

    /// Number of (key, namespace) entries.
    pub fn len(&self) -> usize {
        match self {
            StateTable::Heap(t) => t.len(),
            StateTable::Rocks(t) => t.len(),
        }
    }

    /// True if the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the values `keep` rejects (it may change the ones it keeps, e.g. drop
    /// expired elements of a list). Heap tables only: a RocksDB table is left as it is
    /// (its expired values go when read, as before).
    pub fn retain_heap(&mut self, keep: impl FnMut(&mut V) -> bool) {
        if let StateTable::Heap(t) = self {
            t.retain(keep);
        }
    }

    /// The keys holding a value in namespace `ns`, over all key groups of the table (a
    /// RocksDB table reads them from the store).
    pub fn keys_in(&mut self, ns: &N) -> Result<Vec<K>> {
        let range = self.key_group_range();
        let mut out = Vec::new();
        for kg in range.start..range.end {
            match self {
                StateTable::Heap(t) => out.extend(
                    t.iter_key_group(kg)
                        .filter(|((_, n), _)| n == ns)
                        .map(|((k, _), _)| k.clone()),
                ),
                StateTable::Rocks(t) => out.extend(
                    t.entries_of_key_group(kg)?
                        .into_iter()
                        .filter(|((_, n), _)| n == ns)
                        .map(|((k, _), _)| k),
                ),
            }
        }
        Ok(out)
    }

    /// The key groups of the table.
    pub fn key_group_range(&self) -> KeyGroupRange {
        match self {
            StateTable::Heap(t) => t.key_group_range(),
            StateTable::Rocks(t) => t.key_group_range(),
        }
    }

    /// Adds the entries to `out` as sections called `section` (heap: a copy now, encoded
    /// later); a RocksDB table writes its cached entry back, and its store's snapshot holds
    /// it.
    pub fn snapshot(&mut self, section: &str, out: &mut OperatorSubtaskState) -> Result<()> {
        match self {
            StateTable::Heap(t) => t.snapshot(section, out),
            StateTable::Rocks(t) => t.flush(),
        }
    }

    /// Inserts the entries of the sections called `section` in `restored` (a full snapshot
    /// of either backend).
    pub fn restore(&mut self, section: &str, restored: &RestoredState) -> Result<()> {
        match self {
            StateTable::Heap(t) => t.restore(section, restored),
            StateTable::Rocks(t) => {
                for (kg, bytes) in restored.sections(section) {
                    let slot = slot_of(t.key_group_range(), kg)?;
                    let entries: Vec<((K, N), V)> = crate::snapshot::decode(section, bytes)?;
                    for ((k, n), v) in entries {
                        t.insert(slot, &k, &n, v)?;
                    }
                }
                t.flush()
            }
        }
    }
}

impl<K: TableTypes, N: TableTypes, E: Clone + Send + Serialize + DeserializeOwned + 'static>
    StateTable<K, N, Vec<E>>
{
    /// Appends `item` to the list of (`key`, `ns`); in RocksDB a merge that does not read
    /// the list.
    #[inline]
    pub fn append(&mut self, slot: usize, key: &K, ns: &N, item: E) -> Result<()> {
        match self {
            StateTable::Heap(t) => {
                t.get_or_insert_with(slot, key, ns, Vec::new).push(item);
                Ok(())
            }
            StateTable::Rocks(t) => {
                // A slice encodes as a Vec does: its length, then the element.
                let operand =
                    crate::snapshot::encode("a list state element", std::slice::from_ref(&item))?;
                t.merge_append(slot, key, ns, &operand)
            }
        }
    }

    /// Appends `items` (nothing if empty).
    pub fn append_all(&mut self, slot: usize, key: &K, ns: &N, items: Vec<E>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        match self {
            StateTable::Heap(t) => {
                t.get_or_insert_with(slot, key, ns, Vec::new).extend(items);
                Ok(())
            }
            StateTable::Rocks(t) => {
                let operand = crate::snapshot::encode("list state elements", &items)?;
                t.merge_append(slot, key, ns, &operand)
            }
        }
    }
}

/// The slot of key group `kg` in `range`, or the error for a key group not owned.
pub fn slot_of(range: KeyGroupRange, kg: u32) -> Result<usize> {
    if range.contains(kg) {
        Ok((kg - range.start) as usize)
    } else {
        Err(StateError::KeyGroupOutOfRange {
            key_group: kg,
            start: range.start,
            end: range.end,
        })
    }
}

/// Where one operator subtask keeps its keyed state: the heap, or its RocksDB instance.
#[derive(Clone, Debug)]
pub enum KeyedStore {
    /// Hash tables on the heap.
    Heap(KeyGroupRange),
    /// One RocksDB instance for all tables of the operator.
    Rocks(Arc<RocksStore>),
}

impl KeyedStore {
    /// The store `config` asks for, for the key groups `range`; `label` names the
    /// operator subtask (in RocksDB's working directory name).
    pub fn open(config: &StateBackendConfig, range: KeyGroupRange, label: &str) -> Result<Self> {
        match config.kind {
            StateBackendKind::Heap => Ok(KeyedStore::Heap(range)),
            StateBackendKind::RocksDb => {
                let local_dir = config
                    .local_dir
                    .clone()
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| std::env::temp_dir().join("weir-rocksdb"));
                let budget = config.rocksdb_memory_bytes.unwrap_or(DEFAULT_BUDGET);
                let options = RocksDbOptions {
                    local_dir,
                    incremental: config.incremental,
                    memory: Some(RocksMemory::for_budget(budget)),
                };
                Ok(KeyedStore::Rocks(RocksStore::open(&options, range, label)?))
            }
        }
    }

    /// The key groups of the store.
    pub fn key_group_range(&self) -> KeyGroupRange {
        match self {
            KeyedStore::Heap(r) => *r,
            KeyedStore::Rocks(s) => s.key_group_range(),
        }
    }

    /// A table called `name` (its snapshot section).
    pub fn table<K: TableTypes, N: TableTypes, V>(&self, name: &str) -> Result<StateTable<K, N, V>>
    where
        V: Clone + Send + Serialize + DeserializeOwned + 'static,
    {
        match self {
            KeyedStore::Heap(r) => Ok(StateTable::heap(*r)),
            KeyedStore::Rocks(s) => Ok(StateTable::Rocks(RocksTable::new(s.clone(), name)?)),
        }
    }

    /// A map state's table called `name`: in RocksDB one entry per user key.
    pub fn map_table<K: TableTypes, N: TableTypes, UK: TableTypes, V>(
        &self,
        name: &str,
    ) -> Result<MapTable<K, N, UK, V>>
    where
        V: Clone + Send + Serialize + DeserializeOwned + 'static,
    {
        match self {
            KeyedStore::Heap(r) => Ok(MapTable::Heap(HeapTable::new(*r))),
            KeyedStore::Rocks(s) => Ok(MapTable::Rocks(RocksMapTable::new(s.clone(), name)?)),
        }
    }

    /// Snapshots the RocksDB instance (after every table's [`StateTable::snapshot`]):
    /// `full` for savepoints; otherwise incremental when configured, its new SST files
    /// going to `shared` (a directory path or URL). Nothing for the heap.
    pub fn snapshot(
        &self,
        full: bool,
        shared: Option<&str>,
        out: &mut OperatorSubtaskState,
    ) -> Result<()> {
        match self {
            KeyedStore::Heap(_) => Ok(()),
            KeyedStore::Rocks(s) => s.snapshot(full, shared, out),
        }
    }

    /// Restores the backend files of `restored` (incremental RocksDB checkpoints); call
    /// before the tables restore their sections. A heap store cannot read them.
    pub fn restore(&self, restored: &RestoredState) -> Result<()> {
        match self {
            KeyedStore::Rocks(s) => s.restore_handles(restored),
            KeyedStore::Heap(_) if !restored.handles.is_empty() => Err(StateError::Restore(
                "the checkpoint holds incremental RocksDB state, which the heap backend cannot read; restore it with the RocksDB backend, or take a savepoint (savepoints are readable by both backends)".into(),
            )),
            KeyedStore::Heap(_) => Ok(()),
        }
    }
}
