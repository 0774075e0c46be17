//! Flink SQL scripts through `weir sql -f --results-dir`, compared byte for byte with what
//! Apache Flink 2.3 returned for them (`tests/sql/expected`, written by the SQL oracle), at
//! parallelism 1 and 2; and the client's failures: the failing statement named with its
//! line, exit status 1, and no result file written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weir_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps")
        .join("weir");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql")
}

/// Runs `weir sql` in `dir` with `args`.
fn weir_sql(dir: &Path, args: &[&str]) -> Output {
    Command::new(weir_bin())
        .arg("sql")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("weir sql")
}

/// A copy of the test data in a new directory (scripts resolve table paths against the
/// current directory, and results are written next to them).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(sql_dir().join("data")).expect("data") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

#[test]
fn scripts_give_flinks_results_and_types_at_parallelism_1_and_2() {
    let expected = sql_dir().join("expected");
    let mut scripts: Vec<String> = std::fs::read_dir(&expected)
        .expect("expected")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 3, "{scripts:?}");
    let dir = workspace();
    for script in &scripts {
        for p in ["1", "2"] {
            let out = dir.path().join(format!("out-{script}-p{p}"));
            let run = weir_sql(
                dir.path(),
                &[
                    "-f",
                    &format!("{script}.sql"),
                    "--results-dir",
                    &out.display().to_string(),
                    "-p",
                    p,
                ],
            );
            assert!(
                run.status.success(),
                "{script} at p={p}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            for want in std::fs::read_dir(expected.join(script)).expect("expected files") {
                let want = want.expect("entry").path();
                let name = want.file_name().expect("name");
                let got = std::fs::read(out.join(name))
                    .unwrap_or_else(|e| panic!("{script} p={p}: no {name:?}: {e}"));
                let want_bytes = std::fs::read(&want).expect("expected file");
                assert!(
                    got == want_bytes,
                    "{script} at p={p}: {name:?} differs from Flink's\n--- got (first lines)\n{}\n--- want\n{}",
                    String::from_utf8_lossy(&got).lines().take(5).collect::<Vec<_>>().join("\n"),
                    String::from_utf8_lossy(&want_bytes).lines().take(5).collect::<Vec<_>>().join("\n"),
                );
            }
            // Each changelog, applied to an empty multiset here, gives the result.
            for i in 1.. {
                let Ok(changelog) = std::fs::read_to_string(out.join(format!("changelog-{i}.csv")))
                else {
                    assert!(i > 1, "{script}: no changelog");
                    break;
                };
                let mut rows: Vec<String> = Vec::new();
                for line in changelog.lines() {
                    let (kind, row) = line.split_at(3);
                    match kind {
                        "+I," | "+U," => rows.push(row.to_string()),
                        "-U," | "-D," => {
                            let at = rows.iter().position(|r| r == row).unwrap_or_else(|| {
                                panic!("{script} p={p}: {line} withdraws a row not there")
                            });
                            rows.swap_remove(at);
                        }
                        other => panic!("{script} p={p}: row kind {other}"),
                    }
                }
                rows.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                let result =
                    std::fs::read_to_string(out.join(format!("result-{i}.csv"))).expect("result");
                assert_eq!(
                    rows,
                    result.lines().collect::<Vec<_>>(),
                    "{script} at p={p}: changelog-{i}"
                );
            }
        }
    }
}

