//! Cluster-wide endpoints: `/overview`, `/config`, `/taskmanagers`, `/metrics`.

use super::{RestError, RestState};
use crate::result::JobStatus;
use crate::task_manager_registry::TaskManagerInfo;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use serde_json::{json, Value};
use std::sync::Arc;

/// The JobManager's own gauges, with Flink's metric names, set at every scrape.
pub(crate) struct ClusterGauges {
    task_managers: IntGauge,
    slots_total: IntGauge,
    slots_available: IntGauge,
    running_jobs: IntGauge,
    /// Per operator and subtask of running jobs (Flink's `numRecordsIn` / `numRecordsOut`).
    records_in: IntGaugeVec,
    records_out: IntGaugeVec,
    /// Per task (vertex) and subtask: time its writers waited for buffers, ms.
    backpressured: IntGaugeVec,
}

/// Labels of the per-operator series.
const OPERATOR_LABELS: [&str; 4] = ["job_id", "job_name", "operator_name", "subtask_index"];

fn operator_gauge(r: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(
        Opts::new(name, help)
            .namespace("weir")
            .subsystem("operator"),
        &OPERATOR_LABELS,
    )
    .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(
        Opts::new(name, help)
            .namespace("weir")
            .subsystem("jobmanager"),
    )
    .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    // Fixed, distinct names: registering cannot collide (a second REST state on the same
    // registry keeps the first registration, and both set the same values).
    let _ = r.register(Box::new(g.clone()));
    g
}

impl ClusterGauges {
    pub(crate) fn register(r: &Registry) -> Self {
        ClusterGauges {
            task_managers: gauge(r, "numRegisteredTaskManagers", "Registered TaskManagers."),
            slots_total: gauge(r, "taskSlotsTotal", "Task slots of all TaskManagers."),
            slots_available: gauge(r, "taskSlotsAvailable", "Task slots not allocated."),
            running_jobs: gauge(r, "numRunningJobs", "Jobs running."),
            records_in: operator_gauge(
                r,
                "numRecordsIn",
                "Records that entered the operator (as of the task's last publication).",
            ),
            records_out: operator_gauge(
                r,
                "numRecordsOut",
                "Records the operator emitted (as of the task's last publication).",
            ),
            backpressured: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "backPressuredTimeMsTotal",
                        "Milliseconds the task's writers waited for buffers (backpressure).",
                    )
                    .namespace("weir")
                    .subsystem("task"),
                    &["job_id", "job_name", "task_name", "subtask_index"],
                )
                .unwrap_or_else(|e| panic!("metric backPressuredTimeMsTotal is malformed: {e}"));
                let _ = r.register(Box::new(g.clone()));
                g
            },
        }
    }
}

/// Job counts by Flink's overview buckets: (running, finished, cancelled, failed).
fn job_counts(state: &RestState) -> (usize, usize, usize, usize) {
    state
        .dispatcher
        .list_jobs()
        .into_iter()
        .fold((0, 0, 0, 0), |(r, f, c, x), (_, _, s)| match s {
            JobStatus::Finished => (r, f + 1, c, x),
            JobStatus::Canceled => (r, f, c + 1, x),
            JobStatus::Failed => (r, f, c, x + 1),
            _ => (r + 1, f, c, x),
        })
}

pub(crate) async fn overview(State(state): State<Arc<RestState>>) -> Json<Value> {
    let (total, free) = state.task_managers.slots();
    let (running, finished, cancelled, failed) = job_counts(&state);
    Json(json!({
        "taskmanagers": state.task_managers.list().len(),
        "slots-total": total,
        "slots-available": free,
        "jobs-running": running,
        "jobs-finished": finished,
        "jobs-cancelled": cancelled,
        "jobs-failed": failed,
        "flink-version": concat!("weir-", env!("CARGO_PKG_VERSION")),
        "flink-commit": "",
    }))
}

pub(crate) async fn config() -> Json<Value> {
    Json(json!({
        "refresh-interval": 3000,
        "timezone-name": "Coordinated Universal Time",
        "timezone-offset": 0,
        "flink-version": concat!("weir-", env!("CARGO_PKG_VERSION")),
        "flink-revision": "",
        "features": {
            "web-submit": false,
            "web-cancel": true,
            "web-rescale": false,
            "web-history": false,
        },
    }))
}

