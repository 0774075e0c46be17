//! A Kafka partition as a source split: its position, where it stops, and which reader
//! owns it.

use serde::{Deserialize, Serialize};

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition, from 0.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A partition's position as a reader checkpoints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSplit {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset of the next record to read.
    pub next_offset: i64,
    /// In bounded mode, the offset at which the split ends (the partition's end when the
    /// split was discovered); `None` for an unbounded split.
    pub stopping_offset: Option<i64>,
}

/// The reader (of `readers`) that reads `partition`: Flink's assignment
/// (`KafkaSourceEnumerator.getSplitOwner`), so that a topic's partitions go round-robin
/// over the readers from a start that depends on the topic, and a partition keeps its
/// reader as long as the parallelism stays the same (also when partitions are added).
pub fn split_owner(partition: &TopicPartition, readers: u32) -> u32 {
    let readers = readers.max(1) as i32;
    let start = (java_string_hash(&partition.topic).wrapping_mul(31) & 0x7FFF_FFFF) % readers;
    ((start + partition.partition.max(0) % readers) % readers) as u32
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, with
/// 32-bit wrap-around.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn java_hash_codes() {
        // Values of "...".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("topic"), 110_546_223);
        assert_eq!(java_string_hash("orders-2026"), -1_815_790_870);
        assert_eq!(java_string_hash("ü€"), 16_176);
    }

    #[test]
    fn partitions_go_round_robin_from_a_topic_dependent_start() {
        // As Java computes it: ((110546223 * 31) & 0x7fffffff) % 4 == 1.
        let start = split_owner(&tp("topic", 0), 4);
        assert_eq!(start, 1);
        let owners: Vec<u32> = (0..8).map(|p| split_owner(&tp("topic", p), 4)).collect();
        assert_eq!(owners, vec![1, 2, 3, 0, 1, 2, 3, 0]);
        for p in 0..50 {
            assert_eq!(split_owner(&tp("x", p), 1), 0);
            assert!(split_owner(&tp("orders-2026", p), 3) < 3);
        }
    }
}
