//! Where a Kafka source starts reading a partition (Flink's `OffsetsInitializer`), resolved
//! to a concrete offset when the partition is assigned, so that a checkpoint taken before
//! the first record still names the exact position.

use super::split::TopicPartition;
use crate::ConnectorError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Where reading a partition starts when no checkpoint says where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartingOffsets {
    /// The first record the partition still holds.
    Earliest,
    /// The partition's end when the partition is assigned: only records written later.
    Latest,
    /// The offsets committed for the source's consumer group; a partition without one
    /// starts at `reset` (Flink's `committedOffsets(OffsetResetStrategy)`).
    Committed {
        /// Where a partition without a committed offset starts: `Earliest` or `Latest`.
        reset: Reset,
    },
    /// The first record whose timestamp is at or after this one (ms since the epoch); the
    /// partition's end if there is none.
    Timestamp(i64),
}

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// At the first record it holds.
    Earliest,
    /// At its end.
    Latest,
    /// Nowhere: the job fails, naming the partition (Flink's `OffsetResetStrategy.NONE`).
    Fail,
}

/// How long a metadata or offset request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The low and high offsets of `tp`: its first record and one past its last.
pub(crate) fn partition_bounds(
    consumer: &BaseConsumer,
    tp: &TopicPartition,
) -> Result<(i64, i64), ConnectorError> {
    consumer
        .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
        .map_err(|e| ConnectorError::kafka(format!("read the offsets of partition {tp}"), e))
}

impl StartingOffsets {
    /// The offsets at which the partitions `tps` start, in their order.
    pub(crate) fn resolve(
        &self,
        consumer: &BaseConsumer,
        tps: &[TopicPartition],
    ) -> Result<Vec<i64>, ConnectorError> {
        match self {
            StartingOffsets::Earliest => tps
                .iter()
                .map(|tp| partition_bounds(consumer, tp).map(|(low, _)| low))
                .collect(),
            StartingOffsets::Latest => tps
                .iter()
                .map(|tp| partition_bounds(consumer, tp).map(|(_, high)| high))
                .collect(),
            StartingOffsets::Timestamp(ts) => {
                let list = list_of(tps, Offset::Offset(*ts))?;
                let found = consumer
                    .offsets_for_times(list, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        ConnectorError::kafka(format!("look up the offsets for time {ts}"), e)
                    })?;
                tps.iter()
                    .map(|tp| match offset_in(&found, tp) {
                        Some(Offset::Offset(o)) => Ok(o),
                        // No record at or after the time: start at the end.
                        _ => partition_bounds(consumer, tp).map(|(_, high)| high),
                    })
                    .collect()
            }
            StartingOffsets::Committed { reset } => {
                let list = list_of(tps, Offset::Invalid)?;
                let committed = consumer
                    .committed_offsets(list, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        ConnectorError::kafka("read the consumer group's committed offsets", e)
                    })?;
                tps.iter()
                    .map(|tp| match (offset_in(&committed, tp), reset) {
                        (Some(Offset::Offset(o)), _) => Ok(o),
                        (_, Reset::Earliest) => partition_bounds(consumer, tp).map(|b| b.0),
                        (_, Reset::Latest) => partition_bounds(consumer, tp).map(|b| b.1),
                        (_, Reset::Fail) => Err(ConnectorError::Config {
                            connector: "kafka source",
                            message: format!(
                                "partition {tp} has no committed offset for the consumer group, and the starting offsets allow no reset; use StartingOffsets::Committed {{ reset: Reset::Earliest }} or Latest"
                            ),
                        }),
                    })
                    .collect()
            }
        }
    }
}

/// A partition list of `tps`, each at `offset`.
pub(crate) fn list_of(
    tps: &[TopicPartition],
    offset: Offset,
) -> Result<TopicPartitionList, ConnectorError> {
    let mut list = TopicPartitionList::with_capacity(tps.len());
    for tp in tps {
        list.add_partition_offset(&tp.topic, tp.partition, offset)
            .map_err(|e| ConnectorError::kafka(format!("name partition {tp}"), e))?;
    }
    Ok(list)
}

fn offset_in(list: &TopicPartitionList, tp: &TopicPartition) -> Option<Offset> {
    list.find_partition(&tp.topic, tp.partition)
        .map(|e| e.offset())
}
