//! Worker mode: a job's own binary, started by a TaskManager, running the job's subtasks
//! that the JobMaster deploys to that TaskManager (DESIGN.md §6: the program that builds
//! the graph is the code that runs it).
//!
//! The TaskManager starts the binary with the program's arguments and `WEIR_WORKER_*`
//! variables ([`WorkerEnv`]). The program runs as usual up to `execute`, which builds the
//! graph and, seeing worker mode, calls [`run`] instead of submitting: the worker checks
//! that its graph has the fingerprint the client submitted (a changed binary or a graph
//! that is not built deterministically stops here, with the reason), binds its data port
//! and RPC service, says where they are in the ready file, and runs subtasks until the
//! TaskManager stops it. Its tasks report to the JobManager's JobMaster service.

use crate::error::{ClusterError, Result};
use crate::gateway::{
    RestorePoint, TaskDeployment, TaskExecutionState, TaskExecutorGateway, TaskLocations,
    TaskStateListener,
};
use crate::rpc::convert::{
    ack_to_wire, control_from_wire, job_id, metrics_to_wire, task_state_to_wire,
    user_metrics_to_wire,
};
use crate::rpc::job_master::job_master_client::JobMasterClient;
use crate::rpc::worker::worker_server::{Worker as WorkerRpc, WorkerServer};
use crate::rpc::{
    endpoint_uri, CheckpointDeclineReport, Empty, FinishedInputReport, GroupWatermarks, JobRequest,
    MemberWatermark, SubmitTaskRequest, SubtaskMetrics, TaskControlRequest, TaskControlResponse,
    TaskMetricsReport, WatermarkSyncRequest,
};
use crate::shuffle::LocalShuffle;
use crate::task_manager::TaskManager;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use weir_core::{JobGraph, JobId, VertexId};
use weir_runtime::checkpoint::{CheckpointAck, CheckpointResponder};
use weir_runtime::deploy::JobCode;
use weir_runtime::exchange::{CreditConfig, NetworkEnvironment};
use weir_state::{CheckpointStorage, SnapshotMetadata};

/// The variable that marks worker mode: the job's id.
pub const WORKER_JOB: &str = "WEIR_WORKER_JOB";
const WORKER_READY_FILE: &str = "WEIR_WORKER_READY_FILE";
const WORKER_GRAPH: &str = "WEIR_WORKER_GRAPH";
const WORKER_FINGERPRINT: &str = "WEIR_WORKER_FINGERPRINT";
const WORKER_JOBMANAGER: &str = "WEIR_WORKER_JOBMANAGER";
const WORKER_HOST: &str = "WEIR_WORKER_HOST";
const WORKER_TASK_MANAGER: &str = "WEIR_WORKER_TASK_MANAGER";
const WORKER_SLOTS: &str = "WEIR_WORKER_SLOTS";

/// How a TaskManager tells its worker what to run.
#[derive(Clone, Debug)]
pub struct WorkerEnv {
    /// The job.
    pub job: JobId,
    /// Where to write `rpc=HOST:PORT data=HOST:PORT` once serving, or `error=...`.
    pub ready_file: PathBuf,
    /// The submitted JobGraph (JSON).
    pub graph_file: PathBuf,
    /// The fingerprint the client's graph had.
    pub fingerprint: String,
    /// The JobManager's RPC address.
    pub jobmanager: String,
    /// The host to bind on.
    pub host: String,
    /// The TaskManager's id.
    pub task_manager: String,
    /// The TaskManager's slots.
    pub slots: usize,
}

