//! Job status and the result of a finished job.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use weir_core::JobId;

/// A job's lifecycle state (Flink's `JobStatus`, the subset Weir uses so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Accepted, waiting for slots.
    Created,
    /// Tasks are deployed and running.
    Running,
    /// A task failed; the others are being cancelled.
    Failing,
    /// Ended with a failure.
    Failed,
    /// Cancellation requested.
    Cancelling,
    /// Ended by cancellation.
    Canceled,
    /// Every task finished.
    Finished,
}

impl JobStatus {
    /// True for the end states.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::Canceled | JobStatus::Finished
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Failing => "FAILING",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Finished => "FINISHED",
        })
    }
}

/// Record counts of one operator, summed over its subtasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSummary {
    /// StreamGraph node id.
    pub node: u32,
    /// Operator name.
    pub name: String,
    /// Records in, over all subtasks.
    pub records_in: u64,
    /// Records out (main output), over all subtasks.
    pub records_out: u64,
    /// State entries (keyed state, windows, timers) held at the end, over all subtasks.
    pub state_entries: u64,
}

/// What a finished job reports (Flink's `JobExecutionResult`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobExecutionResult {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub job_name: String,
    /// Wall time from deployment to the end of the last task.
    pub net_runtime: Duration,
    /// Per-operator record counts, in StreamGraph node order.
    pub operators: Vec<OperatorSummary>,
    /// Total time writers waited for buffers because consumers were slower, in ms.
    pub backpressured_ms: u64,
}

impl JobExecutionResult {
    /// The counts of the first operator called `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorSummary> {
        self.operators.iter().find(|o| o.name == name)
    }
}
