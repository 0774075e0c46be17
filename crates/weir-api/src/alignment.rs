//! Watermark alignment across sources (Flink's `WatermarkStrategy.withWatermarkAlignment`):
//! the source subtasks of one alignment group report their watermarks, and a subtask whose
//! watermark is more than the group's maximum drift ahead of the group's lowest watermark
//! stops reading until the others catch up. So a fast source (a backlog being replayed, a
//! busy partition) does not run far ahead of a slow one and make the operators downstream
//! buffer everything in between (join buffers, window contents).
//!
//! Each aligned source gets two small pieces: its reader is wrapped in an [`AlignedReader`],
//! which skips polling while its subtask is ahead, and a [`WatermarkReporter`] chained
//! right after the source's watermarks reports each watermark to the group. A paused
//! reader tells the task that nothing is available, so the task stays responsive
//! (checkpoints, timers) and looks again shortly after. A subtask whose input ended, or that
//! went idle (`with_idleness`), leaves the group, so it holds nobody back (an idle one comes
//! back with its next watermark); a subtask that has reported no watermark yet does not
//! count.
//!
//! Within a process the group is shared memory, and a reader sees the others' watermarks at
//! once. On a cluster of processes each worker also sends its members' watermarks to the
//! JobMaster every [`SYNC_INTERVAL`](weir_cluster::process::worker) and learns the lowest
//! watermark of the members in other workers, which counts as one more member (as Flink's
//! source coordinators in the JobMaster announce the allowed maximum every update
//! interval). Departure: on the embedded mini-cluster nothing goes through the JobMaster,
//! since every member is in the one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weir_runtime::checkpoint::CheckpointNotice;
use weir_runtime::operator::{OneInputOperator, Outputs};
use weir_runtime::source::{PollStatus, Redistribution, SourceOutput, SourceReader};
use weir_runtime::{OutputControl, Result, StreamRecord, Watermark, WatermarkStatus};

/// Which reader of a group: the source node and its subtask.
pub(crate) type Member = (u32, u32);

/// The watermarks of one alignment group's source subtasks.
#[derive(Debug)]
pub struct AlignmentGroup {
    name: String,
    watermarks: Mutex<HashMap<Member, i64>>,
    /// Sources added to the group so far, numbering them.
    sources: std::sync::atomic::AtomicU32,
    /// The lowest watermark of the group's members in other processes, as the JobMaster
    /// last said (`None`: there are none, or none reported yet).
    remote_low: Mutex<Option<i64>>,
}

impl AlignmentGroup {
    /// A group called `name`.
    pub(crate) fn new(name: &str) -> Arc<Self> {
        Arc::new(AlignmentGroup {
            name: name.to_string(),
            watermarks: Mutex::new(HashMap::new()),
            sources: std::sync::atomic::AtomicU32::new(0),
            remote_low: Mutex::new(None),
        })
    }

