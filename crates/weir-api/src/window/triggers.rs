//! Triggers: when a window's contents are emitted (Flink's `Trigger`).

use super::Window;
use crate::functions::UserError;
use crate::timers::InternalTimers;
use weir_state::{
    KeyedStateBackend, ReducingState, StateContext, StateKey, StateValue, ValueState,
};

/// What a trigger decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerResult {
    /// Do nothing.
    Continue,
    /// Emit the window's contents, keep them.
    Fire,
    /// Drop the window's contents without emitting.
    Purge,
    /// Emit the contents, then drop them.
    FireAndPurge,
}

impl TriggerResult {
    /// True for the results that emit.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }
    /// True for the results that drop the contents.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// What a trigger may do: timers and per-window state for the current key and window.
pub struct TriggerContext<'a, K, W> {
    pub(crate) backend: &'a mut KeyedStateBackend<K>,
    pub(crate) timers: &'a mut InternalTimers<K, W>,
    pub(crate) window: W,
    pub(crate) watermark: i64,
    pub(crate) merged: &'a [W],
}

impl<K: StateKey, W: Window> TriggerContext<'_, K, W> {
    fn key(&self) -> K {
        self.backend
            .current_key()
            .expect("the window operator sets the key before calling the trigger")
            .clone()
    }

    /// The current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Processing time in ms.
    pub fn current_processing_time(&self) -> i64 {
        self.timers.clock.now()
    }

    /// Calls `on_event_time` for this key and window when the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        let k = self.key();
        self.timers.register_event(time, k, self.window.clone());
    }

    /// Calls `on_processing_time` for this key and window at processing time `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        let k = self.key();
        self.timers
            .register_processing(time, k, self.window.clone());
    }

    /// Deletes an event-time timer of this key and window.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let k = self.key();
        self.timers.delete_event(time, &k, &self.window);
    }

    /// Deletes a processing-time timer of this key and window.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let k = self.key();
        self.timers.delete_processing(time, &k, &self.window);
    }

    /// In `on_merge`: the windows that were merged into the current one.
    pub fn merged_windows(&self) -> &[W] {
        self.merged
    }

    /// Runs `f` with a context scoped to `window` (to read or clear another window's
    /// trigger state while merging).
    pub fn with_window<R>(
        &mut self,
        window: &W,
        f: impl FnOnce(&mut TriggerContext<'_, K, W>) -> R,
    ) -> R {
        let mut ctx = TriggerContext {
            backend: &mut *self.backend,
            timers: &mut *self.timers,
            window: window.clone(),
            watermark: self.watermark,
            merged: &[],
        };
        f(&mut ctx)
    }
}

impl<K: StateKey, W: Window> StateContext for TriggerContext<'_, K, W> {
    type Key = K;
    type Ns = W;
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &W) {
        (self.backend, &self.window)
    }
}

/// Decides when a window fires (Flink's `Trigger`). One instance per subtask.
pub trait Trigger<T, K, W>: Send + Sync {
    /// An element was added to `window`.
    fn on_element(
        &mut self,
        element: &T,
        timestamp: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError>;
    /// An event-time timer of `window` fired.
    fn on_event_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError>;
    /// A processing-time timer of `window` fired.
    fn on_processing_time(
        &mut self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError>;
    /// True if the trigger supports merging windows.
    fn can_merge(&self) -> bool {
        false
    }
    /// Windows were merged into `window` (see [`TriggerContext::merged_windows`]).
    fn on_merge(
        &mut self,
        _window: &W,
        _ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<(), UserError> {
        Err("this trigger does not support merging windows".into())
    }
    /// The window is removed: delete its timers and state.
    fn clear(&mut self, window: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError>;
    /// A fresh copy for another subtask.
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>>;
}

/// Fires when the watermark passes the window's end; fires again at once for every element
/// that arrives later but within the allowed lateness (Flink's `EventTimeTrigger`).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventTimeTrigger;

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for EventTimeTrigger {
    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        if w.max_timestamp() <= ctx.current_watermark() {
            Ok(TriggerResult::Fire)
        } else {
            ctx.register_event_time_timer(w.max_timestamp());
            Ok(TriggerResult::Continue)
        }
    }
    fn on_event_time(
        &mut self,
        time: i64,
        w: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(if time == w.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        })
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        if w.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(w.max_timestamp());
        }
        Ok(())
    }
    fn clear(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        ctx.delete_event_time_timer(w.max_timestamp());
        Ok(())
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(*self)
    }
}

/// Fires when processing time passes the window's end (Flink's `ProcessingTimeTrigger`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessingTimeTrigger;

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for ProcessingTimeTrigger {
    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        ctx.register_processing_time_timer(w.max_timestamp());
        Ok(TriggerResult::Continue)
    }
    fn on_event_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Fire)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        if w.max_timestamp() > ctx.current_processing_time() {
            ctx.register_processing_time_timer(w.max_timestamp());
        }
        Ok(())
    }
    fn clear(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        ctx.delete_processing_time_timer(w.max_timestamp());
        Ok(())
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(*self)
    }
}

