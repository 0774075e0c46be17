//! Event-time windows over a CSV of events, with Flink's exact semantics for lateness and
//! firing.
//!
//! ```text
//! cargo run --release --example windows -- --input events.csv --output out.csv \
//!     --window tumbling:SIZE_MS | sliding:SIZE_MS:SLIDE_MS | session:GAP_MS \
//!     --out-of-orderness MS [--allowed-lateness MS] [--late-output late.csv] [--parallelism N]
//! ```
//!
//! Input lines are `key,timestamp_ms,value`, read by one source subtask in file order. After
//! every record the watermark becomes `max timestamp seen - out-of-orderness - 1`. The window
//! operator (event time, the default event-time trigger, the given allowed lateness) runs at
//! the given parallelism and writes one line per firing, `key,window_start,window_end,count,sum`
//! (late firings included). Records too late for every window go to `--late-output` as their
//! input line. Bad input lines fail the job with their line number (exit 1); bad arguments
//! exit 2.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;
use weir::prelude::*;

/// Command line of the windows example.
#[derive(Parser, Debug, Clone)]
#[command(about = "Event-time windows with Weir")]
pub struct Args {
    /// Events, one `key,timestamp_ms,value` per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Window firings, one `key,start,end,count,sum` per line.
    #[arg(long)]
    pub output: PathBuf,
    /// `tumbling:SIZE_MS`, `sliding:SIZE_MS:SLIDE_MS` or `session:GAP_MS`.
    #[arg(long, value_parser = parse_window)]
    pub window: WindowSpec,
    /// Bounded out-of-orderness of the watermark, in ms.
    #[arg(long, allow_negative_numbers = false)]
    pub out_of_orderness: u64,
    /// Allowed lateness of the windows, in ms.
    #[arg(long, default_value_t = 0)]
    pub allowed_lateness: u64,
    /// Where records too late for every window go.
    #[arg(long)]
    pub late_output: Option<PathBuf>,
    /// Parallelism of the window operator.
    #[arg(long, default_value_t = 1)]
    pub parallelism: i64,
    /// Set the event-time trigger explicitly (it is the default). This runs the general
    /// window operator instead of the one specialised for the default trigger; both must
    /// give the same output.
    #[arg(long)]
    pub explicit_trigger: bool,
}

/// The window of the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// Tumbling windows of this size (ms).
    Tumbling(i64),
    /// Sliding windows of size and slide (ms).
    Sliding(i64, i64),
    /// Session windows with this gap (ms).
    Session(i64),
}

fn parse_window(s: &str) -> Result<WindowSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| -> Result<i64, String> {
        match p.parse::<i64>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(format!("'{p}' is not a positive number of milliseconds")),
        }
    };
    match parts.as_slice() {
        ["tumbling", size] => Ok(WindowSpec::Tumbling(num(size)?)),
        ["sliding", size, slide] => Ok(WindowSpec::Sliding(num(size)?, num(slide)?)),
        ["session", gap] => Ok(WindowSpec::Session(num(gap)?)),
        _ => Err("expected tumbling:SIZE_MS, sliding:SIZE_MS:SLIDE_MS or session:GAP_MS".into()),
    }
}

/// One input record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    key: String,
    ts: i64,
    value: i64,
    line: String,
}

/// Parses a line (`Ok(None)` for a blank line).
fn parse_line(line: &str, number: usize) -> Result<Option<Event>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != 3 {
        return Err(format!("line {number}: expected 3 comma-separated fields (key,timestamp_ms,value), found {}: '{line}'", fields.len()));
    }
    let ts: i64 = fields[1].parse().map_err(|_| {
        format!(
            "line {number}: timestamp '{}' is not a 64-bit integer",
            fields[1]
        )
    })?;
    if ts == i64::MIN {
        return Err(format!(
            "line {number}: timestamp {ts} is reserved (it means 'no timestamp')"
        ));
    }
    let value: i64 = fields[2].parse().map_err(|_| {
        format!(
            "line {number}: value '{}' is not a 64-bit integer",
            fields[2]
        )
    })?;
    Ok(Some(Event {
        key: fields[0].to_string(),
        ts,
        value,
        line: line.to_string(),
    }))
}

/// Reads the events of a file in order, failing on the first bad line.
struct EventFile(PathBuf);

struct EventReader {
    lines: std::io::Lines<BufReader<std::fs::File>>,
    number: usize,
    path: PathBuf,
}

impl Source<Event> for EventFile {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<Event>>, UserError> {
        let f = std::fs::File::open(&self.0)
            .map_err(|e| format!("cannot open '{}': {e}", self.0.display()))?;
        Ok(Box::new(EventReader {
            lines: BufReader::new(f).lines(),
            number: 0,
            path: self.0.clone(),
        }))
    }
}

