//! Event-time constants shared by watermarks and timers.

/// The smallest watermark: nothing has been seen yet (Flink's `Long.MIN_VALUE`).
pub const MIN_WATERMARK: i64 = i64::MIN;

/// The final watermark emitted at the end of bounded input; it fires every pending timer.
pub const MAX_WATERMARK: i64 = i64::MAX;
