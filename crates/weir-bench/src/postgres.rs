//! `pg-append` and `pg-upsert`: how fast the Postgres sink writes, against a server the
//! caller names with `WEIR_BENCH_POSTGRES=URL` (the benchmark creates and empties its tables
//! there). Events come from the generator source: event `i` has key `i % 10000` and value
//! `i`. `pg-append` appends every event; `pg-upsert` keys the stream and upserts a running
//! sum per key, so most rows of a batch replace a row written before. The delivery guarantee
//! is at-least-once unless `WEIR_BENCH_PG_GUARANTEE=exactly-once` (then with checkpoints
//! every second; without, checkpoints are off and the sink writes when batches fill).

use std::time::{Duration, Instant};
use weir_api::prelude::*;
use weir_connectors::datagen::DataGeneratorSource;
use weir_connectors::postgres::{DeliveryGuarantee, PostgresSink};

/// Distinct keys of the generated events.
const KEYS: u64 = 10_000;

/// What one run measured.
pub struct PgOutcome {
    /// Wall time of the job.
    pub seconds: f64,
    /// Rows in the table at the end.
    pub rows: i64,
}

fn client(url: &str) -> Result<postgres::Client, String> {
    postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("cannot connect to WEIR_BENCH_POSTGRES ({url}): {e}"))
}

/// Runs `pg-append` or `pg-upsert` over `events` events at `parallelism`.
pub fn run(workload: &str, events: u64, parallelism: i64) -> Result<PgOutcome, String> {
    let url = std::env::var("WEIR_BENCH_POSTGRES")
        .map_err(|_| "set WEIR_BENCH_POSTGRES to a PostgreSQL URL to run the pg-* workloads")?;
    let guarantee = match std::env::var("WEIR_BENCH_PG_GUARANTEE").as_deref() {
        Ok("exactly-once") => DeliveryGuarantee::ExactlyOnce,
        Ok("at-least-once") | Err(_) => DeliveryGuarantee::AtLeastOnce,
        Ok(other) => return Err(format!("unknown WEIR_BENCH_PG_GUARANTEE '{other}'")),
    };
    let mut c = client(&url)?;
    c.batch_execute(
        "DROP TABLE IF EXISTS bench_append; DROP TABLE IF EXISTS bench_upsert;
         CREATE UNLOGGED TABLE bench_append (k BIGINT, v BIGINT);
         CREATE UNLOGGED TABLE bench_upsert (k BIGINT PRIMARY KEY, v BIGINT);",
    )
    .map_err(|e| format!("cannot create the benchmark tables: {e}"))?;

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    if guarantee == DeliveryGuarantee::ExactlyOnce {
        env.enable_checkpointing(Duration::from_secs(1));
        env.set_checkpoint_storage(
            std::env::temp_dir()
                .join(format!("weir-bench-pg-{}", std::process::id()))
                .display()
                .to_string(),
        );
    }
    let source = env.from_source(
        DataGeneratorSource::new(events, |i| ((i % KEYS) as i64, i as i64)),
        "generator",
    );
    let table = match workload {
        "pg-append" => {
            let sink =
                PostgresSink::append(&url, "bench_append", &["k", "v"], |r: &(i64, i64), row| {
                    row.push(r.0).push(r.1);
                });
            source.sink_to(configure(sink, guarantee), "append");
            "bench_append"
        }
        "pg-upsert" => {
            let sink = PostgresSink::upsert(
                &url,
                "bench_upsert",
                &["k", "v"],
                &["k"],
                |r: &(i64, i64), row| {
                    row.push(r.0).push(r.1);
                },
            );
            source
                .key_by(|r: &(i64, i64)| r.0)
                .reduce(|a, b| (a.0, a.1.wrapping_add(b.1)))
                .sink_to(configure(sink, guarantee), "upsert");
            "bench_upsert"
        }
        other => return Err(format!("unknown workload {other}")),
    };
    let start = Instant::now();
    env.execute(workload).map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let rows: i64 = c
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .map_err(|e| format!("cannot count the rows written: {e}"))?
        .get(0);
    Ok(PgOutcome { seconds, rows })
}

fn configure(
    sink: PostgresSink<(i64, i64)>,
    guarantee: DeliveryGuarantee,
) -> PostgresSink<(i64, i64)> {
    sink.with_delivery_guarantee(guarantee)
        .with_transaction_prefix(&format!("weir-bench-{}", std::process::id()))
}
