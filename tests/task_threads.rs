//! Task threads run under the scheduling policy the job asks for (`SCHED_BATCH` by default),
//! and user code is unaffected by it.

#![cfg(target_os = "linux")]

use weir::cluster::thread_scheduling::current_thread_policy;
use weir::prelude::*;

/// The policy of the thread each record was processed on, after a keyed exchange (so both
/// a source task and a downstream task are seen).
fn policies_seen(
    scheduling: Option<TaskThreadScheduling>,
) -> Vec<(i64, Option<TaskThreadScheduling>)> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    if let Some(s) = scheduling {
        env.set_task_thread_scheduling(s);
    }
    let out = env
        .from_sequence(1, 200)
        .map(|x: i64| (x, current_thread_policy()))
        .key_by(|t: &(i64, Option<TaskThreadScheduling>)| t.0 % 7)
        .map(|t: (i64, Option<TaskThreadScheduling>)| {
            // The downstream task's thread must agree with the source task's.
            assert_eq!(t.1, current_thread_policy());
            t
        })
        .collect_values();
    env.execute("task thread scheduling").expect("job runs");
    let mut v = out.take();
    v.sort_by_key(|t| t.0);
    v
}

/// Whether this environment lets a thread choose `SCHED_BATCH` (a seccomp profile may not).
fn batch_allowed() -> bool {
    std::thread::spawn(|| {
        weir::cluster::thread_scheduling::apply_to_current_thread(TaskThreadScheduling::Batch)
            .is_ok()
    })
    .join()
    .unwrap_or(false)
}

#[test]
fn task_threads_run_under_sched_batch_by_default() {
    if !batch_allowed() {
        eprintln!("skipped: this environment does not allow SCHED_BATCH (tasks run normally)");
        return;
    }
    let before = current_thread_policy();
    let seen = policies_seen(None);
    assert_eq!(seen.len(), 200);
    assert!(seen
        .iter()
        .all(|(_, p)| *p == Some(TaskThreadScheduling::Batch)));
    // The thread that built and ran the job is untouched.
    assert_eq!(current_thread_policy(), before);
}

#[test]
fn normal_scheduling_keeps_ordinary_threads() {
    let seen = policies_seen(Some(TaskThreadScheduling::Normal));
    assert_eq!(
        seen.iter().map(|t| t.0).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    assert!(seen
        .iter()
        .all(|(_, p)| *p == Some(TaskThreadScheduling::Normal)));
}

#[test]
fn the_setting_parses_from_text() {
    assert_eq!(
        "batch".parse::<TaskThreadScheduling>().ok(),
        Some(TaskThreadScheduling::Batch)
    );
    assert_eq!(
        "Normal".parse::<TaskThreadScheduling>().ok(),
        Some(TaskThreadScheduling::Normal)
    );
    let err = "fifo".parse::<TaskThreadScheduling>().unwrap_err();
    assert!(err.to_string().contains("use 'batch' or 'normal'"), "{err}");
}
