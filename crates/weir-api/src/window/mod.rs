//! Windows on keyed streams, with Flink's semantics: assigners, triggers, evictors, allowed
//! lateness, late-data side output, and reduce / aggregate / process window functions.
//!
//! - [`assigners`]: tumbling, sliding, session (static and dynamic gap) and global windows,
//!   in event time and processing time.
//! - [`triggers`]: when a window emits (event time, processing time, count, delta,
//!   continuous, purging, custom).
//! - [`evictors`]: which elements are removed before or after a firing (count, time,
//!   delta).
//! - [`stream::WindowedStream`]: the API, with count windows; [`all::AllWindowedStream`]:
//!   windows over a whole non-keyed stream.
//! - `operator` and `fast`: the window operators (Flink's `WindowOperator`, and a window-major
//!   one for event-time windows with the default trigger).

pub mod all;
pub mod assigners;
pub mod evictors;
mod fast;
pub mod functions;
pub(crate) mod operator;
pub mod stream;
pub mod triggers;

use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hash;

/// A window: a group of elements that is evaluated together.
pub trait Window:
    Clone + Hash + Eq + Ord + Send + Sync + Debug + Serialize + serde::de::DeserializeOwned + 'static
{
    /// The largest timestamp that belongs to the window.
    fn max_timestamp(&self) -> i64;
}

/// A time interval `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First timestamp in the window.
    pub start: i64,
    /// One past the last timestamp in the window.
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        TimeWindow { start, end }
    }

    /// True if the windows overlap or touch (`a.start <= b.end && a.end >= b.start`), the
    /// rule by which session windows merge.
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Start of the window of size `size` (shifted by `offset`) that contains `timestamp`:
    /// `timestamp - floor_mod(timestamp - offset, size)`, correct for negative timestamps.
    pub fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
        timestamp - (timestamp - offset).rem_euclid(size)
    }

    /// Merges overlapping or touching windows (Flink's `TimeWindow.mergeWindows`): returns
    /// each merged window with the windows it covers, only where more than one merged.
    pub fn merge_windows(windows: &[TimeWindow]) -> Vec<(TimeWindow, Vec<TimeWindow>)> {
        let mut sorted = windows.to_vec();
        sorted.sort_by_key(|w| w.start);
        let mut merged: Vec<(TimeWindow, Vec<TimeWindow>)> = Vec::new();
        for w in sorted {
            match merged.last_mut() {
                Some((cur, members)) if cur.intersects(&w) => {
                    *cur = cur.cover(&w);
                    members.push(w);
                }
                _ => merged.push((w, vec![w])),
            }
        }
        merged.retain(|(_, m)| m.len() > 1);
        merged
    }
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// The single window of [`assigners::GlobalWindows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_handles_negative_timestamps() {
        assert_eq!(TimeWindow::window_start(-13, 0, 10), -20);
        assert_eq!(TimeWindow::window_start(13, 0, 10), 10);
        assert_eq!(TimeWindow::window_start(-10, 0, 10), -10);
        assert_eq!(TimeWindow::window_start(7, 2, 5), 7);
    }

    #[test]
    fn touching_windows_merge() {
        let ws = [
            TimeWindow::new(0, 10),
            TimeWindow::new(10, 20),
            TimeWindow::new(25, 30),
        ];
        let m = TimeWindow::merge_windows(&ws);
        assert_eq!(m, vec![(TimeWindow::new(0, 20), vec![ws[0], ws[1]])]);
    }
}
