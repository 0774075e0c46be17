//! The mailbox loop of a source task: its default action polls the source; between polls it
//! runs mails, checkpoint triggers and notices, timers and flushes.

use super::housekeeping::Housekeeping;
use super::snapshots::Snapshots;
use super::{run_mails, IDLE_SOURCE_WAIT};
use crate::checkpoint::CheckpointNotice;
use crate::error::Result;
use crate::head::SourceChainHead;
use crate::inbox::{Drained, TaskControl, TaskInbox};
use crate::source::PollStatus;
use std::time::Instant;

/// Where a source task is in a stop-with-savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Emitting records.
    Running,
    /// Took savepoint `id` and emits nothing more (no records, no timers); waits for its
    /// outcome: completed, the source stops; aborted, it goes on.
    Stopping(u64),
    /// The savepoint completed: the source stops now.
    Stopped,
}

impl Phase {
    /// The phase after checkpoint notice `n`.
    fn after(self, n: CheckpointNotice) -> Phase {
        match (self, n) {
            (Phase::Stopping(s), CheckpointNotice::Complete(id)) if id >= s => Phase::Stopped,
            (Phase::Stopping(s), CheckpointNotice::Aborted(id)) if id == s => Phase::Running,
            (p, _) => p,
        }
    }
}

/// A running source task's loop.
pub(super) struct SourceLoop<'a> {
    pub(super) src: &'a mut Box<dyn SourceChainHead>,
    pub(super) inbox: &'a TaskInbox,
    pub(super) snapshots: &'a Snapshots,
    pub(super) housekeeping: Housekeeping,
    pub(super) drained: Drained,
    phase: Phase,
}

impl<'a> SourceLoop<'a> {
    /// The loop of `src`, fed by `inbox`.
    pub(super) fn new(
        src: &'a mut Box<dyn SourceChainHead>,
        inbox: &'a TaskInbox,
        snapshots: &'a Snapshots,
        housekeeping: Housekeeping,
    ) -> Self {
        SourceLoop {
            src,
            inbox,
            snapshots,
            housekeeping,
            drained: Drained::default(),
            phase: Phase::Running,
        }
    }

    /// Runs until the source ends (or stops after a savepoint).
    pub(super) fn run(mut self) -> Result<()> {
        loop {
            if self.inbox.has_mail() || self.phase != Phase::Running {
                self.mailbox()?;
                match self.phase {
                    Phase::Running => {}
                    Phase::Stopping(_) => {
                        // Nothing may be emitted after the savepoint's barrier: no timers,
                        // only the flush of what was written before it.
                        self.housekeeping.flush_if_due(self.src)?;
                        continue;
                    }
                    Phase::Stopped => {
                        tracing::info!(task = %self.snapshots.name, "stopped after a savepoint");
                        return self.src.stop();
                    }
                }
            }
            let status = self.src.poll()?;
            if status == PollStatus::NothingAvailable {
                let cap = Instant::now() + IDLE_SOURCE_WAIT;
                let until = self.housekeeping.wake_at(Some(cap));
                self.inbox.drain(until, &mut self.drained);
                run_mails(&mut self.drained)?;
            }
            self.controls()?;
            if self.phase != Phase::Running {
                continue;
            }
            if status == PollStatus::Finished {
                return self.src.end_of_input();
            }
            self.housekeeping.run(self.src)?;
        }
    }

    /// Runs mails and control requests. While stopping, waits for them until the next
    /// flush (nothing is polled).
    fn mailbox(&mut self) -> Result<()> {
        let until = match self.phase {
            Phase::Running => Some(Instant::now()),
            Phase::Stopping(_) | Phase::Stopped => self.housekeeping.next_flush(),
        };
        if self.phase != Phase::Stopped {
            self.inbox.drain(until, &mut self.drained);
            run_mails(&mut self.drained)?;
        }
        self.controls()
    }

    /// Checkpoint triggers and notices.
    fn controls(&mut self) -> Result<()> {
        while let Some(c) = self.drained.controls.pop_front() {
            match c {
                TaskControl::TriggerCheckpoint(b) => {
                    let src = &mut *self.src;
                    self.snapshots
                        .take(&b, 0, |snap| src.checkpoint(&b, snap))?;
                }
                TaskControl::StopWithSavepoint(b) => {
                    let src = &mut *self.src;
                    self.snapshots
                        .take(&b, 0, |snap| src.checkpoint(&b, snap))?;
                    self.phase = Phase::Stopping(b.id);
                }
                TaskControl::Notify(n) => {
                    self.src.notify_checkpoint(n)?;
                    self.phase = self.phase.after(n);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_ends_with_its_savepoint_and_resumes_if_it_is_aborted() {
        let p = Phase::Stopping(4);
        assert_eq!(
            p.after(CheckpointNotice::Complete(3)),
            p,
            "an older checkpoint"
        );
        assert_eq!(p.after(CheckpointNotice::Complete(4)), Phase::Stopped);
        assert_eq!(p.after(CheckpointNotice::Aborted(3)), p);
        assert_eq!(p.after(CheckpointNotice::Aborted(4)), Phase::Running);
        assert_eq!(
            Phase::Running.after(CheckpointNotice::Complete(9)),
            Phase::Running
        );
    }
}
