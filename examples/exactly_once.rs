//! Exactly-once output across injected failures: a keyed running sum and event-time window
//! counts, written through the two-phase-commit file sink, while the job panics on purpose
//! and recovers from its checkpoints.
//!
//! ```text
//! cargo run --release --example exactly_once -- --events N --parallelism P \
//!     --checkpoint-interval-ms I --state-backend heap|rocksdb --fail-at N1,N2,... --output-dir DIR
//! ```
//!
//! Events are `i = 0..N` with key `i % 1000`, value `i` and event time `i` ms. Source
//! subtask `s` of `P` emits, in increasing `i`, the events whose key satisfies
//! `key % P == s`, so every key's events arrive in order; its position (the next `i`) is
//! checkpointed. The job writes `sum,key,i,running_sum` for every event and
//! `win,key,window_start,count` for every 1-second tumbling event-time window, through the
//! exactly-once file sink into DIR: finished part files are visible, in-progress and pending
//! ones are hidden (their names start with `.`).
//!
//! Each `--fail-at` value makes the source subtask that reaches that event panic, once per
//! process, and only after a checkpoint completed, so the job must restore and replay. The
//! finished files then hold exactly the lines of a run without failures.
//!
//! `--savepoint DIR` starts the job from a savepoint (taken with stop-with-savepoint, for
//! example at another parallelism): the source's splits (one residue class of keys each)
//! are spread over the new source subtasks, keyed state over the new key-group ranges.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::prelude::*;

/// Command line of the example.
#[derive(Parser, Debug, Clone)]
#[command(about = "Exactly-once output across failures with Weir")]
pub struct Args {
    /// Number of events.
    #[arg(long)]
    pub events: u64,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 2)]
    pub parallelism: u32,
    /// Milliseconds between checkpoints.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_interval_ms: u64,
    /// Keyed state backend: `heap` or `rocksdb`.
    #[arg(long, default_value = "heap")]
    pub state_backend: String,
    /// With `rocksdb`: full checkpoints instead of incremental ones.
    #[arg(long)]
    pub full_checkpoints: bool,
    /// With `rocksdb`: where the working directories go (default: under the system's
    /// temporary directory).
    #[arg(long)]
    pub rocksdb_dir: Option<PathBuf>,
    /// Events at which the job panics once (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// Where the finished part files go.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Where checkpoints go (default: a directory under the system's temporary directory).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Milliseconds between two polls of a source subtask (slows the job down so that
    /// checkpoints happen during it; 0: as fast as possible).
    #[arg(long, default_value_t = 1)]
    pub poll_pause_ms: u64,
    /// Start from this savepoint (or retained checkpoint) directory.
    #[arg(long)]
    pub savepoint: Option<String>,
    /// Start even if the savepoint holds state of operators this job does not have.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// Completed checkpoints kept (recovery falls back to an older one if the latest
    /// cannot be read).
    #[arg(long, default_value_t = 2)]
    pub retained_checkpoints: u32,
    /// Milliseconds between a failure and the restart.
    #[arg(long, default_value_t = 100)]
    pub restart_delay_ms: u64,
    /// Unaligned checkpoints: snapshot at the first barrier, store the in-flight data.
    #[arg(long)]
    pub unaligned: bool,
    /// With `--unaligned`: align first, switch to unaligned after this many ms (0: never
    /// align).
    #[arg(long, default_value_t = 0)]
    pub aligned_timeout_ms: u64,
    /// At-least-once barriers (never aligned): output may repeat after a failure.
    #[arg(long)]
    pub at_least_once: bool,
    /// Set the (default) event-time trigger explicitly: runs the general window operator.
    #[arg(long)]
    pub explicit_trigger: bool,
    /// Serialise records between tasks into buffers, as between processes, instead of
    /// handing them over in memory.
    #[arg(long)]
    pub serialize_exchange: bool,
    /// Stop the job with a savepoint into `--savepoint-dir` this many ms after it started,
    /// once it has completed a checkpoint (through the program's job client, also on a
    /// cluster).
    #[arg(long, requires = "savepoint_dir")]
    pub stop_after_ms: Option<u64>,
    /// Where `--stop-after-ms` puts the savepoint.
    #[arg(long)]
    pub savepoint_dir: Option<PathBuf>,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `i % 1000`.
    pub key: u64,
    /// `i`.
    pub i: u64,
}

