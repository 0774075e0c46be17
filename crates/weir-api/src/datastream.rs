//! DataStream: a stream of elements of one type, and the transformations on it.

use crate::connected::ConnectedStreams;
use crate::env::StreamExecutionEnvironment;
use crate::exchange::{custom_writer, hash_writer, KeySelector, WriterFactory};
use crate::functions::{Collector, OutputTag, ProcessFunction, RuntimeContext};
use crate::graph::{ChainingStrategy, NodeCode, NodeKind};
use crate::keyed::KeyedStream;
use crate::operators::{FilterOp, FlatMapOp, MapOp, ProcessOp, SinkOp};
use crate::sink::{CollectSink, CollectedValues, DiscardSink, PrintSink, Sink, SinkContext};
use crate::types::{erase, unerase, Data, TypeOps};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use weir_core::{NodeId, PartitionerKind};
use weir_runtime::operator::{guarded, OneInputLink, OperatorInfo, Output, Outputs};
use weir_runtime::Result as RtResult;

/// One upstream of a stream: a node's main or side output, with the partitioner the next
/// operator will be connected with.
#[derive(Clone)]
pub(crate) struct StreamInput {
    pub node: NodeId,
    pub side_output: Option<String>,
    pub partitioner: Option<PartitionerKind>,
    pub writer: Option<WriterFactory>,
    pub ty: TypeOps,
}

/// A stream of `T` (Flink's `DataStream`). Transformations add nodes to the environment's
/// graph and return new streams; methods that configure an operator (`name`, `uid`,
/// `set_parallelism`, ...) apply to the operator that produced this stream.
pub struct DataStream<T> {
    pub(crate) env: StreamExecutionEnvironment,
    pub(crate) inputs: Vec<StreamInput>,
    pub(crate) op: Option<NodeId>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            inputs: self.inputs.clone(),
            op: self.op,
            _t: PhantomData,
        }
    }
}

/// The configurable end of a pipeline: a sink operator.
pub struct DataStreamSink {
    inner: DataStream<()>,
}

impl<T: Data> DataStream<T> {
    pub(crate) fn from_node(env: StreamExecutionEnvironment, node: NodeId) -> Self {
        DataStream {
            env,
            inputs: vec![StreamInput {
                node,
                side_output: None,
                partitioner: None,
                writer: None,
                ty: TypeOps::of::<T>(),
            }],
            op: Some(node),
            _t: PhantomData,
        }
    }

