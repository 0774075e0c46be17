//! The runtime side of sources: a reader polled by its task's mailbox loop.
//!
//! Polling (rather than a source thread of its own) keeps everything of a task on one thread:
//! between two polls the task runs its mails, flushes buffers and, later, injects checkpoint
//! barriers.

use crate::checkpoint::CheckpointNotice;
use crate::element::WatermarkStatus;
use crate::element::{StreamRecord, Watermark};
use crate::error::{Result, RuntimeError};
use crate::operator::{batch_capacity, OutputControl, Outputs};
use crate::push::{ensure_spare, lend, push_with_spare};
pub use weir_state::operator_state::Redistribution;

/// What a poll achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// More records are ready: poll again soon.
    MoreAvailable,
    /// Nothing right now (an unbounded source waiting for data): the task may wait a little.
    NothingAvailable,
    /// The source is exhausted; the task ends its input.
    Finished,
}

/// Reads records for one source subtask.
pub trait SourceReader<T>: Send {
    /// Emits the records that are ready (a bounded batch of them) to `output`.
    fn poll_next(&mut self, output: &mut SourceOutput<'_, T>) -> Result<PollStatus>;

    /// Releases resources; called once when the task ends.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// The reader's position for a checkpoint: one element per split it reads (e.g. a file
    /// and offset, or the next index of a sequence). A restored job hands these to the new
    /// readers, split evenly if the parallelism changed, and they resume there.
    ///
    /// A reader that cannot say where it is fails the checkpoint with this default.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>> {
        Err(RuntimeError::Other(
            "this source does not record its read position, so the job cannot take checkpoints; implement SourceReader::snapshot_state".into(),
        ))
    }

    /// A checkpoint completed or was aborted.
    fn notify_checkpoint(&mut self, _notice: CheckpointNotice) -> Result<()> {
        Ok(())
    }

    /// How the split positions of [`Self::snapshot_state`] reach the readers of a restored
    /// job: split evenly (the default: each position is resumed by one reader), or every
    /// reader gets all of them ([`Redistribution::Union`]), for a reader that picks its
    /// splits by a rule of its own, e.g. a Kafka reader that owns the partitions an
    /// assignment function gives it, so that it can tell a partition some other reader
    /// resumes from one that is new.
    fn split_redistribution(&self) -> Redistribution {
        Redistribution::EvenSplit
    }
}

/// The list state under which a source's split positions are stored.
pub const SOURCE_SPLITS_STATE: &str = "source-splits";

/// Where a [`SourceReader`] emits: the first operator of the source's chain.
///
/// Records are gathered into a batch that goes down the chain when it is full, before a
/// watermark, and when the poll ends (see [`crate::operator::Output::collect_batch`]), so a
/// poll's records pass each chained operator in one call.
///
/// Invariant: `batch` always has room for one more record ([`crate::push`]), restored by
/// every method that pushes or lends the batch out, also when the chain panics.
pub struct SourceOutput<'a, T> {
    out: &'a mut Outputs<T>,
    batch: &'a mut Vec<StreamRecord<T>>,
    capacity: usize,
}

