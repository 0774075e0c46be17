//! Barrier handling over a task's input channels (Flink's barrier handlers).
//!
//! - Aligned (exactly-once): once a channel delivered the barrier of the pending checkpoint,
//!   what comes after it on that channel is held back until every other channel delivered
//!   it too (or ended); then the task snapshots and the held messages are processed, in
//!   their order.
//! - At-least-once: barriers are only counted; nothing is held back, so records after a
//!   barrier may be part of the state before the snapshot, and are replayed after a
//!   recovery.
//! - Unaligned: the task snapshots at the first barrier and blocks nothing. The barriers
//!   are priority events ([`CheckpointBarrier::unaligned`]): each overtakes the messages
//!   queued before it on its channel (at the producer and in the task's inbox) and says how
//!   many. What a channel delivers before its barrier (channels whose barrier has not come)
//!   and the messages a barrier overtook (counted down as they are processed) is processed
//!   *and* recorded: it is the in-flight data of the checkpoint, stored with it and replayed
//!   first on restore. The checkpoint's data is complete when every channel's barrier came
//!   and its overtaken messages were processed. With an aligned timeout, a checkpoint
//!   starts aligned, with in-band barriers, and switches to unaligned when the alignment
//!   takes longer; the channels whose barrier has not come are then recorded up to it.
//!   Savepoints are always aligned.
//!
//!   Departure from Flink: Flink writes the buffers a barrier overtook to the checkpoint at
//!   once, on both sides (the sender's output queue and the receiver's input queue). Weir
//!   records them at the receiver as it processes them, so the producer keeps no channel
//!   state and restoring needs only the input side; the barrier itself is never delayed
//!   (the snapshot, and the barrier's way downstream, do not wait for queued data), and the
//!   checkpoint's in-flight part completes once each task processed what its barriers
//!   overtook, at most its input buffers' worth. Likewise a timed-out aligned barrier does
//!   not turn into a priority event at the producer's output, only at the receiver.
//!
//! A barrier of a newer checkpoint while an older one is still pending abandons the older
//! one (it can no longer complete; the coordinator expires it). Barriers of checkpoints
//! already taken or abandoned are ignored.
//!
//! Held-back messages keep what they arrived in: a buffer stays out of its producer's pool
//! and an in-memory batch keeps its permit until it is processed. A blocked channel's
//! producer therefore runs out of buffers and waits, and alignment holds at most what the
//! producers' bounded pools hold: memory stays bounded however long an alignment takes
//! (Flink's blocked input channels do the same through their credits).
//!
//! This cannot deadlock. A channel is blocked only once its barrier arrived, and a task
//! sends a barrier on every output at once, before any later record, without waiting for a
//! buffer (a barrier that finds no open buffer travels in one outside the pool). So a
//! producer that stalls on a blocked channel has passed the checkpoint, and nothing any
//! alignment waits for is behind it. The barriers an alignment still waits for come from
//! tasks that have not passed the checkpoint; no channel of theirs is blocked for it (nor for
//! an older one, whose alignment ended before they could pass this one), and the tasks
//! downstream of them have not passed it either, so their output keeps flowing down to the
//! sinks.
//!
//! That holds while every channel delivers every checkpoint's barrier. A channel skips one
//! only when the checkpoint was given up upstream: the coordinator aborted it (a decline, a
//! timeout, a newer checkpoint completing), or a task abandoned it because a newer barrier
//! overtook it, which in turn needs a source that never emitted the older one, i.e. one the
//! coordinator could not trigger, so it aborts that checkpoint. Either way the abort notice
//! reaches every task and ends the alignment it holds ([`BarrierAligner::abort`]), which
//! releases what it held; until then, a producer stalled on the blocked channel waits, as a
//! Flink producer without credit does.

use crate::buffer::Buffer;
use crate::checkpoint::CheckpointBarrier;
use crate::inbox::{ChannelEvent, ChannelMessage};
use crate::typed::TypedRecords;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use weir_core::{BarrierAlignment, CheckpointingMode};
use weir_state::SnapshotKind;

/// A message held back by alignment, owned by the consumer.
pub enum Held {
    /// A buffer as it arrived (it stays out of its producer's pool while held), or restored
    /// in-flight bytes of an unaligned checkpoint in a buffer of no pool.
    Buffer(Buffer),
    /// Records handed over in memory, with their producer's pool permit.
    Records(TypedRecords),
    /// The channel ended (`true`: it stopped after a savepoint).
    End(bool),
    /// The channel failed.
    Error(String),
}

