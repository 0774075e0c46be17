//! W0..W4 give the reference `out_rows` and `checksum` (`reference.py`, equal to Flink's) at
//! parallelism 1, 2 and 3.

/// (workload, N, out_rows, checksum): N = 100 000 from WORKLOADS.md; N = 1 000 from
/// `python3 reference.py 1000`.
const EXPECTED: &[(&str, u64, u64, i64)] = &[
    ("W0", 1_000, 1_000, 5_005_080_084),
    ("W1", 1_000, 7, 34_455_942),
    ("W2", 1_000, 947, 1_609_904_857_046_592),
    ("W3", 1_000, 4_735, 8_049_500_056_079_555),
    ("W4", 1_000, 2_000, 127_141),
    ("W0", 100_000, 100_000, 499_232_956_175),
    ("W1", 100_000, 782, 3_511_059_042),
    ("W2", 100_000, 63_385, 107_754_871_650_075_410),
    ("W3", 100_000, 321_719, 546_922_319_633_311_553),
    ("W4", 100_000, 200_000, 1_255_199_029),
];

#[test]
fn workloads_match_the_reference_at_every_parallelism() {
    for &(w, n, rows, checksum) in EXPECTED {
        for p in [1, 2, 3] {
            let o = weir_bench::run(w, n, p).unwrap();
            assert_eq!(
                (o.out_rows, o.checksum),
                (rows, checksum),
                "{w} N={n} P={p}"
            );
        }
    }
}

#[test]
fn workloads_match_the_reference_with_serialized_exchange() {
    for &(w, n, rows, checksum) in EXPECTED.iter().filter(|e| e.1 == 1_000) {
        let o = weir_bench::run_with_exchange(w, n, 2, true, None).unwrap();
        assert_eq!((o.out_rows, o.checksum), (rows, checksum), "{w} N={n}");
    }
}

#[test]
fn unknown_workload_is_an_error() {
    assert!(weir_bench::run("W9", 10, 1)
        .unwrap_err()
        .contains("unknown workload"));
}

#[test]
fn sql_workloads_match_the_reference_at_every_parallelism() {
    for &(w, n, rows, checksum) in EXPECTED.iter().filter(|e| e.0 != "W4") {
        for p in [1, 2, 3] {
            let o = weir_bench::sql::run(w, n, p).unwrap();
            assert_eq!(
                (o.out_rows, o.checksum),
                (rows, checksum),
                "{w}-sql N={n} P={p}"
            );
        }
    }
}

#[test]
fn an_updating_query_into_an_insert_only_sink_is_refused() {
    assert!(weir_bench::sql::run("W9", 10, 1)
        .unwrap_err()
        .contains("no SQL workload"));
    let tally = weir_bench::Tally::default();
    let mut session = weir_bench::sql::session(1, &tally);
    session
        .run_text(
            "CREATE TABLE bid (auction BIGINT, price BIGINT) WITH ('connector' = 'bidgen', 'events' = '100');
             CREATE TABLE sink_out (auction BIGINT, n BIGINT) WITH ('connector' = 'counting');",
            &mut std::io::sink(),
        )
        .unwrap();
    let err = session
        .insert_job("INSERT INTO sink_out SELECT auction, COUNT(*) FROM bid GROUP BY auction")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("doesn't support consuming update changes"),
        "{err}"
    );
    // A column bidgen does not have is refused when the job is built.
    session
        .run_text(
            "CREATE TABLE odd (color STRING) WITH ('connector' = 'bidgen', 'events' = '100');",
            &mut std::io::sink(),
        )
        .unwrap();
    let err = session
        .insert_job("INSERT INTO sink_out SELECT 1, 2 FROM odd WHERE color = 'red'")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bidgen has no column 'color'"), "{err}");
}

#[test]
fn sql_workloads_on_rocksdb_run_the_general_window_aggregate_with_the_same_result() {
    // The sliced window aggregate runs on the heap backend only; RocksDB keeps per-window
    // accumulators in keyed state. Both give the reference.
    for &(w, n, rows, checksum) in EXPECTED
        .iter()
        .filter(|e| (e.0 == "W2" || e.0 == "W3") && e.1 == 1_000)
    {
        let o = weir_bench::sql::run_on(w, n, 2, "rocksdb").unwrap();
        assert_eq!(
            (o.out_rows, o.checksum),
            (rows, checksum),
            "{w}-sql on RocksDB"
        );
    }
}

#[test]
fn sql_window_aggregates_recover_exactly_once_after_a_failure() {
    // The generator fails once mid-way, after a checkpoint; the job restarts from it. The
    // window aggregates (by slices on the heap backend, general on RocksDB) restore their
    // state and the counting sink its counts: the result is the reference, no row lost or
    // counted twice.
    let recovery = weir_bench::sql::Recovery {
        checkpoint_ms: Some(20),
        fail_at: Some(40_000),
    };
    for &(w, n, rows, checksum) in EXPECTED
        .iter()
        .filter(|e| (e.0 == "W2" || e.0 == "W3") && e.1 == 100_000)
    {
        for backend in ["hashmap", "rocksdb"] {
            let o = weir_bench::sql::run_with(w, n, 2, backend, &recovery).unwrap();
            assert_eq!(o.restarts, 1, "{w}-sql on {backend} failed once");
            assert!(o.checkpoints >= 1, "{w}-sql on {backend}");
            assert_eq!(
                (o.out_rows, o.checksum),
                (rows, checksum),
                "{w}-sql on {backend} after a failure"
            );
        }
    }
}

