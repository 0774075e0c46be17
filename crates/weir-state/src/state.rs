//! User-facing keyed state: typed handles (Flink's `ValueState`, `ListState`, `MapState`,
//! `ReducingState`, `AggregatingState`) that read and write the state of the current key.
//!
//! A handle is created from its name (Flink's state descriptor) when the function is built,
//! and used with the context a function is called with:
//!
//! ```ignore
//! let count = ValueState::<u64>::new("count");
//! // in process_element:
//! let n = count.value(ctx)?.unwrap_or(0) + 1;
//! count.update(ctx, n)?;
//! ```
//!
//! The context supplies the backend, the current key and the namespace (a window for
//! per-window state, `()` otherwise). A handle registers its table on first use and caches
//! the table's id; each subtask works on its own clone.

use crate::aggregate::AggregateFunction;
use crate::backend::{KeyedStateBackend, Namespace, StateId, StateKey, StateValue};
use crate::error::Result;
use crate::table::StateTable;
use crate::ttl::{on_read, Read, StateTtlConfig, TtlValue};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What gives state handles access to the backend: the current key and a namespace.
pub trait StateContext {
    /// The key type.
    type Key: StateKey;
    /// The namespace type (`()` outside windows).
    type Ns: Namespace;
    /// The backend and the current namespace.
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<Self::Key>, &Self::Ns);
}

const UNSET: usize = usize::MAX;

/// Name, TTL and cached registration of a state.
struct Handle {
    name: String,
    ttl: Option<StateTtlConfig>,
    id: AtomicUsize,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        // A clone may be used with another backend: resolve again.
        Handle {
            name: self.name.clone(),
            ttl: self.ttl,
            id: AtomicUsize::new(UNSET),
        }
    }
}

impl Handle {
    fn new(name: &str) -> Self {
        Handle {
            name: name.to_string(),
            ttl: None,
            id: AtomicUsize::new(UNSET),
        }
    }

    fn resolve<
        K: StateKey,
        N: Namespace,
        V: crate::backend::StateValue + Clone + crate::ttl::Expiring,
    >(
        &self,
        be: &mut KeyedStateBackend<K>,
    ) -> Result<StateId> {
        self.cached(|name, ttl| match ttl {
            Some(cfg) => be.register_with_ttl::<N, V>(name, cfg),
            None => be.register::<N, V>(name),
        })
    }

    fn resolve_map<K: StateKey, N: Namespace, UK: StateKey, UV: StateValue + Clone>(
        &self,
        be: &mut KeyedStateBackend<K>,
    ) -> Result<StateId> {
        self.cached(|name, ttl| match ttl {
            Some(cfg) => be.register_map_with_ttl::<N, UK, TtlValue<UV>>(name, cfg),
            None => be.register_map::<N, UK, TtlValue<UV>>(name),
        })
    }

    /// The cached registration, or the one `register` makes (from the name and TTL).
    fn cached(
        &self,
        register: impl FnOnce(&str, Option<StateTtlConfig>) -> Result<StateId>,
    ) -> Result<StateId> {
        let id = self.id.load(Ordering::Relaxed);
        if id != UNSET {
            return Ok(id);
        }
        let id = register(&self.name, self.ttl)?;
        self.id.store(id, Ordering::Relaxed);
        Ok(id)
    }

    fn now<K: StateKey>(&self, be: &KeyedStateBackend<K>) -> i64 {
        if self.ttl.is_some() {
            be.now()
        } else {
            0
        }
    }
}

/// Opens the table of a handle for the context's current key and namespace.
macro_rules! open {
    ($h:expr, $ctx:expr, $v:ty) => {{
        let (be, ns) = $ctx.state_parts();
        let id = $h.resolve::<_, C::Ns, $v>(be)?;
        let now = $h.now(be);
        let (table, key, slot) = be.table::<C::Ns, $v>(id)?;
        (table, key, slot, ns, now)
    }};
}

