//! Job endpoints: `/jobs`, `/jobs/overview`, `/jobs/{id}` and `PATCH /jobs/{id}` (cancel).

use super::{parse_job_id, RestError, RestState};
use crate::error::ClusterError;
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
            json!({
                "jid": id.to_string(),
                "name": name,
                "jobType": "STREAMING",
                "state": status.to_string(),
            })
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}

fn unknown(e: ClusterError) -> RestError {
    match e {
        ClusterError::UnknownJob(id) => RestError::not_found(format!("Job {id} not found")),
        other => RestError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

pub(crate) async fn detail(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let status = state.dispatcher.job_status(job).map_err(unknown)?;
    let name = state
        .dispatcher
        .list_jobs()
        .into_iter()
        .find(|(j, _, _)| *j == job)
        .map(|(_, n, _)| n)
        .unwrap_or_default();
    Ok(Json(json!({
        "jid": job.to_string(),
        "name": name,
        "state": status.to_string(),
        "job-type": "STREAMING",
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
