//! The RocksDB keyed state backend: state larger than memory, and incremental checkpoints.
//!
//! One embedded RocksDB instance per operator subtask ([`RocksStore`]), in a working
//! directory under the configured local directory, deleted when the subtask ends. Every
//! state table of the operator (its registered states, a keyed reduce's values, window
//! contents, join buffers) lives in it, told apart by a two-byte *tag* per table:
//!
//! ```text
//! key   = [key group: u16 BE][tag: u16 BE][bincode(key)][bincode(namespace)]
//! value = bincode(value)
//! ```
//!
//! A map state's table keeps one entry per user key instead ([`crate::rocks_map`]), so
//! that reading or writing one user key never decodes the whole map:
//!
//! ```text
//! key   = [key group][tag][len: u32 BE][bincode(key)][bincode(namespace)][bincode(user key)]
//! value = bincode(value)
//! ```
//!
//! `len` is the length of the key and namespace bytes, which a snapshot needs to group a
//! map's entries again. A list appended to is written through a merge operator
//! ([`list_append`]): the list is not read to add an element.
//!
//! Keys and namespaces are compared by these bytes, so their encoding must be deterministic:
//! a key that holds a `HashMap` or `HashSet` (whose order varies) is not a valid RocksDB
//! state key, as in Flink, where RocksDB keys must have a deterministic serializer.
//!
//! Key groups come first, so a key group is one contiguous range (a rescaled restore keeps
//! exactly its ranges), and a table's entries of one key group are one prefix. Tags are
//! assigned on first use and stored in the database itself under `[0xFF, 0xFF]`, which no
//! key group reaches (at most 32 768 key groups); a third byte `1` there marks a map table.
//!
//! Departure from Flink, which uses one column family per state: a tag prefix keeps a
//! single column family, so no column-family handles have to be shared between the tables
//! and the store; the key layout is otherwise the same (key group first).
//!
//! All instances of a process share one memory budget ([`crate::rocks_memory`]): one block
//! cache that also carries the memtables.
//!
//! The write-ahead log is off, as in Flink: state is recovered from checkpoints, never from
//! the working directory. Timers stay on the heap under both backends (Flink's
//! `state.backend.rocksdb.timer-service.factory: HEAP`); they are written as sections per
//! key group with every snapshot.
//!
//! **Snapshots** start with a RocksDB checkpoint (hard links of the SST files after a
//! memtable flush): the only synchronous part. The rest runs later, off the task thread:
//! - *full* (every savepoint, and checkpoints unless incremental): the checkpoint copy is
//!   opened read-only and written as sections per key group, byte for byte in the heap
//!   backend's format (a bincode `Vec<((K, N), V)>` is its length followed by the key,
//!   namespace and value encodings, which is what the key suffix and value hold), so
//!   savepoints move between the two backends;
//! - *incremental*: SST files this store has not uploaded before go to the checkpoint
//!   root's `shared/` directory; the handle names every SST of the checkpoint and carries the
//!   small private files (MANIFEST, CURRENT, OPTIONS). A checkpoint shares the SST files
//!   that did not change with the checkpoints before it.
//!
//! **Restore** from a full snapshot goes through the typed tables (as on the heap); from an
//! incremental handle the files are downloaded, opened read-only, and the key groups this
//! subtask owns are copied in (tags mapped by table name). Departure from Flink, which opens
//! the downloaded instance directly when the key-group range is unchanged: copying is one
//! path for both the plain and the rescaled restore; its cost is a full first upload after a
//! restore.

use crate::error::{Result, StateError};
use crate::rocks_memory::RocksMemory;
use crate::snapshot::{KeyedStateHandle, OperatorSubtaskState, RestoredState, SharedFile};
use crate::storage::CheckpointStorage;
use rocksdb::{MergeOperands, Options, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_core::KeyGroupRange;

/// Prefix of the tag records (`[0xFF, 0xFF]` + table name -> tag).
const META: [u8; 2] = [0xFF, 0xFF];

/// The backend name in snapshot handles.
pub const ROCKSDB: &str = "rocksdb";

/// How an operator subtask's RocksDB instance is set up.
#[derive(Clone, Debug)]
pub struct RocksDbOptions {
    /// Where working directories go.
    pub local_dir: PathBuf,
    /// Checkpoints upload only new SST files.
    pub incremental: bool,
    /// The memory budget shared with the process's other instances; `None`: RocksDB's own
    /// per-instance defaults (for tests of a single instance).
    pub memory: Option<Arc<RocksMemory>>,
}

/// What a table holds per RocksDB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// One value per (key, namespace).
    Value,
    /// One entry per user key of a map per (key, namespace).
    Map,
}

impl TableKind {
    fn marker(self) -> Option<u8> {
        match self {
            TableKind::Value => None,
            TableKind::Map => Some(1),
        }
    }
}

/// The name of the merge operator that appends to lists.
const LIST_APPEND: &str = "weir_list_append";

/// RocksDB's merge operator for list state: concatenates bincode-encoded `Vec`s.
///
/// A bincode `Vec` is its length (u64, little endian) followed by its elements, so lists
/// concatenate without knowing the element type: the lengths add up and the element bytes
/// follow one another. Appending is then a merge of a one-element list, with no read. A
/// part shorter than a length is corruption: returning `None` makes RocksDB fail the read
/// with a corruption error rather than return a wrong list.
fn list_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let size: usize =
        existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    for part in existing.into_iter().chain(operands.iter()) {
        let n: [u8; 8] = part.get(..8)?.try_into().ok()?;
        count = count.checked_add(u64::from_le_bytes(n))?;
        out.extend_from_slice(&part[8..]);
    }
    out[..8].copy_from_slice(&count.to_le_bytes());
    Some(out)
}

