//! Incremental aggregation (Flink's `AggregateFunction`): an accumulator per key (and
//! window) that values are added to one by one.

/// Aggregates values of type `IN` into an accumulator `ACC` and reads a result `OUT` from it.
pub trait AggregateFunction<IN, ACC, OUT>: Send + Sync + 'static {
    /// A fresh, empty accumulator.
    fn create_accumulator(&self) -> ACC;
    /// Adds one value. It is borrowed, so that an element in several windows (sliding
    /// windows) is aggregated into each without a copy.
    fn add(&self, value: &IN, acc: &mut ACC);
    /// The result for the accumulator so far.
    fn get_result(&self, acc: &ACC) -> OUT;
    /// Merges two accumulators (merging windows such as sessions).
    fn merge(&self, a: ACC, b: ACC) -> ACC;
}
