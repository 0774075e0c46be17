//! StreamGraph -> JobGraph: resolves parallelism, partitioners and slot sharing groups,
//! chains operators by Flink's rules, and renders the execution plan.
//!
//! An edge is chained (the two operators run in one task, records pass by a call) when all
//! of these hold, as in Flink's `StreamingJobGraphGenerator.isChainable`:
//! chaining is enabled; the consumer has exactly one input edge; the edge is forward;
//! both sides have the same parallelism and slot sharing group; the consumer's chaining
//! strategy is `Always` and the producer's is not `Never`.

use crate::env::EnvState;
use crate::graph::{ChainingStrategy, NodeKind};
use serde_json::{json, Value};
use std::collections::HashMap;
use weir_core::job_graph::ChainedOperator;
use weir_core::key_group::{
    default_max_parallelism, validate_max_parallelism, validate_parallelism,
};
use weir_core::{CoreError, JobEdge, JobGraph, JobVertex, PartitionerKind, VertexId};

/// The slot sharing group of operators that set none and have no inputs to inherit from.
pub const DEFAULT_SLOT_SHARING_GROUP: &str = "default";

/// The JobGraph plus what the runner needs to map stream nodes and edges onto it.
pub(crate) struct Translation {
    pub job_graph: JobGraph,
    pub node_parallelism: Vec<u32>,
    pub node_max_parallelism: Vec<u32>,
    pub edge_partitioner: Vec<PartitionerKind>,
    pub edge_chained: Vec<bool>,
    pub edge_job_edge: Vec<Option<usize>>,
}

