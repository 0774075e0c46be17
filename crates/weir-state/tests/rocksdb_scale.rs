//! RocksDB state that scales: a map state of a million entries read one entry at a time, list
//! appends that do not read the list, and many RocksDB instances within one memory budget.

use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir_core::config::{StateBackendConfig, StateBackendKind};
use weir_state::rocks::{RocksDbOptions, RocksStore, RocksTable};
use weir_state::snapshot::{OperatorSubtaskState, RestoredState};
use weir_state::{
    KeyGroupRange, KeyedStateBackend, KeyedStore, ListState, MapState, RocksMemory, StateContext,
    StateTtlConfig, ValueState,
};

const MAX_PARALLELISM: u32 = 128;

struct Ctx {
    be: KeyedStateBackend<u64>,
}

impl StateContext for Ctx {
    type Key = u64;
    type Ns = ();
    fn state_parts(&mut self) -> (&mut KeyedStateBackend<u64>, &()) {
        (&mut self.be, &())
    }
}

fn rocks_config(dir: &std::path::Path) -> StateBackendConfig {
    StateBackendConfig {
        kind: StateBackendKind::RocksDb,
        incremental: false,
        local_dir: Some(dir.display().to_string()),
        rocksdb_memory_bytes: Some(64 << 20),
    }
}

fn rocks_ctx(dir: &std::path::Path, range: KeyGroupRange) -> Ctx {
    let store = KeyedStore::open(&rocks_config(dir), range, "op/0").unwrap();
    Ctx {
        be: KeyedStateBackend::with_store(store, MAX_PARALLELISM),
    }
}

/// Bytes RocksDB's point reads returned on this thread while `f` ran.
fn get_read_bytes(f: impl FnOnce()) -> u64 {
    set_perf_stats(PerfStatsLevel::EnableCount);
    let mut perf = PerfContext::default();
    perf.reset();
    f();
    let n = perf.metric(PerfMetric::GetReadBytes);
    set_perf_stats(PerfStatsLevel::Disable);
    n
}

fn snapshot(ctx: &mut Ctx) -> OperatorSubtaskState {
    let mut st = OperatorSubtaskState::default();
    ctx.be.snapshot_with_store(true, None, &mut st).unwrap();
    st.resolve().unwrap();
    st
}

#[test]
fn a_million_map_entries_of_one_key_are_read_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    let mut c = rocks_ctx(tmp.path(), all);
    let map = MapState::<u64, u64>::new("big");
    c.be.set_current_key(7).unwrap();
    for i in 0..1_000_000u64 {
        map.put(&mut c, i, i * 3).unwrap();
    }
    // One entry is one point read of one small value, not the map's ~20 MB.
    let mut got = None;
    let read = get_read_bytes(|| got = map.get(&mut c, &123_456).unwrap());
    assert_eq!(got, Some(370_368));
    assert!(read < 64, "reading one entry read {read} bytes");
    assert_eq!(map.get(&mut c, &1_000_000).unwrap(), None);
    map.remove(&mut c, &5).unwrap();
    assert!(!map.is_empty(&mut c).unwrap());
    c.be.set_current_key(8).unwrap();
    assert!(map.is_empty(&mut c).unwrap());
    map.put(&mut c, 1, 1).unwrap();

    // A full snapshot writes the map in the heap format: the heap backend restores it.
    let st = snapshot(&mut c);
    let mut restored = RestoredState::default();
    restored.absorb_keyed(&st, all);
    let mut heap = Ctx {
        be: KeyedStateBackend::new(all, MAX_PARALLELISM),
    };
    heap.be.restore(&restored).unwrap();
    let map = map.clone();
    heap.be.set_current_key(7).unwrap();
    let entries: HashMap<u64, u64> = map.entries(&mut heap).unwrap().into_iter().collect();
    assert_eq!(entries.len(), 999_999);
    assert!(!entries.contains_key(&5));
    assert!(entries.iter().all(|(k, v)| *v == k * 3));
    heap.be.set_current_key(8).unwrap();
    assert_eq!(map.entries(&mut heap).unwrap(), vec![(1, 1)]);
}

