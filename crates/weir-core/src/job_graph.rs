//! The JobGraph: chains of operators (vertices) and the partitioned edges between them.
//!
//! It is plain data: the JobMaster schedules it and TaskManagers deploy it, and the user
//! code of each operator is found again by [`NodeId`] in the job's program (DESIGN.md §6).

use crate::config::ExecutionConfig;
use crate::ids::{NodeId, VertexId};
use serde::{Deserialize, Serialize};

/// How records of one edge are distributed over the consumer's subtasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionerKind {
    /// Subtask `i` to subtask `i`; requires equal parallelism; allows chaining.
    Forward,
    /// Round-robin over all consumers.
    Rebalance,
    /// Round-robin over the consumers a producer is locally wired to.
    Rescale,
    /// Uniformly random consumer.
    Shuffle,
    /// Every record to every consumer.
    Broadcast,
    /// Every record to consumer 0.
    Global,
    /// By key group of the record's key.
    Hash,
    /// By a user function of the record's key.
    Custom,
}

impl PartitionerKind {
    /// Pointwise edges wire each producer to a subset of consumers; the rest are all-to-all.
    pub fn is_pointwise(self) -> bool {
        matches!(self, PartitionerKind::Forward | PartitionerKind::Rescale)
    }

    /// The ship strategy name Flink's execution plan prints.
    pub fn ship_strategy(self) -> &'static str {
        match self {
            PartitionerKind::Forward => "FORWARD",
            PartitionerKind::Rebalance => "REBALANCE",
            PartitionerKind::Rescale => "RESCALE",
            PartitionerKind::Shuffle => "SHUFFLE",
            PartitionerKind::Broadcast => "BROADCAST",
            PartitionerKind::Global => "GLOBAL",
            PartitionerKind::Hash => "HASH",
            PartitionerKind::Custom => "CUSTOM",
        }
    }
}

/// One operator inside a vertex's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedOperator {
    /// The StreamGraph node the operator comes from.
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// Stable identity used to find the operator's code and, later, its state.
    pub uid: String,
}

/// A chain of operators that runs as one task per subtask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVertex {
    /// Vertex id, dense from 0.
    pub id: VertexId,
    /// The chain's name: operator names joined by ` -> `.
    pub name: String,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Slot sharing group name.
    pub slot_sharing_group: String,
    /// Operators in the chain, head first (topological order).
    pub operators: Vec<ChainedOperator>,
    /// True if the head is a source.
    pub is_source: bool,
}

impl JobVertex {
    /// The StreamGraph node at the head of the chain.
    pub fn head(&self) -> NodeId {
        self.operators[0].node
    }
}

/// A partitioned connection between two vertices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEdge {
    /// Producing vertex.
    pub source: VertexId,
    /// Consuming vertex.
    pub target: VertexId,
    /// The producing operator inside the source chain.
    pub source_node: NodeId,
    /// The consuming operator (the target chain's head).
    pub target_node: NodeId,
    /// Distribution over the consumer's subtasks.
    pub partitioner: PartitionerKind,
    /// Which input of the consumer this edge feeds (0 or 1 for two-input operators).
    pub input_index: u8,
    /// The side output this edge carries, if not the main output.
    pub side_output: Option<String>,
}

/// A whole job as data: vertices, edges and configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// Vertices, indexed by their id.
    pub vertices: Vec<JobVertex>,
    /// Edges, in creation order; a consumer's input channels follow this order.
    pub edges: Vec<JobEdge>,
    /// Settings.
    pub config: ExecutionConfig,
}

