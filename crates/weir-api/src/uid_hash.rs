//! Default operator uids from the topology (Flink's `StreamGraphHasherV2`, in Weir's form).
//!
//! An operator without a user uid gets one computed from its place in the graph: its index
//! in a breadth-first walk from the sources (sources in creation order, outputs in edge
//! order, a node once all its inputs were visited), its kind, how many of its outputs are
//! chained to it, and, for each input in order, the uid hash of the input's producer, the
//! input index and the partitioner. The same program therefore gives the same uids in every
//! process that builds it (a TaskManager's worker rebuilding the graph finds the operators
//! the JobManager assigned by these uids), and a savepoint taken without explicit uids
//! restores into the same topology. Changing the topology upstream of an operator, or its
//! chaining, changes its uid, as in Flink: set `uid` on stateful operators that must survive
//! such changes.
//!
//! The hash is 128-bit FNV-1a, written as 32 hex digits.

use crate::graph::{NodeKind, StreamEdge, StreamNode};
use std::collections::VecDeque;
use weir_core::PartitionerKind;

const FNV_OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const FNV_PRIME: u128 = 0x0000000001000000000000000000013b;

struct Fnv(u128);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
}

// The tags below are part of every generated uid: never renumber them.
fn kind_tag(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::Source => 1,
        NodeKind::Operator => 2,
        NodeKind::Sink => 3,
    }
}

fn partitioner_tag(k: PartitionerKind) -> u8 {
    match k {
        PartitionerKind::Forward => 1,
        PartitionerKind::Rebalance => 2,
        PartitionerKind::Rescale => 3,
        PartitionerKind::Shuffle => 4,
        PartitionerKind::Broadcast => 5,
        PartitionerKind::Global => 6,
        PartitionerKind::Hash => 7,
        PartitionerKind::Custom => 8,
    }
}

/// The generated uid hash of every node (indexed by node id), given the edges' partitioners
/// and which edges are chained.
pub(crate) fn uid_hashes(
    nodes: &[StreamNode],
    edges: &[StreamEdge],
    partitioners: &[PartitionerKind],
    chained: &[bool],
) -> Vec<u128> {
    let n = nodes.len();
    let mut remaining_inputs = vec![0usize; n];
    for e in edges {
        remaining_inputs[e.target.0 as usize] += 1;
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| remaining_inputs[i] == 0).collect();
    let mut hashes: Vec<Option<u128>> = vec![None; n];
    let mut index = 0u32;
    while let Some(i) = queue.pop_front() {
        let mut h = Fnv(FNV_OFFSET);
        h.u32(index);
        index += 1;
        h.bytes(&[kind_tag(&nodes[i].kind)]);
        let chained_outputs = edges
            .iter()
            .zip(chained)
            .filter(|(e, &c)| c && e.source.0 as usize == i)
            .count();
        h.u32(chained_outputs as u32);
        for (e, &p) in edges.iter().zip(partitioners) {
            if e.target.0 as usize == i {
                // Inputs are visited first, so their hashes exist.
                let input = hashes[e.source.0 as usize].unwrap_or_default();
                h.bytes(&input.to_le_bytes());
                h.bytes(&[e.input_index, partitioner_tag(p)]);
                h.bytes(e.side_output.as_deref().unwrap_or("").as_bytes());
            }
        }
        hashes[i] = Some(h.0);
        for e in edges.iter().filter(|e| e.source.0 as usize == i) {
            let t = e.target.0 as usize;
            remaining_inputs[t] -= 1;
            if remaining_inputs[t] == 0 {
                queue.push_back(t);
            }
        }
    }
    // Every node is reached: the graph is acyclic and built in topological order.
    hashes.into_iter().map(Option::unwrap_or_default).collect()
}

/// The uid of a node with generated hash `hash`.
pub(crate) fn uid_of(hash: u128) -> String {
    format!("{hash:032x}")
}
