//! The `kafka_to_postgres` example end to end against a real Kafka-protocol broker (tansu)
//! and a real PostgreSQL server: a job reading a topic of several partitions, broken on
//! purpose, must leave each Kafka record in `events` exactly once and `totals` equal to the
//! sums computed here; a line that does not parse fails the job with its position named.

#[path = "../examples/kafka_to_postgres.rs"]
#[allow(dead_code)]
mod kafka_to_postgres;

#[path = "support/kafka_server.rs"]
mod kafka_server;

#[path = "support/postgres_server.rs"]
mod postgres_server;

use clap::Parser;
use kafka_server::KafkaServer;
use postgres_server::PgServer;
use std::collections::BTreeMap;

fn args(brokers: &str, topic: &str, url: &str, p: u32, fail_at: &str) -> kafka_to_postgres::Args {
    let mut v = vec![
        "kafka_to_postgres".to_string(),
        format!("--brokers={brokers}"),
        format!("--topic={topic}"),
        format!("--postgres={url}"),
        format!("--parallelism={p}"),
        "--checkpoint-interval-ms=50".into(),
        "--bounded".into(),
    ];
    if !fail_at.is_empty() {
        v.push(format!("--fail-at={fail_at}"));
    }
    kafka_to_postgres::Args::parse_from(v)
}

#[test]
fn kafka_to_postgres_exactly_once_across_failures() {
    let kafka = KafkaServer::start();
    let pg = PgServer::start();
    let n = 8_000i64;
    let keys = 13;
    kafka.create_topic("lines", 4);
    let input: Vec<(i32, String, String, i64)> = (0..n)
        .map(|i| {
            (
                (i % 4) as i32,
                String::new(),
                format!("k{},{}", i % keys, i),
                i,
            )
        })
        .collect();
    kafka.produce("lines", &input);
    let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..n {
        let e = want.entry(format!("k{}", i % keys)).or_default();
        e.0 += i;
        e.1 += 1;
    }
    for (db, p, fail_at) in [
        ("p1", 1, "1500,4000,6500"),
        ("p3", 3, "1000,3000,5000,7000"),
    ] {
        let url = pg.create_database(db);
        let result = kafka_to_postgres::run(&args(&kafka.bootstrap(), "lines", &url, p, fail_at))
            .expect("the job recovers and finishes");
        // Two subtasks may reach their fail points before the first failure stops the
        // job: one restart then covers both.
        assert!(
            result.restarts >= 2,
            "the failures happened: {}",
            result.restarts
        );
        let mut c = pg.client(db);
        let row = c
            .query_one(
                "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM events) d), coalesce(sum(value), 0)::BIGINT FROM events",
                &[],
            )
            .unwrap();
        let (rows, distinct, sum): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            (rows, distinct, sum),
            (n, n, n * (n - 1) / 2),
            "each record exactly once (p={p})"
        );
        let totals: BTreeMap<String, (i64, i64)> = c
            .query("SELECT key, total, count FROM totals", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        assert_eq!(totals, want, "totals (p={p})");
        let prepared: i64 = c
            .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
            .unwrap()
            .get(0);
        assert_eq!(prepared, 0, "no transaction left prepared");
    }
}

#[test]
fn a_bad_line_fails_the_job_with_its_position() {
    let kafka = KafkaServer::start();
    let pg = PgServer::start();
    kafka.create_topic("bad", 1);
    kafka.produce(
        "bad",
        &[
            (0, String::new(), "a,1".into(), 1),
            (0, String::new(), "a,x".into(), 2),
        ],
    );
    let url = pg.create_database("bad");
    let a = args(&kafka.bootstrap(), "bad", &url, 1, "");
    kafka_to_postgres::create_tables(&url).unwrap();
    let env = kafka_to_postgres::build(&a).unwrap();
    env.set_restart_strategy(weir::core::RestartStrategy::None);
    let e = env.execute("bad line").unwrap_err().to_string();
    assert!(
        e.contains("offset 1 of partition bad-0") && e.contains("not an integer"),
        "{e}"
    );
}