/// Never fires (the default of global windows).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverTrigger;

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for NeverTrigger {
    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn on_event_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, _: &W, _: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        Ok(())
    }
    fn clear(&mut self, _: &W, _: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        Ok(())
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(*self)
    }
}

/// Fires every `count` elements of a window (Flink's `CountTrigger`).
#[derive(Clone)]
pub struct CountTrigger {
    max: u64,
    count: ReducingState<u64>,
}

impl CountTrigger {
    /// Fires once `count` elements arrived since the last firing.
    pub fn of(count: u64) -> Self {
        CountTrigger {
            max: count.max(1),
            count: ReducingState::new("count-trigger", |a, b| a + b),
        }
    }
}

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for CountTrigger {
    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        _: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        self.count.add(ctx, 1)?;
        if self.count.get(ctx)?.unwrap_or(0) >= self.max {
            self.count.clear(ctx)?;
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }
    fn on_event_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        let merged = ctx.merged_windows().to_vec();
        let mut total = 0;
        for m in &merged {
            total += ctx.with_window(m, |c| -> Result<u64, UserError> {
                let n = self.count.get(c)?.unwrap_or(0);
                self.count.clear(c)?;
                Ok(n)
            })?;
        }
        if total > 0 {
            self.count.add(ctx, total)?;
        }
        Ok(())
    }
    fn clear(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        Ok(self.count.clear(ctx)?)
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(self.clone())
    }
}

/// The distance between two elements, for [`DeltaTrigger`] and
/// [`DeltaEvictor`](super::evictors::DeltaEvictor) (Flink's `DeltaFunction`).
pub type DeltaFunction<T> = std::sync::Arc<dyn Fn(&T, &T) -> f64 + Send + Sync>;

/// Fires when an element is more than `threshold` away from the element of the last firing
/// (the first element of a window only sets the reference), by a delta function of the
/// two (Flink's `DeltaTrigger`). The reference element is kept in the window's state.
pub struct DeltaTrigger<T> {
    threshold: f64,
    delta: DeltaFunction<T>,
    last: ValueState<T>,
}

impl<T> Clone for DeltaTrigger<T> {
    fn clone(&self) -> Self {
        DeltaTrigger {
            threshold: self.threshold,
            delta: self.delta.clone(),
            last: self.last.clone(),
        }
    }
}

impl<T: Clone + StateValue> DeltaTrigger<T> {
    /// Fires when `delta(reference, element) > threshold`; the element becomes the new
    /// reference.
    pub fn of(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaTrigger {
            threshold,
            delta: std::sync::Arc::new(delta),
            last: ValueState::new("delta-trigger"),
        }
    }
}

impl<T: Clone + StateValue, K: StateKey, W: Window> Trigger<T, K, W> for DeltaTrigger<T> {
    fn on_element(
        &mut self,
        element: &T,
        _: i64,
        _: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        match self.last.value(ctx)? {
            None => {
                self.last.update(ctx, element.clone())?;
                Ok(TriggerResult::Continue)
            }
            Some(last) if (self.delta)(&last, element) > self.threshold => {
                self.last.update(ctx, element.clone())?;
                Ok(TriggerResult::Fire)
            }
            Some(_) => Ok(TriggerResult::Continue),
        }
    }
    fn on_event_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn clear(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        Ok(self.last.clear(ctx)?)
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(self.clone())
    }
}

/// Fires every `interval` of event time while the window is open, and at its end
/// (Flink's `ContinuousEventTimeTrigger`).
#[derive(Clone)]
pub struct ContinuousEventTimeTrigger {
    interval: i64,
    fire_time: ReducingState<i64>,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` ms of event time.
    pub fn of(interval: std::time::Duration) -> Self {
        ContinuousEventTimeTrigger {
            interval: (interval.as_millis() as i64).max(1),
            fire_time: ReducingState::new("continuous-event-fire-time", |a: i64, b: i64| a.min(b)),
        }
    }

    fn register_next<K: StateKey, W: Window>(
        &self,
        time: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<(), UserError> {
        let next = time.saturating_add(self.interval).min(w.max_timestamp());
        self.fire_time.add(ctx, next)?;
        ctx.register_event_time_timer(next);
        Ok(())
    }
}

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for ContinuousEventTimeTrigger {
    fn on_element(
        &mut self,
        _: &T,
        ts: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        if w.max_timestamp() <= ctx.current_watermark() {
            return Ok(TriggerResult::Fire);
        }
        ctx.register_event_time_timer(w.max_timestamp());
        if self.fire_time.get(ctx)?.is_none() {
            self.register_next(ts - ts.rem_euclid(self.interval), w, ctx)?;
        }
        Ok(TriggerResult::Continue)
    }
    fn on_event_time(
        &mut self,
        time: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        if time == w.max_timestamp() {
            return Ok(TriggerResult::Fire);
        }
        if self.fire_time.get(ctx)? == Some(time) {
            self.fire_time.clear(ctx)?;
            self.register_next(time, w, ctx)?;
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }
    fn on_processing_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        let merged = ctx.merged_windows().to_vec();
        let mut earliest: Option<i64> = None;
        for m in &merged {
            if let Some(t) = ctx.with_window(m, |c| -> Result<Option<i64>, UserError> {
                let t = self.fire_time.get(c)?;
                self.fire_time.clear(c)?;
                Ok(t)
            })? {
                earliest = Some(earliest.map_or(t, |e: i64| e.min(t)));
            }
        }
        if let Some(t) = earliest {
            self.fire_time.add(ctx, t)?;
            ctx.register_event_time_timer(t);
        }
        if w.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(w.max_timestamp());
        }
        Ok(())
    }
    fn clear(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        if let Some(t) = self.fire_time.get(ctx)? {
            ctx.delete_event_time_timer(t);
            self.fire_time.clear(ctx)?;
        }
        Ok(())
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(self.clone())
    }
}

/// Fires every `interval` of processing time (Flink's `ContinuousProcessingTimeTrigger`).
#[derive(Clone)]
pub struct ContinuousProcessingTimeTrigger {
    interval: i64,
    fire_time: ReducingState<i64>,
}

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval` of wall-clock time.
    pub fn of(interval: std::time::Duration) -> Self {
        ContinuousProcessingTimeTrigger {
            interval: (interval.as_millis() as i64).max(1),
            fire_time: ReducingState::new("continuous-processing-fire-time", |a: i64, b: i64| {
                a.min(b)
            }),
        }
    }
}

