//! The checkpoint coordinator's settings and reporting: timeouts and tolerable failures,
//! the minimum pause, restart strategies, and checkpoint metrics in the registry.

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

use std::path::Path;
use std::time::Duration;
use weir::prelude::*;

fn args(events: u64, parallelism: u32, dir: &Path) -> exactly_once::Args {
    let mut a = common::example_args(
        events,
        parallelism,
        &dir.join("out"),
        &dir.join("ck").display().to_string(),
    );
    a.checkpoint_interval_ms = 20;
    a.retained_checkpoints = 1;
    a.restart_delay_ms = 10;
    a
}

/// A source of `0..n` whose first `slow` snapshots take `snapshot_ms` (a slow state copy).
struct SlowSnapshots {
    n: u64,
    snapshot_ms: u64,
    slow: u32,
}

struct SlowReader {
    next: u64,
    n: u64,
    snapshot_ms: u64,
    slow: u32,
}

impl Source<u64> for SlowSnapshots {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<u64>>, UserError> {
        let next = ctx
            .decode_restored::<u64>()?
            .and_then(|v| v.first().copied());
        Ok(Box::new(SlowReader {
            next: next.unwrap_or(0),
            n: self.n,
            snapshot_ms: self.snapshot_ms,
            slow: self.slow,
        }))
    }
}

impl SourceReader<u64> for SlowReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, u64>) -> weir::runtime::Result<PollStatus> {
        std::thread::sleep(Duration::from_millis(1));
        for _ in 0..10 {
            if self.next >= self.n {
                return Ok(PollStatus::Finished);
            }
            out.collect(self.next)?;
            self.next += 1;
        }
        Ok(PollStatus::MoreAvailable)
    }
    fn snapshot_state(&mut self, _: u64) -> weir::runtime::Result<Vec<Vec<u8>>> {
        if self.slow > 0 {
            self.slow -= 1;
            std::thread::sleep(Duration::from_millis(self.snapshot_ms));
        }
        Ok(vec![encode_split(&self.next)?])
    }
}

fn slow_job(tolerable: u32, dir: &Path) -> Result<JobExecutionResult, ApiError> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(40));
    env.set_checkpoint_storage(dir.display().to_string());
    env.configure_checkpoints(|c| {
        c.timeout_ms = 5;
        c.tolerable_failures = tolerable;
    });
    env.set_restart_strategy(RestartStrategy::None);
    env.from_source(
        SlowSnapshots {
            n: 1500,
            snapshot_ms: 30,
            slow: 2,
        },
        "slow",
    )
    .key_by(|v: &u64| v % 7)
    .reduce(|a, b| a + b)
    .sink_to(FileSink::for_row_format(dir.join("out")), "files");
    env.execute("Slow snapshots")
}

#[test]
fn expired_checkpoints_fail_the_job_beyond_the_tolerable_count() {
    let tmp = tempfile::tempdir().unwrap();
    let err = slow_job(0, tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("expired after 5 ms") && err.contains("exceed the tolerable 0"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    // Tolerated: the job goes on, and the checkpoints after the slow ones complete (at the
    // latest the final one, which is taken again until it completes).
    let r = slow_job(1000, tmp.path()).unwrap();
    assert!(r.checkpoints.completed >= 1);
    assert!(r.checkpoints.failed >= 2);
    let failure = &r.checkpoints.history[0].status;
    assert!(
        matches!(failure, CheckpointStatus::Failed(m) if m.contains("expired")),
        "{failure:?}"
    );
}

#[test]
fn the_minimum_pause_separates_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(100_000, 2, tmp.path());
    a.checkpoint_interval_ms = 1;
    let (env, _) = exactly_once::build(&a).unwrap();
    env.configure_checkpoints(|c| c.min_pause_ms = 60);
    let r = env.execute("Pauses").unwrap();
    let done: Vec<&CheckpointStats> = r
        .checkpoints
        .history
        .iter()
        .filter(|c| c.status == CheckpointStatus::Completed)
        .collect();
    // The last one is the final checkpoint, taken as soon as every task finished.
    let periodic = &done[..done.len() - 1];
    assert!(periodic.len() >= 2, "{} checkpoints", periodic.len());
    for w in periodic.windows(2) {
        let end = w[0].trigger_timestamp_ms + w[0].duration_ms as i64;
        let gap = w[1].trigger_timestamp_ms - end;
        // Clocks: the trigger time is wall time, the duration is measured; allow 2 ms.
        assert!(
            gap >= 58,
            "only {gap} ms between checkpoints {} and {}",
            w[0].id,
            w[1].id
        );
    }
}

#[test]
fn restart_strategies_decide_whether_a_failure_ends_the_job() {
    // No restart: the first failure fails the job, with the operator and the cause.
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(60_000, 2, tmp.path());
    a.fail_at = vec![30_000];
    let (env, _) = exactly_once::build(&a).unwrap();
    env.set_restart_strategy(RestartStrategy::None);
    let err = env.execute("No restart").unwrap_err().to_string();
    assert!(err.contains("injected failure at event 30000"), "{err}");

    // Failure rate: one failure per minute is tolerated, the second is not.
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(60_000, 2, tmp.path());
    a.fail_at = vec![20_000, 40_000];
    let (env, _) = exactly_once::build(&a).unwrap();
    env.set_restart_strategy(RestartStrategy::FailureRate {
        max_failures: 1,
        interval_ms: 60_000,
        delay_ms: 10,
    });
    let err = env.execute("Failure rate").unwrap_err().to_string();
    assert!(err.contains("injected failure at event 40000"), "{err}");

    // Exponential delay restarts both.
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(60_000, 2, tmp.path());
    a.fail_at = vec![20_000, 40_000];
    let (env, _) = exactly_once::build(&a).unwrap();
    env.set_restart_strategy(RestartStrategy::ExponentialDelay {
        initial_ms: 5,
        max_ms: 50,
        multiplier: 2.0,
        reset_threshold_ms: 60_000,
        jitter: 0.1,
    });
    let r = env.execute("Exponential").unwrap();
    assert_eq!(r.restarts, 2);
}

#[test]
fn checkpoint_metrics_reach_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = MiniCluster::start(MiniClusterConfig {
        task_managers: 1,
        slots_per_task_manager: 2,
    });
    let a = args(60_000, 2, tmp.path());
    let (env, _) = exactly_once::build(&a).unwrap();
    env.set_cluster(cluster.clone());
    let r = env.execute("Metered").unwrap();
    assert!(r.checkpoints.completed >= 1);
    // The job ends with its final checkpoint, taken once every task finished: the last
    // one triggered, and it completed.
    let newest = r.checkpoints.history.iter().map(|c| c.id).max();
    assert_eq!(r.checkpoints.latest_completed().map(|c| c.id), newest);
    let last = r.checkpoints.latest_completed().unwrap();
    assert!(last.size_bytes > 0);
    assert!(last
        .operators
        .iter()
        .any(|o| o.uid == "running-sum" && o.size_bytes > 0));
    let text = cluster.metrics().render();
    let job = r.job_id.to_string();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("weir_{name}{{")) && l.contains(&job))
            .unwrap_or_else(|| panic!("no {name} for the job in:\n{text}"))
            .to_string()
    };
    assert!(
        line("numberOfCompletedCheckpoints").ends_with(&format!(" {}", r.checkpoints.completed))
    );
    assert!(line("lastCompletedCheckpointId").ends_with(&format!(" {}", last.id)));
    line("lastCheckpointDuration");
    line("lastCheckpointAlignmentTime");
    assert!(text.contains("operator_uid=\"running-sum\""), "{text}");
}

