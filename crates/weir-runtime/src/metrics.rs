//! Per-operator record counters, kept as plain integers on the task thread and reported when
//! the task ends; a running task also publishes a copy about once a second ([`LiveMetrics`]).

use serde::{Deserialize, Serialize};

/// Records seen by one operator of one subtask.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMetrics {
    /// The StreamGraph node id of the operator.
    pub node: u32,
    /// Operator name.
    pub name: String,
    /// Records that entered the operator.
    pub records_in: u64,
    /// Records the operator emitted on its main output.
    pub records_out: u64,
    /// Keyed state, window and timer entries held when the metrics were taken.
    pub state_entries: u64,
}

/// Receives the metrics of every operator of a chain.
pub type MetricsVisitor<'a> = &'a mut dyn FnMut(&OperatorMetrics);

/// How often a running task publishes its counters to its [`LiveMetrics`].
pub const LIVE_METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A running task's per-operator counters as of its last publication: the task thread
/// copies them in (at most every [`LIVE_METRICS_INTERVAL`], when it flushes its output
/// buffers on the buffer timeout), readers take a copy. The counters themselves stay plain
/// integers on the task thread.
#[derive(Clone, Default)]
pub struct LiveMetrics(std::sync::Arc<std::sync::Mutex<Vec<OperatorMetrics>>>);

impl LiveMetrics {
    /// Replaces the published counters.
    pub fn publish(&self, metrics: Vec<OperatorMetrics>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = metrics;
    }

    /// The counters last published (empty before the first publication).
    pub fn snapshot(&self) -> Vec<OperatorMetrics> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
