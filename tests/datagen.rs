//! The generator source end to end: every index once at any parallelism, the rate limit,
//! and positions that survive a stop-with-savepoint and a restore at another parallelism.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use weir::connectors::datagen::DataGeneratorSource;
use weir::prelude::*;

#[test]
fn every_index_is_generated_once_at_any_parallelism() {
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let got = env
            .from_source(DataGeneratorSource::new(10_007, |i| i * 3), "gen")
            .collect_values();
        env.execute("datagen").unwrap();
        let mut v = got.take();
        v.sort_unstable();
        assert_eq!(v, (0..10_007).map(|i| i * 3).collect::<Vec<_>>(), "p={p}");
    }
}

#[test]
fn the_rate_limit_holds_over_all_subtasks() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let got = env
        .from_source(
            DataGeneratorSource::new(400, |i| i).with_rate_limit(1000.0),
            "gen",
        )
        .collect_values();
    let start = Instant::now();
    env.execute("datagen").unwrap();
    // 400 rows at 1000 rows/s take 0.4 s; the first of each subtask's polls may run ahead
    // by one poll's worth.
    assert!(
        start.elapsed() >= Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(got.len(), 400);
}

#[test]
fn a_bad_rate_limit_fails_the_job() {
    let env = StreamExecutionEnvironment::new();
    env.from_source(
        DataGeneratorSource::new(10, |i| i).with_rate_limit(0.0),
        "gen",
    )
    .discard();
    let e = env.execute("datagen").unwrap_err().to_string();
    assert!(e.contains("rate limit must be above 0"), "{e}");
}

#[test]
fn positions_survive_a_savepoint_and_a_rescale() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 6_000u64;
    let build = |p: i64| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        env.enable_checkpointing(Duration::from_millis(50));
        env.set_checkpoint_storage(tmp.path().join("ckpt").display().to_string());
        let got = env
            .from_source(
                DataGeneratorSource::new(n, |i| i).with_rate_limit(4000.0),
                "gen",
            )
            .uid("gen")
            .collect_values();
        (env, got)
    };
    let (env, first) = build(3);
    let job = env.execute_async("datagen").unwrap();
    let waiting = Instant::now();
    while job.checkpoint_stats().unwrap().completed < 2 {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "no checkpoints"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sp = job
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let first = first.take();
    assert!(
        !first.is_empty() && (first.len() as u64) < n,
        "stopped midway: {}",
        first.len()
    );

    let (env, second) = build(2);
    env.restore_from_savepoint(sp, false);
    env.execute("datagen").unwrap();
    let mut all: Vec<u64> = first.into_iter().chain(second.take()).collect();
    all.sort_unstable();
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an index was generated twice");
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}