impl WorkerEnv {
    /// The variables to start a worker with.
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (WORKER_JOB, self.job.to_string()),
            (WORKER_READY_FILE, self.ready_file.display().to_string()),
            (WORKER_GRAPH, self.graph_file.display().to_string()),
            (WORKER_FINGERPRINT, self.fingerprint.clone()),
            (WORKER_JOBMANAGER, self.jobmanager.clone()),
            (WORKER_HOST, self.host.clone()),
            (WORKER_TASK_MANAGER, self.task_manager.clone()),
            (WORKER_SLOTS, self.slots.to_string()),
        ]
    }

    /// Worker mode's settings, when this process was started as a worker; an error when
    /// the variables are there but incomplete.
    pub fn from_env() -> Option<std::result::Result<WorkerEnv, String>> {
        let job = std::env::var(WORKER_JOB).ok()?;
        let var = |name: &str| {
            std::env::var(name).map_err(|_| format!("worker mode needs the variable {name}"))
        };
        Some((|| {
            Ok(WorkerEnv {
                job: job_id(&job, "worker environment").map_err(|e| e.to_string())?,
                ready_file: var(WORKER_READY_FILE)?.into(),
                graph_file: var(WORKER_GRAPH)?.into(),
                fingerprint: var(WORKER_FINGERPRINT)?,
                jobmanager: var(WORKER_JOBMANAGER)?,
                host: var(WORKER_HOST)?,
                task_manager: var(WORKER_TASK_MANAGER)?,
                slots: var(WORKER_SLOTS)?
                    .parse()
                    .map_err(|_| format!("{WORKER_SLOTS} is not a number"))?,
            })
        })())
    }
}

/// Writes the ready file atomically (the TaskManager polls for it).
fn write_ready(path: &std::path::Path, line: &str) {
    let tmp = path.with_extension("tmp");
    if let Err(e) =
        std::fs::write(&tmp, format!("{line}\n")).and_then(|()| std::fs::rename(&tmp, path))
    {
        tracing::error!(file = %path.display(), error = %e, "cannot write the worker's ready file");
    }
}

/// Runs this process as the worker of `env.job`, with `graph` and `code` as the program
/// built them, and never returns: the process exits when the TaskManager stops it, or with
/// status 2 when it cannot serve (the reason is in the ready file and the log).
pub fn run(env: WorkerEnv, graph: &JobGraph, code: Arc<dyn JobCode>) -> ! {
    match serve(&env, graph, code) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let line = format!("error={}", e.to_string().replace('\n', " "));
            write_ready(&env.ready_file, &line);
            tracing::error!(job = %env.job, error = %e, "the job's worker cannot run");
            std::process::exit(2)
        }
    }
}

