//! Window assigners: which windows an element belongs to.

use super::triggers::{EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, Trigger};
use super::{GlobalWindow, TimeWindow, Window};
use std::sync::Arc;
use std::time::Duration;
use weir_state::StateKey;

/// Assigns elements to windows (Flink's `WindowAssigner`).
pub trait WindowAssigner<T, W: Window>: Clone + Send + Sync + 'static {
    /// Appends the windows of an element with `timestamp` (event time) at processing time
    /// `now` to `out`.
    fn assign_windows(&self, element: &T, timestamp: i64, now: i64, out: &mut Vec<W>);
    /// True for event-time windows.
    fn is_event_time(&self) -> bool;
    /// The trigger used unless the user sets one.
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, W>>;
    /// True if windows merge (sessions).
    fn is_merging(&self) -> bool {
        false
    }
    /// For merging assigners: the merged windows and what each covers.
    fn merge_windows(&self, _windows: &[W]) -> Vec<(W, Vec<W>)> {
        Vec::new()
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Fixed-size, non-overlapping windows in event time.
#[derive(Clone, Copy, Debug)]
pub struct TumblingEventTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size`, aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        Self::of_millis(millis(size), 0)
    }
    /// Windows of `size` ms shifted by `offset` ms.
    pub fn of_millis(size: i64, offset: i64) -> Self {
        assert!(size > 0, "a tumbling window needs a positive size");
        TumblingEventTimeWindows {
            size,
            offset: offset.rem_euclid(size),
        }
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for TumblingEventTimeWindows {
    fn assign_windows(&self, _: &T, ts: i64, _: i64, out: &mut Vec<TimeWindow>) {
        let start = TimeWindow::window_start(ts, self.offset, self.size);
        out.push(TimeWindow::new(start, start + self.size));
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(EventTimeTrigger)
    }
}

/// Fixed-size windows that start every `slide` in event time; `size` need not be a multiple
/// of `slide`, and with `slide > size` some elements fall in no window.
#[derive(Clone, Copy, Debug)]
pub struct SlidingEventTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size` every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        Self::of_millis(millis(size), millis(slide), 0)
    }
    /// Windows of `size` ms every `slide` ms, shifted by `offset` ms.
    pub fn of_millis(size: i64, slide: i64, offset: i64) -> Self {
        assert!(
            size > 0 && slide > 0,
            "a sliding window needs a positive size and slide"
        );
        SlidingEventTimeWindows {
            size,
            slide,
            offset: offset.rem_euclid(slide),
        }
    }
}

