//! Chain heads: what a task's mailbox loop drives. A source head polls a reader; an input
//! head decodes buffers from the input channels, merges watermarks with a
//! [`WatermarkValve`], aligns checkpoint barriers with a [`BarrierAligner`], and pushes into
//! the chain.

use crate::checkpoint::{BarrierAction, BarrierAligner, CheckpointBarrier, CheckpointNotice, Held};
use crate::element::{StreamRecord, Watermark};
use crate::error::{Result, RuntimeError};
use crate::inbox::{ChannelEvent, ChannelMessage};
use crate::metrics::{MetricsVisitor, OperatorMetrics};
use crate::operator::{
    guarded, OperatorInfo, Output, OutputControl, Outputs, TwoInputLink, TwoInputOperator,
};
use crate::reader::{ChannelDecoder, Frame};
use crate::serializer::TypeSerializer;
use crate::source::{PollStatus, Redistribution, SourceOutput, SourceReader, SOURCE_SPLITS_STATE};
use crate::typed::ErasedRecords;
use crate::valve::{ValveOutput, WatermarkValve};
use weir_core::BarrierAlignment;
use weir_state::{OperatorSubtaskState, TaskStateSnapshot};

/// The head of a source task.
pub trait SourceChainHead: Send {
    /// Lets the reader emit what is ready.
    fn poll(&mut self) -> Result<PollStatus>;
    /// The reader is exhausted: final watermark, then finish the chain.
    fn end_of_input(&mut self) -> Result<()>;
    /// The source stops after a savepoint: finish the chain without the final watermark,
    /// so that event-time state stays as the savepoint holds it.
    fn stop(&mut self) -> Result<()>;
    /// Sends partly filled buffers.
    fn flush(&mut self) -> Result<()>;
    /// Reports per-operator counters.
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>);
    /// Closes the reader.
    fn close(&mut self) -> Result<()>;
    /// Processing time reached `now`.
    fn on_processing_time(&mut self, now: i64) -> Result<()>;
    /// Snapshots the reader's position and the chain, and sends the barrier downstream.
    fn checkpoint(
        &mut self,
        barrier: &CheckpointBarrier,
        snapshot: &mut TaskStateSnapshot,
    ) -> Result<()>;
    /// A checkpoint completed or was aborted.
    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<()>;
}

/// The head of a task with network inputs.
pub trait InputChainHead: Send {
    /// Number of input channels.
    fn num_channels(&self) -> usize;
    /// A message arrived on `channel`. Returns what the task must do about a checkpoint
    /// now (snapshot, or store recorded in-flight data); after it, the task calls
    /// [`Self::resume`].
    fn on_message(
        &mut self,
        channel: usize,
        message: ChannelMessage,
    ) -> Result<Option<BarrierAction>>;
    /// An unaligned checkpoint's barrier arrived on `channel` ahead of `overtaken`
    /// messages of the channel not yet handed to [`Self::on_message`]. Returns what the
    /// task must do now, as `on_message` does.
    fn on_priority_barrier(
        &mut self,
        channel: usize,
        barrier: CheckpointBarrier,
        overtaken: u32,
    ) -> Option<BarrierAction>;
    /// Processes what alignment held back, until the next checkpoint action (returned) or
    /// nothing is left.
    fn resume(&mut self) -> Result<Option<BarrierAction>>;
    /// Switches a checkpoint whose alignment timed out to unaligned.
    fn check_alignment_timeout(&mut self) -> Option<BarrierAction>;
    /// When the pending alignment times out.
    fn alignment_timeout_at(&self) -> Option<std::time::Instant>;
    /// Restored in-flight data, per channel, processed before any live input.
    fn preload_in_flight(&mut self, data: Vec<(usize, Vec<u8>)>);
    /// True if the JobMaster aborted checkpoint `id`.
    fn is_aborted(&self, id: u64) -> bool;
    /// The task was restored from checkpoint `id`; older barriers are stale.
    fn restored_from(&mut self, id: u64);
    /// True once every channel ended and nothing is held back.
    fn input_ended(&self) -> bool;
    /// Every channel ended: finish the chain.
    fn end_of_input(&mut self) -> Result<()>;
    /// Snapshots the chain and sends the barrier downstream.
    fn checkpoint(
        &mut self,
        barrier: &CheckpointBarrier,
        snapshot: &mut TaskStateSnapshot,
    ) -> Result<()>;
    /// A checkpoint completed or was aborted (an aborted one also ends its alignment).
    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<()>;
    /// Milliseconds the last barrier alignment took.
    fn last_alignment_ms(&self) -> u64;
    /// Sends partly filled buffers.
    fn flush(&mut self) -> Result<()>;
    /// Reports per-operator counters.
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>);
    /// Processing time reached `now`.
    fn on_processing_time(&mut self, now: i64) -> Result<()>;
}

