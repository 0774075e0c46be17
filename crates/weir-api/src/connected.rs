//! ConnectedStreams: two streams of possibly different types feeding one two-input operator.

use crate::datastream::DataStream;
use crate::functions::{user_error, Collector, ProcessContext, RuntimeContext, UserError};
use crate::operators::{CoFlatMapOp, CoMapOp, CoProcessOp};
use crate::types::Data;
use weir_runtime::operator::{guarded, OperatorInfo, TwoInputOperator};
use weir_runtime::Result as RtResult;

/// A function over two connected streams (Flink's `CoProcessFunction`).
pub trait CoProcessFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// An element of the first stream.
    fn process_element1(
        &mut self,
        value: A,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
    /// An element of the second stream.
    fn process_element2(
        &mut self,
        value: B,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;
}

/// Two streams connected for a two-input operator (Flink's `ConnectedStreams`).
pub struct ConnectedStreams<A, B> {
    first: DataStream<A>,
    second: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    pub(crate) fn new(first: DataStream<A>, second: DataStream<B>) -> Self {
        ConnectedStreams { first, second }
    }

    fn two_input<O, Op, F>(&self, name: &str, make: F) -> DataStream<O>
    where
        O: Data,
        Op: TwoInputOperator<A, B, O> + 'static,
        F: Fn(&OperatorInfo) -> RtResult<Op> + Send + Sync + 'static,
    {
        crate::join::two_input_node(&self.first, &self.second, name, make)
    }

    /// Adds a two-input operator written against the runtime's operator interface (Flink's
    /// `ConnectedStreams#transform`): `build` makes one per subtask from its
    /// [`OperatorInfo`]. Each input keeps its partitioning (connect two streams keyed the
    /// same way for a keyed two-input operator, such as a SQL join).
    pub fn transform<O, Op, F>(&self, name: &str, build: F) -> DataStream<O>
    where
        O: Data,
        Op: TwoInputOperator<A, B, O> + 'static,
        F: Fn(&OperatorInfo) -> RtResult<Op> + Send + Sync + 'static,
    {
        self.two_input(name, build)
    }

    /// One map function per input, with a common output type.
    pub fn co_map<O, F1, F2>(&self, f1: F1, f2: F2) -> DataStream<O>
    where
        O: Data,
        F1: FnMut(A) -> O + Clone + Send + Sync + 'static,
        F2: FnMut(B) -> O + Clone + Send + Sync + 'static,
    {
        self.two_input("Co-Map", move |_| Ok(CoMapOp(f1.clone(), f2.clone())))
    }

    /// One flat-map function per input.
    pub fn co_flat_map<O, F1, F2>(&self, f1: F1, f2: F2) -> DataStream<O>
    where
        O: Data,
        F1: FnMut(A, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
        F2: FnMut(B, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
    {
        self.two_input("Co-Flat Map", move |_| {
            Ok(CoFlatMapOp(f1.clone(), f2.clone()))
        })
    }

    /// A [`CoProcessFunction`] with context and side outputs.
    pub fn co_process<O, P>(&self, f: P) -> DataStream<O>
    where
        O: Data,
        P: CoProcessFunction<A, B, O>,
    {
        self.two_input("Co-Process", move |info| {
            let mut f = f.clone();
            guarded(info, || {
                f.open(&RuntimeContext::of(info))
                    .map_err(|e| user_error(info, e))
            })?;
            Ok(CoProcessOp {
                f,
                info: info.clone(),
                watermark: i64::MIN,
            })
        })
    }
}