    pub(crate) fn repartitioned(
        &self,
        kind: PartitionerKind,
        writer: Option<WriterFactory>,
    ) -> Self {
        DataStream {
            env: self.env.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|i| StreamInput {
                    partitioner: Some(kind),
                    writer: writer.clone(),
                    ..i.clone()
                })
                .collect(),
            op: None,
            _t: PhantomData,
        }
    }

    /// The environment this stream belongs to.
    pub fn env(&self) -> &StreamExecutionEnvironment {
        &self.env
    }

    /// Adds a one-input operator built per subtask by `build`.
    pub(crate) fn one_input<O, B>(&self, name: &str, kind: NodeKind, build: B) -> DataStream<O>
    where
        O: Data,
        B: Fn(&OperatorInfo, Outputs<O>) -> RtResult<Box<dyn Output<T>>> + Send + Sync + 'static,
    {
        let code = NodeCode::OneInput(Arc::new(move |info, main, sides| {
            let outs = Outputs::new(unerase::<O>(main)?, sides);
            Ok(erase::<T>(build(info, outs)?))
        }));
        let inputs: Vec<(u8, StreamInput)> = self.inputs.iter().map(|i| (0, i.clone())).collect();
        let id = self.env.add_node(
            name.to_string(),
            kind,
            ChainingStrategy::Always,
            code,
            TypeOps::of::<O>(),
            Some(TypeOps::of::<T>()),
            &inputs,
        );
        DataStream::from_node(self.env.clone(), id)
    }

    /// Adds an operator written against the runtime's operator interface (Flink's
    /// `DataStream#transform`): `build` makes one per subtask from its [`OperatorInfo`]
    /// (name, subtask, max parallelism, keyed state store, processing-time service). This is
    /// the extension point for operators the DataStream API does not offer, such as the SQL
    /// layer's operators over Arrow batches; the operator owns its state and snapshots it in
    /// [`weir_runtime::operator::OneInputOperator::snapshot_state`].
    pub fn transform<O, Op, B>(&self, name: &str, build: B) -> DataStream<O>
    where
        O: Data,
        Op: weir_runtime::operator::OneInputOperator<T, O> + 'static,
        B: Fn(&OperatorInfo) -> RtResult<Op> + Send + Sync + 'static,
    {
        self.one_input(name, NodeKind::Operator, move |info, out| {
            let op = build(info)?;
            Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
        })
    }

    /// Applies `f` to every element.
    pub fn map<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T) -> O + Clone + Send + Sync + 'static,
    {
        self.one_input("Map", NodeKind::Operator, move |info, out| {
            Ok(Box::new(OneInputLink::new(
                MapOp::new(f.clone()),
                out,
                info.clone(),
            )?))
        })
    }

    /// Emits any number of elements per element through the collector.
    pub fn flat_map<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
    {
        self.one_input("Flat Map", NodeKind::Operator, move |info, out| {
            Ok(Box::new(OneInputLink::new(
                FlatMapOp::new(f.clone()),
                out,
                info.clone(),
            )?))
        })
    }

    /// Keeps the elements for which `f` is true.
    pub fn filter<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        self.one_input("Filter", NodeKind::Operator, move |info, out| {
            Ok(Box::new(OneInputLink::new(
                FilterOp(f.clone()),
                out,
                info.clone(),
            )?))
        })
    }

    /// Runs a [`ProcessFunction`] on every element.
    pub fn process<O, P>(&self, f: P) -> DataStream<O>
    where
        O: Data,
        P: ProcessFunction<T, O>,
    {
        self.one_input("Process", NodeKind::Operator, move |info, out| {
            let mut f = f.clone();
            guarded(info, || {
                f.open(&RuntimeContext::of(info))
                    .map_err(|e| crate::functions::user_error(info, e))
            })?;
            let op = ProcessOp {
                f,
                info: info.clone(),
                watermark: i64::MIN,
            };
            Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
        })
    }

    /// Assigns event timestamps and emits watermarks as `strategy` says (Flink's
    /// `assignTimestampsAndWatermarks`). Upstream watermarks are replaced, except the final one
    /// at the end of input.
    pub fn assign_timestamps_and_watermarks(
        &self,
        strategy: crate::watermark::WatermarkStrategy<T>,
    ) -> DataStream<T> {
        self.one_input(
            "Timestamps/Watermarks",
            NodeKind::Operator,
            move |info, out| {
                let op = crate::watermark::TimestampsAndWatermarksOp::new(
                    &strategy,
                    info.auto_watermark_interval_ms,
                    info,
                );
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            },
        )
    }

    /// Partitions the stream by key: equal keys go to the same subtask (by key group).
    pub fn key_by<K, F>(&self, key: F) -> KeyedStream<T, K>
    where
        K: Data + Hash + Eq,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key_of: KeySelector<T, K> = KeySelector::owned(key);
        KeyedStream {
            stream: self.repartitioned(
                PartitionerKind::Hash,
                Some(hash_writer::<T, K>(key_of.clone())),
            ),
            key_of,
        }
    }

    /// [`Self::key_by`] with a selector that borrows the key from the record (a field of
    /// it): the key is cloned only where it must be kept (a new key in keyed state), not to
    /// route each record or to look up a key that exists already.
    ///
    /// ```
    /// use weir_api::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// let counts = env
    ///     .from_collection(vec![("a".to_string(), 1i64), ("b".to_string(), 1)])
    ///     .key_by_ref(|t: &(String, i64)| &t.0)
    ///     .reduce(|a, b| (a.0, a.1 + b.1));
    /// ```
    pub fn key_by_ref<K, F>(&self, key: F) -> KeyedStream<T, K>
    where
        K: Data + Hash + Eq,
        F: for<'a> Fn(&'a T) -> &'a K + Send + Sync + 'static,
    {
        let key_of: KeySelector<T, K> = KeySelector::by_ref(key);
        KeyedStream {
            stream: self.repartitioned(
                PartitionerKind::Hash,
                Some(hash_writer::<T, K>(key_of.clone())),
            ),
            key_of,
        }
    }

    /// Merges streams of the same type.
    pub fn union(&self, others: &[&DataStream<T>]) -> DataStream<T> {
        let mut inputs = self.inputs.clone();
        for o in others {
            inputs.extend(o.inputs.iter().cloned());
        }
        DataStream {
            env: self.env.clone(),
            inputs,
            op: None,
            _t: PhantomData,
        }
    }

    /// Connects with a stream of another type, for co-functions.
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams::new(self.clone(), other.clone())
    }

    /// The side output `tag` of the operator that produced this stream.
    ///
    /// # Panics
    /// If this stream is not the output of one operator (e.g. a union).
    pub fn get_side_output<X: Data>(&self, tag: &OutputTag<X>) -> DataStream<X> {
        let node = self.operator("get_side_output");
        DataStream {
            env: self.env.clone(),
            inputs: vec![StreamInput {
                node,
                side_output: Some(tag.id().to_string()),
                partitioner: None,
                writer: None,
                ty: TypeOps::of::<X>(),
            }],
            op: None,
            _t: PhantomData,
        }
    }

    /// Uniformly random distribution.
    pub fn shuffle(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Shuffle, None)
    }

    /// Round-robin over all downstream subtasks.
    pub fn rebalance(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Rebalance, None)
    }

    /// Round-robin over the downstream subtasks wired locally to each upstream subtask.
    pub fn rescale(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Rescale, None)
    }

    /// Every element to every downstream subtask.
    pub fn broadcast(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Broadcast, None)
    }

    /// Subtask i to subtask i; requires equal parallelism.
    pub fn forward(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Forward, None)
    }

    /// Every element to the first downstream subtask.
    pub fn global(&self) -> DataStream<T> {
        self.repartitioned(PartitionerKind::Global, None)
    }

    /// Distributes by `partitioner(key, number_of_subtasks)`.
    pub fn partition_custom<K, P, F>(&self, partitioner: P, key: F) -> DataStream<T>
    where
        K: 'static,
        P: Fn(&K, usize) -> usize + Send + Sync + 'static,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let w = custom_writer::<T, K>(KeySelector::owned(key), Arc::new(partitioner));
        self.repartitioned(PartitionerKind::Custom, Some(w))
    }

    /// Writes every element to `sink`.
    pub fn sink_to<S: Sink<T>>(&self, sink: S, name: &str) -> DataStreamSink {
        let sink = Arc::new(sink);
        let s = self.one_input::<(), _>(
            &format!("Sink: {name}"),
            NodeKind::Sink,
            move |info, out| {
                let mut ctx = SinkContext::new(info.subtask, info.parallelism);
                ctx.processing_time = info.processing_time.clone();
                if let Some(r) = &info.restored {
                    ctx = ctx.restored(
                        r.checkpoint_id,
                        r.list(crate::sink::SINK_WRITER_STATE).to_vec(),
                    );
                }
                let writer = guarded(info, || {
                    sink.create_writer(&ctx)
                        .map_err(|e| crate::functions::user_error(info, e))
                })?;
                let op = SinkOp {
                    writer,
                    info: info.clone(),
                };
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            },
        );
        DataStreamSink { inner: s }
    }

    /// Prints every element to standard output (strings as they are, other values in their
    /// `Debug` form), prefixed with `N> ` (subtask N) when the sink runs in parallel.
    pub fn print(&self) -> DataStreamSink
    where
        T: std::fmt::Debug,
    {
        self.sink_to(PrintSink::new(None, false), "Print to Std. Out")
    }

    /// Like [`print`](Self::print), with `identifier` in front of every line.
    pub fn print_with_identifier(&self, identifier: &str) -> DataStreamSink
    where
        T: std::fmt::Debug,
    {
        self.sink_to(
            PrintSink::new(Some(identifier.to_string()), false),
            "Print to Std. Out",
        )
    }

    /// Prints every element to standard error.
    pub fn print_to_err(&self) -> DataStreamSink
    where
        T: std::fmt::Debug,
    {
        self.sink_to(PrintSink::new(None, true), "Print to Std. Err")
    }

    /// Drops every element.
    pub fn discard(&self) -> DataStreamSink {
        self.sink_to(DiscardSink, "Discarding Sink")
    }

    /// Gathers every element for the caller, who reads them after (or while) the job runs.
    ///
    /// The values are gathered in this process, so a job that collects runs only on the
    /// embedded mini-cluster; submitted to a cluster of processes it is refused.
    pub fn collect_values(&self) -> CollectedValues<T> {
        self.env().state.borrow_mut().collects_in_process = true;
        let values = CollectedValues::new();
        self.sink_to(
            CollectSink {
                target: values.clone(),
            },
            "Collect Sink",
        );
        values
    }
}

