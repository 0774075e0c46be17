//! Broadcast state (Flink's broadcast state pattern): a low-volume stream (rules, config) is
//! broadcast to every subtask of an operator and kept there in a map; the main stream, keyed
//! or not, reads that map for each of its elements.
//!
//! Every subtask sees the broadcast elements in the same order, so the maps stay equal if the
//! function updates them deterministically; the main stream only gets read access.

use crate::datastream::DataStream;
use crate::exchange::KeySelector;
use crate::functions::{user_error, Collector, OutputTag, RuntimeContext, UserError};
use crate::join::two_input_node;
use crate::keyed::KeyedStream;
use crate::timers::{InternalTimers, TimeDomain};
use crate::types::Data;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use weir_runtime::operator::{
    guarded, OperatorInfo, OutputControl, Outputs, SideOutputs, TwoInputOperator,
};
use weir_runtime::{Result, RuntimeError, StreamRecord, Watermark};
use weir_state::{KeyedState, KeyedStateBackend, StateContext, StateKey};

/// Marks the element types an operator works on.
type Marker<A, B, O> = PhantomData<fn() -> (A, B, O)>;

/// Names the broadcast state and its key and value types.
pub struct BroadcastStateDescriptor<UK, UV> {
    name: String,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<UK, UV> BroadcastStateDescriptor<UK, UV> {
    /// A descriptor called `name`.
    pub fn new(name: &str) -> Self {
        BroadcastStateDescriptor {
            name: name.to_string(),
            _t: PhantomData,
        }
    }
}

/// A stream broadcast to every subtask of the operator it is connected to.
pub struct BroadcastStream<B, UK, UV> {
    stream: DataStream<B>,
    name: String,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<B: Data> DataStream<B> {
    /// Broadcasts this stream, its elements to be kept in the broadcast state `descriptor`.
    pub fn broadcast_with<UK, UV>(
        &self,
        descriptor: &BroadcastStateDescriptor<UK, UV>,
    ) -> BroadcastStream<B, UK, UV> {
        BroadcastStream {
            stream: self.broadcast(),
            name: descriptor.name.clone(),
            _t: PhantomData,
        }
    }
}

/// The map every subtask keeps for a broadcast stream.
pub type BroadcastState<UK, UV> = HashMap<UK, UV>;

/// What the broadcast side may do: update the state, emit.
pub struct BroadcastContext<'a, UK, UV> {
    state: &'a mut BroadcastState<UK, UV>,
    sides: SideOutputs<'a>,
    timestamp: Option<i64>,
    watermark: i64,
    error: Option<RuntimeError>,
}

impl<UK, UV> BroadcastContext<'_, UK, UV> {
    /// The broadcast state, writable.
    pub fn broadcast_state(&mut self) -> &mut BroadcastState<UK, UV> {
        self.state
    }
    /// The element's timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
    /// Emits on a side output.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            if let Err(e) = self
                .sides
                .collect(tag.id(), StreamRecord::from_parts(value, self.timestamp))
            {
                self.error = Some(e);
            }
        }
    }
}

/// Runs the broadcast side of either broadcast operator: `f` may update the state and emit.
fn on_broadcast_element<B, O, UK, UV>(
    state: &mut BroadcastState<UK, UV>,
    watermark: i64,
    info: &OperatorInfo,
    r: StreamRecord<B>,
    out: &mut Outputs<O>,
    f: impl FnOnce(B, &mut BroadcastContext<'_, UK, UV>, &mut Collector<'_, O>) -> Result<(), UserError>,
) -> Result<()> {
    let (main, sides) = out.split();
    let mut c = Collector::new(main, r.timestamp());
    let mut ctx = BroadcastContext {
        state,
        sides,
        timestamp: r.timestamp(),
        watermark,
        error: None,
    };
    let res = f(r.value, &mut ctx, &mut c);
    let err = ctx.error.take();
    res.map_err(|e| user_error(info, e))?;
    err.map_or(Ok(()), Err)?;
    c.finish()
}

