//! A checkpoint's or savepoint's metadata, and how a restored job finds its state in it.
//!
//! The metadata names, per operator uid, the parallelism and max parallelism it ran with and
//! one state file per subtask with the key groups it held. A new subtask reads the files of
//! the old subtasks whose key groups overlap its own range (all of them when the
//! parallelism changed, for list state), so rescaling is a matter of choosing files.

use crate::error::{Result, StateError};
use crate::operator_state::{redistribute, Redistribution};
use crate::snapshot::{RestoredState, TaskStateSnapshot};
use crate::storage::{CheckpointStorage, METADATA_FILE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use weir_core::KeyGroupRange;

/// Whether a snapshot is a periodic checkpoint or a user's savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// Taken by the checkpoint coordinator; owned and cleaned up by the job.
    Checkpoint,
    /// Taken on request; owned by the user.
    Savepoint,
}

/// One subtask's state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskStateHandle {
    /// Subtask index.
    pub subtask: u32,
    /// File name, relative to the snapshot's directory.
    pub file: String,
    /// Bytes of the file.
    pub size: u64,
    /// First key group the subtask held.
    pub key_group_start: u32,
    /// One past the last key group it held.
    pub key_group_end: u32,
}

/// The state of one operator in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStateMeta {
    /// Operator name, for messages.
    pub name: String,
    /// Parallelism it ran with.
    pub parallelism: u32,
    /// Its max parallelism (number of key groups).
    pub max_parallelism: u32,
    /// Subtasks that wrote state.
    pub subtasks: Vec<SubtaskStateHandle>,
    /// Some subtask wrote union list state (every new subtask reads every file for it).
    #[serde(default)]
    pub has_union_state: bool,
}

/// The `_metadata` of a checkpoint or savepoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMetadata {
    /// The job that took it.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Trigger time, ms since the epoch.
    pub timestamp_ms: i64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Operator uid -> its state.
    pub operators: BTreeMap<String, OperatorStateMeta>,
}

impl SnapshotMetadata {
    /// Reads the `_metadata` of the snapshot directory `storage`.
    pub fn read(storage: &CheckpointStorage) -> Result<Self> {
        let rel = METADATA_FILE;
        let bytes = storage.get(rel)?;
        serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: storage.location_of(rel),
            message: format!("unreadable metadata: {e}"),
        })
    }

    /// Writes the `_metadata` of the snapshot directory `storage`, atomically: the snapshot
    /// exists from this moment on.
    pub fn write(&self, storage: &CheckpointStorage) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Codec {
            action: "encode",
            what: "checkpoint metadata".into(),
            message: e.to_string(),
        })?;
        storage.put(METADATA_FILE, bytes)
    }

    /// Total bytes of state files.
    pub fn size(&self) -> u64 {
        self.operators
            .values()
            .flat_map(|o| o.subtasks.iter().map(|s| s.size))
            .sum()
    }
}

/// Reads a snapshot's state files for the subtasks of a restored job, each file once.
pub struct SnapshotReader {
    storage: Arc<CheckpointStorage>,
    meta: Arc<SnapshotMetadata>,
    files: HashMap<String, Rc<TaskStateSnapshot>>,
}

impl SnapshotReader {
    /// A reader of the snapshot directory `storage`, described by `meta`.
    pub fn new(storage: Arc<CheckpointStorage>, meta: Arc<SnapshotMetadata>) -> Self {
        SnapshotReader {
            storage,
            meta,
            files: HashMap::new(),
        }
    }

    fn file(&mut self, name: &str) -> Result<Rc<TaskStateSnapshot>> {
        if let Some(f) = self.files.get(name) {
            return Ok(f.clone());
        }
        let bytes = self.storage.get(name)?;
        let snap = Rc::new(TaskStateSnapshot::from_file_bytes(
            &self.storage.location_of(name),
            &bytes,
        )?);
        self.files.insert(name.to_string(), snap.clone());
        Ok(snap)
    }

    /// The state of operator `uid` for subtask `subtask` of `parallelism`, with
    /// `max_parallelism` key groups; `None` if the snapshot holds nothing for `uid`.
    pub fn restore_operator(
        &mut self,
        uid: &str,
        subtask: u32,
        parallelism: u32,
        max_parallelism: u32,
    ) -> Result<Option<RestoredState>> {
        let Some(op) = self.meta.operators.get(uid).cloned() else {
            return Ok(None);
        };
        let has_keyed_state = op
            .subtasks
            .iter()
            .any(|s| s.key_group_end > s.key_group_start);
        if has_keyed_state && op.max_parallelism != max_parallelism {
            return Err(StateError::Restore(format!(
                "operator '{}' (uid '{uid}') was snapshotted with max parallelism {} and now has {max_parallelism}; the max parallelism of an operator with keyed state cannot change",
                op.name, op.max_parallelism
            )));
        }
        let range = KeyGroupRange::for_subtask(max_parallelism, parallelism, subtask);
        let mut out = RestoredState {
            checkpoint_id: self.meta.checkpoint_id,
            ..Default::default()
        };
        let mut lists_by_old: BTreeMap<String, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
        let same_parallelism = op.parallelism == parallelism;
        for h in &op.subtasks {
            let overlaps = h.key_group_start < range.end && range.start < h.key_group_end;
            let needed = if same_parallelism {
                h.subtask == subtask
            } else {
                true
            };
            if !overlaps && !needed {
                continue;
            }
            let file = self.file(&h.file)?;
            let Some(state) = file.operators.get(uid) else {
                continue;
            };
            out.absorb_keyed(state, range);
            for (name, elems) in &state.lists {
                let per_old = lists_by_old.entry(name.clone()).or_default();
                per_old.resize(op.parallelism.max(h.subtask + 1) as usize, Vec::new());
                per_old[h.subtask as usize] = elems.clone();
            }
        }
        // Union state is every subtask's elements, also at an unchanged parallelism.
        if same_parallelism && op.has_union_state {
            for h in op.subtasks.iter().filter(|h| h.subtask != subtask) {
                let file = self.file(&h.file)?;
                if let Some(state) = file.operators.get(uid) {
                    for (name, elems) in &state.unions {
                        out.unions
                            .entry(name.clone())
                            .or_default()
                            .extend(elems.iter().cloned());
                    }
                }
            }
        }
        for (name, per_old) in lists_by_old {
            let mine = if same_parallelism {
                per_old
                    .into_iter()
                    .nth(subtask as usize)
                    .unwrap_or_default()
            } else {
                redistribute(per_old, parallelism as usize, Redistribution::EvenSplit)
                    .into_iter()
                    .nth(subtask as usize)
                    .unwrap_or_default()
            };
            out.lists.insert(name, mine);
        }
        Ok(Some(out))
    }
}
