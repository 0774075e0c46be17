//! Kafka: a source that reads topics with its positions in Weir's checkpoints (Flink's
//! `KafkaSource`), and a sink with Flink's three delivery guarantees (Flink's `KafkaSink`),
//! both on librdkafka (the `rdkafka` crate, built from its bundled sources).
//!
//! - [`KafkaSource`]: partitions as splits, owned by readers as Flink assigns them, new
//!   partitions and topics discovered while the job runs, starting offsets (earliest,
//!   latest, committed, from a timestamp), bounded mode, per-partition watermarks, offsets
//!   committed to the consumer group when checkpoints complete.
//! - Deserializers: [`RawBytes`], [`Utf8Strings`], [`Json`], or a closure over the whole
//!   [`KafkaRecord`].
//! - [`KafkaSink`]: a [`KafkaRecordSerializer`] (a closure) makes each element a
//!   [`ProducerRecord`]; `None`, `AtLeastOnce` (flush on every barrier) and `ExactlyOnce`
//!   (a transaction per checkpoint, see [`transactional`]).

mod deserializer;
mod offsets;
mod producer;
mod reader;
mod sink;
mod source;
mod split;
pub mod transactional;

pub use deserializer::{Json, KafkaRecord, KafkaRecordDeserializer, RawBytes, Utf8Strings};
pub use offsets::{Reset, StartingOffsets};
pub use producer::ProducerRecord;
pub use sink::{KafkaRecordSerializer, KafkaSink, KafkaSinkBuilder};
pub use source::{KafkaSource, KafkaSourceBuilder};
pub use split::{split_owner, PartitionSplit, TopicPartition};
