//! The producing side of the exchange: stream elements framed into per-channel buffers.
//!
//! Frame layout: `u32 length (LE)` then `length` bytes: a tag byte, for timestamped records
//! and watermarks an `i64` (LE), then the payload. Frames may span buffers.
//! [`ChannelBuffers`] owns the framing and the buffer hand-over; [`RecordWriter`] adds the
//! serializer and the channel selector, both generic, so the per-record path has no dynamic
//! dispatch and no allocation.

use crate::buffer::{Buffer, BufferPool};
use crate::checkpoint::{CheckpointBarrier, CheckpointNotice};
use crate::element::{StreamRecord, Watermark, WatermarkStatus};
use crate::error::{Result, RuntimeError};
use crate::inbox::{ChannelEvent, ChannelMessage, ChannelSender};
use crate::operator::{Output, OutputControl};
use crate::partitioner::ChannelSelector;
use crate::push::{ensure_spare, push_with_spare};
use crate::serializer::TypeSerializer;
use crate::typed::{typed_batch_capacity, TypedRecords};

/// Frame tag: record without timestamp.
pub const TAG_RECORD: u8 = 0;
/// Frame tag: record with an `i64` timestamp.
pub const TAG_RECORD_TS: u8 = 1;
/// Frame tag: watermark.
pub const TAG_WATERMARK: u8 = 2;
/// Frame tag: watermark status idle.
pub const TAG_IDLE: u8 = 3;
/// Frame tag: watermark status active.
pub const TAG_ACTIVE: u8 = 4;
/// Frame tag: checkpoint barrier (bincode of [`CheckpointBarrier`]).
pub const TAG_BARRIER: u8 = 5;

/// Per-channel open buffers of one output edge, and the senders to the consumers.
pub struct ChannelBuffers {
    senders: Vec<ChannelSender>,
    open: Vec<Option<Buffer>>,
    pool: BufferPool,
    limit: usize,
    flush_always: bool,
    finished: bool,
    /// The largest frame [`Self::write_frame`] wrote: a buffer with less room than this is
    /// sent before the next frame, so frames written in place rarely outgrow their buffer.
    max_frame: usize,
}

impl ChannelBuffers {
    /// Buffers for `senders` (one per consumer channel, in partition order) from `pool`.
    /// With `flush_always` every element is sent at once (buffer timeout 0).
    pub fn new(senders: Vec<ChannelSender>, pool: BufferPool, flush_always: bool) -> Self {
        let n = senders.len();
        let limit = pool.buffer_size();
        ChannelBuffers {
            senders,
            open: (0..n).map(|_| None).collect(),
            pool,
            limit,
            flush_always,
            finished: false,
            max_frame: 0,
        }
    }

    /// Number of consumer channels.
    #[inline]
    pub fn num_channels(&self) -> usize {
        self.senders.len()
    }