/// What the broadcast side of a [`KeyedBroadcastProcessFunction`] may do: all a
/// [`BroadcastContext`] may (it derefs to one), and work on the keyed state of every key of
/// the subtask (Flink's `applyToKeyedState`).
pub struct KeyedBroadcastContext<'a, K, UK, UV> {
    inner: BroadcastContext<'a, UK, UV>,
    backend: &'a mut KeyedStateBackend<K>,
}

impl<'a, K, UK, UV> std::ops::Deref for KeyedBroadcastContext<'a, K, UK, UV> {
    type Target = BroadcastContext<'a, UK, UV>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<K, UK, UV> std::ops::DerefMut for KeyedBroadcastContext<'_, K, UK, UV> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl<K: StateKey, UK, UV> KeyedBroadcastContext<'_, K, UK, UV> {
    /// Calls `f` once for every key of this subtask that holds a value of `state`, with
    /// that key current in the [`KeyedStateAccess`] it gets: `f` may read, update or clear
    /// any keyed state of the key (e.g. reset a counter for every key when a rule changes).
    pub fn apply_to_keyed_state<S: KeyedState>(
        &mut self,
        state: &S,
        mut f: impl FnMut(&mut KeyedStateAccess<'_, K>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let mut access = KeyedStateAccess {
            backend: &mut *self.backend,
        };
        let keys = state.keys(&mut access)?;
        for key in keys {
            access.backend.set_current_key(key)?;
            f(&mut access)?;
        }
        Ok(())
    }
}

/// One key's keyed state, during [`KeyedBroadcastContext::apply_to_keyed_state`]: a state
/// context whose current key is the key being visited.
pub struct KeyedStateAccess<'a, K> {
    backend: &'a mut KeyedStateBackend<K>,
}

impl<K: StateKey> KeyedStateAccess<'_, K> {
    /// The key being visited.
    pub fn current_key(&self) -> &K {
        self.backend
            .current_key()
            .expect("apply_to_keyed_state sets the key before calling the function")
    }
}

impl<K: StateKey> StateContext for KeyedStateAccess<'_, K> {
    type Key = K;
    type Ns = ();
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &()) {
        (self.backend, &())
    }
}

/// What the keyed side may do: read the broadcast state, use keyed state and timers, emit.
pub struct KeyedReadOnlyContext<'a, K, UK, UV> {
    state: &'a BroadcastState<UK, UV>,
    backend: &'a mut KeyedStateBackend<K>,
    timers: &'a mut InternalTimers<K, ()>,
    sides: SideOutputs<'a>,
    timestamp: Option<i64>,
    watermark: i64,
    domain: Option<TimeDomain>,
    error: Option<RuntimeError>,
}

impl<K: StateKey, UK, UV> KeyedReadOnlyContext<'_, K, UK, UV> {
    /// The broadcast state, read-only.
    pub fn broadcast_state(&self) -> &BroadcastState<UK, UV> {
        self.state
    }
    /// The current key.
    pub fn current_key(&self) -> &K {
        self.backend
            .current_key()
            .expect("the operator sets the key before calling the function")
    }
    /// The element's (or firing timer's) timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    /// In `on_timer`: which clock fired.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }
    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
    /// Calls `on_timer` once the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        let k = self.current_key().clone();
        self.timers.register_event(time, k, ());
    }
    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        let k = self.current_key().clone();
        self.timers.delete_event(time, &k, &());
    }
    /// Processing time in milliseconds.
    pub fn current_processing_time(&self) -> i64 {
        self.timers.clock.now()
    }
    /// Calls `on_timer` once processing time reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        let k = self.current_key().clone();
        self.timers.register_processing(time, k, ());
    }
    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        let k = self.current_key().clone();
        self.timers.delete_processing(time, &k, &());
    }
    /// Emits on a side output.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            if let Err(e) = self
                .sides
                .collect(tag.id(), StreamRecord::from_parts(value, self.timestamp))
            {
                self.error = Some(e);
            }
        }
    }
}