fn sliding(ts: i64, size: i64, slide: i64, offset: i64, out: &mut Vec<TimeWindow>) {
    let last_start = TimeWindow::window_start(ts, offset, slide);
    let mut start = last_start;
    while start > ts - size {
        out.push(TimeWindow::new(start, start + size));
        start -= slide;
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for SlidingEventTimeWindows {
    fn assign_windows(&self, _: &T, ts: i64, _: i64, out: &mut Vec<TimeWindow>) {
        sliding(ts, self.size, self.slide, self.offset, out)
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(EventTimeTrigger)
    }
}

/// Session windows in event time: elements closer than the gap (or exactly the gap apart)
/// form one window. The gap is fixed or computed per element.
pub struct EventTimeSessionWindows<T> {
    gap: SessionGap<T>,
}

enum SessionGap<T> {
    Static(i64),
    Dynamic(Arc<dyn Fn(&T) -> i64 + Send + Sync>),
}

impl<T> Clone for SessionGap<T> {
    fn clone(&self) -> Self {
        match self {
            SessionGap::Static(g) => SessionGap::Static(*g),
            SessionGap::Dynamic(f) => SessionGap::Dynamic(f.clone()),
        }
    }
}

impl<T> Clone for EventTimeSessionWindows<T> {
    fn clone(&self) -> Self {
        EventTimeSessionWindows {
            gap: self.gap.clone(),
        }
    }
}

impl<T> SessionGap<T> {
    fn of(&self, e: &T) -> i64 {
        match self {
            SessionGap::Static(g) => *g,
            SessionGap::Dynamic(f) => f(e),
        }
    }
}

impl<T> EventTimeSessionWindows<T> {
    /// Sessions that close after `gap` without elements.
    pub fn with_gap(gap: Duration) -> Self {
        Self::with_gap_millis(millis(gap))
    }
    /// Sessions with a gap of `gap` ms.
    pub fn with_gap_millis(gap: i64) -> Self {
        assert!(gap > 0, "a session window needs a positive gap");
        EventTimeSessionWindows {
            gap: SessionGap::Static(gap),
        }
    }
    /// Sessions whose gap (ms) is computed from each element.
    pub fn with_dynamic_gap(gap: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        EventTimeSessionWindows {
            gap: SessionGap::Dynamic(Arc::new(gap)),
        }
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for EventTimeSessionWindows<T> {
    fn assign_windows(&self, e: &T, ts: i64, _: i64, out: &mut Vec<TimeWindow>) {
        out.push(TimeWindow::new(ts, ts + self.gap.of(e)));
    }
    fn is_event_time(&self) -> bool {
        true
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(EventTimeTrigger)
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(&self, windows: &[TimeWindow]) -> Vec<(TimeWindow, Vec<TimeWindow>)> {
        TimeWindow::merge_windows(windows)
    }
}

/// Tumbling windows in processing time.
#[derive(Clone, Copy, Debug)]
pub struct TumblingProcessingTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingProcessingTimeWindows {
    /// Windows of `size` of wall-clock time.
    pub fn of(size: Duration) -> Self {
        let size = millis(size);
        assert!(size > 0, "a tumbling window needs a positive size");
        TumblingProcessingTimeWindows { size, offset: 0 }
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for TumblingProcessingTimeWindows {
    fn assign_windows(&self, _: &T, _: i64, now: i64, out: &mut Vec<TimeWindow>) {
        let start = TimeWindow::window_start(now, self.offset, self.size);
        out.push(TimeWindow::new(start, start + self.size));
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }
}

/// Sliding windows in processing time.
#[derive(Clone, Copy, Debug)]
pub struct SlidingProcessingTimeWindows {
    size: i64,
    slide: i64,
}

impl SlidingProcessingTimeWindows {
    /// Windows of `size` every `slide` of wall-clock time.
    pub fn of(size: Duration, slide: Duration) -> Self {
        let (size, slide) = (millis(size), millis(slide));
        assert!(
            size > 0 && slide > 0,
            "a sliding window needs a positive size and slide"
        );
        SlidingProcessingTimeWindows { size, slide }
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for SlidingProcessingTimeWindows {
    fn assign_windows(&self, _: &T, _: i64, now: i64, out: &mut Vec<TimeWindow>) {
        sliding(now, self.size, self.slide, 0, out)
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }
}

/// Session windows in processing time.
#[derive(Clone, Copy, Debug)]
pub struct ProcessingTimeSessionWindows {
    gap: i64,
}

impl ProcessingTimeSessionWindows {
    /// Sessions that close after `gap` of wall-clock time without elements.
    pub fn with_gap(gap: Duration) -> Self {
        let gap = millis(gap);
        assert!(gap > 0, "a session window needs a positive gap");
        ProcessingTimeSessionWindows { gap }
    }
}

impl<T: 'static> WindowAssigner<T, TimeWindow> for ProcessingTimeSessionWindows {
    fn assign_windows(&self, _: &T, _: i64, now: i64, out: &mut Vec<TimeWindow>) {
        out.push(TimeWindow::new(now, now + self.gap));
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, TimeWindow>> {
        Box::new(ProcessingTimeTrigger)
    }
    fn is_merging(&self) -> bool {
        true
    }
    fn merge_windows(&self, windows: &[TimeWindow]) -> Vec<(TimeWindow, Vec<TimeWindow>)> {
        TimeWindow::merge_windows(windows)
    }
}

/// One window per key holding everything; it fires only through a custom trigger.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global window assigner.
    pub fn create() -> Self {
        GlobalWindows
    }
}

impl<T: 'static> WindowAssigner<T, GlobalWindow> for GlobalWindows {
    fn assign_windows(&self, _: &T, _: i64, _: i64, out: &mut Vec<GlobalWindow>) {
        out.push(GlobalWindow);
    }
    fn is_event_time(&self) -> bool {
        false
    }
    fn default_trigger<K: StateKey>(&self) -> Box<dyn Trigger<T, K, GlobalWindow>> {
        Box::new(NeverTrigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_windows_with_and_without_gaps() {
        let mut out = Vec::new();
        WindowAssigner::<(), _>::assign_windows(
            &SlidingEventTimeWindows::of_millis(10, 5, 0),
            &(),
            12,
            0,
            &mut out,
        );
        assert_eq!(out, vec![TimeWindow::new(10, 20), TimeWindow::new(5, 15)]);
        out.clear();
        // slide > size: 7 is in [5,10)? no: windows start at multiples of 10 with size 5.
        WindowAssigner::<(), _>::assign_windows(
            &SlidingEventTimeWindows::of_millis(5, 10, 0),
            &(),
            7,
            0,
            &mut out,
        );
        assert!(out.is_empty());
        WindowAssigner::<(), _>::assign_windows(
            &SlidingEventTimeWindows::of_millis(10, 4, 0),
            &(),
            -3,
            0,
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                TimeWindow::new(-4, 6),
                TimeWindow::new(-8, 2),
                TimeWindow::new(-12, -2)
            ]
        );
    }
}
