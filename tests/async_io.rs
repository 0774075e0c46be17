//! Async I/O: ordered and unordered results (unordered never across a watermark, so an
//! event-time window downstream drops nothing), the capacity bound on calls in flight,
//! timeouts with and without a handler, retries, and exactly-once output across a failure
//! with calls in flight (they are in the checkpoint and made again on restore).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::api::async_io::{AsyncDataStream, AsyncFunction, AsyncResult, AsyncRetryStrategy};
use weir::api::window::assigners::TumblingEventTimeWindows;
use weir::connectors::file::FileSink;
use weir::prelude::*;

/// Answers `i` with `i * 10` after a delay that varies per record, counting the calls in
/// flight.
#[derive(Clone)]
struct SlowTimesTen {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    max_delay_ms: u64,
}

impl SlowTimesTen {
    fn new(max_delay_ms: u64) -> Self {
        SlowTimesTen {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            max_delay_ms,
        }
    }
}

impl AsyncFunction<i64, i64> for SlowTimesTen {
    fn async_invoke(&self, i: i64) -> AsyncResult<i64> {
        let (now, max) = (self.in_flight.clone(), self.max_in_flight.clone());
        let delay = (i.unsigned_abs() * 7919) % (self.max_delay_ms + 1);
        Box::pin(async move {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            tokio_sleep(delay).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![i * 10])
        })
    }
}

/// Sleeps on the async runtime the calls run on.
async fn tokio_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn collect<T: weir::api::Data>(s: &DataStream<T>) -> Vec<T> {
    s.execute_and_collect("async")
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn ordered_keeps_the_order_and_capacity_bounds_the_calls_in_flight() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let f = SlowTimesTen::new(8);
    let out = AsyncDataStream::ordered_wait(
        &env.from_sequence(1, 300),
        f.clone(),
        Duration::from_secs(5),
        7,
    );
    assert_eq!(collect(&out), (1..=300).map(|i| i * 10).collect::<Vec<_>>());
    let max = f.max_in_flight.load(Ordering::SeqCst);
    assert!((4..=7).contains(&max), "calls in flight at once: {max}");

    // Unordered: every result, in some order.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let out = AsyncDataStream::unordered_wait(
        &env.from_sequence(1, 500),
        SlowTimesTen::new(5),
        Duration::from_secs(5),
        20,
    );
    let mut got = collect(&out);
    got.sort();
    assert_eq!(got, (1..=500).map(|i| i * 10).collect::<Vec<_>>());
}

#[test]
fn unordered_results_do_not_cross_watermarks() {
    // Timestamps in order with watermarks every 10 ms of event time; the calls complete in
    // scrambled order. A result that overtook a watermark would be late for its window and
    // dropped; none is.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.set_auto_watermark_interval(Duration::from_millis(1));
    let events = env
        .from_sequence(0, 1999)
        .map(|i: i64| {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        })
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|i: &i64, _| *i),
        );
    let counts =
        AsyncDataStream::unordered_wait(&events, SlowTimesTen::new(6), Duration::from_secs(5), 50)
            .map(|v: i64| (v / 10 / 100, 1u64))
            .key_by(|c: &(i64, u64)| c.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
            .reduce(|a, b| (a.0, a.1 + b.1));
    let got: BTreeMap<i64, u64> = collect(&counts).into_iter().collect();
    let want: BTreeMap<i64, u64> = (0..20).map(|w| (w, 100)).collect();
    assert_eq!(got, want);
}

/// Never answers inputs divisible by 5 in time.
#[derive(Clone)]
struct SometimesStuck {
    fallback: bool,
}

impl AsyncFunction<i64, String> for SometimesStuck {
    fn async_invoke(&self, i: i64) -> AsyncResult<String> {
        Box::pin(async move {
            if i % 5 == 0 {
                tokio_sleep(10_000).await;
            }
            Ok(vec![format!("ok {i}")])
        })
    }
    fn timeout(&self, i: &i64) -> Result<Vec<String>, UserError> {
        if self.fallback {
            Ok(vec![format!("timed out {i}")])
        } else {
            Err(format!("lookup of {i} took too long").into())
        }
    }
}