fn serve(env: &WorkerEnv, built: &JobGraph, code: Arc<dyn JobCode>) -> Result<()> {
    let fail = |message: String| ClusterError::Deployment {
        job: env.job,
        message,
    };
    let fingerprint = built.fingerprint();
    if fingerprint != env.fingerprint {
        return Err(fail(format!(
            "the job binary built a different graph on TaskManager {} (fingerprint {fingerprint}, the client submitted {}): the binary changed since the job was submitted, or the program does not build its graph deterministically (same operators, uids, parallelism and edges on every run)",
            env.task_manager, env.fingerprint
        )));
    }
    let json = std::fs::read(&env.graph_file).map_err(|e| {
        fail(format!(
            "cannot read the job graph {}: {e}",
            env.graph_file.display()
        ))
    })?;
    let graph: JobGraph = serde_json::from_slice(&json)
        .map_err(|e| fail(format!("cannot decode the job graph: {e}")))?;
    if graph.fingerprint() != env.fingerprint {
        return Err(fail(
            "the submitted job graph does not have the fingerprint it was submitted with".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weir-worker-rpc")
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the worker's async runtime: {e}")))?;
    let bind: SocketAddr = format!("{}:0", env.host)
        .parse()
        .map_err(|_| fail(format!("'{}' is not an IP address to bind on", env.host)))?;
    let network = Arc::new(
        NetworkEnvironment::start(bind, CreditConfig::default())
            .map_err(|e| fail(format!("cannot bind the worker's data port: {e}")))?,
    );
    let task_manager = TaskManager::with_network(
        env.task_manager.clone(),
        env.slots,
        Arc::new(LocalShuffle::default()),
        network.clone(),
    );
    let jobmanager = {
        let _guard = runtime.enter();
        Channel::from_shared(endpoint_uri(&env.jobmanager))
            .map_err(|e| fail(format!("bad JobManager address '{}': {e}", env.jobmanager)))?
            .connect_timeout(Duration::from_secs(10))
            .connect_lazy()
    };
    let reports = Arc::new(Reports::start(
        JobMasterClient::new(jobmanager.clone()),
        runtime.handle().clone(),
    )?);
    sync_watermarks_periodically(
        env,
        code.alignment_groups(),
        JobMasterClient::new(jobmanager.clone()),
        runtime.handle().clone(),
    )?;
    // The user metrics of this worker's operators: gathered here and reported to the
    // JobManager with the counters, which exports them with the job's other metrics.
    let user_registry = prometheus::Registry::new();
    task_manager.export_user_metrics(weir_runtime::user_metrics::UserMetrics::new(
        user_registry.clone(),
    ));
    report_metrics_periodically(
        env,
        task_manager.clone(),
        user_registry,
        JobMasterClient::new(jobmanager),
        runtime.handle().clone(),
    )?;
    let service = WorkerService {
        job: env.job,
        graph: Arc::new(graph),
        code,
        task_manager,
        reports,
        runtime: runtime.handle().clone(),
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| fail(format!("cannot bind the worker's RPC port: {e}")))?;
        let rpc = listener
            .local_addr()
            .map_err(|e| fail(format!("cannot read the worker's RPC port: {e}")))?;
        write_ready(
            &env.ready_file,
            &format!("rpc={rpc} data={}", network.local_addr()),
        );
        tracing::info!(job = %env.job, %rpc, data = %network.local_addr(), "job worker serving");
        tonic::transport::Server::builder()
            .add_service(WorkerServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .map_err(|e| ClusterError::Network {
                context: "the worker's RPC server failed".into(),
                message: e.to_string(),
            })
    })
}

/// How a worker's tasks reach their JobMaster: reports are queued (a task never waits for
/// the network, and task threads and checkpoint threads alike may report) and sent in order
/// by one thread, which retries a report for a while: the JobMaster must hear how every task
/// ended, and in the order things happened (acknowledgements before the task's end).
struct Reports {
    queue: std::sync::Mutex<std::sync::mpsc::Sender<Report>>,
}

/// One queued report.
enum Report {
    TaskState(crate::rpc::TaskExecutionStateReport),
    Ack(crate::rpc::CheckpointAckReport),
    Decline(CheckpointDeclineReport),
    FinishedInput(FinishedInputReport),
}

impl Report {
    async fn send(&self, mut c: JobMasterClient<Channel>) -> std::result::Result<(), Status> {
        match self {
            Report::TaskState(r) => c.update_task_execution_state(r.clone()).await,
            Report::Ack(r) => c.acknowledge_checkpoint(r.clone()).await,
            Report::Decline(r) => c.decline_checkpoint(r.clone()).await,
            Report::FinishedInput(r) => c.finished_input(r.clone()).await,
        }
        .map(|_| ())
    }

    fn what(&self) -> &'static str {
        match self {
            Report::TaskState(_) => "a task's end",
            Report::Ack(_) => "a checkpoint acknowledgement",
            Report::Decline(_) => "a checkpoint decline",
            Report::FinishedInput(_) => "a finished-input report",
        }
    }
}

impl Reports {
    /// Starts the sending thread.
    fn start(client: JobMasterClient<Channel>, runtime: tokio::runtime::Handle) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Report>();
        std::thread::Builder::new()
            .name("weir-worker-reports".into())
            .spawn(move || {
                for report in rx {
                    let mut sent = false;
                    for attempt in 0..10u32 {
                        match runtime.block_on(report.send(client.clone())) {
                            Ok(()) => {
                                sent = true;
                                break;
                            }
                            Err(s) => {
                                tracing::warn!(attempt, error = %s.message(), "cannot send {} to the JobMaster; retrying", report.what());
                                std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
                            }
                        }
                    }
                    if !sent {
                        // The JobMaster would wait for it forever: end the worker instead, so
                        // that its TaskManager reports it lost and the job fails over.
                        tracing::error!("gave up sending {} to the JobMaster; the worker exits", report.what());
                        std::process::exit(3);
                    }
                }
            })
            .map_err(|e| ClusterError::Network {
                context: "cannot start the worker's report thread".into(),
                message: e.to_string(),
            })?;
        Ok(Reports {
            queue: std::sync::Mutex::new(tx),
        })
    }

    fn send(&self, report: Report) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // The thread ends only with the process.
        let _ = queue.send(report);
    }
}

impl TaskStateListener for Reports {
    fn update_task_execution_state(&self, state: TaskExecutionState) {
        self.send(Report::TaskState(task_state_to_wire(&state)));
    }
}

