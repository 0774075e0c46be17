//! Joins: interval joins of keyed streams, and window joins and co-groups (Flink's
//! `intervalJoin`, `join` and `coGroup`).

use crate::datastream::DataStream;
use crate::exchange::KeySelector;
use crate::functions::{user_error, Collector, RuntimeContext, UserError};
use crate::graph::{ChainingStrategy, NodeCode, NodeKind};
use crate::keyed::KeyedStream;
use crate::timers::InternalTimers;
use crate::types::{unerase, Data, TypeOps};
use crate::window::assigners::WindowAssigner;
use crate::window::functions::{ProcessWindowFunction, WindowContext};
use crate::window::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use weir_runtime::head::TwoInputHead;
use weir_runtime::operator::{
    guarded, OperatorInfo, OutputControl, Outputs, TwoInputLink, TwoInputOperator,
};
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyGroupRange, StateKey, StateTable};

/// A value from one of two streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Either<A, B> {
    /// From the first stream.
    Left(A),
    /// From the second stream.
    Right(B),
}

/// Called for each pair of an interval join (Flink's `ProcessJoinFunction`).
pub trait ProcessJoinFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// One joined pair; `ctx` has both timestamps.
    fn process_element(
        &mut self,
        left: A,
        right: B,
        ctx: &JoinContext,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
}

/// The timestamps of a joined pair.
#[derive(Clone, Copy, Debug)]
pub struct JoinContext {
    /// The left element's timestamp.
    pub left_timestamp: i64,
    /// The right element's timestamp.
    pub right_timestamp: i64,
}

impl JoinContext {
    /// The result's timestamp: the larger of the two.
    pub fn timestamp(&self) -> i64 {
        self.left_timestamp.max(self.right_timestamp)
    }
}

/// An interval join being configured.
pub struct IntervalJoin<A, B, K> {
    left: KeyedStream<A, K>,
    right: KeyedStream<B, K>,
    lower: i64,
    upper: i64,
    lower_exclusive: bool,
    upper_exclusive: bool,
}

impl<A: Data, K: Data + Hash + Eq> KeyedStream<A, K> {
    /// Joins each element `a` with the elements `b` of `other` with the same key and
    /// `a.ts + lower <= b.ts <= a.ts + upper` (set with [`IntervalJoin::between`]).
    pub fn interval_join<B: Data>(&self, other: &KeyedStream<B, K>) -> IntervalJoin<A, B, K> {
        IntervalJoin {
            left: self.clone(),
            right: other.clone(),
            lower: 0,
            upper: 0,
            lower_exclusive: false,
            upper_exclusive: false,
        }
    }
}

impl<A: Data, B: Data, K: Data + Hash + Eq> IntervalJoin<A, B, K> {
    /// The bounds, in milliseconds relative to the left element's timestamp (inclusive).
    pub fn between(mut self, lower_ms: i64, upper_ms: i64) -> Self {
        self.lower = lower_ms;
        self.upper = upper_ms;
        self
    }

    /// Excludes the lower bound.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower_exclusive = true;
        self
    }

    /// Excludes the upper bound.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper_exclusive = true;
        self
    }

    /// Runs `f` on every joined pair.
    ///
    /// # Panics
    /// If the lower bound is above the upper bound.
    pub fn process<O: Data, F: ProcessJoinFunction<A, B, O>>(self, f: F) -> DataStream<O> {
        let lower = self.lower + i64::from(self.lower_exclusive);
        let upper = self.upper - i64::from(self.upper_exclusive);
        assert!(
            lower <= upper,
            "interval join: the lower bound must not be above the upper bound"
        );
        let (ka, kb) = (self.left.key_of.clone(), self.right.key_of.clone());
        two_input_node(
            &self.left.stream,
            &self.right.stream,
            "IntervalJoin",
            move |info| {
                let mut f = f.clone();
                guarded(info, || {
                    f.open(&RuntimeContext::of(info))
                        .map_err(|e| user_error(info, e))
                })?;
                IntervalJoinOp::new(f, ka.clone(), kb.clone(), lower, upper, info)
            },
        )
    }
}

