//! The JobManager's REST API, with Flink's paths, JSON field names and HTTP codes, so that
//! tools written against Flink's REST API read Weir's.
//!
//! Errors are JSON `{"errors": ["..."]}` with one readable message each (Flink puts a Java
//! stack trace there). Job ids are 32 hex digits: a malformed one is 400, an unknown one 404.

mod checkpoints;
pub mod client;
mod jobs;
mod overview;
mod savepoints;
mod submit;

pub use submit::SubmitJobRequest;

use crate::metrics::ClusterMetrics;
use crate::task_manager_registry::TaskManagerDirectory;
use crate::DispatcherGateway;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use weir_core::JobId;

/// What the REST handlers read: the jobs, the TaskManagers and the metrics.
pub struct RestState {
    pub(crate) dispatcher: Arc<dyn DispatcherGateway>,
    pub(crate) task_managers: Arc<dyn TaskManagerDirectory>,
    pub(crate) metrics: Arc<ClusterMetrics>,
    pub(crate) gauges: overview::ClusterGauges,
    /// Where uploaded job binaries go; `None` on a cluster that takes none.
    pub(crate) blobs: Option<Arc<crate::process::blob_store::BlobStore>>,
    /// Savepoints triggered over REST.
    pub(crate) savepoints: savepoints::SavepointTriggers,
    /// Where running tasks' counters are read; `None`: not available.
    pub(crate) task_metrics: Option<Arc<dyn TaskMetricsSource>>,
}

/// Where the REST API reads the counters of a job's tasks while it runs: the embedded
/// mini-cluster's TaskManagers, or what workers report to a JobManager process.
pub trait TaskMetricsSource: Send + Sync {
    /// The latest counters of every subtask of `job` known here.
    fn task_metrics(&self, job: JobId) -> Vec<crate::task_manager::TaskMetrics>;

    /// User metric families of `job` that are not in the REST API's own registry (those
    /// workers reported), to export with it; the embedded TaskManagers export theirs into
    /// that registry directly.
    fn user_metrics(&self, _job: JobId) -> Vec<prometheus::proto::MetricFamily> {
        Vec::new()
    }
}

impl TaskMetricsSource for Vec<Arc<crate::TaskManager>> {
    fn task_metrics(&self, job: JobId) -> Vec<crate::task_manager::TaskMetrics> {
        self.iter().flat_map(|tm| tm.task_metrics(job)).collect()
    }
}

impl RestState {
    /// State over a Dispatcher, a TaskManager table and a metrics registry.
    pub fn new(
        dispatcher: Arc<dyn DispatcherGateway>,
        task_managers: Arc<dyn TaskManagerDirectory>,
        metrics: Arc<ClusterMetrics>,
    ) -> Self {
        let gauges = overview::ClusterGauges::register(metrics.registry());
        RestState {
            dispatcher,
            task_managers,
            metrics,
            gauges,
            blobs: None,
            savepoints: Default::default(),
            task_metrics: None,
        }
    }

    /// Reads running tasks' counters from `source` (the vertices' metrics of `/jobs/{id}`).
    pub fn with_task_metrics(mut self, source: Arc<dyn TaskMetricsSource>) -> Self {
        self.task_metrics = Some(source);
        self
    }

    /// Takes job binaries into `blobs`: jobs can then be submitted over REST.
    pub fn with_blobs(mut self, blobs: Arc<crate::process::blob_store::BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }
}

/// The largest job binary an upload may carry (checked while the body streams in: a
/// streamed body is not subject to axum's body limit).
const MAX_BLOB_BYTES: usize = 2 << 30;

/// The REST API's routes over `state`.
pub fn router(state: Arc<RestState>) -> Router {
    Router::new()
        .route("/overview", get(overview::overview))
        .route("/config", get(overview::config))
        .route("/taskmanagers", get(overview::task_managers))
        .route("/taskmanagers/{id}", get(overview::task_manager))
        .route("/metrics", get(overview::metrics))
        .route("/jobs", get(jobs::list).post(submit::submit))
        .route("/blobs", axum::routing::post(submit::upload))
        .route("/blobs/{key}", get(submit::download))
        .route("/jobs/{id}/execution-result", get(submit::execution_result))
        .route(
            "/jobs/{id}/savepoints",
            axum::routing::post(savepoints::post),
        )
        .route("/jobs/{id}/savepoints/{request}", get(savepoints::status))
        .route("/jobs/{id}/stop", axum::routing::post(savepoints::stop))
        .route("/jobs/overview", get(jobs::overview))
        .route("/jobs/{id}", get(jobs::detail).patch(jobs::cancel))
        .route("/jobs/{id}/checkpoints", get(checkpoints::checkpoints))
        .route("/jobs/{id}/plan", get(jobs::plan))
        .route("/jobs/{id}/exceptions", get(jobs::exceptions))
        .fallback(not_found)
        .with_state(state)
}

/// A REST error: an HTTP status and one message.
pub(crate) struct RestError(pub(crate) StatusCode, pub(crate) String);

impl RestError {
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        RestError(StatusCode::NOT_FOUND, message.into())
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        RestError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "errors": [self.1] }))).into_response()
    }
}

/// A failed job query: 404 for a job the Dispatcher does not know, 500 otherwise.
pub(crate) fn unknown(e: crate::ClusterError) -> RestError {
    match e {
        crate::ClusterError::UnknownJob(id) => RestError::not_found(format!("Job {id} not found")),
        other => RestError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn not_found(uri: Uri) -> RestError {
    RestError::not_found(format!("Not found: {}", uri.path()))
}

/// Parses a job id path parameter (32 hex digits, as Flink's `JobID`).
pub(crate) fn parse_job_id(s: &str) -> Result<JobId, RestError> {
    if s.len() == 32 {
        if let Ok(v) = u128::from_str_radix(s, 16) {
            return Ok(JobId(v));
        }
    }
    Err(RestError::bad_request(format!(
        "Bad request, could not parse parameters: cannot resolve path parameter (jobid) from value \"{s}\": a job id is 32 hexadecimal digits"
    )))
}

/// A REST server on a thread of its own (with its own async runtime), for a process whose
/// roles are not async: the embedded mini-cluster. Dropping it stops the server.
pub struct RestServer {
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RestServer {
    /// Binds `address` (port 0: any free port) and serves the REST API over `state`.
    pub fn start(
        address: std::net::SocketAddr,
        state: Arc<RestState>,
    ) -> crate::Result<RestServer> {
        let net = |context: String| {
            move |e: std::io::Error| crate::ClusterError::Network {
                context,
                message: e.to_string(),
            }
        };
        let listener = std::net::TcpListener::bind(address)
            .map_err(net(format!("cannot bind the REST port {address}")))?;
        let bound = listener
            .local_addr()
            .map_err(net("cannot read the bound REST address".into()))?;
        listener
            .set_nonblocking(true)
            .map_err(net("cannot set up the REST port".into()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(net("cannot start the REST server's runtime".into()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weir-rest".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot serve the REST API");
                            return;
                        }
                    };
                    let served = axum::serve(listener, router(state))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the REST server failed");
                    }
                })
            })
            .map_err(net("cannot start the REST server's thread".into()))?;
        tracing::info!(rest = %bound, "REST API listening");
        Ok(RestServer {
            address: bound,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