pub(crate) fn rocks_err(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Backend(format!("RocksDB {what}: {e}"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StateError {
    StateError::Backend(format!("{what} '{}': {e}", path.display()))
}

/// A unique name for a working or snapshot directory.
fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let clean: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    format!(
        "{clean}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options to open a copy read-only (a snapshot, a restored checkpoint): the merge
/// operator, to read lists that still hold unmerged appends.
fn read_only_options() -> Options {
    let mut o = Options::default();
    o.set_merge_operator_associative(LIST_APPEND, list_append);
    o
}

fn db_options(options: &RocksDbOptions) -> Options {
    let mut o = read_only_options();
    o.create_if_missing(true);
    // State access is point lookups, many of keys not written yet (a new window, a new
    // key): bloom filters in the memtable and the SST files answer those without a search.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    if let Some(memory) = &options.memory {
        memory.apply(&mut o, &mut table);
    }
    o.set_block_based_table_factory(&table);
    o.set_memtable_prefix_bloom_ratio(0.1);
    o.set_memtable_whole_key_filtering(true);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(1 << 20);
    o
}

/// The RocksDB instance of one operator subtask.
pub struct RocksStore {
    db: Option<DB>,
    dir: PathBuf,
    id: String,
    range: KeyGroupRange,
    options: RocksDbOptions,
    tags: Mutex<BTreeMap<String, (u16, TableKind)>>,
    /// SST files uploaded by incremental checkpoints: local name -> shared file name.
    uploaded: Arc<Mutex<HashMap<String, String>>>,
    snapshots: AtomicU64,
    /// Bumped when a restore copies entries in: tables count their entries again.
    generation: AtomicU64,
    /// Tables of states with time-to-live whose entries end with their timestamp.
    ttls: Arc<TtlTables>,
}

/// The tables whose entries expire, for the compaction filter and full snapshots: entries
/// of a single value or of a map's user key, each a `TtlValue`, whose bincode ends with
/// the last-access time (i64, little endian).
///
/// This is Flink's RocksDB TTL cleanup: expired entries are dropped when RocksDB compacts
/// the files that hold them, so state written once and never read again goes without a
/// read, and full snapshots leave them out. List state is not filtered by compaction
/// (its elements' timestamps are not at known places); lists drop expired elements when
/// read.
#[derive(Default)]
struct TtlTables {
    by_tag: std::sync::RwLock<HashMap<u16, crate::ttl::StateTtlConfig>>,
    clock: std::sync::RwLock<Option<crate::backend::Clock>>,
}

impl TtlTables {
    fn now(&self) -> i64 {
        match &*self.clock.read().unwrap_or_else(|p| p.into_inner()) {
            Some(clock) => clock(),
            None => crate::ttl::wall_clock_ms(),
        }
    }

    /// The configurations by tag, as of now.
    fn current(&self) -> HashMap<u16, crate::ttl::StateTtlConfig> {
        self.by_tag
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True if `value`, an entry of table `tag`, has expired at `now` under `ttls`.
    fn expired(
        ttls: &HashMap<u16, crate::ttl::StateTtlConfig>,
        tag: u16,
        value: &[u8],
        now: i64,
    ) -> bool {
        let Some(cfg) = ttls.get(&tag) else {
            return false;
        };
        match value
            .len()
            .checked_sub(8)
            .and_then(|at| value[at..].try_into().ok())
        {
            Some(ts) => cfg.expired(i64::from_le_bytes(ts), now),
            None => false,
        }
    }

    /// The compaction filter's decision for (`key`, `value`).
    fn filter(&self, key: &[u8], value: &[u8]) -> rocksdb::compaction_filter::Decision {
        use rocksdb::compaction_filter::Decision;
        if key.len() < 4 || key.starts_with(&META) {
            return Decision::Keep;
        }
        let tag = u16::from_be_bytes([key[2], key[3]]);
        let ttls = self.by_tag.read().unwrap_or_else(|p| p.into_inner());
        if !ttls.contains_key(&tag) {
            return Decision::Keep;
        }
        if Self::expired(&ttls, tag, value, self.now()) {
            Decision::Remove
        } else {
            Decision::Keep
        }
    }
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.dir.display())
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        drop(self.db.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RocksStore {
    /// Opens a fresh instance for the key groups `range`; `label` (operator and subtask)
    /// names its working directory.
    pub fn open(options: &RocksDbOptions, range: KeyGroupRange, label: &str) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&options.local_dir)
            .map_err(|e| io_err("cannot create the RocksDB directory", &options.local_dir, e))?;
        let id = unique(label);
        let dir = options.local_dir.join(&id);
        let ttls = Arc::new(TtlTables::default());
        let mut db_opts = db_options(options);
        let filter = ttls.clone();
        db_opts.set_compaction_filter("weir_state_ttl", move |_level: u32, k: &[u8], v: &[u8]| {
            filter.filter(k, v)
        });
        let db = DB::open(&db_opts, &dir)
            .map_err(|e| rocks_err(&format!("cannot open '{}'", dir.display()), e))?;
        Ok(Arc::new(RocksStore {
            db: Some(db),
            dir,
            id,
            range,
            options: options.clone(),
            tags: Mutex::new(BTreeMap::new()),
            uploaded: Arc::new(Mutex::new(HashMap::new())),
            snapshots: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            ttls,
        }))
    }

    pub(crate) fn db(&self) -> Result<&DB> {
        self.db
            .as_ref()
            .ok_or_else(|| StateError::Backend("the RocksDB instance is closed".into()))
    }

    /// The key groups of the store.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Marks the table called `name` as one whose entries (each a `TtlValue`) expire under
    /// `cfg`, measured by `clock`: compactions drop them and full snapshots leave them out.
    pub fn set_ttl(
        &self,
        name: &str,
        kind: TableKind,
        cfg: crate::ttl::StateTtlConfig,
        clock: crate::backend::Clock,
    ) -> Result<()> {
        let tag = self.tag_of(name, kind)?;
        self.ttls
            .by_tag
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tag, cfg);
        *self.ttls.clock.write().unwrap_or_else(|p| p.into_inner()) = Some(clock);
        Ok(())
    }

    /// Compacts the whole instance now (expired entries of tables with time-to-live go).
    pub fn compact(&self) -> Result<()> {
        let db = self.db()?;
        db.flush().map_err(|e| rocks_err("flush", e))?;
        db.compact_range::<&[u8], &[u8]>(None, None);
        // Compaction may have dropped entries no table knows of: count them again.
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held by this instance's memtables (RocksDB's
    /// `rocksdb.cur-size-all-mem-tables`).
    pub fn memtable_bytes(&self) -> Result<u64> {
        self.db()?
            .property_int_value("rocksdb.cur-size-all-mem-tables")
            .map_err(|e| rocks_err("property read", e))?
            .ok_or_else(|| StateError::Backend("RocksDB has no memtable size property".into()))
    }

    /// The tag of the value table called `name`, assigned on first use.
    pub fn tag(&self, name: &str) -> Result<u16> {
        self.tag_of(name, TableKind::Value)
    }

    /// The tag of the table called `name` holding `kind` entries, assigned on first use; a
    /// name used before for the other kind is an error.
    pub fn tag_of(&self, name: &str, kind: TableKind) -> Result<u16> {
        let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        let known = match tags.get(name) {
            Some(&known) => Some(known),
            None => {
                let mut key = META.to_vec();
                key.extend_from_slice(name.as_bytes());
                let stored = self.db()?.get(&key).map_err(|e| rocks_err("read", e))?;
                stored.as_deref().and_then(parse_tag)
            }
        };
        let (tag, stored_kind) = match known {
            Some(t) => t,
            None => {
                let next = tags.values().map(|(t, _)| t + 1).max().unwrap_or(0);
                let mut key = META.to_vec();
                key.extend_from_slice(name.as_bytes());
                let mut value = next.to_be_bytes().to_vec();
                value.extend(kind.marker());
                let mut w = WriteOptions::default();
                w.disable_wal(true);
                self.db()?
                    .put_opt(&key, value, &w)
                    .map_err(|e| rocks_err("write", e))?;
                (next, kind)
            }
        };
        if stored_kind != kind {
            return Err(StateError::Backend(format!(
                "the RocksDB table '{name}' holds {stored_kind:?} entries, not {kind:?} entries"
            )));
        }
        tags.insert(name.to_string(), (tag, kind));
        Ok(tag)
    }

    /// Entries of table `tag` in key group `kg`: (key suffix after the prefix, value).
    pub fn scan(&self, kg: u32, tag: u16) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let db = self.db()?;
        let prefix = prefix_of(kg, tag);
        let mut it = db.raw_iterator_opt(bounded(kg, tag));
        it.seek(prefix);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((k[4..].to_vec(), v.to_vec()));
            it.next();
        }
        it.status().map_err(|e| rocks_err("scan", e))?;
        Ok(out)
    }

    /// Number of entries of table `tag`; for a map table, of its (key, namespace) maps.
    pub fn count(&self, tag: u16, kind: TableKind) -> Result<usize> {
        let db = self.db()?;
        let mut n = 0;
        for kg in self.range.start..self.range.end {
            let prefix = prefix_of(kg, tag);
            let mut it = db.raw_iterator_opt(bounded(kg, tag));
            it.seek(prefix);
            let mut last: Vec<u8> = Vec::new();
            while let Some(k) = it.key() {
                if !k.starts_with(&prefix) {
                    break;
                }
                match kind {
                    TableKind::Value => n += 1,
                    TableKind::Map => {
                        let kn = split_map_key(&k[4..])?.0;
                        if n == 0 || kn != last.as_slice() {
                            n += 1;
                            last.clear();
                            last.extend_from_slice(kn);
                        }
                    }
                }
                it.next();
            }
            it.status().map_err(|e| rocks_err("scan", e))?;
        }
        Ok(n)
    }

    /// Adds this store's snapshot to `out`: a RocksDB checkpoint now, turned into sections
    /// (`full`) or an incremental handle whose new SST files go to `shared` later.
    pub fn snapshot(
        &self,
        full: bool,
        shared: Option<&str>,
        out: &mut OperatorSubtaskState,
    ) -> Result<()> {
        let db = self.db()?;
        let n = self.snapshots.fetch_add(1, Ordering::Relaxed);
        let snap_dir = self
            .options
            .local_dir
            .join(format!("{}.snapshot-{n}", self.id));
        let _ = std::fs::remove_dir_all(&snap_dir);
        // Removed when the part ran, when the snapshot is dropped without running it (a
        // checkpoint declined, a task failing before the upload), or when this fails.
        let snap_dir = TempDir(snap_dir);
        rocksdb::checkpoint::Checkpoint::new(db)
            .and_then(|c| c.create_checkpoint(&snap_dir.0))
            .map_err(|e| rocks_err("checkpoint", e))?;
        let range = self.range;
        let (ttls, now) = (self.ttls.current(), self.ttls.now());
        match (full, shared) {
            (false, Some(shared)) if self.options.incremental => {
                let shared = shared.to_string();
                let uploaded = self.uploaded.clone();
                let id = self.id.clone();
                out.defer(Box::new(move |st| {
                    let h = upload_incremental(&snap_dir.0, &shared, &id, &uploaded, range)?;
                    st.handles.push(h);
                    Ok(())
                }));
            }
            _ => {
                out.defer(Box::new(move |st| {
                    write_sections(&snap_dir.0, st, &ttls, now)
                }));
            }
        }
        Ok(())
    }

    /// Copies in the key groups this store owns from the incremental handles of `restored`.
    pub fn restore_handles(&self, restored: &RestoredState) -> Result<()> {
        for h in &restored.handles {
            if h.backend != ROCKSDB {
                return Err(StateError::Restore(format!(
                    "the snapshot holds '{}' state files, which the RocksDB backend cannot read",
                    h.backend
                )));
            }
            let n = self.snapshots.fetch_add(1, Ordering::Relaxed);
            let dir = self
                .options
                .local_dir
                .join(format!("{}.restore-{n}", self.id));
            let dir = TempDir(dir);
            let r = self.copy_from_handle(h, &dir.0);
            self.generation.fetch_add(1, Ordering::AcqRel);
            r?;
        }
        Ok(())
    }

    fn copy_from_handle(&self, h: &KeyedStateHandle, dir: &Path) -> Result<()> {
        let names = h
            .shared
            .iter()
            .map(|f| &f.local)
            .chain(h.private.iter().map(|(n, _)| n));
        for name in names {
            if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
                return Err(StateError::Corrupt {
                    path: h.shared_dir.clone(),
                    message: format!("the checkpoint names the state file '{name}', which is not a plain file name"),
                });
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| io_err("cannot create the restore directory", dir, e))?;
        let shared = CheckpointStorage::open(&h.shared_dir)?;
        for f in &h.shared {
            let bytes = shared.get(&f.name)?;
            if bytes.len() as u64 != f.size {
                return Err(StateError::Corrupt {
                    path: shared.location_of(&f.name),
                    message: format!(
                        "the shared state file has {} bytes, the checkpoint recorded {}",
                        bytes.len(),
                        f.size
                    ),
                });
            }
            let p = dir.join(&f.local);
            std::fs::write(&p, bytes).map_err(|e| io_err("cannot write", &p, e))?;
        }
        for (local, bytes) in &h.private {
            let p = dir.join(local);
            std::fs::write(&p, bytes).map_err(|e| io_err("cannot write", &p, e))?;
        }
        let old = DB::open_for_read_only(&read_only_options(), dir, false)
            .map_err(|e| rocks_err("cannot open a restored checkpoint", e))?;
        let names = read_tags(&old)?;
        let mut remap = HashMap::new();
        for (tag, (name, kind)) in &names {
            remap.insert(*tag, self.tag_of(name, *kind)?);
        }
        let db = self.db()?;
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        let mut it = old.raw_iterator();
        it.seek([(self.range.start as u16).to_be_bytes()].concat());
        let mut batch = WriteBatch::default();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.len() < 4 {
                it.next();
                continue;
            }
            let kg = u16::from_be_bytes([k[0], k[1]]) as u32;
            if kg >= self.range.end {
                break;
            }
            let tag = u16::from_be_bytes([k[2], k[3]]);
            let Some(new_tag) = remap.get(&tag) else {
                return Err(StateError::Corrupt {
                    path: dir.display().to_string(),
                    message: format!("an entry of key group {kg} has the unknown table tag {tag}"),
                });
            };
            let mut key = k.to_vec();
            key[2..4].copy_from_slice(&new_tag.to_be_bytes());
            batch.put(key, v);
            if batch.len() >= 4096 {
                db.write_opt(std::mem::take(&mut batch), &w)
                    .map_err(|e| rocks_err("write", e))?;
            }
            it.next();
        }
        it.status().map_err(|e| rocks_err("restore scan", e))?;
        db.write_opt(batch, &w).map_err(|e| rocks_err("write", e))
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Read options that end iteration after the entries of table `tag` in key group `kg`:
/// without the bound, a seek into a prefix whose entries were all deleted walks every
/// deleted entry after it.
fn bounded(kg: u32, tag: u16) -> rocksdb::ReadOptions {
    let mut o = rocksdb::ReadOptions::default();
    let end = match tag.checked_add(1) {
        Some(t) => prefix_of(kg, t).to_vec(),
        None => ((kg + 1) as u16).to_be_bytes().to_vec(),
    };
    o.set_iterate_upper_bound(end);
    o
}

fn prefix_of(kg: u32, tag: u16) -> [u8; 4] {
    let k = (kg as u16).to_be_bytes();
    let t = tag.to_be_bytes();
    [k[0], k[1], t[0], t[1]]
}

/// A tag record's value: the tag, and the kind marker of a map table.
fn parse_tag(v: &[u8]) -> Option<(u16, TableKind)> {
    match v {
        [a, b] => Some((u16::from_be_bytes([*a, *b]), TableKind::Value)),
        [a, b, 1] => Some((u16::from_be_bytes([*a, *b]), TableKind::Map)),
        _ => None,
    }
}

/// Table names and kinds by tag, as stored in the database.
fn read_tags(db: &DB) -> Result<BTreeMap<u16, (String, TableKind)>> {
    let mut out = BTreeMap::new();
    let mut it = db.raw_iterator();
    it.seek(META);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(&META) {
            break;
        }
        if let Some((tag, kind)) = parse_tag(v) {
            let name = String::from_utf8_lossy(&k[2..]).into_owned();
            out.insert(tag, (name, kind));
        }
        it.next();
    }
    it.status().map_err(|e| rocks_err("scan", e))?;
    Ok(out)
}

/// Splits a map entry's key after the key-group and tag prefix into the (key, namespace)
/// bytes and the user key bytes.
pub(crate) fn split_map_key(rest: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || StateError::Corrupt {
        path: "a RocksDB map state entry".into(),
        message: "its key is shorter than the length it records".into(),
    };
    let len: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let end = 4 + u32::from_be_bytes(len) as usize;
    let kn = rest.get(4..end).ok_or_else(corrupt)?;
    Ok((kn, &rest[end..]))
}

/// Writes the checkpoint copy at `dir` as sections per key group in the heap format.
/// Entries that expired at `now` under `ttls` are left out (Flink's cleanup in full
/// snapshots).
fn write_sections(
    dir: &Path,
    st: &mut OperatorSubtaskState,
    ttls: &HashMap<u16, crate::ttl::StateTtlConfig>,
    now: i64,
) -> Result<()> {
    let db = DB::open_for_read_only(&read_only_options(), dir, false)
        .map_err(|e| rocks_err("cannot open a snapshot copy", e))?;
    let names = read_tags(&db)?;
    let mut it = db.raw_iterator();
    it.seek_to_first();
    let mut writer = SectionWriter::new(&names);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if k.starts_with(&META) {
            break;
        }
        if k.len() >= 4 && !TtlTables::expired(ttls, u16::from_be_bytes([k[2], k[3]]), v, now) {
            writer.push(k, v, st)?;
        }
        it.next();
    }
    it.status().map_err(|e| rocks_err("snapshot scan", e))?;
    writer.finish_section(st);
    Ok(())
}