impl<T> DataStream<T> {
    fn operator(&self, what: &str) -> NodeId {
        match self.op {
            Some(n) => n,
            None => panic!(
                "{what}: this stream is not the output of a single operator (it is a union or a repartitioned stream); call it on the operator's stream"
            ),
        }
    }

    /// Chains a [`WatermarkReporter`](crate::alignment::WatermarkReporter) for source
    /// `source_no` of `group` after this stream, at this stream's parallelism.
    pub(crate) fn report_watermarks_to(
        &self,
        group: Arc<crate::alignment::AlignmentGroup>,
        source_no: u32,
    ) -> DataStream<T>
    where
        T: Data,
    {
        let parallelism = self
            .op
            .and_then(|n| self.env.state.borrow().nodes[n.0 as usize].parallelism);
        let s = self.one_input(
            &format!("Watermark Alignment ({})", group.name()),
            NodeKind::Operator,
            move |info, out| {
                let op = crate::alignment::WatermarkReporter {
                    group: group.clone(),
                    member: (source_no, info.subtask),
                };
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            },
        );
        match parallelism {
            Some(p) => s.set_parallelism(p),
            None => s,
        }
    }

    fn update(self, what: &str, f: impl FnOnce(&mut crate::graph::StreamNode)) -> Self {
        let node = self.operator(what);
        f(&mut self.env.state.borrow_mut().nodes[node.0 as usize]);
        self
    }

