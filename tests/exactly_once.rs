//! Exactly-once across failures, restores and rescaling, end to end: the `exactly_once`
//! example's job (keyed running sums and 1-second event-time window counts, written
//! through the two-phase-commit file sink) is broken on purpose, and its committed output
//! is compared with a reference computed here.

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

use common::{committed, reference};
use exactly_once::{build, Args};
use std::path::Path;
use std::time::Duration;
use weir::prelude::*;

fn args(events: u64, parallelism: u32, out: &Path, ckpt: &Path) -> Args {
    common::example_args(events, parallelism, out, &ckpt.display().to_string())
}

/// A small deterministic generator for failure points.
fn failure_points(seed: u64, n: usize, events: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % events
        })
        .collect()
}

fn assert_same(got: &[String], want: &[String]) {
    if got != want {
        let missing = want
            .iter()
            .filter(|l| got.binary_search(l).is_err())
            .count();
        let extra = got.len() as i64 - want.len() as i64 + missing as i64;
        let wrong: Vec<&String> = got
            .iter()
            .filter(|l| want.binary_search(l).is_err())
            .take(5)
            .collect();
        eprintln!("lines not in the reference: {wrong:?}");
        let dups: Vec<&String> = got
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| &w[0])
            .take(8)
            .collect();
        eprintln!("duplicated lines, e.g.: {dups:?}");
        panic!(
            "committed output differs: {} lines, want {}; {missing} missing, {extra} extra (duplicates or wrong)",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn failures_at_random_events_change_nothing() {
    let events = 60_000;
    let want = reference(events);
    for (parallelism, seed) in [(1, 7), (3, 11)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(
            events,
            parallelism,
            &tmp.path().join("out"),
            &tmp.path().join("ck"),
        );
        a.fail_at = failure_points(seed, 3, events);
        let result = exactly_once::run(&a).unwrap();
        assert!(result.restarts >= 1, "no failure happened: {:?}", a.fail_at);
        assert!(result.checkpoints.completed >= 1);
        assert_same(&committed(&a.output_dir), &want);
        // Only the retained completed checkpoints stay, each with its metadata.
        let job_dir = tmp.path().join("ck").join(result.job_id.to_string());
        let dirs: Vec<_> = std::fs::read_dir(&job_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!dirs.is_empty() && dirs.len() <= 2, "{dirs:?}");
        assert!(
            dirs.iter().all(|d| d.join("_metadata").exists()),
            "{dirs:?}"
        );
    }
}

#[test]
fn unaligned_checkpoints_keep_exactly_once() {
    let events = 60_000;
    let want = reference(events);
    // In-flight data is recorded from records handed over in memory (the default) and from
    // serialised buffers.
    for (timeout_ms, seed, serialize) in [(0, 3, false), (1, 5, false), (0, 9, true), (1, 13, true)]
    {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(events, 3, &tmp.path().join("out"), &tmp.path().join("ck"));
        a.serialize_exchange = serialize;
        a.unaligned = true;
        a.aligned_timeout_ms = timeout_ms;
        a.fail_at = failure_points(seed, 3, events);
        let result = exactly_once::run(&a).unwrap();
        assert!(result.restarts >= 1, "no failure happened: {:?}", a.fail_at);
        assert!(result.checkpoints.completed >= 1);
        let in_flight: u64 = result
            .checkpoints
            .history
            .iter()
            .flat_map(|c| &c.operators)
            .filter(|o| o.name.starts_with("in-flight data"))
            .map(|o| o.size_bytes)
            .sum();
        eprintln!(
            "aligned timeout {timeout_ms} ms, serialized {serialize}: {in_flight} bytes of \
             in-flight data stored"
        );
        if timeout_ms == 0 {
            assert!(
                in_flight > 0,
                "unaligned checkpoints stored no in-flight data"
            );
        }
        assert_same(&committed(&a.output_dir), &want);
    }
}

#[test]
fn at_least_once_loses_nothing() {
    let events = 60_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(events, 2, &tmp.path().join("out"), &tmp.path().join("ck"));
    a.at_least_once = true;
    a.fail_at = failure_points(13, 2, events);
    let result = exactly_once::run(&a).unwrap();
    assert!(result.restarts >= 1);
    let mut got = committed(&a.output_dir);
    got.dedup();
    assert_same(&got, &reference(events));
}

#[test]
fn stop_with_savepoint_and_restore_at_another_parallelism() {
    let events = 80_000;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(events, 2, &out, &tmp.path().join("ck"));
    a.poll_pause_ms = 2;
    let (env, _) = build(&a).unwrap();
    let client = env.execute_async("Exactly once").unwrap();
    common::wait_for_checkpoints(&client, 1);
    let savepoint = client
        .stop_with_savepoint(tmp.path().join("savepoints").display().to_string())
        .unwrap();
    let first = client.wait().unwrap();
    assert!(first.checkpoints.history.iter().any(|c| c.savepoint));
    assert!(Path::new(&savepoint).join("_metadata").exists());
    let partial = committed(&out).len();
    assert!(
        partial > 0 && partial < reference(events).len(),
        "stopped midway: {partial}"
    );

    // Restore at parallelism 3, with a failure on the way.
    let mut b = args(events, 3, &out, &tmp.path().join("ck2"));
    b.savepoint = Some(savepoint);
    b.fail_at = vec![events - 1000];
    let second = exactly_once::run(&b).unwrap();
    assert!(second.checkpoints.restored_from.is_some());
    // Three source subtasks share the savepoint's two splits: one finishes at once, and
    // checkpoints go on without it.
    assert!(
        second.checkpoints.completed >= 1,
        "no checkpoint after a source finished"
    );
    assert_same(&committed(&out), &reference(events));
}

#[test]
fn window_snapshots_move_between_the_two_window_operators() {
    let events = 80_000;
    for fast_first in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut a = args(events, 2, &out, &tmp.path().join("ck"));
        a.explicit_trigger = !fast_first;
        a.poll_pause_ms = 2;
        let (env, _) = build(&a).unwrap();
        let client = env.execute_async("Exactly once").unwrap();
        while client.checkpoint_stats().unwrap().completed < 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let sp = client
            .stop_with_savepoint(tmp.path().join("sp").display().to_string())
            .unwrap();
        client.wait().unwrap();
        // The savepoint holds open windows: the migration is exercised.
        let meta = std::fs::read_to_string(Path::new(&sp).join("_metadata")).unwrap();
        assert!(
            meta.contains("\"window-count\""),
            "no window state in the savepoint"
        );
        let mut b = args(events, 2, &out, &tmp.path().join("ck2"));
        b.explicit_trigger = fast_first;
        b.savepoint = Some(sp);
        exactly_once::run(&b).unwrap();
        assert_same(&committed(&out), &reference(events));
    }
}

#[test]
fn a_savepoint_with_unknown_state_is_rejected_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(80_000, 1, &out, &tmp.path().join("ck"));
    a.poll_pause_ms = 2;
    let (env, _) = build(&a).unwrap();
    let client = env.execute_async("Exactly once").unwrap();
    while client.checkpoint_stats().unwrap().completed < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let sp = client
        .trigger_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    client.wait().unwrap();

    // A job without the window operator cannot take the savepoint's window state.
    let other = tmp.path().join("other");
    let run_other = |allow: bool, source_uid: &str| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(1);
        env.restore_from_savepoint(sp.clone(), allow);
        env.from_sequence(0, 9)
            .uid(source_uid)
            .sink_to(FileSink::for_row_format(&other), "files")
            .uid("other-files");
        env.execute("Other")
    };
    let err = run_other(false, "numbers").unwrap_err().to_string();
    assert!(
        err.contains("window-count") && err.contains("allow non-restored state"),
        "{err}"
    );
    // Allowed: state of operators the job does not have is dropped; it starts afresh.
    run_other(true, "numbers").unwrap();
    let mut got = committed(&other);
    got.sort_by_key(|l| l.parse::<i64>().unwrap_or(-1));
    assert_eq!(got, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    // State under a matching uid but of another shape is a clear error, not garbage.
    let err = run_other(true, "events").unwrap_err().to_string();
    assert!(err.contains("restored source position"), "{err}");
}

