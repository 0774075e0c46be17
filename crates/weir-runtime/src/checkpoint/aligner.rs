//! Barrier alignment over a task's input channels (Flink's barrier handlers).
//!
//! Exactly-once: once a channel delivered the barrier of the pending checkpoint, what comes
//! after it on that channel is held back until every other channel delivered it too (or
//! ended); then the task snapshots and the held messages are processed, in their order.
//! At-least-once: barriers are only counted; nothing is held back, so records after a
//! barrier may be part of the state before the snapshot, and are replayed after a recovery.
//!
//! A barrier of a newer checkpoint while an older one is still aligning abandons the older
//! one (it can no longer complete; the coordinator expires it). Barriers of checkpoints
//! already taken or abandoned are ignored.
//!
//! Held-back data is copied out of the producer's buffer, which goes back to its pool at
//! once. Keeping the buffers would let a blocked channel stall its producer, and through a
//! shared upstream task the very input whose barrier the alignment waits for: a deadlock.
//! (Flink avoids it by letting barriers overtake a backpressured output; Weir's barriers
//! travel in the buffers, so the aligner releases them instead, and memory grows with the
//! data that arrives during an alignment.)

use crate::checkpoint::CheckpointBarrier;
use crate::inbox::{ChannelEvent, ChannelMessage};
use std::collections::VecDeque;
use std::time::Instant;
use weir_core::CheckpointingMode;

/// A message held back by alignment, owned by the consumer.
pub enum Held {
    /// The bytes of a buffer.
    Data(Vec<u8>),
    /// The channel ended (`true`: it stopped after a savepoint).
    End(bool),
}

/// Alignment state of one task's input channels.
pub struct BarrierAligner {
    exactly_once: bool,
    got: Vec<bool>,
    ended: Vec<bool>,
    pending: Option<(CheckpointBarrier, Instant)>,
    last_seen: u64,
    held: VecDeque<(usize, Held)>,
    held_per_channel: Vec<usize>,
    last_alignment_ms: u64,
}

impl BarrierAligner {
    /// An aligner for `channels` input channels.
    pub fn new(channels: usize, mode: CheckpointingMode) -> Self {
        BarrierAligner {
            exactly_once: mode == CheckpointingMode::ExactlyOnce,
            got: vec![false; channels],
            ended: vec![false; channels],
            pending: None,
            last_seen: 0,
            held: VecDeque::new(),
            held_per_channel: vec![0; channels],
            last_alignment_ms: 0,
        }
    }

    /// True if a message on `ch` must wait: the channel is blocked by alignment, or older
    /// messages of it are still held.
    #[inline]
    pub fn holds(&self, ch: usize) -> bool {
        (self.exactly_once && self.got[ch]) || self.held_per_channel[ch] > 0
    }

    /// Keeps a message of `ch` for later; a buffer's bytes are copied and the buffer is
    /// released to its producer.
    pub fn hold(&mut self, ch: usize, msg: ChannelMessage) {
        let held = match msg {
            ChannelMessage::Buffer(buf) => Held::Data(buf.to_vec()),
            ChannelMessage::Event(ChannelEvent::EndOfPartition) => Held::End(false),
            ChannelMessage::Event(ChannelEvent::Stopped) => Held::End(true),
        };
        self.held_per_channel[ch] += 1;
        self.held.push_back((ch, held));
    }

    /// The oldest held message whose channel is not blocked, to be processed now.
    pub fn next_held(&mut self) -> Option<(usize, Held)> {
        let i = self
            .held
            .iter()
            .position(|(ch, _)| !(self.exactly_once && self.got[*ch]))?;
        let (ch, msg) = self.held.remove(i)?;
        self.held_per_channel[ch] -= 1;
        // Later messages of the same channel stay behind this one: they are only eligible
        // once it was processed, which `holds` guarantees through the per-channel count.
        Some((ch, msg))
    }

