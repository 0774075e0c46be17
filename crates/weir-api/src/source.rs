//! Sources: the [`Source`] trait for user and connector sources, and the built-in
//! collection, iterator and number-sequence sources.

use crate::functions::UserError;
use std::sync::Arc;
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::Result;

/// Whether a source ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundedness {
    /// The source ends; at its end a final watermark fires everything pending.
    Bounded,
    /// The source runs until the job is cancelled.
    Unbounded,
}

/// Facts a source reader is created with.
#[derive(Clone, Debug)]
pub struct SourceContext {
    /// Subtask index of the reader, from 0.
    pub subtask: u32,
    /// Number of reader subtasks.
    pub parallelism: u32,
}

/// A source of records: creates one reader per subtask (Flink's `Source`).
///
/// Readers are polled by their task's mailbox loop and should emit a bounded batch of
/// records per poll. A reader decides from its [`SourceContext`] which part of the input it
/// reads, deterministically, so that every subtask reads a disjoint share.
pub trait Source<T>: Send + Sync + 'static {
    /// Bounded or unbounded.
    fn boundedness(&self) -> Boundedness;

    /// False if the source can only run with parallelism 1.
    fn is_parallel(&self) -> bool {
        true
    }

    /// Creates the reader of one subtask.
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError>;
}

/// Records emitted per poll by the built-in sources.
const BATCH: usize = 1024;

/// Emits the elements of a vector, in order, from one subtask.
pub struct CollectionSource<T> {
    data: Arc<Vec<T>>,
}

impl<T> CollectionSource<T> {
    /// A source of `data`.
    pub fn new(data: Vec<T>) -> Self {
        CollectionSource {
            data: Arc::new(data),
        }
    }
}

struct CollectionReader<T> {
    data: Arc<Vec<T>>,
    next: usize,
}

impl<T: Clone + Send + Sync + 'static> SourceReader<T> for CollectionReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        let end = (self.next + BATCH).min(self.data.len());
        for v in &self.data[self.next..end] {
            out.collect(v.clone())?;
        }
        self.next = end;
        Ok(if end == self.data.len() {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }
}

impl<T: Clone + Send + Sync + 'static> Source<T> for CollectionSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(CollectionReader {
            data: self.data.clone(),
            next: 0,
        }))
    }
}

/// Emits what an iterator yields, from one subtask; the iterator is created by a factory so
/// the source can be instantiated again (e.g. after a restart). May be unbounded.
pub struct IteratorSource<F> {
    factory: F,
    boundedness: Boundedness,
}

impl<F> IteratorSource<F> {
    /// A source that reads `factory()`.
    pub fn new(factory: F, boundedness: Boundedness) -> Self {
        IteratorSource {
            factory,
            boundedness,
        }
    }
}

struct IteratorReader<I>(I);

impl<T, I: Iterator<Item = T> + Send> SourceReader<T> for IteratorReader<I>
where
    T: 'static,
{
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        for _ in 0..BATCH {
            match self.0.next() {
                Some(v) => out.collect(v)?,
                None => return Ok(PollStatus::Finished),
            }
        }
        Ok(PollStatus::MoreAvailable)
    }
}

impl<T, I, F> Source<T> for IteratorSource<F>
where
    T: 'static,
    I: Iterator<Item = T> + Send + 'static,
    F: Fn() -> I + Send + Sync + 'static,
{
    fn boundedness(&self) -> Boundedness {
        self.boundedness
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(IteratorReader((self.factory)())))
    }
}

/// The numbers `from..=to`, split evenly into one contiguous range per subtask (Flink's
/// `NumberSequenceSource`).
pub struct SequenceSource {
    from: i64,
    to: i64,
}

impl SequenceSource {
    /// The numbers from `from` to `to`, both included.
    pub fn new(from: i64, to: i64) -> Self {
        SequenceSource { from, to }
    }

    /// The range of subtask `i` of `p`, as (first, count).
    pub fn split(&self, i: u32, p: u32) -> (i64, u64) {
        if self.to < self.from {
            return (self.from, 0);
        }
        let total = (self.to as i128 - self.from as i128 + 1) as u128;
        let start = total * i as u128 / p as u128;
        let end = total * (i as u128 + 1) / p as u128;
        (
            (self.from as i128 + start as i128) as i64,
            (end - start) as u64,
        )
    }
}

struct SequenceReader {
    next: i64,
    left: u64,
}

impl SourceReader<i64> for SequenceReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, i64>) -> Result<PollStatus> {
        let n = self.left.min(BATCH as u64);
        for _ in 0..n {
            out.collect(self.next)?;
            self.next = self.next.wrapping_add(1);
        }
        self.left -= n;
        Ok(if self.left == 0 {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }
}

impl Source<i64> for SequenceSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        let (next, left) = self.split(ctx.subtask, ctx.parallelism);
        Ok(Box::new(SequenceReader { next, left }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_splits_cover_the_range_once() {
        let s = SequenceSource::new(-5, 17);
        for p in 1..6 {
            let mut next = -5;
            let mut total = 0;
            for i in 0..p {
                let (first, n) = s.split(i, p);
                assert_eq!(first, next);
                next += n as i64;
                total += n;
            }
            assert_eq!(total, 23);
        }
        assert_eq!(SequenceSource::new(3, 2).split(0, 1).1, 0);
    }
}