#[test]
fn sql_over_aggregates_give_the_same_rows_at_any_parallelism_and_after_a_failure() {
    // OVER aggregates over the generator, whose watermark trails its rows by a second, so no
    // row is late and the result is the same at every parallelism. A failure after a
    // checkpoint restores the buffered rows, accumulators and timers of every partition:
    // the result is the failure-free one.
    let queries = [
        weir_bench::sql::SqlQuery {
            updating: false,
            watermark_delay_ms: 1000,
            sink_columns: "auction BIGINT, date_time TIMESTAMP(3), n BIGINT, mix BIGINT",
            checksum_columns: "auction,date_time,n,mix",
            insert: "INSERT INTO sink_out
SELECT auction, date_time, COUNT(*) OVER w AS n, MAX(price) OVER w * 1000003 + SUM(price) OVER w AS mix
FROM bid
WINDOW w AS (PARTITION BY auction ORDER BY date_time RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW)",
        },
        weir_bench::sql::SqlQuery {
            updating: false,
            watermark_delay_ms: 1000,
            sink_columns: "bidder BIGINT, n BIGINT, mix BIGINT",
            checksum_columns: "bidder,n,mix",
            insert: "INSERT INTO sink_out
SELECT bidder, COUNT(*) OVER w AS n, MIN(price) OVER w * 1000003 + SUM(price) OVER w AS mix
FROM bid
WINDOW w AS (PARTITION BY bidder ORDER BY date_time ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)",
        },
    ];
    let n = 100_000;
    let plain = weir_bench::sql::Recovery::default();
    for q in &queries {
        let reference = weir_bench::sql::run_query(q, n, 1, "hashmap", &plain).unwrap();
        assert_eq!(
            reference.out_rows, n,
            "every row comes out once: {}",
            q.insert
        );
        let p2 = weir_bench::sql::run_query(q, n, 2, "hashmap", &plain).unwrap();
        assert_eq!(
            (p2.out_rows, p2.checksum),
            (reference.out_rows, reference.checksum),
            "p=2: {}",
            q.insert
        );
        assert_recovers(q, n, &reference, Some(1));
    }
}

/// Runs `q` over `n` bids at p=2 with checkpoints and a failure of the generator mid-way,
/// on the heap and RocksDB backends: the job restarts (`restarts` times, or at least once)
/// and gives `reference`'s result.
fn assert_recovers(
    q: &weir_bench::sql::SqlQuery<'_>,
    n: u64,
    reference: &weir_bench::Outcome,
    restarts: Option<u32>,
) {
    let recovery = weir_bench::sql::Recovery {
        checkpoint_ms: Some(20),
        fail_at: Some(40_000),
    };
    for backend in ["hashmap", "rocksdb"] {
        let o = weir_bench::sql::run_query(q, n, 2, backend, &recovery).unwrap();
        match restarts {
            Some(r) => assert_eq!(o.restarts, r, "{backend} restarts: {}", q.insert),
            None => assert!(o.restarts >= 1, "{backend} failed: {}", q.insert),
        }
        assert_eq!(
            (o.out_rows, o.checksum),
            (reference.out_rows, reference.checksum),
            "{backend} after a failure: {}",
            q.insert
        );
    }
}

#[test]
fn sql_updating_queries_recover_exactly_once_after_a_failure() {
    // GROUP BY, Top-N and a regular join, into a sink that applies their changelogs: after a
    // failure and a restore from the last checkpoint (keyed state of the operators, the
    // sink's tally), the materialised result is the failure-free one.
    let queries = [
        weir_bench::sql::SqlQuery {
            updating: true,
            watermark_delay_ms: 0,
            sink_columns: "auction BIGINT, n BIGINT, hi BIGINT",
            checksum_columns: "auction,n,hi",
            insert: "INSERT INTO sink_out SELECT auction, COUNT(*) AS n, MAX(price) AS hi FROM bid GROUP BY auction",
        },
        weir_bench::sql::SqlQuery {
            updating: true,
            watermark_delay_ms: 0,
            sink_columns: "bidder BIGINT, price BIGINT",
            checksum_columns: "bidder,price",
            insert: "INSERT INTO sink_out SELECT bidder, price FROM (SELECT bidder, price, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 2",
        },
        weir_bench::sql::SqlQuery {
            updating: true,
            watermark_delay_ms: 0,
            sink_columns: "auction BIGINT, n BIGINT, top BIGINT",
            checksum_columns: "auction,n,top",
            insert: "INSERT INTO sink_out SELECT c.auction, c.n, m.top FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) AS c JOIN (SELECT auction, MAX(price) AS top FROM bid WHERE MOD(bidder, 2) = 0 GROUP BY auction) AS m ON c.auction = m.auction",
        },
    ];
    let n = 100_000;
    for q in &queries {
        let reference =
            weir_bench::sql::run_query(q, n, 1, "hashmap", &Default::default()).unwrap();
        assert!(reference.out_rows > 0, "{}", q.insert);
        // Each scan of the bid table fails once (the join scans it twice).
        assert_recovers(q, n, &reference, None);
    }
}