impl SourceReader<Event> for EventReader {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Event>,
    ) -> weir::runtime::Result<PollStatus> {
        for _ in 0..1024 {
            let Some(line) = self.lines.next() else {
                return Ok(PollStatus::Finished);
            };
            self.number += 1;
            let line = line.map_err(|e| {
                weir::runtime::RuntimeError::io(
                    format!(
                        "cannot read '{}' at line {}",
                        self.path.display(),
                        self.number
                    ),
                    e,
                )
            })?;
            match parse_line(&line, self.number) {
                Ok(Some(e)) => out.collect(e)?,
                Ok(None) => {}
                Err(msg) => {
                    return Err(weir::runtime::RuntimeError::Other(format!(
                        "bad input in '{}': {msg}",
                        self.path.display()
                    )))
                }
            }
        }
        Ok(PollStatus::MoreAvailable)
    }
}

/// Emits the watermark after every record: `max timestamp - out_of_orderness - 1`.
struct PerRecordWatermarks {
    max: i64,
    ooo: i64,
}

impl WatermarkGenerator<Event> for PerRecordWatermarks {
    fn on_event(&mut self, _: &Event, ts: i64, out: &mut WatermarkOutput) {
        self.max = self.max.max(ts);
        out.emit_watermark(self.max.saturating_sub(self.ooo).saturating_sub(1));
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

/// Count and sum (wrapping like a Java long).
struct CountSum;

impl AggregateFunction<Event, (i64, i64), (i64, i64)> for CountSum {
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }
    fn add(&self, e: &Event, acc: &mut (i64, i64)) {
        acc.0 += 1;
        acc.1 = acc.1.wrapping_add(e.value);
    }
    fn get_result(&self, acc: &(i64, i64)) -> (i64, i64) {
        *acc
    }
    fn merge(&self, a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
        (a.0 + b.0, a.1.wrapping_add(b.1))
    }
}

/// Formats one firing.
#[derive(Clone)]
struct FormatFiring;

impl ProcessWindowFunction<(i64, i64), String, String, TimeWindow> for FormatFiring {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut WindowContext<'_, String, TimeWindow>,
        results: Vec<(i64, i64)>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        for (count, sum) in results {
            out.collect(format!("{key},{},{},{count},{sum}", w.start, w.end));
        }
        Ok(())
    }
}

fn windowed<W: Window, A: WindowAssigner<Event, W>>(
    keyed: &KeyedStream<Event, String>,
    assigner: A,
    args: &Args,
    late: &OutputTag<Event>,
) -> WindowedStream<Event, String, W, A> {
    let w = keyed
        .window(assigner)
        .allowed_lateness(Duration::from_millis(args.allowed_lateness))
        .side_output_late_data(late);
    if args.explicit_trigger {
        w.trigger(EventTimeTrigger)
    } else {
        w
    }
}

/// Builds and runs the job.
pub fn run(args: &Args) -> Result<JobExecutionResult, ApiError> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    let ooo = args.out_of_orderness as i64;
    let strategy =
        WatermarkStrategy::for_generator(move || PerRecordWatermarks { max: i64::MIN, ooo })
            .with_timestamp_assigner(|e: &Event, _| e.ts);
    let events = env.from_source_with_watermarks(EventFile(args.input.clone()), strategy, "Events");
    let keyed = events.key_by(|e: &Event| e.key.clone());
    let late = OutputTag::<Event>::new("late");
    let firings = match args.window {
        WindowSpec::Tumbling(size) => windowed(
            &keyed,
            TumblingEventTimeWindows::of_millis(size, 0),
            args,
            &late,
        )
        .aggregate_with_process(CountSum, FormatFiring),
        WindowSpec::Sliding(size, slide) => windowed(
            &keyed,
            SlidingEventTimeWindows::of_millis(size, slide, 0),
            args,
            &late,
        )
        .aggregate_with_process(CountSum, FormatFiring),
        WindowSpec::Session(gap) => windowed(
            &keyed,
            EventTimeSessionWindows::with_gap_millis(gap),
            args,
            &late,
        )
        .aggregate_with_process(CountSum, FormatFiring),
    };
    firings
        .write_as_text(&args.output, WriteMode::Overwrite)
        .set_parallelism(1)
        .name("Firings");
    if let Some(path) = &args.late_output {
        firings
            .get_side_output(&late)
            .map(|e: Event| e.line)
            .write_as_text(path, WriteMode::Overwrite)
            .set_parallelism(1)
            .name("Late Records");
    }
    env.execute("Windows")
}

#[allow(dead_code)]
fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
