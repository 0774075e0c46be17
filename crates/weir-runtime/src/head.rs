//! Chain heads: what a task's mailbox loop drives. A source head polls a reader; an input
//! head decodes buffers from the input channels, merges watermarks with a
//! [`WatermarkValve`], and pushes into the chain.

use crate::element::{StreamRecord, Watermark};
use crate::error::{Result, RuntimeError};
use crate::metrics::{MetricsVisitor, OperatorMetrics};
use crate::operator::{
    guarded, OperatorInfo, Output, OutputControl, Outputs, TwoInputLink, TwoInputOperator,
};
use crate::reader::{ChannelDecoder, Frame};
use crate::serializer::TypeSerializer;
use crate::source::{PollStatus, SourceOutput, SourceReader};
use crate::valve::{ValveOutput, WatermarkValve};

/// The head of a source task.
pub trait SourceChainHead: Send {
    /// Lets the reader emit what is ready.
    fn poll(&mut self) -> Result<PollStatus>;
    /// The reader is exhausted: final watermark, then finish the chain.
    fn end_of_input(&mut self) -> Result<()>;
    /// Sends partly filled buffers.
    fn flush(&mut self) -> Result<()>;
    /// Reports per-operator counters.
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>);
    /// Closes the reader.
    fn close(&mut self) -> Result<()>;
    /// Processing time reached `now`.
    fn on_processing_time(&mut self, now: i64) -> Result<()>;
}

/// The head of a task with network inputs.
pub trait InputChainHead: Send {
    /// Number of input channels.
    fn num_channels(&self) -> usize;
    /// A buffer arrived on `channel`.
    fn on_buffer(&mut self, channel: usize, data: &[u8]) -> Result<()>;
    /// `channel`'s producer finished.
    fn on_channel_end(&mut self, channel: usize) -> Result<()>;
    /// Every channel ended: finish the chain.
    fn end_of_input(&mut self) -> Result<()>;
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
    info: OperatorInfo,
}

impl<T: 'static> SourceHead<T> {
    /// A head for `reader` emitting into `out`.
    pub fn new(reader: Box<dyn SourceReader<T>>, out: Outputs<T>, info: OperatorInfo) -> Self {
        SourceHead { reader, out, info }
    }
}

impl<T: Send + 'static> SourceChainHead for SourceHead<T> {
    #[inline]
    fn poll(&mut self) -> Result<PollStatus> {
        let (reader, out) = (&mut self.reader, &mut self.out);
        guarded(&self.info, || reader.poll_next(&mut SourceOutput::new(out)))
    }

    fn end_of_input(&mut self) -> Result<()> {
        self.out.emit_watermark(Watermark::MAX)?;
        self.out.finish()
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
}

fn forward_valve(out: &mut dyn OutputControl, o: ValveOutput) -> Result<()> {
    match o {
        ValveOutput::Watermark(w) => out.emit_watermark(w),
        ValveOutput::Status(s) => out.emit_watermark_status(s),
    }
}

/// A one-input chain fed by network channels carrying elements of type `T`.
pub struct OneInputHead<T, S> {
    decoders: Vec<ChannelDecoder>,
    valve: WatermarkValve,
    serializer: S,
    chain: Box<dyn Output<T>>,
    task: String,
}

impl<T, S> OneInputHead<T, S> {
    /// A head over `channels` input channels; `task` names the task in errors.
    pub fn new(channels: usize, serializer: S, chain: Box<dyn Output<T>>, task: String) -> Self {
        OneInputHead {
            decoders: (0..channels).map(|_| ChannelDecoder::default()).collect(),
            valve: WatermarkValve::new(channels),
            serializer,
            chain,
            task,
        }
    }
}

impl<T: 'static, S: TypeSerializer<T>> InputChainHead for OneInputHead<T, S> {
    fn num_channels(&self) -> usize {
        self.decoders.len()
    }

    fn on_buffer(&mut self, ch: usize, data: &[u8]) -> Result<()> {
        let OneInputHead {
            decoders,
            valve,
            serializer,
            chain,
            task,
        } = self;
        decoders[ch]
            .decode(data, |frame| match frame {
                Frame::Record(timestamp, bytes) => chain.collect(StreamRecord {
                    value: serializer.deserialize(bytes)?,
                    timestamp,
                }),
                Frame::Watermark(w) => match valve.input_watermark(ch, w) {
                    Some(o) => forward_valve(chain.as_mut(), o),
                    None => Ok(()),
                },
                Frame::Status(s) => valve
                    .input_status(ch, s)
                    .into_iter()
                    .try_for_each(|o| forward_valve(chain.as_mut(), o)),
            })
            .map_err(|e| with_channel_context(e, task, ch))
    }

    fn on_channel_end(&mut self, ch: usize) -> Result<()> {
        if self.decoders[ch].has_partial() {
            return Err(RuntimeError::Other(format!(
                "input channel {ch} of '{}' ended in the middle of a record",
                self.task
            )));
        }
        match self.valve.channel_ended(ch) {
            Some(o) => forward_valve(self.chain.as_mut(), o),
            None => Ok(()),
        }
    }

    fn end_of_input(&mut self) -> Result<()> {
        self.chain.finish()
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
    serializers: (SA, SB),
    link: TwoInputLink<A, B, O, Op>,
    task: String,
}

impl<A, SA, B, SB, O: 'static, Op: TwoInputOperator<A, B, O>> TwoInputHead<A, SA, B, SB, O, Op> {
    /// A head for `link` over channels whose inputs are `channel_inputs`.
    pub fn new(
        channel_inputs: Vec<u8>,
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
            serializers,
            link,
            task,
        }
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
    fn num_channels(&self) -> usize {
        self.decoders.len()
    }

    fn on_buffer(&mut self, ch: usize, data: &[u8]) -> Result<()> {
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
        decoders[ch]
            .decode(data, |frame| match frame {
                Frame::Record(timestamp, bytes) if first => link.process1(StreamRecord {
                    value: serializers.0.deserialize(bytes)?,
                    timestamp,
                }),
                Frame::Record(timestamp, bytes) => link.process2(StreamRecord {
                    value: serializers.1.deserialize(bytes)?,
                    timestamp,
                }),
                Frame::Watermark(w) => match valve.input_watermark(ch, w) {
                    Some(o) => forward_valve(link, o),
                    None => Ok(()),
                },
                Frame::Status(s) => valve
                    .input_status(ch, s)
                    .into_iter()
                    .try_for_each(|o| forward_valve(link, o)),
            })
            .map_err(|e| with_channel_context(e, task, ch))
    }

    fn on_channel_end(&mut self, ch: usize) -> Result<()> {
        let input = self.channel_inputs[ch] as usize & 1;
        self.open_channels[input] -= 1;
        if let Some(o) = self.valve.channel_ended(ch) {
            forward_valve(&mut self.link, o)?;
        }
        if self.open_channels[input] == 0 {
            self.link.end_input(input)?;
        }
        Ok(())
    }

    fn end_of_input(&mut self) -> Result<()> {
        self.link.finish()
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
}
