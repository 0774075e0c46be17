//! Windows over a whole, non-keyed stream (Flink's `windowAll` and `countWindowAll`): every
//! element goes to one window operator subtask, as in Flink, where an all-window operator
//! always runs at parallelism 1.
//!
//! An [`AllWindowedStream`] is a [`WindowedStream`] keyed by `()`, run at parallelism 1;
//! window functions see the key `()` (Flink's `ProcessAllWindowFunction` has none).

use super::assigners::{GlobalWindows, WindowAssigner};
use super::evictors::{CountEvictor, Evictor};
use super::functions::ProcessWindowFunction;
use super::stream::WindowedStream;
use super::triggers::{CountTrigger, PurgingTrigger, Trigger};
use super::{GlobalWindow, Window};
use crate::datastream::DataStream;
use crate::functions::OutputTag;
use crate::keyed::KeyedStream;
use crate::types::Data;
use std::hash::Hash;
use std::time::Duration;
use weir_state::AggregateFunction;

/// A non-keyed stream cut into windows, evaluated by one subtask.
pub struct AllWindowedStream<T, W, A> {
    inner: WindowedStream<T, (), W, A>,
}

impl<T: Data> DataStream<T> {
    /// Groups all elements into the windows `assigner` gives them, evaluated by a single
    /// subtask (Flink's `windowAll`).
    pub fn window_all<W: Window, A: WindowAssigner<T, W>>(
        &self,
        assigner: A,
    ) -> AllWindowedStream<T, W, A> {
        AllWindowedStream {
            inner: self.key_by(|_: &T| ()).window(assigner),
        }
    }

    /// Windows of `size` elements over the whole stream, each emitted when full and then
    /// cleared (Flink's `countWindowAll(size)`).
    pub fn count_window_all(&self, size: u64) -> AllWindowedStream<T, GlobalWindow, GlobalWindows> {
        self.window_all(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// The last `size` elements of the whole stream, emitted every `slide` elements
    /// (Flink's `countWindowAll(size, slide)`).
    pub fn count_window_all_sliding(
        &self,
        size: u64,
        slide: u64,
    ) -> AllWindowedStream<T, GlobalWindow, GlobalWindows> {
        self.window_all(GlobalWindows::create())
            .evictor(CountEvictor::of(
                usize::try_from(size).unwrap_or(usize::MAX),
            ))
            .trigger(CountTrigger::of(slide))
    }
}

impl<T: Data, K: Data + Hash + Eq> KeyedStream<T, K> {
    /// Windows of `size` elements per key, each emitted when full and then cleared (Flink's
    /// `countWindow(size)`: global windows with a purging count trigger).
    pub fn count_window(&self, size: u64) -> WindowedStream<T, K, GlobalWindow, GlobalWindows> {
        self.window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// The last `size` elements of each key, emitted every `slide` elements of that key
    /// (Flink's `countWindow(size, slide)`: global windows, a count evictor and a count
    /// trigger).
    pub fn count_window_sliding(
        &self,
        size: u64,
        slide: u64,
    ) -> WindowedStream<T, K, GlobalWindow, GlobalWindows> {
        self.window(GlobalWindows::create())
            .evictor(CountEvictor::of(
                usize::try_from(size).unwrap_or(usize::MAX),
            ))
            .trigger(CountTrigger::of(slide))
    }
}

impl<T: Data, W: Window, A: WindowAssigner<T, W>> AllWindowedStream<T, W, A> {
    /// Replaces the assigner's default trigger.
    pub fn trigger(self, trigger: impl Trigger<T, (), W> + 'static) -> Self {
        AllWindowedStream {
            inner: self.inner.trigger(trigger),
        }
    }

    /// Removes elements before or after each firing.
    pub fn evictor(self, evictor: impl Evictor<T, W> + 'static) -> Self {
        AllWindowedStream {
            inner: self.inner.evictor(evictor),
        }
    }

    /// Keeps event-time windows for `lateness` after their end.
    pub fn allowed_lateness(self, lateness: Duration) -> Self {
        AllWindowedStream {
            inner: self.inner.allowed_lateness(lateness),
        }
    }

    /// Sends elements too late for every window to the side output `tag`.
    pub fn side_output_late_data(self, tag: &OutputTag<T>) -> Self {
        AllWindowedStream {
            inner: self.inner.side_output_late_data(tag),
        }
    }

    /// Reduces each window's elements with `f`.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.inner.reduce(f).set_parallelism(1)
    }

    /// Aggregates each window's elements with `agg`.
    pub fn aggregate<ACC, R, G>(self, agg: G) -> DataStream<R>
    where
        R: Data,
        ACC: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        G: AggregateFunction<T, ACC, R>,
    {
        self.inner.aggregate(agg).set_parallelism(1)
    }

    /// Gives all elements of each firing window to `function` (its key is `()`).
    pub fn process<O, P>(self, function: P) -> DataStream<O>
    where
        O: Data,
        P: ProcessWindowFunction<T, O, (), W>,
    {
        self.inner.process(function).set_parallelism(1)
    }
}
