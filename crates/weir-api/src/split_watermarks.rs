//! Watermarks generated per split and combined (Flink's per-split watermarks, its
//! `WatermarkOutputMultiplexer`), for readers of several splits such as Kafka partitions.
//!
//! Each split has a generator of its own. The reader's watermark is the smallest watermark
//! of its active splits: an idle split (no events for the strategy's idle timeout) holds
//! nothing back, and a split that has produced no watermark yet holds everything back, as
//! in Flink. When every split is idle, or the reader has no split at all, the reader's
//! output is idle. Watermarks only move forward.
//!
//! ```
//! use std::time::Duration;
//! use weir_api::split_watermarks::{SplitWatermarks, WatermarkUpdate};
//! use weir_api::watermark::WatermarkStrategy;
//!
//! let strategy = WatermarkStrategy::<u64>::for_bounded_out_of_orderness(Duration::ZERO);
//! let mut wm = SplitWatermarks::new(strategy, 200);
//! let (a, b) = (wm.add_split(), wm.add_split());
//! wm.on_event(a, &0, 1_000);
//! wm.on_event(b, &0, 5_000);
//! wm.on_periodic_emit();
//! // Split `a` is behind: it holds the reader's watermark back.
//! assert_eq!(wm.update(), Some(WatermarkUpdate::Watermark(999)));
//! ```

use crate::watermark::{WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
use std::time::{Duration, Instant};

/// What the reader should emit after [`SplitWatermarks::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatermarkUpdate {
    /// A new watermark (the output is active).
    Watermark(i64),
    /// The output became idle.
    Idle,
    /// The output became active again, without a new watermark yet.
    Active,
}

/// One split's generator and what it proposed.
struct Split<T> {
    generator: Box<dyn WatermarkGenerator<T>>,
    watermark: i64,
    idle: bool,
    removed: bool,
}

impl<T> Split<T> {
    fn apply(&mut self, out: WatermarkOutput) {
        if let Some(w) = out.watermark() {
            self.watermark = self.watermark.max(w);
        }
        if let Some(idle) = out.idleness() {
            self.idle = idle;
        }
    }
}

/// The watermark generators of a reader's splits, combined.
pub struct SplitWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    /// Indexed by the handle [`Self::add_split`] returned; removed splits stay as tombstones
    /// so that handles stay valid.
    splits: Vec<Split<T>>,
    /// The last watermark emitted.
    current: i64,
    /// Whether the output was last reported idle.
    idle: bool,
    interval: Duration,
    next_periodic: Instant,
}

