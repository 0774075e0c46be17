//! Submitting jobs over REST: the client uploads its binary (`POST /blobs`, stored by its
//! SHA-256), then submits the JobGraph with the blob key (`POST /jobs`), and follows the
//! job to its end (`GET /jobs/{id}/execution-result`, Flink's shape). TaskManagers download
//! the binary from `GET /blobs/{key}`.

use super::{parse_job_id, unknown, RestError, RestState};
use crate::process::blob_store::is_blob_key;
use crate::ClusterError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use weir_core::JobGraph;
use weir_runtime::deploy::JobBinary;

/// The body of `POST /jobs`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitJobRequest {
    /// The job's graph, as the client's program built it.
    pub job_graph: JobGraph,
    /// The uploaded binary's key.
    pub blob_key: String,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The `WEIR_*` environment variables the program ran with.
    pub env: Vec<(String, String)>,
}

fn internal(e: impl std::fmt::Display) -> RestError {
    RestError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn blobs(state: &RestState) -> Result<&crate::process::blob_store::BlobStore, RestError> {
    state.blobs.as_deref().ok_or_else(|| {
        RestError::not_found("this cluster takes no job binaries (it is an embedded mini-cluster)")
    })
}

/// `POST /blobs`: stores the body; answers its key.
pub(crate) async fn upload(
    State(state): State<Arc<RestState>>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), RestError> {
    let mut writer = blobs(&state)?.writer().map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| RestError::bad_request(format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > super::MAX_BLOB_BYTES as u64 {
            return Err(RestError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a job binary may have at most {} bytes",
                    super::MAX_BLOB_BYTES
                ),
            ));
        }
        writer.write(&chunk).map_err(internal)?;
    }
    if size == 0 {
        return Err(RestError::bad_request("the upload is empty"));
    }
    let (key, _) = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    tracing::info!(blob = %key, bytes = size, "blob stored");
    Ok((
        StatusCode::OK,
        Json(json!({ "blobKey": key, "size": size })),
    ))
}

/// `GET /blobs/{key}`: the blob's bytes.
pub(crate) async fn download(
    State(state): State<Arc<RestState>>,
    Path(key): Path<String>,
) -> Result<Response, RestError> {
    if !is_blob_key(&key) {
        return Err(RestError::bad_request(format!(
            "'{key}' is not a blob key (64 hex digits)"
        )));
    }
    let path = blobs(&state)?
        .path(&key)
        .ok_or_else(|| RestError::not_found(format!("no blob {key}")))?;
    let file = tokio::fs::File::open(&path).await.map_err(internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// `POST /jobs`: submits a job whose binary was uploaded.
pub(crate) async fn submit(
    State(state): State<Arc<RestState>>,
    Json(r): Json<SubmitJobRequest>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    if blobs(&state)?.path(&r.blob_key).is_none() {
        return Err(RestError::bad_request(format!(
            "no uploaded binary has the key '{}': upload it to /blobs first",
            r.blob_key
        )));
    }
    r.job_graph
        .validate()
        .map_err(|e| RestError::bad_request(format!("the job graph is not valid: {e}")))?;
    let binary = JobBinary {
        blob_key: r.blob_key,
        args: r.args,
        env: r.env,
        fingerprint: r.job_graph.fingerprint(),
    };
    let dispatcher = state.dispatcher.clone();
    let job =
        tokio::task::spawn_blocking(move || dispatcher.submit_job(r.job_graph, Arc::new(binary)))
            .await
            .map_err(internal)?
            .map_err(internal)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "jobid": job.to_string(), "jobUrl": format!("/jobs/{job}") })),
    ))
}

/// `GET /jobs/{id}/execution-result`: `IN_PROGRESS` until the job ends, then its result
/// (Flink's shape; the failure's message stands where Flink puts the stack trace; a finished
/// job's full [`crate::JobExecutionResult`] is under `weir-result`).
pub(crate) async fn execution_result(
    State(state): State<Arc<RestState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RestError> {
    let job = parse_job_id(&id)?;
    let status = state.dispatcher.job_status(job).map_err(unknown)?;
    if !status.is_terminal() {
        return Ok(Json(json!({ "status": { "id": "IN_PROGRESS" } })));
    }
    let dispatcher = state.dispatcher.clone();
    let result = tokio::task::spawn_blocking(move || dispatcher.request_job_result(job))
        .await
        .map_err(internal)?;
    let body = match result {
        Ok(r) => json!({
            "id": job.to_string(),
            "application-status": "SUCCEEDED",
            "accumulator-results": {},
            "net-runtime": r.net_runtime.as_millis() as u64,
            // Weir's own account (operators' counts, restarts, checkpoints), for its client.
            "weir-result": serde_json::to_value(&r).unwrap_or_else(|e| {
                tracing::error!(job = %job, error = %e, "cannot encode the job's result");
                Value::Null
            }),
        }),
        Err(e) => {
            let canceled = matches!(e, ClusterError::Cancelled(_));
            json!({
                "id": job.to_string(),
                "application-status": if canceled { "CANCELED" } else { "FAILED" },
                "accumulator-results": {},
                "net-runtime": 0,
                "failure-cause": {
                    "class": if canceled { "weir.JobCancelled" } else { "weir.JobFailed" },
                    "stack-trace": e.to_string(),
                },
            })
        }
    };
    Ok(Json(
        json!({ "status": { "id": "COMPLETED" }, "job-execution-result": body }),
    ))
}