#[test]
fn map_state_moves_between_backends_and_rescales() {
    let tmp = tempfile::tempdir().unwrap();
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    // Written on the heap, restored into RocksDB at parallelism 2, written again there.
    let mut heap = Ctx {
        be: KeyedStateBackend::new(all, MAX_PARALLELISM),
    };
    let map = MapState::<String, i64>::new("m");
    for k in 0..300u64 {
        heap.be.set_current_key(k).unwrap();
        for j in 0..(k % 5) {
            map.put(&mut heap, format!("u{j}"), (k * 10 + j) as i64)
                .unwrap();
        }
    }
    let mut st = OperatorSubtaskState::default();
    heap.be.snapshot(&mut st).unwrap();
    st.resolve().unwrap();
    let mut seen = 0;
    let mut second = Vec::new();
    for sub in 0..2 {
        let range = KeyGroupRange::for_subtask(MAX_PARALLELISM, 2, sub);
        let mut r = RestoredState::default();
        r.absorb_keyed(&st, range);
        let mut c = rocks_ctx(tmp.path(), range);
        c.be.restore(&r).unwrap();
        let map = map.clone();
        for k in 0..300u64 {
            if c.be.set_current_key(k).is_err() {
                continue;
            }
            seen += 1;
            let mut got = map.entries(&mut c).unwrap();
            got.sort();
            let want: Vec<(String, i64)> = (0..(k % 5))
                .map(|j| (format!("u{j}"), (k * 10 + j) as i64))
                .collect();
            assert_eq!(got, want, "key {k}");
            map.put(&mut c, "extra".into(), -(k as i64)).unwrap();
        }
        second.push(snapshot(&mut c));
    }
    assert_eq!(seen, 300);
    // Both RocksDB halves restore into one heap backend.
    let mut r = RestoredState::default();
    for st in &second {
        r.absorb_keyed(st, all);
    }
    let mut back = Ctx {
        be: KeyedStateBackend::new(all, MAX_PARALLELISM),
    };
    let map = map.clone();
    back.be.restore(&r).unwrap();
    for k in 0..300u64 {
        back.be.set_current_key(k).unwrap();
        assert_eq!(
            map.get(&mut back, &"extra".to_string()).unwrap(),
            Some(-(k as i64))
        );
        assert_eq!(map.entries(&mut back).unwrap().len() as u64, k % 5 + 1);
    }
}

#[test]
fn list_appends_do_not_read_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    let mut c = rocks_ctx(tmp.path(), all);
    let list = ListState::<u64>::new("l");
    c.be.set_current_key(1).unwrap();
    list.update(&mut c, vec![0]).unwrap();
    let read = get_read_bytes(|| {
        for i in 1..20_000u64 {
            list.add(&mut c, i).unwrap();
        }
    });
    assert_eq!(read, 0, "appending read the list");
    list.add_all(&mut c, vec![20_000, 20_001]).unwrap();
    assert_eq!(list.get(&mut c).unwrap(), (0..20_002).collect::<Vec<_>>());
    // Appends after a read, and appends left unmerged in a snapshot.
    list.add(&mut c, 7).unwrap();
    c.be.set_current_key(2).unwrap();
    list.add(&mut c, 9).unwrap();
    let st = snapshot(&mut c);
    let mut r = RestoredState::default();
    r.absorb_keyed(&st, all);
    let mut heap = Ctx {
        be: KeyedStateBackend::new(all, MAX_PARALLELISM),
    };
    heap.be.restore(&r).unwrap();
    let list = list.clone();
    heap.be.set_current_key(1).unwrap();
    let got = list.get(&mut heap).unwrap();
    assert_eq!(got.len(), 20_003);
    assert_eq!(got.last(), Some(&7));
    heap.be.set_current_key(2).unwrap();
    assert_eq!(list.get(&mut heap).unwrap(), vec![9]);
}

/// Writes `bytes` of values into `store` in 1 KiB entries.
fn fill(store: &Arc<RocksStore>, bytes: usize) {
    let mut t: RocksTable<u64, (), Vec<u8>> = RocksTable::new(store.clone(), "fill").unwrap();
    for i in 0..(bytes / 1024) as u64 {
        t.insert((i % 4) as usize, &i, &(), vec![i as u8; 1024])
            .unwrap();
    }
    t.flush().unwrap();
}