/// Opens the map table of a map state handle for the context's current key and namespace.
macro_rules! open_map {
    ($h:expr, $ctx:expr, $uk:ty, $uv:ty) => {{
        let (be, ns) = $ctx.state_parts();
        let id = $h.resolve_map::<_, C::Ns, $uk, $uv>(be)?;
        let now = $h.now(be);
        let (table, key, slot) = be.map_table::<C::Ns, $uk, TtlValue<$uv>>(id)?;
        (table, key, slot, ns, now)
    }};
}

/// A keyed state handle, for work over every key of the subtask (Flink's
/// `applyToKeyedState` in a keyed broadcast function).
pub trait KeyedState {
    /// The keys that hold a value of this state in the context's namespace, over the key
    /// groups of the subtask (expired TTL values included: reading them gives nothing).
    fn keys<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<C::Key>>;
}

/// Implements [`KeyedState`] for a handle type whose table holds `$v`.
macro_rules! keyed_state {
    ([$($g:tt)*] $ty:ty, $v:ty) => {
        impl<$($g)*> KeyedState for $ty {
            fn keys<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<C::Key>> {
                let (be, ns) = ctx.state_parts();
                let ns = ns.clone();
                let id = self.h.resolve::<_, C::Ns, $v>(be)?;
                be.keys_of::<C::Ns, $v>(id, &ns)
            }
        }
    };
}

keyed_state!([V: Clone + StateValue] ValueState<V>, TtlValue<V>);
keyed_state!([V: Clone + StateValue] ListState<V>, Vec<TtlValue<V>>);
keyed_state!([V: Clone + StateValue] ReducingState<V>, TtlValue<V>);
keyed_state!([IN: 'static, ACC: Clone + StateValue, OUT: 'static] AggregatingState<IN, ACC, OUT>, TtlValue<ACC>);

impl<UK: StateKey, UV: Clone + StateValue> KeyedState for MapState<UK, UV> {
    fn keys<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<C::Key>> {
        let (be, ns) = ctx.state_parts();
        let ns = ns.clone();
        let id = self.h.resolve_map::<_, C::Ns, UK, UV>(be)?;
        be.map_keys_of::<C::Ns, UK, TtlValue<UV>>(id, &ns)
    }
}

/// Reads a TTL'd single value, applying expiry and refresh.
fn read_value<K: StateKey, N: Namespace, V: Clone + StateValue>(
    cfg: Option<&StateTtlConfig>,
    t: &mut StateTable<K, N, TtlValue<V>>,
    slot: usize,
    key: &K,
    ns: &N,
    now: i64,
) -> Result<Option<V>> {
    Ok(
        match on_read(cfg, t.get(slot, key, ns)?.map(|v| v.ts), now) {
            Read::Missing => None,
            Read::Valid { refresh: false } => t.get(slot, key, ns)?.map(|v| v.value.clone()),
            Read::Valid { refresh: true } => t.get_mut(slot, key, ns)?.map(|v| {
                v.ts = now;
                v.value.clone()
            }),
            Read::ExpiredVisible => t.remove(slot, key, ns)?.map(|v| v.value),
            Read::ExpiredHidden => {
                t.remove(slot, key, ns)?;
                None
            }
        },
    )
}

/// One value per key (and namespace).
pub struct ValueState<V> {
    h: Handle,
    _t: PhantomData<fn() -> V>,
}

impl<V> Clone for ValueState<V> {
    fn clone(&self) -> Self {
        ValueState {
            h: self.h.clone(),
            _t: PhantomData,
        }
    }
}

impl<V: Clone + StateValue> ValueState<V> {
    /// A value state called `name`.
    pub fn new(name: &str) -> Self {
        ValueState {
            h: Handle::new(name),
            _t: PhantomData,
        }
    }

