//! The task side of checkpoints: barriers, their alignment, and how a task reports a
//! snapshot to the checkpoint coordinator.
//!
//! A source task takes a snapshot when the coordinator triggers it and sends the barrier
//! downstream: in-band, after the records it emitted before, or for an unaligned checkpoint
//! as a priority event ahead of them ([`CheckpointBarrier::unaligned`]). A task with inputs takes its
//! snapshot once the barrier arrived on every input (see [`aligner`]). Taking a snapshot
//! serialises the chain's state to bytes on the task thread (the copy that stalls
//! processing); writing those bytes to storage runs in the background and ends with the
//! acknowledgement to the coordinator.

pub mod aligner;

pub use aligner::{BarrierAction, BarrierAligner, Held};

use serde::{Deserialize, Serialize};
use weir_core::VertexId;
pub use weir_state::SnapshotKind;

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBarrier {
    /// Checkpoint id, increasing per job.
    pub id: u64,
    /// Trigger time, ms since the epoch.
    pub timestamp: i64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Directory (path or URL) the snapshot files go to.
    pub target: String,
    /// An unaligned checkpoint's barrier, a priority event (Flink's unaligned
    /// `CheckpointOptions`): it overtakes the data queued before it on every channel, and
    /// the consumer records what it overtook as the checkpoint's in-flight data. Set only
    /// for checkpoints (never savepoints) of exactly-once jobs with unaligned checkpoints
    /// and no aligned timeout; other barriers travel in-band, behind the data.
    pub unaligned: bool,
}

impl CheckpointBarrier {
    /// True for a savepoint: snapshots are then full and self-contained.
    pub fn is_savepoint(&self) -> bool {
        self.kind == SnapshotKind::Savepoint
    }

    /// The job's directory of state files shared between checkpoints (`shared` next to the
    /// `chk-<id>` directories, as in Flink); `None` for savepoints.
    pub fn shared_state_dir(&self) -> Option<String> {
        if self.is_savepoint() {
            return None;
        }
        let target = self.target.trim_end_matches('/');
        let (parent, _) = target.rsplit_once('/')?;
        Some(weir_state::storage::join_location(parent, SHARED_STATE_DIR))
    }
}

/// The name of the shared state directory in a job's checkpoint directory.
pub const SHARED_STATE_DIR: &str = "shared";

/// The state name under which a task stores the in-flight data of an unaligned
/// checkpoint: one element per input channel (see [`InFlightChannel`]).
pub const IN_FLIGHT_STATE: &str = "channels";

/// The pseudo operator uid under which the in-flight data of vertex `vertex` is stored.
pub fn in_flight_uid(vertex: VertexId) -> String {
    format!("__in-flight/v{}", vertex.0)
}

/// The in-flight data of one input channel in an unaligned checkpoint. It can only be
/// restored by the same subtask of the same parallelism with the same channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightChannel {
    /// The subtask that recorded it.
    pub subtask: u32,
    /// Its parallelism.
    pub parallelism: u32,
    /// Its number of input channels.
    pub channels: u32,
    /// The channel.
    pub channel: u32,
    /// Encoded frames that arrived before the channel's barrier, after the snapshot.
    pub data: Vec<u8>,
}

/// What a task hears about a checkpoint after its barrier passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointNotice {
    /// Checkpoint `id` is complete: its metadata is written. Two-phase-commit sinks commit.
    Complete(u64),
    /// Checkpoint `id` will never complete; what it prepared may be discarded.
    Aborted(u64),
    /// Every task of the job finished its input, so nothing will be replayed: what was
    /// prepared at the end of input may be committed. The task ends after this.
    Final,
}

/// The size of one operator's part of a task snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorStateSize {
    /// Operator uid.
    pub uid: String,
    /// Bytes of state.
    pub bytes: u64,
    /// True if it holds keyed state (per key group).
    pub keyed: bool,
    /// True if it holds union list state.
    pub union: bool,
}

/// A task's report that its snapshot for a checkpoint is stored.
#[derive(Clone, Debug)]
pub struct CheckpointAck {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// The task's vertex.
    pub vertex: VertexId,
    /// The task's subtask index.
    pub subtask: u32,
    /// The state file, relative to the snapshot directory, and its size; `None` if no
    /// operator of the task holds state.
    pub file: Option<(String, u64)>,
    /// Per-operator state sizes.
    pub operators: Vec<OperatorStateSize>,
    /// Milliseconds from the first barrier to the last one on the task's inputs.
    pub alignment_ms: u64,
    /// Milliseconds the task spent taking the snapshot (processing stalled meanwhile).
    pub sync_ms: u64,
    /// Milliseconds the background upload took.
    pub async_ms: u64,
    /// Files of the job's shared state directory the snapshot refers to (incremental
    /// RocksDB checkpoints), by name.
    pub shared_files: Vec<String>,
}

/// Where tasks report snapshots (implemented by the cluster, towards the JobMaster).
pub trait CheckpointResponder: Send + Sync {
    /// The task's snapshot for a checkpoint is stored.
    fn acknowledge(&self, ack: CheckpointAck);
    /// The task could not take or store its snapshot.
    fn decline(&self, checkpoint_id: u64, vertex: VertexId, subtask: u32, reason: String);
    /// The task's input ended and its chain finished; it now waits for
    /// [`CheckpointNotice::Final`].
    fn finished_input(&self, vertex: VertexId, subtask: u32);
}
