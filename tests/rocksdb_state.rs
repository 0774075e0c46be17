//! The RocksDB state backend, end to end: the `exactly_once` example's job (keyed running
//! sums and event-time window counts through the two-phase-commit file sink) with its state
//! in RocksDB, broken on purpose, restored from incremental and full checkpoints, rescaled,
//! and moved between the heap and RocksDB through savepoints. The committed output is
//! compared with a reference computed here.

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

use common::{committed, reference};
use exactly_once::{build, Args};
use std::collections::BTreeSet;
use std::path::Path;
use weir::state::metadata::SnapshotMetadata;
use weir::state::{CheckpointStorage, TaskStateSnapshot};

fn args(events: u64, parallelism: u32, out: &Path, ckpt: &Path, backend: &str) -> Args {
    let mut a = common::example_args(events, parallelism, out, &ckpt.display().to_string());
    a.state_backend = backend.to_string();
    a.rocksdb_dir = Some(ckpt.with_extension("rocksdb"));
    a
}

fn assert_same(got: &[String], want: &[String]) {
    let missing = want
        .iter()
        .filter(|l| got.binary_search(l).is_err())
        .count();
    assert!(
        got == want,
        "committed output differs: {} lines, want {}; {missing} missing",
        got.len(),
        want.len()
    );
}

/// The shared files the retained checkpoints of `job_dir` refer to.
fn referenced_shared_files(job_dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(job_dir).unwrap() {
        let dir = e.unwrap().path();
        if dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("chk-")
        {
            names.extend(referenced_shared_files_of(&dir));
        }
    }
    names
}

#[test]
fn incremental_checkpoints_recover_exactly_once_and_share_files() {
    let events = 60_000;
    let want = reference(events);
    for (parallelism, fail_at) in [(1, vec![21_000, 43_000]), (3, vec![15_000, 38_000, 51_000])] {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(
            events,
            parallelism,
            &tmp.path().join("out"),
            &tmp.path().join("ck"),
            "rocksdb",
        );
        a.fail_at = fail_at;
        let result = exactly_once::run(&a).unwrap();
        assert!(result.restarts >= 1, "no failure happened");
        assert!(result.checkpoints.completed >= 2);
        assert_same(&committed(&a.output_dir), &want);

        // Incremental checkpoints keep their SST files in the job's shared directory, and
        // after the job only the files the retained checkpoints refer to stay there.
        let job_dir = tmp.path().join("ck").join(result.job_id.to_string());
        let shared: BTreeSet<String> = std::fs::read_dir(job_dir.join("shared"))
            .expect("a shared directory")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let referenced = referenced_shared_files(&job_dir);
        assert!(!referenced.is_empty(), "no checkpoint refers to SST files");
        assert!(shared.iter().all(|f| f.ends_with(".sst")), "{shared:?}");
        assert_eq!(shared, referenced, "unreferenced shared files stay behind");
        // The working directories are removed with their subtasks.
        let left: Vec<_> = std::fs::read_dir(a.rocksdb_dir.as_ref().unwrap())
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "RocksDB directories left behind: {left:?}");
    }
}

#[test]
fn later_incremental_checkpoints_upload_only_new_files() {
    let events = 60_000;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(events, 2, &out, &tmp.path().join("ck"), "rocksdb");
    a.poll_pause_ms = 2;
    a.retained_checkpoints = 10;
    let result = exactly_once::run(&a).unwrap();
    assert_same(&committed(&out), &reference(events));
    let job_dir = tmp.path().join("ck").join(result.job_id.to_string());
    // Checkpoint files (SST references) of consecutive checkpoints overlap: unchanged SST
    // files are shared, not uploaded again.
    let mut per_checkpoint: Vec<(u64, BTreeSet<String>)> = Vec::new();
    for e in std::fs::read_dir(&job_dir).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("chk-").and_then(|n| n.parse().ok()) else {
            continue;
        };
        per_checkpoint.push((id, referenced_shared_files_of(&dir)));
    }
    per_checkpoint.sort();
    assert!(
        per_checkpoint.len() >= 3,
        "{} checkpoints",
        per_checkpoint.len()
    );
    let shared_pairs = per_checkpoint
        .windows(2)
        .filter(|w| !w[0].1.is_disjoint(&w[1].1))
        .count();
    assert!(
        shared_pairs >= 1,
        "no two consecutive checkpoints share an SST file"
    );
}

fn referenced_shared_files_of(chk: &Path) -> BTreeSet<String> {
    let storage = CheckpointStorage::open(chk.to_str().unwrap()).unwrap();
    let meta = SnapshotMetadata::read(&storage).unwrap();
    let mut names = BTreeSet::new();
    for op in meta.operators.values() {
        for s in &op.subtasks {
            let bytes = storage.get(&s.file).unwrap();
            let snap = TaskStateSnapshot::from_file_bytes(&s.file, &bytes).unwrap();
            for st in snap.operators.values() {
                names.extend(st.shared_files());
            }
        }
    }
    names
}

