//! `/jobs/{id}/checkpoints`: a job's checkpoint counts, summary, latest and history, in
//! Flink's shape (`counts`, `summary`, `latest`, `history`, with Flink's field names).
//!
//! Weir does not measure Flink's `processed_data` and `persisted_data` per checkpoint; those
//! fields are left out rather than reported as zero. Weir adds one field, `weir-history`: the
//! whole history as Weir records it (per-operator sizes, alignment, sync and async times),
//! which a program's `JobClient` reads for a job on a cluster; Flink clients ignore it. `alignment_buffered` is 0 by design:
//! an aligning task buffers nothing beyond its producers' pools.

use super::{parse_job_id, unknown, RestError, RestState};
use crate::result::{CheckpointHistory, CheckpointStats, CheckpointStatus};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// min, max, avg and percentiles of `values`, as Flink's summary statistics.
fn statistics(mut values: Vec<u64>) -> Value {
    if values.is_empty() {
        return json!({ "min": 0, "max": 0, "avg": 0, "p50": 0.0, "p90": 0.0, "p95": 0.0,
                       "p99": 0.0, "p999": 0.0 });
    }
    values.sort_unstable();
    let pct = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[i] as f64
    };
    let sum: u64 = values.iter().sum();
    json!({
        "min": values[0],
        "max": values[values.len() - 1],
        "avg": sum / values.len() as u64,
        "p50": pct(0.5),
        "p90": pct(0.9),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "p999": pct(0.999),
    })
}

fn entry(c: &CheckpointStats) -> Value {
    let (class, status) = match &c.status {
        CheckpointStatus::Completed => ("completed", "COMPLETED"),
        CheckpointStatus::Failed(_) => ("failed", "FAILED"),
    };
    let mut v = json!({
        "className": class,
        "id": c.id,
        "status": status,
        "is_savepoint": c.savepoint,
        "trigger_timestamp": c.trigger_timestamp_ms,
        "latest_ack_timestamp": c.trigger_timestamp_ms + c.duration_ms as i64,
        "checkpointed_size": c.size_bytes,
        "state_size": c.size_bytes,
        "end_to_end_duration": c.duration_ms,
        "alignment_buffered": 0,
        "checkpoint_type": if c.savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
        "tasks": {},
    });
    match &c.status {
        CheckpointStatus::Completed => {
            v["external_path"] = json!(c.location.clone().unwrap_or_default());
            v["discarded"] = json!(false);
        }
        CheckpointStatus::Failed(reason) => {
            v["failure_timestamp"] = json!(c.trigger_timestamp_ms + c.duration_ms as i64);
            v["failure_message"] = json!(reason);
        }
    }
    v
}

/// The JSON of a job's checkpoint history.
pub(crate) fn checkpoints_json(h: &CheckpointHistory) -> Value {
    let completed: Vec<&CheckpointStats> = h
        .history
        .iter()
        .filter(|c| c.status == CheckpointStatus::Completed)
        .collect();
    let sizes: Vec<u64> = completed.iter().map(|c| c.size_bytes).collect();
    let durations: Vec<u64> = completed.iter().map(|c| c.duration_ms).collect();
    let latest = |f: &dyn Fn(&CheckpointStats) -> bool| {
        h.history
            .iter()
            .rev()
            .find(|c| f(c))
            .map_or(Value::Null, entry)
    };
    let in_progress = h.triggered.saturating_sub(h.completed + h.failed);
    json!({
        "counts": {
            "restored": u64::from(h.restored_from.is_some()),
            "total": h.triggered,
            "in_progress": in_progress,
            "completed": h.completed,
            "failed": h.failed,
        },
        "summary": {
            "checkpointed_size": statistics(sizes.clone()),
            "state_size": statistics(sizes),
            "end_to_end_duration": statistics(durations),
            "alignment_buffered": statistics(Vec::new()),
        },
        "latest": {
            "completed": latest(&|c| c.status == CheckpointStatus::Completed && !c.savepoint),
            "savepoint": latest(&|c| c.status == CheckpointStatus::Completed && c.savepoint),
            "failed": latest(&|c| matches!(c.status, CheckpointStatus::Failed(_))),
            "restored": h.restored_from.as_ref().map_or(Value::Null, |(id, path)| {
                json!({ "id": id, "external_path": path })
            }),
        },
        "history": h.history.iter().rev().map(entry).collect::<Vec<_>>(),
        "weir-history": serde_json::to_value(h).unwrap_or(Value::Null),
    })
}

pub(crate) async fn checkpoints(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let history = state.dispatcher.checkpoint_stats(job).map_err(unknown)?;
    Ok(Json(checkpoints_json(&history)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_empty_statistics() {
        let s = statistics(vec![5, 1, 3, 2, 4]);
        assert_eq!((s["min"].as_u64(), s["max"].as_u64()), (Some(1), Some(5)));
        assert_eq!(s["avg"], 3);
        assert_eq!(s["p50"], 3.0);
        assert_eq!(s["p99"], 5.0);
        assert_eq!(statistics(Vec::new())["max"], 0);
    }
}
