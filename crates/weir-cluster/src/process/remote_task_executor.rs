//! A TaskManager process as the JobManager's roles see it: the [`TaskExecutorGateway`]
//! over gRPC.
//!
//! Preparing a job asks the TaskManager to start the job's worker process (its binary from
//! the blob store); tasks are then deployed to, cancelled in and steered in that worker
//! directly. The JobMaster's calls are blocking, on its own thread: each one runs on the
//! JobManager's async runtime and waits for the answer.

use super::job_routes::JobRoutes;
use crate::error::{ClusterError, Result};
use crate::gateway::{TaskDeployment, TaskExecutorGateway, TaskManagerId};
use crate::rpc::convert::control_to_wire;
use crate::rpc::task_manager::task_manager_client::TaskManagerClient;
use crate::rpc::worker::worker_client::WorkerClient;
use crate::rpc::{
    endpoint_uri, EnvVar, JobRequest, PrepareJobRequest, SubmitTaskRequest, VertexLocations,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tonic::transport::Channel;
use weir_core::{JobGraph, JobId, VertexId};
use weir_runtime::deploy::JobCode;
use weir_runtime::inbox::TaskControl;

/// How long preparing a job may take: downloading the binary and starting the worker.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long any other call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The JobManager's side of one TaskManager process.
pub struct RemoteTaskExecutor {
    id: TaskManagerId,
    task_manager: TaskManagerClient<Channel>,
    runtime: tokio::runtime::Handle,
    /// The JobManager's REST address (blobs are downloaded there) and RPC address (tasks
    /// report there).
    blob_server: String,
    jobmanager_rpc: String,
    routes: Arc<JobRoutes>,
    workers: Mutex<HashMap<JobId, WorkerClient<Channel>>>,
}

fn rpc_error(context: String, status: tonic::Status) -> ClusterError {
    ClusterError::Network {
        context,
        message: status.message().to_string(),
    }
}

impl RemoteTaskExecutor {
    /// The gateway of TaskManager `id`, whose RPC service listens at `rpc`.
    pub fn connect(
        id: TaskManagerId,
        rpc: &str,
        runtime: tokio::runtime::Handle,
        blob_server: String,
        jobmanager_rpc: String,
        routes: Arc<JobRoutes>,
    ) -> Result<Self> {
        let channel = {
            let _guard = runtime.enter();
            Channel::from_shared(endpoint_uri(rpc))
                .map_err(|e| ClusterError::Network {
                    context: format!("TaskManager {id} registered a bad RPC address '{rpc}'"),
                    message: e.to_string(),
                })?
                .connect_timeout(CALL_TIMEOUT)
                .connect_lazy()
        };
        Ok(RemoteTaskExecutor {
            id,
            task_manager: TaskManagerClient::new(channel),
            runtime,
            blob_server,
            jobmanager_rpc,
            routes,
            workers: Mutex::new(HashMap::new()),
        })
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<JobId, WorkerClient<Channel>>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker(&self, job: JobId) -> Result<WorkerClient<Channel>> {
        self.workers()
            .get(&job)
            .cloned()
            .ok_or_else(|| ClusterError::Deployment {
                job,
                message: format!("the job was not prepared on TaskManager {}", self.id),
            })
    }

    fn call<T>(
        &self,
        timeout: Duration,
        f: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> std::result::Result<T, tonic::Status> {
        self.runtime.block_on(async {
            match tokio::time::timeout(timeout, f).await {
                Ok(r) => r,
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {timeout:?}"
                ))),
            }
        })
    }
}

