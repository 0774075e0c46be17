//! A Kafka source reader: the partitions one subtask owns, read with one librdkafka
//! consumer polled on the task's thread.
//!
//! **Ownership.** A partition belongs to the reader [`split_owner`] names, a fixed function
//! of the partition and the parallelism (Flink's assignment), so readers need no
//! coordinator: each discovers the topics' partitions itself and takes its own. Positions
//! are checkpointed as union state: after a restore, at any parallelism, every reader sees
//! every checkpointed partition, resumes those it owns, and knows that a partition missing
//! from the checkpoint is new. Flink's enumerator keeps the set of known partitions in its
//! own state; here the checkpoint of the readers is that set.
//!
//! **Positions.** A partition's start is resolved to a concrete offset when it is assigned,
//! so a checkpoint never holds "latest" or "committed", which would mean something else
//! after a restore. Partitions present at the start begin at the [`StartingOffsets`];
//! partitions found later, and after a restore partitions missing from the checkpoint,
//! begin at their first record, as Flink's newly discovered partitions do.
//!
//! **Polling.** The reader never blocks on records: librdkafka fetches in its own threads
//! and a poll takes what has arrived. Discovery (a metadata request) runs at the start and
//! every discovery interval. Offsets go to the consumer group asynchronously when a
//! checkpoint completes; a failed commit is logged and the next one catches up, since the
//! positions Weir restores from are in its checkpoint, not in Kafka.

use super::deserializer::KafkaRecord;
use super::offsets::{partition_bounds, StartingOffsets, REQUEST_TIMEOUT};
use super::source::{SourceConfig, Subscription};
use super::split::{split_owner, PartitionSplit, TopicPartition};
use crate::ConnectorError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use weir_api::source::{decode_split, encode_split, SourceContext};
use weir_api::split_watermarks::{SplitWatermarks, WatermarkUpdate};
use weir_runtime::checkpoint::CheckpointNotice;
use weir_runtime::source::{PollStatus, Redistribution, SourceOutput, SourceReader};
use weir_runtime::{Result, RuntimeError, Watermark, WatermarkStatus, NO_TIMESTAMP};

/// Records taken per poll at most, so the task gets back to its mailbox often.
const RECORDS_PER_POLL: usize = 4096;

/// A partition this reader reads.
struct OwnedSplit {
    split: PartitionSplit,
    /// Read to its stopping offset.
    finished: bool,
    /// Its handle in the watermark generators.
    watermark: usize,
}

/// Reads the partitions of one source subtask.
pub(crate) struct KafkaReader<T> {
    consumer: BaseConsumer,
    config: Arc<SourceConfig<T>>,
    subtask: u32,
    parallelism: u32,
    splits: Vec<OwnedSplit>,
    /// Index into `splits` by partition.
    index: HashMap<TopicPartition, usize>,
    /// Every partition seen so far (by any reader's checkpoint or by discovery); one that
    /// is not here when discovered is new.
    known: HashSet<TopicPartition>,
    /// Positions from the checkpoint, of every reader, not yet claimed.
    restored: HashMap<TopicPartition, PartitionSplit>,
    next_discovery: Option<Instant>,
    /// Positions snapshotted per checkpoint, committed to the group when it completes.
    pending_commits: BTreeMap<u64, Vec<(TopicPartition, i64)>>,
    watermarks: Option<SplitWatermarks<T>>,
}

