//! Fraud detection, after Flink's walkthrough: a small transaction (under 1.00) followed by
//! a large one (over 500.00) on the same account within one minute raises an alert.
//!
//! ```text
//! cargo run --release --example fraud_detection -- [--transactions N] [--parallelism P]
//! ```
//!
//! A `KeyedProcessFunction` keeps, per account, the time of the last transaction if it was
//! small, and a timer that clears it one minute later. The walkthrough uses a
//! processing-time timer; this example runs on a replayed, timestamped stream, so it uses
//! an event-time timer, and compares timestamps itself so that its alerts do not depend on
//! when watermarks happen to arrive: they are checked against a direct computation.

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Flags a small transaction followed by a large one within a minute")]
struct Args {
    /// Transactions to generate.
    #[arg(long, default_value_t = 100_000)]
    transactions: u64,
    /// Parallelism of the detector.
    #[arg(long, default_value_t = 2)]
    parallelism: i64,
}

/// A card transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Transaction {
    account: u32,
    /// Amount in cents.
    amount: u64,
    /// Event time, ms.
    timestamp: i64,
}

const SMALL: u64 = 100;
const LARGE: u64 = 50_000;
const ONE_MINUTE: i64 = 60_000;

/// A deterministic stream: 5 accounts, a transaction every 3 seconds of event time, amounts
/// from a hash; some small-then-large pairs appear naturally.
fn transaction(i: u64) -> Transaction {
    let h = weir::core::key_group::fmix64(i ^ 0x5eed);
    let amount = match h % 20 {
        0 => h % SMALL,               // small
        1 => LARGE + 1 + h % 100_000, // large
        _ => SMALL + h % (LARGE - SMALL),
    };
    Transaction {
        account: (i % 5) as u32 + 1,
        amount,
        timestamp: i as i64 * 3_000,
    }
}

#[derive(Clone)]
struct FraudDetector {
    /// Timestamp of the account's last transaction, if it was small.
    small_at: ValueState<i64>,
    /// When the flag is cleared.
    timer: ValueState<i64>,
}

impl KeyedProcessFunction<u32, Transaction, String> for FraudDetector {
    fn process_element(
        &mut self,
        t: Transaction,
        ctx: &mut KeyedContext<'_, u32>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        if let Some(at) = self.small_at.value(ctx)? {
            if t.amount > LARGE && t.timestamp - at <= ONE_MINUTE {
                out.collect(format!(
                    "ALERT account {} at {}: {:.2} after a small transaction",
                    t.account,
                    t.timestamp,
                    t.amount as f64 / 100.0
                ));
            }
            self.clean_up(ctx)?;
        }
        if t.amount < SMALL {
            self.small_at.update(ctx, t.timestamp)?;
            let at = t.timestamp + ONE_MINUTE;
            ctx.register_event_time_timer(at);
            self.timer.update(ctx, at)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, u32>,
        _: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        // A minute passed: the small transaction no longer counts.
        self.timer.clear(ctx)?;
        self.small_at.clear(ctx)?;
        Ok(())
    }
}

impl FraudDetector {
    fn clean_up(&self, ctx: &mut KeyedContext<'_, u32>) -> Result<(), UserError> {
        if let Some(t) = self.timer.value(ctx)? {
            ctx.delete_event_time_timer(t);
        }
        self.timer.clear(ctx)?;
        self.small_at.clear(ctx)?;
        Ok(())
    }
}

/// The same rule, computed directly.
fn expected_alerts(n: u64) -> usize {
    let mut small_at: std::collections::HashMap<u32, i64> = Default::default();
    let mut alerts = 0;
    for i in 0..n {
        let t = transaction(i);
        if let Some(at) = small_at.remove(&t.account) {
            if t.amount > LARGE && t.timestamp - at <= ONE_MINUTE {
                alerts += 1;
            }
        }
        if t.amount < SMALL {
            small_at.insert(t.account, t.timestamp);
        }
    }
    alerts
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(args.parallelism);
    let n = args.transactions;
    let alerts = env
        .from_source_with_watermarks(
            weir::api::source::IteratorSource::new(
                move || (0..n).map(transaction),
                Boundedness::Bounded,
            ),
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|t: &Transaction, _| t.timestamp),
            "Transactions",
        )
        .key_by(|t: &Transaction| t.account)
        .process(FraudDetector {
            small_at: ValueState::new("small-at"),
            timer: ValueState::new("timer"),
        })
        .name("Fraud Detector")
        .collect_values();
    let result = env.execute("Fraud Detection")?;
    let alerts = alerts.take();
    for a in alerts.iter().take(10) {
        println!("{a}");
    }
    println!(
        "{} alerts in {} transactions ({:?})",
        alerts.len(),
        n,
        result.net_runtime
    );
    let want = expected_alerts(n);
    if alerts.len() != want {
        return Err(format!(
            "{} alerts, but the direct computation finds {want}",
            alerts.len()
        )
        .into());
    }
    println!("matches the direct computation");
    Ok(())
}