    /// With a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.h.ttl = Some(ttl);
        self
    }

    /// The current key's value.
    pub fn value<C: StateContext>(&self, ctx: &mut C) -> Result<Option<V>> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<V>);
        read_value(self.h.ttl.as_ref(), t, slot, k, ns, now)
    }

    /// Sets the current key's value.
    pub fn update<C: StateContext>(&self, ctx: &mut C, value: V) -> Result<()> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<V>);
        t.insert(slot, k, ns, TtlValue { value, ts: now })?;
        Ok(())
    }

    /// Removes the current key's value.
    pub fn clear<C: StateContext>(&self, ctx: &mut C) -> Result<()> {
        let (t, k, slot, ns, _) = open!(self.h, ctx, TtlValue<V>);
        t.remove(slot, k, ns)?;
        Ok(())
    }
}

/// A list of values per key; with TTL every element expires on its own.
pub struct ListState<V> {
    h: Handle,
    _t: PhantomData<fn() -> V>,
}

impl<V> Clone for ListState<V> {
    fn clone(&self) -> Self {
        ListState {
            h: self.h.clone(),
            _t: PhantomData,
        }
    }
}

impl<V: Clone + StateValue> ListState<V> {
    /// A list state called `name`.
    pub fn new(name: &str) -> Self {
        ListState {
            h: Handle::new(name),
            _t: PhantomData,
        }
    }

    /// With a time-to-live per element.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.h.ttl = Some(ttl);
        self
    }

    /// The current key's elements (empty if none).
    pub fn get<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<V>> {
        let cfg = self.h.ttl;
        let (t, k, slot, ns, now) = open!(self.h, ctx, Vec<TtlValue<V>>);
        if cfg.is_none() {
            // Without TTL a read changes nothing (RocksDB writes nothing back).
            return Ok(t
                .get(slot, k, ns)?
                .map(|l| l.iter().map(|e| e.value.clone()).collect())
                .unwrap_or_default());
        }
        let Some(list) = t.get_mut(slot, k, ns)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(list.len());
        if let Some(c) = cfg {
            list.retain_mut(|e| match on_read(Some(&c), Some(e.ts), now) {
                Read::Valid { refresh } => {
                    if refresh {
                        e.ts = now;
                    }
                    out.push(e.value.clone());
                    true
                }
                Read::ExpiredVisible => {
                    out.push(e.value.clone());
                    false
                }
                _ => false,
            });
            if list.is_empty() {
                t.remove(slot, k, ns)?;
            }
        } else {
            out.extend(list.iter().map(|e| e.value.clone()));
        }
        Ok(out)
    }

    /// Appends an element (in RocksDB a merge: the list is not read).
    pub fn add<C: StateContext>(&self, ctx: &mut C, value: V) -> Result<()> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, Vec<TtlValue<V>>);
        t.append(slot, k, ns, TtlValue { value, ts: now })
    }

    /// Appends elements.
    pub fn add_all<C: StateContext>(&self, ctx: &mut C, values: Vec<V>) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let (t, k, slot, ns, now) = open!(self.h, ctx, Vec<TtlValue<V>>);
        t.append_all(slot, k, ns, stamped(values, now))
    }

    /// Replaces the elements (an empty list clears the state).
    pub fn update<C: StateContext>(&self, ctx: &mut C, values: Vec<V>) -> Result<()> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, Vec<TtlValue<V>>);
        if values.is_empty() {
            t.remove(slot, k, ns)?;
        } else {
            t.insert(slot, k, ns, stamped(values, now))?;
        }
        Ok(())
    }

    /// Removes the current key's elements.
    pub fn clear<C: StateContext>(&self, ctx: &mut C) -> Result<()> {
        let (t, k, slot, ns, _) = open!(self.h, ctx, Vec<TtlValue<V>>);
        t.remove(slot, k, ns)?;
        Ok(())
    }
}

/// `values` with the access time `now`, as list state stores them.
fn stamped<V>(values: Vec<V>, now: i64) -> Vec<TtlValue<V>> {
    values
        .into_iter()
        .map(|value| TtlValue { value, ts: now })
        .collect()
}

