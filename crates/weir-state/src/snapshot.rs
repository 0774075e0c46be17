//! Snapshots of operator state as written to checkpoints, and what a restored subtask gets.
//!
//! Keyed state is written per key group, as named sections (`state/<name>`, `timers/event`,
//! ...), so that a job restored at another parallelism reads exactly the key groups its new
//! subtasks own, from whichever old subtasks held them. Operator (non-keyed) state is a list
//! per name, redistributed by even split or broadcast as a union (Flink's list and union
//! list state).
//!
//! A task's snapshot is one file: a header (magic, version, CRC-32 and length of the
//! payload) followed by the bincode payload, so that a truncated or damaged file is detected
//! before anything is restored from it.
//!
//! Processing stalls only for a copy: state structures add *deferred* parts, closures that
//! own a copy of the structure taken at the barrier and encode it later, on the storage's
//! background threads ([`TaskStateSnapshot::resolve`]).

use crate::error::{Result, StateError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_core::KeyGroupRange;

/// Named pieces of one key group's state.
pub type KeyGroupSections = Vec<(String, Vec<u8>)>;

/// A part of a snapshot still to be encoded: it owns a copy of the state and writes it into
/// the operator's snapshot when run.
pub type DeferredPart = Box<dyn FnOnce(&mut OperatorSubtaskState) -> Result<()> + Send>;

/// A deferred part that encodes `per_kg` (a copy taken now) as sections called `section`.
pub fn defer_sections<E: Serialize + Send + 'static>(
    section: String,
    per_kg: Vec<(u32, E)>,
) -> DeferredPart {
    Box::new(move |st| {
        for (kg, entries) in per_kg {
            st.add_section(kg, &section, encode(&section, &entries)?);
        }
        Ok(())
    })
}

/// The deferred parts of an operator's snapshot (not part of the file).
#[derive(Default)]
pub struct Deferred(Vec<DeferredPart>);

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} deferred parts", self.0.len())
    }
}

/// The state of one operator subtask in a checkpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OperatorSubtaskState {
    /// Keyed state by key group.
    pub key_groups: BTreeMap<u32, KeyGroupSections>,
    /// List state, split evenly over subtasks on restore.
    pub lists: BTreeMap<String, Vec<Vec<u8>>>,
    /// Union list state: every subtask gets every element on restore.
    pub unions: BTreeMap<String, Vec<Vec<u8>>>,
    /// Keyed state kept as backend files (RocksDB incremental checkpoints), each covering
    /// a key-group range; a restored subtask gets those that overlap its own range.
    #[serde(default)]
    pub handles: Vec<KeyedStateHandle>,
    /// Copies of state to encode later, off the task thread.
    #[serde(skip)]
    pub deferred: Deferred,
}

/// A file of a job's shared state directory that a snapshot refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// The backend's name for it (RocksDB's SST file name).
    pub local: String,
    /// Its name in the shared directory.
    pub name: String,
    /// Its size in bytes, checked before a restore.
    pub size: u64,
}

/// Keyed state of one subtask kept as a state backend's own files: RocksDB's SST files,
/// shared between incremental checkpoints, and its small private files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateHandle {
    /// The backend that wrote it (`rocksdb`).
    pub backend: String,
    /// First key group it holds.
    pub key_group_start: u32,
    /// One past the last key group it holds.
    pub key_group_end: u32,
    /// The directory (path or URL) of the shared files.
    pub shared_dir: String,
    /// Shared files.
    pub shared: Vec<SharedFile>,
    /// Private files, inline: (local file name, bytes).
    pub private: Vec<(String, Vec<u8>)>,
}

