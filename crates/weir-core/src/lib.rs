//! The vocabulary every Weir layer shares: identifiers, key groups, execution configuration
//! and the [`JobGraph`] as plain, serialisable data.
//!
//! This crate is deliberately small: no threads, no I/O, no user code. Everything here can
//! cross a process boundary.

pub mod checkpoint_config;
pub mod config;
pub mod error;
pub mod ids;
pub mod job_graph;
pub mod key_group;
pub mod time;

pub use checkpoint_config::{
    BarrierAlignment, CheckpointConfig, CheckpointingMode, RestartStrategy, RestoreSettings,
};
pub use config::{ExecutionConfig, StateBackendConfig, StateBackendKind, TaskThreadScheduling};
pub use error::{CoreError, Result};
pub use ids::{JobId, NodeId, VertexId};
pub use job_graph::{JobEdge, JobGraph, JobVertex, PartitionerKind};
pub use key_group::KeyGroupRange;