/// Waits until the job restarts after its injected failure (set up before it started), then
/// damages the state files of its latest completed checkpoint before the restart reads them.
fn fail_and_damage_latest(client: &JobClient, truncate: bool) -> u64 {
    common::wait_for_restart(client);
    let stats = client.checkpoint_stats().unwrap();
    let latest = stats.latest_completed().unwrap();
    let dir = latest.location.clone().unwrap();
    let mut damaged = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "state") {
            let bytes = std::fs::read(&p).unwrap();
            let new = if truncate {
                bytes[..bytes.len() / 2].to_vec()
            } else {
                let mut b = bytes;
                let mid = b.len() / 2;
                b[mid] ^= 0xff;
                b
            };
            std::fs::write(&p, new).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    latest.id
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_one_before() {
    let events = 120_000;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(events, 2, &out, &tmp.path().join("ck"));
    a.restart_delay_ms = 300;
    a.poll_pause_ms = 4;
    let (env, failures) = build(&a).unwrap();
    // The first source event after 3 completed checkpoints fails.
    common::fail_after_checkpoints(&failures, 3);
    let client = env.execute_async("Exactly once").unwrap();
    let damaged = fail_and_damage_latest(&client, false);
    let result = client.wait().unwrap();
    let (restored, _) = result.checkpoints.restored_from.clone().unwrap();
    assert!(
        restored < damaged,
        "restored from {restored}, damaged {damaged}"
    );
    assert_eq!(result.restarts, 2, "one failure, one failed restore");
    // Nothing is lost. What the damaged checkpoint had committed is written again by the
    // replay from the older one (as in Flink: committed output cannot be taken back).
    let mut got = committed(&out);
    got.dedup();
    assert_same(&got, &reference(events));
}

#[test]
fn without_an_intact_checkpoint_the_job_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut a = args(120_000, 1, &out, &tmp.path().join("ck"));
    a.restart_delay_ms = 300;
    a.poll_pause_ms = 4;
    a.retained_checkpoints = 1;
    let (env, failures) = build(&a).unwrap();
    common::fail_after_checkpoints(&failures, 3);
    let client = env.execute_async("Exactly once").unwrap();
    fail_and_damage_latest(&client, true);
    let err = client.wait().unwrap_err().to_string();
    assert!(
        err.contains("no complete checkpoint can be restored") && err.contains("truncated"),
        "{err}"
    );
}