    /// True if messages are held back.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    fn complete_if_aligned(&mut self) -> Option<CheckpointBarrier> {
        let aligned = self.got.iter().zip(&self.ended).all(|(g, e)| *g || *e);
        if !aligned {
            return None;
        }
        let (b, started) = self.pending.take()?;
        self.last_alignment_ms = started.elapsed().as_millis() as u64;
        self.got.iter_mut().for_each(|g| *g = false);
        Some(b)
    }

    /// A barrier arrived on `ch`. Returns the barrier when the checkpoint is due: it arrived
    /// on every channel that has not ended.
    pub fn on_barrier(&mut self, ch: usize, b: CheckpointBarrier) -> Option<CheckpointBarrier> {
        match &self.pending {
            Some((p, _)) if b.id < p.id => return None,
            Some((p, _)) if b.id > p.id => {
                tracing::debug!(
                    abandoned = p.id,
                    newer = b.id,
                    "a newer barrier arrived during alignment"
                );
                self.got.iter_mut().for_each(|g| *g = false);
                self.pending = None;
            }
            Some(_) => {}
            None if b.id <= self.last_seen => return None,
            None => {}
        }
        if self.pending.is_none() {
            self.last_seen = b.id;
            self.pending = Some((b, Instant::now()));
        }
        self.got[ch] = true;
        self.complete_if_aligned()
    }

    /// Channel `ch` ended; it no longer holds back a pending checkpoint.
    pub fn on_end(&mut self, ch: usize) -> Option<CheckpointBarrier> {
        self.ended[ch] = true;
        self.complete_if_aligned()
    }

    /// The coordinator aborted checkpoint `id`: stop aligning it.
    pub fn abort(&mut self, id: u64) {
        if matches!(&self.pending, Some((p, _)) if p.id <= id) {
            self.pending = None;
            self.got.iter_mut().for_each(|g| *g = false);
        }
        self.last_seen = self.last_seen.max(id);
    }

    /// Milliseconds the last completed alignment took.
    pub fn last_alignment_ms(&self) -> u64 {
        self.last_alignment_ms
    }

    /// True if every channel ended and nothing is held back.
    pub fn all_ended(&self) -> bool {
        self.held.is_empty() && self.ended.iter().all(|e| *e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_state::SnapshotKind;

    fn barrier(id: u64) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            timestamp: 0,
            kind: SnapshotKind::Checkpoint,
            target: String::new(),
        }
    }

    fn end() -> ChannelMessage {
        ChannelMessage::Event(ChannelEvent::EndOfPartition)
    }

    #[test]
    fn exactly_once_blocks_until_aligned_and_keeps_order() {
        let mut a = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(a.on_barrier(0, barrier(1)), None);
        assert!(a.holds(0) && !a.holds(1));
        a.hold(0, end());
        assert_eq!(a.on_end(2), None, "channel 1 still missing");
        assert!(a.next_held().is_none(), "channel 0 is blocked");
        assert_eq!(a.on_barrier(1, barrier(1)), Some(barrier(1)));
        assert!(!a.holds(1));
        assert!(a.holds(0), "held messages of channel 0 go first");
        let (ch, _) = a.next_held().unwrap();
        assert_eq!(ch, 0);
        assert!(!a.holds(0));
        // A stale barrier is ignored.
        assert_eq!(a.on_barrier(1, barrier(1)), None);
        assert!(!a.holds(1));
    }

    #[test]
    fn newer_barrier_abandons_older_and_abort_releases() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        a.on_barrier(0, barrier(1));
        assert_eq!(a.on_barrier(1, barrier(2)), None);
        assert!(!a.holds(0), "checkpoint 1 was abandoned");
        assert!(a.holds(1));
        a.abort(2);
        assert!(!a.holds(1));
        assert_eq!(a.on_barrier(0, barrier(2)), None, "aborted ids are stale");
    }

    #[test]
    fn at_least_once_never_blocks() {
        let mut a = BarrierAligner::new(2, CheckpointingMode::AtLeastOnce);
        assert_eq!(a.on_barrier(0, barrier(1)), None);
        assert!(!a.holds(0));
        assert_eq!(a.on_barrier(1, barrier(1)), Some(barrier(1)));
    }
}
