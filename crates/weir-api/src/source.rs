//! Sources: the [`Source`] trait for user and connector sources, and the built-in
//! collection, iterator and number-sequence sources.

use crate::functions::UserError;
use std::sync::Arc;
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::Result;

/// The indexes `0..count` of a generator source that one reader makes, as contiguous
/// ranges `(next, end)`: its share of the range when the job starts, or the positions of the
/// readers it took over on a restore (also at another parallelism: the checkpoint holds each
/// range's position, and the ranges are spread over the new readers). Row `i` being a
/// function of `i` alone makes replays exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSplits {
    ranges: std::collections::VecDeque<(u64, u64)>,
}

impl IndexSplits {
    /// Reader `ctx.subtask`'s ranges of `0..count`.
    pub fn for_reader(ctx: &SourceContext, count: u64) -> Result<Self> {
        let ranges = match ctx.decode_restored::<(u64, u64)>()? {
            Some(s) => s.into_iter().filter(|(next, end)| next < end).collect(),
            None => {
                let (start, end) = Self::share(count, ctx.subtask, ctx.parallelism.max(1));
                std::iter::once((start, end))
                    .filter(|(s, e)| s < e)
                    .collect()
            }
        };
        Ok(IndexSplits { ranges })
    }

    /// Share `i` of `p` of `0..count`: `[start, end)`.
    pub fn share(count: u64, i: u32, p: u32) -> (u64, u64) {
        let at = |k: u32| (count as u128 * k as u128 / p as u128) as u64;
        (at(i), at(i + 1))
    }

    /// The next indexes, at most `max` of them, as `(first, n)` (not taken yet).
    pub fn next(&self, max: u64) -> Option<(u64, u64)> {
        self.ranges
            .front()
            .map(|&(next, end)| (next, (end - next).min(max)))
    }

    /// Takes `n` indexes (at most those [`Self::next`] gave) from the front range.
    pub fn take(&mut self, n: u64) {
        if let Some(front) = self.ranges.front_mut() {
            front.0 += n;
            if front.0 >= front.1 {
                self.ranges.pop_front();
            }
        }
    }

    /// True once every index is taken.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges' positions, one split each, for a checkpoint.
    pub fn snapshot(&self) -> Result<Vec<Vec<u8>>> {
        self.ranges.iter().map(encode_split).collect()
    }
}

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
    /// When the job is restored from a checkpoint: the split positions this reader resumes
    /// from (what readers returned from `SourceReader::snapshot_state`, split evenly over
    /// the subtasks if the parallelism changed). `None` on a fresh start. A reader whose
    /// `SourceReader::split_redistribution` is union gets the positions of all readers.
    pub restored_splits: Option<Vec<Vec<u8>>>,
    /// How often a source that generates watermarks per split (see
    /// [`Source::create_reader_with_watermarks`]) asks its generators for one, in ms.
    pub auto_watermark_interval_ms: u64,
}

impl SourceContext {
    /// Decodes the restored split positions written with [`encode_split`].
    pub fn decode_restored<S: serde::de::DeserializeOwned>(&self) -> Result<Option<Vec<S>>> {
        self.restored_splits
            .as_ref()
            .map(|splits| splits.iter().map(|b| decode_split(b)).collect())
            .transpose()
    }
}

/// Encodes a split position for `SourceReader::snapshot_state`.
pub fn encode_split<S: serde::Serialize>(split: &S) -> Result<Vec<u8>> {
    bincode::serialize(split).map_err(|e| weir_runtime::RuntimeError::Codec {
        context: "cannot encode a source position".into(),
        message: e.to_string(),
    })
}

