//! File formats end to end: CSV, JSON lines and Parquet written by the exactly-once
//! FileSink across a failure and read back by the FileSource at another parallelism;
//! Parquet read positions across a savepoint and a rescale; Kafka to Parquet exactly once;
//! the errors a user sees for bad input.

#[path = "support/kafka_server.rs"]
mod kafka_server;

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weir::connectors::file::{
    CsvFormat, FileSink, FileSource, JsonLinesFormat, LineFormat, ParquetFormat, PartFormat,
};
use weir::connectors::kafka::{KafkaRecord, KafkaSource};
use weir::prelude::*;

#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Trade {
    id: u64,
    symbol: String,
    price: f64,
    note: Option<String>,
}

fn trade(i: u64) -> Trade {
    Trade {
        id: i,
        symbol: format!("S,{}", i % 11),
        price: i as f64 / 8.0,
        note: (i % 4 == 0).then(|| format!("note \"{i}\"")),
    }
}

/// Writes trades `0..n` through `format` at parallelism 2 with checkpoints, failing once
/// midway; returns the visible files.
fn write_with_a_failure<F: PartFormat<Trade>>(
    dir: &Path,
    format: F,
    n: u64,
    failed: &'static AtomicBool,
) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 2,
        delay_ms: 10,
    });
    env.from_source(
        weir::connectors::datagen::DataGeneratorSource::new(n, trade).with_rate_limit(20_000.0),
        "trades",
    )
    .map(move |t: Trade| {
        if t.id == n / 2 && !failed.swap(true, Ordering::SeqCst) {
            panic!("injected failure");
        }
        t
    })
    .sink_to(FileSink::for_format(dir, format), "files");
    env.execute("write").unwrap();
    assert!(failed.load(Ordering::SeqCst), "the failure happened");
}

fn read_back(source: FileSource<Trade>, p: i64) -> Vec<Trade> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    let got = env.from_source(source, "files").collect_values();
    env.execute("read").unwrap();
    let mut v = got.take();
    v.sort_by_key(|a| a.id);
    v
}

fn visible_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

static CSV_FAILED: AtomicBool = AtomicBool::new(false);
static JSON_FAILED: AtomicBool = AtomicBool::new(false);
static PARQUET_FAILED: AtomicBool = AtomicBool::new(false);

#[test]
fn csv_and_json_lines_round_trip_exactly_once() {
    let n = 3_000;
    let want: Vec<Trade> = (0..n).map(trade).collect();
    let tmp = tempfile::tempdir().unwrap();

    let csv_dir = tmp.path().join("csv");
    let csv = CsvFormat::<Trade>::new().with_header();
    write_with_a_failure(&csv_dir, csv.clone(), n, &CSV_FAILED);
    let files = visible_files(&csv_dir);
    assert!(
        files.len() > 2 && files.iter().all(|f| f.ends_with(".csv")),
        "{files:?}"
    );
    let first = std::fs::read_to_string(csv_dir.join(&files[0])).unwrap();
    assert!(first.starts_with("id,symbol,price,note\n"), "{first}");
    let source = FileSource::for_line_format(csv, vec![csv_dir.clone()]).with_block_size(500);
    assert_eq!(read_back(source, 3), want);

    let json_dir = tmp.path().join("json");
    write_with_a_failure(&json_dir, JsonLinesFormat::<Trade>::new(), n, &JSON_FAILED);
    let source = FileSource::for_line_format(JsonLinesFormat::<Trade>::new(), vec![json_dir]);
    assert_eq!(read_back(source, 1), want);
}

