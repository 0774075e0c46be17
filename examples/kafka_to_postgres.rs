//! Kafka to PostgreSQL, exactly once, across injected failures: reads `key,value` lines
//! from a Kafka topic, appends every record to an `events` table and upserts a running
//! total and count per key into a `totals` table, both through the two-phase-commit
//! Postgres sink.
//!
//! ```text
//! cargo run --release --example kafka_to_postgres -- --brokers HOST:PORT --topic T \
//!     --postgres URL [--group G] [--parallelism P] [--checkpoint-interval-ms I] \
//!     [--fail-at N1,N2,...] [--bounded]
//! ```
//!
//! The tables are created if missing: `events (key TEXT, value BIGINT, kafka_partition INT,
//! kafka_offset BIGINT)`, without a unique constraint so that a duplicate would show, and
//! `totals (key TEXT PRIMARY KEY, total BIGINT, count BIGINT)`. Each `--fail-at` value
//! makes the events sink panic once when that many records have reached it (over all its
//! subtasks and restarts), after a checkpoint completed, so the job restores and replays
//! from the offsets in its checkpoint. With `--bounded` the job reads what the topic holds
//! when it starts and ends; without it, it runs until stopped. A line that is not
//! `key,value` with an integer value fails the job with its partition and offset named.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::connectors::kafka::{KafkaRecord, KafkaSource, StartingOffsets};
use weir::connectors::postgres::{DeliveryGuarantee, PostgresSink};
use weir::prelude::*;

/// Command line of the example.
#[derive(Parser, Debug, Clone)]
#[command(about = "Kafka to PostgreSQL, exactly once, with Weir")]
pub struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long)]
    pub brokers: String,
    /// The topic of `key,value` lines.
    #[arg(long)]
    pub topic: String,
    /// The consumer group offsets are committed to when checkpoints complete.
    #[arg(long, default_value = "weir-kafka-to-postgres")]
    pub group: String,
    /// PostgreSQL connection URL (`postgres://user:password@host:port/database`).
    #[arg(long)]
    pub postgres: String,
    /// Parallelism of the job.
    #[arg(long, default_value_t = 2)]
    pub parallelism: u32,
    /// Milliseconds between checkpoints.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_interval_ms: u64,
    /// Record counts at which the events sink panics once, after a checkpoint completed.
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// Read what the topic holds at the start, then end.
    #[arg(long)]
    pub bounded: bool,
    /// Prefix of the sinks' transaction ids (unique per job writing to the database).
    #[arg(long, default_value = "kafka-to-postgres")]
    pub transaction_prefix: String,
}

/// One input record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The line's key.
    pub key: String,
    /// The line's value.
    pub value: i64,
    /// The Kafka partition it came from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// A key's running total and count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The key.
    pub key: String,
    /// The sum of the key's values so far.
    pub total: i64,
    /// The number of the key's records so far.
    pub count: i64,
}

/// Parses a `key,value` record.
fn parse(r: &KafkaRecord<'_>) -> Result<Option<Event>, UserError> {
    let line = std::str::from_utf8(r.value.unwrap_or_default())?;
    let (key, value) = line
        .trim_end()
        .split_once(',')
        .ok_or_else(|| format!("'{line}' is not a key,value line"))?;
    let value = value
        .trim()
        .parse()
        .map_err(|e| format!("the value of '{line}' is not an integer: {e}"))?;
    Ok(Some(Event {
        key: key.to_string(),
        value,
        partition: r.partition,
        offset: r.offset,
    }))
}

/// Fail points not reached yet, and the records the events sink received, over all its
/// subtasks and restarts.
#[derive(Clone, Default)]
struct FailPoints {
    left: Arc<Mutex<BTreeSet<u64>>>,
    seen: Arc<AtomicU64>,
}

/// A sink that panics at the fail points, then hands records to the sink it wraps.
struct FailingSink<S> {
    inner: S,
    fail: FailPoints,
}

struct FailingWriter<T> {
    inner: Box<dyn SinkWriter<T>>,
    fail: FailPoints,
    /// A checkpoint completed since this writer started.
    checkpointed: bool,
}

impl<T: Send + 'static, S: Sink<T>> Sink<T> for FailingSink<S> {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(FailingWriter {
            inner: self.inner.create_writer(ctx)?,
            fail: self.fail.clone(),
            checkpointed: false,
        }))
    }
}

