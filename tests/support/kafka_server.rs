//! A real Kafka-protocol broker for tests: tansu (`cargo install tansu --features
//! dynostore`, which `bash .ci/run` does once), in memory, on 127.0.0.1 at a port the OS
//! picked, stopped by its process id when the handle is dropped. With helpers to create
//! topics, produce and read back, all through librdkafka. Shared with `#[path]`.

#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; dropping it kills it.
pub struct KafkaServer {
    child: Child,
    port: u16,
    _log: tempfile::NamedTempFile,
}

/// The tansu binary: `$TANSU`, else `~/.cargo/bin/tansu`, else `tansu` on the PATH.
fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_bin = home.join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "these tests start a Kafka broker (tansu) and found none: install it with \
             `cargo install tansu --features dynostore` (bash .ci/run does), or set TANSU"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl KafkaServer {
    /// Starts a broker and waits until it serves metadata.
    pub fn start() -> KafkaServer {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("tansu starts");
        let server = KafkaServer {
            child,
            port,
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let consumer = server.consumer("probe");
        while consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .is_err()
        {
            assert!(Instant::now() < deadline, "tansu did not serve metadata");
        }
        server
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, e.g. to stop the broker for a while.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn consumer(&self, group: &str) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer")
    }

    /// Creates `topic` with `partitions` partitions and waits until its metadata shows them.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("an admin client");
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let results =
            futures::executor::block_on(admin.create_topics(&[new], &AdminOptions::new()))
                .expect("create_topics");
        for r in results {
            r.expect("topic created");
        }
        let consumer = self.consumer("probe");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
            if let Ok(md) = md {
                if md.topics().first().map(|t| t.partitions().len()) == Some(partitions as usize) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "topic {topic} did not appear");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes `records` (partition, key, value, timestamp ms) and waits for their acks.
    ///
    /// One record per batch: tansu 0.6.0 reports a partition's end offset as the base
    /// offset of its last batch plus one, and serves a fetch from inside a batch from the
    /// batch after it, so tests that need exact end offsets or resume mid-partition write
    /// their input one record per batch. (Output of the Kafka sink is batched as usual; see
    /// [`Self::read_all`].)
    pub fn produce(&self, topic: &str, records: &[(i32, String, String, i64)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .create()
            .expect("a producer");
        for (p, k, v, ts) in records {
            let mut rec = BaseRecord::to(topic)
                .partition(*p)
                .key(k.as_str())
                .payload(v.as_str())
                .timestamp(*ts);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        rec = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("records acknowledged");
    }

    /// The (low, high) offsets of a partition.
    pub fn bounds(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.consumer("probe")
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks")
    }

    /// Every record of `topic` (partition, offset, key, value): at least `at_least` of
    /// them, and then whatever else arrives within a second. (tansu's end offsets are not
    /// exact for batched writes, so the reader does not rely on them.)
    pub fn read_all(&self, topic: &str, at_least: usize) -> Vec<(i32, i64, String, String)> {
        let consumer = self.consumer("reader");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut list = TopicPartitionList::new();
        for &p in &partitions {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Instant::now();
        loop {
            if out.len() >= at_least && last.elapsed() > Duration::from_secs(1) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "read only {} of at least {at_least} records of {topic}",
                out.len()
            );
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.expect("a record");
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            out.push((m.partition(), m.offset(), text(m.key()), text(m.payload())));
            last = Instant::now();
        }
    }

    /// Committed offsets of `group` for `topic`'s partitions `0..partitions`.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let consumer = self.consumer(group);
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect()
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
