//! Per-operator record counters, kept as plain integers on the task thread and reported when
//! the task ends.

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
