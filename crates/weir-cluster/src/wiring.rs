//! How the subtasks of connected vertices are wired: which channels a consumer has and
//! which channel index a producer writes to (the ExecutionGraph's edges).

use weir_core::job_graph::{consumers_of, producers_of};
use weir_core::{JobGraph, VertexId};
use weir_runtime::deploy::InputChannelInfo;

/// The input channels of subtask `subtask` of `vertex`: for each incoming edge in graph
/// order, one channel per connected producer subtask.
pub fn input_channels(graph: &JobGraph, vertex: VertexId, subtask: u32) -> Vec<InputChannelInfo> {
    let target = graph.vertex(vertex);
    let mut out = Vec::new();
    for (i, e) in graph.edges.iter().enumerate() {
        if e.target != vertex {
            continue;
        }
        let producers = graph.vertex(e.source).parallelism;
        for p in producers_of(e.partitioner, producers, target.parallelism, subtask) {
            out.push(InputChannelInfo {
                edge: i,
                input_index: e.input_index,
                producer: p,
            });
        }
    }
    out
}

/// For edge `edge` and producer subtask `producer`: each consumer subtask it sends to, in
/// partition order, with the channel index of this producer in that consumer's input.
pub fn output_targets(graph: &JobGraph, edge: usize, producer: u32) -> Vec<(u32, u32)> {
    let e = &graph.edges[edge];
    let sources = graph.vertex(e.source).parallelism;
    let targets = graph.vertex(e.target).parallelism;
    consumers_of(e.partitioner, sources, targets, producer)
        .into_iter()
        .map(|c| {
            let channels = input_channels(graph, e.target, c);
            let idx = channels
                .iter()
                .position(|ch| ch.edge == edge && ch.producer == producer)
                .expect("producers_of and consumers_of agree on the wiring");
            (c, idx as u32)
        })
        .collect()
}
