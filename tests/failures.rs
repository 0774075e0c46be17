//! Failure and bad-input paths: panics fail the job with the operator, subtask and message;
//! every task stops; invalid settings are rejected when the graph is built.

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::cluster::ClusterError;
use weir::prelude::*;

fn cluster(slots: usize) -> Arc<MiniCluster> {
    MiniCluster::start(MiniClusterConfig {
        task_managers: 1,
        slots_per_task_manager: slots,
    })
}

#[test]
fn panicking_user_function_fails_the_job_and_stops_every_task() {
    let c = cluster(4);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(4).set_cluster(c.clone());
    // An unbounded upstream keeps running until the failure cancels it.
    env.from_iter_fn(|| 0i64.., Boundedness::Unbounded)
        .rebalance()
        .map(|x: i64| {
            if x == 5_000 {
                panic!("bad record {x}");
            }
            x
        })
        .name("Exploding Map")
        .key_by(|x: &i64| x % 10)
        .sum(|x: &mut i64| x)
        .discard();
    let start = Instant::now();
    let err = env.execute("failing job").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("'Exploding Map'"), "{msg}");
    assert!(msg.contains("bad record 5000"), "{msg}");
    // The iterator source is not parallel and rebalance round-robins from subtask 0, so
    // record 5000 goes to subtask 5000 % 4 = 0.
    assert!(msg.contains("subtask 0"), "{msg}");
    match err.cluster_error() {
        Some(ClusterError::TaskFailed { task, .. }) => {
            assert!(task.contains("Exploding Map"), "{task}")
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "failure took {:?}",
        start.elapsed()
    );
    assert_eq!(c.running_tasks(), 0, "every task thread has stopped");
    assert_eq!(c.slot_report().free, 4, "slots are released");
}

#[test]
fn panic_in_a_source_names_the_source() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_iter_fn(
        || {
            (0..10i64).map(|i| {
                if i == 7 {
                    panic!("source broke at {i}")
                } else {
                    i
                }
            })
        },
        Boundedness::Bounded,
    )
    .map(|x: i64| x)
    .discard();
    let msg = env.execute("source failure").unwrap_err().to_string();
    assert!(
        msg.contains("Source: Iterator Source") && msg.contains("source broke at 7"),
        "{msg}"
    );
}

#[test]
fn invalid_parallelism_is_rejected_when_the_graph_is_built() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 10)
        .map(|x: i64| x)
        .set_parallelism(0)
        .discard();
    let msg = env.execute("bad").unwrap_err().to_string();
    assert!(msg.contains("invalid parallelism 0 for 'Map'"), "{msg}");

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(-1);
    env.from_sequence(1, 10).discard();
    let msg = env.job_graph("bad").unwrap_err().to_string();
    assert!(msg.contains("invalid parallelism -1"), "{msg}");

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(8).set_max_parallelism(4);
    env.from_sequence(1, 10).discard();
    let msg = env.job_graph("bad").unwrap_err().to_string();
    assert!(
        msg.contains("max parallelism must not be smaller than the parallelism"),
        "{msg}"
    );

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.from_sequence(1, 10)
        .map(|x: i64| x)
        .set_max_parallelism(40_000)
        .discard();
    let msg = env.job_graph("bad").unwrap_err().to_string();
    assert!(msg.contains("invalid max parallelism 40000"), "{msg}");

    let env = StreamExecutionEnvironment::new();
    env.from_collection(vec![1i64]).set_parallelism(3).discard();
    let msg = env.job_graph("bad").unwrap_err().to_string();
    assert!(msg.contains("not parallel"), "{msg}");

    let env = StreamExecutionEnvironment::new();
    let msg = env.execute("empty").unwrap_err().to_string();
    assert!(msg.contains("defines no operators"), "{msg}");
}

#[test]
fn duplicate_uids_are_rejected() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .uid("same")
        .map(|x: i64| x)
        .uid("same")
        .discard();
    let msg = env.job_graph("bad").unwrap_err().to_string();
    assert!(msg.contains("uid 'same'"), "{msg}");
}

#[test]
fn missing_input_file_fails_with_the_path() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.read_text_file("/definitely/not/here/weir.txt")
        .discard();
    let msg = env.execute("missing file").unwrap_err().to_string();
    assert!(msg.contains("/definitely/not/here/weir.txt"), "{msg}");
    assert!(msg.contains("No such file"), "{msg}");
}

#[test]
fn a_job_needing_more_slots_than_exist_fails_after_the_timeout() {
    let c = cluster(2);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3)
        .set_cluster(c.clone())
        .set_slot_request_timeout(Duration::from_millis(300));
    env.from_sequence(1, 10).discard();
    let start = Instant::now();
    let err = env.execute("too big").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let msg = err.to_string();
    assert!(
        msg.contains("could not allocate 3 slots") && msg.contains("the cluster has 2 slots"),
        "{msg}"
    );
    assert!(matches!(
        err.cluster_error(),
        Some(ClusterError::NotEnoughSlots {
            needed: 3,
            total: 2,
            ..
        })
    ));
}

#[test]
fn jobs_wait_for_slots_held_by_another_job() {
    let c = cluster(1);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1).set_cluster(c.clone());
    env.from_iter_fn(|| 0i64.., Boundedness::Unbounded)
        .discard();
    let first = env.execute_async("holder").unwrap();
    while first.status().unwrap() != JobStatus::Running {
        std::thread::sleep(Duration::from_millis(5));
    }
    env.from_sequence(1, 100).collect_values();
    let second = env.execute_async("waiter").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        second.status().unwrap(),
        JobStatus::Created,
        "waits for a slot"
    );
    first.cancel().unwrap();
    assert!(first.wait().unwrap_err().to_string().contains("cancelled"));
    assert_eq!(first.status().unwrap(), JobStatus::Canceled);
    let r = second.wait().unwrap();
    assert_eq!(
        r.operator("Source: Sequence Source").unwrap().records_out,
        100
    );
    assert_eq!(c.running_tasks(), 0);
}

/// A source whose `close` panics.
struct PanicOnClose;

struct PanicOnCloseReader;

impl Source<i64> for PanicOnClose {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_reader(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        Ok(Box::new(PanicOnCloseReader))
    }
}

impl SourceReader<i64> for PanicOnCloseReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, i64>) -> weir::runtime::Result<PollStatus> {
        out.collect(1)?;
        Ok(PollStatus::Finished)
    }
    fn close(&mut self) -> weir::runtime::Result<()> {
        panic!("close failed");
    }
}

#[test]
fn a_panic_while_closing_a_source_fails_the_job_instead_of_hanging() {
    let c = cluster(2);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2).set_cluster(c.clone());
    env.from_source(PanicOnClose, "closing").discard();
    let msg = env.execute("close panic").unwrap_err().to_string();
    assert!(
        msg.contains("close failed") && msg.contains("Source: closing"),
        "{msg}"
    );
    assert_eq!(c.running_tasks(), 0);
}