#[test]
fn a_failing_statement_is_named_with_its_line_and_nothing_is_written() {
    let dir = workspace();
    let cases = [
        // (script, what stderr must say)
        (
            "-- include: prelude.sql\nSELECT price FROM bid;\n\nSELECT nope\nFROM bid;\n",
            "statement 5 (line 33)",
        ),
        ("SELECT 1 FROM missing;\n", "statement 1 (line 1)"),
        (
            "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'format' = 'csv', 'path' = 'no-such.csv');\nSELECT a FROM t;\n",
            "no-such.csv",
        ),
        (
            "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'format' = 'csv', 'path' = 'bid.csv');\nSELECT a FROM t;\n",
            "5 fields, the table has 1 columns",
        ),
        (
            "-- include: prelude.sql\nSELECT price / 0 FROM bid WHERE price IS NOT NULL;\n",
            "by zero",
        ),
        (
            "-- include: prelude.sql\nSELECT price,\n  FROM bid WHERE price > 3 )\n;\n",
            "line 32, column 28",
        ),
        ("DROP TABLE bid;\n", "not supported"),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(auction), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;\n",
            "DESCRIPTOR(auction) must name the time attribute",
        ),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '10' SECOND)) GROUP BY window_start, window_end;\n",
            "must be a multiple of the slide",
        ),
        (
            "-- include: prelude.sql\nSELECT window_start, SUM(channel) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end;\n",
            "SUM needs a numeric argument",
        ),
        (
            "-- include: prelude.sql\nSELECT STDDEV_POP(price) FROM bid;\n",
            "statement 4 (line 31)",
        ),
        ("SELECT 'open;\n", "never closed"),
        // OVER aggregates that Flink's planner refuses
        (
            "-- include: prelude.sql\nSELECT COUNT(*) OVER (PARTITION BY auction ORDER BY ts), SUM(price) OVER (PARTITION BY bidder ORDER BY ts) FROM bid;\n",
            "All aggregates must be computed on the same window",
        ),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) OVER (PARTITION BY auction ORDER BY price) FROM bid;\n",
            "must be defined on a time attribute",
        ),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) OVER (ORDER BY ts DESC) FROM bid;\n",
            "ASCENDING",
        ),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) OVER (ORDER BY ts ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM bid;\n",
            "end after the current row",
        ),
        (
            "-- include: prelude.sql\nSELECT COUNT(*) OVER (PARTITION BY auction) FROM bid;\n",
            "ordered by a single time attribute",
        ),
        // datagen options
        (
            "CREATE TABLE g (a BIGINT) WITH ('connector' = 'datagen', 'fields.a.kind' = 'sequence', 'fields.a.start' = '1');\nSELECT a FROM g;\n",
            "a sequence needs 'fields.a.end'",
        ),
        (
            "CREATE TABLE g (a INT) WITH ('connector' = 'datagen', 'fields.a.min' = '5', 'fields.a.max' = '1');\nSELECT a FROM g;\n",
            "must be a range of INT",
        ),
        (
            "CREATE TABLE g (a INT) WITH ('connector' = 'datagen', 'fields.a.kind' = 'counting');\nSELECT a FROM g;\n",
            "must be 'random' or 'sequence'",
        ),
        (
            "CREATE TABLE g (a TINYINT) WITH ('connector' = 'datagen', 'number-of-rows' = 'many');\nSELECT a FROM g;\n",
            "'number-of-rows' = 'many' is not a number",
        ),
    ];
    for (i, (script, want)) in cases.iter().enumerate() {
        let file = format!("bad-{i}.sql");
        std::fs::write(dir.path().join(&file), script).expect("script");
        let out = dir.path().join(format!("bad-out-{i}"));
        let run = weir_sql(
            dir.path(),
            &["-f", &file, "--results-dir", &out.display().to_string()],
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "case {i}: {stderr}");
        assert!(
            stderr.contains(want),
            "case {i}: want '{want}' in: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("weir:")).count(),
            1,
            "{stderr}"
        );
        assert!(!out.exists(), "case {i}: result files were written");
    }
}

#[test]
fn datagen_tables_make_their_rows_by_flinks_options_at_the_asked_rate() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("gen.sql"),
        "CREATE TABLE g (id BIGINT, k INT, s STRING, d DOUBLE, b BOOLEAN) WITH (
  'connector' = 'datagen', 'rows-per-second' = '4000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '2000',
  'fields.k.min' = '-3', 'fields.k.max' = '3', 'fields.s.length' = '5',
  'fields.d.min' = '1', 'fields.d.max' = '2', 'fields.b.null-rate' = '1');
SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids, MIN(id) AS lo, MAX(id) AS hi, MIN(k) AS kmin,
  MAX(k) AS kmax, COUNT(DISTINCT k) AS ks, MIN(CHAR_LENGTH(s)) AS smin,
  MAX(CHAR_LENGTH(s)) AS smax, MIN(d) >= 1 AS dmin, MAX(d) < 2 AS dmax, COUNT(b) AS bs FROM g;
CREATE TABLE r (x TINYINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '700', 'fields.ts.max-past' = '1 s');
SELECT COUNT(*) AS n, MIN(x) >= -128 AS ok FROM r;
SELECT SUM(n) AS n FROM (SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end);
",
    )
    .expect("script");
    for p in ["1", "2"] {
        let started = std::time::Instant::now();
        let out = dir.path().join(format!("gen-p{p}"));
        let run = weir_sql(
            dir.path(),
            &[
                "-f",
                "gen.sql",
                "-p",
                p,
                "--results-dir",
                &out.display().to_string(),
            ],
        );
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        // 2000 rows at 4000 a second take half a second (the other tables take less).
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(400),
            "p={p}: the rate limit held for {:?}",
            started.elapsed()
        );
        let read = |i: usize| {
            std::fs::read_to_string(out.join(format!("result-{i}.csv"))).expect("result")
        };
        // The sequence once over all subtasks, random values in their ranges, all NULL.
        assert_eq!(
            read(1),
            "2000,2000,1,2000,-3,3,7,5,5,true,true,0\n",
            "p={p}"
        );
        assert_eq!(read(2), "700,true\n", "p={p}");
        // Random timestamps within a second of now, behind a 5 s watermark: none late.
        assert_eq!(read(3), "700\n", "p={p}");
    }
}

