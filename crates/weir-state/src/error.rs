//! The state layer's error type.

use thiserror::Error;

/// A state access that cannot be served.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StateError {
    /// A key hashed to a key group this subtask does not own: the stream was not partitioned
    /// by the same key (or with the same max parallelism) as the state.
    #[error("key group {key_group} is not owned by this subtask (it owns key groups {start}..{end}); was the stream keyed with key_by on the same key?")]
    KeyGroupOutOfRange {
        /// The key's key group.
        key_group: u32,
        /// First owned key group.
        start: u32,
        /// One past the last owned key group.
        end: u32,
    },
    /// State was accessed outside a keyed context (no current key).
    #[error("keyed state was accessed without a current key; keyed state is only available on a keyed stream (after key_by)")]
    NoCurrentKey,
    /// A state name was registered again with other types.
    #[error("state '{name}' is already registered with another value or namespace type")]
    TypeMismatch {
        /// The state's name.
        name: String,
    },
    /// An unknown state id.
    #[error("no state with id {0} is registered")]
    UnknownState(usize),
    /// State could not be encoded for a snapshot, or decoded from one.
    #[error("cannot {action} state '{what}': {message}")]
    Codec {
        /// "encode" or "decode".
        action: &'static str,
        /// Which state.
        what: String,
        /// The codec's message.
        message: String,
    },
    /// A snapshot file is damaged: wrong header, checksum or length.
    #[error("checkpoint file '{path}' is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing checkpoint storage failed.
    #[error("checkpoint storage '{location}': {message}")]
    Storage {
        /// The file or directory.
        location: String,
        /// The storage's message.
        message: String,
    },
    /// A snapshot cannot be restored into this job.
    #[error("cannot restore: {0}")]
    Restore(String),
    /// The state backend (RocksDB, its working directory) failed.
    #[error("state backend: {0}")]
    Backend(String),
}

/// Result with [`StateError`].
pub type Result<T, E = StateError> = std::result::Result<T, E>;