#[test]
fn timeouts_go_to_the_handler_or_fail_the_job() {
    let env = StreamExecutionEnvironment::new();
    let out = AsyncDataStream::unordered_wait(
        &env.from_sequence(1, 20),
        SometimesStuck { fallback: true },
        Duration::from_millis(50),
        30,
    );
    let mut got = collect(&out);
    got.sort();
    let mut want: Vec<String> = (1..=20)
        .map(|i| {
            if i % 5 == 0 {
                format!("timed out {i}")
            } else {
                format!("ok {i}")
            }
        })
        .collect();
    want.sort();
    assert_eq!(got, want);

    let env = StreamExecutionEnvironment::new();
    AsyncDataStream::ordered_wait(
        &env.from_sequence(1, 20),
        SometimesStuck { fallback: false },
        Duration::from_millis(50),
        30,
    )
    .discard();
    let err = format!("{:?}", env.execute("stuck").unwrap_err());
    assert!(
        err.contains("Async Wait") && err.contains("took too long"),
        "{err}"
    );
}

/// Fails the first `failures` calls of every input.
#[derive(Clone)]
struct Flaky {
    failures: u32,
    attempts: Arc<Mutex<HashMap<i64, u32>>>,
}

impl AsyncFunction<i64, i64> for Flaky {
    fn async_invoke(&self, i: i64) -> AsyncResult<i64> {
        let n = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(i).or_insert(0);
            *n += 1;
            *n
        };
        let failures = self.failures;
        Box::pin(async move {
            if n <= failures {
                Err(format!("attempt {n} for {i} failed").into())
            } else {
                Ok(vec![i])
            }
        })
    }
}

#[test]
fn retries_until_the_call_succeeds_or_gives_up() {
    let flaky = Flaky {
        failures: 2,
        attempts: Arc::new(Mutex::new(HashMap::new())),
    };
    let env = StreamExecutionEnvironment::new();
    let out = AsyncDataStream::unordered_wait_with_retry(
        &env.from_sequence(1, 50),
        flaky.clone(),
        Duration::from_secs(5),
        10,
        AsyncRetryStrategy::exponential_backoff(
            3,
            Duration::from_millis(1),
            Duration::from_millis(10),
            2.0,
        ),
    );
    let mut got = collect(&out);
    got.sort();
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
    assert!(flaky.attempts.lock().unwrap().values().all(|n| *n == 3));

    let env = StreamExecutionEnvironment::new();
    AsyncDataStream::ordered_wait_with_retry(
        &env.from_sequence(1, 5),
        Flaky {
            failures: 2,
            attempts: Arc::new(Mutex::new(HashMap::new())),
        },
        Duration::from_secs(5),
        10,
        AsyncRetryStrategy::fixed_delay(1, Duration::from_millis(1)),
    )
    .discard();
    let err = format!("{:?}", env.execute("gives up").unwrap_err());
    assert!(err.contains("attempt 2 for"), "{err}");
}

static FAILED: AtomicBool = AtomicBool::new(false);

#[test]
fn exactly_once_across_a_failure_with_calls_in_flight() {
    let n = 3_000i64;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 2,
        delay_ms: 10,
    });
    let numbers = env.from_source(
        weir::connectors::datagen::DataGeneratorSource::new(n as u64, |i| i as i64)
            .with_rate_limit(6_000.0),
        "numbers",
    );
    AsyncDataStream::unordered_wait(&numbers, SlowTimesTen::new(20), Duration::from_secs(5), 40)
        .map(move |v: i64| {
            // Midway through the first subtask's share of the numbers.
            if v == 7_000 && !FAILED.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
            v
        })
        .sink_to(FileSink::for_row_format(&dir), "files");
    let result = env.execute("async exactly once").unwrap();
    assert!(result.restarts >= 1, "the failure happened");
    assert!(
        result.checkpoints.restored_from.is_some(),
        "restored from a checkpoint, with calls in flight"
    );
    let mut got: Vec<i64> = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            got.push(l.parse().unwrap());
        }
    }
    got.sort();
    assert_eq!(got, (0..n).map(|i| i * 10).collect::<Vec<_>>());
}