    /// A number for a source joining the group, naming its members with their subtasks.
    pub(crate) fn next_source(&self) -> u32 {
        self.sources
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Member, i64>> {
        self.watermarks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `member`'s watermark advanced to `wm`.
    pub(crate) fn report(&self, member: Member, wm: i64) {
        self.lock().insert(member, wm);
    }

    /// `member`'s input ended: it holds nobody back any more.
    pub(crate) fn leave(&self, member: Member) {
        self.lock().remove(&member);
    }

    /// The highest watermark a member allowed `max_drift_ms` may have and still read: the
    /// group's lowest plus the drift (`None` while no member has reported).
    pub fn max_allowed_watermark(&self, max_drift_ms: i64) -> Option<i64> {
        allowed(&self.lock(), self.remote_low(), max_drift_ms)
    }

    fn remote_low(&self) -> Option<i64> {
        *self.remote_low.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if `member`, allowed `max_drift_ms`, is too far ahead to read now.
    pub(crate) fn must_wait(&self, member: Member, max_drift_ms: i64) -> bool {
        let remote = self.remote_low();
        let w = self.lock();
        match (w.get(&member), allowed(&w, remote, max_drift_ms)) {
            (Some(mine), Some(max)) => *mine > max,
            _ => false,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The highest watermark a member may have and still read, given the watermarks of the
/// group's members here and the lowest one elsewhere.
fn allowed(
    watermarks: &HashMap<Member, i64>,
    remote: Option<i64>,
    max_drift_ms: i64,
) -> Option<i64> {
    let low = watermarks.values().copied().chain(remote).min()?;
    Some(low.saturating_add(max_drift_ms))
}

impl weir_runtime::deploy::AlignmentSync for AlignmentGroup {
    fn name(&self) -> &str {
        &self.name
    }

    fn local_watermarks(&self) -> Vec<((u32, u32), i64)> {
        self.lock().iter().map(|(m, w)| (*m, *w)).collect()
    }

    fn set_remote_low(&self, low: Option<i64>) {
        *self.remote_low.lock().unwrap_or_else(|p| p.into_inner()) = low;
    }
}

/// A source reader that does not read while its subtask is ahead of its group.
pub(crate) struct AlignedReader<T> {
    pub inner: Box<dyn SourceReader<T>>,
    pub group: Arc<AlignmentGroup>,
    pub member: Member,
    pub max_drift_ms: i64,
}

impl<T> SourceReader<T> for AlignedReader<T> {
    fn poll_next(&mut self, output: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        if self.group.must_wait(self.member, self.max_drift_ms) {
            return Ok(PollStatus::NothingAvailable);
        }
        let status = self.inner.poll_next(output)?;
        if status == PollStatus::Finished {
            self.group.leave(self.member);
        }
        Ok(status)
    }

    fn close(&mut self) -> Result<()> {
        self.group.leave(self.member);
        self.inner.close()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>> {
        self.inner.snapshot_state(checkpoint_id)
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<()> {
        self.inner.notify_checkpoint(notice)
    }

    fn split_redistribution(&self) -> Redistribution {
        self.inner.split_redistribution()
    }
}

/// Passes records on and reports each watermark of its source subtask to the group.
pub(crate) struct WatermarkReporter {
    pub group: Arc<AlignmentGroup>,
    pub member: Member,
}

impl<T: Send> OneInputOperator<T, T> for WatermarkReporter {
    #[inline]
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<T>) -> Result<()> {
        out.collect(r)
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<T>>,
        out: &mut Outputs<T>,
    ) -> Result<()> {
        out.collect_batch(batch)
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<T>) -> Result<()> {
        if wm == Watermark::MAX {
            self.group.leave(self.member);
        } else {
            self.group.report(self.member, wm.0);
        }
        out.emit_watermark(wm)
    }

    /// An idle source holds nobody back (as in Flink): it leaves the group until its next
    /// watermark reports it again.
    fn process_watermark_status(
        &mut self,
        status: WatermarkStatus,
        out: &mut Outputs<T>,
    ) -> Result<()> {
        if status == WatermarkStatus::Idle {
            self.group.leave(self.member);
        }
        out.emit_watermark_status(status)
    }

    fn finish(&mut self, _: &mut Outputs<T>) -> Result<()> {
        self.group.leave(self.member);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_ahead_waits_until_the_slowest_catches_up() {
        let g = AlignmentGroup::new("g");
        assert_eq!(g.max_allowed_watermark(100), None);
        g.report((1, 0), 1_000);
        assert!(!g.must_wait((1, 0), 100), "alone in the group");
        g.report((2, 0), 850);
        assert!(g.must_wait((1, 0), 100));
        assert!(
            !g.must_wait((1, 0), 200),
            "a source allowed more drift reads"
        );
        assert!(!g.must_wait((2, 0), 100));
        assert_eq!(g.max_allowed_watermark(100), Some(950));
        g.report((2, 0), 900);
        assert!(
            !g.must_wait((1, 0), 100),
            "exactly the drift ahead may read"
        );
        g.report((2, 0), 880);
        g.leave((2, 0));
        assert!(
            !g.must_wait((1, 0), 100),
            "a finished member holds nobody back"
        );
        assert!(
            !g.must_wait((3, 0), 100),
            "a member without a watermark reads"
        );
    }
}