#[test]
fn sixteen_rocksdb_instances_stay_within_one_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let range = KeyGroupRange { start: 0, end: 4 };
    let budget: u64 = 32 << 20;
    let per_store = 12 << 20;

    // Without a shared budget every instance keeps its writes in its own 64 MB memtables.
    let alone: Vec<Arc<RocksStore>> = (0..16)
        .map(|i| {
            let o = RocksDbOptions {
                local_dir: tmp.path().join("alone"),
                incremental: false,
                memory: None,
            };
            RocksStore::open(&o, range, &format!("alone/{i}")).unwrap()
        })
        .collect();
    alone.iter().for_each(|s| fill(s, per_store));
    let unbounded: u64 = alone.iter().map(|s| s.memtable_bytes().unwrap()).sum();
    assert!(
        unbounded > 4 * budget,
        "the instances alone hold {unbounded} bytes of memtables"
    );
    drop(alone);

    // Sharing the budget, the memtables of all sixteen stay within its write-buffer share
    // and the cache (blocks and the memtables charged to it) within the budget.
    let memory = RocksMemory::new(budget);
    let shared: Vec<Arc<RocksStore>> = (0..16)
        .map(|i| {
            let o = RocksDbOptions {
                local_dir: tmp.path().join("shared"),
                incremental: false,
                memory: Some(memory.clone()),
            };
            RocksStore::open(&o, range, &format!("shared/{i}")).unwrap()
        })
        .collect();
    let mut peak_memtables = 0;
    let mut peak_cache = 0;
    for s in &shared {
        fill(s, per_store);
        let memtables: u64 = shared.iter().map(|s| s.memtable_bytes().unwrap()).sum();
        peak_memtables = peak_memtables.max(memtables);
        peak_cache = peak_cache.max(memory.usage() as u64);
    }
    // Reads go through the shared cache too.
    for s in &shared {
        let mut t: RocksTable<u64, (), Vec<u8>> = RocksTable::new(s.clone(), "fill").unwrap();
        for i in (0..(per_store / 1024) as u64).step_by(7) {
            assert_eq!(
                t.get((i % 4) as usize, &i, &()).unwrap().map(Vec::len),
                Some(1024)
            );
        }
        peak_cache = peak_cache.max(memory.usage() as u64);
    }
    // The cache's limit is soft (LRU, and memtable charges land before eviction): a
    // quarter of slack, against the unbounded run's four times over.
    let slack = budget / 4;
    assert!(
        peak_memtables <= budget + slack,
        "sixteen instances held {peak_memtables} bytes of memtables with a budget of {budget}"
    );
    assert!(
        peak_cache <= budget + slack,
        "the shared cache held {peak_cache} bytes with a budget of {budget}"
    );
    assert!(memory.memtable_usage() as u64 <= budget);
}

/// Entries of the sections called `name` in a full snapshot.
fn section_entries(st: &OperatorSubtaskState, name: &str) -> u64 {
    st.key_groups
        .values()
        .flatten()
        .filter(|(n, _)| n == name)
        .map(|(_, bytes)| u64::from_le_bytes(bytes[..8].try_into().unwrap()))
        .sum()
}

#[test]
fn keys_written_once_leave_rocksdb_after_their_ttl_without_a_read() {
    let tmp = tempfile::tempdir().unwrap();
    let all = KeyGroupRange::for_subtask(MAX_PARALLELISM, 1, 0);
    let mut c = rocks_ctx(tmp.path(), all);
    let clock = Arc::new(AtomicI64::new(1_000));
    let now = clock.clone();
    c.be.set_clock(Arc::new(move || now.load(Ordering::Relaxed)));
    let ttl = StateTtlConfig::new(Duration::from_millis(100));
    let value = ValueState::<u64>::new("v").with_ttl(ttl);
    let map = MapState::<u64, u64>::new("m").with_ttl(ttl);
    let kept = ValueState::<u64>::new("kept");
    for k in 0..1000u64 {
        c.be.set_current_key(k).unwrap();
        value.update(&mut c, k).unwrap();
        map.put(&mut c, k, k).unwrap();
        map.put(&mut c, k + 1, k).unwrap();
        kept.update(&mut c, k).unwrap();
    }
    clock.fetch_add(50, Ordering::Relaxed);
    let st = snapshot(&mut c);
    assert_eq!(section_entries(&st, "state/v"), 1000);
    assert_eq!(section_entries(&st, "state/m"), 1000);

    // After the TTL a full snapshot leaves them out, though no key was read.
    clock.fetch_add(100, Ordering::Relaxed);
    let st = snapshot(&mut c);
    assert_eq!(section_entries(&st, "state/v"), 0);
    assert_eq!(section_entries(&st, "state/m"), 0);
    assert_eq!(section_entries(&st, "state/kept"), 1000);

    // A compaction removes them from the live instance.
    assert_eq!(c.be.entries_of("v"), 1000);
    let KeyedStore::Rocks(store) = c.be.store().clone() else {
        panic!("a RocksDB store")
    };
    store.compact().unwrap();
    assert_eq!(c.be.entries_of("v"), 0);
    assert_eq!(c.be.entries_of("m"), 0);
    assert_eq!(c.be.entries_of("kept"), 1000);
    c.be.set_current_key(3).unwrap();
    assert_eq!(value.value(&mut c).unwrap(), None);
    assert_eq!(kept.value(&mut c).unwrap(), Some(3));
}