impl<T: Send + 'static> SinkWriter<T> for FailingWriter<T> {
    fn write(&mut self, value: T, timestamp: Option<i64>) -> Result<(), UserError> {
        let seen = self.fail.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.checkpointed {
            let mut left = self.fail.left.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(&at) = left.iter().next().filter(|&&at| at <= seen) {
                left.remove(&at);
                drop(left);
                panic!("injected failure at record {seen}");
            }
        }
        self.inner.write(value, timestamp)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.inner.finish()
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        self.inner.snapshot_state(checkpoint_id)
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        if let CheckpointNotice::Complete(_) = notice {
            self.checkpointed = true;
        }
        self.inner.notify_checkpoint(notice)
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<(), UserError> {
        self.inner.on_processing_time(now_ms)
    }
}

/// Creates the example's tables if they are missing.
pub fn create_tables(url: &str) -> Result<(), String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("cannot connect to the database given with --postgres: {e}"))?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS events (key TEXT, value BIGINT, kafka_partition INT, kafka_offset BIGINT);
         CREATE TABLE IF NOT EXISTS totals (key TEXT PRIMARY KEY, total BIGINT, count BIGINT);",
    )
    .map_err(|e| format!("cannot create the tables: {e:?}"))
}

/// Builds the job on a new environment.
pub fn build(args: &Args) -> Result<StreamExecutionEnvironment, String> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism as i64);
    env.enable_checkpointing(Duration::from_millis(args.checkpoint_interval_ms.max(1)));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: args.fail_at.len() as u32 + 3,
        delay_ms: 50,
    });
    let mut source = KafkaSource::builder()
        .bootstrap_servers(&args.brokers)
        .topics([&args.topic])
        .group_id(&args.group)
        .starting_offsets(StartingOffsets::Earliest)
        .deserializer(parse);
    if args.bounded {
        source = source.bounded();
    }
    let source = source.build().map_err(|e| e.to_string())?;
    let events = env.from_source(source, "Kafka").uid("kafka");

    let appended = PostgresSink::append(
        &args.postgres,
        "events",
        &["key", "value", "kafka_partition", "kafka_offset"],
        |e: &Event, row| {
            row.push(e.key.as_str())
                .push(e.value)
                .push(e.partition)
                .push(e.offset);
        },
    )
    .with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
    .with_transaction_prefix(&format!("{}-events", args.transaction_prefix));
    let failing = FailingSink {
        inner: appended,
        fail: FailPoints {
            left: Arc::new(Mutex::new(args.fail_at.iter().copied().collect())),
            seen: Arc::default(),
        },
    };
    events.sink_to(failing, "events table").uid("events-sink");

    let totals = PostgresSink::upsert(
        &args.postgres,
        "totals",
        &["key", "total", "count"],
        &["key"],
        |t: &Total, row| {
            row.push(t.key.as_str()).push(t.total).push(t.count);
        },
    )
    .with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
    .with_transaction_prefix(&format!("{}-totals", args.transaction_prefix));
    events
        .map(|e: Event| Total {
            key: e.key,
            total: e.value,
            count: 1,
        })
        .uid("to-totals")
        .key_by(|t: &Total| t.key.clone())
        .reduce(|a: Total, b: Total| Total {
            key: a.key,
            total: a.total + b.total,
            count: a.count + b.count,
        })
        .uid("running-totals")
        // Forward from the keyed reduce: no two sink subtasks upsert the same row.
        .sink_to(totals, "totals table")
        .uid("totals-sink");
    Ok(env)
}

/// Creates the tables, runs the job and returns its result.
pub fn run(args: &Args) -> Result<JobExecutionResult, String> {
    create_tables(&args.postgres)?;
    let env = build(args)?;
    env.execute("Kafka to Postgres").map_err(|e| e.to_string())
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
        Ok(result) => {
            let mut c = match postgres::Client::connect(&args.postgres, postgres::NoTls) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cannot connect to read the results: {e}");
                    std::process::exit(1);
                }
            };
            let q = |c: &mut postgres::Client, sql: &str| -> i64 {
                c.query_one(sql, &[]).map(|r| r.get(0)).unwrap_or(-1)
            };
            let rows = q(&mut c, "SELECT count(*) FROM events");
            let distinct = q(
                &mut c,
                "SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM events) d",
            );
            let keys = q(&mut c, "SELECT count(*) FROM totals");
            println!(
                "job finished in {} ms after {} restarts: events has {rows} rows ({} duplicates), totals has {keys} keys",
                result.net_runtime.as_millis(),
                result.restarts,
                rows - distinct
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
