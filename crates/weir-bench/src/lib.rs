//! The shared benchmark workloads (`../shared/bench/WORKLOADS.md`) on Weir's DataStream API.
//!
//! [`bid`] is the deterministic generator; [`BidSource`] emits it in parallel (instance `k` of
//! `P` emits `i = k, k+P, ...`) with monotonous event timestamps; [`run`] builds workload
//! W0..W4 on the embedded mini-cluster and returns the row count and checksum that a counting
//! sink computed, to be compared with the Flink anchor and `reference.py`. The jobs use the
//! same engine paths as any user job: no special cases for the benchmark.

pub mod cluster;
pub mod exchange;
pub mod kafka;
pub mod nexmark;
pub mod postgres;
pub mod probe;
pub mod sql;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use weir_api::functions::UserError;
use weir_api::prelude::*;

const SEED_BIDDER: u64 = 0x1000_0000_0000_0000;
const SEED_PRICE: u64 = 0x2000_0000_0000_0000;
const SEED_CHANNEL: u64 = 0x3000_0000_0000_0000;
const SEED_URL: u64 = 0x4000_0000_0000_0000;
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// Event time of event 0 (2023-11-14T22:13:20Z).
pub const BASE_TIME_MS: i64 = 1_700_000_000_000;

/// The generator's mixing function.
#[inline(always)]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A Nexmark-style bid. The 4 channel and 1000 url strings are built once and borrowed
/// (`Cow::Borrowed`), as the Flink generator shares its `String`s; a bid that crossed a
/// network exchange owns its strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// Auction id, 1000..=10999.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price.
    pub price: i64,
    /// One of 4 channels.
    pub channel: Cow<'static, str>,
    /// One of 1000 urls.
    pub url: Cow<'static, str>,
    /// Event time, epoch ms.
    pub date_time: i64,
    /// Always empty.
    pub extra: Cow<'static, str>,
}

/// The shared strings of the generator, built once per process.
pub struct Strings {
    urls: &'static [String],
}

impl Default for Strings {
    fn default() -> Self {
        static URLS: OnceLock<Vec<String>> = OnceLock::new();
        Strings {
            urls: URLS.get_or_init(|| {
                (0..1000)
                    .map(|k| format!("https://www.nexmark.com/item/{k}"))
                    .collect()
            }),
        }
    }
}

impl Strings {
    /// The `k`-th url.
    pub fn url(&self, k: usize) -> &'static str {
        self.urls[k].as_str()
    }
}

/// Event `i` of the stream.
#[inline]
pub fn bid(s: &Strings, i: u64) -> Bid {
    Bid {
        auction: 1000 + (splitmix64(i) % 10_000) as i64,
        bidder: (splitmix64(i ^ SEED_BIDDER) % 100_000) as i64,
        price: 100 + (splitmix64(i ^ SEED_PRICE) % 10_000_000) as i64,
        channel: Cow::Borrowed(CHANNELS[(splitmix64(i ^ SEED_CHANNEL) % 4) as usize]),
        url: Cow::Borrowed(s.urls[(splitmix64(i ^ SEED_URL) % 1000) as usize].as_str()),
        date_time: BASE_TIME_MS + i as i64,
        extra: Cow::Borrowed(""),
    }
}

/// The events a generator subtask emits, as `(next, step, end)`: `i = subtask,
/// subtask + P, ... < events`, or where a restored reader left off. A restored reader
/// resumes its stride; the bench restores at the same parallelism.
pub fn stride(ctx: &SourceContext, events: u64) -> Result<(u64, u64, u64), UserError> {
    Ok(match ctx.decode_restored::<(u64, u64, u64)>()? {
        Some(s) => s.into_iter().next().unwrap_or((events, 1, events)),
        None => (ctx.subtask as u64, ctx.parallelism as u64, events),
    })
}

/// The bounded, parallel, replayable bid source: instance `k` of `P` emits `i = k, k+P, ...`.
pub struct BidSource {
    events: u64,
}

