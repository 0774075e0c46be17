//! The Kafka source end to end against a real Kafka-protocol broker (tansu): every record
//! once at any parallelism, starting offsets (earliest, latest, committed), committed offsets, per-partition
//! watermarks, partition discovery, positions across a savepoint and a rescale, and the
//! errors a user sees.

#[path = "support/kafka_server.rs"]
mod kafka_server;

use kafka_server::KafkaServer;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use weir::connectors::kafka::{
    Json, KafkaRecord, KafkaSource, Reset, StartingOffsets, Utf8Strings,
};
use weir::prelude::*;

/// (partition, offset, value) of each record.
type Seen = (i32, i64, String);

fn seen(r: &KafkaRecord<'_>) -> Result<Option<Seen>, UserError> {
    let v = String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned();
    Ok(Some((r.partition, r.offset, v)))
}

/// `n` records spread over `partitions`, value `v<i>`, timestamp `1000 + i`.
fn input(n: usize, partitions: i32) -> Vec<(i32, String, String, i64)> {
    (0..n)
        .map(|i| {
            (
                i as i32 % partitions,
                format!("k{}", i % 7),
                format!("v{i}"),
                1_000 + i as i64,
            )
        })
        .collect()
}

fn bounded(server: &KafkaServer, topic: &str) -> weir::connectors::kafka::KafkaSourceBuilder<Seen> {
    KafkaSource::builder()
        .bootstrap_servers(server.bootstrap())
        .topics([topic])
        .bounded()
        .deserializer(seen)
}

#[test]
fn a_bounded_source_reads_every_record_once_at_any_parallelism() {
    let server = KafkaServer::start();
    server.create_topic("orders", 4);
    let records = input(3_000, 4);
    server.produce("orders", &records);
    for p in [1, 3, 6] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let got = env
            .from_source(bounded(&server, "orders").build().unwrap(), "kafka")
            .collect_values();
        env.execute("kafka bounded").unwrap();
        let mut got = got.take();
        got.sort();
        let mut want: Vec<Seen> = Vec::new();
        for part in 0..4 {
            let values = records.iter().filter(|r| r.0 == part);
            want.extend(
                values
                    .enumerate()
                    .map(|(o, r)| (part, o as i64, r.2.clone())),
            );
        }
        want.sort();
        assert_eq!(got, want, "p={p}");
    }
}

#[test]
fn starting_offsets_earliest_latest_timestamp_and_committed() {
    let server = KafkaServer::start();
    server.create_topic("t", 2);
    server.produce("t", &input(400, 2));
    let run = |starting: StartingOffsets, group: Option<&str>, checkpoints: bool| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(2);
        if checkpoints {
            env.enable_checkpointing(Duration::from_millis(20));
        }
        let mut b = bounded(&server, "t").starting_offsets(starting);
        if let Some(g) = group {
            b = b.group_id(g);
        }
        let got = env
            .from_source(b.build().unwrap(), "kafka")
            .collect_values();
        env.execute("kafka starting offsets").unwrap();
        let mut v: Vec<String> = got.take().into_iter().map(|s| s.2).collect();
        v.sort();
        v
    };
    assert_eq!(run(StartingOffsets::Earliest, None, false).len(), 400);
    assert!(run(StartingOffsets::Latest, None, false).is_empty());
    // `StartingOffsets::Timestamp` is not checked here: tansu 0.6.0 answers every
    // timestamp lookup (ListOffsets with a time) with offset 0.

    // Without committed offsets, the reset rule applies; Fail names the partition.
    let env = StreamExecutionEnvironment::new();
    let b = bounded(&server, "t")
        .group_id("nobody")
        .starting_offsets(StartingOffsets::Committed { reset: Reset::Fail });
    env.from_source(b.build().unwrap(), "kafka").discard();
    let e = env.execute("kafka committed").unwrap_err().to_string();
    assert!(e.contains("no committed offset"), "{e}");

    // A bounded run with checkpoints commits its positions when they complete (the final
    // positions may or may not make it before the end), and a run from the committed
    // offsets reads only what was not committed.
    let first = run(StartingOffsets::Earliest, Some("g"), true);
    assert_eq!(first.len(), 400);
    let committed = server.committed("g", "t", 2);
    assert!(committed.iter().all(Option::is_some), "{committed:?}");
    let rest = run(
        StartingOffsets::Committed {
            reset: Reset::Earliest,
        },
        Some("g"),
        false,
    );
    let committed_total: i64 = committed.iter().flatten().sum();
    assert_eq!(rest.len() as i64, 400 - committed_total);
}

