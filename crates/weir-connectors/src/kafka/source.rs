//! The Kafka source (Flink's `KafkaSource`) and its builder.

use super::deserializer::KafkaRecordDeserializer;
use super::offsets::StartingOffsets;
use super::reader::KafkaReader;
use crate::ConnectorError;
use regex::Regex;
use std::sync::Arc;
use std::time::Duration;
use weir_api::functions::UserError;
use weir_api::source::{Boundedness, Source, SourceContext};
use weir_api::split_watermarks::SplitWatermarks;
use weir_api::watermark::WatermarkStrategy;
use weir_runtime::source::SourceReader;

/// Which topics the source reads.
#[derive(Clone, Debug)]
pub(crate) enum Subscription {
    /// These topics; each must exist when the job starts.
    Topics(Vec<String>),
    /// Every topic whose whole name matches, also topics created while the job runs.
    Pattern(Regex),
}

/// What every reader of a source is configured with.
pub(crate) struct SourceConfig<T> {
    /// librdkafka properties, `bootstrap.servers` and `group.id` included.
    pub properties: Vec<(String, String)>,
    pub subscription: Subscription,
    pub starting: StartingOffsets,
    /// Stop each partition at its end as of its discovery.
    pub bounded: bool,
    pub deserializer: Arc<dyn KafkaRecordDeserializer<T>>,
    /// How often readers look for new partitions (and, with a pattern, topics); `None`
    /// never after the start.
    pub discovery_interval: Option<Duration>,
    /// Commit the checkpointed offsets to the consumer group when a checkpoint completes.
    pub commit_offsets: bool,
}

/// Reads Kafka topics (Flink's `KafkaSource`): each partition is a split, owned by one
/// reader (Flink's assignment of partitions to readers), read from the position in the
/// checkpoint after a restore, else from the [`StartingOffsets`]. Partitions and topics
/// that appear while the job runs are found by periodic discovery and read from their
/// start. With [`KafkaSourceBuilder::bounded`] every partition stops at its end as of the
/// job's start and the source ends.
///
/// Each record's Kafka timestamp becomes its event timestamp. Given a watermark strategy
/// through `env.from_source_with_watermarks`, the readers generate watermarks per
/// partition and emit the smallest of their active partitions (Flink's per-split
/// watermarks); a reader without partitions is idle.
///
/// ```no_run
/// use weir_connectors::kafka::{KafkaSource, StartingOffsets, Utf8Strings};
/// # let env = weir_api::StreamExecutionEnvironment::new();
/// let source = KafkaSource::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .topics(["orders"])
///     .group_id("order-totals")
///     .starting_offsets(StartingOffsets::Earliest)
///     .deserializer(Utf8Strings)
///     .build()
///     .expect("a valid configuration");
/// let lines = env.from_source(source, "orders");
/// ```
pub struct KafkaSource<T> {
    config: Arc<SourceConfig<T>>,
}

impl<T> Clone for KafkaSource<T> {
    fn clone(&self) -> Self {
        KafkaSource {
            config: self.config.clone(),
        }
    }
}

impl<T: 'static> KafkaSource<T> {
    /// A builder; `bootstrap_servers`, the topics and the deserializer are required.
    pub fn builder() -> KafkaSourceBuilder<T> {
        KafkaSourceBuilder {
            bootstrap_servers: None,
            topics: Vec::new(),
            pattern: None,
            group_id: None,
            starting: StartingOffsets::Earliest,
            bounded: false,
            deserializer: None,
            discovery_interval: Some(Duration::from_secs(30)),
            commit_offsets: true,
            properties: Vec::new(),
        }
    }
}

/// Configures a [`KafkaSource`].
pub struct KafkaSourceBuilder<T> {
    bootstrap_servers: Option<String>,
    topics: Vec<String>,
    pattern: Option<String>,
    group_id: Option<String>,
    starting: StartingOffsets,
    bounded: bool,
    deserializer: Option<Arc<dyn KafkaRecordDeserializer<T>>>,
    discovery_interval: Option<Duration>,
    commit_offsets: bool,
    properties: Vec<(String, String)>,
}