/// Turns the entries of a snapshot copy, in key order, into sections in the heap format:
/// per key group and table, the bincode of a `Vec<((K, N), V)>`.
///
/// A value entry is one element as it is (the key suffix is the key and namespace, the
/// value the value). The entries of one (key, namespace) of a map table are one element
/// whose value is the bincode of a map: their count, then each user key and value.
struct SectionWriter<'a> {
    names: &'a BTreeMap<u16, (String, TableKind)>,
    /// The section being written: (key group, tag).
    at: Option<(u32, u16)>,
    /// Elements written to `body`.
    count: u64,
    body: Vec<u8>,
    /// The map being collected, for a map table.
    map: Option<MapGroup>,
}

/// The entries of one (key, namespace) of a map table.
struct MapGroup {
    kn: Vec<u8>,
    entries: u64,
    body: Vec<u8>,
}

impl<'a> SectionWriter<'a> {
    fn new(names: &'a BTreeMap<u16, (String, TableKind)>) -> Self {
        SectionWriter {
            names,
            at: None,
            count: 0,
            body: Vec::new(),
            map: None,
        }
    }

    /// Adds the entry (`k`, `v`), starting a new section when its key group or table
    /// differs from the last entry's.
    fn push(&mut self, k: &[u8], v: &[u8], st: &mut OperatorSubtaskState) -> Result<()> {
        let at = (
            u16::from_be_bytes([k[0], k[1]]) as u32,
            u16::from_be_bytes([k[2], k[3]]),
        );
        if self.at != Some(at) {
            self.finish_section(st);
            self.at = Some(at);
        }
        match self.names.get(&at.1).map(|(_, kind)| *kind) {
            Some(TableKind::Map) => {
                let (kn, user_key) = split_map_key(&k[4..])?;
                if self.map.as_ref().is_some_and(|g| g.kn != kn) {
                    self.close_map();
                }
                let group = self.map.get_or_insert_with(|| MapGroup {
                    kn: kn.to_vec(),
                    entries: 0,
                    body: Vec::new(),
                });
                group.body.extend_from_slice(user_key);
                group.body.extend_from_slice(v);
                group.entries += 1;
            }
            _ => {
                self.body.extend_from_slice(&k[4..]);
                self.body.extend_from_slice(v);
                self.count += 1;
            }
        }
        Ok(())
    }

