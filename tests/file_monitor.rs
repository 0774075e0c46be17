//! A file source monitoring a directory (Flink's `monitorContinuously`): files there at the
//! start and files that land later are each read exactly once, across a stop with a
//! savepoint, files landing while the job is stopped, and a restore at another parallelism.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir::api::sink::CollectedValues;
use weir::connectors::file::FileSource;
use weir::prelude::*;

const LINES: usize = 150;

/// Writes file `f` under a hidden name and renames it, as a well-behaved producer does.
fn land(dir: &Path, f: usize) -> Vec<String> {
    let lines: Vec<String> = (0..LINES).map(|i| format!("f{f:03}-{i:04}")).collect();
    let hidden = dir.join(format!(".f{f:03}.tmp"));
    std::fs::write(&hidden, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&hidden, dir.join(format!("f{f:03}.txt"))).unwrap();
    lines
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn job(dir: &Path, ckpt: &Path, p: i64) -> (StreamExecutionEnvironment, CollectedValues<String>) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_storage(ckpt.display().to_string());
    let got = env
        .from_source(
            FileSource::new(vec![dir.to_path_buf()])
                .monitor_continuously(Duration::from_millis(25)),
            "landing",
        )
        .uid("landing")
        .map(|l: String| {
            std::thread::sleep(Duration::from_micros(400));
            l
        })
        .collect_values();
    (env, got)
}

#[test]
fn each_file_is_read_once_as_it_lands_across_a_savepoint_and_a_rescale() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("landing");
    std::fs::create_dir(&dir).unwrap();
    let mut want = BTreeSet::new();
    for f in 0..3 {
        want.extend(land(&dir, f));
    }

    let (env, first) = job(&dir, &tmp.path().join("ckpt"), 2);
    let client = env.execute_async("monitor").unwrap();
    for f in 3..8 {
        std::thread::sleep(Duration::from_millis(30));
        want.extend(land(&dir, f));
    }
    wait_for(
        "a few hundred lines and checkpoints",
        Duration::from_secs(30),
        || first.len() >= 300 && client.checkpoint_stats().unwrap().completed >= 2,
    );
    let sp = client
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let first = first.take();
    assert!(first.len() < want.len(), "stopped midway: {}", first.len());

    // Files landing while the job is stopped are found by the restored job.
    for f in 8..11 {
        want.extend(land(&dir, f));
    }
    let (env, second) = job(&dir, &tmp.path().join("ckpt"), 3);
    env.restore_from_savepoint(sp, false);
    let client = env.execute_async("monitor again").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for f in 11..13 {
        want.extend(land(&dir, f));
    }
    let expected = want.len();
    wait_for("every line", Duration::from_secs(60), || {
        first.len() + second.len() >= expected
    });
    // Nothing more arrives: no file is read twice later either.
    std::thread::sleep(Duration::from_millis(200));
    client.cancel().unwrap();
    let all: Vec<String> = first.into_iter().chain(second.take()).collect();
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a line was read twice");
    assert_eq!(unique, want);
}

#[test]
fn a_monitored_directory_may_appear_later() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("later");
    let (env, got) = job(&dir, &tmp.path().join("ckpt"), 1);
    let client = env.execute_async("monitor").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::create_dir(&dir).unwrap();
    let want: BTreeSet<String> = land(&dir, 0).into_iter().collect();
    wait_for("the file", Duration::from_secs(30), || got.len() >= LINES);
    client.cancel().unwrap();
    assert_eq!(got.take().into_iter().collect::<BTreeSet<_>>(), want);
}
