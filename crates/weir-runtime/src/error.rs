//! The runtime's error type.

use thiserror::Error;

/// Why a task (and with it, the job) could not go on.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// User code panicked; names the operator and subtask so the user can find it.
    #[error("user function of operator '{operator}' (subtask {subtask}) panicked: {message}")]
    UserPanic {
        /// Operator name.
        operator: String,
        /// Subtask index, from 0.
        subtask: u32,
        /// The panic's message.
        message: String,
    },
    /// The task was cancelled (the job was cancelled or another task failed).
    #[error("task was cancelled")]
    Cancelled,
    /// A record could not be encoded or decoded.
    #[error("{context}: {message}")]
    Codec {
        /// What was being encoded or decoded, and where.
        context: String,
        /// The codec's message.
        message: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which path or address.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operator or source reported a failure.
    #[error("operator '{operator}' (subtask {subtask}) failed: {message}")]
    Operator {
        /// Operator name.
        operator: String,
        /// Subtask index, from 0.
        subtask: u32,
        /// What went wrong.
        message: String,
    },
    /// Keyed or operator state failed (access, snapshot or storage).
    #[error("{context}: {source}")]
    State {
        /// Which operator or task, doing what.
        context: String,
        /// The state layer's error.
        #[source]
        source: weir_state::StateError,
    },
    /// A task could not restore its state from checkpoint `checkpoint_id`.
    #[error("restoring from checkpoint {checkpoint_id} failed: {source}")]
    Restore {
        /// The checkpoint (or savepoint) id.
        checkpoint_id: u64,
        /// Why.
        #[source]
        source: weir_state::StateError,
    },
    /// Any other failure, with its context.
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// An I/O error with the context it happened in.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }

    /// A state error with the context it happened in.
    pub fn state(context: impl Into<String>, source: weir_state::StateError) -> Self {
        RuntimeError::State {
            context: context.into(),
            source,
        }
    }

    /// True if this error only reports that the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RuntimeError::Cancelled)
    }
}

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
