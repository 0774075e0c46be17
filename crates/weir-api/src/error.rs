//! The API layer's error type.

use thiserror::Error;
use weir_cluster::ClusterError;
use weir_core::CoreError;

/// Why a job could not be built or did not succeed.
#[derive(Debug, Clone, Error)]
pub enum ApiError {
    /// The program describes an invalid graph or configuration.
    #[error(transparent)]
    InvalidProgram(#[from] CoreError),
    /// The job failed, was cancelled, or could not be scheduled.
    #[error("job '{job}' failed: {source}")]
    JobFailed {
        /// The job's name.
        job: String,
        /// The cluster's account of the failure.
        #[source]
        source: ClusterError,
    },
    /// The cluster refused or lost the job.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A job on a cluster of processes cannot be submitted or asked this from here.
    #[error("{0}")]
    Client(String),
}

impl ApiError {
    /// The cluster-level cause, if the job ran and failed.
    pub fn cluster_error(&self) -> Option<&ClusterError> {
        match self {
            ApiError::JobFailed { source, .. } | ApiError::Cluster(source) => Some(source),
            _ => None,
        }
    }
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