fn task_manager_json(tm: &TaskManagerInfo) -> Value {
    json!({
        "id": tm.id,
        "path": format!("weir://{}/taskmanager/{}", tm.host, tm.pid),
        "dataPort": tm.data_port,
        "jmxPort": -1,
        "timeSinceLastHeartbeat": tm.last_heartbeat_epoch_ms,
        "slotsNumber": tm.slots,
        "freeSlots": tm.slots.saturating_sub(tm.allocated_slots),
        "hardware": {
            "cpuCores": tm.cpu_cores,
            "physicalMemory": tm.physical_memory,
        },
    })
}

pub(crate) async fn task_managers(State(state): State<Arc<RestState>>) -> Json<Value> {
    let list: Vec<Value> = state
        .task_managers
        .list()
        .iter()
        .map(task_manager_json)
        .collect();
    Json(json!({ "taskmanagers": list }))
}

pub(crate) async fn task_manager(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let tm = state
        .task_managers
        .get(&id)
        .ok_or_else(|| RestError::not_found(format!("TaskManager {id} not found")))?;
    let mut v = task_manager_json(&tm);
    v["allocatedSlots"] = json!([]);
    Ok(Json(v))
}

pub(crate) async fn metrics(State(state): State<Arc<RestState>>) -> impl IntoResponse {
    let (total, free) = state.task_managers.slots();
    let g = &state.gauges;
    g.task_managers.set(state.task_managers.list().len() as i64);
    g.slots_total.set(total as i64);
    g.slots_available.set(free as i64);
    g.running_jobs.set(job_counts(&state).0 as i64);
    // The operators of running jobs, as their tasks last published them; series of jobs
    // that ended go away.
    g.records_in.reset();
    g.records_out.reset();
    g.backpressured.reset();
    if let Some(source) = &state.task_metrics {
        for (job, name, status) in state.dispatcher.list_jobs() {
            if status.is_terminal() {
                continue;
            }
            let id = job.to_string();
            let graph = state.dispatcher.job_graph(job).ok();
            for t in source.task_metrics(job) {
                let subtask = t.subtask.to_string();
                let task = graph
                    .as_ref()
                    .and_then(|g| g.vertices.get(t.vertex.0 as usize))
                    .map_or_else(|| format!("vertex {}", t.vertex.0), |v| v.name.clone());
                g.backpressured
                    .with_label_values(&[
                        id.as_str(),
                        name.as_str(),
                        task.as_str(),
                        subtask.as_str(),
                    ])
                    .set(t.backpressured_ms as i64);
                for m in &t.operators {
                    let labels = [
                        id.as_str(),
                        name.as_str(),
                        m.name.as_str(),
                        subtask.as_str(),
                    ];
                    g.records_in
                        .with_label_values(&labels)
                        .set(m.records_in as i64);
                    g.records_out
                        .with_label_values(&labels)
                        .set(m.records_out as i64);
                }
            }
        }
    }
    let mut text = state.metrics.render();
    if let Some(source) = &state.task_metrics {
        let families = state
            .dispatcher
            .list_jobs()
            .into_iter()
            .filter(|(_, _, status)| !status.is_terminal())
            .flat_map(|(job, _, _)| source.user_metrics(job));
        text.push_str(&render_families(merge_families(families)));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Joins families of the same name (each worker reports its own subtasks' series of a
/// family): a scrape must name each family once.
fn merge_families(
    families: impl IntoIterator<Item = prometheus::proto::MetricFamily>,
) -> Vec<prometheus::proto::MetricFamily> {
    let mut merged: std::collections::BTreeMap<String, prometheus::proto::MetricFamily> =
        Default::default();
    for mut f in families {
        match merged.get_mut(f.name()) {
            Some(m) if m.get_field_type() == f.get_field_type() => {
                m.mut_metric().extend(f.take_metric());
            }
            // The same name as another kind (two jobs disagree): the first one is shown.
            Some(_) => {}
            None => {
                merged.insert(f.name().to_string(), f);
            }
        }
    }
    merged.into_values().collect()
}

/// Prometheus text of `families` (empty if they cannot be encoded, which for families read
/// back from the wire means none).
fn render_families(families: Vec<prometheus::proto::MetricFamily>) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "cannot encode the workers' user metrics");
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