    /// Writes the collected map as one element.
    fn close_map(&mut self) {
        if let Some(g) = self.map.take() {
            self.body.extend_from_slice(&g.kn);
            self.body.extend_from_slice(&g.entries.to_le_bytes());
            self.body.extend_from_slice(&g.body);
            self.count += 1;
        }
    }

    /// Adds the section being written to `st` (entries of unknown tables are left out).
    fn finish_section(&mut self, st: &mut OperatorSubtaskState) {
        self.close_map();
        if let Some((kg, tag)) = self.at.take() {
            if let Some((name, _)) = self.names.get(&tag) {
                let mut bytes = Vec::with_capacity(8 + self.body.len());
                bytes.extend_from_slice(&self.count.to_le_bytes());
                bytes.append(&mut self.body);
                st.add_section(kg, name, bytes);
            }
        }
        self.body.clear();
        self.count = 0;
    }
}

/// Uploads the SST files of the checkpoint copy at `dir` that are not in `uploaded`, and
/// returns the handle of the copy.
fn upload_incremental(
    dir: &Path,
    shared_dir: &str,
    id: &str,
    uploaded: &Mutex<HashMap<String, String>>,
    range: KeyGroupRange,
) -> Result<KeyedStateHandle> {
    let shared = CheckpointStorage::open(shared_dir)?;
    let mut handle = KeyedStateHandle {
        backend: ROCKSDB.into(),
        key_group_start: range.start,
        key_group_end: range.end,
        shared_dir: shared_dir.to_string(),
        shared: Vec::new(),
        private: Vec::new(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        if name.ends_with(".sst") {
            let known = uploaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
            let target = match known {
                Some(t) => t,
                None => {
                    let t = format!("{id}-{name}");
                    shared.put_file(&t, &p)?;
                    uploaded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), t.clone());
                    t
                }
            };
            let size = std::fs::metadata(&p)
                .map_err(|e| io_err("cannot read", &p, e))?
                .len();
            handle.shared.push(SharedFile {
                local: name,
                name: target,
                size,
            });
        } else {
            let bytes = std::fs::read(&p).map_err(|e| io_err("cannot read", &p, e))?;
            handle.private.push((name, bytes));
        }
    }
    // SST files compacted away never come back: forget them.
    uploaded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|local, _| handle.shared.iter().any(|f| &f.local == local));
    Ok(handle)
}