impl<K: StateKey, UK, UV> StateContext for KeyedReadOnlyContext<'_, K, UK, UV> {
    type Key = K;
    type Ns = ();
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &()) {
        (self.backend, &())
    }
}

/// A function on a keyed stream connected with a broadcast stream (Flink's
/// `KeyedBroadcastProcessFunction`).
pub trait KeyedBroadcastProcessFunction<K, A, B, O, UK, UV>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first element.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// An element of the keyed stream.
    fn process_element(
        &mut self,
        value: A,
        ctx: &mut KeyedReadOnlyContext<'_, K, UK, UV>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
    /// An element of the broadcast stream (every subtask sees each one).
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut KeyedBroadcastContext<'_, K, UK, UV>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
    /// A timer of the current key fired; [`KeyedReadOnlyContext::time_domain`] says which
    /// clock.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedReadOnlyContext<'_, K, UK, UV>,
        _out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// A keyed stream connected with a broadcast stream.
pub struct KeyedBroadcastConnectedStream<A, K, B, UK, UV> {
    keyed: KeyedStream<A, K>,
    broadcast: DataStream<B>,
    name: String,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<A: Data, K: Data + Hash + Eq> KeyedStream<A, K> {
    /// Connects with a broadcast stream for a [`KeyedBroadcastProcessFunction`].
    pub fn connect_broadcast<B: Data, UK, UV>(
        &self,
        b: &BroadcastStream<B, UK, UV>,
    ) -> KeyedBroadcastConnectedStream<A, K, B, UK, UV> {
        KeyedBroadcastConnectedStream {
            keyed: self.clone(),
            broadcast: b.stream.clone(),
            name: b.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<A, K, B, UK, UV> KeyedBroadcastConnectedStream<A, K, B, UK, UV>
where
    A: Data,
    K: Data + Hash + Eq,
    B: Data,
    UK: Hash + Eq + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    UV: Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// Runs `f` on both streams.
    pub fn process<O: Data, F: KeyedBroadcastProcessFunction<K, A, B, O, UK, UV>>(
        self,
        f: F,
    ) -> DataStream<O> {
        let key_of = self.keyed.key_of.clone();
        let name = format!("Co-Process-Broadcast-Keyed ({})", self.name);
        two_input_node(&self.keyed.stream, &self.broadcast, &name, move |info| {
            let mut f = f.clone();
            guarded(info, || {
                f.open(&RuntimeContext::of(info))
                    .map_err(|e| user_error(info, e))
            })?;
            Ok(KeyedBroadcastOp {
                f,
                key_of: key_of.clone(),
                state: HashMap::new(),
                backend: KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism),
                timers: InternalTimers::new(info.processing_time.clone()),
                watermark: i64::MIN,
                info: info.clone(),
                _t: PhantomData,
            })
        })
    }
}

struct KeyedBroadcastOp<A, K, B, O, UK, UV, F> {
    f: F,
    key_of: KeySelector<A, K>,
    state: BroadcastState<UK, UV>,
    backend: KeyedStateBackend<K>,
    timers: InternalTimers<K, ()>,
    watermark: i64,
    info: OperatorInfo,
    _t: PhantomData<fn() -> (B, O)>,
}

impl<A, K, B, O, UK, UV, F> KeyedBroadcastOp<A, K, B, O, UK, UV, F>
where
    K: StateKey,
    F: KeyedBroadcastProcessFunction<K, A, B, O, UK, UV>,
{
    /// Calls `call` on the keyed side with the key `key` set, the timestamp `ts` and, for a
    /// timer, its domain.
    fn call_keyed(
        &mut self,
        key: K,
        ts: Option<i64>,
        domain: Option<TimeDomain>,
        out: &mut Outputs<O>,
        call: impl FnOnce(
            &mut F,
            &mut KeyedReadOnlyContext<'_, K, UK, UV>,
            &mut Collector<'_, O>,
        ) -> Result<(), UserError>,
    ) -> Result<()> {
        self.backend
            .set_current_key(key)
            .map_err(|e| self.info.error(e.to_string()))?;
        let (main, sides) = out.split();
        let mut c = Collector::new(main, ts);
        let mut ctx = KeyedReadOnlyContext {
            state: &self.state,
            backend: &mut self.backend,
            timers: &mut self.timers,
            sides,
            timestamp: ts,
            watermark: self.watermark,
            domain,
            error: None,
        };
        let res = call(&mut self.f, &mut ctx, &mut c);
        let err = ctx.error.take();
        res.map_err(|e| user_error(&self.info, e))?;
        err.map_or(Ok(()), Err)?;
        c.finish()
    }
}

impl<A, K, B, O, UK, UV, F> TwoInputOperator<A, B, O> for KeyedBroadcastOp<A, K, B, O, UK, UV, F>
where
    K: StateKey,
    UK: Hash + Eq + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    UV: Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: KeyedBroadcastProcessFunction<K, A, B, O, UK, UV>,
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let key = self.key_of.key(&r.value);
        let ts = r.timestamp();
        self.call_keyed(key, ts, None, out, |f, ctx, c| {
            f.process_element(r.value, ctx, c)
        })
    }

    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let (main, sides) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        let mut ctx = KeyedBroadcastContext {
            inner: BroadcastContext {
                state: &mut self.state,
                sides,
                timestamp: r.timestamp(),
                watermark: self.watermark,
                error: None,
            },
            backend: &mut self.backend,
        };
        let res = self.f.process_broadcast_element(r.value, &mut ctx, &mut c);
        let err = ctx.inner.error.take();
        res.map_err(|e| user_error(&self.info, e))?;
        err.map_or(Ok(()), Err)?;
        c.finish()
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        while let Some((time, key, ())) = self.timers.event.pop_due(wm.0) {
            self.call_keyed(
                key,
                Some(time),
                Some(TimeDomain::EventTime),
                out,
                |f, ctx, c| f.on_timer(time, ctx, c),
            )?;
        }
        out.emit_watermark(wm)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Outputs<O>) -> Result<()> {
        while let Some((time, key, ())) = self.timers.processing.pop_due(now) {
            // Processing-time firings carry no timestamp (as in Flink).
            self.call_keyed(
                key,
                None,
                Some(TimeDomain::ProcessingTime),
                out,
                |f, ctx, c| f.on_timer(time, ctx, c),
            )?;
        }
        self.timers.request_next_processing();
        Ok(())
    }

    fn state_entries(&self) -> u64 {
        (self.state.len() + self.backend.entries() + self.timers.len()) as u64
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        snapshot_broadcast(&self.info, &self.state, st)?;
        crate::timers::snapshot_keyed(&self.info, barrier, &mut self.backend, &self.timers, st)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        restore_broadcast(&self.info, &mut self.state, restored)?;
        crate::timers::restore_keyed(&self.info, &mut self.backend, &mut self.timers, restored)
    }
}

