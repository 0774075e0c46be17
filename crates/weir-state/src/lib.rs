//! Keyed and operator state for Weir operators.
//!
//! Keyed state is laid out per key group ([`KeyGroupedMap`]): each subtask owns a contiguous
//! [`KeyGroupRange`] and keeps one hash table per key group, so that snapshots can be written
//! and restored per key group and a job can be rescaled by handing key groups to other
//! subtasks.

pub mod error;
pub mod key_grouped;

pub use error::{Result, StateError};
pub use key_grouped::KeyGroupedMap;
pub use weir_core::KeyGroupRange;
