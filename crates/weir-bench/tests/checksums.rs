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