/// What the non-broadcast side of a [`BroadcastProcessFunction`] may do.
pub struct ReadOnlyContext<'a, UK, UV> {
    state: &'a BroadcastState<UK, UV>,
    timestamp: Option<i64>,
    watermark: i64,
}

impl<UK, UV> ReadOnlyContext<'_, UK, UV> {
    /// The broadcast state, read-only.
    pub fn broadcast_state(&self) -> &BroadcastState<UK, UV> {
        self.state
    }
    /// The element's timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }
}

/// A function on a (non-keyed) stream connected with a broadcast stream (Flink's
/// `BroadcastProcessFunction`).
pub trait BroadcastProcessFunction<A, B, O, UK, UV>: Clone + Send + Sync + 'static {
    /// An element of the main stream.
    fn process_element(
        &mut self,
        value: A,
        ctx: &ReadOnlyContext<'_, UK, UV>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
    /// An element of the broadcast stream.
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut BroadcastContext<'_, UK, UV>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
}

/// A stream connected with a broadcast stream.
pub struct BroadcastConnectedStream<A, B, UK, UV> {
    main: DataStream<A>,
    broadcast: DataStream<B>,
    name: String,
    _t: PhantomData<fn() -> (UK, UV)>,
}

impl<A: Data> DataStream<A> {
    /// Connects with a broadcast stream for a [`BroadcastProcessFunction`].
    pub fn connect_broadcast<B: Data, UK, UV>(
        &self,
        b: &BroadcastStream<B, UK, UV>,
    ) -> BroadcastConnectedStream<A, B, UK, UV> {
        BroadcastConnectedStream {
            main: self.clone(),
            broadcast: b.stream.clone(),
            name: b.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<
        A: Data,
        B: Data,
        UK: Hash + Eq + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        UV: Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    > BroadcastConnectedStream<A, B, UK, UV>
{
    /// Runs `f` on both streams.
    pub fn process<O: Data, F: BroadcastProcessFunction<A, B, O, UK, UV>>(
        self,
        f: F,
    ) -> DataStream<O> {
        let name = format!("Co-Process-Broadcast ({})", self.name);
        two_input_node(&self.main, &self.broadcast, &name, move |info| {
            Ok(BroadcastOp {
                f: f.clone(),
                state: HashMap::new(),
                watermark: i64::MIN,
                info: info.clone(),
                _t: PhantomData,
            })
        })
    }
}

struct BroadcastOp<A, B, O, UK, UV, F> {
    f: F,
    state: BroadcastState<UK, UV>,
    watermark: i64,
    info: OperatorInfo,
    _t: Marker<A, B, O>,
}

impl<
        A,
        B,
        O,
        UK: Hash + Eq + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        UV: Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        F,
    > TwoInputOperator<A, B, O> for BroadcastOp<A, B, O, UK, UV, F>
where
    F: BroadcastProcessFunction<A, B, O, UK, UV>,
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        let ctx = ReadOnlyContext {
            state: &self.state,
            timestamp: r.timestamp(),
            watermark: self.watermark,
        };
        let res = self.f.process_element(r.value, &ctx, &mut c);
        res.map_err(|e| user_error(&self.info, e))?;
        c.finish()
    }

    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let f = &mut self.f;
        on_broadcast_element(
            &mut self.state,
            self.watermark,
            &self.info,
            r,
            out,
            |v, ctx, c| f.process_broadcast_element(v, ctx, c),
        )
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        out.emit_watermark(wm)
    }