impl BidSource {
    /// The first `events` bids.
    pub fn new(events: u64) -> Self {
        BidSource { events }
    }
}

struct BidReader {
    strings: Strings,
    next: u64,
    step: u64,
    end: u64,
}

impl Source<Bid> for BidSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<Bid>>, UserError> {
        let (next, step, end) = stride(ctx, self.events)?;
        Ok(Box::new(BidReader {
            strings: Strings::default(),
            next,
            step,
            end,
        }))
    }
}

impl SourceReader<Bid> for BidReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, Bid>) -> weir_runtime::Result<PollStatus> {
        for _ in 0..1024 {
            if self.next >= self.end {
                return Ok(PollStatus::Finished);
            }
            let b = bid(&self.strings, self.next);
            let ts = b.date_time;
            out.collect_with_timestamp(b, ts)?;
            self.next += self.step;
        }
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> weir_runtime::Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&(self.next, self.step, self.end))?])
    }
}

/// Rows and checksum a counting sink saw.
#[derive(Clone, Default)]
pub struct Tally {
    rows: Arc<AtomicU64>,
    checksum: Arc<AtomicI64>,
}

impl Tally {
    /// Adds one writer's totals.
    pub fn add(&self, rows: u64, checksum: i64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        let mut cur = self.checksum.load(Ordering::Relaxed);
        while let Err(c) = self.checksum.compare_exchange(
            cur,
            cur.wrapping_add(checksum),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            cur = c;
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
    /// Wrapping sum of the per-row values.
    pub fn checksum(&self) -> i64 {
        self.checksum.load(Ordering::Relaxed)
    }
}

/// A blackhole sink that counts rows and sums `value(row)`, per subtask, and adds its totals
/// to the shared [`Tally`] at the end.
pub struct CountingSink<F> {
    tally: Tally,
    value: F,
}

struct CountingWriter<F> {
    tally: Tally,
    value: F,
    rows: u64,
    sum: i64,
}

impl<T: 'static, F: Fn(&T) -> i64 + Clone + Send + Sync + 'static> Sink<T> for CountingSink<F> {
    fn create_writer(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(CountingWriter {
            tally: self.tally.clone(),
            value: self.value.clone(),
            rows: 0,
            sum: 0,
        }))
    }
}

impl<T, F: Fn(&T) -> i64 + Send> SinkWriter<T> for CountingWriter<F> {
    #[inline]
    fn write(&mut self, v: T, _: Option<i64>) -> Result<(), UserError> {
        self.rows += 1;
        self.sum = self.sum.wrapping_add((self.value)(&v));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        self.tally.add(self.rows, self.sum);
        Ok(())
    }
}

/// Count and max price of a window.
struct CountMax;

impl AggregateFunction<Bid, (i64, i64), (i64, i64)> for CountMax {
    fn create_accumulator(&self) -> (i64, i64) {
        (0, i64::MIN)
    }
    #[inline]
    fn add(&self, b: &Bid, acc: &mut (i64, i64)) {
        acc.0 += 1;
        acc.1 = acc.1.max(b.price);
    }
    fn get_result(&self, acc: &(i64, i64)) -> (i64, i64) {
        *acc
    }
    fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
        (a.0 + b.0, a.1.max(b.1))
    }
}

/// Count of a window.
struct Count;

impl AggregateFunction<Bid, i64, i64> for Count {
    fn create_accumulator(&self) -> i64 {
        0
    }
    #[inline]
    fn add(&self, _: &Bid, acc: &mut i64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &i64) -> i64 {
        *acc
    }
    fn merge(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

/// Adds key and window bounds to W2's aggregate.
#[derive(Clone)]
struct W2Row;

impl ProcessWindowFunction<(i64, i64), (i64, i64, i64, i64, i64), i64, TimeWindow> for W2Row {
    fn process(
        &mut self,
        key: &i64,
        ctx: &mut WindowContext<'_, i64, TimeWindow>,
        r: Vec<(i64, i64)>,
        out: &mut Collector<'_, (i64, i64, i64, i64, i64)>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        for (cnt, max) in r {
            out.collect((*key, w.start, w.end, cnt, max));
        }
        Ok(())
    }
}

/// Adds key and window bounds to W3's count.
#[derive(Clone)]
struct W3Row;

impl ProcessWindowFunction<i64, (i64, i64, i64, i64), i64, TimeWindow> for W3Row {
    fn process(
        &mut self,
        key: &i64,
        ctx: &mut WindowContext<'_, i64, TimeWindow>,
        r: Vec<i64>,
        out: &mut Collector<'_, (i64, i64, i64, i64)>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        for cnt in r {
            out.collect((*key, w.start, w.end, cnt));
        }
        Ok(())
    }
}