/// What the task must do after a barrier (or a channel's end) was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BarrierAction {
    /// Snapshot now; everything before the barrier on every channel was processed.
    Snapshot(CheckpointBarrier),
    /// Snapshot now, unaligned: some channels still deliver data from before their barrier;
    /// it is recorded and handed over with [`BarrierAction::InFlightComplete`].
    SnapshotUnaligned(CheckpointBarrier),
    /// Every barrier of unaligned checkpoint `id` arrived: the in-flight data per channel.
    InFlightComplete(u64, Vec<(usize, Vec<u8>)>),
}

/// How far one channel's in-flight data of the unaligned checkpoint being recorded is.
#[derive(Debug)]
enum ChannelRecording {
    /// Complete: the channel's barrier came and what it overtook was recorded, or it ended.
    Done,
    /// The barrier has not come: everything the channel delivers is recorded (an in-band
    /// barrier ends it).
    UntilBarrier(Vec<u8>),
    /// The channel's priority barrier came ahead of `remaining` messages: they are recorded
    /// as they are processed.
    Overtaken { data: Vec<u8>, remaining: u32 },
}

impl ChannelRecording {
    fn data_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            ChannelRecording::Done => None,
            ChannelRecording::UntilBarrier(d) | ChannelRecording::Overtaken { data: d, .. } => {
                Some(d)
            }
        }
    }

    /// Ends the recording; the data recorded so far.
    fn finish(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(self, ChannelRecording::Done) {
            ChannelRecording::Done => None,
            ChannelRecording::UntilBarrier(d) | ChannelRecording::Overtaken { data: d, .. } => {
                Some(d)
            }
        }
    }
}

/// Alignment state of one task's input channels.
pub struct BarrierAligner {
    exactly_once: bool,
    unaligned: bool,
    aligned_timeout: Option<Duration>,
    got: Vec<bool>,
    ended: Vec<bool>,
    pending: Option<(CheckpointBarrier, Instant)>,
    /// The unaligned checkpoint being recorded, and per channel how far its in-flight data
    /// is.
    recording: Option<(u64, Vec<ChannelRecording>)>,
    /// Channels of `recording` counting down overtaken messages (0 keeps the per-message
    /// check in [`Self::consumed`] to one comparison).
    counting: usize,
    last_seen: u64,
    /// Recorded in-flight data of channels whose barrier arrived, for the checkpoint being
    /// recorded.
    in_flight: Vec<(usize, Vec<u8>)>,
    /// Held messages per channel, in arrival order (order across channels does not matter).
    held: Vec<VecDeque<Held>>,
    /// Messages in `held`, over all channels.
    held_total: usize,
    /// The channel `next_held` looks at first: the one it took from last, so a released
    /// channel is drained in a run.
    next_channel: usize,
    last_alignment_ms: u64,
    /// Checkpoints the JobMaster aborted: their barriers are ignored from then on.
    aborted: std::collections::BTreeSet<u64>,
}

impl BarrierAligner {
    /// An aligner for `channels` input channels.
    pub fn new(channels: usize, alignment: impl Into<BarrierAlignment>) -> Self {
        let a = alignment.into();
        let exactly_once = a.mode == CheckpointingMode::ExactlyOnce;
        BarrierAligner {
            exactly_once,
            unaligned: exactly_once && a.unaligned,
            aligned_timeout: (a.aligned_timeout_ms > 0)
                .then(|| Duration::from_millis(a.aligned_timeout_ms)),
            got: vec![false; channels],
            ended: vec![false; channels],
            pending: None,
            recording: None,
            counting: 0,
            in_flight: Vec::new(),
            last_seen: 0,
            held: (0..channels).map(|_| VecDeque::new()).collect(),
            held_total: 0,
            next_channel: 0,
            last_alignment_ms: 0,
            aborted: Default::default(),
        }
    }

    fn blocks(&self, ch: usize) -> bool {
        self.exactly_once && self.got[ch] && self.pending.is_some()
    }

    /// True if a message on `ch` must wait: the channel is blocked by alignment, or older
    /// messages of it are still held.
    #[inline]
    pub fn holds(&self, ch: usize) -> bool {
        !self.held[ch].is_empty() || self.blocks(ch)
    }

