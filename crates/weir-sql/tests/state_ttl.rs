//! `SET 'table.exec.state.ttl'`: state of keys not written for the TTL is removed, also when
//! the key is never seen again, and a key seen again after its TTL starts afresh.

use weir_sql::client::Session;

/// 4000 rows at 4000 a second: ids 0..999 (a key each, written once) in the first quarter
/// second, then 3000 rows of key -1.
const TABLE: &str = "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen',
  'rows-per-second' = '4000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
  'fields.id.end' = '3999');
CREATE VIEW v AS SELECT CASE WHEN id < 1000 THEN id ELSE -1 END AS k, id FROM g;";

/// The state entries (state, timers) the operator named `op` holds when the job ends.
fn state_left(backend: &str, ttl: Option<&str>, sink: &str, insert: &str, op: &str) -> u64 {
    let mut session = Session::new(".", 1);
    let ttl = ttl
        .map(|t| format!("SET 'table.exec.state.ttl' = '{t}';\n"))
        .unwrap_or_default();
    let script = format!(
        "SET 'state.backend.type' = '{backend}';\n{ttl}{TABLE}\nCREATE TABLE out ({sink}) WITH ('connector' = 'blackhole');"
    );
    session
        .run_text(&script, &mut std::io::sink())
        .expect("DDL");
    let (env, name) = session.insert_job(insert).expect("plan");
    let result = env.execute(&name).expect("job");
    result
        .operators
        .iter()
        .filter(|o| o.name.contains(op))
        .map(|o| o.state_entries)
        .sum()
}

#[test]
fn state_of_keys_never_seen_again_is_removed_after_the_ttl() {
    let cases = [
        (
            "k BIGINT, n BIGINT",
            "INSERT INTO out SELECT k, COUNT(*) AS n FROM v GROUP BY k",
            "GroupAggregate",
        ),
        (
            "k BIGINT, id BIGINT",
            "INSERT INTO out SELECT k, id FROM (SELECT k, id, ROW_NUMBER() OVER (PARTITION BY k ORDER BY id DESC) AS rn FROM v) WHERE rn <= 2",
            "Rank",
        ),
        (
            "a BIGINT, b BIGINT",
            "INSERT INTO out SELECT l.id, r.id FROM v AS l JOIN (SELECT k, id FROM v WHERE id < 1000) AS r ON l.k = r.k",
            "Join",
        ),
    ];
    for backend in ["hashmap", "rocksdb"] {
        for (sink, insert, op) in cases {
            // Without a TTL every one of the 1000 keys keeps its state.
            let kept = state_left(backend, None, sink, insert, op);
            assert!(kept >= 1000, "{op} on {backend} without a TTL: {kept}");
            // With one, the keys of the first quarter second are gone by the end (a
            // second later); key -1 was written until the end.
            let left = state_left(backend, Some("100 ms"), sink, insert, op);
            assert!(
                left < 100,
                "{op} on {backend}: {left} state entries left after the TTL (of {kept})"
            );
        }
    }
}

#[test]
fn a_key_seen_again_after_its_ttl_starts_afresh() {
    // Ten rows a second, two per key: the second row of a key comes 100 ms after the
    // first. Without a TTL it updates the key's count; with a TTL of 40 ms the first is
    // gone by then and the key starts again at 1 (+I twice, as Flink emits it).
    let dir = tempfile::tempdir().expect("dir");
    let run = |ttl: &str| {
        let mut session = Session::new(dir.path(), 1);
        session
            .run_text(
                &format!(
                    "SET 'table.exec.state.ttl' = '{ttl}';
CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '10',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '5');
SELECT id / 2 AS k, COUNT(*) AS n FROM g GROUP BY id / 2;"
                ),
                &mut std::io::sink(),
            )
            .expect("script");
        let out = dir.path().join(format!("out-{}", ttl.replace(' ', "")));
        session.write_results(&out).expect("results");
        let mut lines: Vec<String> = std::fs::read_to_string(out.join("changelog-1.csv"))
            .expect("changelog")
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        run("0"),
        [
            "+I,0,1", "+I,1,1", "+I,2,1", "+U,0,2", "+U,1,2", "+U,2,2", "-U,0,1", "-U,1,1",
            "-U,2,1"
        ]
    );
    // Two rows of a key can leave the source together when a poll comes late (the rate
    // limit catches up); at least two of the three keys start afresh.
    let with_ttl = run("40 ms");
    let afresh = ["0", "1", "2"]
        .iter()
        .filter(|k| {
            with_ttl
                .iter()
                .filter(|l| **l == format!("+I,{k},1"))
                .count()
                == 2
        })
        .count();
    assert!(afresh >= 2, "{with_ttl:?}");
    assert!(
        with_ttl.len() <= 7,
        "no key updates more than once: {with_ttl:?}"
    );
}

#[test]
fn a_bad_ttl_is_refused() {
    let mut session = Session::new(".", 1);
    let err = session
        .run_text("SET 'table.exec.state.ttl' = 'soon';", &mut std::io::sink())
        .expect_err("not a duration");
    assert!(err.to_string().contains("table.exec.state.ttl"), "{err}");
}
