//! The `postgres_sink` example end to end against a real PostgreSQL server: a job that
//! appends every event and upserts running totals through the two-phase-commit sink, broken
//! on purpose, must leave each event in the table exactly once and the totals of a run
//! without failures; at-least-once must lose nothing.

#[path = "../examples/postgres_sink.rs"]
#[allow(dead_code)]
mod postgres_sink;

#[path = "support/postgres_server.rs"]
mod postgres_server;

use clap::Parser;
use postgres_server::PgServer;
use std::collections::BTreeMap;

fn args(
    url: &str,
    events: u64,
    parallelism: u32,
    fail_at: &str,
    delivery: &str,
) -> postgres_sink::Args {
    let mut v = vec![
        "postgres_sink".to_string(),
        format!("--postgres={url}"),
        format!("--events={events}"),
        "--keys=37".into(),
        format!("--parallelism={parallelism}"),
        "--checkpoint-interval-ms=60".into(),
        format!("--delivery={delivery}"),
        "--events-per-second=40000".into(),
    ];
    if !fail_at.is_empty() {
        v.push(format!("--fail-at={fail_at}"));
    }
    postgres_sink::Args::parse_from(v)
}

/// (key, total, count) per key of events `0..n` with `keys` keys.
fn reference(n: u64, keys: u64) -> BTreeMap<String, (i64, i64)> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let e = m.entry(format!("k{}", i % keys)).or_insert((0i64, 0i64));
        e.0 += i as i64;
        e.1 += 1;
    }
    m
}

fn totals(c: &mut postgres::Client) -> BTreeMap<String, (i64, i64)> {
    c.query("SELECT key, total, count FROM totals", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// (rows, distinct events, smallest i, largest i) of the events table.
fn events(c: &mut postgres::Client) -> (i64, i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT i), coalesce(min(i), -1), coalesce(max(i), -1) FROM events",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

fn prepared(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
        .unwrap()
        .get(0)
}

#[test]
fn exactly_once_into_postgres_across_failures() {
    let server = PgServer::start();
    let n = 12_000;
    for (db, parallelism, fail_at) in [
        ("p1", 1, "1500,3500,6000,8500,10500"),
        ("p3", 3, "1200,3000,5200,7400,9100,11000"),
    ] {
        let url = server.create_database(db);
        let result = postgres_sink::run(&args(&url, n, parallelism, fail_at, "exactly-once"))
            .expect("the job recovers and finishes");
        assert!(
            result.restarts >= 5,
            "the failures happened: {}",
            result.restarts
        );
        let mut c = server.client(db);
        assert_eq!(
            events(&mut c),
            (n as i64, n as i64, 0, n as i64 - 1),
            "each event exactly once (p={parallelism})"
        );
        assert_eq!(totals(&mut c), reference(n, 37), "totals (p={parallelism})");
        assert_eq!(prepared(&mut c), 0, "no transaction left prepared");
    }
}

#[test]
fn at_least_once_into_postgres_loses_nothing() {
    let server = PgServer::start();
    let n = 8_000;
    let url = server.create_database("alo");
    let result = postgres_sink::run(&args(&url, n, 2, "3000", "at-least-once")).expect("job");
    assert!(result.restarts >= 1);
    let mut c = server.client("alo");
    let (rows, distinct, lo, hi) = events(&mut c);
    assert_eq!(
        (distinct, lo, hi),
        (n as i64, 0, n as i64 - 1),
        "no event lost"
    );
    eprintln!(
        "at-least-once: {} duplicate event rows after the failure",
        rows - distinct
    );
    assert_eq!(totals(&mut c), reference(n, 37));
}

#[test]
fn an_unreachable_database_fails_the_job_with_the_sink_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = args(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        10,
        1,
        "",
        "exactly-once",
    );
    let env = postgres_sink::build(&a).unwrap();
    env.set_restart_strategy(weir::core::RestartStrategy::None);
    let e = env.execute("unreachable").unwrap_err().to_string();
    assert!(
        e.contains("Sink: events table") || e.contains("Sink: totals table"),
        "{e}"
    );
    assert!(e.contains("cannot connect"), "{e}");
}

#[test]
fn exactly_once_into_postgres_across_a_savepoint_and_a_rescale() {
    let server = PgServer::start();
    let n = 10_000;
    let url = server.create_database("rescale");
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt").display().to_string();
    postgres_sink::create_tables(&url).unwrap();

    // At parallelism 2, slowly, stopped with a savepoint part way.
    let mut first = args(&url, n, 2, "", "exactly-once");
    first.events_per_second = 5_000;
    let env = postgres_sink::build(&first).unwrap();
    env.set_checkpoint_storage(ckpt.clone());
    let job = env.execute_async("first").unwrap();
    let start = std::time::Instant::now();
    while job.checkpoint_stats().unwrap().completed < 2 {
        assert!(start.elapsed().as_secs() < 30, "no checkpoints");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sp = job
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let mut c = server.client("rescale");
    let (rows, ..) = events(&mut c);
    assert!(rows > 0 && rows < n as i64, "stopped part way: {rows}");

    // Resumed at parallelism 3 with two failures.
    let second = args(&url, n, 3, "7000,9000", "exactly-once");
    let env = postgres_sink::build(&second).unwrap();
    env.set_checkpoint_storage(ckpt);
    env.restore_from_savepoint(sp, false);
    env.execute("second").unwrap();
    assert_eq!(events(&mut c), (n as i64, n as i64, 0, n as i64 - 1));
    assert_eq!(totals(&mut c), reference(n, 37));
    assert_eq!(prepared(&mut c), 0);
}
