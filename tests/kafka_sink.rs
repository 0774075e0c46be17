//! The Kafka sink end to end against a real Kafka-protocol broker (tansu): Kafka to Kafka
//! at least once across a failure (no record lost, duplicates counted), without
//! guarantees, the exactly-once protocol as far as this broker goes, and the errors a
//! user sees.

#[path = "support/kafka_server.rs"]
mod kafka_server;

use kafka_server::KafkaServer;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use weir::connectors::kafka::{KafkaSink, KafkaSource, ProducerRecord, Utf8Strings};
use weir::connectors::DeliveryGuarantee;
use weir::prelude::*;

fn input(n: usize, partitions: i32) -> Vec<(i32, String, String, i64)> {
    (0..n)
        .map(|i| {
            (
                i as i32 % partitions,
                format!("k{i}"),
                format!("v{i}"),
                1_000 + i as i64,
            )
        })
        .collect()
}

fn source(server: &KafkaServer, topic: &str) -> KafkaSource<String> {
    KafkaSource::builder()
        .bootstrap_servers(server.bootstrap())
        .topics([topic])
        .bounded()
        .deserializer(Utf8Strings)
        .build()
        .unwrap()
}

fn sink(server: &KafkaServer, topic: &'static str, g: DeliveryGuarantee) -> KafkaSink<String> {
    KafkaSink::builder()
        .bootstrap_servers(server.bootstrap())
        .serializer(move |v: &String, ts: Option<i64>| {
            let mut r = ProducerRecord::new(topic, v.as_bytes()).with_key(v.as_bytes());
            if let Some(ts) = ts {
                r = r.with_timestamp(ts);
            }
            Ok(r)
        })
        .delivery_guarantee(g)
        .transactional_id_prefix(format!("weir-test-{topic}"))
        .build()
        .unwrap()
}

static FAILED_ONCE: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicU64 = AtomicU64::new(0);

#[test]
fn kafka_to_kafka_at_least_once_loses_nothing_across_a_failure() {
    let server = KafkaServer::start();
    server.create_topic("in", 3);
    server.create_topic("out", 2);
    let n = 6_000;
    server.produce("in", &input(n, 3));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 3,
        delay_ms: 10,
    });
    env.from_source(source(&server, "in"), "in")
        .map(|v: String| {
            // One failure, late enough that checkpoints completed before it.
            if SEEN.fetch_add(1, Ordering::Relaxed) == 4_000
                && !FAILED_ONCE.swap(true, Ordering::Relaxed)
            {
                panic!("injected failure");
            }
            std::thread::sleep(Duration::from_micros(100));
            v
        })
        .sink_to(sink(&server, "out", DeliveryGuarantee::AtLeastOnce), "out");
    env.execute("kafka to kafka").unwrap();
    assert!(
        FAILED_ONCE.load(Ordering::Relaxed),
        "the failure was not injected"
    );
    let out = server.read_all("out", n);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for (_, _, key, value) in &out {
        assert_eq!(key, value);
        *counts.entry(value.clone()).or_default() += 1;
    }
    let missing: Vec<String> = (0..n)
        .map(|i| format!("v{i}"))
        .filter(|v| !counts.contains_key(v))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} records, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let duplicates = out.len() - n;
    eprintln!("at least once across one failure: {n} records, {duplicates} written again");
    assert!(duplicates < n, "{duplicates} duplicates");
}

#[test]
fn without_guarantees_every_record_arrives_when_nothing_fails() {
    let server = KafkaServer::start();
    server.create_topic("in2", 2);
    server.create_topic("out2", 3);
    server.produce("in2", &input(2_000, 2));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_source(source(&server, "in2"), "in")
        .sink_to(sink(&server, "out2", DeliveryGuarantee::None), "out");
    env.execute("kafka none").unwrap();
    let mut values: Vec<String> = server
        .read_all("out2", 2_000)
        .into_iter()
        .map(|r| r.3)
        .collect();
    values.sort();
    let mut want: Vec<String> = (0..2_000).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);
    // The key decides the partition: each key is in one partition only.
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    for (p, _, k, _) in server.read_all("out2", 2_000) {
        assert_eq!(*partition_of.entry(k).or_insert(p), p);
    }
}

/// tansu answers `InitProducerId` but refuses `EndTxn` (KIP-98): the exactly-once writer
/// gets as far as preparing its first transaction, and the job fails at the commit with
/// the broker's answer, rather than reporting success.
#[test]
fn exactly_once_fails_clearly_on_a_broker_without_transactions() {
    let server = KafkaServer::start();
    server.create_topic("in3", 1);
    server.create_topic("out3", 1);
    server.produce("in3", &input(100, 1));
    let env = StreamExecutionEnvironment::new();
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_restart_strategy(RestartStrategy::None);
    env.from_source(source(&server, "in3"), "in")
        .sink_to(sink(&server, "out3", DeliveryGuarantee::ExactlyOnce), "out");
    let e = env.execute("kafka exactly once").unwrap_err().to_string();
    eprintln!("exactly once on tansu: {e}");
    assert!(
        e.contains("cannot commit transaction") && e.contains("EndTxn"),
        "{e}"
    );
}

#[test]
fn bad_configurations_and_serializer_errors_are_reported() {
    let e = KafkaSink::<String>::builder()
        .bootstrap_servers("127.0.0.1:1")
        .serializer(|v: &String, _| Ok(ProducerRecord::new("t", v.as_bytes())))
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("transactional id prefix"), "{e}");
    let e = KafkaSink::<String>::builder()
        .serializer(|v: &String, _| Ok(ProducerRecord::new("t", v.as_bytes())))
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bootstrap servers"), "{e}");

    let server = KafkaServer::start();
    server.create_topic("in4", 1);
    server.produce("in4", &input(10, 1));
    let env = StreamExecutionEnvironment::new();
    let failing = KafkaSink::builder()
        .bootstrap_servers(server.bootstrap())
        .serializer(|v: &String, _| {
            if v == "v5" {
                return Err("no topic for v5".into());
            }
            Ok(ProducerRecord::new("out4", v.as_bytes()))
        })
        .build()
        .unwrap();
    env.from_source(source(&server, "in4"), "in")
        .sink_to(failing, "out");
    let e = env.execute("kafka serializer").unwrap_err().to_string();
    assert!(e.contains("no topic for v5"), "{e}");
}
