//! A generator source (Flink's `DataGeneratorSource`): records made by a function of their
//! index, `0..count`, spread over the source's subtasks, at a bounded rate if asked.
//!
//! ```no_run
//! use weir_connectors::datagen::DataGeneratorSource;
//! # let env = weir_api::StreamExecutionEnvironment::new();
//! // 1000 orders per second over all subtasks, a million in all.
//! let orders = env.from_source(
//!     DataGeneratorSource::new(1_000_000, |i| (i % 100, i * 7 % 1000)).with_rate_limit(1000.0),
//!     "orders",
//! );
//! ```
//!
//! The index range is cut into one contiguous split per subtask. A reader's position in
//! each split (the next index and the end) is its checkpointed state, so a restored job
//! continues every split where its checkpoint left it, also at another parallelism (the
//! splits are spread over the new readers), and a function of the index gives the same
//! records again: replays are exact. The rate limit is for the whole source and divided
//! evenly between the subtasks, as Flink's `RateLimiterStrategy.perSecond` is; a reader
//! that fell behind catches up by at most a second's worth. When the limit allows nothing,
//! the reader reports that nothing is available and its task waits a few milliseconds (or
//! until a checkpoint or timer needs it).

use std::sync::Arc;
use weir_api::functions::UserError;
use weir_api::prelude::{Boundedness, Source, SourceContext};
use weir_api::source::IndexSplits;
use weir_runtime::source::{PollStatus, RateLimiter, SourceOutput, SourceReader};

/// Records per poll at most, so the task gets back to its mailbox often.
const POLL_BATCH: u64 = 1024;

/// Records `generator(i)` for `i` in `0..count`.
pub struct DataGeneratorSource<T> {
    generator: Arc<dyn Fn(u64) -> T + Send + Sync>,
    count: u64,
    rows_per_second: Option<f64>,
}

impl<T> DataGeneratorSource<T> {
    /// `count` records, the i-th being `generator(i)`. With `count == u64::MAX` the source
    /// is unbounded.
    pub fn new(count: u64, generator: impl Fn(u64) -> T + Send + Sync + 'static) -> Self {
        DataGeneratorSource {
            generator: Arc::new(generator),
            count,
            rows_per_second: None,
        }
    }

    /// Emits at most `rows_per_second` records per second over all subtasks.
    pub fn with_rate_limit(mut self, rows_per_second: f64) -> Self {
        self.rows_per_second = Some(rows_per_second);
        self
    }
}

/// Generates its splits' indexes in order, each split as (next index, end).
struct GeneratorReader<T> {
    generator: Arc<dyn Fn(u64) -> T + Send + Sync>,
    splits: IndexSplits,
    /// This reader's share of the rate limit.
    limit: Option<RateLimiter>,
}

impl<T> GeneratorReader<T> {
    /// How many records the rate limit lets this poll emit.
    fn budget(&mut self) -> u64 {
        self.limit
            .as_mut()
            .map_or(POLL_BATCH, |l| l.budget(POLL_BATCH))
    }
}

impl<T: 'static> SourceReader<T> for GeneratorReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> weir_runtime::Result<PollStatus> {
        let mut budget = self.budget();
        if budget == 0 {
            return Ok(if self.splits.is_empty() {
                PollStatus::Finished
            } else {
                PollStatus::NothingAvailable
            });
        }
        while let Some((first, n)) = self.splits.next(budget) {
            for i in first..first + n {
                out.collect((self.generator)(i))?;
            }
            self.splits.take(n);
            budget -= n;
            if let Some(l) = &mut self.limit {
                l.taken(n);
            }
            if budget == 0 {
                break;
            }
        }
        Ok(if self.splits.is_empty() {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _: u64) -> weir_runtime::Result<Vec<Vec<u8>>> {
        self.splits.snapshot()
    }
}

impl<T: Send + 'static> Source<T> for DataGeneratorSource<T> {
    fn boundedness(&self) -> Boundedness {
        if self.count == u64::MAX {
            Boundedness::Unbounded
        } else {
            Boundedness::Bounded
        }
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        if let Some(r) = self.rows_per_second {
            if !(r > 0.0 && r.is_finite()) {
                return Err(
                    format!("datagen source: the rate limit must be above 0, not {r}").into(),
                );
            }
        }
        let splits = IndexSplits::for_reader(ctx, self.count)?;
        let limit = self
            .rows_per_second
            .map(|r| RateLimiter::new(r / ctx.parallelism.max(1) as f64));
        Ok(Box::new(GeneratorReader {
            generator: self.generator.clone(),
            splits,
            limit,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbounded_generator_says_so() {
        let unbounded = DataGeneratorSource::new(u64::MAX, |i| i);
        assert_eq!(
            Source::<u64>::boundedness(&unbounded),
            Boundedness::Unbounded
        );
    }
}