/// A workload's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Rows that reached the sink.
    pub out_rows: u64,
    /// Wrapping sum of the per-row values.
    pub checksum: i64,
    /// Wall time of the job.
    pub seconds: f64,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Times the job restarted after a failure.
    pub restarts: u32,
    /// Longest synchronous part of a task's snapshot over all checkpoints, ms.
    pub checkpoint_sync_ms: u64,
    /// Largest checkpoint, bytes.
    pub checkpoint_bytes: u64,
}

/// Checkpoint interval of the `W2c` workload unless `WEIR_BENCH_CHECKPOINT_MS` says
/// otherwise: 10 s, as the benchmark issue defines it.
pub const W2C_CHECKPOINT_INTERVAL_MS: u64 = 10_000;

/// The state backend `WEIR_BENCH_STATE_BACKEND` asks for (`heap`, the default, or
/// `rocksdb`, with incremental checkpoints).
pub fn state_backend_from_env() -> Result<StateBackendConfig, String> {
    let kind: StateBackendKind = match std::env::var("WEIR_BENCH_STATE_BACKEND") {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("WEIR_BENCH_STATE_BACKEND: {e}"))?,
        Err(_) => StateBackendKind::Heap,
    };
    Ok(StateBackendConfig {
        kind,
        incremental: kind == StateBackendKind::RocksDb,
        local_dir: None,
        rocksdb_memory_bytes: None,
    })
}

/// Runs workload `name` (`W0`..`W4`, or `W2c`: W2 with exactly-once checkpoints) over
/// `events` bids at `parallelism`, on the state backend of [`state_backend_from_env`];
/// `WEIR_BENCH_SERIALIZE_EXCHANGE=1` serialises records between tasks instead of handing
/// them over in memory, and `WEIR_BENCH_TASK_SCHEDULING=normal` schedules task threads as
/// ordinary threads instead of `SCHED_BATCH` (to compare the two).
pub fn run(name: &str, events: u64, parallelism: i64) -> Result<Outcome, String> {
    let serialize = std::env::var("WEIR_BENCH_SERIALIZE_EXCHANGE").is_ok_and(|v| v == "1");
    run_with_exchange(name, events, parallelism, serialize, None)
}

/// [`run`] on the cluster of processes whose REST API is at `jobmanager`: the time is the
/// job's net runtime as its JobManager measured it (from deployment, with the workers'
/// start, to the end), the rows are what the sinks received, and the checksum is not
/// available (the sinks' sums stay in the workers), reported as 0.
pub fn run_on_cluster(
    name: &str,
    events: u64,
    parallelism: i64,
    jobmanager: &str,
) -> Result<Outcome, String> {
    run_with_exchange(name, events, parallelism, false, Some(jobmanager))
}