/// A [`SourceReader`] in front of its chain.
pub struct SourceHead<T> {
    reader: Box<dyn SourceReader<T>>,
    out: Outputs<T>,
    /// The records of a poll on their way down the chain (empty between polls).
    batch: Vec<StreamRecord<T>>,
    info: OperatorInfo,
}

impl<T: 'static> SourceHead<T> {
    /// A head for `reader` emitting into `out`.
    pub fn new(reader: Box<dyn SourceReader<T>>, out: Outputs<T>, info: OperatorInfo) -> Self {
        SourceHead {
            reader,
            out,
            batch: Vec::with_capacity(crate::operator::batch_capacity::<T>()),
            info,
        }
    }
}

impl<T: Send + 'static> SourceChainHead for SourceHead<T> {
    #[inline]
    fn poll(&mut self) -> Result<PollStatus> {
        let (reader, out, batch) = (&mut self.reader, &mut self.out, &mut self.batch);
        guarded(&self.info, || {
            let mut output = SourceOutput::new(out, batch);
            let status = reader.poll_next(&mut output).and_then(|s| {
                output.flush()?;
                Ok(s)
            });
            if status.is_err() {
                batch.clear();
            }
            status
        })
    }

    fn end_of_input(&mut self) -> Result<()> {
        self.out.emit_watermark(Watermark::MAX)?;
        self.out.finish()
    }

    fn stop(&mut self) -> Result<()> {
        self.out.stop()
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()
    }

    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        v(&OperatorMetrics {
            node: self.info.node,
            name: self.info.name.clone(),
            records_in: 0,
            records_out: self.out.records_out(),
            state_entries: 0,
        });
        self.out.visit_metrics(v);
    }

    fn close(&mut self) -> Result<()> {
        let reader = &mut self.reader;
        guarded(&self.info, || reader.close())
    }

    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.out.on_processing_time(now)
    }

    fn checkpoint(&mut self, b: &CheckpointBarrier, snap: &mut TaskStateSnapshot) -> Result<()> {
        let reader = &mut self.reader;
        let splits = guarded(&self.info, || reader.snapshot_state(b.id))
            .map_err(|e| self.info.error(format!("cannot snapshot the source: {e}")))?;
        let mut st = OperatorSubtaskState::default();
        match self.reader.split_redistribution() {
            Redistribution::EvenSplit => st.add_list(SOURCE_SPLITS_STATE, splits),
            Redistribution::Union => st.add_union(SOURCE_SPLITS_STATE, splits),
        }
        snap.operators.insert(self.info.uid.clone(), st);
        self.out.checkpoint(b, snap)
    }

    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        let reader = &mut self.reader;
        guarded(&self.info, || reader.notify_checkpoint(n))?;
        self.out.notify_checkpoint(n)
    }
}

fn forward_valve(out: &mut dyn OutputControl, o: ValveOutput) -> Result<()> {
    match o {
        ValveOutput::Watermark(w) => out.emit_watermark(w),
        ValveOutput::Status(s) => out.emit_watermark_status(s),
    }
}