/// How often a worker exchanges its aligned sources' watermarks with the JobMaster (Flink's
/// `pipeline.watermark-alignment.update-interval` is 1 s by default; Weir's is finer, the
/// message is small). Until the first exchange, members elsewhere hold nobody back, as a
/// member that has reported no watermark yet does not count.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// Keeps the job's watermark alignment groups in step with their members in other workers:
/// every [`SYNC_INTERVAL`], this worker's members' watermarks go to the JobMaster and the
/// lowest watermark of the members elsewhere comes back. Nothing runs for a job without
/// alignment groups. When the JobMaster cannot be reached, the groups keep the last answer.
fn sync_watermarks_periodically(
    env: &WorkerEnv,
    groups: Vec<Arc<dyn weir_runtime::deploy::AlignmentSync>>,
    client: JobMasterClient<Channel>,
    runtime: tokio::runtime::Handle,
) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let (job, task_manager) = (env.job, env.task_manager.clone());
    std::thread::Builder::new()
        .name("weir-worker-alignment".into())
        .spawn(move || loop {
            std::thread::sleep(SYNC_INTERVAL);
            let request = WatermarkSyncRequest {
                job_id: job.to_string(),
                task_manager_id: task_manager.clone(),
                groups: groups
                    .iter()
                    .map(|g| GroupWatermarks {
                        name: g.name().to_string(),
                        members: g
                            .local_watermarks()
                            .into_iter()
                            .map(|((source, subtask), watermark)| MemberWatermark {
                                source,
                                subtask,
                                watermark,
                            })
                            .collect(),
                    })
                    .collect(),
            };
            let mut c = client.clone();
            match runtime.block_on(async move { c.sync_watermarks(request).await }) {
                Ok(r) => {
                    for low in r.into_inner().groups {
                        if let Some(g) = groups.iter().find(|g| g.name() == low.name) {
                            g.set_remote_low(low.low);
                        }
                    }
                }
                Err(s) => {
                    tracing::debug!(error = %s.message(), "cannot exchange watermarks with the JobMaster")
                }
            }
        })
        .map(|_| ())
        .map_err(|e| ClusterError::Network {
            context: "cannot start the worker's alignment thread".into(),
            message: e.to_string(),
        })
}

/// Sends the counters of the worker's tasks to the JobManager every
/// [`weir_runtime::metrics::LIVE_METRICS_INTERVAL`], for its REST API. A report that does
/// not get through is dropped: the next one replaces it.
fn report_metrics_periodically(
    env: &WorkerEnv,
    task_manager: Arc<TaskManager>,
    user_metrics: prometheus::Registry,
    client: JobMasterClient<Channel>,
    runtime: tokio::runtime::Handle,
) -> Result<()> {
    let job = env.job;
    let worker = env.task_manager.clone();
    std::thread::Builder::new()
        .name("weir-worker-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(weir_runtime::metrics::LIVE_METRICS_INTERVAL);
            let tasks = task_manager.task_metrics(job);
            if tasks.is_empty() {
                continue;
            }
            let report = TaskMetricsReport {
                job_id: job.to_string(),
                tasks: tasks
                    .into_iter()
                    .map(|t| SubtaskMetrics {
                        vertex: t.vertex.0,
                        subtask: t.subtask,
                        attempt: t.attempt,
                        operators: t.operators.into_iter().map(metrics_to_wire).collect(),
                        backpressured_ms: t.backpressured_ms,
                    })
                    .collect(),
                task_manager_id: worker.clone(),
                user_metrics: user_metrics_to_wire(user_metrics.gather()),
            };
            let mut c = client.clone();
            if let Err(s) = runtime.block_on(async move { c.report_task_metrics(report).await }) {
                tracing::debug!(error = %s.message(), "cannot send task metrics to the JobManager");
            }
        })
        .map(|_| ())
        .map_err(|e| ClusterError::Network {
            context: "cannot start the worker's metrics thread".into(),
            message: e.to_string(),
        })
}

/// The checkpoint responder of one execution attempt in a worker.
struct AttemptReports {
    reports: Arc<Reports>,
    job: JobId,
    attempt: u32,
}

impl CheckpointResponder for AttemptReports {
    fn acknowledge(&self, ack: CheckpointAck) {
        self.reports
            .send(Report::Ack(ack_to_wire(self.job, self.attempt, &ack)));
    }

    fn decline(&self, checkpoint_id: u64, vertex: VertexId, subtask: u32, reason: String) {
        let report = CheckpointDeclineReport {
            job_id: self.job.to_string(),
            attempt: self.attempt,
            checkpoint_id,
            vertex: vertex.0,
            subtask,
            reason,
        };
        self.reports.send(Report::Decline(report));
    }