impl JobGraph {
    /// Checks what the runtime relies on when the graph comes from elsewhere (a client over
    /// the network): dense vertex ids, a non-empty chain per vertex, parallelism within
    /// max parallelism, edges between existing vertices and at most 1024 operators per
    /// vertex. Returns the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        if self.vertices.is_empty() {
            return Err("it has no vertices".into());
        }
        for (i, v) in self.vertices.iter().enumerate() {
            if v.id.0 as usize != i {
                return Err(format!("vertex {i} has id {}", v.id.0));
            }
            if v.operators.is_empty() || v.operators.len() > 1024 {
                return Err(format!("vertex {i} has {} operators", v.operators.len()));
            }
            if v.parallelism == 0 || v.parallelism > v.max_parallelism {
                return Err(format!(
                    "vertex {i} has parallelism {} and max parallelism {}",
                    v.parallelism, v.max_parallelism
                ));
            }
        }
        let n = self.vertices.len() as u32;
        for (i, e) in self.edges.iter().enumerate() {
            if e.source.0 >= n || e.target.0 >= n || e.source == e.target {
                return Err(format!(
                    "edge {i} connects vertex {} to vertex {}",
                    e.source.0, e.target.0
                ));
            }
            if e.input_index > 1 {
                return Err(format!("edge {i} feeds input {}", e.input_index));
            }
        }
        Ok(())
    }

    /// The vertex with id `id`.
    pub fn vertex(&self, id: VertexId) -> &JobVertex {
        &self.vertices[id.0 as usize]
    }

    /// Edges entering `v`, in order.
    pub fn inputs_of(&self, v: VertexId) -> impl Iterator<Item = &JobEdge> {
        self.edges.iter().filter(move |e| e.target == v)
    }

    /// Edges leaving `v`, in order.
    pub fn outputs_of(&self, v: VertexId) -> impl Iterator<Item = &JobEdge> {
        self.edges.iter().filter(move |e| e.source == v)
    }

    /// A fingerprint of the graph's structure, as 32 hex digits: its vertices (operators
    /// with their uids, parallelism, max parallelism, slot sharing group) and edges
    /// (partitioners). Processes that build the same program get the same fingerprint; a
    /// changed program, or one that does not build its graph deterministically, another.
    pub fn fingerprint(&self) -> String {
        // Plain data of strings and numbers: encoding it cannot fail.
        let bytes = serde_json::to_vec(&(&self.vertices, &self.edges)).unwrap_or_default();
        let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
        for b in bytes {
            h ^= u128::from(b);
            h = h.wrapping_mul(0x0000000001000000000000000000013b);
        }
        format!("{h:032x}")
    }

    /// Slots the job needs: per slot sharing group, its highest parallelism, summed.
    pub fn required_slots(&self) -> usize {
        let mut groups: std::collections::BTreeMap<&str, u32> = Default::default();
        for v in &self.vertices {
            let e = groups.entry(&v.slot_sharing_group).or_default();
            *e = (*e).max(v.parallelism);
        }
        groups.values().map(|&p| p as usize).sum()
    }
}

/// The consumer subtasks producer subtask `producer` of an edge sends to, in channel order.
///
/// All-to-all edges reach every consumer; pointwise edges follow Flink's
/// `EdgeManagerBuildUtil.connectPointwise`.
pub fn consumers_of(
    kind: PartitionerKind,
    producers: u32,
    consumers: u32,
    producer: u32,
) -> Vec<u32> {
    if !kind.is_pointwise() {
        return (0..consumers).collect();
    }
    if producers == consumers {
        return vec![producer];
    }
    if producers > consumers {
        return (0..consumers)
            .filter(|&c| {
                let start = c as u64 * producers as u64 / consumers as u64;
                let end = (c as u64 + 1) * producers as u64 / consumers as u64;
                (start..end).contains(&(producer as u64))
            })
            .collect();
    }
    let (p, s, t) = (producer as u64, producers as u64, consumers as u64);
    let start = (p * t).div_ceil(s);
    let end = ((p + 1) * t).div_ceil(s);
    (start as u32..end as u32).collect()
}

/// The producer subtasks whose output consumer subtask `consumer` reads, in channel order.
pub fn producers_of(
    kind: PartitionerKind,
    producers: u32,
    consumers: u32,
    consumer: u32,
) -> Vec<u32> {
    (0..producers)
        .filter(|&p| consumers_of(kind, producers, consumers, p).contains(&consumer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_wiring_matches_flink() {
        use PartitionerKind::Rescale;
        assert_eq!(consumers_of(Rescale, 2, 4, 0), vec![0, 1]);
        assert_eq!(consumers_of(Rescale, 2, 4, 1), vec![2, 3]);
        assert_eq!(consumers_of(Rescale, 4, 2, 3), vec![1]);
        assert_eq!(producers_of(Rescale, 4, 2, 0), vec![0, 1]);
        assert_eq!(consumers_of(PartitionerKind::Forward, 3, 3, 2), vec![2]);
        assert_eq!(consumers_of(PartitionerKind::Hash, 3, 2, 2), vec![0, 1]);
        // Every consumer of an uneven pointwise edge has at least one producer.
        for s in 1..7 {
            for t in 1..7 {
                for c in 0..t {
                    assert!(!producers_of(Rescale, s, t, c).is_empty(), "{s}->{t} c{c}");
                }
            }
        }
    }
}