impl<T: 'static> SplitWatermarks<T> {
    /// Generators of `strategy`, asked for a watermark every `interval_ms` (0: never
    /// periodically, only on events), the first time at the first
    /// [`Self::on_periodic_emit`].
    pub fn new(strategy: WatermarkStrategy<T>, interval_ms: u64) -> Self {
        let interval = Duration::from_millis(interval_ms);
        SplitWatermarks {
            strategy,
            splits: Vec::new(),
            current: i64::MIN,
            idle: false,
            interval,
            // The first call asks at once; later ones every interval.
            next_periodic: Instant::now(),
        }
    }

    /// Adds a split; the handle identifies it in the other calls.
    pub fn add_split(&mut self) -> usize {
        self.splits.push(Split {
            generator: self.strategy.create_watermark_generator(),
            watermark: i64::MIN,
            idle: false,
            removed: false,
        });
        self.splits.len() - 1
    }

    /// The split ended (e.g. a bounded split read to its end): it no longer holds the
    /// watermark back.
    pub fn remove_split(&mut self, split: usize) {
        if let Some(s) = self.splits.get_mut(split) {
            s.removed = true;
        }
    }

    /// The event timestamp of `event`, from the strategy's assigner or `previous`.
    #[inline]
    pub fn timestamp_of(&self, event: &T, previous: Option<i64>) -> i64 {
        self.strategy.timestamp_of(event, previous)
    }

    /// An event with timestamp `timestamp` was read from `split`.
    pub fn on_event(&mut self, split: usize, event: &T, timestamp: i64) {
        if let Some(s) = self.splits.get_mut(split) {
            let mut out = WatermarkOutput::default();
            s.generator.on_event(event, timestamp, &mut out);
            s.idle = false;
            s.apply(out);
        }
    }

    /// Asks every split's generator for a watermark if the interval passed since the last
    /// time. Cheap to call often.
    pub fn on_periodic_emit(&mut self) {
        if self.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        if now < self.next_periodic {
            return;
        }
        self.next_periodic = now + self.interval;
        for s in self.splits.iter_mut().filter(|s| !s.removed) {
            let mut out = WatermarkOutput::default();
            s.generator.on_periodic_emit(&mut out);
            s.apply(out);
        }
    }

    /// What changed for the reader's output since the last call: the smallest watermark
    /// of the active splits if it advanced, or a change between idle and active.
    pub fn update(&mut self) -> Option<WatermarkUpdate> {
        let active = self.splits.iter().filter(|s| !s.removed && !s.idle);
        let combined = active.map(|s| s.watermark).min();
        match combined {
            None if !self.idle => {
                self.idle = true;
                Some(WatermarkUpdate::Idle)
            }
            None => None,
            Some(w) if w > self.current => {
                self.current = w;
                self.idle = false;
                Some(WatermarkUpdate::Watermark(w))
            }
            Some(_) if self.idle => {
                self.idle = false;
                Some(WatermarkUpdate::Active)
            }
            Some(_) => None,
        }
    }

    /// The last watermark reported.
    pub fn current(&self) -> i64 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded() -> WatermarkStrategy<u64> {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
    }

    #[test]
    fn the_slowest_split_holds_the_watermark_back() {
        let mut wm = SplitWatermarks::new(bounded(), 0);
        let a = wm.add_split();
        let b = wm.add_split();
        wm.on_event(a, &0, 100);
        // Bounded out-of-orderness only proposes periodically; force it.
        wm.interval = Duration::from_millis(1);
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        // b has no watermark yet: it holds everything back.
        assert_eq!(wm.update(), None);
        wm.on_event(b, &0, 50);
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        assert_eq!(wm.update(), Some(WatermarkUpdate::Watermark(39)));
        wm.on_event(b, &0, 500);
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        assert_eq!(wm.update(), Some(WatermarkUpdate::Watermark(89)));
        // a ends: only b counts.
        wm.remove_split(a);
        assert_eq!(wm.update(), Some(WatermarkUpdate::Watermark(489)));
        // Watermarks never go back, also when a new split starts behind.
        let c = wm.add_split();
        wm.on_event(c, &0, 0);
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        assert_eq!(wm.update(), None);
        assert_eq!(wm.current(), 489);
    }

    #[test]
    fn idle_splits_hold_nothing_back_and_all_idle_is_idle() {
        let strategy = bounded().with_idleness(Duration::from_millis(1));
        let mut wm = SplitWatermarks::new(strategy, 1);
        // No splits: idle.
        assert_eq!(wm.update(), Some(WatermarkUpdate::Idle));
        let a = wm.add_split();
        let b = wm.add_split();
        wm.on_event(a, &0, 1_000);
        std::thread::sleep(Duration::from_millis(5));
        wm.on_event(a, &0, 2_000);
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        // b has been idle for longer than the timeout; a was just active.
        assert_eq!(wm.update(), Some(WatermarkUpdate::Watermark(1_989)));
        std::thread::sleep(Duration::from_millis(5));
        wm.next_periodic = Instant::now();
        wm.on_periodic_emit();
        assert_eq!(wm.update(), Some(WatermarkUpdate::Idle));
        assert_eq!(wm.update(), None);
        wm.on_event(b, &0, 1_500);
        assert_eq!(wm.update(), Some(WatermarkUpdate::Active));
    }

    #[test]
    fn assigner_or_carried_timestamp() {
        let plain = SplitWatermarks::new(bounded(), 0);
        assert_eq!(plain.timestamp_of(&7, Some(42)), 42);
        let assigned = SplitWatermarks::new(
            bounded().with_timestamp_assigner(|v: &u64, _| *v as i64 * 10),
            0,
        );
        assert_eq!(assigned.timestamp_of(&7, Some(42)), 70);
    }
}