/// A map per key; with TTL every entry expires on its own.
pub struct MapState<UK, UV> {
    h: Handle,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<UK, UV> Clone for MapState<UK, UV> {
    fn clone(&self) -> Self {
        MapState {
            h: self.h.clone(),
            _t: PhantomData,
        }
    }
}

impl<UK: StateKey, UV: Clone + StateValue> MapState<UK, UV> {
    /// A map state called `name`.
    pub fn new(name: &str) -> Self {
        MapState {
            h: Handle::new(name),
            _t: PhantomData,
        }
    }

    /// With a time-to-live per entry.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.h.ttl = Some(ttl);
        self
    }

    /// The value of `user_key` (in RocksDB one point read, whatever the map's size).
    pub fn get<C: StateContext>(&self, ctx: &mut C, user_key: &UK) -> Result<Option<UV>> {
        let cfg = self.h.ttl;
        let (t, k, slot, ns, now) = open_map!(self.h, ctx, UK, UV);
        let Some(entry) = t.get(slot, k, ns, user_key)? else {
            return Ok(None);
        };
        Ok(match on_read(cfg.as_ref(), Some(entry.ts), now) {
            Read::Missing => None,
            Read::Valid { refresh } => {
                if refresh {
                    let value = entry.value.clone();
                    t.put(slot, k, ns, user_key.clone(), TtlValue { value, ts: now })?;
                }
                Some(entry.value)
            }
            Read::ExpiredVisible => {
                t.remove(slot, k, ns, user_key)?;
                Some(entry.value)
            }
            Read::ExpiredHidden => {
                t.remove(slot, k, ns, user_key)?;
                None
            }
        })
    }

    /// True if `user_key` has a (visible) value.
    pub fn contains<C: StateContext>(&self, ctx: &mut C, user_key: &UK) -> Result<bool> {
        Ok(self.get(ctx, user_key)?.is_some())
    }

    /// Sets the value of `user_key` (in RocksDB one write, without reading the map).
    pub fn put<C: StateContext>(&self, ctx: &mut C, user_key: UK, value: UV) -> Result<()> {
        let (t, k, slot, ns, now) = open_map!(self.h, ctx, UK, UV);
        t.put(slot, k, ns, user_key, TtlValue { value, ts: now })
    }

    /// Removes `user_key`.
    pub fn remove<C: StateContext>(&self, ctx: &mut C, user_key: &UK) -> Result<()> {
        let (t, k, slot, ns, _) = open_map!(self.h, ctx, UK, UV);
        t.remove(slot, k, ns, user_key)
    }

    /// All visible entries (unordered).
    pub fn entries<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<(UK, UV)>> {
        let cfg = self.h.ttl;
        let (t, k, slot, ns, now) = open_map!(self.h, ctx, UK, UV);
        let entries = t.entries(slot, k, ns)?;
        if cfg.is_none() {
            // Without TTL a read changes nothing.
            return Ok(entries.into_iter().map(|(uk, e)| (uk, e.value)).collect());
        }
        let mut out = Vec::with_capacity(entries.len());
        for (uk, e) in entries {
            match on_read(cfg.as_ref(), Some(e.ts), now) {
                Read::Valid { refresh } => {
                    if refresh {
                        let value = e.value.clone();
                        t.put(slot, k, ns, uk.clone(), TtlValue { value, ts: now })?;
                    }
                    out.push((uk, e.value));
                }
                Read::ExpiredVisible => {
                    t.remove(slot, k, ns, &uk)?;
                    out.push((uk, e.value));
                }
                Read::ExpiredHidden | Read::Missing => t.remove(slot, k, ns, &uk)?,
            }
        }
        Ok(out)
    }

    /// All visible keys.
    pub fn keys<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<UK>> {
        Ok(self.entries(ctx)?.into_iter().map(|(k, _)| k).collect())
    }