    /// Keeps a message of `ch` for later, as it arrived: a buffer stays out of its
    /// producer's pool, an in-memory batch keeps its permit.
    pub fn hold(&mut self, ch: usize, msg: ChannelMessage) {
        let held = match msg {
            ChannelMessage::Buffer(buf) => Held::Buffer(buf),
            ChannelMessage::Records(r) => Held::Records(r),
            ChannelMessage::Event(ChannelEvent::EndOfPartition) => Held::End(false),
            ChannelMessage::Event(ChannelEvent::Stopped) => Held::End(true),
            ChannelMessage::Error(e) => Held::Error(e),
        };
        self.held[ch].push_back(held);
        self.held_total += 1;
    }

    /// Queues restored in-flight data of `ch`, to be processed before anything live.
    pub fn preload(&mut self, ch: usize, data: Vec<u8>) {
        self.held[ch].push_back(Held::Buffer(Buffer::unpooled(data)));
        self.held_total += 1;
    }

    /// The oldest held message of a channel that is not blocked, to be processed now.
    pub fn next_held(&mut self) -> Option<(usize, Held)> {
        if self.held_total == 0 {
            return None;
        }
        let n = self.held.len();
        let ch = (0..n)
            .map(|i| (self.next_channel + i) % n)
            .find(|&ch| !self.held[ch].is_empty() && !self.blocks(ch))?;
        self.next_channel = ch;
        let msg = self.held[ch].pop_front()?;
        self.held_total -= 1;
        // Later messages of the same channel stay behind this one: `holds` keeps new ones
        // of the channel queued until its held messages were processed.
        Some((ch, msg))
    }

    /// True if `ch`'s data is in-flight data of an unaligned checkpoint, to be recorded.
    #[inline]
    pub fn recording(&self, ch: usize) -> bool {
        matches!(&self.recording, Some((_, r)) if !matches!(r[ch], ChannelRecording::Done))
    }

    /// Records data of `ch` that arrived before its barrier (see [`Self::recording`]).
    pub fn record(&mut self, ch: usize, data: &[u8]) {
        if let Some((_, r)) = &mut self.recording {
            if let Some(buf) = r[ch].data_mut() {
                buf.extend_from_slice(data);
            }
        }
    }

    /// A message of `ch` was processed (and recorded if [`Self::recording`]): if it was the
    /// last one a priority barrier overtook, the channel's in-flight data is complete.
    #[inline]
    pub fn consumed(&mut self, ch: usize) -> Option<BarrierAction> {
        if self.counting == 0 {
            return None;
        }
        self.count_down(ch)
    }

    fn count_down(&mut self, ch: usize) -> Option<BarrierAction> {
        let (_, r) = self.recording.as_mut()?;
        let ChannelRecording::Overtaken { remaining, .. } = &mut r[ch] else {
            return None;
        };
        *remaining = remaining.saturating_sub(1);
        if *remaining > 0 {
            return None;
        }
        self.finish_channel(ch);
        self.finish_recording()
    }

    /// Ends `ch`'s recording and keeps what it recorded.
    fn finish_channel(&mut self, ch: usize) {
        let Some((_, r)) = &mut self.recording else {
            return;
        };
        if matches!(r[ch], ChannelRecording::Overtaken { .. }) {
            self.counting -= 1;
        }
        if let Some(data) = r[ch].finish() {
            if !data.is_empty() {
                self.in_flight.push((ch, data));
            }
        }
    }

    /// Stops recording (the checkpoint was abandoned or aborted).
    fn drop_recording(&mut self) {
        self.recording = None;
        self.counting = 0;
        self.in_flight.clear();
    }

    fn all_arrived(&self) -> bool {
        self.got.iter().zip(&self.ended).all(|(g, e)| *g || *e)
    }

    fn reset(&mut self) -> Option<CheckpointBarrier> {
        let (b, started) = self.pending.take()?;
        self.last_alignment_ms = started.elapsed().as_millis() as u64;
        self.got.iter_mut().for_each(|g| *g = false);
        Some(b)
    }

    /// Starts recording the in-flight data of `b` on every channel whose barrier has not
    /// arrived; `partial` gives the bytes of a frame a channel's decoder holds unfinished.
    fn go_unaligned(
        &mut self,
        b: CheckpointBarrier,
        partial: &dyn Fn(usize) -> Vec<u8>,
    ) -> BarrierAction {
        let channels = (0..self.got.len())
            .map(|ch| {
                if self.got[ch] || self.ended[ch] {
                    ChannelRecording::Done
                } else {
                    ChannelRecording::UntilBarrier(partial(ch))
                }
            })
            .collect();
        self.recording = Some((b.id, channels));
        self.counting = 0;
        // Nothing is blocked any more: what the channels that delivered the barrier hold
        // comes after the snapshot and is processed normally.
        self.pending = None;
        BarrierAction::SnapshotUnaligned(b)
    }

