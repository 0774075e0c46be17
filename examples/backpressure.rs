//! Backpressure: a source as fast as it can go, 1 KiB records, a keyed exchange and a sink
//! that pauses now and then. The source runs at the sink's pace because every channel
//! between them has a bounded number of buffers (credit-based flow control when they are in
//! different processes), so memory stays flat however far ahead the source could run.
//!
//! ```text
//! cargo run --release --example backpressure -- --records N --pause-every K --pause-ms M \
//!     --output-dir DIR [--parallelism P]
//! ```
//!
//! Record `i` (0..N) has key `i % 64` and a payload of 1 KiB. Each sink subtask sleeps M ms
//! after every K records it receives, and at the end writes `count,sum_of_i` to
//! `DIR/part-<subtask>`. Runs unchanged on a cluster of processes with `weir run`.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use weir::prelude::*;

/// Command line of the example.
#[derive(Parser, Debug, Clone)]
#[command(about = "A fast source throttled by a slow sink")]
struct Args {
    /// Number of records.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// The sink sleeps after every this many records.
    #[arg(long, default_value_t = 40)]
    pause_every: u64,
    /// How long the sink sleeps, in ms.
    #[arg(long, default_value_t = 1)]
    pause_ms: u64,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 2)]
    parallelism: i64,
    /// Where each sink subtask writes its `count,sum`.
    #[arg(long)]
    output_dir: PathBuf,
}

/// A record: its number and a payload that makes it 1 KiB on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    i: u64,
    payload: String,
}

/// Makes the 1 KiB records, counting them in a user metric (`weir_user_records_made`,
/// exported where the job's other metrics are).
#[derive(Clone, Default)]
struct MakeRecord {
    made: Option<weir::runtime::user_metrics::Counter>,
}

impl RichFunction for MakeRecord {
    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<(), UserError> {
        self.made = Some(ctx.runtime().metrics.counter("records_made")?);
        Ok(())
    }
}

impl RichMapFunction<i64, Record> for MakeRecord {
    fn map(&mut self, i: i64) -> Result<Record, UserError> {
        if let Some(made) = &self.made {
            made.inc();
        }
        Ok(Record {
            i: i as u64,
            payload: "x".repeat(1000),
        })
    }
}

#[derive(Clone)]
struct SlowSink {
    every: u64,
    pause: Duration,
    dir: PathBuf,
}

struct SlowWriter {
    sink: SlowSink,
    subtask: u32,
    count: u64,
    sum: u64,
}

impl Sink<Record> for SlowSink {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Record>>, UserError> {
        Ok(Box::new(SlowWriter {
            sink: self.clone(),
            subtask: ctx.subtask,
            count: 0,
            sum: 0,
        }))
    }
}

impl SinkWriter<Record> for SlowWriter {
    fn write(&mut self, r: Record, _: Option<i64>) -> Result<(), UserError> {
        self.count += 1;
        self.sum += r.i;
        if self.count % self.sink.every.max(1) == 0 {
            std::thread::sleep(self.sink.pause);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        std::fs::create_dir_all(&self.sink.dir)?;
        let path = self.sink.dir.join(format!("part-{}", self.subtask));
        std::fs::write(path, format!("{},{}\n", self.count, self.sum))?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    let n = args.records;
    env.from_sequence(0, n as i64 - 1)
        .rich_map(MakeRecord::default())
        .name("1 KiB records")
        .key_by(|r: &Record| r.i % 64)
        .sink_to(
            SlowSink {
                every: args.pause_every,
                pause: Duration::from_millis(args.pause_ms),
                dir: args.output_dir.clone(),
            },
            "Slow sink",
        );
    let result = env.execute("Backpressure")?;
    println!(
        "{} records in {:?}; writers waited {} ms for buffers",
        n, result.net_runtime, result.backpressured_ms
    );
    Ok(())
}