    /// All visible values.
    pub fn values<C: StateContext>(&self, ctx: &mut C) -> Result<Vec<UV>> {
        Ok(self.entries(ctx)?.into_iter().map(|(_, v)| v).collect())
    }

    /// True if no entry is visible (without TTL, in RocksDB, reads at most one entry).
    pub fn is_empty<C: StateContext>(&self, ctx: &mut C) -> Result<bool> {
        if self.h.ttl.is_none() {
            let (t, k, slot, ns, _) = open_map!(self.h, ctx, UK, UV);
            return t.map_is_empty(slot, k, ns);
        }
        Ok(self.entries(ctx)?.is_empty())
    }

    /// Removes every entry of the current key.
    pub fn clear<C: StateContext>(&self, ctx: &mut C) -> Result<()> {
        let (t, k, slot, ns, _) = open_map!(self.h, ctx, UK, UV);
        t.clear(slot, k, ns)
    }
}

/// A value per key that every added value is reduced into.
pub struct ReducingState<V> {
    h: Handle,
    reduce: Arc<dyn Fn(V, V) -> V + Send + Sync>,
}

impl<V> Clone for ReducingState<V> {
    fn clone(&self) -> Self {
        ReducingState {
            h: self.h.clone(),
            reduce: self.reduce.clone(),
        }
    }
}

impl<V: Clone + StateValue> ReducingState<V> {
    /// A reducing state called `name` combining values with `reduce`.
    pub fn new(name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> Self {
        ReducingState {
            h: Handle::new(name),
            reduce: Arc::new(reduce),
        }
    }

    /// With a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.h.ttl = Some(ttl);
        self
    }

    /// The reduced value.
    pub fn get<C: StateContext>(&self, ctx: &mut C) -> Result<Option<V>> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<V>);
        read_value(self.h.ttl.as_ref(), t, slot, k, ns, now)
    }

    /// Reduces `value` into the state.
    pub fn add<C: StateContext>(&self, ctx: &mut C, value: V) -> Result<()> {
        let cfg = self.h.ttl;
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<V>);
        let current = read_value(cfg.as_ref(), t, slot, k, ns, now)?;
        let value = match current {
            Some(old) => (self.reduce)(old, value),
            None => value,
        };
        t.insert(slot, k, ns, TtlValue { value, ts: now })?;
        Ok(())
    }

    /// Removes the value.
    pub fn clear<C: StateContext>(&self, ctx: &mut C) -> Result<()> {
        let (t, k, slot, ns, _) = open!(self.h, ctx, TtlValue<V>);
        t.remove(slot, k, ns)?;
        Ok(())
    }
}

/// An accumulator per key that values are aggregated into.
pub struct AggregatingState<IN, ACC, OUT> {
    h: Handle,
    agg: Arc<dyn AggregateFunction<IN, ACC, OUT>>,
}

impl<IN, ACC, OUT> Clone for AggregatingState<IN, ACC, OUT> {
    fn clone(&self) -> Self {
        AggregatingState {
            h: self.h.clone(),
            agg: self.agg.clone(),
        }
    }
}

impl<IN: 'static, ACC: Clone + StateValue, OUT: 'static> AggregatingState<IN, ACC, OUT> {
    /// An aggregating state called `name` using `agg`.
    pub fn new(name: &str, agg: impl AggregateFunction<IN, ACC, OUT>) -> Self {
        AggregatingState {
            h: Handle::new(name),
            agg: Arc::new(agg),
        }
    }

