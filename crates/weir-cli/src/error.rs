//! The CLI's error type: one line a user can act on.

use thiserror::Error;

/// Why a `weir` command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// A cluster role failed.
    #[error(transparent)]
    Cluster(#[from] weir_cluster::ClusterError),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was attempted.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Usage(String),
    /// A program `weir` ran failed and said why itself; `weir` exits with its status.
    #[error("the program exited with status {0}")]
    ProgramFailed(u8),
}

impl CliError {
    /// An I/O error with what was attempted.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// Result with [`CliError`].
pub type Result<T> = std::result::Result<T, CliError>;