/// Adds a two-input node fed by `a` (input 0) and `b` (input 1).
pub(crate) fn two_input_node<A, B, O, Op, F>(
    a: &DataStream<A>,
    b: &DataStream<B>,
    name: &str,
    make: F,
) -> DataStream<O>
where
    A: Data,
    B: Data,
    O: Data,
    Op: TwoInputOperator<A, B, O> + 'static,
    F: Fn(&OperatorInfo) -> Result<Op> + Send + Sync + 'static,
{
    let code = NodeCode::TwoInput(Arc::new(move |info, main, sides, channel_inputs, task| {
        let outs = Outputs::new(unerase::<O>(main)?, sides);
        let link = TwoInputLink::new(make(info)?, outs, info.clone())?;
        Ok(Box::new(TwoInputHead::new(
            channel_inputs,
            info.alignment,
            (BincodeSerializer::<A>::new(), BincodeSerializer::<B>::new()),
            link,
            task,
        )) as _)
    }));
    let mut inputs: Vec<_> = a.inputs.iter().map(|i| (0u8, i.clone())).collect();
    inputs.extend(b.inputs.iter().map(|i| (1u8, i.clone())));
    let env = a.env().clone();
    let id = env.add_node(
        name.to_string(),
        NodeKind::Operator,
        ChainingStrategy::Always,
        code,
        TypeOps::of::<O>(),
        None,
        &inputs,
    );
    DataStream::from_node(env, id)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Side {
    Left,
    Right,
}

type Buffer<T> = BTreeMap<i64, Vec<T>>;

/// Buffers both sides per key and timestamp; joins each arriving element with the other
/// side's buffered elements in range; drops buffers once the watermark passes their last
/// possible partner (Flink's `IntervalJoinOperator`). Late elements (timestamp below the
/// watermark) are dropped.
struct IntervalJoinOp<A, B, K, O, F> {
    f: F,
    key_a: KeySelector<A, K>,
    key_b: KeySelector<B, K>,
    lower: i64,
    upper: i64,
    left: StateTable<K, (), Buffer<A>>,
    right: StateTable<K, (), Buffer<B>>,
    timers: InternalTimers<K, Side>,
    store: weir_state::KeyedStore,
    range: KeyGroupRange,
    max_parallelism: u32,
    watermark: i64,
    info: OperatorInfo,
    _o: PhantomData<fn() -> O>,
}

impl<
        A: Clone + weir_state::StateValue,
        B: Clone + weir_state::StateValue,
        K: StateKey,
        O,
        F: ProcessJoinFunction<A, B, O>,
    > IntervalJoinOp<A, B, K, O, F>
{
    fn new(
        f: F,
        key_a: KeySelector<A, K>,
        key_b: KeySelector<B, K>,
        lower: i64,
        upper: i64,
        info: &OperatorInfo,
    ) -> Result<Self> {
        let store = info.keyed_store()?;
        let range = store.key_group_range();
        let err = |e| crate::timers::state_error(info, "open", e);
        Ok(IntervalJoinOp {
            f,
            key_a,
            key_b,
            lower,
            upper,
            left: store.table(JOIN_LEFT).map_err(err)?,
            right: store.table(JOIN_RIGHT).map_err(err)?,
            timers: InternalTimers::new(info.processing_time.clone()),
            store,
            range,
            max_parallelism: info.max_parallelism,
            watermark: i64::MIN,
            info: info.clone(),
            _o: PhantomData,
        })
    }

    fn slot(&self, key: &K) -> Result<usize> {
        let kg = weir_core::key_group::key_group_for_key(key, self.max_parallelism);
        if !self.range.contains(kg) {
            return Err(self
                .info
                .error(format!("key group {kg} is not owned by this subtask")));
        }
        Ok((kg - self.range.start) as usize)
    }

    fn is_late(&self, ts: i64) -> bool {
        self.watermark != i64::MIN && ts < self.watermark
    }

    fn emit(&mut self, a: A, b: B, ctx: JoinContext, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, Some(ctx.timestamp()));
        let r = self.f.process_element(a, b, &ctx, &mut c);
        r.map_err(|e| user_error(&self.info, e))?;
        c.finish()
    }

    fn timestamp(r: &Option<i64>, info: &OperatorInfo) -> Result<i64> {
        r.ok_or_else(|| {
            info.error(
                "interval joins need event timestamps: call assign_timestamps_and_watermarks first",
            )
        })
    }
}

