//! Exactly-once output into PostgreSQL across injected failures: every event appended to an
//! `events` table, and a running total and count per key upserted into a `totals` table, both
//! through the two-phase-commit Postgres sink, while the job panics on purpose and recovers
//! from its checkpoints.
//!
//! ```text
//! cargo run --release --example postgres_sink -- --postgres URL --events N [--keys K] \
//!     [--parallelism P] [--checkpoint-interval-ms I] [--fail-at N1,N2,...] \
//!     [--delivery exactly-once|at-least-once] [--events-per-second R]
//! ```
//!
//! Events are `i = 0..N` with key `k<i % K>` and value `i`. The tables are created if
//! missing: `events (i BIGINT, key TEXT, value BIGINT)`, without a unique constraint so that
//! a duplicate would show, and `totals (key TEXT PRIMARY KEY, total BIGINT, count BIGINT)`.
//! Each `--fail-at` value makes the source panic once when it reaches that event, after a
//! checkpoint completed, so the job must restore and replay. With exactly-once, `events`
//! then holds each event once and `totals` the sums of a run without failures; with
//! at-least-once, `totals` is the same (upserts of replayed totals) and `events` may hold
//! duplicates, which the example counts.

use clap::Parser;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::connectors::postgres::{DeliveryGuarantee, PostgresSink};
use weir::prelude::*;

/// Command line of the example.
#[derive(Parser, Debug, Clone)]
#[command(about = "Exactly-once output into PostgreSQL with Weir")]
pub struct Args {
    /// PostgreSQL connection URL (`postgres://user:password@host:port/database`).
    #[arg(long)]
    pub postgres: String,
    /// Number of events.
    #[arg(long)]
    pub events: u64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Parallelism of the sums and the sinks.
    #[arg(long, default_value_t = 2)]
    pub parallelism: u32,
    /// Milliseconds between checkpoints.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_interval_ms: u64,
    /// Events at which the source panics once, after a checkpoint completed.
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// `exactly-once` or `at-least-once`.
    #[arg(long, default_value = "exactly-once")]
    pub delivery: String,
    /// Events per second the source emits at most (0: as fast as it can).
    #[arg(long, default_value_t = 20_000)]
    pub events_per_second: u64,
    /// Prefix of the sinks' transaction ids (unique per job writing to the database).
    #[arg(long, default_value = "postgres-sink-example")]
    pub transaction_prefix: String,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `i`.
    pub i: u64,
    /// `k<i % keys>`.
    pub key: String,
}

/// A key's running total and count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The key.
    pub key: String,
    /// The sum of the key's values so far.
    pub total: i64,
    /// The number of the key's events so far.
    pub count: i64,
}

/// Fail points not reached yet, shared by the source's readers across restarts.
type FailPoints = Arc<Mutex<BTreeSet<u64>>>;

/// Emits events `0..events` from one subtask at a bounded rate; its position is
/// checkpointed.
struct EventSource {
    events: u64,
    keys: u64,
    per_ms: u64,
    fail_at: FailPoints,
}

struct EventReader {
    next: u64,
    events: u64,
    keys: u64,
    per_ms: u64,
    fail_at: FailPoints,
    /// A checkpoint completed since this reader started.
    checkpointed: bool,
}

impl Source<Event> for EventSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn is_parallel(&self) -> bool {
        false
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Event>>, UserError> {
        let next = ctx
            .decode_restored::<u64>()?
            .and_then(|v| v.into_iter().max())
            .unwrap_or(0);
        Ok(Box::new(EventReader {
            next,
            events: self.events,
            keys: self.keys,
            per_ms: self.per_ms,
            fail_at: self.fail_at.clone(),
            checkpointed: false,
        }))
    }
}

impl SourceReader<Event> for EventReader {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Event>,
    ) -> weir::runtime::Result<PollStatus> {
        let batch = if self.per_ms == 0 {
            1024
        } else {
            std::thread::sleep(Duration::from_millis(1));
            self.per_ms
        };
        let end = (self.next + batch).min(self.events);
        while self.next < end {
            let i = self.next;
            if self.checkpointed {
                let mut f = self.fail_at.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(&at) = f.iter().next().filter(|&&at| at <= i) {
                    f.remove(&at);
                    drop(f);
                    panic!("injected failure at event {i}");
                }
            }
            out.collect(Event {
                i,
                key: format!("k{}", i % self.keys),
            })?;
            self.next += 1;
        }
        Ok(if self.next >= self.events {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _: u64) -> weir::runtime::Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&self.next)?])
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> weir::runtime::Result<()> {
        if let CheckpointNotice::Complete(_) = notice {
            self.checkpointed = true;
        }
        Ok(())
    }
}

/// Creates the example's tables if they are missing.
pub fn create_tables(url: &str) -> Result<(), String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("cannot connect to the database given with --postgres: {e}"))?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS events (i BIGINT, key TEXT, value BIGINT);
         CREATE TABLE IF NOT EXISTS totals (key TEXT PRIMARY KEY, total BIGINT, count BIGINT);",
    )
    .map_err(|e| format!("cannot create the tables: {e:?}"))
}

/// Builds the job on a new environment.
pub fn build(args: &Args) -> Result<StreamExecutionEnvironment, String> {
    let delivery = match args.delivery.as_str() {
        "exactly-once" => DeliveryGuarantee::ExactlyOnce,
        "at-least-once" => DeliveryGuarantee::AtLeastOnce,
        other => return Err(format!("unknown --delivery '{other}'")),
    };
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism as i64);
    env.enable_checkpointing(Duration::from_millis(args.checkpoint_interval_ms.max(1)));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: args.fail_at.len() as u32 + 3,
        delay_ms: 50,
    });
    let source = EventSource {
        events: args.events,
        keys: args.keys.max(1),
        per_ms: args.events_per_second.div_ceil(1000),
        fail_at: Arc::new(Mutex::new(args.fail_at.iter().copied().collect())),
    };
    let events = env.from_source(source, "Events").uid("events");

    let appended = PostgresSink::append(
        &args.postgres,
        "events",
        &["i", "key", "value"],
        |e: &Event, row| {
            row.push(e.i as i64).push(e.key.as_str()).push(e.i as i64);
        },
    )
    .with_delivery_guarantee(delivery)
    .with_transaction_prefix(&format!("{}-events", args.transaction_prefix));
    events
        .rebalance()
        .sink_to(appended, "events table")
        .uid("events-sink");

    let totals = PostgresSink::upsert(
        &args.postgres,
        "totals",
        &["key", "total", "count"],
        &["key"],
        |t: &Total, row| {
            row.push(t.key.as_str()).push(t.total).push(t.count);
        },
    )
    .with_delivery_guarantee(delivery)
    .with_transaction_prefix(&format!("{}-totals", args.transaction_prefix));
    events
        .map(|e: Event| Total {
            key: e.key,
            total: e.i as i64,
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
        // The sink's input stays partitioned by key (forward, same parallelism), so no two
        // subtasks upsert the same row.
        .sink_to(totals, "totals table")
        .uid("totals-sink");
    Ok(env)
}

/// Creates the tables, runs the job and returns its result.
pub fn run(args: &Args) -> Result<JobExecutionResult, String> {
    create_tables(&args.postgres)?;
    let env = build(args)?;
    env.execute("Postgres sink").map_err(|e| e.to_string())
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
            let distinct = q(&mut c, "SELECT count(DISTINCT i) FROM events");
            let keys = q(&mut c, "SELECT count(*) FROM totals");
            println!(
                "job finished in {} ms after {} restarts: events has {rows} rows ({distinct} distinct, {} duplicates), totals has {keys} keys",
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
