//! Shared pieces of the exactly-once tests: the `exactly_once` example's arguments, the
//! reference output of its job, and the lines its file sink committed.

// Each test crate uses a part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// The lines a run without failures writes, sorted.
pub fn reference(events: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut sums: BTreeMap<u64, u64> = BTreeMap::new();
    let mut windows: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for i in 0..events {
        let key = i % 1000;
        let s = sums.entry(key).or_default();
        *s += i;
        lines.push(format!("sum,{key},{i},{s}"));
        *windows.entry((key, i / 1000 * 1000)).or_default() += 1;
    }
    for ((key, start), count) in windows {
        lines.push(format!("win,{key},{start},{count}"));
    }
    lines.sort();
    lines
}

/// The lines of the finished (visible) part files, sorted; duplicates stay.
pub fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).expect("output directory") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("part file");
        lines.extend(text.lines().map(String::from));
    }
    lines.sort();
    lines
}

/// The example's arguments as its command line gives them, with checkpoints every 50 ms into
/// `ckpt`, two retained, and 20 ms between a failure and the restart.
pub fn example_args(
    events: u64,
    parallelism: u32,
    out: &Path,
    ckpt: &str,
) -> crate::exactly_once::Args {
    use clap::Parser;
    crate::exactly_once::Args::parse_from([
        "exactly_once",
        "--events",
        &events.to_string(),
        "--parallelism",
        &parallelism.to_string(),
        "--checkpoint-interval-ms",
        "50",
        "--state-backend",
        "heap",
        "--output-dir",
        &out.display().to_string(),
        "--checkpoint-dir",
        ckpt,
        "--retained-checkpoints",
        "2",
        "--restart-delay-ms",
        "20",
    ])
}

/// Waits until the running job completed `n` checkpoints (at most 30 s).
pub fn wait_for_checkpoints(client: &weir::api::JobClient, n: u64) {
    let start = std::time::Instant::now();
    while client
        .checkpoint_stats()
        .expect("checkpoint stats")
        .completed
        < n
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "fewer than {n} checkpoints completed in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits until the job is restarting after a failure (at most 30 s).
pub fn wait_for_restart(client: &weir::api::JobClient) {
    let start = std::time::Instant::now();
    while client.status().expect("job status") != weir::prelude::JobStatus::Restarting {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the job did not restart in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Arms the example's failure hook: the first source event after `n` completed checkpoints
/// panics (once).
pub fn fail_after_checkpoints(failures: &crate::exactly_once::FailPoints, n: u32) {
    let mut f = failures.lock().expect("failure points");
    f.next = true;
    f.next_after = n;
}