    /// With a time-to-live.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
        self.h.ttl = Some(ttl);
        self
    }

    /// The aggregate's current result.
    pub fn get<C: StateContext>(&self, ctx: &mut C) -> Result<Option<OUT>> {
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<ACC>);
        Ok(read_value(self.h.ttl.as_ref(), t, slot, k, ns, now)?
            .map(|acc| self.agg.get_result(&acc)))
    }

    /// Adds a value.
    pub fn add<C: StateContext>(&self, ctx: &mut C, value: IN) -> Result<()> {
        let cfg = self.h.ttl;
        let (t, k, slot, ns, now) = open!(self.h, ctx, TtlValue<ACC>);
        let mut acc = read_value(cfg.as_ref(), t, slot, k, ns, now)?
            .unwrap_or_else(|| self.agg.create_accumulator());
        self.agg.add(&value, &mut acc);
        t.insert(
            slot,
            k,
            ns,
            TtlValue {
                value: acc,
                ts: now,
            },
        )?;
        Ok(())
    }

    /// Removes the accumulator.
    pub fn clear<C: StateContext>(&self, ctx: &mut C) -> Result<()> {
        let (t, k, slot, ns, _) = open!(self.h, ctx, TtlValue<ACC>);
        t.remove(slot, k, ns)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttl::{StateVisibility, TtlUpdateType};
    use std::sync::atomic::AtomicI64;
    use std::time::Duration;
    use weir_core::KeyGroupRange;

    struct Ctx {
        be: KeyedStateBackend<String>,
        ns: i64,
    }

    impl StateContext for Ctx {
        type Key = String;
        type Ns = i64;
        fn state_parts(&mut self) -> (&mut KeyedStateBackend<String>, &i64) {
            (&mut self.be, &self.ns)
        }
    }

    fn ctx() -> (Ctx, Arc<AtomicI64>) {
        let clock = Arc::new(AtomicI64::new(1000));
        let c = clock.clone();
        let mut be = KeyedStateBackend::new(KeyGroupRange { start: 0, end: 128 }, 128);
        be.set_clock(Arc::new(move || c.load(Ordering::Relaxed)));
        (Ctx { be, ns: 0 }, clock)
    }

    #[test]
    fn snapshot_restores_at_another_parallelism() {
        use crate::snapshot::{OperatorSubtaskState, RestoredState};
        let (mut c, _) = ctx();
        let count = ValueState::<u64>::new("count");
        let seen = MapState::<String, i32>::new("seen");
        let lists = ListState::<i64>::new("list");
        for i in 0..200u64 {
            c.be.set_current_key(format!("k{i}")).unwrap();
            count.update(&mut c, i).unwrap();
            seen.put(&mut c, "x".into(), i as i32).unwrap();
            if i % 3 == 0 {
                lists.add(&mut c, i as i64).unwrap();
            }
        }
        let mut snap = OperatorSubtaskState::default();
        c.be.snapshot(&mut snap).unwrap();
        snap.resolve().unwrap();
        // Restore into two subtasks that split the key groups, then read everything back.
        let mut found = 0;
        for sub in 0..2 {
            let range = KeyGroupRange::for_subtask(128, 2, sub);
            let mut r = RestoredState::default();
            r.absorb_keyed(&snap, range);
            let mut be = KeyedStateBackend::<String>::new(range, 128);
            be.restore(&r).unwrap();
            let mut c2 = Ctx { be, ns: 0 };
            // Handles cache their registration per backend: each backend uses its own clones.
            let (count, seen, lists) = (count.clone(), seen.clone(), lists.clone());
            for i in 0..200u64 {
                let k = format!("k{i}");
                if c2.be.set_current_key(k).is_err() {
                    continue;
                }
                found += 1;
                assert_eq!(count.value(&mut c2).unwrap(), Some(i));
                assert_eq!(seen.get(&mut c2, &"x".to_string()).unwrap(), Some(i as i32));
                let want: Vec<i64> = if i % 3 == 0 { vec![i as i64] } else { vec![] };
                assert_eq!(lists.get(&mut c2).unwrap(), want);
            }
            // A second snapshot keeps state no handle touched since the restore.
            let mut again = OperatorSubtaskState::default();
            let mut be = KeyedStateBackend::<String>::new(range, 128);
            be.restore(&r).unwrap();
            be.snapshot(&mut again).unwrap();
            again.resolve().unwrap();
            assert_eq!(again.size(), {
                let mut only = OperatorSubtaskState::default();
                c2.be.snapshot(&mut only).unwrap();
                only.resolve().unwrap();
                only.size()
            });
        }
        assert_eq!(found, 200);
    }

    #[test]
    fn value_state_is_per_key_and_namespace() {
        let (mut c, _) = ctx();
        let s = ValueState::<u64>::new("v");
        c.be.set_current_key("a".into()).unwrap();
        assert_eq!(s.value(&mut c).unwrap(), None);
        s.update(&mut c, 1).unwrap();
        c.ns = 7;
        s.update(&mut c, 2).unwrap();
        c.be.set_current_key("b".into()).unwrap();
        assert_eq!(s.value(&mut c).unwrap(), None);
        c.be.set_current_key("a".into()).unwrap();
        assert_eq!(s.value(&mut c).unwrap(), Some(2));
        c.ns = 0;
        assert_eq!(s.value(&mut c).unwrap(), Some(1));
        s.clear(&mut c).unwrap();
        assert_eq!(c.be.entries(), 1);
        // The same name with another type is refused.
        let err = ValueState::<String>::new("v").value(&mut c).unwrap_err();
        assert!(err.to_string().contains("already registered"));
    }

    #[test]
    fn snapshots_drop_expired_values_of_keys_never_read_again() {
        use crate::snapshot::OperatorSubtaskState;
        let (mut c, clock) = ctx();
        let ttl = StateTtlConfig::new(Duration::from_millis(100));
        let value = ValueState::<i32>::new("v").with_ttl(ttl);
        let list = ListState::<i32>::new("l").with_ttl(ttl);
        let map = MapState::<i32, i32>::new("m").with_ttl(ttl);
        let kept = ValueState::<i32>::new("no-ttl");
        for k in 0..50 {
            c.be.set_current_key(format!("old-{k}")).unwrap();
            value.update(&mut c, k).unwrap();
            list.add(&mut c, k).unwrap();
            map.put(&mut c, k, k).unwrap();
            kept.update(&mut c, k).unwrap();
        }
        clock.store(1080, Ordering::Relaxed);
        c.be.set_current_key("young".into()).unwrap();
        value.update(&mut c, 1).unwrap();
        list.add(&mut c, 1).unwrap();
        map.put(&mut c, 1, 1).unwrap();
        clock.store(1150, Ordering::Relaxed);
        let mut out = OperatorSubtaskState::default();
        c.be.snapshot(&mut out).unwrap();
        // The 50 old keys' values expired at 1100 and went, live and in the snapshot; the
        // young key's (until 1180) and the state without TTL stay.
        assert_eq!(c.be.entries_of("v"), 1);
        assert_eq!(c.be.entries_of("l"), 1);
        assert_eq!(c.be.entries_of("m"), 1);
        assert_eq!(c.be.entries_of("no-ttl"), 50);
        assert_eq!(value.value(&mut c).unwrap(), Some(1));
        // A list or map keeps its valid elements and drops its expired ones.
        clock.store(1170, Ordering::Relaxed);
        list.add(&mut c, 2).unwrap();
        map.put(&mut c, 2, 2).unwrap();
        clock.store(1200, Ordering::Relaxed);
        let mut out = OperatorSubtaskState::default();
        c.be.snapshot(&mut out).unwrap();
        assert_eq!(list.get(&mut c).unwrap(), vec![2]);
        assert_eq!(map.get(&mut c, &1).unwrap(), None);
        assert_eq!(map.get(&mut c, &2).unwrap(), Some(2));
        assert_eq!(c.be.entries_of("v"), 0);
    }

    #[test]
    fn ttl_expires_values_and_refreshes_per_update_type() {
        let (mut c, clock) = ctx();
        c.be.set_current_key("k".into()).unwrap();
        let ttl = StateTtlConfig::new(Duration::from_millis(100));
        let on_write = ValueState::<i32>::new("w").with_ttl(ttl);
        let on_read = ValueState::<i32>::new("r")
            .with_ttl(ttl.with_update_type(TtlUpdateType::OnReadAndWrite));
        let visible = ValueState::<i32>::new("x")
            .with_ttl(ttl.with_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp));
        on_write.update(&mut c, 1).unwrap();
        on_read.update(&mut c, 2).unwrap();
        visible.update(&mut c, 3).unwrap();
        clock.store(1090, Ordering::Relaxed);
        assert_eq!(on_write.value(&mut c).unwrap(), Some(1));
        assert_eq!(
            on_read.value(&mut c).unwrap(),
            Some(2),
            "read refreshes to 1090"
        );
        clock.store(1100, Ordering::Relaxed);
        assert_eq!(on_write.value(&mut c).unwrap(), None, "expired at ts + ttl");
        assert_eq!(on_read.value(&mut c).unwrap(), Some(2));
        assert_eq!(
            visible.value(&mut c).unwrap(),
            Some(3),
            "expired but visible once"
        );
        assert_eq!(
            visible.value(&mut c).unwrap(),
            None,
            "and cleaned up by that read"
        );
        clock.store(1199, Ordering::Relaxed);
        assert_eq!(
            on_read.value(&mut c).unwrap(),
            Some(2),
            "refreshed again at 1100"
        );
        clock.store(1299, Ordering::Relaxed);
        assert_eq!(on_read.value(&mut c).unwrap(), None);
        assert_eq!(c.be.entries(), 0, "expired values are removed on read");
    }

    #[test]
    fn list_map_reducing_aggregating() {
        let (mut c, clock) = ctx();
        c.be.set_current_key("k".into()).unwrap();
        let l = ListState::<i32>::new("l").with_ttl(StateTtlConfig::new(Duration::from_millis(50)));
        l.add(&mut c, 1).unwrap();
        clock.store(1020, Ordering::Relaxed);
        l.add_all(&mut c, vec![2, 3]).unwrap();
        clock.store(1060, Ordering::Relaxed);
        assert_eq!(
            l.get(&mut c).unwrap(),
            vec![2, 3],
            "elements expire one by one"
        );
        l.update(&mut c, vec![]).unwrap();
        assert!(l.get(&mut c).unwrap().is_empty());

        let m = MapState::<String, i32>::new("m");
        m.put(&mut c, "x".into(), 1).unwrap();
        m.put(&mut c, "y".into(), 2).unwrap();
        assert_eq!(m.get(&mut c, &"x".into()).unwrap(), Some(1));
        m.remove(&mut c, &"x".into()).unwrap();
        assert!(!m.contains(&mut c, &"x".into()).unwrap());
        assert_eq!(m.entries(&mut c).unwrap(), vec![("y".to_string(), 2)]);

        let r = ReducingState::new("r", |a: i32, b: i32| a.max(b));
        for v in [3, 9, 4] {
            r.add(&mut c, v).unwrap();
        }
        assert_eq!(r.get(&mut c).unwrap(), Some(9));

        struct Avg;
        impl AggregateFunction<i32, (i64, i64), f64> for Avg {
            fn create_accumulator(&self) -> (i64, i64) {
                (0, 0)
            }
            fn add(&self, v: &i32, acc: &mut (i64, i64)) {
                acc.0 += *v as i64;
                acc.1 += 1;
            }
            fn get_result(&self, acc: &(i64, i64)) -> f64 {
                acc.0 as f64 / acc.1 as f64
            }
            fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
                (a.0 + b.0, a.1 + b.1)
            }
        }
        let a = AggregatingState::new("a", Avg);
        for v in [1, 2, 6] {
            a.add(&mut c, v).unwrap();
        }
        assert_eq!(a.get(&mut c).unwrap(), Some(3.0));
        a.clear(&mut c).unwrap();
        assert_eq!(a.get(&mut c).unwrap(), None);
    }
}
