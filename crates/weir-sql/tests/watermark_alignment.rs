//! `'scan.watermark.alignment.group'` / `'scan.watermark.alignment.max-drift'`: a SQL
//! table's source subtasks join a watermark alignment group (the DataStream API's
//! `with_watermark_alignment`, whose holding back is tested with the DataStream sources).

use weir_sql::client::Session;

fn table(options: &str) -> String {
    format!(
        "CREATE TABLE a (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '5000', 'rows-per-second' = '50000',
  'fields.ts.max-past' = '200 ms'{options});
CREATE TABLE out (n BIGINT) WITH ('connector' = 'blackhole');"
    )
}

const INSERT: &str = "INSERT INTO out SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end";

#[test]
fn a_table_with_alignment_options_joins_its_group() {
    let mut session = Session::new(".", 2);
    session
        .run_text(
            &table(", 'scan.watermark.alignment.group' = 'g1', 'scan.watermark.alignment.max-drift' = '1 s'"),
            &mut std::io::sink(),
        )
        .expect("DDL");
    let (env, name) = session.insert_job(INSERT).expect("plan");
    let result = env.execute(&name).expect("job");
    let reporter = result
        .operators
        .iter()
        .find(|o| o.name == "Watermark Alignment (g1)")
        .unwrap_or_else(|| panic!("no alignment operator in {:?}", result.operators));
    // Records are batches of rows: 5000 rows in at least five batches of at most 1024.
    assert!(
        reporter.records_in >= 5,
        "the source's batches pass the group's reporter: {}",
        reporter.records_in
    );
}

#[test]
fn alignment_options_are_checked() {
    for (options, want) in [
        (
            ", 'scan.watermark.alignment.group' = 'g'",
            "go together",
        ),
        (
            ", 'scan.watermark.alignment.group' = 'g', 'scan.watermark.alignment.max-drift' = 'far'",
            "is not a duration",
        ),
    ] {
        let mut session = Session::new(".", 1);
        session
            .run_text(&table(options), &mut std::io::sink())
            .expect("DDL");
        let err = session.insert_job(INSERT).err().expect("refused");
        assert!(err.to_string().contains(want), "{err}");
    }
    let mut session = Session::new(".", 1);
    session
        .run_text(
            "CREATE TABLE b (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5', 'scan.watermark.alignment.group' = 'g', 'scan.watermark.alignment.max-drift' = '1 s');
CREATE TABLE out (n BIGINT) WITH ('connector' = 'blackhole');",
            &mut std::io::sink(),
        )
        .expect("DDL");
    let err = session
        .insert_job("INSERT INTO out SELECT id FROM b")
        .err()
        .expect("refused");
    assert!(err.to_string().contains("needs a WATERMARK"), "{err}");
}