    fn finish_recording(&mut self) -> Option<BarrierAction> {
        let (_, r) = self.recording.as_ref()?;
        if r.iter().any(|c| !matches!(c, ChannelRecording::Done)) {
            return None;
        }
        let (id, _) = self.recording.take()?;
        self.counting = 0;
        let data = std::mem::take(&mut self.in_flight);
        Some(BarrierAction::InFlightComplete(id, data))
    }

    /// A barrier arrived on `ch`. `barrier_len` is the size of its frame (recorded data
    /// ends before it); `partial` gives a channel decoder's unfinished frame.
    pub fn on_barrier(
        &mut self,
        ch: usize,
        b: CheckpointBarrier,
        barrier_len: usize,
        partial: &dyn Fn(usize) -> Vec<u8>,
    ) -> Option<BarrierAction> {
        if let Some((_, r)) = &mut self.recording {
            // A barrier frame is no record: it leaves the recorded data.
            if let Some(data) = r[ch].data_mut() {
                data.truncate(data.len().saturating_sub(barrier_len));
            }
        }
        if self.aborted.contains(&b.id) {
            return None;
        }
        if let Some((id, r)) = &mut self.recording {
            if b.id == *id {
                if matches!(r[ch], ChannelRecording::UntilBarrier(_)) {
                    self.finish_channel(ch);
                }
                return self.finish_recording();
            }
            if !self.newer_than_recording(b.id) {
                return None;
            }
        }
        if !self.newer_than_pending(b.id) {
            return None;
        }
        let first = self.pending.is_none();
        if first {
            self.last_seen = b.id;
            self.pending = Some((b.clone(), Instant::now()));
        }
        self.got[ch] = true;
        let unaligned_now =
            self.unaligned && b.kind == SnapshotKind::Checkpoint && self.aligned_timeout.is_none();
        if self.all_arrived() {
            return self.reset().map(BarrierAction::Snapshot);
        }
        if first && unaligned_now {
            self.last_alignment_ms = 0;
            self.got.iter_mut().for_each(|g| *g = false);
            self.got[ch] = true;
            let action = self.go_unaligned(b, partial);
            self.got.iter_mut().for_each(|g| *g = false);
            return Some(action);
        }
        None
    }

    /// Checkpoint `id`'s barrier arrived while another one's in-flight data is recorded:
    /// false if `id` is older (its barrier is stale); if newer, the recorded one is
    /// abandoned (it can no longer complete).
    fn newer_than_recording(&mut self, id: u64) -> bool {
        let Some((recorded, _)) = &self.recording else {
            return true;
        };
        if id < *recorded {
            return false;
        }
        tracing::debug!(
            abandoned = *recorded,
            newer = id,
            "a newer barrier arrived while in-flight data was recorded"
        );
        self.drop_recording();
        true
    }

    /// Checkpoint `id`'s barrier arrived: false if it is stale (older than the pending
    /// alignment, or already seen); a pending older alignment is abandoned.
    fn newer_than_pending(&mut self, id: u64) -> bool {
        match &self.pending {
            Some((p, _)) if id < p.id => false,
            Some((p, _)) if id > p.id => {
                tracing::debug!(
                    abandoned = p.id,
                    newer = id,
                    "a newer barrier arrived during alignment"
                );
                self.got.iter_mut().for_each(|g| *g = false);
                self.pending = None;
                true
            }
            Some(_) => true,
            None => id > self.last_seen,
        }
    }

