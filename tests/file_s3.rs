//! Files in S3 (a local moto server started here): the exactly-once FileSink writes CSV and
//! Parquet part files as multipart uploads completed on commit, across a failure; the
//! FileSource reads them back from `s3://` URLs, split by block; a part file larger than
//! one upload part is uploaded in several and read back whole.
//!
//! One test function: the S3 settings are process-wide environment variables, so every case
//! runs against the one server, in turn.

#[path = "support/s3_server.rs"]
mod s3_server;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir::connectors::file::{CsvFormat, FileSink, FileSource, ParquetFormat, PartFormat};
use weir::prelude::*;
use weir::state::CheckpointStorage;

#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Trade {
    id: u64,
    symbol: String,
    price: f64,
}

fn trade(i: u64) -> Trade {
    Trade {
        id: i,
        symbol: format!("S{}", i % 7),
        price: i as f64 / 4.0,
    }
}

/// Writes trades `0..n` through `format` to `url` at parallelism 2 with checkpoints,
/// failing once midway.
fn write_with_a_failure<F: PartFormat<Trade>>(
    url: &str,
    format: F,
    n: u64,
    failed: &'static AtomicBool,
) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(40));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 2,
        delay_ms: 10,
    });
    env.from_source(
        weir::connectors::datagen::DataGeneratorSource::new(n, trade).with_rate_limit(10_000.0),
        "trades",
    )
    .map(move |t: Trade| {
        if t.id == n / 2 && !failed.swap(true, Ordering::SeqCst) {
            panic!("injected failure");
        }
        t
    })
    .sink_to(FileSink::for_format(url, format), "s3 files");
    let result = env.execute("write to s3").unwrap();
    assert!(result.restarts >= 1, "the failure happened");
}

fn read_back<T: weir::api::Data>(source: FileSource<T>, p: i64) -> Vec<T> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    let got = env.from_source(source, "s3 files").collect_values();
    env.execute("read from s3").unwrap();
    got.take()
}

/// The objects under `url`, by name.
fn objects(url: &str) -> Vec<String> {
    let mut v = CheckpointStorage::open(url)
        .unwrap()
        .list_files("")
        .unwrap();
    v.sort();
    v
}

static CSV_FAILED: AtomicBool = AtomicBool::new(false);
static PARQUET_FAILED: AtomicBool = AtomicBool::new(false);

fn csv_exactly_once_across_a_failure() {
    let n = 2_000;
    let csv = CsvFormat::<Trade>::new().with_header();
    write_with_a_failure("s3://weir/csv", csv.clone(), n, &CSV_FAILED);
    // Only finished part files are visible: prepared uploads stay invisible until completed.
    let files = objects("s3://weir/csv");
    assert!(
        files.len() > 2
            && files
                .iter()
                .all(|f| f.starts_with("part-") && f.ends_with(".csv")),
        "{files:?}"
    );
    let source =
        FileSource::for_line_format(csv, vec![PathBuf::from("s3://weir/csv")]).with_block_size(700);
    let mut got = read_back(source, 3);
    got.sort_by_key(|t| t.id);
    assert_eq!(got, (0..n).map(trade).collect::<Vec<_>>());
}

fn parquet_exactly_once_across_a_failure() {
    let n = 3_000;
    let format = ParquetFormat::<Trade>::new().unwrap();
    write_with_a_failure("s3://weir/pq/", format, n, &PARQUET_FAILED);
    let files = objects("s3://weir/pq");
    assert!(
        files.len() > 2 && files.iter().all(|f| f.ends_with(".parquet")),
        "{files:?}"
    );
    let mut got = read_back(
        FileSource::<Trade>::for_parquet(vec![PathBuf::from("s3://weir/pq")]),
        2,
    );
    got.sort_by_key(|t| t.id);
    assert_eq!(got, (0..n).map(trade).collect::<Vec<_>>());
}

/// One part file of about 12 MiB: three upload parts, committed at the end of input.
fn a_large_part_file_in_several_upload_parts() {
    let n = 160_000u64;
    let line = |i: u64| format!("{i:08} {}", "abcdefghij".repeat(7));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    env.from_sequence(0, n as i64 - 1)
        .map(move |i: i64| line(i as u64))
        .sink_to(FileSink::for_row_format("s3://weir/big"), "big");
    env.execute("large part").unwrap();
    let files = objects("s3://weir/big");
    assert_eq!(files.len(), 1, "{files:?}");
    let size = CheckpointStorage::open("s3://weir/big")
        .unwrap()
        .size(&files[0])
        .unwrap();
    assert!(size > 10 * 1024 * 1024, "{size}");
    let source = FileSource::new(vec![PathBuf::from("s3://weir/big")]).with_block_size(4 << 20);
    let mut got = read_back(source, 2);
    got.sort();
    assert_eq!(got, (0..n).map(line).collect::<Vec<_>>());
}

fn a_missing_bucket_names_the_url() {
    let env = StreamExecutionEnvironment::new();
    env.from_source(
        FileSource::new(vec![PathBuf::from("s3://no-such-bucket/in")]),
        "missing",
    )
    .collect_values();
    let err = env.execute("missing").unwrap_err().to_string();
    assert!(err.contains("s3://no-such-bucket/in"), "{err}");
}

#[test]
fn files_in_s3() {
    let s3 = s3_server::S3Server::start("weir");
    s3.configure_env();
    csv_exactly_once_across_a_failure();
    parquet_exactly_once_across_a_failure();
    a_large_part_file_in_several_upload_parts();
    a_missing_bucket_names_the_url();
}