impl<T: 'static> KafkaSourceBuilder<T> {
    /// The brokers to bootstrap from, `host:port[,host:port...]`.
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// Reads these topics.
    pub fn topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Reads every topic whose whole name matches the regular expression `pattern`,
    /// also topics created later (found by partition discovery).
    pub fn topic_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// The consumer group: offsets are committed to it when checkpoints complete (for
    /// monitoring, and for [`StartingOffsets::Committed`]); the source does not use the
    /// group's partition assignment.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// Where partitions start without a checkpoint (default: earliest).
    pub fn starting_offsets(mut self, starting: StartingOffsets) -> Self {
        self.starting = starting;
        self
    }

    /// Reads each partition up to its end as of the start of the job (for partitions
    /// found later: as of their discovery), then ends (Flink's
    /// `setBounded(OffsetsInitializer.latest())`). A bounded source discovers partitions
    /// once, at the start.
    pub fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }

    /// Makes elements of records.
    pub fn deserializer(mut self, d: impl KafkaRecordDeserializer<T>) -> Self {
        self.deserializer = Some(Arc::new(d));
        self
    }

    /// How often to look for new partitions and topics (default 30 s); `None` only at
    /// the start.
    pub fn partition_discovery_interval(mut self, interval: Option<Duration>) -> Self {
        self.discovery_interval = interval;
        self
    }

    /// Whether to commit offsets to the consumer group when a checkpoint completes
    /// (default true, with a group id).
    pub fn commit_offsets_on_checkpoint(mut self, commit: bool) -> Self {
        self.commit_offsets = commit;
        self
    }

    /// Sets a librdkafka consumer property (e.g. `security.protocol`, `fetch.max.bytes`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The source, or what is missing or wrong in the configuration.
    pub fn build(self) -> Result<KafkaSource<T>, ConnectorError> {
        let config_error = |message: String| ConnectorError::Config {
            connector: "kafka source",
            message,
        };
        let servers = self.bootstrap_servers.ok_or_else(|| {
            config_error("no bootstrap servers: call bootstrap_servers(\"host:port\")".into())
        })?;
        let subscription = match (self.topics.is_empty(), self.pattern) {
            (false, None) => Subscription::Topics(self.topics),
            (true, Some(p)) => Subscription::Pattern(
                Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| config_error(format!("bad topic pattern '{p}': {e}")))?,
            ),
            (true, None) => {
                return Err(config_error(
                    "no topics: call topics([...]) or topic_pattern(...)".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(config_error(
                    "both topics and a topic pattern are set; choose one".into(),
                ))
            }
        };
        let deserializer = self.deserializer.ok_or_else(|| {
            config_error("no deserializer: call deserializer(Utf8Strings) or another".into())
        })?;
        let commit_offsets = self.commit_offsets && self.group_id.is_some();
        if self.group_id.is_none() && matches!(self.starting, StartingOffsets::Committed { .. }) {
            return Err(config_error(
                "starting from committed offsets needs a consumer group: call group_id(...)".into(),
            ));
        }
        let group = self
            .group_id
            .unwrap_or_else(|| format!("weir-kafka-source-{}", std::process::id()));
        let mut properties = vec![
            ("bootstrap.servers".to_string(), servers),
            ("group.id".to_string(), group),
            ("enable.auto.commit".to_string(), "false".to_string()),
            ("enable.auto.offset.store".to_string(), "false".to_string()),
            ("enable.partition.eof".to_string(), "false".to_string()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("client.id".to_string(), "weir-kafka-source".to_string()),
        ];
        properties.extend(self.properties);
        Ok(KafkaSource {
            config: Arc::new(SourceConfig {
                properties,
                subscription,
                starting: self.starting,
                bounded: self.bounded,
                deserializer,
                discovery_interval: if self.bounded {
                    None
                } else {
                    self.discovery_interval
                },
                commit_offsets,
            }),
        })
    }
}

impl<T: Send + 'static> Source<T> for KafkaSource<T> {
    fn boundedness(&self) -> Boundedness {
        if self.config.bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(KafkaReader::start(
            self.config.clone(),
            ctx,
            None,
        )?))
    }

    fn generates_split_watermarks(&self) -> bool {
        true
    }

    fn create_reader_with_watermarks(
        &self,
        ctx: &SourceContext,
        strategy: &WatermarkStrategy<T>,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let watermarks = SplitWatermarks::new(strategy.clone(), ctx.auto_watermark_interval_ms);
        Ok(Box::new(KafkaReader::start(
            self.config.clone(),
            ctx,
            Some(watermarks),
        )?))
    }
}
