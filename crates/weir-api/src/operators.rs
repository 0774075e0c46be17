//! The operators behind the DataStream transformations: small structs that implement the
//! runtime's operator traits around user functions.

use crate::connected::CoProcessFunction;
use crate::exchange::KeySelector;
use crate::functions::{user_error, Collector, ProcessContext, ProcessFunction};
use crate::sink::SinkWriter;
use std::hash::Hash;
use weir_runtime::operator::{
    OneInputOperator, OperatorInfo, OutputControl, Outputs, TwoInputOperator,
};
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyGroupedMap, KeyedStore, StateTable};

/// `map`: one record in, one out.
pub(crate) struct MapOp<F, O> {
    f: F,
    /// The mapped records of a batch, handed on together.
    batch: Vec<StreamRecord<O>>,
}

impl<F, O> MapOp<F, O> {
    pub(crate) fn new(f: F) -> Self {
        MapOp {
            f,
            batch: Vec::new(),
        }
    }
}

impl<I, O: Send, F: FnMut(I) -> O + Send> OneInputOperator<I, O> for MapOp<F, O> {
    #[inline]
    fn process_element(&mut self, r: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()> {
        let ts = r.timestamp();
        out.collect(StreamRecord::from_parts((self.f)(r.value), ts))
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<I>>,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        let f = &mut self.f;
        self.batch.extend(batch.drain(..).map(|r| r.map(&mut *f)));
        out.collect_batch(&mut self.batch)
    }
}

/// `filter`: keeps the records the predicate accepts.
pub(crate) struct FilterOp<F>(pub F);

impl<T, F: FnMut(&T) -> bool + Send> OneInputOperator<T, T> for FilterOp<F> {
    #[inline]
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<T>) -> Result<()> {
        if (self.0)(&r.value) {
            out.collect(r)
        } else {
            Ok(())
        }
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<T>>,
        out: &mut Outputs<T>,
    ) -> Result<()> {
        let f = &mut self.0;
        batch.retain(|r| f(&r.value));
        out.collect_batch(batch)
    }
}

/// `flat_map`: any number of records out per record in.
pub(crate) struct FlatMapOp<F, O> {
    f: F,
    /// What the function emitted for a batch, handed on when full and at its end.
    batch: Vec<StreamRecord<O>>,
}

impl<F, O> FlatMapOp<F, O> {
    pub(crate) fn new(f: F) -> Self {
        FlatMapOp {
            f,
            batch: Vec::new(),
        }
    }
}

impl<I, O: Send, F: FnMut(I, &mut Collector<'_, O>) + Send> OneInputOperator<I, O>
    for FlatMapOp<F, O>
{
    #[inline]
    fn process_element(&mut self, r: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        (self.f)(r.value, &mut c);
        c.finish()
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<I>>,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::batched(main, &mut self.batch);
        for r in batch.drain(..) {
            c.set_timestamp(r.timestamp());
            (self.f)(r.value, &mut c);
            if c.failed() {
                break;
            }
        }
        c.finish()
    }
}

/// `process`: a [`ProcessFunction`] with context and side outputs.
pub(crate) struct ProcessOp<P> {
    pub f: P,
    pub info: OperatorInfo,
    pub watermark: i64,
}

impl<I, O, P: ProcessFunction<I, O>> OneInputOperator<I, O> for ProcessOp<P> {
    fn process_element(&mut self, r: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()> {
        let (main, sides) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        let mut ctx = ProcessContext {
            sides,
            timestamp: r.timestamp(),
            watermark: self.watermark,
            error: None,
        };
        let res = self.f.process_element(r.value, &mut ctx, &mut c);
        res.map_err(|e| user_error(&self.info, e))?;
        if let Some(e) = ctx.error {
            return Err(e);
        }
        c.finish()
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        out.emit_watermark(wm)
    }

    fn finish(&mut self, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, None);
        self.f
            .finish(&mut c)
            .map_err(|e| user_error(&self.info, e))?;
        c.finish()
    }
}

/// A rolling reduce per key: emits the new aggregate for every record (Flink's
/// `StreamGroupedReduceOperator`). `sum`, `min`, `max`, `min_by` and `max_by` are reduces.
///
/// On the heap the stored value is taken out, reduced and put back, so a record costs one
/// clone (the emitted copy) and one hash-table probe; under RocksDB the values are a table
/// of the operator's instance.
pub(crate) struct KeyedReduceOp<T, K, F> {
    key_of: KeySelector<T, K>,
    f: F,
    state: ReduceValues<K, T>,
    info: OperatorInfo,
    /// The results of a batch of input records, handed on together.
    batch: Vec<StreamRecord<T>>,
}

/// Where a keyed reduce keeps its values.
enum ReduceValues<K, T> {
    Heap(KeyGroupedMap<K, Option<T>>),
    Rocks {
        store: KeyedStore,
        table: StateTable<K, (), Option<T>>,
    },
}

impl<T, K, F> KeyedReduceOp<T, K, F>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    K: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    pub(crate) fn new(key_of: KeySelector<T, K>, f: F, info: &OperatorInfo) -> Result<Self> {
        let store = info.keyed_store()?;
        let state = match &store {
            KeyedStore::Heap(range) => {
                ReduceValues::Heap(KeyGroupedMap::new(*range, info.max_parallelism))
            }
            KeyedStore::Rocks(_) => ReduceValues::Rocks {
                table: store
                    .table(REDUCE_STATE)
                    .map_err(|e| crate::timers::state_error(info, "open", e))?,
                store,
            },
        };
        Ok(KeyedReduceOp {
            key_of,
            f,
            state,
            info: info.clone(),
            batch: Vec::new(),
        })
    }
}

