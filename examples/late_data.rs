//! An event-time tumbling-window aggregate over out-of-order sensor readings, with late
//! data sent to a side output.
//!
//! ```text
//! cargo run --release --example late_data -- [--readings N] [--parallelism P]
//! ```
//!
//! Readings arrive paced like a live stream (one every 200 µs), up to 3 s out of order, and
//! a few much later. Watermarks follow Flink's bounded out-of-orderness strategy (2 s),
//! emitted every 20 ms. 5-second windows average each sensor's readings; readings that arrive
//! after their window closed (plus 1 s of allowed lateness) go to the late side output.
//! Every reading is accounted for: in a window or in the late output.

use clap::Parser;
use std::time::{Duration, Instant};
use weir::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Tumbling windows over out-of-order data, with a late-data side output")]
struct Args {
    /// Readings to generate.
    #[arg(long, default_value_t = 20_000)]
    readings: u64,
    /// Parallelism of the windows.
    #[arg(long, default_value_t = 2)]
    parallelism: i64,
}

/// (sensor, event time ms, value)
type Reading = (u32, i64, f64);

fn reading(i: u64) -> Reading {
    let h = weir::core::key_group::fmix64(i);
    let base = i as i64 * 50; // 20 readings per second of event time
    let delay = match h % 100 {
        0 => 20_000 + (h >> 8) as i64 % 10_000, // very late
        1..=30 => (h >> 8) as i64 % 3_000,      // out of order
        _ => 0,
    };
    ((h % 4) as u32, base - delay, (h >> 16) as f64 % 100.0)
}

/// Emits reading `i` at `start + i * 200µs`, so periodic watermarks interleave with data.
struct PacedReadings(u64);

struct PacedReader {
    next: u64,
    end: u64,
    start: Instant,
}

impl Source<Reading> for PacedReadings {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn is_parallel(&self) -> bool {
        false
    }
    fn create_reader(
        &self,
        _: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Reading>>, UserError> {
        Ok(Box::new(PacedReader {
            next: 0,
            end: self.0,
            start: Instant::now(),
        }))
    }
}

impl SourceReader<Reading> for PacedReader {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Reading>,
    ) -> weir::runtime::Result<PollStatus> {
        let due = (self.start.elapsed().as_micros() / 200) as u64;
        if self.next >= self.end {
            return Ok(PollStatus::Finished);
        }
        if self.next > due {
            return Ok(PollStatus::NothingAvailable);
        }
        while self.next <= due.min(self.end - 1) {
            out.collect(reading(self.next))?;
            self.next += 1;
        }
        Ok(PollStatus::MoreAvailable)
    }
}

/// Sum and count of readings, for the average.
struct Average;

impl AggregateFunction<Reading, (f64, u64), (f64, u64)> for Average {
    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, r: &Reading, acc: &mut (f64, u64)) {
        acc.0 += r.2;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(f64, u64)) -> (f64, u64) {
        *acc
    }
    fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

#[derive(Clone)]
struct Report;

impl ProcessWindowFunction<(f64, u64), (u32, i64, u64, f64), u32, TimeWindow> for Report {
    fn process(
        &mut self,
        sensor: &u32,
        ctx: &mut WindowContext<'_, u32, TimeWindow>,
        r: Vec<(f64, u64)>,
        out: &mut Collector<'_, (u32, i64, u64, f64)>,
    ) -> Result<(), UserError> {
        for (sum, n) in r {
            out.collect((*sensor, ctx.window().start, n, sum / n as f64));
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism)
        .set_auto_watermark_interval(Duration::from_millis(20));
    let late = OutputTag::<Reading>::new("late-readings");
    let averages = env
        .from_source_with_watermarks(
            PacedReadings(args.readings),
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(2))
                .with_timestamp_assigner(|r: &Reading, _| r.1),
            "Sensor Readings",
        )
        .key_by(|r: &Reading| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(5)))
        .allowed_lateness(Duration::from_secs(1))
        .side_output_late_data(&late)
        .aggregate_with_process(Average, Report)
        .name("5s averages");
    let late_readings = averages.get_side_output(&late).collect_values();
    let firings = averages.collect_values();
    let result = env.execute("Late Data")?;

    let firings = firings.take();
    let late_readings = late_readings.take();
    // Late firings repeat a window with more readings: keep each window's last (largest) count.
    let mut windows: std::collections::BTreeMap<(u32, i64), u64> = Default::default();
    for (sensor, start, n, _) in &firings {
        let e = windows.entry((*sensor, *start)).or_default();
        *e = (*e).max(*n);
    }
    for ((sensor, start), n) in windows.iter().take(8) {
        println!(
            "sensor {sensor} window [{start}, {}): {n} readings",
            start + 5_000
        );
    }
    let in_windows: u64 = windows.values().sum();
    println!(
        "{} firings over {} windows; {} readings in windows, {} late; {:?}",
        firings.len(),
        windows.len(),
        in_windows,
        late_readings.len(),
        result.net_runtime
    );
    if in_windows + late_readings.len() as u64 != args.readings {
        return Err("readings were lost or counted twice".into());
    }
    println!("every reading is accounted for");
    Ok(())
}