    /// Appends one complete frame (length prefix included) to `channel`.
    #[inline]
    pub fn append(&mut self, channel: usize, frame: &[u8]) -> Result<()> {
        let mut rest = frame;
        loop {
            let buf = match &mut self.open[channel] {
                Some(b) => b,
                slot => slot.insert(self.pool.request()?),
            };
            let n = (self.limit - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if buf.len() >= self.limit {
                self.send(channel)?;
            }
            if rest.is_empty() {
                break;
            }
        }
        if self.flush_always {
            self.send(channel)?;
        }
        Ok(())
    }

    /// Lets `write` append one complete frame directly to `channel`'s open buffer (no copy
    /// through a scratch buffer). A buffer with less room left than the largest frame
    /// written so far is sent first; one that reaches the size limit is sent after. A frame
    /// larger than any before may make its buffer slightly larger than the limit, which
    /// keeps frames whole (the pool shrinks oversized buffers when they come back).
    #[inline]
    pub fn write_frame(
        &mut self,
        channel: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if let Some(b) = &self.open[channel] {
            if self.limit - b.len().min(self.limit) < self.max_frame {
                self.send(channel)?;
            }
        }
        let buf = match &mut self.open[channel] {
            Some(b) => b,
            slot => slot.insert(self.pool.request()?),
        };
        let start = buf.len();
        if let Err(e) = write(buf) {
            buf.truncate(start);
            return Err(e);
        }
        let written = buf.len() - start;
        if written > self.max_frame {
            self.max_frame = written.min(self.limit);
        }
        if buf.len() >= self.limit || self.flush_always {
            self.send(channel)?;
        }
        Ok(())
    }

    /// Appends a frame to every channel.
    pub fn append_all(&mut self, frame: &[u8]) -> Result<()> {
        for c in 0..self.senders.len() {
            self.append(c, frame)?;
        }
        Ok(())
    }

    /// Takes a pool permit for a typed batch about to be opened; waits while the pool is
    /// exhausted (backpressure, as for buffers).
    pub fn request_permit(&self) -> Result<Buffer> {
        self.pool.request_permit()
    }

    /// Sends `records` to `channel` in memory ([`crate::typed`]) with the `permit` taken when
    /// the batch was opened, after the channel's open byte buffer (so the stream keeps its
    /// order).
    pub fn send_records<T: Send + 'static>(
        &mut self,
        channel: usize,
        records: Vec<StreamRecord<T>>,
        permit: Buffer,
    ) -> Result<()> {
        self.send(channel)?;
        self.senders[channel].send(ChannelMessage::Records(TypedRecords::new(records, permit)))
    }

    /// The number of records of type `T` a typed batch holds at most
    /// ([`typed_batch_capacity`]); 1 when every element is sent at once (buffer timeout 0).
    pub fn typed_capacity<T>(&self) -> usize {
        if self.flush_always {
            1
        } else {
            typed_batch_capacity::<T>(self.limit)
        }
    }

    /// Bytes per buffer: also the most encoded bytes a typed batch holds.
    pub fn buffer_size(&self) -> usize {
        self.limit
    }

    fn send(&mut self, channel: usize) -> Result<()> {
        if let Some(buf) = self.open[channel].take() {
            if !buf.is_empty() {
                self.senders[channel].send(ChannelMessage::Buffer(buf))?;
            }
        }
        Ok(())
    }

    /// Sends every partly filled buffer (the buffer timeout fired).
    pub fn flush(&mut self) -> Result<()> {
        for c in 0..self.open.len() {
            self.send(c)?;
        }
        Ok(())
    }

    /// Sends a checkpoint barrier on every channel, after everything written before it; each
    /// channel's buffer is sent at once, so the barrier is the last frame of its buffer. An
    /// unaligned checkpoint's barrier goes out as a priority event instead, ahead of what
    /// is queued for the consumer (the open buffers are sent first: they precede it).
    pub fn broadcast_barrier(&mut self, barrier: &CheckpointBarrier) -> Result<()> {
        if self.finished {
            // A finished task snapshots its final state; its consumers saw its end.
            return Ok(());
        }
        if barrier.unaligned {
            self.flush()?;
            return self
                .senders
                .iter()
                .try_for_each(|s| s.send_priority(barrier.clone()));
        }
        let frame = barrier_frame(barrier)?;
        for c in 0..self.senders.len() {
            let buf = match self.open[c].take() {
                Some(mut b) => {
                    b.extend_from_slice(&frame);
                    b
                }
                // No open buffer: the barrier travels in a buffer of its own, outside the
                // pool, so emitting a barrier never waits for a buffer (part of why aligned
                // checkpoints may hold buffers without deadlocking; see the aligner).
                None => Buffer::unpooled(frame.clone()),
            };
            self.open[c] = Some(buf);
            self.send(c)?;
        }
        self.flush()
    }

    /// Flushes and tells every consumer that this producer is done. Idempotent.
    pub fn finish(&mut self) -> Result<()> {
        self.end(ChannelEvent::EndOfPartition)
    }

    /// Flushes and tells every consumer that this producer stopped after a savepoint.
    pub fn stop(&mut self) -> Result<()> {
        self.end(ChannelEvent::Stopped)
    }

