//! Stream elements: records and the control elements that travel in-band with them.

use serde::{Deserialize, Serialize};

/// A record: its value and, in event time, its timestamp in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord<T> {
    /// The user's value.
    pub value: T,
    /// Event timestamp, if one was assigned.
    pub timestamp: Option<i64>,
}

impl<T> StreamRecord<T> {
    /// A record without a timestamp.
    #[inline]
    pub fn new(value: T) -> Self {
        StreamRecord {
            value,
            timestamp: None,
        }
    }

    /// A record with an event timestamp.
    #[inline]
    pub fn with_timestamp(value: T, timestamp: i64) -> Self {
        StreamRecord {
            value,
            timestamp: Some(timestamp),
        }
    }

    /// The same timestamp with another value: what a map produces.
    #[inline]
    pub fn replace<U>(&self, value: U) -> StreamRecord<U> {
        StreamRecord {
            value,
            timestamp: self.timestamp,
        }
    }
}

/// Event-time progress: no record with a timestamp at or below this will follow (ideally).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watermark(pub i64);

impl Watermark {
    /// The final watermark at the end of bounded input.
    pub const MAX: Watermark = Watermark(i64::MAX);
    /// The initial watermark.
    pub const MIN: Watermark = Watermark(i64::MIN);
}

/// Whether an input currently produces data (active) or should not hold back watermarks (idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatermarkStatus {
    /// The input produces records and watermarks.
    Active,
    /// The input is idle; downstream ignores it when computing the minimum watermark.
    Idle,
}
