//! A librdkafka producer as the Kafka sink uses it: sends that wait while librdkafka's
//! queue is full (backpressure), and delivery failures kept until the sink looks.

use crate::ConnectorError;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A record for Kafka, as a [`KafkaRecordSerializer`](super::KafkaRecordSerializer) makes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the producer's partitioner choose (by key hash).
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` writes a tombstone.
    pub value: Option<Vec<u8>>,
    /// The timestamp (ms since the epoch); `None` uses the time of sending.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with `value`.
    pub fn new(topic: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// With `key`.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// To partition `partition`.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With timestamp `ms`.
    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Delivery reports: the first failure is kept for the sink to raise.
#[derive(Default)]
pub(crate) struct Deliveries {
    first_error: Mutex<Option<String>>,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            use rdkafka::message::Message;
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() {
                *first = Some(format!(
                    "cannot write a record to topic '{}' (partition {}): {e}",
                    m.topic(),
                    m.partition()
                ));
            }
        }
    }
}

/// A producer with its delivery reports.
pub(crate) struct SinkProducer {
    pub producer: BaseProducer<Deliveries>,
    deliveries: Arc<Deliveries>,
}

/// How long librdkafka may keep trying to deliver before a flush gives up waiting.
const FLUSH_WAIT: Duration = Duration::from_secs(60);

impl SinkProducer {
    /// A producer with `properties`.
    pub fn new(properties: &[(String, String)]) -> Result<Self, ConnectorError> {
        let mut config = ClientConfig::new();
        for (k, v) in properties {
            config.set(k, v);
        }
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| ConnectorError::kafka("create a producer", e))?;
        let deliveries = producer.context().clone();
        Ok(SinkProducer {
            producer,
            deliveries,
        })
    }

    /// Queues `record`; while librdkafka's queue is full, serves delivery reports and
    /// waits, so a slow broker slows the job down instead of growing memory.
    pub fn send(&self, record: &ProducerRecord) -> Result<(), ConnectorError> {
        loop {
            let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.topic);
            if let Some(k) = &record.key {
                base = base.key(k.as_slice());
            }
            if let Some(v) = &record.value {
                base = base.payload(v.as_slice());
            }
            if let Some(p) = record.partition {
                base = base.partition(p);
            }
            if let Some(ts) = record.timestamp {
                base = base.timestamp(ts);
            }
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(5));
                    self.check()?;
                }
                Err((e, _)) => {
                    return Err(ConnectorError::kafka(
                        format!("send a record to topic '{}'", record.topic),
                        e,
                    ))
                }
            }
        }
    }

    /// Serves delivery reports without waiting.
    pub fn serve(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Raises the first delivery failure, if any.
    pub fn check(&self) -> Result<(), ConnectorError> {
        let first = self
            .deliveries
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match first {
            None => Ok(()),
            Some(message) => Err(ConnectorError::Config {
                connector: "kafka sink",
                message: format!(
                    "{message} ({} records failed in all)",
                    self.deliveries.failed.load(Ordering::Relaxed)
                ),
            }),
        }
    }

    /// Waits until every queued record is acknowledged (or failed), logging while it
    /// takes long, then raises the first failure.
    pub fn flush(&self) -> Result<(), ConnectorError> {
        loop {
            match self.producer.flush(FLUSH_WAIT) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    tracing::warn!(
                        in_flight = self.producer.in_flight_count(),
                        "kafka sink: still waiting for the brokers to acknowledge records"
                    );
                }
                Err(e) => return Err(ConnectorError::kafka("flush the producer", e)),
            }
        }
        self.check()
    }
}
