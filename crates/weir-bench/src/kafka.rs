//! `kafka-sink`, `kafka-source` and `kafka-to-kafka`: how fast the Kafka connector moves
//! records, against a broker the caller names with `WEIR_BENCH_KAFKA=HOST:PORT`.
//!
//! Records have the key `k<i % 10000>` and a value of 100 bytes (`i`, zero-padded).
//!
//! - `kafka-sink`: the generator source into the Kafka sink (at least once), into a new
//!   topic with `PARALLELISM` partitions; the time includes the final flush.
//! - `kafka-source`: a bounded Kafka source over such a topic (written first, not timed)
//!   into a discarding sink.
//! - `kafka-to-kafka`: the same source into the Kafka sink (at least once), into a second
//!   topic.
//!
//! Topics are created with a name of the process id; the benchmark does not delete them
//! (run it against a broker started for it). After the input is written, one more record
//! goes to each partition on its own: tansu reports a partition's end as the base offset of
//! its last batch plus one, and that record makes the end exact for the bounded source.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};
use weir_api::prelude::*;
use weir_connectors::datagen::DataGeneratorSource;
use weir_connectors::kafka::{KafkaRecord, KafkaSink, KafkaSource, ProducerRecord};
use weir_connectors::DeliveryGuarantee;

/// Distinct keys.
const KEYS: u64 = 10_000;

/// What one run measured.
pub struct KafkaOutcome {
    /// Wall time of the timed job.
    pub seconds: f64,
    /// Records the timed job moved.
    pub records: u64,
}

/// A record: key and value bytes.
type Kv = (Vec<u8>, Vec<u8>);

fn record(i: u64) -> Kv {
    (
        format!("k{}", i % KEYS).into_bytes(),
        format!("{i:0>100}").into_bytes(),
    )
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("cannot connect to WEIR_BENCH_KAFKA ({brokers}): {e}"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics(&[new], &AdminOptions::new()))
        .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
    for r in results {
        r.map_err(|(t, e)| format!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

fn sink(brokers: &str, topic: String) -> Result<KafkaSink<Kv>, String> {
    KafkaSink::builder()
        .bootstrap_servers(brokers)
        .serializer(move |(k, v): &Kv, _| {
            Ok(ProducerRecord::new(topic.as_str(), v.as_slice()).with_key(k.as_slice()))
        })
        .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
        .property("linger.ms", "5")
        .build()
        .map_err(|e| e.to_string())
}

/// Writes `events` records into `topic` with a Weir job; returns the seconds it took.
fn write(brokers: &str, topic: &str, events: u64, parallelism: i64) -> Result<f64, String> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.from_source(DataGeneratorSource::new(events, record), "generator")
        .sink_to(sink(brokers, topic.to_string())?, "kafka");
    let start = Instant::now();
    env.execute("kafka-sink").map_err(|e| e.to_string())?;
    Ok(start.elapsed().as_secs_f64())
}

/// One record per partition, each in a batch of its own (see the module docs).
fn write_end_markers(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .map_err(|e| e.to_string())?;
    for p in 0..partitions {
        producer
            .send(BaseRecord::to(topic).partition(p).key("end").payload("end"))
            .map_err(|(e, _)| e.to_string())?;
        producer
            .flush(Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn source(brokers: &str, topic: &str) -> Result<KafkaSource<Kv>, String> {
    let mut builder = KafkaSource::builder();
    // `WEIR_BENCH_KAFKA_CONSUMER=key=value;key=value`: librdkafka consumer properties.
    if let Ok(props) = std::env::var("WEIR_BENCH_KAFKA_CONSUMER") {
        for kv in props.split(';').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("WEIR_BENCH_KAFKA_CONSUMER: '{kv}' is not key=value"))?;
            builder = builder.property(k, v);
        }
    }
    builder
        .bootstrap_servers(brokers)
        .topics([topic])
        .bounded()
        .deserializer(|r: &KafkaRecord<'_>| -> Result<Option<Kv>, UserError> {
            Ok(Some((
                r.key.unwrap_or_default().to_vec(),
                r.value.unwrap_or_default().to_vec(),
            )))
        })
        .build()
        .map_err(|e| e.to_string())
}

/// Runs a `kafka-*` workload over `events` records at `parallelism`.
pub fn run(workload: &str, events: u64, parallelism: i64) -> Result<KafkaOutcome, String> {
    let brokers = std::env::var("WEIR_BENCH_KAFKA").map_err(|_| {
        "set WEIR_BENCH_KAFKA to HOST:PORT of a Kafka broker to run the kafka-* workloads"
    })?;
    let partitions = parallelism.max(1) as i32;
    let input = format!("weir-bench-in-{}", std::process::id());
    create_topic(&brokers, &input, partitions)?;
    if workload == "kafka-sink" {
        let seconds = write(&brokers, &input, events, parallelism)?;
        return Ok(KafkaOutcome {
            seconds,
            records: events,
        });
    }
    eprintln!("writing the input ({events} records, not timed)");
    write(&brokers, &input, events, parallelism)?;
    write_end_markers(&brokers, &input, partitions)?;
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let read = env.from_source(source(&brokers, &input)?, "kafka");
    match workload {
        "kafka-source" => {
            read.discard();
        }
        "kafka-to-kafka" => {
            let output = format!("weir-bench-out-{}", std::process::id());
            create_topic(&brokers, &output, partitions)?;
            read.sink_to(sink(&brokers, output)?, "kafka");
        }
        other => return Err(format!("unknown workload {other}")),
    }
    let start = Instant::now();
    let result = env.execute(workload).map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let records = result.operators.first().map_or(0, |o| o.records_out);
    Ok(KafkaOutcome { seconds, records })
}