/// Handles a frame of channel `ch` that is not a record (records are the caller's):
/// watermarks and status changes go through the valve to `out`; a barrier, which ends its
/// buffer, is kept in `barrier` for [`barrier_arrived`].
fn control_frame(
    valve: &mut WatermarkValve,
    out: &mut dyn OutputControl,
    ch: usize,
    frame: Frame<'_>,
    barrier: &mut Option<CheckpointBarrier>,
) -> Result<()> {
    match frame {
        Frame::Record(..) => Ok(()),
        Frame::Watermark(w) => match valve.input_watermark(ch, w) {
            Some(o) => forward_valve(out, o),
            None => Ok(()),
        },
        Frame::Status(s) => valve
            .input_status(ch, s)
            .into_iter()
            .try_for_each(|o| forward_valve(out, o)),
        Frame::Barrier(b) => {
            *barrier = Some(b);
            Ok(())
        }
    }
}

/// A buffer of channel `ch` was decoded; if it ended with a barrier, the aligner says what
/// the task must do.
fn barrier_arrived(
    aligner: &mut BarrierAligner,
    decoders: &[ChannelDecoder],
    ch: usize,
    barrier: Option<CheckpointBarrier>,
) -> Result<Option<BarrierAction>> {
    let Some(b) = barrier else {
        return Ok(None);
    };
    let len = crate::writer::barrier_frame_len(&b)?;
    Ok(aligner.on_barrier(ch, b, len, &|c| decoders[c].partial().to_vec()))
}

/// After a message of `ch` was processed (with `action` as its outcome): a priority barrier
/// may have been waiting for it to be processed, which completes that channel's in-flight
/// data. Both at once cannot happen: while a channel counts down overtaken messages, they
/// precede its barrier, so no barrier in them starts or ends anything.
#[inline]
fn after_processed(
    aligner: &mut BarrierAligner,
    ch: usize,
    action: Option<BarrierAction>,
) -> Option<BarrierAction> {
    let counted = aligner.consumed(ch);
    debug_assert!(action.is_none() || counted.is_none());
    action.or(counted)
}

/// The methods of [`InputChainHead`] that both input heads share: they only use the head's
/// `aligner`, `decoders` and `process`.
macro_rules! gated_input_methods {
    () => {
        fn on_message(&mut self, ch: usize, msg: ChannelMessage) -> Result<Option<BarrierAction>> {
            if self.aligner.holds(ch) {
                self.aligner.hold(ch, msg);
                return Ok(None);
            }
            let action = match msg {
                ChannelMessage::Buffer(buf) => self.process(ch, Input::Data(&buf))?,
                // The batch's permit goes back to the producer's pool once it was processed.
                ChannelMessage::Records(r) => {
                    let (records, permit) = r.into_parts();
                    let done = self.process(ch, Input::Records(records));
                    drop(permit);
                    done?
                }
                ChannelMessage::Event(ChannelEvent::EndOfPartition) => {
                    self.process(ch, Input::End(false))?
                }
                ChannelMessage::Event(ChannelEvent::Stopped) => {
                    self.process(ch, Input::End(true))?
                }
                ChannelMessage::Error(e) => return Err(channel_failed(&self.task, ch, e)),
            };
            Ok(after_processed(&mut self.aligner, ch, action))
        }

        fn on_priority_barrier(
            &mut self,
            ch: usize,
            barrier: CheckpointBarrier,
            overtaken: u32,
        ) -> Option<BarrierAction> {
            let decoders = &self.decoders;
            self.aligner
                .on_priority_barrier(ch, barrier, overtaken, &|c| decoders[c].partial().to_vec())
        }

        fn resume(&mut self) -> Result<Option<BarrierAction>> {
            while let Some((ch, held)) = self.aligner.next_held() {
                // A held buffer or permit goes back to its producer's pool once processed.
                let action = match held {
                    Held::Buffer(b) => self.process(ch, Input::Data(&b))?,
                    Held::Records(r) => {
                        let (records, permit) = r.into_parts();
                        let done = self.process(ch, Input::Records(records));
                        drop(permit);
                        done?
                    }
                    Held::End(stopped) => self.process(ch, Input::End(stopped))?,
                    Held::Error(e) => return Err(channel_failed(&self.task, ch, e)),
                };
                if let Some(b) = after_processed(&mut self.aligner, ch, action) {
                    return Ok(Some(b));
                }
            }
            Ok(None)
        }

        fn check_alignment_timeout(&mut self) -> Option<BarrierAction> {
            let decoders = &self.decoders;
            self.aligner
                .check_timeout(&|c| decoders[c].partial().to_vec())
        }

        fn alignment_timeout_at(&self) -> Option<std::time::Instant> {
            self.aligner.timeout_at()
        }

        fn preload_in_flight(&mut self, data: Vec<(usize, Vec<u8>)>) {
            for (ch, bytes) in data {
                self.aligner.preload(ch, bytes);
            }
        }

        fn is_aborted(&self, id: u64) -> bool {
            self.aligner.is_aborted(id)
        }

        fn restored_from(&mut self, id: u64) {
            self.aligner.restored_from(id)
        }

        fn last_alignment_ms(&self) -> u64 {
            self.aligner.last_alignment_ms()
        }
    };
}