impl<'a, T: 'static> SourceOutput<'a, T> {
    /// Wraps the chain's outputs; `batch` (empty) gathers the records. Call
    /// [`Self::flush`] when the poll is over.
    pub fn new(out: &'a mut Outputs<T>, batch: &'a mut Vec<StreamRecord<T>>) -> Self {
        ensure_spare(batch);
        SourceOutput {
            out,
            batch,
            capacity: batch_capacity::<T>(),
        }
    }

    /// Emits a record without a timestamp.
    #[inline]
    pub fn collect(&mut self, value: T) -> Result<()> {
        self.push(StreamRecord::new(value))
    }

    /// Emits a record with an event timestamp ([`crate::NO_TIMESTAMP`], `i64::MIN`, emits
    /// one without a timestamp).
    #[inline]
    pub fn collect_with_timestamp(&mut self, value: T, timestamp: i64) -> Result<()> {
        self.push(StreamRecord::with_timestamp(value, timestamp))
    }

    #[inline]
    fn push(&mut self, record: StreamRecord<T>) -> Result<()> {
        // SAFETY: the struct's invariant: the batch has room for one more record.
        unsafe { push_with_spare(self.batch, record) };
        if self.batch.len() >= self.capacity {
            self.flush()
        } else {
            ensure_spare(self.batch);
            Ok(())
        }
    }

    /// Emits a watermark, after the records emitted before it.
    pub fn emit_watermark(&mut self, watermark: Watermark) -> Result<()> {
        self.flush()?;
        self.out.emit_watermark(watermark)
    }

    /// Marks the source's output idle (it holds back no watermark downstream) or active
    /// again, after the records emitted before it.
    pub fn emit_watermark_status(&mut self, status: WatermarkStatus) -> Result<()> {
        self.flush()?;
        self.out.emit_watermark_status(status)
    }

    /// Hands the gathered records down the chain.
    #[inline]
    pub fn flush(&mut self) -> Result<()> {
        // Whatever the chain does with the vector, and whether it fails or panics, the
        // batch has room again afterwards.
        let out = &mut *self.out;
        lend(self.batch, |b| out.collect_batch(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointBarrier;
    use crate::element::WatermarkStatus;
    use crate::operator::Output;
    use std::sync::{Arc, Mutex};
    use weir_state::TaskStateSnapshot;

    /// What [`TakesTheVector`] does with the batch that holds a given record.
    #[derive(Clone, Copy)]
    enum Trouble {
        Fail(u64),
        Panic(u64),
    }

    /// Takes each batch's vector away (leaving one without capacity behind), and fails or
    /// panics on the batch that holds the record of `trouble`, if any.
    struct TakesTheVector {
        seen: Arc<Mutex<Vec<u64>>>,
        trouble: Option<Trouble>,
    }

    impl OutputControl for TakesTheVector {
        fn emit_watermark(&mut self, _: Watermark) -> Result<()> {
            Ok(())
        }
        fn emit_watermark_status(&mut self, _: WatermarkStatus) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
        fn stop(&mut self) -> Result<()> {
            Ok(())
        }
        fn checkpoint(&mut self, _: &CheckpointBarrier, _: &mut TaskStateSnapshot) -> Result<()> {
            Ok(())
        }
        fn notify_checkpoint(&mut self, _: CheckpointNotice) -> Result<()> {
            Ok(())
        }
    }

    impl Output<u64> for TakesTheVector {
        fn collect(&mut self, r: StreamRecord<u64>) -> Result<()> {
            self.seen.lock().unwrap().push(r.value);
            Ok(())
        }
        fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<u64>>) -> Result<()> {
            let taken = std::mem::take(batch);
            let holds = |v: u64| taken.iter().any(|r| r.value == v);
            let trouble = self.trouble.filter(|t| match *t {
                Trouble::Fail(v) | Trouble::Panic(v) => holds(v),
            });
            self.seen
                .lock()
                .unwrap()
                .extend(taken.into_iter().map(|r| r.value));
            match trouble {
                Some(Trouble::Fail(_)) => Err(RuntimeError::Other("downstream failed".into())),
                Some(Trouble::Panic(_)) => panic!("downstream panics"),
                None => Ok(()),
            }
        }
    }

    fn outputs(trouble: Option<Trouble>) -> (Outputs<u64>, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = TakesTheVector {
            seen: seen.clone(),
            trouble,
        };
        (Outputs::new(Box::new(out), Vec::new()), seen)
    }

    #[test]
    fn records_arrive_in_order_when_the_chain_takes_the_batch_vector() {
        let (mut outs, seen) = outputs(None);
        let mut batch = Vec::new();
        let n = 5 * batch_capacity::<u64>() as u64 + 3;
        let mut out = SourceOutput::new(&mut outs, &mut batch);
        for i in 0..n {
            out.collect_with_timestamp(i, i as i64).unwrap();
            if i % 1000 == 0 {
                out.emit_watermark(Watermark(i as i64)).unwrap();
            }
        }
        out.flush().unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn pushing_after_a_caught_panic_downstream_still_works() {
        let (mut outs, seen) = outputs(Some(Trouble::Panic(3)));
        let mut batch = Vec::new();
        let cap = batch_capacity::<u64>() as u64;
        let mut out = SourceOutput::new(&mut outs, &mut batch);
        let mut panics = 0;
        for i in 0..3 * cap {
            let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| out.collect(i)));
            if pushed.is_err() {
                panics += 1;
            }
        }
        out.flush().unwrap();
        assert_eq!(panics, 1);
        assert_eq!(*seen.lock().unwrap(), (0..3 * cap).collect::<Vec<_>>());
    }

    #[test]
    fn pushing_after_a_failed_hand_over_still_works() {
        let (mut outs, seen) = outputs(Some(Trouble::Fail(3)));
        let mut batch = Vec::new();
        let cap = batch_capacity::<u64>() as u64;
        let mut out = SourceOutput::new(&mut outs, &mut batch);
        let mut errors = 0;
        for i in 0..3 * cap {
            if out.collect(i).is_err() {
                errors += 1;
            }
        }
        out.flush().unwrap();
        assert_eq!(errors, 1);
        assert_eq!(*seen.lock().unwrap(), (0..3 * cap).collect::<Vec<_>>());
    }
}

/// A reader's share of a records-per-second limit (Flink's `RateLimiterStrategy.perSecond`
/// divided between the subtasks): how many records it may emit now. Allowance older than
/// a second is forgotten, so a reader that was held back (backpressure, a slow checkpoint)
/// catches up by at most a second's worth instead of bursting.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_second: f64,
    start: std::time::Instant,
    emitted: u64,
}

impl RateLimiter {
    /// A limit of `per_second` records per second (above 0), starting now.
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            per_second,
            start: std::time::Instant::now(),
            emitted: 0,
        }
    }

    /// How many records may go out now, at most `max`.
    pub fn budget(&mut self, max: u64) -> u64 {
        let due = (self.start.elapsed().as_secs_f64() * self.per_second).ceil() as u64;
        self.emitted = self
            .emitted
            .max(due.saturating_sub(self.per_second.ceil() as u64));
        due.saturating_sub(self.emitted).min(max)
    }

    /// Counts `n` records as emitted.
    pub fn taken(&mut self, n: u64) {
        self.emitted += n;
    }
}

#[cfg(test)]
mod rate_tests {
    use super::RateLimiter;

    #[test]
    fn a_rate_limiter_allows_what_is_due_and_no_old_backlog() {
        let mut r = RateLimiter::new(1000.0);
        assert!(r.budget(10_000) <= 1, "nothing is due at the start");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = r.budget(10_000);
        assert!((15..=1000).contains(&b), "about 20 due, got {b}");
        r.taken(b);
        assert!(r.budget(10_000) <= 5, "what was taken is not due again");
        std::thread::sleep(std::time::Duration::from_millis(1300));
        let b = r.budget(10_000);
        assert!(
            b <= 1001,
            "a backlog of more than a second is forgotten: {b}"
        );
        assert!(r.budget(7) <= 7, "capped");
    }
}