#[test]
fn the_interactive_client_goes_on_after_errors_and_ctrl_c_cancels_a_running_select() {
    use std::io::{BufRead, Write};
    let dir = workspace();
    let mut child = Command::new(weir_bin())
        .args(["sql", "--interactive"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("weir sql");
    let mut stdin = child.stdin.take().expect("stdin");
    // A hung client fails the test instead of hanging it.
    let pid = child.id() as i32;
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished
            .recv_timeout(std::time::Duration::from_secs(90))
            .is_err()
        {
            // SAFETY: kill() with a child's process id and a signal number has no memory
            // effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    // A statement over two lines, a bounded SELECT, a failing one, then an unbounded one.
    stdin
        .write_all(
            b"-- include: prelude.sql\nSELECT channel, COUNT(*) AS n\n  FROM bid GROUP BY channel;\nSELECT nope FROM bid;\n\
              CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '50');\n\
              SELECT COUNT(*) AS n FROM g;\n",
        )
        .expect("write");
    stdin.flush().expect("flush");
    // Read until the unbounded SELECT has drawn its table a few times, then press Ctrl-C.
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    let mut draws = 0;
    let mut line = String::new();
    while draws < 3 {
        line.clear();
        if stdout.read_line(&mut line).expect("read") == 0 {
            panic!("the client ended early:\n{seen}");
        }
        // Draws of the unbounded SELECT: those after the failing statement's error.
        if line.contains("changes") && seen.contains("[ERROR]") {
            draws += 1;
        }
        seen.push_str(&line);
    }
    // SAFETY: kill() with a child's process id and a signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    stdin.write_all(b"SHOW TABLES;\nquit;\n").expect("write");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    seen.push_str(&rest);
    let status = child.wait().expect("wait");
    let _ = done.send(());
    let _ = watchdog.join();
    assert!(status.success(), "{seen}");
    // The GROUP BY's final table, the error, the cancelled SELECT, and the statement after.
    assert!(
        seen.contains("| channel |") && seen.contains("[INFO] Query finished."),
        "{seen}"
    );
    assert!(seen.contains("[ERROR]") && seen.contains("nope"), "{seen}");
    assert!(seen.contains("[INFO] Query cancelled."), "{seen}");
    assert!(
        seen.lines().any(|l| l.trim() == "g"),
        "SHOW TABLES ran after the cancelled SELECT: {seen}"
    );
}

#[test]
fn statements_can_come_from_standard_input() {
    use std::io::Write;
    let dir = workspace();
    let mut child = Command::new(weir_bin())
        .args(["sql", "--results-dir", "out"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("weir sql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"-- include: prelude.sql\nSET 'parallelism.default' = '2';\nSELECT auction, price FROM bid WHERE MOD(auction, 7) = 0 AND price IS NOT NULL;\n")
        .expect("write");
    let out = child.wait_with_output().expect("weir sql");
    assert!(out.status.success());
    let got = std::fs::read(dir.path().join("out/result-1.csv")).expect("result");
    let want =
        std::fs::read(sql_dir().join("expected/q06_nexmark_q2/result-1.csv")).expect("expected");
    assert_eq!(got, want);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| op | auction | price |"));
}

#[test]
fn describe_and_explain_print_the_schema_and_the_plan() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("ex.sql"),
        "-- include: prelude.sql\nDESCRIBE bid;\nEXPLAIN SELECT auction, 0.908 * price AS p FROM bid WHERE MOD(auction, 7) = 0;\nSHOW TABLES;\nEXPLAIN SELECT window_start, channel, COUNT(*) AS n FROM TABLE(HOP(TABLE bid, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECOND)) WHERE price > 10 GROUP BY window_start, window_end, channel;\nEXPLAIN SELECT channel, MAX(price) FROM bid GROUP BY channel;\n",
    )
    .expect("script");
    let run = weir_sql(dir.path(), &["-f", "ex.sql"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for want in [
        "| TIMESTAMP(3) *ROWTIME* |",
        "`ts` - INTERVAL '5000' MILLISECOND",
        "== Logical Plan (DataFusion) ==",
        "TableScan: bid",
        "p DECIMAL(24, 3)",
        "auction\nbid\nperson",
        "WindowAggregate Hop { slide: 5000, size: 20000 }, partitioned by columns 0..1",
        "count(*) BIGINT NOT NULL: CountStar(column None)",
        "GroupAggregate, partitioned by columns 0..1 (updating)",
    ] {
        assert!(stdout.contains(want), "want {want:?} in:\n{stdout}");
    }
}

#[test]
fn an_interval_join_expires_rows_with_the_watermark_and_emits_only_insertions() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("ij.sql"),
        "-- include: q13_interval_join.sql\nEXPLAIN SELECT a.id, b.price FROM auction a LEFT JOIN bid b ON a.id = b.auction AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '15' SECOND;\n",
    )
    .expect("script");
    let run = weir_sql(
        dir.path(),
        &["-f", "ij.sql", "--results-dir", "out", "-p", "2"],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("interval: right time - left time in [0, 15000] ms"),
        "{stdout}"
    );
    // A left interval join pads an auction without bids once, when it expires: no
    // retractions, unlike a regular left join.
    let changelog = std::fs::read_to_string(dir.path().join("out/changelog-2.csv")).expect("log");
    assert!(changelog.lines().count() > 100);
    assert!(
        changelog.lines().all(|l| l.starts_with("+I,")),
        "{changelog}"
    );
    let padded = changelog
        .lines()
        .filter(|l| l.ends_with(",\\N,\\N,\\N"))
        .count();
    assert!(padded > 0, "some auctions got no bid in 15 s");
}

#[test]
fn insert_into_print_writes_every_row_with_its_kind_and_bad_inserts_fail_before_running() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("ins.sql"),
        "-- include: prelude.sql
CREATE TABLE printed (auction BIGINT, price BIGINT, note STRING) WITH ('connector' = 'print', 'print-identifier' = 'out');
CREATE TABLE top (channel STRING, n BIGINT) WITH ('connector' = 'print');
INSERT INTO printed (price, auction) SELECT price, auction FROM bid WHERE MOD(auction, 7) = 0 AND price IS NOT NULL;
INSERT INTO top SELECT channel, COUNT(*) FROM (SELECT channel FROM bid UNION ALL SELECT channel FROM bid) GROUP BY channel;
SELECT auction, price FROM bid WHERE MOD(auction, 7) = 0 AND price IS NOT NULL;
EXPLAIN SELECT auction, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;
",
    )
    .expect("script");
    let run = weir_sql(dir.path(), &["-f", "ins.sql", "--results-dir", "out"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The INSERT printed the rows the SELECT returns, the unnamed column NULL.
    let mut printed: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out> +I["))
        .map(|l| l.trim_end_matches(", null]").replace(", ", ","))
        .collect();
    printed.sort();
    let result = std::fs::read_to_string(dir.path().join("out/result-1.csv")).expect("result");
    let expected: Vec<&str> = result.lines().collect();
    assert!(expected.len() > 50, "{result}");
    assert_eq!(printed, expected);
    // An updating query into a sink that takes updates: retractions are printed.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("-U[") || l.starts_with("-D[")),
        "{stdout}"
    );
    // Only the columns the query reads are scanned.
    assert!(
        stdout.contains("Source: bid (filesystem), columns [auction, ts]"),
        "{stdout}"
    );

    for (insert, want) in [
        (
            "INSERT INTO printed SELECT channel, price, channel AS c FROM bid;",
            "incompatible types for sink column 'auction' at position 0",
        ),
        (
            "INSERT INTO printed SELECT auction, price FROM bid;",
            "the query has 2 columns, the sink 3",
        ),
        (
            "INSERT INTO nowhere SELECT auction FROM bid;",
            "table 'nowhere' does not exist",
        ),
        (
            "INSERT INTO printed (auction, bogus) SELECT auction, price FROM bid;",
            "unknown target column 'bogus'",
        ),
    ] {
        std::fs::write(
            dir.path().join("bad.sql"),
            format!("-- include: prelude.sql\nCREATE TABLE printed (auction BIGINT, price BIGINT, note STRING) WITH ('connector' = 'print');\n{insert}\n"),
        )
        .expect("script");
        let run = weir_sql(dir.path(), &["-f", "bad.sql"]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{insert} ran");
        assert!(stderr.contains("statement 5"), "{stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
        assert!(
            !String::from_utf8_lossy(&run.stdout).contains("+I["),
            "nothing runs"
        );
    }
}