    fn state_entries(&self) -> u64 {
        self.state.len() as u64
    }

    fn snapshot_state(
        &mut self,
        _: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        snapshot_broadcast(&self.info, &self.state, st)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        restore_broadcast(&self.info, &mut self.state, restored)
    }
}

/// Union list state under which every subtask stores its (identical) broadcast state.
const BROADCAST_STATE: &str = "broadcast";

/// Writes the broadcast state: each subtask writes its whole copy, as Flink does.
fn snapshot_broadcast<UK: Hash + Eq + serde::Serialize, UV: serde::Serialize>(
    info: &OperatorInfo,
    state: &BroadcastState<UK, UV>,
    st: &mut weir_state::OperatorSubtaskState,
) -> Result<()> {
    let entries: Vec<(&UK, &UV)> = state.iter().collect();
    let bytes = weir_state::snapshot::encode(BROADCAST_STATE, &entries)
        .map_err(|e| crate::timers::state_error(info, "snapshot", e))?;
    st.add_union(BROADCAST_STATE, vec![bytes]);
    Ok(())
}

/// Loads the broadcast state from one of the copies (they are all equal).
fn restore_broadcast<
    UK: Hash + Eq + serde::de::DeserializeOwned,
    UV: serde::de::DeserializeOwned,
>(
    info: &OperatorInfo,
    state: &mut BroadcastState<UK, UV>,
    restored: &weir_state::RestoredState,
) -> Result<()> {
    if let Some(bytes) = restored.union(BROADCAST_STATE).first() {
        let entries: Vec<(UK, UV)> = weir_state::snapshot::decode(BROADCAST_STATE, bytes)
            .map_err(|e| crate::timers::state_error(info, "restore", e))?;
        state.extend(entries);
    }
    Ok(())
}