/// Writes the RocksDB key of (`key`, `ns`) in key group `kg` of table `tag` into `buf`.
fn encode_key<K: Serialize, N: Serialize>(
    buf: &mut Vec<u8>,
    kg: u32,
    tag: u16,
    key: &K,
    ns: &N,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&prefix_of(kg, tag));
    encode_into(buf, key, "a RocksDB state key")?;
    encode_into(buf, ns, "a RocksDB state namespace")
}

/// Appends the bincode of `value` to `buf`, naming `what` in errors.
pub(crate) fn encode_into<T: Serialize>(buf: &mut Vec<u8>, value: &T, what: &str) -> Result<()> {
    bincode::serialize_into(&mut *buf, value).map_err(|e| StateError::Codec {
        action: "encode",
        what: what.into(),
        message: e.to_string(),
    })
}

/// One table of a [`RocksStore`]: values by (key, namespace) for one tag.
///
/// The entry last touched is kept decoded (a one-entry write-back cache), so a
/// read-modify-write of the current key (`get_mut`, `get_or_insert_with`) costs one read and
/// one write however many times the operator touches it; the entry is written back when
/// another one is touched and before a snapshot ([`Self::flush`]).
pub struct RocksTable<K, N, V> {
    store: Arc<RocksStore>,
    tag: u16,
    range: KeyGroupRange,
    write: WriteOptions,
    cached: Option<Cached<K, N, V>>,
    /// Entries written back.
    len: EntryCount,
    kbuf: Vec<u8>,
}

