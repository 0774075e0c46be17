//! A map state's table in RocksDB: one RocksDB entry per user key.
//!
//! A map state holds, per (key, namespace), a map of user keys to values. Stored as one
//! value, every `get` of one user key would read and decode the whole map, and every `put`
//! write all of it again: a map of a million entries costs a million entries per access.
//! As Flink's RocksDB map state does, each user key is its own RocksDB entry here:
//!
//! ```text
//! key   = [key group: u16 BE][tag: u16 BE][len: u32 BE][bincode(key)][bincode(namespace)][bincode(user key)]
//! value = bincode(value)
//! ```
//!
//! The entries of one (key, namespace) are one key range (they share the prefix up to the
//! user key), so iterating a map or clearing it is a range scan; `len` lets a snapshot find
//! where the user key starts and write the map in the heap backend's format
//! (see [`crate::rocks`]). User keys are compared by their bytes, so their encoding must be
//! deterministic, as the state keys' must.
//!
//! Unlike [`crate::rocks::RocksTable`], nothing is cached: each call is one RocksDB access.

use crate::error::{Result, StateError};
use crate::rocks::{encode_into, rocks_err, split_map_key, EntryCount, RocksStore, TableKind};
use rocksdb::WriteOptions;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use weir_core::KeyGroupRange;

/// The smallest byte string greater than every string starting with `prefix`: the upper
/// bound of a prefix scan (`None` if every byte is 0xFF, which no map prefix is: it starts
/// with a key group below 0xFF00).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The types a [`RocksMapTable`] holds, for its `PhantomData`.
type Types<K, N, UK, V> = fn() -> (K, N, UK, V);

/// The entries of one map state in a [`RocksStore`]: user key -> value per (key,
/// namespace).
pub struct RocksMapTable<K, N, UK, V> {
    store: Arc<RocksStore>,
    tag: u16,
    range: KeyGroupRange,
    write: WriteOptions,
    /// Encoding buffer: the prefix of the current (key, namespace), then a user key.
    kbuf: Vec<u8>,
    len: EntryCount,
    _types: PhantomData<Types<K, N, UK, V>>,
}

