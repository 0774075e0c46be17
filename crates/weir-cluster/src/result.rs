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
    /// A task failed; the job waits for its restart delay and restores from a checkpoint.
    Restarting,
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

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Created,
        JobStatus::Running,
        JobStatus::Failing,
        JobStatus::Failed,
        JobStatus::Cancelling,
        JobStatus::Canceled,
        JobStatus::Finished,
        JobStatus::Restarting,
    ];

    /// The status Flink's REST API names `name` (`RUNNING`, ...).
    pub fn from_flink_name(name: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|s| s.to_string() == name)
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
            JobStatus::Restarting => "RESTARTING",
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

/// A job id in text formats: its 32 hex digits.
mod job_id_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    use weir_core::JobId;

    pub fn serialize<S: Serializer>(id: &JobId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<JobId, D::Error> {
        let s = String::deserialize(d)?;
        u128::from_str_radix(&s, 16)
            .ok()
            .filter(|_| s.len() == 32)
            .map(JobId)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a job id")))
    }
}

/// What a finished job reports (Flink's `JobExecutionResult`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobExecutionResult {
    /// The job (as its 32 hex digits in JSON, which has no 128-bit numbers).
    #[serde(with = "job_id_hex")]
    pub job_id: JobId,
    /// Its name.
    pub job_name: String,
    /// Wall time from deployment to the end of the last task.
    pub net_runtime: Duration,
    /// Per-operator record counts, in StreamGraph node order.
    pub operators: Vec<OperatorSummary>,
    /// Total time writers waited for buffers because consumers were slower, in ms.
    pub backpressured_ms: u64,
    /// Restarts after task failures.
    pub restarts: u32,
    /// Checkpoint statistics.
    pub checkpoints: CheckpointHistory,
}

/// How a checkpoint ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointStatus {
    /// Its metadata is written.
    Completed,
    /// It was aborted, with the reason.
    Failed(String),
}

/// The state size of one operator in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCheckpointStats {
    /// Operator uid.
    pub uid: String,
    /// Operator name.
    pub name: String,
    /// Bytes of state over all subtasks.
    pub size_bytes: u64,
}

/// Statistics of one checkpoint (Flink's checkpoint history entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Checkpoint id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub savepoint: bool,
    /// How it ended.
    pub status: CheckpointStatus,
    /// Trigger time, ms since the epoch.
    pub trigger_timestamp_ms: i64,
    /// Milliseconds from the trigger to completion (or abort).
    pub duration_ms: u64,
    /// Bytes of state written.
    pub size_bytes: u64,
    /// Longest barrier alignment of a task, in ms.
    pub alignment_ms: u64,
    /// Longest synchronous (processing-stalling) part of a task's snapshot, in ms.
    pub sync_ms: u64,
    /// Longest background upload of a task, in ms.
    pub async_ms: u64,
    /// Where it is stored, if complete.
    pub location: Option<String>,
    /// Per-operator state sizes.
    pub operators: Vec<OperatorCheckpointStats>,
}

/// Counts and history of a job's checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHistory {
    /// Checkpoints triggered.
    pub triggered: u64,
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints that failed or were aborted.
    pub failed: u64,
    /// Every checkpoint that ended, oldest first.
    pub history: Vec<CheckpointStats>,
    /// The checkpoint or savepoint the job last restored from: (id, location).
    pub restored_from: Option<(u64, String)>,
}

impl CheckpointHistory {
    /// The latest completed checkpoint.
    pub fn latest_completed(&self) -> Option<&CheckpointStats> {
        self.history
            .iter()
            .rev()
            .find(|c| c.status == CheckpointStatus::Completed)
    }
}

impl JobExecutionResult {
    /// The counts of the first operator called `name`.
    pub fn operator(&self, name: &str) -> Option<&OperatorSummary> {
        self.operators.iter().find(|o| o.name == name)
    }
}

/// A failure of a job's execution attempt, as the exception history keeps it (Flink's
/// `/jobs/{id}/exceptions` entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobException {
    /// When the attempt failed, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The failure's kind (the error's variant).
    pub name: String,
    /// The failure's message, with its causes.
    pub message: String,
    /// The failed task, `name (subtask/parallelism)`, when a task failed.
    pub task: Option<String>,
}

/// A job's failures, oldest first, shared by its JobMaster and the REST API.
pub type ExceptionHistory = std::sync::Arc<std::sync::Mutex<Vec<JobException>>>;

/// When a job was submitted and when it ended, in ms since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobTimes {
    /// Submission.
    pub start_ms: u64,
    /// The end; `None` while the job runs.
    pub end_ms: Option<u64>,
}

/// Now, in ms since the Unix epoch.
pub(crate) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