#[test]
fn parquet_round_trips_exactly_once_and_resumes_after_a_rescale() {
    let n = 4_000;
    let want: Vec<Trade> = (0..n).map(trade).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pq");
    let format = ParquetFormat::<Trade>::new()
        .unwrap()
        .with_row_group_size(300);
    write_with_a_failure(&dir, format, n, &PARQUET_FAILED);
    let files = visible_files(&dir);
    assert!(
        files.len() > 2 && files.iter().all(|f| f.ends_with(".parquet")),
        "{files:?}"
    );
    assert_eq!(
        read_back(FileSource::for_parquet(vec![dir.clone()]), 2),
        want
    );

    // Read slowly with one reader (a savepoint needs every task running, and a reader
    // with fewer files would finish early), stop with a savepoint midway, and resume at
    // parallelism 2.
    let build = |p: i64| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        env.enable_checkpointing(Duration::from_millis(20));
        env.set_checkpoint_storage(tmp.path().join("ckpt").display().to_string());
        let got = env
            .from_source(FileSource::<Trade>::for_parquet(vec![dir.clone()]), "pq")
            .uid("pq")
            .map(|t: Trade| {
                std::thread::sleep(Duration::from_micros(300));
                t
            })
            .collect_values();
        (env, got)
    };
    let (env, first) = build(1);
    let job = env.execute_async("read").unwrap();
    let started = Instant::now();
    while job.checkpoint_stats().unwrap().completed < 2 || first.len() < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoints"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sp = job
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let first = first.take();
    assert!(first.len() < n as usize, "stopped midway: {}", first.len());
    let (env, second) = build(2);
    env.restore_from_savepoint(sp, false);
    env.execute("read").unwrap();
    let mut all: Vec<Trade> = first.into_iter().chain(second.take()).collect();
    all.sort_by_key(|a| a.id);
    let ids: BTreeSet<u64> = all.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), all.len(), "a row was read twice");
    assert_eq!(all, want);
}

static KAFKA_FAILED: AtomicBool = AtomicBool::new(false);

#[test]
fn kafka_to_parquet_exactly_once_across_a_failure() {
    let server = kafka_server::KafkaServer::start();
    server.create_topic("trades", 3);
    let n = 5_000u64;
    let input: Vec<_> = (0..n)
        .map(|i| {
            (
                (i % 3) as i32,
                String::new(),
                serde_json::to_string(&trade(i)).unwrap(),
                i as i64,
            )
        })
        .collect();
    server.produce("trades", &input);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 2,
        delay_ms: 10,
    });
    let source = KafkaSource::builder()
        .bootstrap_servers(server.bootstrap())
        .topics(["trades"])
        .bounded()
        .deserializer(|r: &KafkaRecord<'_>| -> Result<Option<Trade>, UserError> {
            Ok(Some(serde_json::from_slice(r.value.unwrap_or_default())?))
        })
        .build()
        .unwrap();
    env.from_source(source, "kafka")
        .map(move |t: Trade| {
            if t.id == 3_000 && !KAFKA_FAILED.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
            std::thread::sleep(Duration::from_micros(100));
            t
        })
        .sink_to(
            FileSink::for_format(&dir, ParquetFormat::<Trade>::new().unwrap()),
            "parquet",
        );
    let result = env.execute("kafka to parquet").unwrap();
    assert!(result.restarts >= 1, "the failure happened");
    let want: Vec<Trade> = (0..n).map(trade).collect();
    assert_eq!(read_back(FileSource::for_parquet(vec![dir]), 2), want);
}

#[test]
fn bad_input_names_the_file_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.csv");
    std::fs::write(&path, "id,symbol,price,note\n1,a,2.0,\n2,b,not-a-price,\n").unwrap();
    let env = StreamExecutionEnvironment::new();
    let source = FileSource::for_line_format(CsvFormat::<Trade>::new().with_header(), vec![path]);
    env.from_source(source, "csv").discard();
    let e = env.execute("bad csv").unwrap_err().to_string();
    assert!(
        e.contains("in.csv") && e.contains("line at byte 30") && e.contains("not-a-price"),
        "{e}"
    );

    let not_parquet = tmp.path().join("x.parquet");
    std::fs::write(&not_parquet, "plain text").unwrap();
    let env = StreamExecutionEnvironment::new();
    env.from_source(FileSource::<Trade>::for_parquet(vec![not_parquet]), "pq")
        .discard();
    let e = env.execute("bad parquet").unwrap_err().to_string();
    assert!(
        e.contains("x.parquet") && e.contains("not a readable Parquet file"),
        "{e}"
    );

    // A JSON line format skips blank lines.
    assert_eq!(JsonLinesFormat::<Trade>::new().decode(b"").unwrap(), None);
}