/// Decodes a split position written by [`encode_split`].
pub fn decode_split<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .deserialize(bytes)
        .map_err(|e| weir_runtime::RuntimeError::Codec {
            context: "cannot decode a restored source position".into(),
            message: e.to_string(),
        })
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

    /// For a source whose readers read several splits (e.g. Kafka partitions): creates a
    /// reader that assigns timestamps and generates watermarks with `strategy` per split
    /// and emits the smallest watermark of its active splits (Flink's per-split
    /// watermarks), so that a split that is behind holds the watermark back even when its
    /// records arrive interleaved with those of splits ahead. `None` (the default) if the
    /// source has no such reader: the strategy then runs on the reader's output as a whole.
    /// Only called when [`Self::generates_split_watermarks`] is true.
    fn create_reader_with_watermarks(
        &self,
        _ctx: &SourceContext,
        _strategy: &crate::watermark::WatermarkStrategy<T>,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Err("this source does not generate watermarks per split".into())
    }

    /// True if the source's readers generate watermarks per split
    /// ([`Self::create_reader_with_watermarks`]); false (the default) runs the strategy
    /// on the reader's output as a whole.
    fn generates_split_watermarks(&self) -> bool {
        false
    }
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

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&(self.next as u64))?])
    }
}

impl<T: Clone + Send + Sync + 'static> Source<T> for CollectionSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let next = match ctx.decode_restored::<u64>()? {
            Some(v) => v.into_iter().max().unwrap_or(self.data.len() as u64) as usize,
            None => 0,
        };
        Ok(Box::new(CollectionReader {
            data: self.data.clone(),
            next: next.min(self.data.len()),
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

/// Reads an iterator; its position is the number of items taken, and a restored reader
/// skips that many of a fresh iterator (the factory must yield the same items again).
struct IteratorReader<I> {
    iter: I,
    taken: u64,
}

impl<T, I: Iterator<Item = T> + Send> SourceReader<T> for IteratorReader<I>
where
    T: 'static,
{
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        for _ in 0..BATCH {
            match self.iter.next() {
                Some(v) => {
                    self.taken += 1;
                    out.collect(v)?
                }
                None => return Ok(PollStatus::Finished),
            }
        }
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&self.taken)?])
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
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let skip = ctx
            .decode_restored::<u64>()?
            .and_then(|v| v.into_iter().max())
            .unwrap_or(0);
        let mut iter = (self.factory)();
        for _ in 0..skip {
            if iter.next().is_none() {
                break;
            }
        }
        Ok(Box::new(IteratorReader { iter, taken: skip }))
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

/// Reads ranges of the sequence, each as (next number, numbers left); the ranges are its
/// splits, so a restored job at another parallelism spreads them over its readers.
struct SequenceReader {
    splits: std::collections::VecDeque<(i64, u64)>,
}

impl SourceReader<i64> for SequenceReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, i64>) -> Result<PollStatus> {
        let Some((next, left)) = self.splits.front_mut() else {
            return Ok(PollStatus::Finished);
        };
        let n = (*left).min(BATCH as u64);
        for _ in 0..n {
            out.collect(*next)?;
            *next = next.wrapping_add(1);
        }
        *left -= n;
        if *left == 0 {
            self.splits.pop_front();
        }
        Ok(if self.splits.is_empty() {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        self.splits.iter().map(encode_split).collect()
    }
}

impl Source<i64> for SequenceSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        let splits = match ctx.decode_restored::<(i64, u64)>()? {
            Some(s) => s.into_iter().collect(),
            None => {
                let (next, left) = self.split(ctx.subtask, ctx.parallelism);
                std::iter::once((next, left)).filter(|s| s.1 > 0).collect()
            }
        };
        Ok(Box::new(SequenceReader { splits }))
    }
}

#[cfg(test)]
mod index_split_tests {
    use super::IndexSplits;

    #[test]
    fn shares_cover_the_indexes_once_and_ranges_are_taken_in_order() {
        for p in 1..7 {
            let mut next = 0;
            for i in 0..p {
                let (a, b) = IndexSplits::share(23, i, p);
                assert_eq!(a, next);
                next = b;
            }
            assert_eq!(next, 23);
        }
        assert_eq!(IndexSplits::share(u64::MAX, 1, 2).1, u64::MAX);
        let mut s = IndexSplits {
            ranges: [(0, 5), (10, 12)].into_iter().collect(),
        };
        assert_eq!(s.next(3), Some((0, 3)));
        s.take(3);
        assert_eq!(s.next(3), Some((3, 2)));
        s.take(2);
        assert_eq!(s.next(3), Some((10, 2)));
        s.take(2);
        assert!(s.is_empty());
        assert_eq!(s.next(3), None);
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