impl<A, B, K, O, F> TwoInputOperator<A, B, O> for IntervalJoinOp<A, B, K, O, F>
where
    A: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    B: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    K: StateKey,
    F: ProcessJoinFunction<A, B, O>,
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let ts = Self::timestamp(&r.timestamp(), &self.info)?;
        if self.is_late(ts) {
            return Ok(());
        }
        let key = self.key_a.key(&r.value);
        let slot = self.slot(&key)?;
        let (lo, hi) = (ts.saturating_add(self.lower), ts.saturating_add(self.upper));
        let err = |e| crate::timers::state_error(&self.info, "update", e);
        let matches: Vec<(i64, B)> = match self.right.get(slot, &key, &()).map_err(err)? {
            Some(buf) => buf
                .range(lo..=hi)
                .flat_map(|(t, bs)| bs.iter().map(move |b| (*t, b.clone())))
                .collect(),
            None => Vec::new(),
        };
        self.left
            .get_or_insert_with(slot, &key, &(), BTreeMap::new)
            .map_err(err)?
            .entry(ts)
            .or_default()
            .push(r.value.clone());
        for (rt, b) in matches {
            let ctx = JoinContext {
                left_timestamp: ts,
                right_timestamp: rt,
            };
            self.emit(r.value.clone(), b, ctx, out)?;
        }
        let cleanup = if self.upper > 0 {
            ts.saturating_add(self.upper)
        } else {
            ts
        };
        self.timers.register_event(cleanup, key, Side::Left);
        Ok(())
    }

    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let ts = Self::timestamp(&r.timestamp(), &self.info)?;
        if self.is_late(ts) {
            return Ok(());
        }
        let key = self.key_b.key(&r.value);
        let slot = self.slot(&key)?;
        let (lo, hi) = (ts.saturating_sub(self.upper), ts.saturating_sub(self.lower));
        let err = |e| crate::timers::state_error(&self.info, "update", e);
        let matches: Vec<(i64, A)> = match self.left.get(slot, &key, &()).map_err(err)? {
            Some(buf) => buf
                .range(lo..=hi)
                .flat_map(|(t, as_)| as_.iter().map(move |a| (*t, a.clone())))
                .collect(),
            None => Vec::new(),
        };
        self.right
            .get_or_insert_with(slot, &key, &(), BTreeMap::new)
            .map_err(err)?
            .entry(ts)
            .or_default()
            .push(r.value.clone());
        for (lt, a) in matches {
            let ctx = JoinContext {
                left_timestamp: lt,
                right_timestamp: ts,
            };
            self.emit(a, r.value.clone(), ctx, out)?;
        }
        let cleanup = if self.lower <= 0 {
            ts.saturating_sub(self.lower)
        } else {
            ts
        };
        self.timers.register_event(cleanup, key, Side::Right);
        Ok(())
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        while let Some((time, key, side)) = self.timers.event.pop_due(wm.0) {
            let slot = self.slot(&key)?;
            let err = |e| crate::timers::state_error(&self.info, "update", e);
            match side {
                Side::Left => {
                    let ts = if self.upper <= 0 {
                        time
                    } else {
                        time - self.upper
                    };
                    if let Some(buf) = self.left.get_mut(slot, &key, &()).map_err(err)? {
                        buf.remove(&ts);
                        if buf.is_empty() {
                            self.left.remove(slot, &key, &()).map_err(err)?;
                        }
                    }
                }
                Side::Right => {
                    let ts = if self.lower <= 0 {
                        time + self.lower
                    } else {
                        time
                    };
                    if let Some(buf) = self.right.get_mut(slot, &key, &()).map_err(err)? {
                        buf.remove(&ts);
                        if buf.is_empty() {
                            self.right.remove(slot, &key, &()).map_err(err)?;
                        }
                    }
                }
            }
        }
        out.emit_watermark(wm)
    }

    fn state_entries(&self) -> u64 {
        (self.left.len() + self.right.len() + self.timers.len()) as u64
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        let err = |e| crate::timers::state_error(&self.info, "snapshot", e);
        self.left.snapshot(JOIN_LEFT, st).map_err(err)?;
        self.right.snapshot(JOIN_RIGHT, st).map_err(err)?;
        let shared = barrier.shared_state_dir();
        self.store
            .snapshot(barrier.is_savepoint(), shared.as_deref(), st)
            .map_err(err)?;
        self.timers.snapshot(self.max_parallelism, st).map_err(err)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        let err = |e| crate::timers::state_error(&self.info, "restore", e);
        self.store.restore(restored).map_err(err)?;
        self.left.restore(JOIN_LEFT, restored).map_err(err)?;
        self.right.restore(JOIN_RIGHT, restored).map_err(err)?;
        self.timers.restore(restored).map_err(err)
    }
}

/// Snapshot sections (and RocksDB tables) of the join's buffers.
const JOIN_LEFT: &str = "join/left";
const JOIN_RIGHT: &str = "join/right";

