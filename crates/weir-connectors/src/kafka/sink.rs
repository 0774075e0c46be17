//! The Kafka sink (Flink's `KafkaSink`), its builder, and the writer for the
//! `None` and `AtLeastOnce` guarantees.

use super::producer::{ProducerRecord, SinkProducer};
use super::transactional::TransactionalWriter;
use crate::{ConnectorError, DeliveryGuarantee};
use std::sync::Arc;
use weir_api::functions::UserError;
use weir_api::sink::{CheckpointNotice, Sink, SinkContext, SinkWriter};

/// Makes a Kafka record of a stream element (Flink's `KafkaRecordSerializationSchema`).
pub trait KafkaRecordSerializer<T>: Send + Sync + 'static {
    /// The record for `element`, whose event timestamp is `timestamp`.
    fn serialize(&self, element: &T, timestamp: Option<i64>) -> Result<ProducerRecord, UserError>;
}

impl<T, F> KafkaRecordSerializer<T> for F
where
    F: Fn(&T, Option<i64>) -> Result<ProducerRecord, UserError> + Send + Sync + 'static,
{
    fn serialize(&self, element: &T, timestamp: Option<i64>) -> Result<ProducerRecord, UserError> {
        self(element, timestamp)
    }
}

/// What every writer of a sink is configured with.
pub(crate) struct SinkConfig<T> {
    pub properties: Vec<(String, String)>,
    pub serializer: Arc<dyn KafkaRecordSerializer<T>>,
    pub guarantee: DeliveryGuarantee,
    pub transactional_id_prefix: String,
}

/// Writes records to Kafka (Flink's `KafkaSink`) with a [`DeliveryGuarantee`]:
///
/// - `None`: records are sent as they come; what librdkafka holds when a task fails is
///   lost.
/// - `AtLeastOnce` (the default): every checkpoint waits until the brokers acknowledged
///   every record sent before its barrier; a restart may send records again.
/// - `ExactlyOnce`: Kafka transactions, committed when the checkpoint after them
///   completes; consumers that read committed records see each record once. See
///   [`transactional`](super::transactional) for the ids and what a restore does.
///
/// A record that cannot be delivered (after librdkafka's own retries, up to
/// `delivery.timeout.ms`) fails the job with the topic and partition named.
///
/// ```no_run
/// use weir_connectors::kafka::{KafkaSink, ProducerRecord};
/// use weir_connectors::DeliveryGuarantee;
/// # let env = weir_api::StreamExecutionEnvironment::new();
/// # let totals = env.from_collection(vec![("a".to_string(), 1i64)]);
/// let sink = KafkaSink::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .serializer(|(key, total): &(String, i64), _ts| {
///         Ok(ProducerRecord::new("totals", total.to_string()).with_key(key.as_bytes()))
///     })
///     .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
///     .build()
///     .expect("a valid configuration");
/// totals.sink_to(sink, "totals");
/// ```
pub struct KafkaSink<T> {
    config: Arc<SinkConfig<T>>,
}

impl<T: 'static> KafkaSink<T> {
    /// A builder; the bootstrap servers and the serializer are required.
    pub fn builder() -> KafkaSinkBuilder<T> {
        KafkaSinkBuilder {
            bootstrap_servers: None,
            serializer: None,
            guarantee: DeliveryGuarantee::default(),
            transactional_id_prefix: None,
            properties: Vec::new(),
        }
    }
}

/// Configures a [`KafkaSink`].
pub struct KafkaSinkBuilder<T> {
    bootstrap_servers: Option<String>,
    serializer: Option<Arc<dyn KafkaRecordSerializer<T>>>,
    guarantee: DeliveryGuarantee,
    transactional_id_prefix: Option<String>,
    properties: Vec<(String, String)>,
}