impl TaskExecutorGateway for RemoteTaskExecutor {
    fn prepare_job(
        &self,
        job: JobId,
        graph: &Arc<JobGraph>,
        code: &Arc<dyn JobCode>,
    ) -> Result<Option<SocketAddr>> {
        let binary = code.binary().ok_or_else(|| ClusterError::Deployment {
            job,
            message: "the job's code is in the JobManager's process, not a binary; only jobs submitted with their binary (weir run) run on TaskManager processes".into(),
        })?;
        let graph_json =
            serde_json::to_vec(graph.as_ref()).map_err(|e| ClusterError::Deployment {
                job,
                message: format!("cannot encode the job graph: {e}"),
            })?;
        let request = PrepareJobRequest {
            job_id: job.to_string(),
            blob_key: binary.blob_key.clone(),
            blob_server: self.blob_server.clone(),
            args: binary.args.clone(),
            env: binary
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            fingerprint: binary.fingerprint.clone(),
            jobmanager_rpc: self.jobmanager_rpc.clone(),
            job_graph_json: graph_json,
        };
        let mut tm = self.task_manager.clone();
        let r = self
            .call(
                PREPARE_TIMEOUT,
                async move { tm.prepare_job(request).await },
            )
            .map_err(|s| {
                let message = format!(
                    "TaskManager {} cannot start the job's worker: {}",
                    self.id,
                    s.message()
                );
                // The binary itself is the problem: no restart will change it.
                match s.code() {
                    tonic::Code::FailedPrecondition | tonic::Code::DataLoss => {
                        ClusterError::JobBinary { job, message }
                    }
                    _ => ClusterError::Deployment { job, message },
                }
            })?
            .into_inner();
        let data: SocketAddr = r
            .data_address
            .parse()
            .map_err(|_| ClusterError::Deployment {
                job,
                message: format!(
                    "TaskManager {} answered a bad data address '{}'",
                    self.id, r.data_address
                ),
            })?;
        let channel = {
            let _guard = self.runtime.enter();
            Channel::from_shared(endpoint_uri(&r.worker_rpc))
                .map_err(|e| ClusterError::Deployment {
                    job,
                    message: format!("bad worker address '{}': {e}", r.worker_rpc),
                })?
                .connect_timeout(CALL_TIMEOUT)
                .connect_lazy()
        };
        self.workers().insert(job, WorkerClient::new(channel));
        tracing::info!(job = %job, task_manager = %self.id, worker = %r.worker_rpc, data = %data, "job prepared on a TaskManager");
        Ok(Some(data))
    }

    fn release_job(&self, job: JobId) {
        self.workers().remove(&job);
        self.routes.forget(job);
        let mut tm = self.task_manager.clone();
        let request = JobRequest {
            job_id: job.to_string(),
        };
        if let Err(s) = self.call(CALL_TIMEOUT, async move { tm.release_job(request).await }) {
            tracing::warn!(job = %job, task_manager = %self.id, error = %s.message(), "cannot release the job on a TaskManager");
        }
    }

    fn submit_task(&self, d: TaskDeployment) -> Result<()> {
        let mut worker = self.worker(d.job)?;
        let locations = d
            .locations
            .as_ref()
            .map(|l| {
                l.by_vertex
                    .iter()
                    .map(|(v, addrs)| VertexLocations {
                        vertex: *v,
                        data_addresses: addrs.iter().map(|a| a.to_string()).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let request = SubmitTaskRequest {
            job_id: d.job.to_string(),
            vertex: d.vertex.0,
            subtask: d.subtask,
            attempt: d.attempt,
            restore_location: d.restore.as_ref().map(|r| r.location.clone()),
            locations,
        };
        self.routes.deploying(&d, &self.id);
        self.call(
            CALL_TIMEOUT,
            async move { worker.submit_task(request).await },
        )
        .map_err(|s| {
            rpc_error(
                format!(
                    "cannot deploy subtask {} of vertex {} to TaskManager {}",
                    d.subtask, d.vertex.0, self.id
                ),
                s,
            )
        })?;
        Ok(())
    }

    fn cancel_job_tasks(&self, job: JobId) {
        let Ok(mut worker) = self.worker(job) else {
            return;
        };
        let request = JobRequest {
            job_id: job.to_string(),
        };
        if let Err(s) = self.call(CALL_TIMEOUT, async move {
            worker.cancel_job_tasks(request).await
        }) {
            // The worker is gone: its tasks are failed by the worker-lost report.
            tracing::warn!(job = %job, task_manager = %self.id, error = %s.message(), "cannot cancel the job's tasks");
        }
    }

    fn send_task_control(
        &self,
        job: JobId,
        vertex: VertexId,
        subtask: u32,
        control: TaskControl,
    ) -> bool {
        let Ok(mut worker) = self.worker(job) else {
            return false;
        };
        let request = control_to_wire(job, vertex, subtask, &control);
        match self.call(CALL_TIMEOUT, async move {
            worker.send_task_control(request).await
        }) {
            Ok(r) => r.into_inner().delivered,
            Err(s) => {
                tracing::warn!(job = %job, task_manager = %self.id, error = %s.message(), "cannot reach a task");
                false
            }
        }
    }

    fn running_tasks(&self) -> usize {
        self.routes.running_on(&self.id)
    }
}
