//! Job endpoints: `/jobs`, `/jobs/overview`, `/jobs/{id}` and `PATCH /jobs/{id}` (cancel).

use super::{parse_job_id, unknown, RestError, RestState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) async fn list(State(state): State<Arc<RestState>>) -> Json<Value> {
    let jobs: Vec<Value> = state
        .dispatcher
        .list_jobs()
        .into_iter()
        .map(|(id, _, status)| json!({ "id": id.to_string(), "status": status.to_string() }))
        .collect();
    Json(json!({ "jobs": jobs }))
}

pub(crate) async fn overview(State(state): State<Arc<RestState>>) -> Json<Value> {
    let jobs: Vec<Value> = state
        .dispatcher
        .list_jobs()
        .into_iter()
        .map(|(id, name, status)| {
            let mut entry = json!({
                "jid": id.to_string(),
                "name": name,
                "jobType": "STREAMING",
                "state": status.to_string(),
            });
            if let Ok(times) = state.dispatcher.job_times(id) {
                add_times(&mut entry, times);
            }
            entry
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}

pub(crate) async fn detail(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let status = state.dispatcher.job_status(job).map_err(unknown)?;
    let graph = state.dispatcher.job_graph(job).map_err(unknown)?;
    let tasks = state
        .task_metrics
        .as_ref()
        .map(|s| s.task_metrics(job))
        .unwrap_or_default();
    let vertices: Vec<Value> = graph
        .vertices
        .iter()
        .map(|v| {
            json!({
                "id": vertex_id(v.id),
                "name": v.name,
                "maxParallelism": v.max_parallelism,
                "parallelism": v.parallelism,
                "status": status.to_string(),
                "metrics": vertex_metrics(v, &tasks),
            })
        })
        .collect();
    let mut detail = json!({
        "jid": job.to_string(),
        "name": graph.name,
        "state": status.to_string(),
        "job-type": "STREAMING",
        "maxParallelism": -1,
        "now": crate::result::epoch_ms(),
        "vertices": vertices,
    });
    add_times(
        &mut detail,
        state.dispatcher.job_times(job).map_err(unknown)?,
    );
    Ok(Json(detail))
}

/// Flink's `start-time`, `end-time` (-1 while running) and `duration` (ms so far, or to
/// the end).
fn add_times(v: &mut Value, t: crate::result::JobTimes) {
    let end = t.end_ms.unwrap_or_else(crate::result::epoch_ms);
    v["start-time"] = json!(t.start_ms);
    v["end-time"] = t.end_ms.map_or(json!(-1), |e| json!(e));
    v["duration"] = json!(end.saturating_sub(t.start_ms));
}

/// A vertex's record counts in Flink's shape: records read from the network by its chain's
/// head (none for a source) and written to the network by its chain's last operator (none
/// for a sink), summed over its subtasks; `-complete` once every subtask reported; the time
/// its writers waited for buffers (backpressure), summed. Byte counts and busy/idle times
/// are not measured and stay 0.
fn vertex_metrics(v: &weir_core::JobVertex, tasks: &[crate::task_manager::TaskMetrics]) -> Value {
    let head = v.operators.first().map(|o| o.node.0);
    let tail = v.operators.last().map(|o| o.node.0);
    let mine: Vec<&crate::task_manager::TaskMetrics> =
        tasks.iter().filter(|t| t.vertex == v.id).collect();
    let sum = |node: Option<u32>, f: fn(&weir_runtime::metrics::OperatorMetrics) -> u64| -> u64 {
        mine.iter()
            .flat_map(|t| t.operators.iter())
            .filter(|m| Some(m.node) == node)
            .map(f)
            .sum()
    };
    let read = if v.is_source {
        0
    } else {
        sum(head, |m| m.records_in)
    };
    let write = sum(tail, |m| m.records_out);
    let reported = mine
        .iter()
        .filter(|t| !t.operators.is_empty())
        .map(|t| t.subtask)
        .collect::<std::collections::BTreeSet<u32>>()
        .len();
    let complete = reported == v.parallelism as usize;
    json!({
        "read-bytes": 0,
        "read-bytes-complete": false,
        "write-bytes": 0,
        "write-bytes-complete": false,
        "read-records": read,
        "read-records-complete": complete,
        "write-records": write,
        "write-records-complete": complete,
        "accumulated-backpressured-time": mine.iter().map(|t| t.backpressured_ms).sum::<u64>(),
        "accumulated-idle-time": 0,
        "accumulated-busy-time": 0.0,
    })
}

/// A vertex's id in the REST API: 32 hex digits, as Flink's `JobVertexID`.
fn vertex_id(v: weir_core::VertexId) -> String {
    format!("{:032x}", v.0)
}

/// Flink's name for how an edge's records are distributed.
fn ship_strategy(p: weir_core::PartitionerKind) -> &'static str {
    use weir_core::PartitionerKind::*;
    match p {
        Forward => "FORWARD",
        Rebalance => "REBALANCE",
        Rescale => "RESCALE",
        Shuffle => "SHUFFLE",
        Broadcast => "BROADCAST",
        Global => "GLOBAL",
        Hash => "HASH",
        Custom => "CUSTOM",
    }
}

/// A vertex's chain as Flink's plan describes it: `First<br/>+- Second<br/>`.
fn description(v: &weir_core::JobVertex) -> String {
    v.operators
        .iter()
        .enumerate()
        .map(|(i, op)| {
            if i == 0 {
                format!("{}<br/>", op.name)
            } else {
                format!("+- {}<br/>", op.name)
            }
        })
        .collect()
}

/// `/jobs/{id}/plan`: the job's vertices and their inputs, in Flink's plan shape.
pub(crate) async fn plan(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let graph = state.dispatcher.job_graph(job).map_err(unknown)?;
    let nodes: Vec<Value> = graph
        .vertices
        .iter()
        .map(|v| {
            let inputs: Vec<Value> = graph
                .inputs_of(v.id)
                .enumerate()
                .map(|(num, e)| {
                    json!({
                        "num": num,
                        "id": vertex_id(e.source),
                        "ship_strategy": ship_strategy(e.partitioner),
                        "exchange": "pipelined_bounded",
                    })
                })
                .collect();
            let mut node = json!({
                "id": vertex_id(v.id),
                "parallelism": v.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": description(v),
                "optimizer_properties": {},
            });
            if !inputs.is_empty() {
                node["inputs"] = json!(inputs);
            }
            node
        })
        .collect();
    Ok(Json(json!({
        "plan": {
            "jid": job.to_string(),
            "name": graph.name,
            "type": "STREAMING",
            "nodes": nodes,
        }
    })))
}

#[derive(Deserialize)]
pub(crate) struct CancelQuery {
    mode: Option<String>,
}

pub(crate) async fn cancel(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
    Query(q): Query<CancelQuery>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    let job = parse_job_id(&id)?;
    match q.mode.as_deref() {
        None | Some("cancel") => {}
        Some(other) => {
            return Err(RestError::bad_request(format!(
                "unknown mode '{other}': PATCH /jobs/{{id}} takes mode=cancel"
            )))
        }
    }
    state.dispatcher.cancel_job(job).map_err(unknown)?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// `GET /jobs/{id}/exceptions`: the job's failures, newest first (Flink's exception history;
/// Weir keeps the message with its causes where Flink has the Java stack trace).
pub(crate) async fn exceptions(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let history = state.dispatcher.job_exceptions(job).map_err(unknown)?;
    let entries: Vec<Value> = history
        .iter()
        .rev()
        .take(crate::job_master::EXCEPTION_HISTORY)
        .map(|e| {
            json!({
                "exceptionName": e.name,
                "stacktrace": e.message,
                "timestamp": e.timestamp_ms,
                "taskName": e.task,
                "failureLabels": {},
                "concurrentExceptions": [],
            })
        })
        .collect();
    Ok(Json(json!({
        "exceptionHistory": {
            "entries": entries,
            "truncated": history.len() > crate::job_master::EXCEPTION_HISTORY,
        }
    })))
}