    fn finished_input(&self, vertex: VertexId, subtask: u32) {
        let report = FinishedInputReport {
            job_id: self.job.to_string(),
            attempt: self.attempt,
            vertex: vertex.0,
            subtask,
        };
        self.reports.send(Report::FinishedInput(report));
    }
}

/// The worker's RPC service over its in-process TaskManager.
#[derive(Clone)]
struct WorkerService {
    job: JobId,
    graph: Arc<JobGraph>,
    code: Arc<dyn JobCode>,
    task_manager: Arc<TaskManager>,
    reports: Arc<Reports>,
    runtime: tokio::runtime::Handle,
}

impl WorkerService {
    fn check_job(&self, id: &str) -> std::result::Result<(), Status> {
        let job = job_id(id, "worker request")?;
        if job != self.job {
            return Err(Status::not_found(format!(
                "this worker runs job {}, not {job}",
                self.job
            )));
        }
        Ok(())
    }

    fn check_vertex(&self, vertex: u32, subtask: u32) -> std::result::Result<(), Status> {
        match self.graph.vertices.iter().find(|v| v.id.0 == vertex) {
            Some(v) if subtask < v.parallelism => Ok(()),
            _ => Err(Status::invalid_argument(format!(
                "the job has no subtask {subtask} of vertex {vertex}"
            ))),
        }
    }

    fn deployment(&self, r: SubmitTaskRequest) -> std::result::Result<TaskDeployment, Status> {
        self.check_job(&r.job_id)?;
        self.check_vertex(r.vertex, r.subtask)?;
        let mut locations = TaskLocations::default();
        for v in r.locations {
            let addrs = v
                .data_addresses
                .iter()
                .map(|a| {
                    a.parse::<SocketAddr>()
                        .map_err(|_| Status::invalid_argument(format!("bad data address '{a}'")))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            locations.by_vertex.insert(v.vertex, addrs);
        }
        let restore = match r.restore_location {
            None => None,
            Some(location) => {
                let metadata = CheckpointStorage::open(&location)
                    .and_then(|s| SnapshotMetadata::read(&s))
                    .map_err(|e| {
                        Status::failed_precondition(format!(
                            "cannot read the snapshot '{location}' to restore from: {e}"
                        ))
                    })?;
                Some(RestorePoint {
                    location,
                    metadata: Arc::new(metadata),
                })
            }
        };
        Ok(TaskDeployment {
            job: self.job,
            graph: self.graph.clone(),
            vertex: VertexId(r.vertex),
            subtask: r.subtask,
            code: self.code.clone(),
            job_master: self.reports.clone(),
            checkpoints: Some(Arc::new(AttemptReports {
                reports: self.reports.clone(),
                job: self.job,
                attempt: r.attempt,
            })),
            attempt: r.attempt,
            restore,
            locations: Some(Arc::new(locations)),
        })
    }
}

#[tonic::async_trait]
impl WorkerRpc for WorkerService {
    async fn submit_task(
        &self,
        request: Request<SubmitTaskRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let me = self.clone();
        // Deploying reads the snapshot's metadata and opens connections to other workers:
        // blocking work, not for the async threads.
        self.runtime
            .spawn_blocking(move || {
                let d = me.deployment(r)?;
                me.task_manager
                    .submit_task(d)
                    .map_err(|e| Status::failed_precondition(e.to_string()))
            })
            .await
            .map_err(|e| Status::internal(format!("deploying the task panicked: {e}")))??;
        Ok(Response::new(Empty {}))
    }

    async fn cancel_job_tasks(
        &self,
        request: Request<JobRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        self.check_job(&request.get_ref().job_id)?;
        self.task_manager.cancel_job_tasks(self.job);
        Ok(Response::new(Empty {}))
    }

    async fn send_task_control(
        &self,
        request: Request<TaskControlRequest>,
    ) -> std::result::Result<Response<TaskControlResponse>, Status> {
        let r = request.into_inner();
        self.check_job(&r.job_id)?;
        let control = control_from_wire(&r)?;
        let delivered =
            self.task_manager
                .send_task_control(self.job, VertexId(r.vertex), r.subtask, control);
        Ok(Response::new(TaskControlResponse { delivered }))
    }
}