    fn end(&mut self, event: ChannelEvent) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.flush()?;
        for s in &self.senders {
            s.send(ChannelMessage::Event(event.clone()))?;
        }
        self.finished = true;
        Ok(())
    }
}

/// Starts a frame in `scratch` (cleared) for a record; returns nothing, the caller appends
/// the payload and calls [`end_frame`].
#[inline]
pub fn begin_record_frame(scratch: &mut Vec<u8>, timestamp: Option<i64>) {
    scratch.clear();
    begin_record_frame_into(scratch, timestamp);
}

/// Appends the start of a record frame to `out` (a placeholder length, the tag and the
/// timestamp); the caller appends the payload and calls [`end_frame`] on the frame's bytes.
#[inline]
pub fn begin_record_frame_into(out: &mut Vec<u8>, timestamp: Option<i64>) {
    match timestamp {
        None => out.extend_from_slice(&[0, 0, 0, 0, TAG_RECORD]),
        Some(ts) => {
            out.extend_from_slice(&[0, 0, 0, 0, TAG_RECORD_TS]);
            out.extend_from_slice(&ts.to_le_bytes());
        }
    }
}

/// Writes the frame's length prefix.
#[inline]
pub fn end_frame(scratch: &mut [u8]) -> Result<()> {
    let len = u32::try_from(scratch.len() - 4).map_err(|_| RuntimeError::Codec {
        context: "cannot send a record".into(),
        message: format!("encoded size {} exceeds 4 GiB", scratch.len()),
    })?;
    scratch[..4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A complete watermark frame.
pub fn watermark_frame(wm: Watermark) -> [u8; 13] {
    let mut f = [0u8; 13];
    f[..4].copy_from_slice(&9u32.to_le_bytes());
    f[4] = TAG_WATERMARK;
    f[5..].copy_from_slice(&wm.0.to_le_bytes());
    f
}

/// A complete checkpoint barrier frame.
pub fn barrier_frame(barrier: &CheckpointBarrier) -> Result<Vec<u8>> {
    let mut f = vec![0, 0, 0, 0, TAG_BARRIER];
    bincode::serialize_into(&mut f, barrier).map_err(|e| RuntimeError::Codec {
        context: "cannot encode a checkpoint barrier".into(),
        message: e.to_string(),
    })?;
    end_frame(&mut f)?;
    Ok(f)
}

/// The size of `barrier`'s frame, length prefix included, without encoding it.
pub fn barrier_frame_len(barrier: &CheckpointBarrier) -> Result<usize> {
    let payload = bincode::serialized_size(barrier).map_err(|e| RuntimeError::Codec {
        context: "cannot size a checkpoint barrier".into(),
        message: e.to_string(),
    })?;
    Ok(4 + 1 + payload as usize)
}

/// A complete watermark status frame.
pub fn status_frame(status: WatermarkStatus) -> [u8; 5] {
    let tag = match status {
        WatermarkStatus::Idle => TAG_IDLE,
        WatermarkStatus::Active => TAG_ACTIVE,
    };
    [1, 0, 0, 0, tag]
}

/// The end of a chain that feeds a network edge: routes records with `P` and either
/// serialises them with `S` into buffers, or, towards consumers in the same process, hands
/// them over in memory in typed batches ([`crate::typed`]).
pub struct RecordWriter<T, S, P> {
    channels: ChannelBuffers,
    serializer: S,
    selector: P,
    scratch: Vec<u8>,
    /// In-memory mode: the open typed batch of each channel.
    typed: Option<Vec<OpenBatch<T>>>,
    typed_capacity: usize,
}

/// A channel's open typed batch: its records, their encoded size (frames included), and the
/// pool permit taken when it was opened, so open batches count against the pool as open
/// buffers do.
///
/// Invariant: an open batch (one with a permit) has room for one more record, so that a push
/// needs no grow path ([`crate::push`]).
struct OpenBatch<T> {
    records: Vec<StreamRecord<T>>,
    bytes: usize,
    permit: Option<Buffer>,
}

impl<T> Default for OpenBatch<T> {
    fn default() -> Self {
        OpenBatch {
            records: Vec::new(),
            bytes: 0,
            permit: None,
        }
    }
}

/// Frame bytes around a record's encoding: length, tag and timestamp.
const RECORD_FRAME_OVERHEAD: usize = 4 + 1 + 8;

impl<T: Send + 'static, S: TypeSerializer<T>, P: ChannelSelector<T>> RecordWriter<T, S, P> {
    /// A writer that serialises every record into `channels`' buffers.
    pub fn new(channels: ChannelBuffers, serializer: S, selector: P) -> Self {
        RecordWriter {
            typed_capacity: channels.typed_capacity::<T>(),
            channels,
            serializer,
            selector,
            scratch: Vec::with_capacity(256),
            typed: None,
        }
    }

    /// A writer that hands records over in memory, for consumers in the same process. A
    /// broadcast edge still serialises (every consumer needs its own copy).
    pub fn in_memory(channels: ChannelBuffers, serializer: S, selector: P) -> Self {
        let mut w = Self::new(channels, serializer, selector);
        if !w.selector.is_broadcast() {
            w.typed = Some(
                (0..w.channels.num_channels())
                    .map(|_| OpenBatch::default())
                    .collect(),
            );
        }
        w
    }

    /// True if records go to the consumers in memory.
    pub fn is_in_memory(&self) -> bool {
        self.typed.is_some()
    }

    /// Sends the open typed batch of `channel`.
    fn send_typed(&mut self, channel: usize) -> Result<()> {
        let Some(open) = &mut self.typed else {
            return Ok(());
        };
        let batch = std::mem::take(&mut open[channel]);
        match batch.permit {
            Some(permit) if !batch.records.is_empty() => {
                self.channels.send_records(channel, batch.records, permit)
            }
            _ => Ok(()),
        }
    }

    /// Sends every open typed batch: before a control element, a flush, the end.
    fn send_all_typed(&mut self) -> Result<()> {
        for c in 0..self.channels.num_channels() {
            self.send_typed(c)?;
        }
        Ok(())
    }

    #[inline]
    fn select(&mut self, value: &T) -> Result<usize> {
        let n = self.channels.num_channels();
        let c = self.selector.select(value, n);
        if c >= n {
            return Err(RuntimeError::Other(format!(
                "partitioner chose channel {c}, but there are only {n} consumer subtasks"
            )));
        }
        Ok(c)
    }

    /// Adds `record` to `channel`'s open typed batch (opening it with a pool permit),
    /// sending it once it holds a buffer's worth of encoded bytes or its most records.
    #[inline]
    fn push_typed(&mut self, channel: usize, record: StreamRecord<T>) -> Result<()> {
        let size = self.serializer.encoded_len(&record.value)? + RECORD_FRAME_OVERHEAD;
        let Some(open) = &mut self.typed else {
            return Err(typed_batch_on_serialising_writer());
        };
        let batch = &mut open[channel];
        if batch.permit.is_none() {
            return self.open_and_push(channel, record);
        }
        // SAFETY: `OpenBatch`'s invariant: the batch is open, so it has room for a record.
        unsafe { push_with_spare(&mut batch.records, record) };
        batch.bytes += size;
        if batch.records.len() >= self.typed_capacity || batch.bytes >= self.channels.buffer_size()
        {
            return self.send_typed(channel);
        }
        ensure_spare(&mut batch.records);
        Ok(())
    }

    /// [`Self::push_typed`] for a channel without an open batch: takes a pool permit (which
    /// may wait for one), opens the batch with room for a whole batch of records, and pushes.
    /// Out of line, so that the record need not wait on the stack in the common case.
    #[cold]
    #[inline(never)]
    fn open_and_push(&mut self, channel: usize, record: StreamRecord<T>) -> Result<()> {
        let permit = self.channels.request_permit()?;
        let Some(open) = &mut self.typed else {
            return Err(typed_batch_on_serialising_writer());
        };
        let batch = &mut open[channel];
        batch.records.reserve_exact(self.typed_capacity);
        batch.permit = Some(permit);
        self.push_typed(channel, record)
    }

    /// Hands `batch` to the single consumer as it is (no copy), if it is a typed batch's
    /// worth on its own and no batch is open: a batch that fills at least half of one by
    /// count or bytes, and not more than one. Returns false if it did not.
    fn send_whole(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<bool> {
        let (cap, limit) = (self.typed_capacity, self.channels.buffer_size());
        match &self.typed {
            Some(open) if open.len() == 1 && open[0].records.is_empty() => {}
            _ => return Ok(false),
        }
        if batch.len() > cap {
            return Ok(false);
        }
        let mut bytes = 0;
        for r in batch.iter() {
            bytes += self.serializer.encoded_len(&r.value)? + RECORD_FRAME_OVERHEAD;
        }
        if bytes > limit || (batch.len() * 2 < cap && bytes * 2 < limit && cap > 1) {
            return Ok(false);
        }
        // An empty open batch holds no permit (it takes one with its first record).
        let permit = self.channels.request_permit()?;
        let whole = std::mem::replace(batch, Vec::with_capacity(batch.capacity()));
        self.channels.send_records(0, whole, permit)?;
        Ok(true)
    }

    fn serialize_to(&mut self, channel: usize, record: &StreamRecord<T>) -> Result<()> {
        let serializer = &self.serializer;
        self.channels.write_frame(channel, |buf| {
            let start = buf.len();
            begin_record_frame_into(buf, record.timestamp());
            serializer.serialize(&record.value, buf)?;
            end_frame(&mut buf[start..])
        })
    }
}

/// Callers of the typed paths check the writer's mode first; a record must never vanish if
/// one does not.
fn typed_batch_on_serialising_writer() -> RuntimeError {
    RuntimeError::Other("internal error: a typed batch on a writer that serialises".into())
}

impl<T: Send + 'static, S: TypeSerializer<T>, P: ChannelSelector<T>> OutputControl
    for RecordWriter<T, S, P>
{
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.send_all_typed()?;
        self.channels.append_all(&watermark_frame(wm))
    }

    fn emit_watermark_status(&mut self, status: WatermarkStatus) -> Result<()> {
        self.send_all_typed()?;
        self.channels.append_all(&status_frame(status))
    }

    fn flush(&mut self) -> Result<()> {
        self.send_all_typed()?;
        self.channels.flush()
    }

    fn finish(&mut self) -> Result<()> {
        self.send_all_typed()?;
        self.channels.finish()
    }

    fn stop(&mut self) -> Result<()> {
        self.send_all_typed()?;
        self.channels.stop()
    }

    fn checkpoint(
        &mut self,
        barrier: &CheckpointBarrier,
        _: &mut weir_state::TaskStateSnapshot,
    ) -> Result<()> {
        self.send_all_typed()?;
        self.channels.broadcast_barrier(barrier)
    }

    fn notify_checkpoint(&mut self, _: CheckpointNotice) -> Result<()> {
        Ok(())
    }
}

impl<T: Send + 'static, S: TypeSerializer<T>, P: ChannelSelector<T>> Output<T>
    for RecordWriter<T, S, P>
{
    #[inline]
    fn collect(&mut self, record: StreamRecord<T>) -> Result<()> {
        if self.selector.is_broadcast() {
            begin_record_frame(&mut self.scratch, record.timestamp());
            self.serializer
                .serialize(&record.value, &mut self.scratch)?;
            end_frame(&mut self.scratch)?;
            return self.channels.append_all(&self.scratch);
        }
        let c = self.select(&record.value)?;
        if self.typed.is_some() {
            self.push_typed(c, record)
        } else {
            self.serialize_to(c, &record)
        }
    }

    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<()> {
        // A broadcast edge is never in memory.
        if self.typed.is_none() {
            for r in batch.drain(..) {
                self.collect(r)?;
            }
            return Ok(());
        }
        if batch.is_empty() || self.send_whole(batch)? {
            return Ok(());
        }
        for r in batch.drain(..) {
            let c = self.select(&r.value)?;
            self.push_typed(c, r)?;
        }
        Ok(())
    }
}