/// Failures still to inject in this process: `--fail-at` values not reached yet, and
/// whether the next event of any source subtask fails (a hook for tests that fail a
/// running job at a moment of their choosing).
#[derive(Default)]
pub struct Failures {
    /// Events that fail once.
    pub at: HashSet<u64>,
    /// The next event fails, once the reader saw `next_after` checkpoints complete.
    pub next: bool,
    /// See `next`.
    pub next_after: u32,
}

/// Shared by every source reader of the process, across restarts.
pub type FailPoints = Arc<Mutex<Failures>>;

/// The event source. Its splits are residue classes of keys: split `(m, r)` holds the
/// events whose key `k` has `k % m == r`. A fresh job of parallelism `p` gives subtask `s`
/// the split `(p, s)`; a restored job spreads the checkpointed splits over its subtasks.
struct EventSource {
    events: u64,
    fail_at: FailPoints,
    pause: Duration,
}

/// A split and its position: (modulus, residue, next `i` to look at).
type Split = (u64, u64, u64);

/// Reads its splits in step, in increasing `i`, so its timestamps never decrease.
struct EventReader {
    splits: Vec<Split>,
    events: u64,
    fail_at: FailPoints,
    checkpointed: bool,
    /// Checkpoints this reader saw complete.
    completed: u32,
    pause: Duration,
}

impl Source<Event> for EventSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Event>>, UserError> {
        let restored = ctx.decode_restored::<Split>()?;
        let checkpointed = restored.is_some();
        let splits =
            restored.unwrap_or_else(|| vec![(ctx.parallelism as u64, ctx.subtask as u64, 0)]);
        Ok(Box::new(EventReader {
            splits,
            events: self.events,
            fail_at: self.fail_at.clone(),
            checkpointed,
            completed: 0,
            pause: self.pause,
        }))
    }
}

