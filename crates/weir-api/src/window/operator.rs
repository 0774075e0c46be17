//! The window operator (Flink's `WindowOperator` and `EvictingWindowOperator`).
//!
//! Per record: assign windows; for merging assigners merge the new window with the key's
//! live windows; skip windows that are already expired (`max timestamp + allowed lateness <=
//! watermark`); add the record to the contents of each remaining window and ask the trigger;
//! fire and/or purge as it says; register a cleanup timer at `max timestamp + allowed
//! lateness`. A record that went into no window is late if `timestamp + allowed lateness <=
//! watermark` and goes to the late-data side output (or is dropped and counted).
//!
//! Timers carry (time, key, window). A firing timer first asks the trigger, then, if it is
//! the window's cleanup time, removes the window's contents, trigger state, per-window user
//! state and merge bookkeeping.

use super::assigners::WindowAssigner;
use super::evictors::{Evictor, TimestampedValue};
use super::functions::{ProcessWindowFunction, WindowContext};
use super::triggers::{Trigger, TriggerContext};
use super::Window;
use crate::exchange::KeySelector;
use crate::functions::{user_error, Collector, UserError};
use crate::timers::InternalTimers;
use std::marker::PhantomData;
use weir_runtime::operator::{Discard, OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{AggregateFunction, KeyedStateBackend, StateKey, StateTable};

/// How a window keeps its contents and what it emits from them.
pub(crate) trait WindowContents<T, K, W, O>: Send {
    /// The stored contents of one (key, window).
    /// Contents are copied when a snapshot is taken (and encoded later), hence `Clone`.
    type Acc: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static;
    /// Empty contents.
    fn create(&self) -> Self::Acc;
    /// Adds an element the contents keep (or consume).
    fn add(&mut self, acc: &mut Self::Acc, value: T, timestamp: i64);
    /// True if the contents only read elements ([`add_ref`](Self::add_ref)), so an element in
    /// several windows needs no copies.
    fn adds_by_ref(&self) -> bool {
        false
    }
    /// Adds an element by reference; contents that keep elements copy it.
    fn add_ref(&mut self, acc: &mut Self::Acc, value: &T, timestamp: i64)
    where
        T: Clone,
    {
        self.add(acc, value.clone(), timestamp)
    }
    /// Merges `other` into `into` (merging windows).
    fn merge(&mut self, into: &mut Self::Acc, other: Self::Acc);
    /// False if there is nothing to emit.
    fn has_contents(&self, acc: &Self::Acc) -> bool;
    /// Runs the window function for one firing (may change the contents: evictors).
    fn fire(
        &mut self,
        acc: &mut Self::Acc,
        key: &K,
        window: &W,
        ctx: &mut WindowContext<'_, K, W>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
    /// The window is removed: lets the function clear its per-window state.
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError>;
}

/// Incremental reduce, then an optional process function on the single result.
pub(crate) struct ReduceContents<F, P> {
    pub reduce: F,
    pub function: P,
}

impl<T, K, W, O, F, P> WindowContents<T, K, W, O> for ReduceContents<F, P>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: FnMut(T, T) -> T + Send,
    P: ProcessWindowFunction<T, O, K, W>,
{
    type Acc = Option<T>;
    fn create(&self) -> Option<T> {
        None
    }
    fn add(&mut self, acc: &mut Option<T>, value: T, _: i64) {
        *acc = Some(match acc.take() {
            Some(a) => (self.reduce)(a, value),
            None => value,
        });
    }
    fn merge(&mut self, into: &mut Option<T>, other: Option<T>) {
        if let Some(o) = other {
            self.add(into, o, 0);
        }
    }
    fn has_contents(&self, acc: &Option<T>) -> bool {
        acc.is_some()
    }
    fn fire(
        &mut self,
        acc: &mut Option<T>,
        key: &K,
        _: &W,
        ctx: &mut WindowContext<'_, K, W>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        match acc {
            Some(v) => self.function.process(key, ctx, vec![v.clone()], out),
            None => Ok(()),
        }
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

/// Incremental aggregation, then an optional process function on the single result.
pub(crate) struct AggregateContents<AGG, ACC, R, P> {
    pub agg: AGG,
    pub function: P,
    pub _t: PhantomData<fn() -> (ACC, R)>,
}

impl<T, K, W, O, AGG, ACC, R, P> WindowContents<T, K, W, O> for AggregateContents<AGG, ACC, R, P>
where
    AGG: AggregateFunction<T, ACC, R>,
    ACC: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    P: ProcessWindowFunction<R, O, K, W>,
{
    type Acc = ACC;
    fn create(&self) -> ACC {
        self.agg.create_accumulator()
    }
    fn add(&mut self, acc: &mut ACC, value: T, _: i64) {
        self.agg.add(&value, acc);
    }
    fn adds_by_ref(&self) -> bool {
        true
    }
    fn add_ref(&mut self, acc: &mut ACC, value: &T, _: i64)
    where
        T: Clone,
    {
        self.agg.add(value, acc);
    }
    fn merge(&mut self, into: &mut ACC, other: ACC) {
        let a = std::mem::replace(into, self.agg.create_accumulator());
        *into = self.agg.merge(a, other);
    }
    fn has_contents(&self, _: &ACC) -> bool {
        true
    }
    fn fire(
        &mut self,
        acc: &mut ACC,
        key: &K,
        _: &W,
        ctx: &mut WindowContext<'_, K, W>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        let r = self.agg.get_result(acc);
        self.function.process(key, ctx, vec![r], out)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

/// All elements kept, with an optional evictor, then a process function on them.
pub(crate) struct ListContents<T, W, P> {
    pub evictor: Option<Box<dyn Evictor<T, W>>>,
    pub function: P,
}

impl<T, K, W, O, P> WindowContents<T, K, W, O> for ListContents<T, W, P>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    W: Send + 'static,
    P: ProcessWindowFunction<T, O, K, W>,
{
    type Acc = Vec<TimestampedValue<T>>;
    fn create(&self) -> Self::Acc {
        Vec::new()
    }
    fn add(&mut self, acc: &mut Self::Acc, value: T, timestamp: i64) {
        acc.push(TimestampedValue { value, timestamp });
    }
    fn merge(&mut self, into: &mut Self::Acc, mut other: Self::Acc) {
        into.append(&mut other);
    }
    fn has_contents(&self, acc: &Self::Acc) -> bool {
        !acc.is_empty()
    }
    fn fire(
        &mut self,
        acc: &mut Self::Acc,
        key: &K,
        window: &W,
        ctx: &mut WindowContext<'_, K, W>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        if let Some(e) = &mut self.evictor {
            e.evict_before(acc, window);
        }
        let values = acc.iter().map(|t| t.value.clone()).collect();
        self.function.process(key, ctx, values, out)?;
        if let Some(e) = &mut self.evictor {
            e.evict_after(acc, window);
        }
        Ok(())
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

/// A window's merge bookkeeping: each live window and the window its contents are stored
/// under (Flink's `MergingWindowSet`).
type MergeMapping<W> = Vec<(W, W)>;

fn state_window_of<W: PartialEq + Clone>(mapping: &MergeMapping<W>, w: &W) -> Option<W> {
    mapping.iter().find(|(a, _)| a == w).map(|(_, s)| s.clone())
}

/// What window functions run with: the operator's state backend (with the current key
/// set), clock, watermark and identity.
pub(crate) struct FnEnv<'a, K> {
    pub backend: &'a mut KeyedStateBackend<K>,
    pub clock: &'a ProcessingTimeService,
    pub watermark: i64,
    pub info: &'a OperatorInfo,
}

/// Runs the window function for one firing of `window` with the contents `acc`; results
/// carry the window's max timestamp.
pub(crate) fn fire_window<T, K: StateKey, W: Window, O, C: WindowContents<T, K, W, O>>(
    contents: &mut C,
    env: FnEnv<'_, K>,
    key: &K,
    window: &W,
    acc: &mut C::Acc,
    out: &mut Outputs<O>,
) -> Result<()> {
    if !contents.has_contents(acc) {
        return Ok(());
    }
    let (main, sides) = out.split();
    let mut c = Collector::new(main, Some(window.max_timestamp()));
    let mut ctx = WindowContext {
        backend: env.backend,
        window,
        watermark: env.watermark,
        clock: env.clock,
        sides,
        error: None,
    };
    let r = contents.fire(acc, key, window, &mut ctx, &mut c);
    let err = ctx.error.take();
    r.map_err(|e| user_error(env.info, e))?;
    if let Some(e) = err {
        return Err(e);
    }
    c.finish()
}

/// Lets the window function clear its per-window state of `window` (the window is gone).
pub(crate) fn clear_window<T, K: StateKey, W: Window, O, C: WindowContents<T, K, W, O>>(
    contents: &mut C,
    env: FnEnv<'_, K>,
    window: &W,
    out: &mut Outputs<O>,
) -> Result<()> {
    let (_, sides) = out.split();
    let mut ctx = WindowContext {
        backend: env.backend,
        window,
        watermark: env.watermark,
        clock: env.clock,
        sides,
        error: None,
    };
    let r = contents.clear(&mut ctx);
    r.map_err(|e| user_error(env.info, e))
}

/// The window operator.
pub(crate) struct WindowOperator<T, K, W, O, A, C: WindowContents<T, K, W, O>> {
    pub key_of: KeySelector<T, K>,
    pub assigner: A,
    pub trigger: Box<dyn Trigger<T, K, W>>,
    pub contents: C,
    pub table: StateTable<K, W, C::Acc>,
    pub merging: StateTable<K, (), MergeMapping<W>>,
    pub backend: KeyedStateBackend<K>,
    pub timers: InternalTimers<K, W>,
    pub allowed_lateness: i64,
    pub late_tag: Option<String>,
    pub watermark: i64,
    pub info: OperatorInfo,
    pub scratch: Vec<W>,
    pub late_dropped: u64,
    pub _o: PhantomData<fn() -> O>,
}

impl<T, K, W, O, A, C> WindowOperator<T, K, W, O, A, C>
where
    T: Clone + Send + 'static,
    K: StateKey,
    W: Window,
    O: 'static,
    A: WindowAssigner<T, W>,
    C: WindowContents<T, K, W, O>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_of: KeySelector<T, K>,
        assigner: A,
        trigger: Box<dyn Trigger<T, K, W>>,
        contents: C,
        allowed_lateness: i64,
        late_tag: Option<String>,
        info: &OperatorInfo,
    ) -> Result<Self> {
        let store = info.keyed_store()?;
        let err = |e| crate::timers::state_error(info, "open", e);
        Ok(WindowOperator {
            key_of,
            assigner,
            trigger,
            contents,
            table: store.table(WINDOW_CONTENTS).map_err(err)?,
            merging: store.table(MERGING_WINDOWS).map_err(err)?,
            backend: KeyedStateBackend::with_store(store, info.max_parallelism),
            timers: InternalTimers::new(info.processing_time.clone()),
            allowed_lateness,
            late_tag,
            watermark: i64::MIN,
            info: info.clone(),
            scratch: Vec::new(),
            late_dropped: 0,
            _o: PhantomData,
        })
    }

    fn cleanup_time(&self, w: &W) -> i64 {
        if self.assigner.is_event_time() {
            w.max_timestamp().saturating_add(self.allowed_lateness)
        } else {
            w.max_timestamp()
        }
    }

    fn is_window_late(&self, w: &W) -> bool {
        self.assigner.is_event_time() && self.cleanup_time(w) <= self.watermark
    }

    fn trigger_ctx<'a>(
        backend: &'a mut KeyedStateBackend<K>,
        timers: &'a mut InternalTimers<K, W>,
        window: &W,
        watermark: i64,
        merged: &'a [W],
    ) -> TriggerContext<'a, K, W> {
        TriggerContext {
            backend,
            timers,
            window: window.clone(),
            watermark,
            merged,
        }
    }

    fn register_cleanup_timer(&mut self, key: &K, w: &W) {
        let t = self.cleanup_time(w);
        if t == i64::MAX {
            return;
        }
        if self.assigner.is_event_time() {
            self.timers.register_event(t, key.clone(), w.clone());
        } else {
            self.timers.register_processing(t, key.clone(), w.clone());
        }
    }

    fn delete_cleanup_timer(&mut self, key: &K, w: &W) {
        let t = self.cleanup_time(w);
        if t == i64::MAX {
            return;
        }
        if self.assigner.is_event_time() {
            self.timers.delete_event(t, key, w);
        } else {
            self.timers.delete_processing(t, key, w);
        }
    }

    /// Emits the contents of `state_window` as a firing of `window`.
    fn emit(
        &mut self,
        key: &K,
        slot: usize,
        window: &W,
        state_window: &W,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        let WindowOperator {
            table,
            contents,
            backend,
            timers,
            watermark,
            info,
            ..
        } = self;
        let Some(acc) = table
            .get_mut(slot, key, state_window)
            .map_err(|e| crate::timers::state_error(info, "read", e))?
        else {
            return Ok(());
        };
        let env = FnEnv {
            backend,
            clock: &timers.clock,
            watermark: *watermark,
            info,
        };
        fire_window(contents, env, key, window, acc, out)
    }

    /// Removes everything of `window`: contents, trigger state and timers, the function's
    /// per-window state, and its merge bookkeeping.
    fn clear_all_state(
        &mut self,
        key: &K,
        slot: usize,
        window: &W,
        state_window: &W,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        self.table
            .remove(slot, key, state_window)
            .map_err(|e| crate::timers::state_error(&self.info, "update", e))?;
        {
            let mut ctx = Self::trigger_ctx(
                &mut self.backend,
                &mut self.timers,
                window,
                self.watermark,
                &[],
            );
            let r = self.trigger.clear(window, &mut ctx);
            r.map_err(|e| user_error(&self.info, e))?;
        }
        let env = FnEnv {
            backend: &mut self.backend,
            clock: &self.timers.clock,
            watermark: self.watermark,
            info: &self.info,
        };
        clear_window(&mut self.contents, env, window, out)?;
        if self.assigner.is_merging() {
            let err = |e| crate::timers::state_error(&self.info, "update", e);
            if let Some(m) = self.merging.get_mut(slot, key, &()).map_err(err)? {
                m.retain(|(a, _)| a != window);
                if m.is_empty() {
                    self.merging.remove(slot, key, &()).map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Adds `new` to the key's merging windows (Flink's `MergingWindowSet.addWindow` with the
    /// window operator's merge function); returns the window `new` ended up in.
    fn add_merging_window(
        &mut self,
        mapping: &mut MergeMapping<W>,
        new: &W,
        key: &K,
        slot: usize,
    ) -> Result<W> {
        let mut all: Vec<W> = mapping.iter().map(|(w, _)| w.clone()).collect();
        all.push(new.clone());
        let results = self.assigner.merge_windows(&all);
        let mut result_window = new.clone();
        let mut merged_new = false;
        let no_merges = results.is_empty();
        for (merge_result, mut merged) in results {
            if let Some(p) = merged.iter().position(|w| w == new) {
                merged_new = true;
                merged.remove(p);
                result_window = merge_result.clone();
            }
            let Some(first) = merged.first() else {
                // A group of only the new window: it stands alone under the merge result.
                mapping.push((merge_result.clone(), merge_result));
                continue;
            };
            let Some(merged_state_window) = state_window_of(mapping, first) else {
                return Err(self
                    .info
                    .error("internal error: merged window without state window"));
            };
            let mut merged_state_windows = Vec::new();
            for m in &merged {
                if let Some(p) = mapping.iter().position(|(a, _)| a == m) {
                    merged_state_windows.push(mapping.remove(p).1);
                }
            }
            mapping.push((merge_result.clone(), merged_state_window.clone()));
            if let Some(p) = merged_state_windows
                .iter()
                .position(|s| *s == merged_state_window)
            {
                merged_state_windows.remove(p);
            }
            if !(merged.contains(&merge_result) && merged.len() == 1) {
                self.merge_windows(
                    key,
                    slot,
                    &merge_result,
                    &merged,
                    &merged_state_window,
                    merged_state_windows,
                )?;
            }
        }
        if no_merges || (result_window == *new && !merged_new) {
            mapping.push((result_window.clone(), result_window.clone()));
        }
        Ok(result_window)
    }

    fn merge_windows(
        &mut self,
        key: &K,
        slot: usize,
        result: &W,
        merged: &[W],
        state_result: &W,
        merged_states: Vec<W>,
    ) -> Result<()> {
        if self.assigner.is_event_time()
            && result.max_timestamp().saturating_add(self.allowed_lateness) <= self.watermark
        {
            return Err(self.info.error(format!(
                "the end timestamp of an event-time window cannot become earlier than the current watermark by merging; current watermark: {}, window: {:?}",
                self.watermark, result
            )));
        }
        {
            let mut ctx = Self::trigger_ctx(
                &mut self.backend,
                &mut self.timers,
                result,
                self.watermark,
                merged,
            );
            let r = self.trigger.on_merge(result, &mut ctx);
            r.map_err(|e| user_error(&self.info, e))?;
        }
        for m in merged {
            {
                let mut ctx =
                    Self::trigger_ctx(&mut self.backend, &mut self.timers, m, self.watermark, &[]);
                let r = self.trigger.clear(m, &mut ctx);
                r.map_err(|e| user_error(&self.info, e))?;
            }
            self.delete_cleanup_timer(key, m);
            // A merged-away window's per-window user state has no window left to belong to.
            if m != result {
                let mut none: Outputs<O> = Outputs::new(Box::new(Discard::default()), Vec::new());
                let env = FnEnv {
                    backend: &mut self.backend,
                    clock: &self.timers.clock,
                    watermark: self.watermark,
                    info: &self.info,
                };
                clear_window(&mut self.contents, env, m, &mut none)?;
            }
        }
        let err = |e| crate::timers::state_error(&self.info, "update", e);
        let mut acc = self.table.remove(slot, key, state_result).map_err(err)?;
        for s in merged_states {
            if let Some(a) = self.table.remove(slot, key, &s).map_err(err)? {
                match &mut acc {
                    Some(x) => self.contents.merge(x, a),
                    None => acc = Some(a),
                }
            }
        }
        if let Some(a) = acc {
            self.table.insert(slot, key, state_result, a).map_err(err)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        event_time: bool,
        time: i64,
        key: K,
        window: W,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        self.backend
            .set_current_key(key.clone())
            .map_err(|e| self.info.error(e.to_string()))?;
        let slot = self.backend.current_slot();
        let state_window = if self.assigner.is_merging() {
            match self
                .merging
                .get(slot, &key, &())
                .map_err(|e| crate::timers::state_error(&self.info, "update", e))?
                .and_then(|m| state_window_of(m, &window))
            {
                Some(s) => s,
                // The window was merged into another one; its timers are stale.
                None => return Ok(()),
            }
        } else {
            window.clone()
        };
        let result = {
            let mut ctx = Self::trigger_ctx(
                &mut self.backend,
                &mut self.timers,
                &window,
                self.watermark,
                &[],
            );
            let r = if event_time {
                self.trigger.on_event_time(time, &window, &mut ctx)
            } else {
                self.trigger.on_processing_time(time, &window, &mut ctx)
            };
            r.map_err(|e| user_error(&self.info, e))?
        };
        if result.is_fire() {
            self.emit(&key, slot, &window, &state_window, out)?;
        }
        if result.is_purge() {
            self.table
                .remove(slot, &key, &state_window)
                .map_err(|e| crate::timers::state_error(&self.info, "update", e))?;
        }
        if self.assigner.is_event_time() == event_time && time == self.cleanup_time(&window) {
            self.clear_all_state(&key, slot, &window, &state_window, out)?;
        }
        Ok(())
    }

    /// Entries kept for windows: contents, merge bookkeeping, trigger and user state, timers.
    pub(crate) fn state_size(&self) -> usize {
        self.table.len() + self.merging.len() + self.backend.entries() + self.timers.len()
    }
}

impl<T, K, W, O, A, C> OneInputOperator<T, O> for WindowOperator<T, K, W, O, A, C>
where
    T: Clone + Send + 'static,
    K: StateKey,
    W: Window,
    O: 'static,
    A: WindowAssigner<T, W>,
    C: WindowContents<T, K, W, O>,
{
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<O>) -> Result<()> {
        let event_time = self.assigner.is_event_time();
        let ts = match r.timestamp() {
            Some(ts) if ts != i64::MIN => ts,
            _ if event_time => {
                return Err(self.info.error(
                    "a record has no event timestamp; event-time windows need timestamps: call assign_timestamps_and_watermarks before the window",
                ))
            }
            _ => i64::MIN,
        };
        let key = self.key_of.key(&r.value);
        self.backend
            .set_current_key(key.clone())
            .map_err(|e| self.info.error(e.to_string()))?;
        let slot = self.backend.current_slot();
        // Only processing-time assigners need the clock (a system call per record otherwise).
        let now = if event_time {
            i64::MIN
        } else {
            self.timers.clock.now()
        };
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.assigner
            .assign_windows(&r.value, ts, now, &mut windows);
        if let Some(w) = windows
            .iter()
            .find(|w| event_time && w.max_timestamp() < ts)
        {
            let msg = format!(
                "the window assigner put an element with timestamp {ts} into {w:?}, which ends before it; session gaps must be positive"
            );
            self.scratch = windows;
            return Err(self.info.error(msg));
        }
        let n = windows.len();
        let mut value = Some(r.value);
        let mut skipped = true;
        let merging = self.assigner.is_merging();
        let mut mapping = if merging {
            self.merging
                .remove(slot, &key, &())
                .map_err(|e| crate::timers::state_error(&self.info, "update", e))?
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut outcome = Ok(());
        for (i, w) in windows.iter().enumerate() {
            let step = (|| -> Result<()> {
                let (actual, state_window) = if merging {
                    let actual = self.add_merging_window(&mut mapping, w, &key, slot)?;
                    if self.is_window_late(&actual) {
                        mapping.retain(|(a, _)| *a != actual);
                        return Ok(());
                    }
                    let sw = state_window_of(&mapping, &actual).ok_or_else(|| {
                        self.info
                            .error("internal error: window without state window")
                    })?;
                    (actual, sw)
                } else {
                    if self.is_window_late(w) {
                        return Ok(());
                    }
                    (w.clone(), w.clone())
                };
                skipped = false;
                // Contents that only read elements get a reference; the others a copy per
                // window but the last, which gets the element itself.
                let by_ref = self.contents.adds_by_ref();
                let owned = if by_ref {
                    None
                } else if i + 1 == n {
                    value.take()
                } else {
                    value.clone()
                };
                let Some(elem) = owned.as_ref().or(value.as_ref()) else {
                    return Ok(());
                };
                let result = {
                    let mut ctx = Self::trigger_ctx(
                        &mut self.backend,
                        &mut self.timers,
                        &actual,
                        self.watermark,
                        &[],
                    );
                    let r = self.trigger.on_element(elem, ts, &actual, &mut ctx);
                    r.map_err(|e| user_error(&self.info, e))?
                };
                let contents = &mut self.contents;
                let acc = self
                    .table
                    .get_or_insert_with(slot, &key, &state_window, || contents.create())
                    .map_err(|e| crate::timers::state_error(&self.info, "update", e))?;
                match owned {
                    Some(v) => contents.add(acc, v, ts),
                    None => {
                        if let Some(r) = value.as_ref() {
                            contents.add_ref(acc, r, ts)
                        }
                    }
                }
                // For every element, as Flink does: a trigger may have deleted the timer (it
                // shares (time, key, window) with the trigger's own timer when the allowed
                // lateness is 0); registering an existing timer is one lookup.
                self.register_cleanup_timer(&key, &actual);
                if result.is_fire() {
                    self.emit(&key, slot, &actual, &state_window, out)?;
                }
                if result.is_purge() {
                    self.table
                        .remove(slot, &key, &state_window)
                        .map_err(|e| crate::timers::state_error(&self.info, "update", e))?;
                }
                Ok(())
            })();
            if step.is_err() {
                outcome = step;
                break;
            }
        }
        if merging && !mapping.is_empty() {
            self.merging
                .insert(slot, &key, &(), mapping)
                .map_err(|e| crate::timers::state_error(&self.info, "update", e))?;
        }
        self.scratch = windows;
        outcome?;
        if skipped && event_time && ts.saturating_add(self.allowed_lateness) <= self.watermark {
            if let Some(v) = value {
                match &self.late_tag {
                    Some(tag) => out.collect_side(tag, StreamRecord::with_timestamp(v, ts))?,
                    None => self.late_dropped += 1,
                }
            }
        }
        Ok(())
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        while let Some((time, key, window)) = self.timers.event.pop_due(wm.0) {
            self.on_timer(true, time, key, window, out)?;
        }
        out.emit_watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Outputs<O>) -> Result<()> {
        while let Some((time, key, window)) = self.timers.processing.pop_due(now) {
            self.on_timer(false, time, key, window, out)?;
        }
        self.timers.request_next_processing();
        Ok(())
    }

    fn state_entries(&self) -> u64 {
        self.state_size() as u64
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        self.table
            .snapshot(WINDOW_CONTENTS, st)
            .and_then(|()| self.merging.snapshot(MERGING_WINDOWS, st))
            .map_err(|e| crate::timers::state_error(&self.info, "snapshot", e))?;
        crate::timers::snapshot_keyed(&self.info, barrier, &mut self.backend, &self.timers, st)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        // The backend first: it loads RocksDB files, which hold these tables too.
        crate::timers::restore_keyed(&self.info, &mut self.backend, &mut self.timers, restored)?;
        self.table
            .restore(WINDOW_CONTENTS, restored)
            .and_then(|()| self.merging.restore(MERGING_WINDOWS, restored))
            .map_err(|e| crate::timers::state_error(&self.info, "restore", e))
    }
}

/// Snapshot section of the window contents per (key, window).
pub(crate) const WINDOW_CONTENTS: &str = "window/contents";
/// Snapshot section of the merging-window sets per key.
pub(crate) const MERGING_WINDOWS: &str = "window/merging";

impl<T, K, W, O, A, C: WindowContents<T, K, W, O>> WindowOperator<T, K, W, O, A, C> {
    /// Late records dropped because no side output was set.
    #[allow(dead_code)]
    pub(crate) fn late_records_dropped(&self) -> u64 {
        self.late_dropped
    }
}
