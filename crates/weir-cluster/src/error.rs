//! The cluster layer's error type.

use std::sync::Arc;
use thiserror::Error;
use weir_core::JobId;
use weir_runtime::RuntimeError;

/// Why a job could not be run, or failed.
#[derive(Debug, Clone, Error)]
pub enum ClusterError {
    /// Not enough free slots appeared within the slot request timeout.
    #[error("could not allocate {needed} slots for job {job} within {waited_ms} ms: the cluster has {total} slots, {free} of them free; lower the job's parallelism, split fewer slot sharing groups, or start more TaskManagers/slots")]
    NotEnoughSlots {
        /// The job.
        job: JobId,
        /// Slots the job needs.
        needed: usize,
        /// Slots in the cluster.
        total: usize,
        /// Slots free when the wait ended.
        free: usize,
        /// How long the job waited.
        waited_ms: u64,
    },
    /// A task failed; `source` says why.
    #[error("task '{task}' (subtask {subtask} of {parallelism}) failed: {source}")]
    TaskFailed {
        /// The task's chain name.
        task: String,
        /// Subtask index, from 0.
        subtask: u32,
        /// Parallelism of the vertex.
        parallelism: u32,
        /// The task's error.
        #[source]
        source: Arc<RuntimeError>,
    },
    /// The job was cancelled by the user.
    #[error("job {0} was cancelled")]
    Cancelled(JobId),
    /// A job on a cluster failed; its JobManager gave the reason.
    #[error("job {job} failed: {message}")]
    RemoteJobFailed {
        /// The job.
        job: JobId,
        /// The reason, as the JobManager reported it.
        message: String,
    },
    /// The job's binary cannot run its job on a TaskManager: it built another graph, it
    /// did not arrive intact, or it exited before serving. Restarting cannot help, so the
    /// job fails at once.
    #[error("job {job} cannot run: {message}")]
    JobBinary {
        /// The job.
        job: JobId,
        /// Why, as the TaskManager or the worker said.
        message: String,
    },
    /// A task could not be deployed.
    #[error("cannot deploy job {job}: {message}")]
    Deployment {
        /// The job.
        job: JobId,
        /// What went wrong.
        message: String,
    },
    /// Checkpoints failed more often than the job tolerates.
    #[error("job {job}: {message}")]
    Checkpointing {
        /// The job.
        job: JobId,
        /// What failed.
        message: String,
    },
    /// A savepoint could not be taken.
    #[error("savepoint of job {job} failed: {message}")]
    Savepoint {
        /// The job.
        job: JobId,
        /// Why.
        message: String,
    },
    /// The job id is not known to the dispatcher.
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    /// A network endpoint could not be bound, reached or understood.
    #[error("{context}: {message}")]
    Network {
        /// What was attempted, e.g. "cannot bind the REST port 127.0.0.1:8081".
        context: String,
        /// Why it failed.
        message: String,
    },
    /// A role stopped answering (it shut down or crashed).
    #[error("{0} is not reachable")]
    Unreachable(String),
}

impl ClusterError {
    /// The runtime error at the root of a task failure, if that is what this is.
    pub fn task_error(&self) -> Option<&RuntimeError> {
        match self {
            ClusterError::TaskFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