/// How often a count made inexact by blind writes is made again.
const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The number of entries of a table (a metric), counted in the database on first use and
/// after a restore, and kept up to date by the writes that know whether they added or
/// removed an entry.
///
/// A *blind* write (a list append through the merge operator, a map put) does not know:
/// reading first would cost what the blind write saves. After one the count is made again
/// when asked for, at most every [`RECOUNT_EVERY`], and is the last count in between.
pub(crate) struct EntryCount {
    /// The count, at a store generation (a restore bumps it).
    known: std::cell::Cell<Option<(u64, usize)>>,
    blind: std::cell::Cell<bool>,
    counted_at: std::cell::Cell<Option<std::time::Instant>>,
}

impl EntryCount {
    pub(crate) fn new() -> Self {
        EntryCount {
            known: std::cell::Cell::new(None),
            blind: std::cell::Cell::new(false),
            counted_at: std::cell::Cell::new(None),
        }
    }

    /// The count of table `tag` of `store`.
    pub(crate) fn get(&self, store: &RocksStore, tag: u16, kind: TableKind) -> usize {
        let gen = store.generation.load(Ordering::Acquire);
        let stale = self
            .counted_at
            .get()
            .is_none_or(|t| t.elapsed() >= RECOUNT_EVERY);
        match self.known.get() {
            Some((g, n)) if g == gen && !(self.blind.get() && stale) => n,
            last => match store.count(tag, kind) {
                Ok(n) => {
                    self.known.set(Some((gen, n)));
                    self.blind.set(false);
                    self.counted_at.set(Some(std::time::Instant::now()));
                    n
                }
                // Only a metric reads this: report the last count rather than fail.
                Err(_) => last.map_or(0, |(_, n)| n),
            },
        }
    }

    /// A write that turned an entry from `existed` to `present`.
    pub(crate) fn changed(&self, store: &RocksStore, existed: bool, present: bool) {
        let gen = store.generation.load(Ordering::Acquire);
        if let Some((g, n)) = self.known.get() {
            let n = match (existed, present) {
                (false, true) => n + 1,
                (true, false) => n.saturating_sub(1),
                _ => n,
            };
            self.known.set((g == gen).then_some((g, n)));
        }
    }

    /// A write whose effect on the count is not known.
    pub(crate) fn blind(&self) {
        self.blind.set(true);
    }
}

struct Cached<K, N, V> {
    slot: usize,
    key: K,
    ns: N,
    value: Option<V>,
    existed: bool,
    dirty: bool,
}

