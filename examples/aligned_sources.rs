//! Watermark alignment across the subtasks of one source: subtask 0 reads slowly, subtask 1
//! as fast as it can, over the same event times. With alignment (the default) the fast one
//! waits whenever it is more than the drift ahead of the slow one, also when the two run in
//! different processes of a cluster; with `--no-alignment` it runs to its end at once.
//!
//! ```text
//! cargo run --release --example aligned_sources -- --events N --slow-every K \
//!     --drift-ms D --output-dir DIR [--no-alignment]
//! ```
//!
//! Each subtask emits `0..N` with event time `i` ms; the slow one sleeps 1 ms after every K
//! records (the fast one after every `--fast-every`, if given). Each sink subtask writes `first_ms,last_ms,count` (wall-clock milliseconds of its
//! first and last record) to `DIR/part-<subtask>`.

use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir::prelude::*;

/// Command line of the example.
#[derive(Parser, Debug, Clone)]
#[command(about = "Watermark alignment between a slow and a fast source subtask")]
struct Args {
    /// Records per subtask.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// The slow subtask (0) sleeps 1 ms after every this many records.
    #[arg(long, default_value_t = 10)]
    slow_every: u64,
    /// The fast subtask (1) sleeps 1 ms after every this many records (0: never).
    #[arg(long, default_value_t = 0)]
    fast_every: u64,
    /// The group's maximum drift, ms of event time.
    #[arg(long, default_value_t = 100)]
    drift_ms: u64,
    /// Run without alignment (to compare).
    #[arg(long)]
    no_alignment: bool,
    /// Where each sink subtask writes `first_ms,last_ms,count`.
    #[arg(long)]
    output_dir: PathBuf,
}

struct Numbers {
    events: u64,
    slow_every: u64,
    fast_every: u64,
}

struct NumbersReader {
    next: u64,
    events: u64,
    /// Records between two 1 ms pauses (0: no pauses).
    every: u64,
}

impl Source<i64> for Numbers {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        Ok(Box::new(NumbersReader {
            next: 0,
            events: self.events,
            every: if ctx.subtask == 0 {
                self.slow_every
            } else {
                self.fast_every
            },
        }))
    }
}

impl SourceReader<i64> for NumbersReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, i64>) -> weir::runtime::Result<PollStatus> {
        let batch = if self.every > 0 { self.every } else { 64 };
        for _ in 0..batch {
            if self.next >= self.events {
                return Ok(PollStatus::Finished);
            }
            out.collect_with_timestamp(self.next as i64, self.next as i64)?;
            self.next += 1;
        }
        if self.every > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(PollStatus::MoreAvailable)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone)]
struct Timing(PathBuf);

struct TimingWriter {
    dir: PathBuf,
    subtask: u32,
    first: Option<u64>,
    last: u64,
    count: u64,
}

impl Sink<i64> for Timing {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<i64>>, UserError> {
        Ok(Box::new(TimingWriter {
            dir: self.0.clone(),
            subtask: ctx.subtask,
            first: None,
            last: 0,
            count: 0,
        }))
    }
}

impl SinkWriter<i64> for TimingWriter {
    fn write(&mut self, _: i64, _: Option<i64>) -> Result<(), UserError> {
        let now = now_ms();
        self.first.get_or_insert(now);
        self.last = now;
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        std::fs::create_dir_all(&self.dir)?;
        let line = format!("{},{},{}\n", self.first.unwrap_or(0), self.last, self.count);
        std::fs::write(self.dir.join(format!("part-{}", self.subtask)), line)?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_auto_watermark_interval(Duration::from_millis(5));
    let strategy = WatermarkStrategy::for_monotonous_timestamps();
    let strategy = if args.no_alignment {
        strategy
    } else {
        strategy.with_watermark_alignment("race", Duration::from_millis(args.drift_ms))
    };
    env.from_source_with_watermarks(
        Numbers {
            events: args.events,
            slow_every: args.slow_every,
            fast_every: args.fast_every,
        },
        strategy,
        "numbers",
    )
    .sink_to(Timing(args.output_dir.clone()), "timing");
    env.execute("Aligned sources")?;
    Ok(())
}
