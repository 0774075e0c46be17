//! Window functions: what runs when a window fires.

use super::Window;
use crate::functions::{Collector, OutputTag, UserError};
use weir_runtime::operator::SideOutputs;
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::{RuntimeError, StreamRecord};
use weir_state::{KeyedStateBackend, StateContext, StateKey};

/// Runs on all elements of a window (or on the pre-aggregated value when combined with
/// `reduce` or `aggregate`), with the window's metadata (Flink's `ProcessWindowFunction`).
pub trait ProcessWindowFunction<IN, OUT, K, W>: Clone + Send + Sync + 'static {
    /// Emits results for one firing of `ctx.window()`.
    fn process(
        &mut self,
        key: &K,
        ctx: &mut WindowContext<'_, K, W>,
        elements: Vec<IN>,
        out: &mut Collector<'_, OUT>,
    ) -> Result<(), UserError>;

    /// The window is removed: clear per-window state used through `ctx.window_state()`.
    fn clear(&mut self, _ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        Ok(())
    }
}

/// Emits the window's single pre-aggregated value as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThrough;

impl<X: 'static, K: 'static, W: 'static> ProcessWindowFunction<X, X, K, W> for PassThrough {
    fn process(
        &mut self,
        _: &K,
        _: &mut WindowContext<'_, K, W>,
        elements: Vec<X>,
        out: &mut Collector<'_, X>,
    ) -> Result<(), UserError> {
        for e in elements {
            out.collect(e);
        }
        Ok(())
    }
}

/// What a [`ProcessWindowFunction`] may ask and do.
pub struct WindowContext<'a, K, W> {
    pub(crate) backend: &'a mut KeyedStateBackend<K>,
    pub(crate) window: &'a W,
    pub(crate) watermark: i64,
    pub(crate) clock: &'a ProcessingTimeService,
    pub(crate) sides: SideOutputs<'a>,
    pub(crate) error: Option<RuntimeError>,
}

impl<'a, K: StateKey, W: Window> WindowContext<'a, K, W> {
    /// The window that fires.
    pub fn window(&self) -> &W {
        self.window
    }

    /// The current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Processing time in ms.
    pub fn current_processing_time(&self) -> i64 {
        self.clock.now()
    }

    /// State scoped to this key and window (clear it in `clear`).
    pub fn window_state(&mut self) -> WindowState<'_, K, W> {
        WindowState {
            backend: &mut *self.backend,
            window: self.window,
        }
    }

    /// State scoped to this key, shared by all its windows.
    pub fn global_state(&mut self) -> GlobalState<'_, K> {
        GlobalState {
            backend: &mut *self.backend,
        }
    }

    /// Emits `value` on the side output `tag`, with the window's max timestamp.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            let rec = StreamRecord::with_timestamp(value, self.window.max_timestamp());
            if let Err(e) = self.sides.collect(tag.id(), rec) {
                self.error = Some(e);
            }
        }
    }
}

/// Per-window keyed state, for the state handles.
pub struct WindowState<'a, K, W> {
    backend: &'a mut KeyedStateBackend<K>,
    window: &'a W,
}

impl<K: StateKey, W: Window> StateContext for WindowState<'_, K, W> {
    type Key = K;
    type Ns = W;
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &W) {
        (self.backend, self.window)
    }
}

/// Per-key state shared by all windows, for the state handles.
pub struct GlobalState<'a, K> {
    backend: &'a mut KeyedStateBackend<K>,
}

impl<K: StateKey> StateContext for GlobalState<'_, K> {
    type Key = K;
    type Ns = ();
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<K>, &()) {
        (self.backend, &())
    }
}
