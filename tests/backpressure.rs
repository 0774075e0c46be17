//! A slow sink throttles a fast source through the bounded buffer pools: the number of
//! records between them stays bounded while the job runs.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;
use weir::prelude::*;

/// A sink that takes 200 µs per record and counts what it consumed.
struct SlowSink(&'static AtomicU64);

struct SlowWriter(&'static AtomicU64);

impl Sink<i64> for SlowSink {
    fn create_writer(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<i64>>, UserError> {
        Ok(Box::new(SlowWriter(self.0)))
    }
}

impl SinkWriter<i64> for SlowWriter {
    fn write(&mut self, _: i64, _: Option<i64>) -> Result<(), UserError> {
        std::thread::sleep(Duration::from_micros(200));
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn slow_sink_throttles_fast_source_and_memory_stays_bounded() {
    static EMITTED: AtomicU64 = AtomicU64::new(0);
    static CONSUMED: AtomicU64 = AtomicU64::new(0);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1)
        .disable_operator_chaining()
        .set_buffer_size(1024)
        .set_floating_buffers(2);
    env.from_iter_fn(
        || {
            (0i64..).inspect(|_| {
                EMITTED.fetch_add(1, Ordering::Relaxed);
            })
        },
        Boundedness::Unbounded,
    )
    .sink_to(SlowSink(&CONSUMED), "slow sink");
    let client = env.execute_async("backpressure").unwrap();
    // The source task's pool holds 2 per channel + 2 floating buffers of 1 KiB (~78 records
    // each), the sink holds at most what it drained from its inbox, and a source poll emits
    // up to 1024 records: a few thousand records in flight, far less than an unthrottled
    // source emits in a second (millions).
    let bound = 4 * 80 + 2 * 1024 + 4096;
    let mut max_gap = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let e = EMITTED.load(Ordering::Relaxed);
        let c = CONSUMED.load(Ordering::Relaxed);
        max_gap = max_gap.max(e.saturating_sub(c));
    }
    client.cancel().unwrap();
    let err = client.wait().unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    let consumed = CONSUMED.load(Ordering::Relaxed);
    assert!(consumed > 100, "the sink made progress ({consumed})");
    assert!(
        max_gap < bound,
        "in-flight records {max_gap} exceed the bound {bound}"
    );
    assert_eq!(client.cluster().running_tasks(), 0);
}

#[test]
fn end_of_input_finishes_every_task_and_counts_records() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3).set_buffer_timeout(0);
    let out = env
        .from_sequence(1, 20_000)
        .rebalance()
        .map(|x: i64| x * 2)
        .key_by(|x: &i64| x % 5)
        .map(|x: i64| x)
        .collect_values();
    let r = env.execute("finish").unwrap();
    let mut v = out.take();
    v.sort();
    assert_eq!(v, (1..=20_000).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(
        r.operator("Source: Sequence Source").unwrap().records_out,
        20_000
    );
    let maps: Vec<_> = r.operators.iter().filter(|o| o.name == "Map").collect();
    assert_eq!(maps.len(), 2);
    assert!(maps
        .iter()
        .all(|m| m.records_in == 20_000 && m.records_out == 20_000));
}
