//! KeyedProcessFunction: per-key state and timers (Flink's `KeyedProcessFunction`).

use crate::functions::{user_error, Collector, OutputTag, RuntimeContext, UserError};
use crate::timers::{InternalTimers, TimeDomain};
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs, SideOutputs};
use weir_runtime::{Result, RuntimeError, StreamRecord, Watermark};
use weir_state::{KeyedStateBackend, StateContext, StateKey};

use crate::exchange::KeySelector;

/// A function on a keyed stream with per-key state and timers.
///
/// Each subtask gets its own clone. State handles ([`weir_state::ValueState`] and the others)
/// are kept in the function's fields and used with the context, which knows the current key.
pub trait KeyedProcessFunction<K, I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Called for each record; the context's key is the record's key.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;

    /// Called when a timer fires; the context's key is the timer's key and
    /// [`KeyedContext::time_domain`] says which clock fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// What a [`KeyedProcessFunction`] may ask and do: the key, time, timers, state and side
/// outputs.
pub struct KeyedContext<'a, K> {
    backend: &'a mut KeyedStateBackend<K>,
    timers: &'a mut InternalTimers<K, ()>,
    sides: SideOutputs<'a>,
    timestamp: Option<i64>,
    watermark: i64,
    domain: Option<TimeDomain>,
    error: Option<RuntimeError>,
}

impl<'a, K: StateKey> KeyedContext<'a, K> {
    /// A context over `backend` (its current key set) and `timers`, for a record or timer
    /// with timestamp `timestamp`; `domain` is the firing timer's clock.
    pub(crate) fn new(
        backend: &'a mut KeyedStateBackend<K>,
        timers: &'a mut InternalTimers<K, ()>,
        sides: SideOutputs<'a>,
        timestamp: Option<i64>,
        watermark: i64,
        domain: Option<TimeDomain>,
    ) -> Self {
        KeyedContext {
            backend,
            timers,
            sides,
            timestamp,
            watermark,
            domain,
            error: None,
        }
    }

    /// The error a side output met, if any, to fail the call with.
    pub(crate) fn take_error(&mut self) -> Option<RuntimeError> {
        self.error.take()
    }

    /// The current key.
    pub fn current_key(&self) -> &K {
        // Set before every call; a missing key would be a bug in the operator.
        self.backend
            .current_key()
            .expect("the keyed operator sets the key before calling the function")
    }

    /// The timestamp of the current record, or of the firing timer.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// In `on_timer`: which clock fired.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Processing time in milliseconds.
    pub fn current_processing_time(&self) -> i64 {
        self.timers.clock.now()
    }

    /// Calls `on_timer` once the watermark reaches `time` (once per key and time).
    pub fn register_event_time_timer(&mut self, time: i64) {
        let key = self.current_key().clone();
        self.timers.register_event(time, key, ());
    }

    /// Calls `on_timer` once processing time reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        let key = self.current_key().clone();
        self.timers.register_processing(time, key, ());
    }

    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let key = self.current_key().clone();
        self.timers.delete_event(time, &key, &());
    }

    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let key = self.current_key().clone();
        self.timers.delete_processing(time, &key, &());
    }

    /// Emits `value` on the side output `tag`.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            let rec = StreamRecord::from_parts(value, self.timestamp);
            if let Err(e) = self.sides.collect(tag.id(), rec) {
                self.error = Some(e);
            }
        }
    }
}

impl<K: StateKey> StateContext for KeyedContext<'_, K> {
    type Key = K;
    type Ns = ();
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &()) {
        (self.backend, &())
    }
}

/// Runs a [`KeyedProcessFunction`].
pub(crate) struct KeyedProcessOp<T, K, O, P> {
    f: P,
    key_of: KeySelector<T, K>,
    backend: KeyedStateBackend<K>,
    timers: InternalTimers<K, ()>,
    watermark: i64,
    info: OperatorInfo,
    _o: std::marker::PhantomData<fn() -> O>,
}

impl<T, K: StateKey, O, P: KeyedProcessFunction<K, T, O>> KeyedProcessOp<T, K, O, P> {
    pub(crate) fn new(f: P, key_of: KeySelector<T, K>, info: &OperatorInfo) -> Result<Self> {
        Ok(KeyedProcessOp {
            f,
            key_of,
            backend: KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism),
            timers: InternalTimers::new(info.processing_time.clone()),
            watermark: i64::MIN,
            info: info.clone(),
            _o: std::marker::PhantomData,
        })
    }

    fn fire(&mut self, domain: TimeDomain, time: i64, key: K, out: &mut Outputs<O>) -> Result<()> {
        self.backend
            .set_current_key(key)
            .map_err(|e| self.info.error(e.to_string()))?;
        let (main, sides) = out.split();
        // Event-time firings carry the timer's time as their timestamp; processing-time
        // firings carry none (as in Flink).
        let ts = (domain == TimeDomain::EventTime).then_some(time);
        let mut c = Collector::new(main, ts);
        let mut ctx = KeyedContext::new(
            &mut self.backend,
            &mut self.timers,
            sides,
            ts,
            self.watermark,
            Some(domain),
        );
        let r = self.f.on_timer(time, &mut ctx, &mut c);
        let err = ctx.take_error();
        r.map_err(|e| user_error(&self.info, e))?;
        if let Some(e) = err {
            return Err(e);
        }
        c.finish()
    }
}

impl<T, K: StateKey, O, P: KeyedProcessFunction<K, T, O>> OneInputOperator<T, O>
    for KeyedProcessOp<T, K, O, P>
{
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<O>) -> Result<()> {
        let key = self.key_of.key(&r.value);
        self.backend
            .set_current_key(key)
            .map_err(|e| self.info.error(e.to_string()))?;
        let (main, sides) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        let mut ctx = KeyedContext::new(
            &mut self.backend,
            &mut self.timers,
            sides,
            r.timestamp(),
            self.watermark,
            None,
        );
        let res = self.f.process_element(r.value, &mut ctx, &mut c);
        let err = ctx.take_error();
        res.map_err(|e| user_error(&self.info, e))?;
        if let Some(e) = err {
            return Err(e);
        }
        c.finish()
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        // Timers registered while firing are fired too if they are due.
        while let Some((time, key, ())) = self.timers.event.pop_due(wm.0) {
            self.fire(TimeDomain::EventTime, time, key, out)?;
        }
        out.emit_watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Outputs<O>) -> Result<()> {
        while let Some((time, key, ())) = self.timers.processing.pop_due(now) {
            self.fire(TimeDomain::ProcessingTime, time, key, out)?;
        }
        self.timers.request_next_processing();
        Ok(())
    }

    fn state_entries(&self) -> u64 {
        (self.backend.entries() + self.timers.len()) as u64
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        crate::timers::snapshot_keyed(&self.info, barrier, &mut self.backend, &self.timers, st)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        crate::timers::restore_keyed(&self.info, &mut self.backend, &mut self.timers, restored)
    }
}