impl<T: 'static> KafkaReader<T> {
    /// Connects, discovers the partitions this reader owns and assigns them.
    pub(crate) fn start(
        config: Arc<SourceConfig<T>>,
        ctx: &SourceContext,
        watermarks: Option<SplitWatermarks<T>>,
    ) -> std::result::Result<Self, ConnectorError> {
        let mut client = ClientConfig::new();
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| ConnectorError::kafka("create a consumer", e))?;
        let restored_splits = ctx
            .restored_splits
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|b| decode_split::<PartitionSplit>(b))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| ConnectorError::Config {
                connector: "kafka source",
                message: format!("cannot read the checkpointed partition positions: {e}"),
            })?;
        let known = restored_splits
            .iter()
            .map(|s| s.partition.clone())
            .collect();
        // Each checkpointed partition is resumed by its owner alone.
        let parallelism = ctx.parallelism.max(1);
        let restored = restored_splits
            .into_iter()
            .filter(|s| split_owner(&s.partition, parallelism) == ctx.subtask)
            .map(|s| (s.partition.clone(), s))
            .collect();
        let mut reader = KafkaReader {
            consumer,
            subtask: ctx.subtask,
            parallelism,
            splits: Vec::new(),
            index: HashMap::new(),
            known,
            restored,
            next_discovery: None,
            pending_commits: BTreeMap::new(),
            watermarks,
            config,
        };
        // Partitions present now start at the starting offsets, unless restored.
        let is_restore = ctx.restored_splits.is_some();
        reader.discover(if is_restore {
            NewPartitions::Earliest
        } else {
            NewPartitions::Starting
        })?;
        info!(
            subtask = reader.subtask,
            partitions = reader.splits.len(),
            "kafka source reader started"
        );
        Ok(reader)
    }

    /// The partitions the subscription names now.
    fn list_partitions(&self) -> std::result::Result<Vec<TopicPartition>, ConnectorError> {
        let mut found = Vec::new();
        match &self.config.subscription {
            Subscription::Topics(topics) => {
                for topic in topics {
                    let metadata = self
                        .consumer
                        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
                        .map_err(|e| {
                            ConnectorError::kafka(
                                format!("read the metadata of topic '{topic}'"),
                                e,
                            )
                        })?;
                    for t in metadata.topics() {
                        if let Some(err) = t.error() {
                            return Err(ConnectorError::Config {
                                connector: "kafka source",
                                message: format!(
                                    "topic '{topic}' cannot be read: {:?} (does it exist?)",
                                    RDKafkaErrorCode::from(err)
                                ),
                            });
                        }
                        found.extend(t.partitions().iter().map(|p| TopicPartition {
                            topic: t.name().to_string(),
                            partition: p.id(),
                        }));
                    }
                }
            }
            Subscription::Pattern(pattern) => {
                let metadata = self
                    .consumer
                    .fetch_metadata(None, REQUEST_TIMEOUT)
                    .map_err(|e| ConnectorError::kafka("list the cluster's topics", e))?;
                for t in metadata.topics() {
                    if t.error().is_none() && pattern.is_match(t.name()) {
                        found.extend(t.partitions().iter().map(|p| TopicPartition {
                            topic: t.name().to_string(),
                            partition: p.id(),
                        }));
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Finds partitions not known yet and assigns those this reader owns.
    fn discover(&mut self, new: NewPartitions) -> std::result::Result<(), ConnectorError> {
        let listed = self.list_partitions()?;
        let mut fresh: Vec<TopicPartition> = Vec::new();
        let mut resumed: Vec<PartitionSplit> = Vec::new();
        for tp in listed {
            if split_owner(&tp, self.parallelism) != self.subtask || self.index.contains_key(&tp) {
                continue;
            }
            if let Some(split) = self.restored.remove(&tp) {
                resumed.push(split);
            } else if self.known.insert(tp.clone()) {
                fresh.push(tp);
            }
        }
        let starting = match new {
            NewPartitions::Starting => &self.config.starting,
            NewPartitions::Earliest => &StartingOffsets::Earliest,
        };
        let offsets = starting.resolve(&self.consumer, &fresh)?;
        for (tp, next_offset) in fresh.into_iter().zip(offsets) {
            let stopping_offset = if self.config.bounded {
                Some(partition_bounds(&self.consumer, &tp)?.1)
            } else {
                None
            };
            resumed.push(PartitionSplit {
                partition: tp,
                next_offset,
                stopping_offset,
            });
        }
        if resumed.is_empty() {
            return self.schedule_discovery();
        }
        let mut assign = Vec::new();
        for split in resumed {
            debug!(subtask = self.subtask, partition = %split.partition, offset = split.next_offset, "assigned");
            let finished = split
                .stopping_offset
                .is_some_and(|s| split.next_offset >= s);
            let watermark = match &mut self.watermarks {
                Some(w) => {
                    let h = w.add_split();
                    if finished {
                        w.remove_split(h);
                    }
                    h
                }
                None => 0,
            };
            if !finished {
                assign.push((split.partition.clone(), split.next_offset));
            }
            self.index
                .insert(split.partition.clone(), self.splits.len());
            self.splits.push(OwnedSplit {
                split,
                finished,
                watermark,
            });
        }
        if !assign.is_empty() {
            let mut list = rdkafka::TopicPartitionList::with_capacity(assign.len());
            for (tp, offset) in &assign {
                list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                    .map_err(|e| ConnectorError::kafka(format!("name partition {tp}"), e))?;
            }
            self.consumer
                .incremental_assign(&list)
                .map_err(|e| ConnectorError::kafka("assign partitions", e))?;
        }
        self.schedule_discovery()
    }

    fn schedule_discovery(&mut self) -> std::result::Result<(), ConnectorError> {
        self.next_discovery = self.config.discovery_interval.map(|d| Instant::now() + d);
        Ok(())
    }

    /// Stops reading a partition that reached its stopping offset.
    fn finish_split(&mut self, i: usize) -> Result<()> {
        let s = &mut self.splits[i];
        if s.finished {
            return Ok(());
        }
        s.finished = true;
        if let Some(w) = &mut self.watermarks {
            w.remove_split(s.watermark);
        }
        let tp = &s.split.partition;
        debug!(subtask = self.subtask, partition = %tp, "partition read to its stopping offset");
        let list = super::offsets::list_of(std::slice::from_ref(tp), Offset::Invalid)
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        self.consumer.incremental_unassign(&list).map_err(|e| {
            RuntimeError::Other(ConnectorError::kafka(format!("unassign {tp}"), e).to_string())
        })
    }

    fn all_finished(&self) -> bool {
        self.splits.iter().all(|s| s.finished)
    }

    /// Emits what the watermark generators say changed.
    fn emit_watermarks(&mut self, out: &mut SourceOutput<'_, T>) -> Result<()> {
        let Some(w) = &mut self.watermarks else {
            return Ok(());
        };
        w.on_periodic_emit();
        match w.update() {
            Some(WatermarkUpdate::Watermark(wm)) => out.emit_watermark(Watermark(wm)),
            Some(WatermarkUpdate::Idle) => out.emit_watermark_status(WatermarkStatus::Idle),
            Some(WatermarkUpdate::Active) => out.emit_watermark_status(WatermarkStatus::Active),
            None => Ok(()),
        }
    }
}

/// Where partitions that discovery finds (and no checkpoint holds) start.
#[derive(Clone, Copy)]
enum NewPartitions {
    /// At the source's starting offsets: partitions present when the job first starts.
    Starting,
    /// At their first record: partitions that appeared later.
    Earliest,
}

/// True for errors a consumer recovers from by itself (brokers down for a while).
fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::PartitionEOF
        )
    )
}

impl<T: 'static> SourceReader<T> for KafkaReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        if self.next_discovery.is_some_and(|at| Instant::now() >= at) {
            self.discover(NewPartitions::Earliest)
                .map_err(|e| RuntimeError::Other(e.to_string()))?;
        }
        let mut taken = 0;
        while taken < RECORDS_PER_POLL {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) if is_transient(&e) => {
                    warn!(subtask = self.subtask, error = %e, "kafka consumer");
                    break;
                }
                Some(Err(e)) => {
                    return Err(RuntimeError::Other(
                        ConnectorError::kafka("read records", e).to_string(),
                    ))
                }
                Some(Ok(m)) => m,
            };
            taken += 1;
            let tp = TopicPartition {
                topic: message.topic().to_string(),
                partition: message.partition(),
            };
            let Some(&i) = self.index.get(&tp) else {
                continue;
            };
            let offset = message.offset();
            let s = &mut self.splits[i];
            if s.finished || offset < s.split.next_offset {
                continue;
            }
            if s.split.stopping_offset.is_some_and(|stop| offset >= stop) {
                drop(message);
                self.finish_split(i)?;
                continue;
            }
            let record = KafkaRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset,
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                value: message.payload(),
            };
            let value = self.config.deserializer.deserialize(&record).map_err(|e| {
                RuntimeError::Other(format!(
                    "kafka source: cannot deserialize the record at offset {offset} of partition {tp}: {e}"
                ))
            })?;
            s.split.next_offset = offset + 1;
            let reached_end = s.split.stopping_offset == Some(offset + 1);
            let handle = s.watermark;
            if let Some(value) = value {
                match &mut self.watermarks {
                    Some(w) => {
                        let ts = w.timestamp_of(&value, record.timestamp);
                        w.on_event(handle, &value, ts);
                        out.collect_with_timestamp(value, ts)?;
                    }
                    None => {
                        out.collect_with_timestamp(value, record.timestamp.unwrap_or(NO_TIMESTAMP))?
                    }
                }
            }
            drop(message);
            if reached_end {
                self.finish_split(i)?;
            }
        }
        self.emit_watermarks(out)?;
        Ok(if self.config.bounded && self.all_finished() {
            PollStatus::Finished
        } else if taken > 0 {
            PollStatus::MoreAvailable
        } else {
            PollStatus::NothingAvailable
        })
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>> {
        if self.config.commit_offsets {
            let positions = self
                .splits
                .iter()
                .map(|s| (s.split.partition.clone(), s.split.next_offset))
                .collect();
            self.pending_commits.insert(checkpoint_id, positions);
        }
        // Restored partitions of this reader that discovery has not listed again (a topic
        // that is away for a while) keep their position in the checkpoint.
        self.splits
            .iter()
            .map(|s| &s.split)
            .chain(self.restored.values())
            .map(encode_split)
            .collect()
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<()> {
        let CheckpointNotice::Complete(id) = notice else {
            if let CheckpointNotice::Aborted(id) = notice {
                self.pending_commits.remove(&id);
            }
            return Ok(());
        };
        let Some(positions) = self.pending_commits.remove(&id) else {
            return Ok(());
        };
        // Older checkpoints are subsumed by this one.
        self.pending_commits.retain(|&k, _| k > id);
        if positions.is_empty() {
            return Ok(());
        }
        let mut list = rdkafka::TopicPartitionList::with_capacity(positions.len());
        for (tp, offset) in &positions {
            if list
                .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .is_err()
            {
                return Ok(());
            }
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            warn!(subtask = self.subtask, checkpoint = id, error = %e, "cannot commit offsets to the consumer group");
        }
        Ok(())
    }

    fn split_redistribution(&self) -> Redistribution {
        Redistribution::Union
    }

    fn close(&mut self) -> Result<()> {
        let _ = self.consumer.unassign();
        Ok(())
    }
}