impl<T: 'static> KafkaSinkBuilder<T> {
    /// The brokers to bootstrap from, `host:port[,host:port...]`.
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// Makes records of elements.
    pub fn serializer(mut self, s: impl KafkaRecordSerializer<T>) -> Self {
        self.serializer = Some(Arc::new(s));
        self
    }

    /// The guarantee (default at least once).
    pub fn delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// The prefix of the transactional ids (required for exactly once): unique per job
    /// writing to the same cluster, and the same when the job is restored, so that a
    /// restored job finds the transactions of the job before it.
    pub fn transactional_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.transactional_id_prefix = Some(prefix.into());
        self
    }

    /// Sets a librdkafka producer property (e.g. `compression.type`, `linger.ms`,
    /// `transaction.timeout.ms`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The sink, or what is missing in the configuration.
    pub fn build(self) -> Result<KafkaSink<T>, ConnectorError> {
        let config_error = |message: &str| ConnectorError::Config {
            connector: "kafka sink",
            message: message.into(),
        };
        let servers = self.bootstrap_servers.ok_or_else(|| {
            config_error("no bootstrap servers: call bootstrap_servers(\"host:port\")")
        })?;
        let serializer = self
            .serializer
            .ok_or_else(|| config_error("no serializer: call serializer(...)"))?;
        let prefix = match (self.guarantee, self.transactional_id_prefix) {
            (DeliveryGuarantee::ExactlyOnce, None) => {
                return Err(config_error(
                    "exactly once needs a transactional id prefix: call transactional_id_prefix(...) with a name unique to the job",
                ))
            }
            (_, prefix) => prefix.unwrap_or_default(),
        };
        let mut properties = vec![
            ("bootstrap.servers".to_string(), servers),
            ("client.id".to_string(), "weir-kafka-sink".to_string()),
        ];
        if self.guarantee != DeliveryGuarantee::None {
            // No duplicates from librdkafka's own retries.
            properties.push(("enable.idempotence".into(), "true".into()));
        }
        if self.guarantee == DeliveryGuarantee::ExactlyOnce {
            // Longer than a checkpoint interval and the commit after it, within the
            // brokers' default `transaction.max.timeout.ms`.
            properties.push(("transaction.timeout.ms".into(), "900000".into()));
        }
        properties.extend(self.properties);
        Ok(KafkaSink {
            config: Arc::new(SinkConfig {
                properties,
                serializer,
                guarantee: self.guarantee,
                transactional_id_prefix: prefix,
            }),
        })
    }
}

impl<T: Send + 'static> Sink<T> for KafkaSink<T> {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(match self.config.guarantee {
            DeliveryGuarantee::ExactlyOnce => {
                Box::new(TransactionalWriter::start(self.config.clone(), ctx)?)
            }
            _ => Box::new(FlushingWriter {
                producer: SinkProducer::new(&self.config.properties)?,
                config: self.config.clone(),
                sent: 0,
            }),
        })
    }
}

/// Writes without transactions; with at least once, flushes on every barrier.
struct FlushingWriter<T> {
    producer: SinkProducer,
    config: Arc<SinkConfig<T>>,
    /// Records sent, to serve delivery reports every so often.
    sent: u64,
}

/// Records between two servings of delivery reports.
pub(crate) const SERVE_EVERY: u64 = 1024;

impl<T: Send + 'static> SinkWriter<T> for FlushingWriter<T> {
    fn write(&mut self, value: T, timestamp: Option<i64>) -> Result<(), UserError> {
        let record = self.config.serializer.serialize(&value, timestamp)?;
        self.producer.send(&record)?;
        self.sent += 1;
        if self.sent.is_multiple_of(SERVE_EVERY) {
            self.producer.serve();
            self.producer.check()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        Ok(self.producer.flush()?)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        if self.config.guarantee == DeliveryGuarantee::AtLeastOnce {
            self.producer.flush()?;
        }
        Ok(Vec::new())
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        if notice == CheckpointNotice::Final {
            self.producer.flush()?;
        }
        Ok(())
    }
}