impl SourceReader<Event> for EventReader {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Event>,
    ) -> weir::runtime::Result<PollStatus> {
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        let mut emitted = 0;
        while emitted < 256 {
            let Some(i) = self.splits.iter().map(|s| s.2).min() else {
                break;
            };
            if i >= self.events {
                break;
            }
            let key = i % 1000;
            let owned = self
                .splits
                .iter()
                .any(|&(m, r, next)| next <= i && key % m == r);
            if owned {
                let mut f = self.fail_at.lock().unwrap_or_else(|p| p.into_inner());
                let next_due = f.next && self.completed >= f.next_after;
                if next_due || f.at.contains(&i) {
                    if !self.checkpointed {
                        // Fail only once a checkpoint exists, so the job must recover.
                        return Ok(PollStatus::NothingAvailable);
                    }
                    f.at.remove(&i);
                    f.next = false;
                    drop(f);
                    panic!("injected failure at event {i}");
                }
                drop(f);
                out.collect_with_timestamp(Event { key, i }, i as i64)?;
                emitted += 1;
            }
            for s in self.splits.iter_mut().filter(|s| s.2 <= i) {
                s.2 = i + 1;
            }
        }
        let done = self.splits.iter().all(|s| s.2 >= self.events);
        Ok(if done {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _: u64) -> weir::runtime::Result<Vec<Vec<u8>>> {
        self.splits.iter().map(encode_split).collect()
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> weir::runtime::Result<()> {
        if let CheckpointNotice::Complete(_) = notice {
            self.checkpointed = true;
            self.completed += 1;
        }
        Ok(())
    }
}

/// Counts the elements of a window.
struct Count;

impl AggregateFunction<Event, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: &Event, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// Formats a window's count.
#[derive(Clone)]
struct FormatWindow;

impl ProcessWindowFunction<u64, String, u64, TimeWindow> for FormatWindow {
    fn process(
        &mut self,
        key: &u64,
        ctx: &mut WindowContext<'_, u64, TimeWindow>,
        counts: Vec<u64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let start = ctx.window().start;
        for c in counts {
            out.collect(format!("win,{key},{start},{c}"));
        }
        Ok(())
    }
}

/// Builds and runs the job.
pub fn run(args: &Args) -> Result<JobExecutionResult, ApiError> {
    let (env, _) = build(args)?;
    let (Some(ms), Some(dir)) = (args.stop_after_ms, &args.savepoint_dir) else {
        return env.execute("Exactly once");
    };
    let client = env.execute_async("Exactly once")?;
    std::thread::sleep(Duration::from_millis(ms));
    // A job still deploying has completed no checkpoint yet: wait for one (at most 30 s
    // more), so that the stop comes while the job runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut stats = client.checkpoint_stats()?;
    while stats.completed == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stats = client.checkpoint_stats()?;
    }
    println!("checkpoints completed before the stop: {}", stats.completed);
    let savepoint = client.stop_with_savepoint(dir.display().to_string())?;
    println!("stopped with savepoint {savepoint}");
    client.wait()
}

/// Builds the job on a new environment; the failure points stay reachable for tests.
pub fn build(args: &Args) -> Result<(StreamExecutionEnvironment, FailPoints), ApiError> {
    let kind: StateBackendKind = args
        .state_backend
        .parse()
        .map_err(ApiError::InvalidProgram)?;
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism as i64);
    env.set_serialize_local_exchange(args.serialize_exchange);
    env.enable_checkpointing(Duration::from_millis(args.checkpoint_interval_ms.max(1)));
    env.set_state_backend(StateBackendConfig {
        kind,
        incremental: kind == StateBackendKind::RocksDb && !args.full_checkpoints,
        local_dir: args.rocksdb_dir.as_ref().map(|d| d.display().to_string()),
        rocksdb_memory_bytes: None,
    });
    if let Some(dir) = &args.checkpoint_dir {
        env.set_checkpoint_storage(dir.display().to_string());
    }
    if let Some(sp) = &args.savepoint {
        env.restore_from_savepoint(sp.clone(), args.allow_non_restored_state);
    }
    env.configure_checkpoints(|c| {
        c.retained = args.retained_checkpoints.max(1);
        c.unaligned = args.unaligned;
        c.aligned_timeout_ms = args.aligned_timeout_ms;
        if args.at_least_once {
            c.mode = CheckpointingMode::AtLeastOnce;
        }
    });
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: args.fail_at.len() as u32 + 3,
        delay_ms: args.restart_delay_ms,
    });
    let failures: FailPoints = Arc::new(Mutex::new(Failures {
        at: args.fail_at.iter().copied().collect(),
        next: false,
        next_after: 0,
    }));
    let source = EventSource {
        events: args.events,
        fail_at: failures.clone(),
        pause: Duration::from_millis(args.poll_pause_ms),
    };
    let events = env
        .from_source(source, "Events")
        .uid("events")
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps())
        .uid("timestamps");
    let keyed = events.key_by(|e: &Event| e.key);
    let sums = keyed
        .map(|e: Event| (e.key, e.i, e.i))
        .uid("to-sum")
        .key_by(|t: &(u64, u64, u64)| t.0)
        .reduce(|acc, t| (acc.0, t.1, acc.2 + t.2))
        .uid("running-sum")
        .map(|(k, i, s)| format!("sum,{k},{i},{s}"))
        .uid("format-sum");
    let windowed = keyed.window(TumblingEventTimeWindows::of(Duration::from_secs(1)));
    // The explicit default trigger runs the general window operator instead of the one
    // specialised for it; their snapshots are interchangeable.
    let windowed = if args.explicit_trigger {
        windowed.trigger(EventTimeTrigger)
    } else {
        windowed
    };
    let windows = windowed
        .aggregate_with_process(Count, FormatWindow)
        .uid("window-count");
    sums.union(&[&windows])
        .sink_to(
            FileSink::for_row_format(&args.output_dir),
            "Exactly-once files",
        )
        .uid("files");
    Ok((env, failures))
}

#[allow(dead_code)]
fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            let c = &r.checkpoints;
            println!(
                "finished in {:?}: {} restarts, {} checkpoints completed ({} failed)",
                r.net_runtime, r.restarts, c.completed, c.failed
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