/// [`run`], with records between tasks serialised (`true`) or handed over in memory.
pub fn run_with_exchange(
    name: &str,
    events: u64,
    parallelism: i64,
    serialize_exchange: bool,
    jobmanager: Option<&str>,
) -> Result<Outcome, String> {
    let env = StreamExecutionEnvironment::new();
    if let Some(address) = jobmanager {
        env.set_jobmanager(address);
    }
    env.set_parallelism(parallelism);
    env.set_serialize_local_exchange(serialize_exchange);
    env.set_state_backend(state_backend_from_env()?);
    if let Ok(v) = std::env::var("WEIR_BENCH_TASK_SCHEDULING") {
        let policy: TaskThreadScheduling = v
            .parse()
            .map_err(|e| format!("WEIR_BENCH_TASK_SCHEDULING: {e}"))?;
        env.set_task_thread_scheduling(policy);
    }
    let name = match name {
        "W2c" => {
            let interval = std::env::var("WEIR_BENCH_CHECKPOINT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(W2C_CHECKPOINT_INTERVAL_MS);
            env.enable_checkpointing(Duration::from_millis(interval));
            env.set_checkpoint_storage(
                std::env::temp_dir()
                    .join("weir-bench-checkpoints")
                    .display()
                    .to_string(),
            );
            "W2"
        }
        n => n,
    };
    let bids = env.from_source_with_watermarks(
        BidSource::new(events),
        WatermarkStrategy::for_monotonous_timestamps(),
        "bids",
    );
    let tally = Tally::default();
    let t = tally.clone();
    match name {
        "W0" => {
            bids.sink_to(
                CountingSink {
                    tally: t,
                    value: |b: &Bid| b.price,
                },
                "counting",
            );
        }
        "W1" => {
            bids.map(|mut b: Bid| {
                b.price = b.price * 908 / 1000;
                b
            })
            .filter(|b: &Bid| b.auction % 123 == 0)
            .sink_to(
                CountingSink {
                    tally: t,
                    value: |b: &Bid| b.price,
                },
                "counting",
            );
        }
        "W2" => {
            bids.key_by(|b: &Bid| b.auction)
                .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
                .aggregate_with_process(CountMax, W2Row)
                .sink_to(
                    CountingSink {
                        tally: t,
                        value: |r: &(i64, i64, i64, i64, i64)| {
                            r.0.wrapping_add(r.2).wrapping_add(r.3).wrapping_add(r.4)
                        },
                    },
                    "counting",
                );
        }
        "W3" => {
            bids.key_by(|b: &Bid| b.auction)
                .window(SlidingEventTimeWindows::of(
                    Duration::from_secs(10),
                    Duration::from_secs(2),
                ))
                .aggregate_with_process(Count, W3Row)
                .sink_to(
                    CountingSink {
                        tally: t,
                        value: |r: &(i64, i64, i64, i64)| r.0.wrapping_add(r.2).wrapping_add(r.3),
                    },
                    "counting",
                );
        }
        "W4" => {
            bids.flat_map(|b: Bid, out: &mut Collector<(String, i64)>| {
                let line = format!("{} {}", b.channel, b.url);
                for w in line.split(' ') {
                    out.collect((w.to_string(), 1));
                }
            })
            .key_by_ref(|t: &(String, i64)| &t.0)
            .reduce(|a, b| (a.0, a.1 + b.1))
            .sink_to(
                CountingSink {
                    tally: t,
                    value: |r: &(String, i64)| r.1,
                },
                "counting",
            );
        }
        other => {
            return Err(format!(
                "unknown workload '{other}'; expected W0, W1, W2, W3 or W4"
            ))
        }
    }
    let start = Instant::now();
    let result = env.execute(name).map_err(|e| e.to_string())?;
    let (out_rows, seconds) = match jobmanager {
        None => (tally.rows(), start.elapsed().as_secs_f64()),
        Some(_) => (
            result
                .operators
                .iter()
                .filter(|o| o.name.contains("counting"))
                .map(|o| o.records_in)
                .sum(),
            result.net_runtime.as_secs_f64(),
        ),
    };
    Ok(Outcome {
        out_rows,
        checksum: tally.checksum(),
        seconds,
        checkpoints: result.checkpoints.completed,
        restarts: result.restarts,
        checkpoint_sync_ms: result
            .checkpoints
            .history
            .iter()
            .map(|c| c.sync_ms)
            .max()
            .unwrap_or(0),
        checkpoint_bytes: result
            .checkpoints
            .history
            .iter()
            .map(|c| c.size_bytes)
            .max()
            .unwrap_or(0),
    })
}

/// The process's peak resident set size in MB (`VmHWM`), if the OS reports it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