pub(crate) fn translate(st: &EnvState, job_name: &str) -> Result<Translation, CoreError> {
    let env_p = validate_parallelism("the environment (set_parallelism)", st.raw_parallelism)?;
    if let Some(m) = st.raw_max_parallelism {
        validate_max_parallelism("the environment (set_max_parallelism)", m, 1)?;
    }
    if st.nodes.is_empty() {
        return Err(CoreError::InvalidGraph(
            "the job defines no operators: add a source and a sink before calling execute".into(),
        ));
    }
    let n = st.nodes.len();
    let mut par = Vec::with_capacity(n);
    let mut maxp = Vec::with_capacity(n);
    for node in &st.nodes {
        let p = validate_parallelism(&node.name, node.parallelism.unwrap_or(env_p as i64))?;
        if node.non_parallel && p != 1 {
            return Err(CoreError::InvalidParallelism {
                what: node.name.clone(),
                parallelism: p as i64,
                reason: "this source is not parallel; its parallelism must be 1".into(),
            });
        }
        let m = match node.max_parallelism.or(st.raw_max_parallelism) {
            Some(m) => validate_max_parallelism(&node.name, m, p)?,
            None => default_max_parallelism(p),
        };
        par.push(p);
        maxp.push(m);
    }

    // Slot sharing groups: explicit, else inherited when all inputs agree, else default.
    let mut groups: Vec<String> = Vec::with_capacity(n);
    for node in &st.nodes {
        let g = match &node.slot_sharing_group {
            Some(g) => g.clone(),
            None => {
                let mut ins = st
                    .edges
                    .iter()
                    .filter(|e| e.target == node.id)
                    .map(|e| groups[e.source.0 as usize].clone());
                match ins.next() {
                    Some(first) if ins.all(|g| g == first) => first,
                    _ => DEFAULT_SLOT_SHARING_GROUP.to_string(),
                }
            }
        };
        groups.push(g);
    }

    // Uids must be unique; operators without one get a deterministic default.
    let mut uids: HashMap<&str, &str> = HashMap::new();
    for node in &st.nodes {
        if let Some(u) = &node.uid {
            if let Some(other) = uids.insert(u, &node.name) {
                return Err(CoreError::InvalidGraph(format!(
                    "the uid '{u}' is set on more than one operator ('{other}' and '{}'); uids must be unique",
                    node.name
                )));
            }
        }
    }

    // Partitioners.
    let mut partitioners = Vec::with_capacity(st.edges.len());
    for e in &st.edges {
        let (sp, tp) = (par[e.source.0 as usize], par[e.target.0 as usize]);
        let kind = match e.partitioner {
            Some(PartitionerKind::Forward) if sp != tp => {
                return Err(CoreError::InvalidGraph(format!(
                    "forward partitioning does not allow a change of parallelism: '{}' has parallelism {sp}, '{}' has {tp}; use rebalance, rescale, shuffle, broadcast or global instead",
                    st.nodes[e.source.0 as usize].name, st.nodes[e.target.0 as usize].name
                )))
            }
            Some(k) => k,
            None if sp == tp => PartitionerKind::Forward,
            None => PartitionerKind::Rebalance,
        };
        partitioners.push(kind);
    }

    // Chaining.
    let mut in_degree = vec![0usize; n];
    for e in &st.edges {
        in_degree[e.target.0 as usize] += 1;
    }
    let chained: Vec<bool> = st
        .edges
        .iter()
        .zip(&partitioners)
        .map(|(e, &k)| {
            let (s, t) = (e.source.0 as usize, e.target.0 as usize);
            st.config.chaining_enabled
                && in_degree[t] == 1
                && k == PartitionerKind::Forward
                && par[s] == par[t]
                && groups[s] == groups[t]
                && st.nodes[t].chaining == ChainingStrategy::Always
                && st.nodes[s].chaining != ChainingStrategy::Never
                && st.nodes[t].kind != NodeKind::Source
        })
        .collect();

    let uid_hashes = crate::uid_hash::uid_hashes(&st.nodes, &st.edges, &partitioners, &chained);

    // Vertices: a node joins the vertex of the node it is chained to, else heads a new one.
    let mut node_vertex: Vec<u32> = Vec::with_capacity(n);
    let mut vertices: Vec<JobVertex> = Vec::new();
    for node in &st.nodes {
        let i = node.id.0 as usize;
        let chained_from = st
            .edges
            .iter()
            .zip(&chained)
            .find(|(e, &c)| c && e.target == node.id)
            .map(|(e, _)| node_vertex[e.source.0 as usize]);
        let op = ChainedOperator {
            node: node.id,
            name: node.name.clone(),
            uid: node
                .uid
                .clone()
                .unwrap_or_else(|| crate::uid_hash::uid_of(uid_hashes[i])),
        };
        match chained_from {
            Some(v) => {
                node_vertex.push(v);
                vertices[v as usize].operators.push(op);
            }
            None => {
                let v = vertices.len() as u32;
                node_vertex.push(v);
                vertices.push(JobVertex {
                    id: VertexId(v),
                    name: String::new(),
                    parallelism: par[i],
                    max_parallelism: maxp[i],
                    slot_sharing_group: groups[i].clone(),
                    operators: vec![op],
                    is_source: node.kind == NodeKind::Source,
                });
            }
        }
    }
    for v in &mut vertices {
        v.name = v
            .operators
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
    }

    let mut edges = Vec::new();
    let mut edge_job_edge = Vec::with_capacity(st.edges.len());
    for (i, e) in st.edges.iter().enumerate() {
        if chained[i] {
            edge_job_edge.push(None);
            continue;
        }
        edge_job_edge.push(Some(edges.len()));
        edges.push(JobEdge {
            source: VertexId(node_vertex[e.source.0 as usize]),
            target: VertexId(node_vertex[e.target.0 as usize]),
            source_node: e.source,
            target_node: e.target,
            partitioner: partitioners[i],
            input_index: e.input_index,
            side_output: e.side_output.clone(),
        });
    }

    let mut config = st.config.clone();
    config.parallelism = env_p;
    config.max_parallelism = st.raw_max_parallelism.map(|m| m as u32);
    Ok(Translation {
        job_graph: JobGraph {
            name: job_name.to_string(),
            vertices,
            edges,
            config,
        },
        node_parallelism: par,
        node_max_parallelism: maxp,
        edge_partitioner: partitioners,
        edge_chained: chained,
        edge_job_edge,
    })
}

/// Flink's `getExecutionPlan` JSON of the StreamGraph.
pub(crate) fn execution_plan(st: &EnvState) -> Result<String, CoreError> {
    let t = translate(st, "plan")?;
    let nodes: Vec<Value> = st
        .nodes
        .iter()
        .map(|node| {
            let preds: Vec<Value> = st
                .edges
                .iter()
                .enumerate()
                .filter(|(_, e)| e.target == node.id)
                .map(|(i, e)| {
                    json!({
                        "id": e.source.0,
                        "ship_strategy": t.edge_partitioner[i].ship_strategy(),
                        "side": "second",
                    })
                })
                .collect();
            let pact = match node.kind {
                NodeKind::Source => "Data Source",
                NodeKind::Operator => "Operator",
                NodeKind::Sink => "Data Sink",
            };
            let mut v = json!({
                "id": node.id.0,
                "type": node.name,
                "pact": pact,
                "contents": node.name,
                "parallelism": t.node_parallelism[node.id.0 as usize],
            });
            if !preds.is_empty() {
                v["predecessors"] = Value::Array(preds);
            }
            v
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "nodes": nodes }))
        .map_err(|e| CoreError::InvalidGraph(format!("cannot render the plan: {e}")))
}