/// Encodes `value` with bincode, naming `what` in errors.
pub fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| StateError::Codec {
        action: "encode",
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Decodes a value written by [`encode`]; bytes left over are an error (a value of another
/// type that happens to decode from a prefix is not taken for this one).
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .deserialize(bytes)
        .map_err(|e| StateError::Codec {
            action: "decode",
            what: what.to_string(),
            message: e.to_string(),
        })
}

impl OperatorSubtaskState {
    /// Adds a section of key group `kg`.
    pub fn add_section(&mut self, kg: u32, name: &str, bytes: Vec<u8>) {
        self.key_groups
            .entry(kg)
            .or_default()
            .push((name.to_string(), bytes));
    }

    /// Adds the elements of list state `name`.
    pub fn add_list(&mut self, name: &str, elements: Vec<Vec<u8>>) {
        self.lists
            .entry(name.to_string())
            .or_default()
            .extend(elements);
    }

    /// Adds the elements of union list state `name`.
    pub fn add_union(&mut self, name: &str, elements: Vec<Vec<u8>>) {
        self.unions
            .entry(name.to_string())
            .or_default()
            .extend(elements);
    }

    /// Adds a part to encode later (see the module doc).
    pub fn defer(&mut self, part: DeferredPart) {
        self.deferred.0.push(part);
    }

    /// Encodes the deferred parts.
    pub fn resolve(&mut self) -> Result<()> {
        for part in std::mem::take(&mut self.deferred.0) {
            part(self)?;
        }
        Ok(())
    }

    /// True if nothing was written (or deferred).
    pub fn is_empty(&self) -> bool {
        self.key_groups.is_empty()
            && self.lists.is_empty()
            && self.unions.is_empty()
            && self.handles.is_empty()
            && self.deferred.0.is_empty()
    }

    /// Bytes of state, roughly: the sum of section and element sizes.
    pub fn size(&self) -> u64 {
        let kg: usize = self
            .key_groups
            .values()
            .flat_map(|s| s.iter().map(|(_, b)| b.len()))
            .sum();
        let lists: usize = self
            .lists
            .values()
            .chain(self.unions.values())
            .flat_map(|l| l.iter().map(Vec::len))
            .sum();
        let handles: usize = self
            .handles
            .iter()
            .flat_map(|h| h.private.iter().map(|(_, b)| b.len()))
            .sum();
        (kg + lists + handles) as u64
    }

    /// The names of the shared files the handles refer to (in their shared directory).
    pub fn shared_files(&self) -> Vec<String> {
        self.handles
            .iter()
            .flat_map(|h| h.shared.iter().map(|f| f.name.clone()))
            .collect()
    }
}

/// The snapshot of one task: the states of its chained operators, by operator uid.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TaskStateSnapshot {
    /// Operator uid -> state. Operators without state are absent.
    pub operators: BTreeMap<String, OperatorSubtaskState>,
}

const MAGIC: &[u8; 8] = b"WEIRSNP1";
const HEADER: usize = 8 + 4 + 8;

impl TaskStateSnapshot {
    /// Encodes every operator's deferred parts; operators left without state are dropped.
    pub fn resolve(&mut self) -> Result<()> {
        for st in self.operators.values_mut() {
            st.resolve()?;
        }
        self.operators.retain(|_, st| !st.is_empty());
        Ok(())
    }

    /// The file bytes: header and payload (resolve first).
    pub fn to_file_bytes(&self) -> Result<Vec<u8>> {
        let payload = encode("task snapshot", self)?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Reads a file written by [`Self::to_file_bytes`]; `path` names it in errors.
    pub fn from_file_bytes(path: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = |m: String| StateError::Corrupt {
            path: path.to_string(),
            message: m,
        };
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(corrupt(format!(
                "not a Weir snapshot file ({} bytes, header missing)",
                bytes.len()
            )));
        }
        let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let len = u64::from_le_bytes(len);
        let payload = &bytes[HEADER..];
        if payload.len() as u64 != len {
            return Err(corrupt(format!(
                "truncated: the header announces {len} bytes of state, the file has {}",
                payload.len()
            )));
        }
        if crc32fast::hash(payload) != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        decode(path, payload).map_err(|e| corrupt(e.to_string()))
    }
}

