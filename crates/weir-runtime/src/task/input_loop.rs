//! The mailbox loop of a task with inputs: its default action processes the messages that
//! arrived on its input channels; between them it runs mails, checkpoint notices, the
//! actions barrier alignment asks for, timers and flushes.
//!
//! Priority barriers (unaligned checkpoints) are looked for between any two messages: one
//! that arrives while the task works through what it drained overtakes what is left of it,
//! so the task adds the messages of the barrier's channel still queued here to what the
//! barrier overtook in the inbox (see [`crate::inbox`]).

use super::housekeeping::Housekeeping;
use super::run_mails;
use super::snapshots::Snapshots;
use crate::checkpoint::{BarrierAction, CheckpointBarrier};
use crate::error::Result;
use crate::head::InputChainHead;
use crate::inbox::{Drained, TaskControl, TaskInbox};
use std::time::Instant;
use weir_state::TaskStateSnapshot;

/// An unaligned checkpoint whose snapshot is taken and whose in-flight data is still being
/// recorded; stored once the data is complete.
struct UnalignedSnapshot {
    barrier: CheckpointBarrier,
    snapshot: TaskStateSnapshot,
    start: Instant,
    alignment_ms: u64,
}

/// A running input task's loop.
pub(super) struct InputLoop<'a> {
    head: &'a mut Box<dyn InputChainHead>,
    inbox: &'a TaskInbox,
    snapshots: &'a Snapshots,
    housekeeping: Housekeeping,
    drained: Drained,
    in_flight: Option<UnalignedSnapshot>,
}

impl<'a> InputLoop<'a> {
    /// The loop of `head`, fed by `inbox`.
    pub(super) fn new(
        head: &'a mut Box<dyn InputChainHead>,
        inbox: &'a TaskInbox,
        snapshots: &'a Snapshots,
        housekeeping: Housekeeping,
    ) -> Self {
        InputLoop {
            head,
            inbox,
            snapshots,
            housekeeping,
            drained: Drained::default(),
            in_flight: None,
        }
    }

    /// Runs until every input channel ended and the chain finished.
    pub(super) fn run(mut self) -> Result<()> {
        loop {
            let until = self.housekeeping.wake_at(self.head.alignment_timeout_at());
            self.inbox.drain(until, &mut self.drained);
            run_mails(&mut self.drained)?;
            self.controls()?;
            // Priority barriers taken with the inputs counted them already.
            self.priority_barriers(false)?;
            self.process_inputs()?;
            let timed_out = self.head.check_alignment_timeout();
            self.act(timed_out)?;
            // An aborted alignment releases what it held.
            let released = self.head.resume()?;
            self.act(released)?;
            if self.head.input_ended() {
                return self.head.end_of_input();
            }
            self.housekeeping.run(self.head)?;
        }
    }

    /// Processes the drained messages, with any priority barrier that comes meanwhile.
    fn process_inputs(&mut self) -> Result<()> {
        loop {
            if self.inbox.has_priority() {
                self.inbox.take_priority(&mut self.drained.priority);
                self.priority_barriers(true)?;
            }
            let Some((ch, msg)) = self.drained.inputs.pop_front() else {
                return Ok(());
            };
            let action = self.head.on_message(ch as usize, msg)?;
            self.act(action)?;
        }
    }

    /// Hands the taken priority barriers to the head; with `count_queued`, the messages of
    /// their channels still queued here were not counted by the inbox.
    fn priority_barriers(&mut self, count_queued: bool) -> Result<()> {
        while let Some(p) = self.drained.priority.pop_front() {
            let queued = if count_queued {
                self.drained
                    .inputs
                    .iter()
                    .filter(|(c, _)| *c == p.channel)
                    .count() as u32
            } else {
                0
            };
            let action = self.head.on_priority_barrier(
                p.channel as usize,
                p.barrier,
                p.overtaken.saturating_add(queued),
            );
            self.act(action)?;
        }
        Ok(())
    }

    /// Carries out `action`, then the actions that processing what alignment held back
    /// leads to.
    #[inline]
    fn act(&mut self, mut action: Option<BarrierAction>) -> Result<()> {
        while let Some(a) = action {
            self.carry_out(a)?;
            action = self.head.resume()?;
        }
        Ok(())
    }

    fn carry_out(&mut self, action: BarrierAction) -> Result<()> {
        match action {
            BarrierAction::Snapshot(b) => {
                let alignment_ms = self.head.last_alignment_ms();
                let head = &mut *self.head;
                self.snapshots
                    .take(&b, alignment_ms, |snap| head.checkpoint(&b, snap))
            }
            BarrierAction::SnapshotUnaligned(b) => {
                self.snapshots.begin(b.id);
                let start = Instant::now();
                let mut snapshot = TaskStateSnapshot::default();
                self.head.checkpoint(&b, &mut snapshot)?;
                self.in_flight = Some(UnalignedSnapshot {
                    barrier: b,
                    snapshot,
                    start,
                    alignment_ms: self.head.last_alignment_ms(),
                });
                Ok(())
            }
            BarrierAction::InFlightComplete(id, data) => match self.in_flight.take() {
                Some(mut u) if u.barrier.id == id => {
                    self.snapshots.add_in_flight(
                        self.head.num_channels(),
                        data,
                        &mut u.snapshot,
                    )?;
                    self.snapshots
                        .store(&u.barrier, u.alignment_ms, u.start, u.snapshot);
                    Ok(())
                }
                other => {
                    self.in_flight = other;
                    Ok(())
                }
            },
        }
    }

    /// Checkpoint notices (an aborted unaligned checkpoint is forgotten); a task with
    /// inputs takes its checkpoints from barriers, so triggers are ignored.
    fn controls(&mut self) -> Result<()> {
        while let Some(c) = self.drained.controls.pop_front() {
            match c {
                TaskControl::Notify(n) => self.head.notify_checkpoint(n)?,
                TaskControl::TriggerCheckpoint(b) | TaskControl::StopWithSavepoint(b) => {
                    tracing::warn!(task = %self.snapshots.name, checkpoint = b.id, "a task with inputs ignores a checkpoint trigger");
                }
            }
        }
        if matches!(&self.in_flight, Some(u) if self.head.is_aborted(u.barrier.id)) {
            self.in_flight = None;
        }
        Ok(())
    }
}