/// A one-input chain fed by network channels carrying elements of type `T`.
pub struct OneInputHead<T, S> {
    decoders: Vec<ChannelDecoder>,
    valve: WatermarkValve,
    aligner: BarrierAligner,
    serializer: S,
    chain: Box<dyn Output<T>>,
    /// Decoded records on their way into the chain: handed on when full, before a control
    /// frame and at the end of each buffer, so it is empty between two buffers.
    batch: Vec<StreamRecord<T>>,
    task: String,
    /// An input stopped after a savepoint: the chain stops instead of finishing.
    stopped: bool,
}

impl<T, S> OneInputHead<T, S> {
    /// A head over `channels` input channels aligning barriers in `mode`; `task` names the
    /// task in errors.
    pub fn new(
        channels: usize,
        mode: BarrierAlignment,
        serializer: S,
        chain: Box<dyn Output<T>>,
        task: String,
    ) -> Self {
        OneInputHead {
            decoders: (0..channels).map(|_| ChannelDecoder::default()).collect(),
            valve: WatermarkValve::new(channels),
            aligner: BarrierAligner::new(channels, mode),
            serializer,
            chain,
            batch: Vec::with_capacity(crate::operator::batch_capacity::<T>()),
            task,
            stopped: false,
        }
    }
}

impl<T: 'static, S: TypeSerializer<T>> OneInputHead<T, S> {
    fn process(&mut self, ch: usize, msg: Input<'_>) -> Result<Option<BarrierAction>> {
        let data = match msg {
            Input::Data(buf) => {
                if self.aligner.recording(ch) {
                    self.aligner.record(ch, buf);
                }
                buf
            }
            Input::Records(records) => {
                let mut records = typed_input(records, &mut self.aligner, &self.serializer, ch)?;
                let r = self.chain.collect_batch(&mut records);
                return r
                    .map(|()| None)
                    .map_err(|e| with_channel_context(e, &self.task, ch));
            }
            Input::End(stopped) => {
                if self.decoders[ch].has_partial() {
                    return Err(RuntimeError::Other(format!(
                        "input channel {ch} of '{}' ended in the middle of a record",
                        self.task
                    )));
                }
                if stopped {
                    self.stopped = true;
                    self.valve.channel_stopped(ch);
                } else if let Some(o) = self.valve.channel_ended(ch) {
                    forward_valve(self.chain.as_mut(), o)?;
                }
                return Ok(self.aligner.on_end(ch));
            }
        };
        let OneInputHead {
            decoders,
            valve,
            serializer,
            chain,
            batch,
            task,
            ..
        } = self;
        let capacity = crate::operator::batch_capacity::<T>();
        let mut barrier = None;
        let decoded = decoders[ch].decode(data, |frame| {
            if barrier.is_some() {
                return Err(frame_after_barrier());
            }
            match frame {
                Frame::Record(timestamp, bytes) => {
                    batch.push(StreamRecord::from_parts(
                        serializer.deserialize(bytes)?,
                        timestamp,
                    ));
                    if batch.len() >= capacity {
                        chain.collect_batch(batch)?;
                    }
                    Ok(())
                }
                other => {
                    chain.collect_batch(batch)?;
                    control_frame(valve, chain.as_mut(), ch, other, &mut barrier)
                }
            }
        });
        let decoded = decoded.and_then(|()| chain.collect_batch(batch));
        if decoded.is_err() {
            batch.clear();
        }
        decoded.map_err(|e| with_channel_context(e, task, ch))?;
        barrier_arrived(&mut self.aligner, &self.decoders, ch, barrier)
    }
}