/// Two streams joined on a window (Flink's `JoinedStreams`): set the keys, then the window.
pub struct JoinedStreams<A, B> {
    a: DataStream<A>,
    b: DataStream<B>,
}

impl<A: Data> DataStream<A> {
    /// Joins or co-groups with `other` per key and window; finish with
    /// [`KeyedJoin::window_apply`] (inner join: every pair) or [`KeyedJoin::window_co_group`]
    /// (both sides' elements of each key and window together).
    pub fn join<B: Data>(&self, other: &DataStream<B>) -> JoinedStreams<A, B> {
        JoinedStreams {
            a: self.clone(),
            b: other.clone(),
        }
    }
}

/// Keys chosen; the window comes next.
pub struct KeyedJoin<A, B, K> {
    a: DataStream<A>,
    b: DataStream<B>,
    key_a: KeySelector<A, K>,
    key_b: KeySelector<B, K>,
}

impl<A: Data, B: Data> JoinedStreams<A, B> {
    /// The keys of both sides (Flink's `where(...).equalTo(...)`).
    pub fn keys<K, FA, FB>(self, key_a: FA, key_b: FB) -> KeyedJoin<A, B, K>
    where
        K: Data + Hash + Eq,
        FA: Fn(&A) -> K + Send + Sync + 'static,
        FB: Fn(&B) -> K + Send + Sync + 'static,
    {
        KeyedJoin {
            a: self.a,
            b: self.b,
            key_a: KeySelector::owned(key_a),
            key_b: KeySelector::owned(key_b),
        }
    }
}

impl<A: Data, B: Data, K: Data + Hash + Eq> KeyedJoin<A, B, K> {
    fn tagged<W: Window, WA: WindowAssigner<Either<A, B>, W>>(
        self,
        assigner: WA,
    ) -> crate::window::stream::WindowedStream<Either<A, B>, K, W, WA> {
        let left = self.a.map(Either::<A, B>::Left).name("Join: tag left");
        let right = self.b.map(Either::<A, B>::Right).name("Join: tag right");
        let (ka, kb) = (self.key_a, self.key_b);
        left.union(&[&right])
            .key_by(move |e: &Either<A, B>| match e {
                Either::Left(a) => ka.key(a),
                Either::Right(b) => kb.key(b),
            })
            .window(assigner)
    }

    /// Emits `f(a, b)` for every pair of the same key in the same window (inner join).
    pub fn window_apply<O, W, WA, F>(self, assigner: WA, f: F) -> DataStream<O>
    where
        O: Data,
        W: Window,
        WA: WindowAssigner<Either<A, B>, W>,
        F: Fn(A, B) -> O + Clone + Send + Sync + 'static,
    {
        self.window_co_group(
            assigner,
            move |_: &K, as_: Vec<A>, bs: Vec<B>, out: &mut Collector<'_, O>| {
                for a in &as_ {
                    for b in &bs {
                        out.collect(f(a.clone(), b.clone()));
                    }
                }
            },
        )
    }

    /// Calls `f(key, left elements, right elements)` for every key and window where either
    /// side has elements.
    pub fn window_co_group<O, W, WA, F>(self, assigner: WA, f: F) -> DataStream<O>
    where
        O: Data,
        W: Window,
        WA: WindowAssigner<Either<A, B>, W>,
        F: Fn(&K, Vec<A>, Vec<B>, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
    {
        self.tagged(assigner)
            .process(CoGroupFunction { f, _t: PhantomData })
    }
}

struct CoGroupFunction<F, A, B> {
    f: F,
    _t: PhantomData<fn() -> (A, B)>,
}

impl<F: Clone, A, B> Clone for CoGroupFunction<F, A, B> {
    fn clone(&self) -> Self {
        CoGroupFunction {
            f: self.f.clone(),
            _t: PhantomData,
        }
    }
}

impl<A, B, O, K, W, F> ProcessWindowFunction<Either<A, B>, O, K, W> for CoGroupFunction<F, A, B>
where
    A: 'static,
    B: 'static,
    K: 'static,
    W: 'static,
    F: Fn(&K, Vec<A>, Vec<B>, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
{
    fn process(
        &mut self,
        key: &K,
        _: &mut WindowContext<'_, K, W>,
        elements: Vec<Either<A, B>>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        let mut as_ = Vec::new();
        let mut bs = Vec::new();
        for e in elements {
            match e {
                Either::Left(a) => as_.push(a),
                Either::Right(b) => bs.push(b),
            }
        }
        (self.f)(key, as_, bs, out);
        Ok(())
    }
}
