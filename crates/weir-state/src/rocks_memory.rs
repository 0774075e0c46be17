//! The memory budget all RocksDB instances of a process share: one block cache that also
//! carries the memtables, so that many RocksDB operators cannot exhaust the machine.
//!
//! Each operator subtask has its own RocksDB instance ([`crate::rocks::RocksStore`]). Left
//! alone, every instance would size its memtables (64 MB each, two of them) and its block
//! cache on its own, so memory grows with the number of operators. As Flink's managed
//! memory does for RocksDB, the instances of a process share:
//!
//! - one LRU **block cache** of `budget` bytes, which also holds index and filter blocks
//!   (they count against the budget instead of growing beside it);
//! - one **write-buffer manager** of `budget * WRITE_BUFFER_RATIO` bytes whose memtable
//!   memory is charged to that cache: when the memtables of all instances together reach
//!   it, RocksDB flushes the largest ones early.
//!
//! So block cache, index and filter blocks and memtables stay within one limit. Flink
//! budgets managed memory per slot by default and per TaskManager with
//! `state.backend.rocksdb.memory.fixed-per-tm`; Weir has the second: one budget per process,
//! which is the mini-cluster, or a job's worker process on a TaskManager (each job on a
//! TaskManager runs in a process of its own, so the budget is per job and TaskManager).
//! The same budget value gives the same shared instance ([`RocksMemory::for_budget`]).

use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The share of the budget memtables may use (Flink's
/// `state.backend.rocksdb.memory.write-buffer-ratio` default).
pub const WRITE_BUFFER_RATIO: f64 = 0.5;

/// The budget when none is configured: 512 MiB per process.
pub const DEFAULT_BUDGET: u64 = 512 << 20;

/// The smallest budget accepted: below it RocksDB flushes after every few writes.
pub const MIN_BUDGET: u64 = 8 << 20;

/// A memory budget shared by RocksDB instances: a block cache and a write-buffer manager.
pub struct RocksMemory {
    budget: usize,
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl std::fmt::Debug for RocksMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksMemory")
            .field("budget", &self.budget)
            .field("usage", &self.usage())
            .finish()
    }
}

impl RocksMemory {
    /// A budget of `budget` bytes (at least [`MIN_BUDGET`]), not shared with other calls.
    pub fn new(budget: u64) -> Arc<Self> {
        let budget = budget.max(MIN_BUDGET) as usize;
        let cache = Cache::new_lru_cache(budget);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            (budget as f64 * WRITE_BUFFER_RATIO) as usize,
            false,
            cache.clone(),
        );
        Arc::new(RocksMemory {
            budget,
            cache,
            write_buffers,
        })
    }

    /// The process's shared budget of `budget` bytes, made on first use.
    pub fn for_budget(budget: u64) -> Arc<Self> {
        static SHARED: OnceLock<Mutex<HashMap<u64, Arc<RocksMemory>>>> = OnceLock::new();
        let mut shared = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        shared
            .entry(budget)
            .or_insert_with(|| RocksMemory::new(budget))
            .clone()
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes in use in the shared cache: cached blocks and the memtables charged to it.
    pub fn usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// Bytes of memtables of all instances sharing the budget.
    pub fn memtable_usage(&self) -> usize {
        self.write_buffers.get_usage()
    }

    /// Makes `options` (and its table options) use the shared cache and write buffers.
    pub(crate) fn apply(&self, options: &mut Options, table: &mut BlockBasedOptions) {
        table.set_block_cache(&self.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        options.set_write_buffer_manager(&self.write_buffers);
        // A memtable grows in arena blocks (1/8 of its size by default) and each block is
        // charged to the budget when allocated: with RocksDB's 64 MB memtables, sixteen
        // instances hold 8 MB blocks each before writing much. Memtables of a quarter of
        // the write-buffer share and blocks of 1/8 of that keep the charge close to what
        // is written (Flink warns when a block exceeds 1/8 of the share's flush limit).
        let write_buffer = (self.write_buffer_bytes() / 4).clamp(1 << 20, 64 << 20);
        options.set_write_buffer_size(write_buffer);
        options.set_arena_block_size(write_buffer / 8);
    }

    /// The write-buffer share of the budget.
    fn write_buffer_bytes(&self) -> usize {
        (self.budget as f64 * WRITE_BUFFER_RATIO) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_budget_value_is_one_shared_instance() {
        let a = RocksMemory::for_budget(64 << 20);
        let b = RocksMemory::for_budget(64 << 20);
        let c = RocksMemory::for_budget(32 << 20);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.budget(), 32 << 20);
        assert_eq!(RocksMemory::new(1).budget(), MIN_BUDGET as usize);
    }
}
