//! A parallel pipeline: a parallel number source, a map, a rebalance to a filter with
//! another parallelism, and a keyed rolling reduce; the final sum per key is printed and
//! checked against a closed form.
//!
//! ```text
//! cargo run --release --example parallel_pipeline -- [--count N] [--keys K] [--parallelism P]
//! ```

use clap::Parser;
use std::collections::BTreeMap;
use weir::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "A parallel pipeline with a rebalance and a keyed reduce")]
struct Args {
    /// Numbers 1..=count are generated.
    #[arg(long, default_value_t = 1_000_000)]
    count: i64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 8)]
    keys: i64,
    /// Parallelism of the source and the reduce (the filter runs at twice that).
    #[arg(long, default_value_t = 2)]
    parallelism: i64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let keys = args.keys.max(1);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    let sums = env
        .from_sequence(1, args.count)
        .map(move |x: i64| (x % keys, x))
        .name("Key by remainder")
        .rebalance()
        .filter(|(_, x): &(i64, i64)| x % 3 != 0)
        .name("Drop multiples of 3")
        .set_parallelism(args.parallelism * 2)
        .key_by(|(k, _): &(i64, i64)| *k)
        .reduce(|(k, a), (_, b)| (k, a + b))
        .name("Sum per key")
        .collect_values();
    let result = env.execute("Parallel Pipeline")?;

    // The last rolling value per key is the largest (all values are positive).
    let mut finals: BTreeMap<i64, i64> = BTreeMap::new();
    for (k, s) in sums.take() {
        let e = finals.entry(k).or_insert(0);
        *e = (*e).max(s);
    }
    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for x in (1..=args.count).filter(|x| x % 3 != 0) {
        *expected.entry(x % keys).or_insert(0) += x;
    }
    for (k, s) in &finals {
        println!("key {k}: sum {s}");
    }
    println!("job finished in {:?}", result.net_runtime);
    for op in &result.operators {
        println!(
            "  {:<24} in {:>10} out {:>10}",
            op.name, op.records_in, op.records_out
        );
    }
    if finals != expected {
        return Err("sums differ from the closed-form reference".into());
    }
    println!("sums match the reference");
    Ok(())
}