#[test]
fn full_checkpoints_recover_exactly_once() {
    let events = 50_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(
        events,
        2,
        &tmp.path().join("out"),
        &tmp.path().join("ck"),
        "rocksdb",
    );
    a.full_checkpoints = true;
    a.fail_at = vec![17_000, 33_000];
    let result = exactly_once::run(&a).unwrap();
    assert!(result.restarts >= 1);
    assert_same(&committed(&a.output_dir), &reference(events));
    let job_dir = tmp.path().join("ck").join(result.job_id.to_string());
    assert!(
        !job_dir.join("shared").exists(),
        "full checkpoints wrote shared files"
    );
}

/// Runs the job on `backend` at `parallelism` until a checkpoint completed, then stops it
/// with a savepoint; returns the savepoint's path.
fn stop_midway(a: &Args, savepoints: &Path) -> String {
    let (env, _) = build(a).unwrap();
    let client = env.execute_async("Exactly once").unwrap();
    common::wait_for_checkpoints(&client, 1);
    let savepoint = client
        .stop_with_savepoint(savepoints.display().to_string())
        .unwrap();
    client.wait().unwrap();
    savepoint
}

#[test]
fn savepoints_move_between_backends_and_parallelisms() {
    let events = 80_000;
    let want = reference(events);
    for (from, to, p1, p2) in [("heap", "rocksdb", 2, 3), ("rocksdb", "heap", 3, 1)] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut a = args(events, p1, &out, &tmp.path().join("ck"), from);
        a.poll_pause_ms = 2;
        let savepoint = stop_midway(&a, &tmp.path().join("savepoints"));
        let partial = committed(&out).len();
        assert!(
            partial > 0 && partial < want.len(),
            "stopped midway: {partial}"
        );

        let mut b = args(events, p2, &out, &tmp.path().join("ck2"), to);
        b.savepoint = Some(savepoint);
        b.fail_at = vec![events - 2000];
        let second = exactly_once::run(&b).unwrap();
        assert!(second.checkpoints.restored_from.is_some());
        assert_same(&committed(&out), &want);
    }
}

#[test]
fn a_retained_incremental_checkpoint_restores_at_another_parallelism() {
    let events = 80_000;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(events, 2, &out, &tmp.path().join("ck"), "rocksdb");
    a.poll_pause_ms = 2;
    let (env, _) = build(&a).unwrap();
    let client = env.execute_async("Exactly once").unwrap();
    common::wait_for_checkpoints(&client, 2);
    client.cancel().unwrap();
    let _ = client.wait();
    // The latest retained checkpoint, as a user would pick it.
    let job_dir = std::fs::read_dir(tmp.path().join("ck"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let latest = std::fs::read_dir(&job_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("_metadata").exists())
        .max_by_key(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("chk-")
                .parse::<u64>()
                .unwrap_or(0)
        })
        .expect("a retained checkpoint");
    assert!(!referenced_shared_files_of(&latest).is_empty());

    // A heap job cannot read incremental RocksDB files, and says so.
    let mut h = args(events, 3, &out, &tmp.path().join("ck-heap"), "heap");
    h.savepoint = Some(latest.display().to_string());
    let err = exactly_once::run(&h).unwrap_err().to_string();
    assert!(err.contains("incremental RocksDB state"), "{err}");

    let mut b = args(events, 3, &out, &tmp.path().join("ck2"), "rocksdb");
    b.savepoint = Some(latest.display().to_string());
    let second = exactly_once::run(&b).unwrap();
    assert!(second.checkpoints.restored_from.is_some());
    assert_same(&committed(&out), &reference(events));
}

#[test]
fn a_lost_shared_file_falls_back_to_the_checkpoint_before() {
    let events = 120_000;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(events, 2, &out, &tmp.path().join("ck"), "rocksdb");
    a.restart_delay_ms = 300;
    a.poll_pause_ms = 4;
    a.retained_checkpoints = 3;
    let (env, failures) = build(&a).unwrap();
    // The first source event after 3 completed checkpoints fails.
    common::fail_after_checkpoints(&failures, 3);
    let client = env.execute_async("Exactly once").unwrap();
    common::wait_for_restart(&client);
    // Delete an SST file only the latest checkpoint refers to.
    let stats = client.checkpoint_stats().unwrap();
    let latest = stats.latest_completed().unwrap();
    let latest_dir = Path::new(latest.location.as_ref().unwrap()).to_path_buf();
    let job_dir = latest_dir.parent().unwrap().to_path_buf();
    let mine = referenced_shared_files_of(&latest_dir);
    let others: BTreeSet<String> = std::fs::read_dir(&job_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &latest_dir && p.join("_metadata").exists())
        .flat_map(|p| referenced_shared_files_of(&p))
        .collect();
    let only_latest = mine
        .difference(&others)
        .next()
        .expect("the latest checkpoint added an SST file");
    std::fs::remove_file(job_dir.join("shared").join(only_latest)).unwrap();

    let result = client.wait().unwrap();
    let (restored, _) = result.checkpoints.restored_from.clone().unwrap();
    assert!(
        restored < latest.id,
        "restored from {restored}, lost a file of {}",
        latest.id
    );
    let mut got = committed(&out);
    got.dedup();
    assert_same(&got, &reference(events));
}