    /// Names the operator.
    pub fn name(self, name: &str) -> Self {
        self.update("name", |n| n.name = name.to_string())
    }

    /// Gives the operator a stable id (its state is matched by it across versions).
    pub fn uid(self, uid: &str) -> Self {
        self.update("uid", |n| n.uid = Some(uid.to_string()))
    }

    /// Sets the operator's parallelism (checked when the job is built).
    pub fn set_parallelism(self, parallelism: i64) -> Self {
        self.update("set_parallelism", |n| n.parallelism = Some(parallelism))
    }

    /// Sets the operator's max parallelism (checked when the job is built).
    pub fn set_max_parallelism(self, max_parallelism: i64) -> Self {
        self.update("set_max_parallelism", |n| {
            n.max_parallelism = Some(max_parallelism)
        })
    }

    /// Puts the operator in slot sharing group `group`.
    pub fn slot_sharing_group(self, group: &str) -> Self {
        self.update("slot_sharing_group", |n| {
            n.slot_sharing_group = Some(group.to_string())
        })
    }

    /// Never chains this operator to its neighbours.
    pub fn disable_chaining(self) -> Self {
        self.update("disable_chaining", |n| n.chaining = ChainingStrategy::Never)
    }

    /// Starts a new chain at this operator.
    pub fn start_new_chain(self) -> Self {
        self.update("start_new_chain", |n| n.chaining = ChainingStrategy::Head)
    }
}

impl DataStreamSink {
    /// Names the sink.
    pub fn name(self, name: &str) -> Self {
        DataStreamSink {
            inner: self.inner.name(name),
        }
    }
    /// Gives the sink a stable id.
    pub fn uid(self, uid: &str) -> Self {
        DataStreamSink {
            inner: self.inner.uid(uid),
        }
    }
    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: i64) -> Self {
        DataStreamSink {
            inner: self.inner.set_parallelism(parallelism),
        }
    }
    /// Puts the sink in slot sharing group `group`.
    pub fn slot_sharing_group(self, group: &str) -> Self {
        DataStreamSink {
            inner: self.inner.slot_sharing_group(group),
        }
    }
    /// Never chains the sink.
    pub fn disable_chaining(self) -> Self {
        DataStreamSink {
            inner: self.inner.disable_chaining(),
        }
    }
}
