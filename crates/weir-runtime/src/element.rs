//! Stream elements: records and the control elements that travel in-band with them.

use serde::{Deserialize, Serialize};

/// The timestamp value that means "no timestamp", as Flink's `TimestampAssigner.NO_TIMESTAMP`
/// (`Long.MIN_VALUE`): a record given this timestamp has none.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// A record: its value and, in event time, its timestamp in milliseconds.
///
/// The timestamp is stored as a plain `i64` with [`NO_TIMESTAMP`] for "none" rather than an
/// `Option<i64>`: that keeps the record 8 bytes smaller (an `Option<i64>` takes 16), and
/// records are what the engine moves between operators and tasks, so their size is felt on
/// every hand-over. Flink stores a flag beside the long; the sentinel is the value its sources
/// already treat as "no timestamp".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord<T> {
    /// The user's value.
    pub value: T,
    /// Event timestamp, or [`NO_TIMESTAMP`]; read it with [`StreamRecord::timestamp`].
    ts: i64,
}

impl<T> StreamRecord<T> {
    /// A record without a timestamp.
    #[inline]
    pub fn new(value: T) -> Self {
        StreamRecord {
            value,
            ts: NO_TIMESTAMP,
        }
    }

    /// A record with an event timestamp ([`NO_TIMESTAMP`] makes it a record without one).
    #[inline]
    pub fn with_timestamp(value: T, timestamp: i64) -> Self {
        StreamRecord {
            value,
            ts: timestamp,
        }
    }

    /// A record with the timestamp `timestamp`, if any.
    #[inline]
    pub fn from_parts(value: T, timestamp: Option<i64>) -> Self {
        StreamRecord {
            value,
            ts: timestamp.unwrap_or(NO_TIMESTAMP),
        }
    }

    /// The event timestamp, if the record has one.
    #[inline]
    pub fn timestamp(&self) -> Option<i64> {
        if self.ts == NO_TIMESTAMP {
            None
        } else {
            Some(self.ts)
        }
    }

    /// The value and the timestamp, if any.
    #[inline]
    pub fn into_parts(self) -> (T, Option<i64>) {
        let ts = self.timestamp();
        (self.value, ts)
    }

    /// Sets (or with `None` clears) the event timestamp.
    #[inline]
    pub fn set_timestamp(&mut self, timestamp: Option<i64>) {
        self.ts = timestamp.unwrap_or(NO_TIMESTAMP);
    }

    /// The same timestamp with another value: what a map produces.
    #[inline]
    pub fn replace<U>(&self, value: U) -> StreamRecord<U> {
        StreamRecord { value, ts: self.ts }
    }

    /// This record's timestamp on `value`, consuming the record: what a map produces when it
    /// takes the old value by move.
    #[inline]
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> StreamRecord<U> {
        StreamRecord {
            value: f(self.value),
            ts: self.ts,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_and_min_means_none() {
        let mut r = StreamRecord::with_timestamp("a", 5);
        assert_eq!(r.timestamp(), Some(5));
        r.set_timestamp(None);
        assert_eq!(r.timestamp(), None);
        r.set_timestamp(Some(-7));
        assert_eq!(r.replace(1u8).timestamp(), Some(-7));
        assert_eq!(r.clone().map(str::len).into_parts(), (1, Some(-7)));
        assert_eq!(StreamRecord::new(()).timestamp(), None);
        assert_eq!(
            StreamRecord::from_parts((), Some(i64::MAX)).timestamp(),
            Some(i64::MAX)
        );
        // Flink's sources treat Long.MIN_VALUE as "no timestamp"; so does a Weir record.
        assert_eq!(
            StreamRecord::with_timestamp((), NO_TIMESTAMP).timestamp(),
            None
        );
        assert_eq!(
            StreamRecord::from_parts((), Some(i64::MIN)),
            StreamRecord::new(())
        );
    }

    #[test]
    fn a_record_adds_eight_bytes_to_its_value() {
        assert_eq!(std::mem::size_of::<StreamRecord<(String, i64)>>(), 40);
        assert_eq!(std::mem::size_of::<StreamRecord<u64>>(), 16);
    }
}