    /// An unaligned checkpoint's barrier arrived on `ch` as a priority event, ahead of
    /// `overtaken` unprocessed messages of the channel (besides those held here, which it
    /// overtook too). The first one of a checkpoint snapshots at once; each channel's
    /// in-flight data is complete once its barrier came and the messages it overtook were
    /// processed ([`Self::consumed`]).
    pub fn on_priority_barrier(
        &mut self,
        ch: usize,
        b: CheckpointBarrier,
        overtaken: u32,
        partial: &dyn Fn(usize) -> Vec<u8>,
    ) -> Option<BarrierAction> {
        if ch >= self.got.len() || self.aborted.contains(&b.id) {
            return None;
        }
        let overtaken = overtaken.saturating_add(self.held[ch].len() as u32);
        if let Some((id, _)) = &self.recording {
            if b.id == *id {
                return self.overtaken_on(ch, overtaken);
            }
            if !self.newer_than_recording(b.id) {
                return None;
            }
        }
        if !self.newer_than_pending(b.id) {
            return None;
        }
        // The first barrier of `b`: snapshot now. (A pending aligned checkpoint of the same
        // id does not exist: its barriers would be in-band.)
        self.last_seen = b.id;
        self.last_alignment_ms = 0;
        self.pending = None;
        self.got.iter_mut().for_each(|g| *g = false);
        let others_ended = (0..self.ended.len()).all(|c| c == ch || self.ended[c]);
        if overtaken == 0 && others_ended {
            // Nothing is in flight: an aligned snapshot.
            return Some(BarrierAction::Snapshot(b));
        }
        let action = self.go_unaligned(b, partial);
        // Nothing that comes from here on completes the recording at once: `ch` either has
        // overtaken messages or, if none, another channel still records.
        self.overtaken_on(ch, overtaken);
        Some(action)
    }

    /// `ch`'s barrier of the recorded checkpoint came ahead of `overtaken` messages.
    fn overtaken_on(&mut self, ch: usize, overtaken: u32) -> Option<BarrierAction> {
        let (_, r) = self.recording.as_mut()?;
        let ChannelRecording::UntilBarrier(data) = &mut r[ch] else {
            return None;
        };
        if overtaken == 0 {
            self.finish_channel(ch);
            return self.finish_recording();
        }
        let data = std::mem::take(data);
        r[ch] = ChannelRecording::Overtaken {
            data,
            remaining: overtaken,
        };
        self.counting += 1;
        None
    }

    /// If an aligned checkpoint has waited longer than the aligned timeout, switches it to
    /// unaligned (call it regularly).
    pub fn check_timeout(&mut self, partial: &dyn Fn(usize) -> Vec<u8>) -> Option<BarrierAction> {
        let timeout = self.aligned_timeout?;
        if !self.unaligned {
            return None;
        }
        let (b, started) = self.pending.as_ref()?;
        if b.kind != SnapshotKind::Checkpoint || started.elapsed() < timeout {
            return None;
        }
        let b = b.clone();
        self.last_alignment_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(
            checkpoint = b.id,
            "alignment timed out; switching to an unaligned checkpoint"
        );
        let action = self.go_unaligned(b, partial);
        self.got.iter_mut().for_each(|g| *g = false);
        Some(action)
    }

    /// When the pending alignment times out, if it can (savepoints are always aligned).
    pub fn timeout_at(&self) -> Option<Instant> {
        let timeout = self.aligned_timeout?;
        if !self.unaligned {
            return None;
        }
        match &self.pending {
            Some((b, s)) if b.kind == SnapshotKind::Checkpoint => Some(*s + timeout),
            _ => None,
        }
    }

    /// Channel `ch` ended; it no longer holds back a pending checkpoint.
    pub fn on_end(&mut self, ch: usize) -> Option<BarrierAction> {
        self.ended[ch] = true;
        if self.recording.is_some() {
            self.finish_channel(ch);
            return self.finish_recording();
        }
        if self.pending.is_some() && self.all_arrived() {
            return self.reset().map(BarrierAction::Snapshot);
        }
        None
    }

    /// The coordinator aborted checkpoint `id`: stop aligning or recording it, and ignore
    /// its barriers from now on. Other checkpoints go on.
    pub fn abort(&mut self, id: u64) {
        if matches!(&self.pending, Some((p, _)) if p.id == id) {
            self.pending = None;
            self.got.iter_mut().for_each(|g| *g = false);
        }
        if matches!(&self.recording, Some((r, _)) if *r == id) {
            self.drop_recording();
        }
        self.aborted.insert(id);
        // Ids far below what this task has seen cannot come back.
        let keep_from = self.last_seen.saturating_sub(64);
        self.aborted = self.aborted.split_off(&keep_from);
    }

    /// True if the JobMaster aborted checkpoint `id`.
    pub fn is_aborted(&self, id: u64) -> bool {
        self.aborted.contains(&id)
    }