/// State time-to-live without reads: keys written once and never read again.
mod ttl_without_reads {
    use std::time::{Duration, Instant};
    use weir::connectors::datagen::DataGeneratorSource;
    use weir::prelude::*;
    use weir::state::{StateTtlConfig, StateVisibility, ValueState};

    /// Writes each key once (first phase), or reports whether the key still has a value,
    /// expired or not (second phase: expired values are visible until cleaned up).
    #[derive(Clone)]
    struct WriteOrProbe {
        probe: bool,
        seen: ValueState<u64>,
    }

    impl KeyedProcessFunction<u64, u64, String> for WriteOrProbe {
        fn process_element(
            &mut self,
            v: u64,
            ctx: &mut KeyedContext<'_, u64>,
            out: &mut Collector<'_, String>,
        ) -> Result<(), UserError> {
            if self.probe {
                if let Some(old) = self.seen.value(ctx)? {
                    out.collect(format!("key {v} still holds {old}"));
                }
            } else {
                self.seen.update(ctx, v)?;
            }
            Ok(())
        }
    }

    fn state() -> ValueState<u64> {
        let ttl = StateTtlConfig::new(Duration::from_millis(100))
            .with_visibility(StateVisibility::ReturnExpiredIfNotCleanedUp);
        ValueState::new("seen").with_ttl(ttl)
    }

    #[test]
    fn expired_state_of_keys_never_read_again_leaves_the_savepoint() {
        let tmp = tempfile::tempdir().unwrap();
        // Keys 0..100 are written once in the first tenth of a second; the job then runs
        // on without touching them.
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        env.enable_checkpointing(Duration::from_millis(50));
        env.set_checkpoint_storage(tmp.path().join("ck").display().to_string());
        env.from_source(
            DataGeneratorSource::new(u64::MAX, |i| i).with_rate_limit(1_000.0),
            "numbers",
        )
        .uid("numbers")
        .filter(|i: &u64| *i < 100)
        .key_by(|i: &u64| *i)
        .process(WriteOrProbe {
            probe: false,
            seen: state(),
        })
        .uid("ttl")
        .discard();
        let client = env.execute_async("write once").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let start = Instant::now();
        while client.checkpoint_stats().unwrap().completed < 1 {
            assert!(start.elapsed() < Duration::from_secs(30), "no checkpoint");
            std::thread::sleep(Duration::from_millis(10));
        }
        let sp = client
            .trigger_savepoint(tmp.path().join("sp").display().to_string())
            .unwrap();
        client.cancel().unwrap();
        let _ = client.wait();

        // Restored, every key is probed: a value left in the savepoint would be returned
        // once (expired but visible); none is, so the snapshot dropped them.
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        env.restore_from_savepoint(sp, true);
        // A source of its own (the first job's generator state is left unused).
        let found = env
            .from_source(DataGeneratorSource::new(100, |i| i), "probe numbers")
            .uid("probe numbers")
            .key_by(|i: &u64| *i)
            .process(WriteOrProbe {
                probe: true,
                seen: state(),
            })
            .uid("ttl")
            .collect_values();
        env.execute("probe").unwrap();
        assert_eq!(found.take(), Vec::<String>::new());
    }
}
