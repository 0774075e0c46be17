//! Two keyed streams connected (Flink's `keyedA.connect(keyedB).process(KeyedCoProcessFunction)`):
//! both inputs are partitioned by the same kind of key, so one subtask sees every element of
//! a key from both sides and keeps per-key state and timers for it.
//!
//! ```no_run
//! use weir_api::prelude::*;
//! use weir_state::ValueState;
//!
//! /// Emits each order with the latest price of its symbol.
//! #[derive(Clone)]
//! struct Enrich {
//!     price: ValueState<f64>,
//! }
//!
//! impl KeyedCoProcessFunction<String, (String, u32), (String, f64), (String, u32, f64)> for Enrich {
//!     fn process_element1(&mut self, order: (String, u32), ctx: &mut KeyedContext<'_, String>,
//!                         out: &mut Collector<'_, (String, u32, f64)>) -> Result<(), UserError> {
//!         if let Some(p) = self.price.value(ctx)? {
//!             out.collect((order.0, order.1, p));
//!         }
//!         Ok(())
//!     }
//!     fn process_element2(&mut self, quote: (String, f64), ctx: &mut KeyedContext<'_, String>,
//!                         _: &mut Collector<'_, (String, u32, f64)>) -> Result<(), UserError> {
//!         self.price.update(ctx, quote.1)?;
//!         Ok(())
//!     }
//! }
//! # let env = StreamExecutionEnvironment::new();
//! # let orders = env.from_collection(vec![("a".to_string(), 1u32)]);
//! # let quotes = env.from_collection(vec![("a".to_string(), 2.5f64)]);
//! let enriched = orders
//!     .key_by(|o: &(String, u32)| o.0.clone())
//!     .connect(&quotes.key_by(|q: &(String, f64)| q.0.clone()))
//!     .process(Enrich { price: ValueState::new("price") });
//! ```

use crate::datastream::DataStream;
use crate::exchange::KeySelector;
use crate::functions::{user_error, Collector, RuntimeContext, UserError};
use crate::keyed::KeyedStream;
use crate::keyed_process::KeyedContext;
use crate::timers::{InternalTimers, TimeDomain};
use crate::types::Data;
use std::hash::Hash;
use weir_runtime::operator::{guarded, OperatorInfo, OutputControl, Outputs, TwoInputOperator};
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyedStateBackend, StateKey};

/// A function over two connected keyed streams with per-key state and timers (Flink's
/// `KeyedCoProcessFunction`). State handles used from either side see the same key's
/// state: a value written by `process_element1` is read by `process_element2` for that key.
pub trait KeyedCoProcessFunction<K, A, B, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// An element of the first stream; the context's key is its key.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;

    /// An element of the second stream; the context's key is its key.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;

    /// A timer fired; the context's key is the timer's key and
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

/// Two keyed streams with the same key type, connected for a [`KeyedCoProcessFunction`].
pub struct ConnectedKeyedStreams<A, B, K> {
    first: KeyedStream<A, K>,
    second: KeyedStream<B, K>,
}

impl<A: Data, K: Data + Hash + Eq> KeyedStream<A, K> {
    /// Connects this keyed stream with another keyed by the same kind of key (Flink's
    /// `connect` of two keyed streams). To connect a keyed stream with a plain one, connect
    /// [`KeyedStream::as_stream`].
    pub fn connect<B: Data>(&self, other: &KeyedStream<B, K>) -> ConnectedKeyedStreams<A, B, K> {
        ConnectedKeyedStreams {
            first: self.clone(),
            second: other.clone(),
        }
    }
}

impl<A: Data, B: Data, K: Data + Hash + Eq> ConnectedKeyedStreams<A, B, K> {
    /// Runs `f` over both streams, with keyed state and timers.
    pub fn process<O: Data, P: KeyedCoProcessFunction<K, A, B, O>>(&self, f: P) -> DataStream<O> {
        let (ka, kb) = (self.first.key_of.clone(), self.second.key_of.clone());
        crate::join::two_input_node(
            &self.first.stream,
            &self.second.stream,
            "KeyedCoProcess",
            move |info| {
                let mut f = f.clone();
                guarded(info, || {
                    f.open(&RuntimeContext::of(info))
                        .map_err(|e| user_error(info, e))
                })?;
                KeyedCoProcessOp::new(f, ka.clone(), kb.clone(), info)
            },
        )
    }
}

/// Runs a [`KeyedCoProcessFunction`]: sets the key of each element or timer, then calls
/// the function.
struct KeyedCoProcessOp<A, B, K, O, P> {
    f: P,
    key_a: KeySelector<A, K>,
    key_b: KeySelector<B, K>,
    backend: KeyedStateBackend<K>,
    timers: InternalTimers<K, ()>,
    watermark: i64,
    info: OperatorInfo,
    _o: std::marker::PhantomData<fn() -> O>,
}

impl<A, B, K: StateKey, O, P: KeyedCoProcessFunction<K, A, B, O>> KeyedCoProcessOp<A, B, K, O, P> {
    fn new(
        f: P,
        key_a: KeySelector<A, K>,
        key_b: KeySelector<B, K>,
        info: &OperatorInfo,
    ) -> Result<Self> {
        Ok(KeyedCoProcessOp {
            f,
            key_a,
            key_b,
            backend: KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism),
            timers: InternalTimers::new(info.processing_time.clone()),
            watermark: i64::MIN,
            info: info.clone(),
            _o: std::marker::PhantomData,
        })
    }

    /// Calls `call` with the key `key` set, the timestamp `ts` and, for a timer, its domain.
    fn call(
        &mut self,
        key: K,
        ts: Option<i64>,
        domain: Option<TimeDomain>,
        out: &mut Outputs<O>,
        call: impl FnOnce(
            &mut P,
            &mut KeyedContext<'_, K>,
            &mut Collector<'_, O>,
        ) -> Result<(), UserError>,
    ) -> Result<()> {
        self.backend
            .set_current_key(key)
            .map_err(|e| self.info.error(e.to_string()))?;
        let (main, sides) = out.split();
        let mut c = Collector::new(main, ts);
        let mut ctx = KeyedContext::new(
            &mut self.backend,
            &mut self.timers,
            sides,
            ts,
            self.watermark,
            domain,
        );
        let r = call(&mut self.f, &mut ctx, &mut c);
        let err = ctx.take_error();
        r.map_err(|e| user_error(&self.info, e))?;
        if let Some(e) = err {
            return Err(e);
        }
        c.finish()
    }
}

impl<A, B, K: StateKey, O, P: KeyedCoProcessFunction<K, A, B, O>> TwoInputOperator<A, B, O>
    for KeyedCoProcessOp<A, B, K, O, P>
{
    fn process_element1(&mut self, r: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()> {
        let key = self.key_a.key(&r.value);
        let ts = r.timestamp();
        self.call(key, ts, None, out, |f, ctx, c| {
            f.process_element1(r.value, ctx, c)
        })
    }

    fn process_element2(&mut self, r: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()> {
        let key = self.key_b.key(&r.value);
        let ts = r.timestamp();
        self.call(key, ts, None, out, |f, ctx, c| {
            f.process_element2(r.value, ctx, c)
        })
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        // Timers registered while firing are fired too if they are due.
        while let Some((time, key, ())) = self.timers.event.pop_due(wm.0) {
            self.call(
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
            self.call(
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