/// What an input head processes: the bytes of a buffer, records handed over in memory, or
/// the end of a channel (`true`: stopped after a savepoint, without draining).
enum Input<'a> {
    Data(&'a [u8]),
    Records(ErasedRecords),
    End(bool),
}

/// The records of an in-memory batch of channel `ch`, as type `T`; while an unaligned
/// checkpoint records `ch`'s in-flight data, they are recorded too, encoded as the frames a
/// byte channel would have carried.
fn typed_input<T: 'static, S: TypeSerializer<T>>(
    records: ErasedRecords,
    aligner: &mut BarrierAligner,
    serializer: &S,
    ch: usize,
) -> Result<Vec<StreamRecord<T>>> {
    let records = records.downcast::<T>()?;
    if aligner.recording(ch) {
        let mut bytes = Vec::new();
        crate::typed::encode_records(serializer, &records, &mut bytes)?;
        aligner.record(ch, &bytes);
    }
    Ok(records)
}

fn frame_after_barrier() -> RuntimeError {
    RuntimeError::Codec {
        context: "corrupt frame on an input channel".into(),
        message: "a frame follows a checkpoint barrier in the same buffer".into(),
    }
}

impl<T: Send + 'static, S: TypeSerializer<T>> InputChainHead for OneInputHead<T, S> {
    gated_input_methods!();

    fn num_channels(&self) -> usize {
        self.decoders.len()
    }

    fn input_ended(&self) -> bool {
        self.aligner.all_ended()
    }

    fn end_of_input(&mut self) -> Result<()> {
        if self.stopped {
            self.chain.stop()
        } else {
            self.chain.finish()
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.chain.flush()
    }

    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        self.chain.visit_metrics(v)
    }

    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.chain.on_processing_time(now)
    }

    fn checkpoint(&mut self, b: &CheckpointBarrier, snap: &mut TaskStateSnapshot) -> Result<()> {
        self.chain.checkpoint(b, snap)
    }

    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        if let CheckpointNotice::Aborted(id) = n {
            self.aligner.abort(id);
        }
        self.chain.notify_checkpoint(n)
    }
}

/// The error of a task whose input channel `ch` failed with `message`.
fn channel_failed(task: &str, ch: usize, message: String) -> RuntimeError {
    RuntimeError::Other(format!("input channel {ch} of '{task}' failed: {message}"))
}

fn with_channel_context(e: RuntimeError, task: &str, ch: usize) -> RuntimeError {
    match e {
        RuntimeError::Codec { context, message } => RuntimeError::Codec {
            context: format!("{context} (input channel {ch} of '{task}')"),
            message,
        },
        other => other,
    }
}

/// A two-input operator fed by network channels; `channel_inputs[c]` says which input
/// (0 or 1) channel `c` belongs to.
pub struct TwoInputHead<A, SA, B, SB, O, Op> {
    decoders: Vec<ChannelDecoder>,
    channel_inputs: Vec<u8>,
    open_channels: [usize; 2],
    valve: WatermarkValve,
    aligner: BarrierAligner,
    serializers: (SA, SB),
    link: TwoInputLink<A, B, O, Op>,
    task: String,
    /// An input stopped after a savepoint: the operator stops instead of finishing.
    stopped: bool,
}

impl<A, SA, B, SB, O: 'static, Op: TwoInputOperator<A, B, O>> TwoInputHead<A, SA, B, SB, O, Op> {
    /// A head for `link` over channels whose inputs are `channel_inputs`, aligning barriers
    /// in `mode`.
    pub fn new(
        channel_inputs: Vec<u8>,
        mode: BarrierAlignment,
        serializers: (SA, SB),
        link: TwoInputLink<A, B, O, Op>,
        task: String,
    ) -> Self {
        let n = channel_inputs.len();
        let mut open_channels = [0; 2];
        for &i in &channel_inputs {
            open_channels[i as usize & 1] += 1;
        }
        TwoInputHead {
            decoders: (0..n).map(|_| ChannelDecoder::default()).collect(),
            channel_inputs,
            open_channels,
            valve: WatermarkValve::new(n),
            aligner: BarrierAligner::new(n, mode),
            serializers,
            link,
            task,
            stopped: false,
        }
    }
}