impl<T, K, F> KeyedReduceOp<T, K, F>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    K: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: FnMut(T, T) -> T,
{
    /// Reduces `r` into its key's value and returns the new value as the output record.
    #[inline]
    fn reduce(&mut self, r: StreamRecord<T>) -> Result<StreamRecord<T>> {
        let KeyedReduceOp {
            key_of,
            f,
            state,
            info,
            ..
        } = self;
        let ts = r.timestamp();
        let slot = key_of.with_key(&r.value, |k| state.value_of(k, info))?;
        let value = match slot.take() {
            Some(acc) => f(acc, r.value),
            None => r.value,
        };
        Ok(StreamRecord::from_parts(slot.insert(value).clone(), ts))
    }
}

impl<K, T> ReduceValues<K, T>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    K: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// The stored value of `key`, for update (the key is cloned only for a new entry).
    #[inline]
    fn value_of(&mut self, key: &K, info: &OperatorInfo) -> Result<&mut Option<T>> {
        let err = |e: weir_state::StateError| info.error(e.to_string());
        match self {
            ReduceValues::Heap(m) => m.get_or_insert_with_ref(key, || None).map_err(err),
            ReduceValues::Rocks { store, table } => {
                let kg = weir_core::key_group::key_group_for_key(key, info.max_parallelism);
                let slot = weir_state::table::slot_of(store.key_group_range(), kg).map_err(err)?;
                table
                    .get_or_insert_with(slot, key, &(), || None)
                    .map_err(err)
            }
        }
    }
}

impl<T, K, F> OneInputOperator<T, T> for KeyedReduceOp<T, K, F>
where
    T: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    K: Hash + Eq + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: FnMut(T, T) -> T + Send,
{
    #[inline]
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<T>) -> Result<()> {
        let result = self.reduce(r)?;
        out.collect(result)
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<T>>,
        out: &mut Outputs<T>,
    ) -> Result<()> {
        let mut results = std::mem::take(&mut self.batch);
        // Room for every result up front, so that each push needs no grow path
        // (`weir_runtime::push`).
        results.reserve(batch.len());
        for r in batch.drain(..) {
            let result = self.reduce(r)?;
            // SAFETY: `results` had room for `batch.len()` more records and gets at most one
            // per input record.
            unsafe { weir_runtime::push::push_with_spare(&mut results, result) };
        }
        let sent = out.collect_batch(&mut results);
        self.batch = results;
        sent
    }

    fn state_entries(&self) -> u64 {
        match &self.state {
            ReduceValues::Heap(m) => m.len() as u64,
            ReduceValues::Rocks { table, .. } => table.len() as u64,
        }
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        let r = match &mut self.state {
            ReduceValues::Heap(m) => m.snapshot(REDUCE_STATE, st),
            ReduceValues::Rocks { store, table } => {
                let shared = barrier.shared_state_dir();
                table
                    .snapshot(REDUCE_STATE, st)
                    .and_then(|()| store.snapshot(barrier.is_savepoint(), shared.as_deref(), st))
            }
        };
        r.map_err(|e| {
            weir_runtime::RuntimeError::state(format!("operator '{}'", self.info.name), e)
        })
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        let r = match &mut self.state {
            // The heap store refuses RocksDB files with a clear message.
            ReduceValues::Heap(m) => KeyedStore::Heap(m.key_group_range())
                .restore(restored)
                .and_then(|()| m.restore(REDUCE_STATE, restored)),
            ReduceValues::Rocks { store, table } => store
                .restore(restored)
                .and_then(|()| table.restore(REDUCE_STATE, restored)),
        };
        r.map_err(|e| {
            weir_runtime::RuntimeError::state(format!("operator '{}'", self.info.name), e)
        })
    }
}

