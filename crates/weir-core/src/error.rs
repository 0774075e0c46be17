//! Errors raised while validating configuration and graphs.

use thiserror::Error;

/// A problem with a job's configuration or graph, found before anything runs.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CoreError {
    /// A parallelism outside `1..=max_parallelism`.
    #[error("invalid parallelism {parallelism} for '{what}': {reason}")]
    InvalidParallelism {
        /// The operator or setting the value belongs to.
        what: String,
        /// The rejected value.
        parallelism: i64,
        /// Why it was rejected.
        reason: String,
    },
    /// A max parallelism outside `1..=32768` or below the parallelism.
    #[error("invalid max parallelism {max_parallelism} for '{what}': {reason}")]
    InvalidMaxParallelism {
        /// The operator or setting the value belongs to.
        what: String,
        /// The rejected value.
        max_parallelism: i64,
        /// Why it was rejected.
        reason: String,
    },
    /// The graph cannot be built as described.
    #[error("invalid job graph: {0}")]
    InvalidGraph(String),
    /// A setting has a value the job cannot run with.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
