//! The keyed state backend of an operator subtask: the current key, and the registered
//! state tables, on the heap or in RocksDB (see [`KeyedStore`]).

use crate::error::{Result, StateError};
use crate::map_table::MapTable;
use crate::rocks::TableKind;
use crate::snapshot::{decode, OperatorSubtaskState, RestoredState};
use crate::table::{slot_of, KeyedStore, StateTable, TableTypes};
use crate::ttl::{Expiring, StateTtlConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use weir_core::key_group::{key_group_for_key, KeyGroupRange};

/// What a key must be to index keyed state: hashable, and serialisable for snapshots.
pub trait StateKey: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> StateKey for T {}

/// What a namespace (e.g. a window) must be.
pub trait Namespace: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> Namespace for T {}

/// What a state value must be: sendable between threads and serialisable for snapshots.
pub trait StateValue: Send + Serialize + DeserializeOwned + 'static {}
impl<T: Send + Serialize + DeserializeOwned + 'static> StateValue for T {}

/// Prefix of the snapshot sections that hold registered states.
const SECTION_PREFIX: &str = "state/";

/// Index of a registered state in its backend.
pub type StateId = usize;

/// Milliseconds of processing time, for state TTL; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

trait ErasedTable: Send {
    fn len(&self) -> usize;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Adds the table to `out` as sections called `section` (see [`StateTable::snapshot`]).
    fn snapshot_into(&mut self, section: &str, out: &mut OperatorSubtaskState) -> Result<()>;
    fn restore_key_group(&mut self, kg: u32, bytes: &[u8], name: &str) -> Result<()>;
}

impl<K: TableTypes, N: TableTypes, V: StateValue + Clone> ErasedTable for StateTable<K, N, V> {
    fn len(&self) -> usize {
        StateTable::len(self)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn snapshot_into(&mut self, section: &str, out: &mut OperatorSubtaskState) -> Result<()> {
        self.snapshot(section, out)
    }
    fn restore_key_group(&mut self, kg: u32, bytes: &[u8], name: &str) -> Result<()> {
        let entries: Vec<((K, N), V)> = decode(name, bytes)?;
        let slot = slot_of(self.key_group_range(), kg)?;
        for ((k, n), v) in entries {
            self.insert(slot, &k, &n, v)?;
        }
        Ok(())
    }
}

impl<K: TableTypes, N: TableTypes, UK: TableTypes, V: StateValue + Clone> ErasedTable
    for MapTable<K, N, UK, V>
{
    fn len(&self) -> usize {
        MapTable::len(self)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn snapshot_into(&mut self, section: &str, out: &mut OperatorSubtaskState) -> Result<()> {
        self.snapshot(section, out)
    }
    fn restore_key_group(&mut self, kg: u32, bytes: &[u8], name: &str) -> Result<()> {
        MapTable::restore_key_group(self, kg, bytes, name)
    }
}

struct Registered {
    name: String,
    table: Box<dyn ErasedTable>,
    /// For a state with time-to-live: its configuration, and how to drop its expired
    /// values (typed for the table).
    ttl: Option<(StateTtlConfig, PurgeFn)>,
}

/// Drops the expired values of an erased table of a state with time-to-live.
type PurgeFn = fn(&mut dyn ErasedTable, &StateTtlConfig, i64);

/// A [`PurgeFn`] for tables of `(K, N) -> V`.
fn purge_table<K: TableTypes, N: TableTypes, V: StateValue + Clone + Expiring>(
    table: &mut dyn ErasedTable,
    cfg: &StateTtlConfig,
    now: i64,
) {
    if let Some(t) = table.as_any_mut().downcast_mut::<StateTable<K, N, V>>() {
        t.retain_heap(|v| v.purge_expired(cfg, now));
    }
}

/// A [`PurgeFn`] for map tables of `(K, N) -> UK -> V`.
fn purge_map_table<K: TableTypes, N: TableTypes, UK: TableTypes, V>(
    table: &mut dyn ErasedTable,
    cfg: &StateTtlConfig,
    now: i64,
) where
    V: StateValue + Clone,
    HashMap<UK, V>: Expiring,
{
    if let Some(t) = table.as_any_mut().downcast_mut::<MapTable<K, N, UK, V>>() {
        t.retain_heap(|m| m.purge_expired(cfg, now));
    }
}

/// The table of registered state `id`, as the type `T` it was registered with.
fn typed_table<T: 'static>(states: &mut [Registered], id: StateId) -> Result<&mut T> {
    let r = states.get_mut(id).ok_or(StateError::UnknownState(id))?;
    let name = &r.name;
    r.table
        .as_any_mut()
        .downcast_mut::<T>()
        .ok_or_else(|| StateError::TypeMismatch { name: name.clone() })
}

/// A map table with the current key and its key-group slot.
pub type MapAccess<'a, K, N, UK, V> = (&'a mut MapTable<K, N, UK, V>, &'a K, usize);

/// Keyed state of one operator subtask.
pub struct KeyedStateBackend<K> {
    range: KeyGroupRange,
    store: KeyedStore,
    max_parallelism: u32,
    key: Option<K>,
    slot: usize,
    states: Vec<Registered>,
    by_name: HashMap<String, StateId>,
    clock: Clock,
    /// Restored sections of states not registered yet (their types are known on
    /// registration): state name -> (key group, bytes).
    pending: HashMap<String, Vec<(u32, Vec<u8>)>>,
}

impl<K: StateKey> KeyedStateBackend<K> {
    /// A heap backend for the key groups `range` out of `max_parallelism`.
    pub fn new(range: KeyGroupRange, max_parallelism: u32) -> Self {
        Self::with_store(KeyedStore::Heap(range), max_parallelism)
    }

    /// A backend whose states live in `store` (which may hold other tables of the
    /// operator too).
    pub fn with_store(store: KeyedStore, max_parallelism: u32) -> Self {
        KeyedStateBackend {
            range: store.key_group_range(),
            store,
            max_parallelism,
            key: None,
            slot: 0,
            states: Vec::new(),
            by_name: HashMap::new(),
            clock: Arc::new(crate::ttl::wall_clock_ms),
            pending: HashMap::new(),
        }
    }

    /// Replaces the processing-time clock used for TTL.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Processing time in milliseconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Makes `key` the key that state accesses refer to.
    #[inline]
    pub fn set_current_key(&mut self, key: K) -> Result<()> {
        let kg = key_group_for_key(&key, self.max_parallelism);
        if !self.range.contains(kg) {
            return Err(StateError::KeyGroupOutOfRange {
                key_group: kg,
                start: self.range.start,
                end: self.range.end,
            });
        }
        self.slot = (kg - self.range.start) as usize;
        self.key = Some(key);
        Ok(())
    }

    /// The key-group slot (key group minus the range start) of the current key, for tables
    /// an operator keeps outside the backend.
    #[inline]
    pub fn current_slot(&self) -> usize {
        self.slot
    }

    /// The current key.
    #[inline]
    pub fn current_key(&self) -> Result<&K> {
        self.key.as_ref().ok_or(StateError::NoCurrentKey)
    }

    /// Registers a state table named `name` holding `V` per (key, `N`), or finds the one
    /// registered before under that name (which must hold the same types).
    pub fn register<N: Namespace, V: StateValue + Clone>(&mut self, name: &str) -> Result<StateId> {
        self.register_table(name, |store, section| store.table::<K, N, V>(section))
    }

    /// Registers a map state's table named `name`, holding a map of `UK` to `V` per (key,
    /// `N`), or finds the one registered before (which must hold the same types). In
    /// RocksDB each user key is an entry of its own.
    pub fn register_map<N: Namespace, UK: StateKey, V: StateValue + Clone>(
        &mut self,
        name: &str,
    ) -> Result<StateId> {
        self.register_table(name, |store, section| {
            store.map_table::<K, N, UK, V>(section)
        })
    }

    /// [`Self::register_map`] for a map state with time-to-live `cfg` (see
    /// [`Self::register_with_ttl`]).
    pub fn register_map_with_ttl<N: Namespace, UK: StateKey, V: StateValue + Clone>(
        &mut self,
        name: &str,
        cfg: StateTtlConfig,
    ) -> Result<StateId>
    where
        HashMap<UK, V>: Expiring,
    {
        let id = self.register_map::<N, UK, V>(name)?;
        self.states[id].ttl = Some((cfg, purge_map_table::<K, N, UK, V>));
        self.expire_in_store(name, TableKind::Map, cfg)?;
        Ok(id)
    }

    /// In RocksDB, lets compactions and full snapshots drop the expired entries of state
    /// `name` (see [`crate::rocks`]); the heap drops them at every snapshot instead.
    fn expire_in_store(&self, name: &str, kind: TableKind, cfg: StateTtlConfig) -> Result<()> {
        match &self.store {
            KeyedStore::Rocks(s) => s.set_ttl(
                &format!("{SECTION_PREFIX}{name}"),
                kind,
                cfg,
                self.clock.clone(),
            ),
            KeyedStore::Heap(_) => Ok(()),
        }
    }

    /// Registers the table `make` opens (from the store and the section name), or finds
    /// the one registered under `name` before, which must be a `T`.
    fn register_table<T: ErasedTable + 'static>(
        &mut self,
        name: &str,
        make: impl FnOnce(&KeyedStore, &str) -> Result<T>,
    ) -> Result<StateId> {
        if let Some(&id) = self.by_name.get(name) {
            if self.states[id]
                .table
                .as_any_mut()
                .downcast_mut::<T>()
                .is_none()
            {
                return Err(StateError::TypeMismatch { name: name.into() });
            }
            return Ok(id);
        }
        let id = self.states.len();
        let mut table = make(&self.store, &format!("{SECTION_PREFIX}{name}"))?;
        for (kg, bytes) in self.pending.remove(name).unwrap_or_default() {
            table.restore_key_group(kg, &bytes, name)?;
        }
        self.states.push(Registered {
            name: name.to_string(),
            table: Box::new(table),
            ttl: None,
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// [`Self::register`] for a state with time-to-live `cfg`: its expired values are
    /// dropped at every snapshot (heap tables; Flink's cleanup in full snapshots), also
    /// those of keys never read again.
    pub fn register_with_ttl<N: Namespace, V: StateValue + Clone + Expiring>(
        &mut self,
        name: &str,
        cfg: StateTtlConfig,
    ) -> Result<StateId> {
        let id = self.register::<N, V>(name)?;
        self.states[id].ttl = Some((cfg, purge_table::<K, N, V>));
        if V::SINGLE {
            self.expire_in_store(name, TableKind::Value, cfg)?;
        }
        Ok(id)
    }

    /// The table of state `id`, with the current key and its key-group slot.
    #[inline]
    pub fn table<N: Namespace, V: StateValue>(
        &mut self,
        id: StateId,
    ) -> Result<(&mut StateTable<K, N, V>, &K, usize)> {
        // The per-record path: written out here rather than through `typed_table`, so that
        // the code measured in `bench/RESULTS.md` stays as it was.
        let key = self.key.as_ref().ok_or(StateError::NoCurrentKey)?;
        let r = self
            .states
            .get_mut(id)
            .ok_or(StateError::UnknownState(id))?;
        let name = &r.name;
        let table = r
            .table
            .as_any_mut()
            .downcast_mut::<StateTable<K, N, V>>()
            .ok_or_else(|| StateError::TypeMismatch { name: name.clone() })?;
        Ok((table, key, self.slot))
    }

    /// The map table of map state `id`, with the current key and its key-group slot.
    #[inline]
    pub fn map_table<N: Namespace, UK: StateKey, V: StateValue>(
        &mut self,
        id: StateId,
    ) -> Result<MapAccess<'_, K, N, UK, V>> {
        let key = self.key.as_ref().ok_or(StateError::NoCurrentKey)?;
        let table = typed_table::<MapTable<K, N, UK, V>>(&mut self.states, id)?;
        Ok((table, key, self.slot))
    }

    /// The keys holding a map of map state `id` in namespace `ns`.
    pub fn map_keys_of<N: Namespace, UK: StateKey, V: StateValue + Clone>(
        &mut self,
        id: StateId,
        ns: &N,
    ) -> Result<Vec<K>> {
        typed_table::<MapTable<K, N, UK, V>>(&mut self.states, id)?.keys_in(ns)
    }

    /// The keys holding a value of state `id` in namespace `ns`, over this subtask's key
    /// groups (for operations over all keys, such as Flink's `applyToKeyedState`).
    pub fn keys_of<N: Namespace, V: StateValue + Clone>(
        &mut self,
        id: StateId,
        ns: &N,
    ) -> Result<Vec<K>> {
        typed_table::<StateTable<K, N, V>>(&mut self.states, id)?.keys_in(ns)
    }

    /// Entries over all states: (key, namespace) pairs holding a value.
    pub fn entries(&self) -> usize {
        self.states.iter().map(|s| s.table.len()).sum()
    }

    /// Entries of the state called `name`.
    pub fn entries_of(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map_or(0, |&id| self.states[id].table.len())
    }

    /// The key groups this backend holds.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// The number of key groups of the job (the max parallelism).
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// The store the states live in, for the operator's other tables.
    pub fn store(&self) -> &KeyedStore {
        &self.store
    }

    /// Adds every state per key group to `out` (sections `state/<name>`), including
    /// restored state of names no function has used since the restore: copies now, encoded
    /// later. RocksDB tables only write back here: snapshot the store after the operator's
    /// other tables ([`Self::snapshot_with_store`]).
    pub fn snapshot(&mut self, out: &mut OperatorSubtaskState) -> Result<()> {
        let now = (self.clock)();
        for r in &mut self.states {
            if let Some((cfg, purge)) = &r.ttl {
                purge(r.table.as_mut(), cfg, now);
            }
        }
        for r in &mut self.states {
            r.table
                .snapshot_into(&format!("{SECTION_PREFIX}{}", r.name), out)?;
        }
        for (name, groups) in &self.pending {
            let section = format!("{SECTION_PREFIX}{name}");
            for (kg, bytes) in groups {
                out.add_section(*kg, &section, bytes.clone());
            }
        }
        Ok(())
    }

    /// [`Self::snapshot`], then the store: for an operator whose only tables are the
    /// backend's (or that wrote its other tables back before).
    pub fn snapshot_with_store(
        &mut self,
        full: bool,
        shared: Option<&str>,
        out: &mut OperatorSubtaskState,
    ) -> Result<()> {
        self.snapshot(out)?;
        self.store.snapshot(full, shared, out)
    }

    /// Loads the backend files of `restored` into the store, then the `state/<name>`
    /// sections. States registered already are filled at once; the others when they are
    /// registered.
    pub fn restore(&mut self, restored: &RestoredState) -> Result<()> {
        self.store.restore(restored)?;
        for (kg, section, bytes) in restored.all_sections() {
            let Some(name) = section.strip_prefix(SECTION_PREFIX) else {
                continue;
            };
            match self.by_name.get(name) {
                Some(&id) => self.states[id].table.restore_key_group(kg, bytes, name)?,
                None => self
                    .pending
                    .entry(name.to_string())
                    .or_default()
                    .push((kg, bytes.to_vec())),
            }
        }
        Ok(())
    }
}