impl<T, K: StateKey, W: Window> Trigger<T, K, W> for ContinuousProcessingTimeTrigger {
    fn on_element(
        &mut self,
        _: &T,
        _: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        if self.fire_time.get(ctx)?.is_none() {
            let now = ctx.current_processing_time();
            let next = (now - now.rem_euclid(self.interval) + self.interval).min(w.max_timestamp());
            self.fire_time.add(ctx, next)?;
            ctx.register_processing_time_timer(next);
        }
        Ok(TriggerResult::Continue)
    }
    fn on_event_time(
        &mut self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        Ok(TriggerResult::Continue)
    }
    fn can_merge(&self) -> bool {
        true
    }
    fn on_merge(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        let merged = ctx.merged_windows().to_vec();
        let mut earliest: Option<i64> = None;
        for m in &merged {
            if let Some(t) = ctx.with_window(m, |c| -> Result<Option<i64>, UserError> {
                let t = self.fire_time.get(c)?;
                self.fire_time.clear(c)?;
                Ok(t)
            })? {
                earliest = Some(earliest.map_or(t, |e: i64| e.min(t)));
            }
        }
        if let Some(t) = earliest {
            self.fire_time.add(ctx, t)?;
            ctx.register_processing_time_timer(t);
        }
        Ok(())
    }
    fn on_processing_time(
        &mut self,
        time: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        if self.fire_time.get(ctx)? == Some(time) {
            self.fire_time.clear(ctx)?;
            let next = time.saturating_add(self.interval).min(w.max_timestamp());
            self.fire_time.add(ctx, next)?;
            ctx.register_processing_time_timer(next);
            return Ok(TriggerResult::Fire);
        }
        Ok(TriggerResult::Continue)
    }
    fn clear(&mut self, _: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        if let Some(t) = self.fire_time.get(ctx)? {
            ctx.delete_processing_time_timer(t);
            self.fire_time.clear(ctx)?;
        }
        Ok(())
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(self.clone())
    }
}

/// Turns every firing of the wrapped trigger into fire-and-purge (Flink's `PurgingTrigger`).
pub struct PurgingTrigger<T, K, W> {
    inner: Box<dyn Trigger<T, K, W>>,
}

impl<T, K, W> PurgingTrigger<T, K, W> {
    /// Purges after each firing of `inner`.
    pub fn of(inner: impl Trigger<T, K, W> + 'static) -> Self {
        PurgingTrigger {
            inner: Box::new(inner),
        }
    }
}

fn purge(r: TriggerResult) -> TriggerResult {
    if r.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        r
    }
}

impl<T: 'static, K: 'static, W: 'static> Trigger<T, K, W> for PurgingTrigger<T, K, W> {
    fn on_element(
        &mut self,
        e: &T,
        ts: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        self.inner.on_element(e, ts, w, ctx).map(purge)
    }
    fn on_event_time(
        &mut self,
        t: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        self.inner.on_event_time(t, w, ctx).map(purge)
    }
    fn on_processing_time(
        &mut self,
        t: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, K, W>,
    ) -> Result<TriggerResult, UserError> {
        self.inner.on_processing_time(t, w, ctx).map(purge)
    }
    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }
    fn on_merge(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        self.inner.on_merge(w, ctx)
    }
    fn clear(&mut self, w: &W, ctx: &mut TriggerContext<'_, K, W>) -> Result<(), UserError> {
        self.inner.clear(w, ctx)
    }
    fn box_clone(&self) -> Box<dyn Trigger<T, K, W>> {
        Box::new(PurgingTrigger {
            inner: self.inner.box_clone(),
        })
    }
}
