//! The timer service of keyed operators: event-time and processing-time timers per key and
//! namespace, fired in time order (Flink's `InternalTimerService`).

use weir_runtime::time::ProcessingTimeService;
use weir_state::{Namespace, StateKey, TimerQueue};

/// Which clock a timer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark reaches it.
    EventTime,
    /// Fires when the wall clock reaches it.
    ProcessingTime,
}

/// Event- and processing-time timers of one keyed operator subtask.
pub(crate) struct InternalTimers<K, N> {
    pub event: TimerQueue<K, N>,
    pub processing: TimerQueue<K, N>,
    pub clock: ProcessingTimeService,
}

impl<K: StateKey, N: Namespace> InternalTimers<K, N> {
    pub fn new(clock: ProcessingTimeService) -> Self {
        InternalTimers {
            event: TimerQueue::default(),
            processing: TimerQueue::default(),
            clock,
        }
    }

    pub fn register_event(&mut self, time: i64, key: K, ns: N) {
        self.event.register(time, key, ns);
    }

    pub fn delete_event(&mut self, time: i64, key: &K, ns: &N) {
        self.event.delete(time, key, ns);
    }

    pub fn register_processing(&mut self, time: i64, key: K, ns: N) {
        if self.processing.register(time, key, ns) {
            self.clock.request(time);
        }
    }

    pub fn delete_processing(&mut self, time: i64, key: &K, ns: &N) {
        self.processing.delete(time, key, ns);
    }

    /// Asks the task for a callback at the earliest processing-time timer.
    pub fn request_next_processing(&self) {
        if let Some(t) = self.processing.peek() {
            self.clock.request(t);
        }
    }

    /// Number of timers registered.
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }
}