    /// The task was restored from checkpoint `id`: barriers up to it are stale (they may be
    /// in restored in-flight data).
    pub fn restored_from(&mut self, id: u64) {
        self.last_seen = self.last_seen.max(id);
    }

    /// Milliseconds the last completed alignment took.
    pub fn last_alignment_ms(&self) -> u64 {
        self.last_alignment_ms
    }

    /// True if every channel ended and nothing is held back.
    pub fn all_ended(&self) -> bool {
        self.held_total == 0 && self.ended.iter().all(|e| *e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier(id: u64) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            timestamp: 0,
            kind: SnapshotKind::Checkpoint,
            target: String::new(),
            unaligned: false,
        }
    }

    fn end() -> ChannelMessage {
        ChannelMessage::Event(ChannelEvent::EndOfPartition)
    }

    fn none(_: usize) -> Vec<u8> {
        Vec::new()
    }

    fn snap(id: u64) -> Option<BarrierAction> {
        Some(BarrierAction::Snapshot(barrier(id)))
    }

    #[test]
    fn exactly_once_blocks_until_aligned_and_keeps_order() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(0, barrier(1), 0, &none), None);
        assert!(a.holds(0) && !a.holds(1));
        a.hold(0, end());
        assert_eq!(a.on_end(2), None, "channel 1 still missing");
        assert!(a.next_held().is_none(), "channel 0 is blocked");
        assert_eq!(a.on_barrier(1, barrier(1), 0, &none), snap(1));
        assert!(!a.holds(1));
        assert!(a.holds(0), "held messages of channel 0 go first");
        let (ch, _) = a.next_held().unwrap();
        assert_eq!(ch, 0);
        assert!(!a.holds(0));
        // A stale barrier is ignored.
        assert_eq!(a.on_barrier(1, barrier(1), 0, &none), None);
        assert!(!a.holds(1));
    }

    #[test]
    fn newer_barrier_abandons_older_and_abort_releases() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        a.on_barrier(0, barrier(1), 0, &none);
        assert_eq!(a.on_barrier(1, barrier(2), 0, &none), None);
        assert!(!a.holds(0), "checkpoint 1 was abandoned");
        assert!(a.holds(1));
        a.abort(2);
        assert!(!a.holds(1));
        assert_eq!(
            a.on_barrier(0, barrier(2), 0, &none),
            None,
            "aborted ids are stale"
        );
    }

    #[test]
    fn at_least_once_never_blocks() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::AtLeastOnce);
        assert_eq!(a.on_barrier(0, barrier(1), 0, &none), None);
        assert!(!a.holds(0));
        assert_eq!(a.on_barrier(1, barrier(1), 0, &none), snap(1));
    }

    fn unaligned(timeout_ms: u64) -> BarrierAlignment {
        BarrierAlignment {
            mode: CheckpointingMode::ExactlyOnce,
            unaligned: true,
            aligned_timeout_ms: timeout_ms,
        }
    }

    #[test]
    fn unaligned_snapshots_at_once_and_records_in_flight_data() {
        let mut a = BarrierAligner::new(3, unaligned(0));
        let partial = |ch: usize| if ch == 1 { vec![9] } else { Vec::new() };
        assert_eq!(
            a.on_barrier(0, barrier(1), 0, &partial),
            Some(BarrierAction::SnapshotUnaligned(barrier(1)))
        );
        assert!(!a.holds(0), "nothing is blocked");
        assert!(!a.recording(0) && a.recording(1) && a.recording(2));
        a.record(1, &[1, 2, 3, 7, 7]);
        a.record(2, &[4]);
        assert_eq!(a.on_end(2), None);
        // Channel 1's barrier frame (2 bytes here) ends its recording.
        assert_eq!(
            a.on_barrier(1, barrier(1), 2, &partial),
            Some(BarrierAction::InFlightComplete(
                1,
                vec![(2, vec![4]), (1, vec![9, 1, 2, 3])]
            ))
        );
        assert!(!a.recording(1));
    }

    #[test]
    fn aligned_timeout_switches_to_unaligned() {
        let mut a = BarrierAligner::new(2, unaligned(1));
        assert_eq!(a.on_barrier(0, barrier(1), 0, &none), None);
        assert!(a.holds(0), "aligned first");
        a.hold(0, ChannelMessage::Event(ChannelEvent::EndOfPartition));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            a.check_timeout(&none),
            Some(BarrierAction::SnapshotUnaligned(barrier(1)))
        );
        assert!(
            a.next_held().is_some(),
            "held data is released after the switch"
        );
        assert!(a.recording(1));
        a.record(1, &[5]);
        assert_eq!(
            a.on_barrier(1, barrier(1), 0, &none),
            Some(BarrierAction::InFlightComplete(1, vec![(1, vec![5])]))
        );
    }

    fn priority(id: u64) -> CheckpointBarrier {
        CheckpointBarrier {
            unaligned: true,
            ..barrier(id)
        }
    }

    #[test]
    fn a_priority_barrier_snapshots_at_once_and_records_what_it_overtook() {
        let mut a = BarrierAligner::new(2, unaligned(0));
        let partial = |ch: usize| if ch == 0 { vec![7] } else { Vec::new() };
        // Channel 0's barrier overtook two messages (one of them held here first).
        a.preload(0, vec![1]);
        assert_eq!(
            a.on_priority_barrier(0, priority(1), 1, &partial),
            Some(BarrierAction::SnapshotUnaligned(priority(1)))
        );
        assert!(a.recording(0) && a.recording(1));
        // The held message and one more of channel 0 are the overtaken ones.
        let (ch, _) = a.next_held().unwrap();
        assert_eq!(ch, 0);
        a.record(0, &[1]);
        assert_eq!(a.consumed(0), None);
        a.record(0, &[2, 3]);
        assert_eq!(
            a.consumed(0),
            None,
            "channel 1 has not delivered its barrier"
        );
        assert!(
            !a.recording(0),
            "what follows the overtaken messages is not recorded"
        );
        assert_eq!(a.consumed(0), None);
        a.record(1, &[4]);
        assert_eq!(a.consumed(1), None);
        // Channel 1's barrier overtook nothing: the checkpoint's data is complete.
        assert_eq!(
            a.on_priority_barrier(1, priority(1), 0, &partial),
            Some(BarrierAction::InFlightComplete(
                1,
                vec![(0, vec![7, 1, 2, 3]), (1, vec![4])]
            ))
        );
        assert!(!a.recording(1));
        assert_eq!(
            a.on_priority_barrier(1, priority(1), 0, &partial),
            None,
            "stale"
        );
    }

    #[test]
    fn a_priority_barrier_with_nothing_in_flight_is_an_aligned_snapshot() {
        let mut a = BarrierAligner::new(2, unaligned(0));
        assert_eq!(a.on_end(1), None);
        assert_eq!(
            a.on_priority_barrier(0, priority(4), 0, &none),
            Some(BarrierAction::Snapshot(priority(4)))
        );
        assert!(!a.recording(0));
    }

    #[test]
    fn the_last_overtaken_message_or_the_end_completes_a_channel() {
        let mut a = BarrierAligner::new(2, unaligned(0));
        assert_eq!(
            a.on_priority_barrier(1, priority(2), 3, &none),
            Some(BarrierAction::SnapshotUnaligned(priority(2)))
        );
        assert_eq!(a.on_priority_barrier(0, priority(2), 2, &none), None);
        a.record(0, &[1]);
        assert_eq!(a.consumed(0), None);
        a.record(0, &[2]);
        assert_eq!(a.consumed(0), None);
        a.record(1, &[9]);
        assert_eq!(a.consumed(1), None);
        // Channel 1 ends before its last overtaken message was counted.
        assert_eq!(
            a.on_end(1),
            Some(BarrierAction::InFlightComplete(
                2,
                vec![(0, vec![1, 2]), (1, vec![9])]
            ))
        );
    }

    #[test]
    fn a_newer_priority_barrier_abandons_the_recording_and_abort_forgets_it() {
        let mut a = BarrierAligner::new(2, unaligned(0));
        a.on_priority_barrier(0, priority(1), 5, &none);
        a.record(0, &[1]);
        assert_eq!(
            a.on_priority_barrier(1, priority(2), 1, &none),
            Some(BarrierAction::SnapshotUnaligned(priority(2))),
            "checkpoint 1 can no longer complete"
        );
        assert!(a.recording(0), "channel 0 records for checkpoint 2 now");
        a.abort(2);
        assert!(!a.recording(0) && !a.recording(1));
        assert_eq!(a.consumed(1), None);
        assert_eq!(a.on_priority_barrier(0, priority(2), 0, &none), None);
        assert_eq!(a.on_priority_barrier(0, priority(1), 0, &none), None);
    }
}