impl<K, N, UK, V> RocksMapTable<K, N, UK, V>
where
    K: Eq + Clone + Serialize + DeserializeOwned,
    N: Eq + Clone + Serialize + DeserializeOwned,
    UK: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The map table called `name` in `store`.
    pub fn new(store: Arc<RocksStore>, name: &str) -> Result<Self> {
        let tag = store.tag_of(name, TableKind::Map)?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(RocksMapTable {
            range: store.key_group_range(),
            store,
            tag,
            write,
            kbuf: Vec::new(),
            len: EntryCount::new(),
            _types: PhantomData,
        })
    }

    /// The key groups of the table.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Writes the prefix of (`key`, `ns`) into the buffer; returns its length.
    fn prefix(&mut self, slot: usize, key: &K, ns: &N) -> Result<usize> {
        let kg = (self.range.start + slot as u32) as u16;
        self.kbuf.clear();
        self.kbuf.extend_from_slice(&kg.to_be_bytes());
        self.kbuf.extend_from_slice(&self.tag.to_be_bytes());
        self.kbuf.extend_from_slice(&[0; 4]);
        encode_into(&mut self.kbuf, key, "a RocksDB state key")?;
        encode_into(&mut self.kbuf, ns, "a RocksDB state namespace")?;
        let len = u32::try_from(self.kbuf.len() - 8).map_err(|_| StateError::Codec {
            action: "encode",
            what: "a RocksDB state key".into(),
            message: "the key and namespace take more than 4 GiB".into(),
        })?;
        self.kbuf[4..8].copy_from_slice(&len.to_be_bytes());
        Ok(self.kbuf.len())
    }

    /// Writes the full key of `user_key` in the map of (`key`, `ns`) into the buffer.
    fn entry_key(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.prefix(slot, key, ns)?;
        encode_into(&mut self.kbuf, user_key, "a RocksDB map state user key")
    }

    /// The value of `user_key` in the map of (`key`, `ns`): one point read.
    pub fn get(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK) -> Result<Option<V>> {
        self.entry_key(slot, key, ns, user_key)?;
        let db = self.store.db()?;
        match db
            .get_pinned_opt(&self.kbuf, &rocksdb::ReadOptions::default())
            .map_err(|e| rocks_err("read", e))?
        {
            Some(b) => Ok(Some(crate::snapshot::decode(
                "a RocksDB map state value",
                &b,
            )?)),
            None => Ok(None),
        }
    }

    /// Sets the value of `user_key`: one write, without reading the map.
    pub fn put(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK, value: &V) -> Result<()> {
        self.entry_key(slot, key, ns, user_key)?;
        let v = crate::snapshot::encode("a RocksDB map state value", value)?;
        self.store
            .db()?
            .put_opt(&self.kbuf, v, &self.write)
            .map_err(|e| rocks_err("write", e))?;
        self.len.blind();
        Ok(())
    }

    /// Removes `user_key`.
    pub fn remove(&mut self, slot: usize, key: &K, ns: &N, user_key: &UK) -> Result<()> {
        self.entry_key(slot, key, ns, user_key)?;
        self.store
            .db()?
            .delete_opt(&self.kbuf, &self.write)
            .map_err(|e| rocks_err("write", e))?;
        self.len.blind();
        Ok(())
    }

    /// Calls `f` with each entry of the map of (`key`, `ns`), in user-key byte order, until
    /// it returns false: the entry's whole key, where its user key starts, and its value.
    fn scan(
        &mut self,
        slot: usize,
        key: &K,
        ns: &N,
        mut f: impl FnMut(&[u8], usize, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let plen = self.prefix(slot, key, ns)?;
        let prefix = &self.kbuf[..plen];
        let mut read = rocksdb::ReadOptions::default();
        if let Some(end) = successor(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let db = self.store.db()?;
        let mut it = db.raw_iterator_opt(read);
        it.seek(prefix);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(prefix) || !f(k, plen, v)? {
                break;
            }
            it.next();
        }
        it.status().map_err(|e| rocks_err("scan", e))
    }

    /// Every entry of the map of (`key`, `ns`), decoded.
    pub fn entries(&mut self, slot: usize, key: &K, ns: &N) -> Result<Vec<(UK, V)>> {
        let mut out = Vec::new();
        self.scan(slot, key, ns, |k, plen, v| {
            out.push((
                crate::snapshot::decode("a RocksDB map state user key", &k[plen..])?,
                crate::snapshot::decode("a RocksDB map state value", v)?,
            ));
            Ok(true)
        })?;
        Ok(out)
    }

    /// True if the map of (`key`, `ns`) has no entry: reads at most one.
    pub fn map_is_empty(&mut self, slot: usize, key: &K, ns: &N) -> Result<bool> {
        let mut empty = true;
        self.scan(slot, key, ns, |_, _, _| {
            empty = false;
            Ok(false)
        })?;
        Ok(empty)
    }

    /// Removes every entry of the map of (`key`, `ns`): one batch of deletes.
    pub fn clear(&mut self, slot: usize, key: &K, ns: &N) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        self.scan(slot, key, ns, |k, _, _| {
            batch.delete(k);
            Ok(true)
        })?;
        if !batch.is_empty() {
            self.store
                .db()?
                .write_opt(batch, &self.write)
                .map_err(|e| rocks_err("write", e))?;
            self.len.blind();
        }
        Ok(())
    }

    /// Number of (key, namespace) maps with at least one entry (a metric; see
    /// [`EntryCount`]).
    pub fn len(&self) -> usize {
        self.len.get(&self.store, self.tag, TableKind::Map)
    }

    /// True if no map has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (key, namespace) pairs of key group `kg` that hold a map, decoded.
    pub fn maps_of_key_group(&mut self, kg: u32) -> Result<Vec<(K, N)>> {
        if !self.range.contains(kg) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        for (k, _) in self.store.scan(kg, self.tag)? {
            let kn = split_map_key(&k)?.0;
            if last.as_deref() != Some(kn) {
                out.push(crate::snapshot::decode("a RocksDB state key", kn)?);
                last = Some(kn.to_vec());
            }
        }
        Ok(out)
    }
}