impl<A, SA, B, SB, O, Op> TwoInputHead<A, SA, B, SB, O, Op>
where
    A: 'static,
    B: 'static,
    O: 'static,
    SA: TypeSerializer<A>,
    SB: TypeSerializer<B>,
    Op: TwoInputOperator<A, B, O>,
{
    fn process(&mut self, ch: usize, msg: Input<'_>) -> Result<Option<BarrierAction>> {
        let data = match msg {
            Input::Data(buf) => {
                if self.aligner.recording(ch) {
                    self.aligner.record(ch, buf);
                }
                buf
            }
            Input::Records(records) => {
                let (aligner, link) = (&mut self.aligner, &mut self.link);
                let r = if self.channel_inputs[ch] == 0 {
                    typed_input(records, aligner, &self.serializers.0, ch)?
                        .into_iter()
                        .try_for_each(|r| link.process1(r))
                } else {
                    typed_input(records, aligner, &self.serializers.1, ch)?
                        .into_iter()
                        .try_for_each(|r| link.process2(r))
                };
                return r
                    .map(|()| None)
                    .map_err(|e| with_channel_context(e, &self.task, ch));
            }
            Input::End(stopped) => {
                let input = self.channel_inputs[ch] as usize & 1;
                self.open_channels[input] -= 1;
                if stopped {
                    self.stopped = true;
                    self.valve.channel_stopped(ch);
                } else if let Some(o) = self.valve.channel_ended(ch) {
                    forward_valve(&mut self.link, o)?;
                }
                if self.open_channels[input] == 0 && !self.stopped {
                    self.link.end_input(input)?;
                }
                return Ok(self.aligner.on_end(ch));
            }
        };
        let TwoInputHead {
            decoders,
            channel_inputs,
            valve,
            serializers,
            link,
            task,
            ..
        } = self;
        let first = channel_inputs[ch] == 0;
        let mut barrier = None;
        decoders[ch]
            .decode(data, |frame| {
                if barrier.is_some() {
                    return Err(frame_after_barrier());
                }
                match frame {
                    Frame::Record(timestamp, bytes) if first => link.process1(
                        StreamRecord::from_parts(serializers.0.deserialize(bytes)?, timestamp),
                    ),
                    Frame::Record(timestamp, bytes) => link.process2(StreamRecord::from_parts(
                        serializers.1.deserialize(bytes)?,
                        timestamp,
                    )),
                    other => control_frame(valve, link, ch, other, &mut barrier),
                }
            })
            .map_err(|e| with_channel_context(e, task, ch))?;
        barrier_arrived(&mut self.aligner, &self.decoders, ch, barrier)
    }
}

impl<A, SA, B, SB, O, Op> InputChainHead for TwoInputHead<A, SA, B, SB, O, Op>
where
    A: 'static,
    B: 'static,
    O: 'static,
    SA: TypeSerializer<A>,
    SB: TypeSerializer<B>,
    Op: TwoInputOperator<A, B, O>,
{
    gated_input_methods!();

    fn num_channels(&self) -> usize {
        self.decoders.len()
    }

    fn input_ended(&self) -> bool {
        self.aligner.all_ended()
    }

    fn end_of_input(&mut self) -> Result<()> {
        if self.stopped {
            self.link.stop()
        } else {
            self.link.finish()
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.link.flush()
    }

    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        self.link.visit_metrics(v)
    }

    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.link.on_processing_time(now)
    }

    fn checkpoint(&mut self, b: &CheckpointBarrier, snap: &mut TaskStateSnapshot) -> Result<()> {
        self.link.checkpoint(b, snap)
    }

    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        if let CheckpointNotice::Aborted(id) = n {
            self.aligner.abort(id);
        }
        self.link.notify_checkpoint(n)
    }
}