/// The snapshot section of a keyed reduce's values.
const REDUCE_STATE: &str = "reduce";

/// A sink: hands each record to a [`SinkWriter`].
pub(crate) struct SinkOp<T> {
    pub writer: Box<dyn SinkWriter<T>>,
    pub info: OperatorInfo,
}

impl<T: Send> OneInputOperator<T, ()> for SinkOp<T> {
    #[inline]
    fn process_element(&mut self, r: StreamRecord<T>, _: &mut Outputs<()>) -> Result<()> {
        let ts = r.timestamp();
        self.writer
            .write(r.value, ts)
            .map_err(|e| user_error(&self.info, e))
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<T>>,
        _: &mut Outputs<()>,
    ) -> Result<()> {
        for r in batch.drain(..) {
            let ts = r.timestamp();
            self.writer
                .write(r.value, ts)
                .map_err(|e| user_error(&self.info, e))?;
        }
        Ok(())
    }

    fn finish(&mut self, _: &mut Outputs<()>) -> Result<()> {
        self.writer.finish().map_err(|e| user_error(&self.info, e))
    }

    fn on_processing_time(&mut self, now: i64, _: &mut Outputs<()>) -> Result<()> {
        self.writer
            .on_processing_time(now)
            .map_err(|e| user_error(&self.info, e))
    }

    fn snapshot_state(
        &mut self,
        b: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        let state = self
            .writer
            .snapshot_state(b.id)
            .map_err(|e| user_error(&self.info, e))?;
        if !state.is_empty() {
            st.add_list(crate::sink::SINK_WRITER_STATE, state);
        }
        Ok(())
    }

    fn notify_checkpoint(
        &mut self,
        notice: weir_runtime::checkpoint::CheckpointNotice,
        _: &mut Outputs<()>,
    ) -> Result<()> {
        self.writer
            .notify_checkpoint(notice)
            .map_err(|e| user_error(&self.info, e))
    }
}

/// `co_map`: one function per input.
pub(crate) struct CoMapOp<F1, F2>(pub F1, pub F2);

impl<A, B, O, F1, F2> TwoInputOperator<A, B, O> for CoMapOp<F1, F2>
where
    F1: FnMut(A) -> O + Send,
    F2: FnMut(B) -> O + Send,
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let ts = r.timestamp();
        out.collect(StreamRecord::from_parts((self.0)(r.value), ts))
    }
    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let ts = r.timestamp();
        out.collect(StreamRecord::from_parts((self.1)(r.value), ts))
    }
}

/// `co_flat_map`: one flat-map function per input.
pub(crate) struct CoFlatMapOp<F1, F2>(pub F1, pub F2);

impl<A, B, O, F1, F2> TwoInputOperator<A, B, O> for CoFlatMapOp<F1, F2>
where
    F1: FnMut(A, &mut Collector<'_, O>) + Send,
    F2: FnMut(B, &mut Collector<'_, O>) + Send,
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        (self.0)(r.value, &mut c);
        c.finish()
    }
    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let (main, _) = out.split();
        let mut c = Collector::new(main, r.timestamp());
        (self.1)(r.value, &mut c);
        c.finish()
    }
}

/// `co_process`: a [`CoProcessFunction`] with context and side outputs.
pub(crate) struct CoProcessOp<P> {
    pub f: P,
    pub info: OperatorInfo,
    pub watermark: i64,
}

impl<P> CoProcessOp<P> {
    fn call<O>(
        &mut self,
        ts: Option<i64>,
        out: &mut Outputs<O>,
        body: impl FnOnce(
            &mut P,
            &mut ProcessContext<'_>,
            &mut Collector<'_, O>,
        ) -> Result<(), crate::UserError>,
    ) -> Result<()> {
        let (main, sides) = out.split();
        let mut c = Collector::new(main, ts);
        let mut ctx = ProcessContext {
            sides,
            timestamp: ts,
            watermark: self.watermark,
            error: None,
        };
        body(&mut self.f, &mut ctx, &mut c).map_err(|e| user_error(&self.info, e))?;
        if let Some(e) = ctx.error {
            return Err(e);
        }
        c.finish()
    }
}

impl<A, B, O, P: CoProcessFunction<A, B, O>> TwoInputOperator<A, B, O> for CoProcessOp<P> {
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let ts = r.timestamp();
        self.call(ts, out, |f, ctx, c| f.process_element1(r.value, ctx, c))
    }
    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let ts = r.timestamp();
        self.call(ts, out, |f, ctx, c| f.process_element2(r.value, ctx, c))
    }
    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        out.emit_watermark(wm)
    }
}