#[test]
fn watermarks_are_generated_per_partition() {
    let server = KafkaServer::start();
    server.create_topic("ev", 2);
    // Partition 0 runs an hour ahead of partition 1. Records of both arrive interleaved;
    // a watermark of the reader as a whole would make partition 1's records late.
    let mut records = Vec::new();
    for i in 0..500i64 {
        records.push((0, "a".to_string(), format!("{i}"), 3_600_000 + i * 10));
        records.push((1, "b".to_string(), format!("{i}"), i * 10));
    }
    server.produce("ev", &records);
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let source = KafkaSource::builder()
        .bootstrap_servers(server.bootstrap())
        .topics(["ev"])
        .bounded()
        .deserializer(|r: &KafkaRecord<'_>| -> Result<Option<i64>, UserError> {
            Ok(Some(r.partition as i64))
        })
        .build()
        .unwrap();
    let counts = env
        .from_source_with_watermarks(
            source,
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::ZERO),
            "kafka",
        )
        .map(|p: i64| (p, 1i64))
        .key_by(|t: &(i64, i64)| t.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect_values();
    env.execute("kafka watermarks").unwrap();
    let mut per_partition = [0i64; 2];
    for (p, c) in counts.take() {
        per_partition[p as usize] += c;
    }
    assert_eq!(per_partition, [500, 500], "records were dropped as late");
}

#[test]
fn new_topics_and_partitions_are_discovered_while_the_job_runs() {
    let server = KafkaServer::start();
    server.create_topic("disc-a", 1);
    server.produce("disc-a", &input(50, 1));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let source = KafkaSource::builder()
        .bootstrap_servers(server.bootstrap())
        .topic_pattern("disc-.*")
        .starting_offsets(StartingOffsets::Latest)
        .partition_discovery_interval(Some(Duration::from_millis(200)))
        .deserializer(Utf8Strings)
        .build()
        .unwrap();
    let got = env.from_source(source, "kafka").collect_values();
    let job = env.execute_async("kafka discovery").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // A topic created later is read from its start, although the source started at the
    // latest offsets; the records already in disc-a before the start are not read.
    server.create_topic("disc-b", 3);
    let late: Vec<_> = (0..90)
        .map(|i| (i % 3, "k".to_string(), format!("b{i}"), 5_000))
        .collect();
    server.produce("disc-b", &late);
    server.produce("disc-a", &[(0, "k".into(), "a-after".into(), 5_000)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 91 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    job.cancel().unwrap();
    let _ = job.wait();
    let got: BTreeSet<String> = got.take().into_iter().collect();
    let mut want: BTreeSet<String> = (0..90).map(|i| format!("b{i}")).collect();
    want.insert("a-after".into());
    assert_eq!(got, want);
}

#[test]
fn positions_survive_a_savepoint_and_a_rescale() {
    let server = KafkaServer::start();
    server.create_topic("big", 5);
    let records = input(20_000, 5);
    server.produce("big", &records);
    let tmp = tempfile::tempdir().unwrap();
    let build = |p: i64| {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        env.enable_checkpointing(Duration::from_millis(30));
        env.set_checkpoint_storage(tmp.path().join("ckpt").display().to_string());
        let source = KafkaSource::builder()
            .bootstrap_servers(server.bootstrap())
            .topics(["big"])
            .deserializer(seen)
            .build()
            .unwrap();
        // Slow enough that the savepoint comes midway.
        let got = env
            .from_source(source, "kafka")
            .uid("kafka")
            .map(|s: Seen| {
                std::thread::sleep(Duration::from_micros(100));
                s
            })
            .collect_values();
        (env, got)
    };
    let (env, first) = build(2);
    let job = env.execute_async("kafka").unwrap();
    let waiting = Instant::now();
    while job.checkpoint_stats().unwrap().completed < 2 || first.len() < 100 {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "no checkpoints"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sp = job
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let first = first.take();
    assert!(
        first.len() < records.len(),
        "stopped midway: {}",
        first.len()
    );

    let (env, second) = build(3);
    env.restore_from_savepoint(sp, false);
    let job = env.execute_async("kafka").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.len() + second.len() < records.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    job.cancel().unwrap();
    let _ = job.wait();
    let all: Vec<Seen> = first.into_iter().chain(second.take()).collect();
    let distinct: BTreeSet<&Seen> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a record was read twice");
    assert_eq!(all.len(), records.len(), "a record was not read");
}

#[test]
fn a_missing_topic_and_a_bad_record_fail_the_job_with_what_is_wrong() {
    let server = KafkaServer::start();
    let env = StreamExecutionEnvironment::new();
    env.from_source(bounded(&server, "no-such-topic").build().unwrap(), "kafka")
        .discard();
    let e = env.execute("kafka missing").unwrap_err().to_string();
    assert!(e.contains("no-such-topic"), "{e}");

    #[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
    struct Order {
        _id: u64,
    }
    server.create_topic("json", 1);
    server.produce(
        "json",
        &[
            (0, "k".into(), r#"{"_id":1}"#.into(), 1),
            (0, "k".into(), "{not json".into(), 2),
        ],
    );
    let env = StreamExecutionEnvironment::new();
    let source = KafkaSource::<Order>::builder()
        .bootstrap_servers(server.bootstrap())
        .topics(["json"])
        .bounded()
        .deserializer(Json::new())
        .build()
        .unwrap();
    env.from_source(source, "kafka").discard();
    let e = env.execute("kafka bad json").unwrap_err().to_string();
    assert!(
        e.contains("offset 1 of partition json-0") && e.contains("not the JSON"),
        "{e}"
    );

    // A configuration without topics is refused before the job starts.
    let e = KafkaSource::<String>::builder()
        .bootstrap_servers(server.bootstrap())
        .deserializer(Utf8Strings)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no topics"), "{e}");
}
