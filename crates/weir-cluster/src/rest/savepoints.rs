//! Savepoints over REST, as Flink's asynchronous operations: `POST /jobs/{id}/savepoints`
//! (optionally cancelling the job after it) and `POST /jobs/{id}/stop` (stop-with-savepoint)
//! answer 202 with a `request-id` at once; `GET /jobs/{id}/savepoints/{request-id}` says
//! `IN_PROGRESS` until the savepoint is complete, then its location or why it failed.

use super::{parse_job_id, unknown, RestError, RestState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weir_core::JobId;

/// The outcome of one triggered savepoint and when it came: `None` while it runs.
type Outcome = Arc<Mutex<Option<(Result<String, String>, Instant)>>>;

/// How long the outcome of a savepoint stays readable after it completed (Flink keeps its
/// asynchronous operations' results for 5 minutes as well).
const OUTCOME_TTL: Duration = Duration::from_secs(300);

/// Savepoints triggered over REST, by job and request id.
#[derive(Default)]
pub struct SavepointTriggers {
    triggers: Mutex<HashMap<(JobId, String), Outcome>>,
}

impl SavepointTriggers {
    fn lock(&self) -> MutexGuard<'_, HashMap<(JobId, String), Outcome>> {
        self.triggers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(o: &Outcome) -> MutexGuard<'_, Option<(Result<String, String>, Instant)>> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// The body of `POST /jobs/{id}/savepoints`.
#[derive(Deserialize, Default)]
pub(crate) struct TriggerBody {
    #[serde(rename = "target-directory")]
    target_directory: Option<String>,
    #[serde(rename = "cancel-job", default)]
    cancel_job: bool,
}

/// The body of `POST /jobs/{id}/stop`.
#[derive(Deserialize, Default)]
pub(crate) struct StopBody {
    #[serde(rename = "targetDirectory")]
    target_directory: Option<String>,
    #[serde(default)]
    drain: bool,
}

/// Starts a savepoint of `job` into `dir`; `stop` ends the job after it.
fn trigger(
    state: &Arc<RestState>,
    job: JobId,
    dir: Option<String>,
    stop: bool,
) -> Result<(StatusCode, Json<Value>), RestError> {
    let dir = dir.filter(|d| !d.is_empty()).ok_or_else(|| {
        RestError::bad_request(
            "Config key [state.savepoints.dir] is not set. Property [target-directory] must be provided.",
        )
    })?;
    let status = state.dispatcher.job_status(job).map_err(unknown)?;
    if status.is_terminal() {
        return Err(RestError(
            StatusCode::CONFLICT,
            format!("job {job} is {status}: a savepoint needs a running job"),
        ));
    }
    let id = JobId::generate().to_string();
    let outcome: Outcome = Arc::default();
    {
        let mut triggers = state.savepoints.lock();
        // Outcomes nobody asked for within the TTL go.
        triggers.retain(|_, o| {
            lock(o)
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() < OUTCOME_TTL)
        });
        triggers.insert((job, id.clone()), outcome.clone());
    }
    let dispatcher = state.dispatcher.clone();
    // The savepoint waits for every task; the request does not.
    let spawned = std::thread::Builder::new()
        .name(format!("savepoint-{}", &id[..8]))
        .spawn(move || {
            let r = dispatcher
                .trigger_savepoint(job, dir, stop)
                .map_err(|e| e.to_string());
            match &r {
                Ok(path) => tracing::info!(job = %job, %path, "savepoint completed"),
                Err(e) => tracing::warn!(job = %job, error = %e, "savepoint failed"),
            }
            *lock(&outcome) = Some((r, Instant::now()));
        });
    if let Err(e) = spawned {
        return Err(RestError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start the savepoint: {e}"),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "request-id": id }))))
}

/// `POST /jobs/{id}/savepoints`.
pub(crate) async fn post(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
    body: Option<Json<TriggerBody>>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    let job = parse_job_id(&id)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    if body.cancel_job {
        // Flink's cancel-with-savepoint is stop-with-savepoint without draining in Weir:
        // the sources end after the savepoint, nothing is emitted after it.
        return trigger(&state, job, body.target_directory, true);
    }
    trigger(&state, job, body.target_directory, false)
}

/// `POST /jobs/{id}/stop`.
pub(crate) async fn stop(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
    body: Option<Json<StopBody>>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    let job = parse_job_id(&id)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    if body.drain {
        return Err(RestError::bad_request(
            "drain is not supported: Weir's stop-with-savepoint ends the sources after the savepoint without emitting the final watermark (drain=false)",
        ));
    }
    trigger(&state, job, body.target_directory, true)
}

/// `GET /jobs/{id}/savepoints/{request-id}`.
pub(crate) async fn status(
    State(state): State<Arc<RestState>>,
    Path((id, request)): Path<(String, String)>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let outcome = state
        .savepoints
        .lock()
        .get(&(job, request.clone()))
        .cloned()
        .ok_or_else(|| {
            RestError::not_found(format!(
                "There is no savepoint operation with triggerId={request} for job {job}."
            ))
        })?;
    let answer = match lock(&outcome).as_ref().map(|(r, _)| r) {
        None => json!({ "status": { "id": "IN_PROGRESS" } }),
        Some(Ok(location)) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "location": location },
        }),
        Some(Err(e)) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "failure-cause": { "class": "weir.SavepointFailed", "stack-trace": e } },
        }),
    };
    Ok(Json(answer))
}
