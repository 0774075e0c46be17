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

/// Event- and processing-time timers of one keyed operator subtask, for operators built
/// with [`crate::DataStream::transform`] as for the API's own keyed operators.
pub struct InternalTimers<K, N> {
    /// Timers that fire when the watermark passes them.
    pub event: TimerQueue<K, N>,
    /// Timers that fire when the wall clock passes them.
    pub processing: TimerQueue<K, N>,
    /// The task's processing-time service, asked for callbacks.
    pub clock: ProcessingTimeService,
}

impl<K: StateKey, N: Namespace> InternalTimers<K, N> {
    /// No timers; processing-time callbacks are requested from `clock`.
    pub fn new(clock: ProcessingTimeService) -> Self {
        InternalTimers {
            event: TimerQueue::default(),
            processing: TimerQueue::default(),
            clock,
        }
    }

    /// Registers an event-time timer (again: no duplicate).
    pub fn register_event(&mut self, time: i64, key: K, ns: N) {
        self.event.register(time, key, ns);
    }

    /// Deletes an event-time timer, if registered.
    pub fn delete_event(&mut self, time: i64, key: &K, ns: &N) {
        self.event.delete(time, key, ns);
    }

    /// Registers a processing-time timer and asks for a callback at its time.
    pub fn register_processing(&mut self, time: i64, key: K, ns: N) {
        if self.processing.register(time, key, ns) {
            self.clock.request(time);
        }
    }

    /// Deletes a processing-time timer, if registered.
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

    /// True if no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.event.is_empty() && self.processing.is_empty()
    }

    /// Writes both timer queues into a snapshot, per key group.
    pub fn snapshot(
        &self,
        max_parallelism: u32,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> weir_state::Result<()> {
        self.event.snapshot(EVENT_TIMERS, max_parallelism, st)?;
        self.processing
            .snapshot(PROCESSING_TIMERS, max_parallelism, st)
    }

    /// Registers the timers of a restored snapshot; processing-time timers that are due
    /// fire at the task's next processing-time callback.
    pub fn restore(&mut self, restored: &weir_state::RestoredState) -> weir_state::Result<()> {
        self.event.restore(EVENT_TIMERS, restored)?;
        self.processing.restore(PROCESSING_TIMERS, restored)?;
        self.request_next_processing();
        Ok(())
    }
}

/// Snapshot section of event-time timers.
const EVENT_TIMERS: &str = "timers/event";
/// Snapshot section of processing-time timers.
const PROCESSING_TIMERS: &str = "timers/processing";

/// Writes a keyed operator's state and timers into its snapshot; the store (RocksDB)
/// last, after the operator wrote its other tables back.
pub fn snapshot_keyed<K: StateKey, N: Namespace>(
    info: &weir_runtime::operator::OperatorInfo,
    barrier: &weir_runtime::checkpoint::CheckpointBarrier,
    backend: &mut weir_state::KeyedStateBackend<K>,
    timers: &InternalTimers<K, N>,
    st: &mut weir_state::OperatorSubtaskState,
) -> weir_runtime::Result<()> {
    let shared = barrier.shared_state_dir();
    backend
        .snapshot_with_store(barrier.is_savepoint(), shared.as_deref(), st)
        .and_then(|()| timers.snapshot(info.max_parallelism, st))
        .map_err(|e| state_error(info, "snapshot", e))
}

/// Loads a keyed operator's state and timers from a restored snapshot.
pub fn restore_keyed<K: StateKey, N: Namespace>(
    info: &weir_runtime::operator::OperatorInfo,
    backend: &mut weir_state::KeyedStateBackend<K>,
    timers: &mut InternalTimers<K, N>,
    restored: &weir_state::RestoredState,
) -> weir_runtime::Result<()> {
    backend
        .restore(restored)
        .and_then(|()| timers.restore(restored))
        .map_err(|e| state_error(info, "restore", e))
}

/// A state error of operator `info`, doing `what`.
pub fn state_error(
    info: &weir_runtime::operator::OperatorInfo,
    what: &str,
    e: weir_state::StateError,
) -> weir_runtime::RuntimeError {
    weir_runtime::RuntimeError::state(
        format!(
            "cannot {what} the state of operator '{}' (subtask {})",
            info.name, info.subtask
        ),
        e,
    )
}
