//! Keyed and operator state for Weir operators.
//!
//! - [`KeyedStateBackend`]: the keyed state of one operator subtask: the current key and
//!   its registered [`StateTable`]s, laid out per key group so that snapshots can be written
//!   and restored per key group and a job can be rescaled by moving key groups.
//! - [`KeyedStore`]: where the tables live: hash tables on the heap ([`HeapTable`]) or one
//!   embedded RocksDB instance per operator subtask ([`rocks`]), with incremental
//!   checkpoints that share SST files; map states keep one RocksDB entry per user key
//!   ([`MapTable`]), list appends are merges, and all instances of a process share one
//!   memory budget ([`RocksMemory`]).
//! - [`state`]: the typed handles functions use: [`ValueState`], [`ListState`],
//!   [`MapState`], [`ReducingState`], [`AggregatingState`], with [`StateTtlConfig`].
//! - [`TimerQueue`]: event- and processing-time timers by (time, key, namespace).
//! - [`operator_state`]: non-keyed list state redistribution (even split, union).

pub mod aggregate;
pub mod backend;
pub mod error;
pub mod heap_table;
pub mod key_grouped;
pub mod map_table;
pub mod metadata;
pub mod operator_state;
pub mod rocks;
pub mod rocks_map;
pub mod rocks_memory;
pub mod snapshot;
pub mod state;
pub mod storage;
pub mod table;
pub mod timers;
pub mod ttl;

pub use aggregate::AggregateFunction;
pub use backend::{KeyedStateBackend, Namespace, StateId, StateKey, StateValue};
pub use error::{Result, StateError};
pub use heap_table::HeapTable;
pub use key_grouped::KeyGroupedMap;
pub use map_table::MapTable;
pub use metadata::{SnapshotKind, SnapshotMetadata, SnapshotReader};
pub use rocks_memory::RocksMemory;
pub use snapshot::KeyedStateHandle;
pub use snapshot::{OperatorSubtaskState, RestoredState, TaskStateSnapshot};
pub use state::{
    AggregatingState, KeyedState, ListState, MapState, ReducingState, StateContext, ValueState,
};
pub use storage::CheckpointStorage;
pub use table::{KeyedStore, StateTable};
pub use timers::TimerQueue;
pub use ttl::{StateTtlConfig, StateVisibility, TtlUpdateType};
pub use weir_core::KeyGroupRange;