/// The state a restored operator subtask starts with: the key groups it owns, and its share
/// of the operator state.
#[derive(Clone, Debug, Default)]
pub struct RestoredState {
    /// The checkpoint this comes from.
    pub checkpoint_id: u64,
    /// Sections of the key groups this subtask owns.
    pub key_groups: BTreeMap<u32, KeyGroupSections>,
    /// This subtask's share of each list state.
    pub lists: BTreeMap<String, Vec<Vec<u8>>>,
    /// Every element of each union list state.
    pub unions: BTreeMap<String, Vec<Vec<u8>>>,
    /// Backend files whose key groups overlap this subtask's.
    pub handles: Vec<KeyedStateHandle>,
}

impl RestoredState {
    /// The sections called `name`, by key group.
    pub fn sections<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        self.key_groups.iter().flat_map(move |(kg, secs)| {
            secs.iter()
                .filter(move |(n, _)| n == name)
                .map(move |(_, b)| (*kg, b.as_slice()))
        })
    }

    /// Every section, by key group.
    pub fn all_sections(&self) -> impl Iterator<Item = (u32, &str, &[u8])> {
        self.key_groups.iter().flat_map(|(kg, secs)| {
            secs.iter()
                .map(move |(n, b)| (*kg, n.as_str(), b.as_slice()))
        })
    }

    /// Checks that every shared file the handles refer to exists with its recorded size,
    /// so that a checkpoint whose shared files were lost is refused before any task
    /// restores from it.
    pub fn verify_shared_files(&self) -> Result<()> {
        for h in &self.handles {
            let storage = crate::storage::CheckpointStorage::open(&h.shared_dir)?;
            for f in &h.shared {
                match storage.size(&f.name) {
                    Ok(size) if size == f.size => {}
                    Ok(size) => {
                        return Err(StateError::Corrupt {
                            path: storage.location_of(&f.name),
                            message: format!(
                            "the shared state file has {size} bytes, the checkpoint recorded {}",
                            f.size
                        ),
                        })
                    }
                    Err(e) => {
                        return Err(StateError::Corrupt {
                            path: storage.location_of(&f.name),
                            message: format!(
                                "a shared state file of the checkpoint is missing: {e}"
                            ),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// This subtask's elements of list state `name`.
    pub fn list(&self, name: &str) -> &[Vec<u8>] {
        self.lists.get(name).map_or(&[], Vec::as_slice)
    }

    /// All elements of union list state `name`.
    pub fn union(&self, name: &str) -> &[Vec<u8>] {
        self.unions.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds what `old` (the state of one old subtask) holds for this subtask: the key
    /// groups within `range`, and the unions. Lists are assigned by the caller
    /// ([`crate::operator_state::redistribute`]).
    pub fn absorb_keyed(&mut self, old: &OperatorSubtaskState, range: KeyGroupRange) {
        for (kg, secs) in &old.key_groups {
            if range.contains(*kg) {
                self.key_groups
                    .entry(*kg)
                    .or_default()
                    .extend(secs.iter().cloned());
            }
        }
        for h in &old.handles {
            if h.key_group_start < range.end && range.start < h.key_group_end {
                self.handles.push(h.clone());
            }
        }
        for (name, elems) in &old.unions {
            self.unions
                .entry(name.clone())
                .or_default()
                .extend(elems.iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_damage_detection() {
        let mut s = OperatorSubtaskState::default();
        s.add_section(3, "state/count", encode("x", &vec![(1u32, 2u64)]).unwrap());
        s.add_list("splits", vec![vec![1, 2, 3]]);
        let mut t = TaskStateSnapshot::default();
        t.operators.insert("op".into(), s);
        let bytes = t.to_file_bytes().unwrap();
        let back = TaskStateSnapshot::from_file_bytes("f", &bytes).unwrap();
        assert_eq!(back.operators["op"].lists["splits"], vec![vec![1, 2, 3]]);

        let truncated = &bytes[..bytes.len() - 3];
        let e = TaskStateSnapshot::from_file_bytes("f", truncated).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let e = TaskStateSnapshot::from_file_bytes("f", &flipped).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let e = TaskStateSnapshot::from_file_bytes("f", b"hello").unwrap_err();
        assert!(e.to_string().contains("not a Weir snapshot"), "{e}");
    }
}