impl<K, N, V> RocksTable<K, N, V>
where
    K: Eq + Clone + Serialize + DeserializeOwned,
    N: Eq + Clone + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The table called `name` in `store`.
    pub fn new(store: Arc<RocksStore>, name: &str) -> Result<Self> {
        let tag = store.tag(name)?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(RocksTable {
            range: store.key_group_range(),
            store,
            tag,
            write,
            cached: None,
            len: EntryCount::new(),
            kbuf: Vec::new(),
        })
    }

    /// Writes the cached entry back if it changed.
    pub fn flush(&mut self) -> Result<()> {
        let Some(c) = self.cached.as_mut() else {
            return Ok(());
        };
        if !c.dirty {
            return Ok(());
        }
        let (present, existed) = (c.value.is_some(), c.existed);
        let start = self.range.start + c.slot as u32;
        encode_key(&mut self.kbuf, start, self.tag, &c.key, &c.ns)?;
        let db = self.store.db()?;
        match &c.value {
            Some(v) => {
                let b = crate::snapshot::encode("a RocksDB state value", v)?;
                db.put_opt(&self.kbuf, b, &self.write)
            }
            None => db.delete_opt(&self.kbuf, &self.write),
        }
        .map_err(|e| rocks_err("write", e))?;
        c.dirty = false;
        c.existed = present;
        self.len.changed(&self.store, existed, present);
        Ok(())
    }

    /// Appends the bincode-encoded list `operand` (its length, then its elements) to the
    /// list of (key, ns) through the merge operator, without reading the list. For tables
    /// whose values are `Vec`s.
    pub fn merge_append(&mut self, slot: usize, key: &K, ns: &N, operand: &[u8]) -> Result<()> {
        // The cached copy would miss the append: write it back and forget it.
        if matches!(&self.cached, Some(c) if c.slot == slot && c.key == *key && c.ns == *ns) {
            self.flush()?;
            self.cached = None;
        }
        self.encode(slot, key, ns)?;
        self.store
            .db()?
            .merge_opt(&self.kbuf, operand, &self.write)
            .map_err(|e| rocks_err("write", e))?;
        self.len.blind();
        Ok(())
    }

    /// Writes the RocksDB key of (`key`, `ns`) in key-group slot `slot` into the buffer.
    fn encode(&mut self, slot: usize, key: &K, ns: &N) -> Result<()> {
        encode_key(
            &mut self.kbuf,
            self.range.start + slot as u32,
            self.tag,
            key,
            ns,
        )
    }

    /// Makes (key, ns) the cached entry, reading it if needed.
    fn load(&mut self, slot: usize, key: &K, ns: &N) -> Result<&mut Cached<K, N, V>> {
        let hit = matches!(&self.cached, Some(c) if c.slot == slot && c.key == *key && c.ns == *ns);
        if !hit {
            self.flush()?;
            self.encode(slot, key, ns)?;
            let db = self.store.db()?;
            let raw = db
                .get_pinned_opt(&self.kbuf, &rocksdb::ReadOptions::default())
                .map_err(|e| rocks_err("read", e))?;
            let value: Option<V> = match raw {
                Some(b) => Some(crate::snapshot::decode("a RocksDB state value", &b)?),
                None => None,
            };
            let existed = value.is_some();
            // Reuse the cached key and namespace allocations where possible.
            match self.cached.as_mut() {
                Some(c) => {
                    c.slot = slot;
                    c.key.clone_from(key);
                    c.ns.clone_from(ns);
                    c.value = value;
                    c.existed = existed;
                    c.dirty = false;
                }
                None => {
                    self.cached = Some(Cached {
                        slot,
                        key: key.clone(),
                        ns: ns.clone(),
                        value,
                        existed,
                        dirty: false,
                    })
                }
            }
        }
        self.cached
            .as_mut()
            .ok_or_else(|| StateError::Backend("the RocksDB table cache is empty".into()))
    }

    /// The value of (key, ns).
    pub fn get(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<&V>> {
        Ok(self.load(slot, key, ns)?.value.as_ref())
    }

    /// The value for update.
    pub fn get_mut(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<&mut V>> {
        let c = self.load(slot, key, ns)?;
        c.dirty |= c.value.is_some();
        Ok(c.value.as_mut())
    }

    /// The value for update, inserted with `init` if absent.
    pub fn get_or_insert_with(
        &mut self,
        slot: usize,
        key: &K,
        ns: &N,
        init: impl FnOnce() -> V,
    ) -> Result<&mut V> {
        let c = self.load(slot, key, ns)?;
        c.dirty = true;
        Ok(c.value.get_or_insert_with(init))
    }

    /// Sets the value.
    pub fn insert(&mut self, slot: usize, key: &K, ns: &N, value: V) -> Result<()> {
        let c = self.load(slot, key, ns)?;
        c.dirty = true;
        c.value = Some(value);
        Ok(())
    }

    /// Removes the value.
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N) -> Result<Option<V>> {
        let c = self.load(slot, key, ns)?;
        let v = c.value.take();
        c.dirty |= v.is_some();
        Ok(v)
    }

    /// The key groups of the table.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Number of entries (the cached one as it is now); counted in the database on first
    /// use and after a restore.
    pub fn len(&self) -> usize {
        let written = self.len.get(&self.store, self.tag, TableKind::Value);
        match &self.cached {
            Some(c) if c.dirty => match (c.existed, c.value.is_some()) {
                (false, true) => written + 1,
                (true, false) => written.saturating_sub(1),
                _ => written,
            },
            _ => written,
        }
    }

    /// True if the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries of key group `kg`, decoded (written back first).
    pub fn entries_of_key_group(&mut self, kg: u32) -> Result<Vec<((K, N), V)>> {
        self.flush()?;
        if !self.range.contains(kg) {
            return Ok(Vec::new());
        }
        self.store
            .scan(kg, self.tag)?
            .into_iter()
            .map(|(k, v)| {
                let kn: (K, N) = crate::snapshot::decode("a RocksDB state key", &k)?;
                let v: V = crate::snapshot::decode("a RocksDB state value", &v)?;
                Ok((kn, v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restored_with(st: &OperatorSubtaskState) -> RestoredState {
        RestoredState {
            handles: st.handles.clone(),
            ..Default::default()
        }
    }

    fn opts(dir: &Path, incremental: bool) -> RocksDbOptions {
        RocksDbOptions {
            local_dir: dir.to_path_buf(),
            incremental,
            memory: None,
        }
    }

    #[test]
    fn tables_share_an_instance_and_keep_their_entries_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let range = KeyGroupRange { start: 4, end: 8 };
        let store = RocksStore::open(&opts(tmp.path(), false), range, "op/0").unwrap();
        let mut a: RocksTable<String, i64, u64> = RocksTable::new(store.clone(), "a").unwrap();
        let mut b: RocksTable<String, i64, u64> = RocksTable::new(store.clone(), "b").unwrap();
        let k = "k".to_string();
        a.insert(0, &k, &1, 10).unwrap();
        *a.get_or_insert_with(0, &k, &1, || 0).unwrap() += 1;
        b.insert(0, &k, &1, 99).unwrap();
        a.insert(1, &k, &2, 20).unwrap();
        assert_eq!(a.get(0, &k, &1).unwrap(), Some(&11));
        assert_eq!(b.get(0, &k, &1).unwrap(), Some(&99));
        assert_eq!(a.len(), 2);
        assert_eq!(a.remove(1, &k, &2).unwrap(), Some(20));
        assert_eq!(a.len(), 1);
        assert_eq!(a.get(1, &k, &2).unwrap(), None);
        assert_eq!(
            a.entries_of_key_group(4).unwrap(),
            vec![((k.clone(), 1), 11)]
        );
        // A second handle on the same table sees what the first wrote back.
        a.flush().unwrap();
        let mut a2: RocksTable<String, i64, u64> = RocksTable::new(store.clone(), "a").unwrap();
        assert_eq!(a2.len(), 1);
        assert_eq!(a2.get(0, &k, &1).unwrap(), Some(&11));
        let dir = store.dir().to_path_buf();
        drop((a, a2, b, store));
        assert!(!dir.exists(), "the working directory is removed");
    }

    #[test]
    fn full_snapshot_sections_decode_as_heap_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let range = KeyGroupRange { start: 0, end: 4 };
        let store = RocksStore::open(&opts(tmp.path(), false), range, "op/0").unwrap();
        let mut t: RocksTable<String, (), Vec<u32>> =
            RocksTable::new(store.clone(), "state/list").unwrap();
        for i in 0..20u32 {
            t.get_or_insert_with((i % 4) as usize, &format!("k{i}"), &(), Vec::new)
                .unwrap()
                .push(i);
        }
        t.flush().unwrap();
        let mut st = OperatorSubtaskState::default();
        store.snapshot(true, None, &mut st).unwrap();
        st.resolve().unwrap();
        let mut total = 0;
        for (kg, secs) in &st.key_groups {
            for (name, bytes) in secs {
                assert_eq!(name, "state/list");
                let entries: Vec<((String, ()), Vec<u32>)> =
                    crate::snapshot::decode("x", bytes).unwrap();
                for ((k, ()), v) in &entries {
                    let i: u32 = k[1..].parse().unwrap();
                    assert_eq!(i % 4, *kg);
                    assert_eq!(v, &vec![i]);
                }
                total += entries.len();
            }
        }
        assert_eq!(total, 20);
    }

    #[test]
    fn incremental_snapshots_share_files_and_restore_rescaled() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        let shared = shared.to_str().unwrap();
        let range = KeyGroupRange { start: 0, end: 8 };
        let store = RocksStore::open(&opts(tmp.path(), true), range, "op/0").unwrap();
        let mut t: RocksTable<u64, (), u64> = RocksTable::new(store.clone(), "state/v").unwrap();
        for i in 0..100u64 {
            t.insert((i % 8) as usize, &i, &(), i * 2).unwrap();
        }
        t.flush().unwrap();
        let mut first = OperatorSubtaskState::default();
        store.snapshot(false, Some(shared), &mut first).unwrap();
        first.resolve().unwrap();
        t.insert(3, &3, &(), 7).unwrap();
        t.flush().unwrap();
        let mut second = OperatorSubtaskState::default();
        store.snapshot(false, Some(shared), &mut second).unwrap();
        second.resolve().unwrap();
        let (h1, h2) = (&first.handles[0], &second.handles[0]);
        assert!(!h1.shared.is_empty());
        assert!(restored_with(&first).verify_shared_files().is_ok());
        // The first checkpoint's SST file is shared by the second.
        assert!(h2.shared.iter().any(|f| h1.shared.contains(f)));
        assert!(h2.shared.len() > h1.shared.len());

        // A shared file that went missing is found before anything is restored.
        let mut broken = second.handles.clone();
        broken[0].shared[0].name = "gone.sst".into();
        let e = RestoredState {
            handles: broken,
            ..Default::default()
        }
        .verify_shared_files()
        .unwrap_err();
        assert!(e.to_string().contains("gone.sst"), "{e}");

        // Restore key groups 2..5 from the second checkpoint, into a store of other tags.
        let restored = RestoredState {
            handles: second.handles.clone(),
            ..Default::default()
        };
        let small = KeyGroupRange { start: 2, end: 5 };
        let other = RocksStore::open(&opts(tmp.path(), true), small, "op/1").unwrap();
        let _shift: RocksTable<u64, (), u64> = RocksTable::new(other.clone(), "unrelated").unwrap();
        other.restore_handles(&restored).unwrap();
        let mut r: RocksTable<u64, (), u64> = RocksTable::new(other.clone(), "state/v").unwrap();
        let expected: usize = (0..100u64)
            .filter(|i| small.contains((i % 8) as u32))
            .count();
        assert_eq!(r.len(), expected);
        assert_eq!(r.get(1, &3, &()).unwrap(), Some(&7));
        assert_eq!(r.get(0, &2, &()).unwrap(), Some(&4));
    }
}
