//! The compiled job: the program's graph with its code, implementing [`JobCode`] so a
//! TaskManager can build any subtask from it.
//!
//! A chain is assembled from its tail to its head: each node's outputs (chained successors
//! already built, network writers for the other edges, discard if none) are handed to the
//! node's builder, which returns the node's own input for the node before it.

use crate::env::EnvState;
use crate::exchange::{plain_writer_for, WriterFactory, WriterSetup};
use crate::graph::{NodeCode, Sides};
use crate::translate::Translation;
use crate::types::{ErasedOutput, TypeOps};
use std::collections::{BTreeMap, HashMap};
use weir_core::{JobGraph, NodeId, PartitionerKind, VertexId};
use weir_runtime::deploy::{JobCode, TaskIo};
use weir_runtime::operator::OperatorInfo;
use weir_runtime::task::ChainHead;
use weir_runtime::writer::ChannelBuffers;
use weir_runtime::{Result, RuntimeError};

struct NodeRuntime {
    name: String,
    code: NodeCode,
    out_type: TypeOps,
    in_type: Option<TypeOps>,
    parallelism: u32,
    max_parallelism: u32,
}

struct EdgeRuntime {
    source: NodeId,
    target: NodeId,
    side_output: Option<String>,
    ty: TypeOps,
    writer: Option<WriterFactory>,
    partitioner: PartitionerKind,
    chained: bool,
    job_edge: Option<usize>,
}

/// A program's graph with its user code.
pub(crate) struct CompiledJob {
    nodes: Vec<NodeRuntime>,
    edges: Vec<EdgeRuntime>,
    /// The program's watermark alignment groups.
    alignment: Vec<std::sync::Arc<crate::alignment::AlignmentGroup>>,
}

impl CompiledJob {
    pub(crate) fn new(st: &EnvState, t: &Translation) -> Self {
        CompiledJob {
            alignment: st.alignment_groups.values().cloned().collect(),
            nodes: st
                .nodes
                .iter()
                .map(|n| NodeRuntime {
                    name: n.name.clone(),
                    code: n.code.clone(),
                    out_type: n.out_type,
                    in_type: n.in_type,
                    parallelism: t.node_parallelism[n.id.0 as usize],
                    max_parallelism: t.node_max_parallelism[n.id.0 as usize],
                })
                .collect(),
            edges: st
                .edges
                .iter()
                .enumerate()
                .map(|(i, e)| EdgeRuntime {
                    source: e.source,
                    target: e.target,
                    side_output: e.side_output.clone(),
                    ty: e.ty,
                    writer: e.writer.clone(),
                    partitioner: t.edge_partitioner[i],
                    chained: t.edge_chained[i],
                    job_edge: t.edge_job_edge[i],
                })
                .collect(),
        }
    }
}

fn internal(msg: String) -> RuntimeError {
    RuntimeError::Other(format!("internal error while building a task: {msg}"))
}

impl JobCode for CompiledJob {
    fn alignment_groups(&self) -> Vec<std::sync::Arc<dyn weir_runtime::deploy::AlignmentSync>> {
        self.alignment
            .iter()
            .map(|g| g.clone() as std::sync::Arc<dyn weir_runtime::deploy::AlignmentSync>)
            .collect()
    }

    fn instantiate(&self, graph: &JobGraph, vertex: VertexId, mut io: TaskIo) -> Result<ChainHead> {
        let v = graph.vertex(vertex);
        let subtask = io.subtask;
        let task_name = format!("{} ({}/{})", v.name, subtask + 1, v.parallelism);
        let head_node = v.head();
        let mut built: HashMap<NodeId, ErasedOutput> = HashMap::new();
        for op in v.operators.iter().rev() {
            let node = self
                .nodes
                .get(op.node.0 as usize)
                .ok_or_else(|| internal(format!("unknown node {}", op.node)))?;
            let mut main: Vec<ErasedOutput> = Vec::new();
            let mut sides: BTreeMap<String, (TypeOps, Vec<ErasedOutput>)> = BTreeMap::new();
            for e in self.edges.iter().filter(|e| e.source == op.node) {
                let out = if e.chained {
                    built
                        .remove(&e.target)
                        .ok_or_else(|| internal(format!("chained node {} not built", e.target)))?
                } else {
                    let je = e
                        .job_edge
                        .ok_or_else(|| internal("network edge without a job edge".into()))?;
                    let wiring = io
                        .take_output(je)
                        .ok_or_else(|| internal(format!("no wiring for job edge {je}")))?;
                    let setup = WriterSetup {
                        channels: ChannelBuffers::new(
                            wiring.senders,
                            io.pool.clone(),
                            io.flush_always,
                        ),
                        subtask,
                        consumer_max_parallelism: wiring.consumer_max_parallelism,
                        in_memory: io.in_memory_exchange,
                    };
                    match &e.writer {
                        Some(f) => f(setup)?,
                        None => plain_writer_for(e.ty, e.partitioner, setup)?,
                    }
                };
                match &e.side_output {
                    None => main.push(out),
                    Some(tag) => sides
                        .entry(tag.clone())
                        .or_insert_with(|| (e.ty, Vec::new()))
                        .1
                        .push(out),
                }
            }
            let main = if main.is_empty() {
                (node.out_type.discard)()
            } else {
                (node.out_type.fanout)(main)?
            };
            let sides: Sides = sides
                .into_iter()
                .map(|(tag, (ty, outs))| Ok((tag, (ty.side_slot)((ty.fanout)(outs)?)?)))
                .collect::<Result<_>>()?;
            let info = OperatorInfo {
                node: op.node.0,
                name: node.name.clone(),
                subtask,
                parallelism: node.parallelism,
                max_parallelism: node.max_parallelism,
                processing_time: io.processing_time.clone(),
                waker: io.waker.clone(),
                metrics: io.metrics.for_operator(&node.name, subtask),
                auto_watermark_interval_ms: graph.config.auto_watermark_interval_ms,
                uid: op.uid.clone(),
                restored: io.restored.get(&op.uid).cloned(),
                alignment: io.alignment,
                state_backend: graph.config.state_backend.clone(),
            };
            let is_head = op.node == head_node;
            match &node.code {
                NodeCode::Source(b) => {
                    if !is_head {
                        return Err(internal(format!(
                            "source '{}' is not a chain head",
                            node.name
                        )));
                    }
                    return Ok(ChainHead::Source(b(&info, main, sides)?));
                }
                NodeCode::OneInput(b) => {
                    let input = b(&info, main, sides)?;
                    if is_head {
                        let ty = node.in_type.ok_or_else(|| {
                            internal(format!("'{}' has no input type", node.name))
                        })?;
                        return Ok(ChainHead::Input((ty.input_head)(
                            input,
                            io.inputs.len(),
                            io.alignment,
                            task_name,
                        )?));
                    }
                    built.insert(op.node, input);
                }
                NodeCode::TwoInput(b) => {
                    if !is_head {
                        return Err(internal(format!(
                            "two-input '{}' is not a chain head",
                            node.name
                        )));
                    }
                    let channel_inputs = io.inputs.iter().map(|c| c.input_index).collect();
                    return Ok(ChainHead::Input(b(
                        &info,
                        main,
                        sides,
                        channel_inputs,
                        task_name,
                    )?));
                }
            }
        }
        Err(internal(format!("vertex '{}' has no head", v.name)))
    }
}
