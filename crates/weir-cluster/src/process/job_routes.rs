//! Where reports from tasks in worker processes go in the JobManager: each job's JobMaster
//! and the checkpoint responder of each execution attempt, and the JobMaster RPC service
//! that receives those reports.
//!
//! The table also knows which subtasks were deployed to which TaskManager and have not
//! reported their end, so that a worker process that dies (a crash, `kill -9`) or a
//! TaskManager that is lost fails exactly those subtasks, and their JobMaster restarts or
//! fails the job as its restart strategy says. Other jobs are not touched.

use crate::gateway::{
    TaskDeployment, TaskEnd, TaskExecutionState, TaskManagerId, TaskStateListener,
};
use crate::rpc::convert::{
    ack_from_wire, job_id, metrics_from_wire, task_state_from_wire, user_metrics_from_wire,
};
use crate::rpc::job_master::job_master_server::JobMaster as JobMasterRpc;
use crate::rpc::{
    CheckpointAckReport, CheckpointDeclineReport, Empty, FinishedInputReport, GroupLow,
    TaskExecutionStateReport, TaskMetricsReport, WatermarkSyncRequest, WatermarkSyncResponse,
    WorkerLostReport,
};
use prometheus::proto::MetricFamily;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use weir_core::{JobId, VertexId};
use weir_runtime::checkpoint::CheckpointResponder;
use weir_runtime::RuntimeError;

/// A subtask deployed to a TaskManager that has not reported its end.
struct Outstanding {
    attempt: u32,
    task_manager: TaskManagerId,
}

/// One job's routes.
struct JobRoute {
    master: Arc<dyn TaskStateListener>,
    responders: HashMap<u32, Arc<dyn CheckpointResponder>>,
    outstanding: HashMap<(u32, u32), Outstanding>,
}

/// The JobManager's table of routes, shared by the deploying side and the RPC service.
#[derive(Default)]
pub struct JobRoutes {
    jobs: Mutex<HashMap<JobId, JobRoute>>,
}

impl JobRoutes {
    fn lock(&self) -> MutexGuard<'_, HashMap<JobId, JobRoute>> {
        // Every update is one insert or remove: consistent after a panic.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subtask `d` is being deployed to `task_manager`: its reports go to its JobMaster and
    /// its attempt's checkpoint responder.
    pub fn deploying(&self, d: &TaskDeployment, task_manager: &TaskManagerId) {
        let mut jobs = self.lock();
        let route = jobs.entry(d.job).or_insert_with(|| JobRoute {
            master: d.job_master.clone(),
            responders: HashMap::new(),
            outstanding: HashMap::new(),
        });
        route.master = d.job_master.clone();
        if let Some(r) = &d.checkpoints {
            route.responders.retain(|a, _| *a >= d.attempt);
            route.responders.insert(d.attempt, r.clone());
        }
        route.outstanding.insert(
            (d.vertex.0, d.subtask),
            Outstanding {
                attempt: d.attempt,
                task_manager: task_manager.clone(),
            },
        );
    }

    /// Subtasks deployed to `task_manager` that have not ended.
    pub fn running_on(&self, task_manager: &str) -> usize {
        self.lock()
            .values()
            .flat_map(|r| r.outstanding.values())
            .filter(|o| o.task_manager == task_manager)
            .count()
    }

    /// True while `job` has tasks deployed through this table.
    pub fn knows(&self, job: JobId) -> bool {
        self.lock().contains_key(&job)
    }

    /// The job ended: its routes are dropped.
    pub fn forget(&self, job: JobId) {
        self.lock().remove(&job);
    }

    /// A task's final report. Only a subtask that was deployed and has not ended (or been
    /// declared lost) reports: anything else (a duplicate, a made-up subtask) is dropped, so
    /// nothing from the network can end a subtask twice or one that does not exist.
    pub fn task_ended(&self, state: TaskExecutionState) {
        let master = {
            let mut jobs = self.lock();
            let Some(route) = jobs.get_mut(&state.job) else {
                tracing::debug!(job = %state.job, "a task of an unknown or ended job reported");
                return;
            };
            let key = (state.vertex.0, state.subtask);
            if route
                .outstanding
                .get(&key)
                .is_none_or(|o| o.attempt != state.attempt)
            {
                tracing::debug!(job = %state.job, vertex = key.0, subtask = key.1, attempt = state.attempt, "a report of no running subtask is dropped");
                return;
            }
            route.outstanding.remove(&key);
            route.master.clone()
        };
        master.update_task_execution_state(state);
    }

    /// The checkpoint responder of `attempt`, if subtask `subtask` of `vertex` runs in it.
    fn responder(
        &self,
        job: JobId,
        attempt: u32,
        vertex: u32,
        subtask: u32,
    ) -> Option<Arc<dyn CheckpointResponder>> {
        let jobs = self.lock();
        let route = jobs.get(&job)?;
        route
            .outstanding
            .get(&(vertex, subtask))
            .filter(|o| o.attempt == attempt)?;
        route.responders.get(&attempt).cloned()
    }

    /// Fails every subtask of `job` (all jobs when `None`) on `task_manager` that has not
    /// reported its end: its process is gone, and its report never comes.
    pub fn process_lost(&self, job: Option<JobId>, task_manager: &str, reason: &str) {
        let mut failed = Vec::new();
        {
            let mut jobs = self.lock();
            for (id, route) in jobs.iter_mut() {
                if job.is_some_and(|j| j != *id) {
                    continue;
                }
                let lost: Vec<(u32, u32)> = route
                    .outstanding
                    .iter()
                    .filter(|(_, o)| o.task_manager == task_manager)
                    .map(|(k, _)| *k)
                    .collect();
                for key in lost {
                    if let Some(o) = route.outstanding.remove(&key) {
                        failed.push((route.master.clone(), *id, key, o.attempt));
                    }
                }
            }
        }
        for (master, job, (vertex, subtask), attempt) in failed {
            tracing::warn!(job = %job, vertex, subtask, task_manager, %reason, "a subtask's process is gone");
            master.update_task_execution_state(TaskExecutionState {
                job,
                vertex: VertexId(vertex),
                subtask,
                end: TaskEnd::Failed(RuntimeError::Other(format!(
                    "the process running this subtask on TaskManager {task_manager} is gone: {reason}"
                ))),
                metrics: Vec::new(),
                backpressured_ms: 0,
                attempt,
            });
        }
    }
}

/// The latest counters workers reported for their tasks, by job and subtask, and their user
/// metrics by job and worker: what the REST API shows of a running job on a cluster of
/// processes.
#[derive(Default)]
pub struct TaskMetricsTable {
    jobs: Mutex<HashMap<JobId, SubtaskTable>>,
    user: Mutex<HashMap<JobId, WorkerUserMetrics>>,
}

/// One job's user metrics by worker, with when each worker last reported.
type WorkerUserMetrics = HashMap<String, (Instant, Vec<MetricFamily>)>;

/// How long a worker's user metrics are shown after its last report: a worker that died
/// reports no more, and its series go away (its subtasks' new workers report their own).
const USER_METRICS_TTL: Duration = Duration::from_secs(5);

/// One job's latest counters, by (vertex, subtask).
type SubtaskTable = HashMap<(u32, u32), crate::task_manager::TaskMetrics>;

impl TaskMetricsTable {
    /// Replaces what `worker` reported of `job`'s user metrics.
    fn update_user(&self, job: JobId, worker: String, families: Vec<MetricFamily>) {
        let mut user = self.user.lock().unwrap_or_else(|p| p.into_inner());
        // Reports of workers that stopped reporting (their jobs ended or moved) expire here,
        // so the table holds only what a scrape could still show.
        for workers in user.values_mut() {
            workers.retain(|_, (at, _)| at.elapsed() < USER_METRICS_TTL);
        }
        user.retain(|_, workers| !workers.is_empty());
        user.entry(job)
            .or_default()
            .insert(worker, (Instant::now(), families));
    }

    fn update(&self, job: JobId, tasks: Vec<crate::task_manager::TaskMetrics>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let entries = jobs.entry(job).or_default();
        for t in tasks {
            let key = (t.vertex.0, t.subtask);
            // A report of an older attempt does not replace a newer one.
            if entries.get(&key).is_none_or(|old| old.attempt <= t.attempt) {
                entries.insert(key, t);
            }
        }
    }
}

impl crate::rest::TaskMetricsSource for TaskMetricsTable {
    fn task_metrics(&self, job: JobId) -> Vec<crate::task_manager::TaskMetrics> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn user_metrics(&self, job: JobId) -> Vec<MetricFamily> {
        let mut user = self.user.lock().unwrap_or_else(|p| p.into_inner());
        let Some(workers) = user.get_mut(&job) else {
            return Vec::new();
        };
        workers.retain(|_, (at, _)| at.elapsed() < USER_METRICS_TTL);
        workers
            .values()
            .flat_map(|(_, families)| families.iter().cloned())
            .collect()
    }
}

/// The watermarks of aligned source subtasks by job, group and worker: each worker learns
/// the lowest watermark of its groups' members in the other workers (Flink's source
/// coordinators do this in the JobMaster).
#[derive(Default)]
pub struct WatermarkTable {
    jobs: Mutex<HashMap<JobId, GroupTable>>,
}

/// One job's alignment groups: by group name, each worker's members and watermarks.
type GroupTable = HashMap<String, HashMap<String, Vec<i64>>>;

impl WatermarkTable {
    /// Takes `worker`'s watermarks (replacing what it sent before) and answers, per group,
    /// the lowest watermark of the members in the other workers.
    fn sync(
        &self,
        job: JobId,
        worker: &str,
        groups: Vec<(String, Vec<i64>)>,
    ) -> Vec<(String, Option<i64>)> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let table = jobs.entry(job).or_default();
        groups
            .into_iter()
            .map(|(name, watermarks)| {
                let workers = table.entry(name.clone()).or_default();
                workers.insert(worker.to_string(), watermarks);
                let low = workers
                    .iter()
                    .filter(|(w, _)| w.as_str() != worker)
                    .flat_map(|(_, wms)| wms.iter().copied())
                    .min();
                (name, low)
            })
            .collect()
    }

    /// Forgets `job` (it ended).
    pub fn forget(&self, job: JobId) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job);
    }
}

/// The JobMaster RPC service: tasks in worker processes report here.
pub struct JobMasterService {
    routes: Arc<JobRoutes>,
    metrics: Arc<TaskMetricsTable>,
    watermarks: WatermarkTable,
}

impl JobMasterService {
    /// A service forwarding to `routes` and keeping task counters in `metrics`.
    pub fn new(routes: Arc<JobRoutes>, metrics: Arc<TaskMetricsTable>) -> Self {
        JobMasterService {
            routes,
            metrics,
            watermarks: WatermarkTable::default(),
        }
    }
}

type RpcResult<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl JobMasterRpc for JobMasterService {
    async fn update_task_execution_state(
        &self,
        request: Request<TaskExecutionStateReport>,
    ) -> RpcResult<Empty> {
        let state = task_state_from_wire(request.into_inner())?;
        if !self.routes.knows(state.job) {
            return Ok(Response::new(Empty {}));
        }
        // A task's final counts, exact where the periodic reports may have missed the end.
        self.metrics.update(
            state.job,
            vec![crate::task_manager::TaskMetrics {
                vertex: state.vertex,
                subtask: state.subtask,
                attempt: state.attempt,
                operators: state.metrics.clone(),
                backpressured_ms: state.backpressured_ms,
            }],
        );
        self.routes.task_ended(state);
        Ok(Response::new(Empty {}))
    }

    async fn acknowledge_checkpoint(
        &self,
        request: Request<CheckpointAckReport>,
    ) -> RpcResult<Empty> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "checkpoint acknowledgement")?;
        if let Some(resp) = self.routes.responder(job, r.attempt, r.vertex, r.subtask) {
            resp.acknowledge(ack_from_wire(r));
        }
        Ok(Response::new(Empty {}))
    }

    async fn decline_checkpoint(
        &self,
        request: Request<CheckpointDeclineReport>,
    ) -> RpcResult<Empty> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "checkpoint decline")?;
        if let Some(resp) = self.routes.responder(job, r.attempt, r.vertex, r.subtask) {
            resp.decline(r.checkpoint_id, VertexId(r.vertex), r.subtask, r.reason);
        }
        Ok(Response::new(Empty {}))
    }

    async fn finished_input(&self, request: Request<FinishedInputReport>) -> RpcResult<Empty> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "finished-input report")?;
        if let Some(resp) = self.routes.responder(job, r.attempt, r.vertex, r.subtask) {
            resp.finished_input(VertexId(r.vertex), r.subtask);
        }
        Ok(Response::new(Empty {}))
    }

    async fn report_task_metrics(&self, request: Request<TaskMetricsReport>) -> RpcResult<Empty> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "task metrics report")?;
        if !self.routes.knows(job) {
            return Ok(Response::new(Empty {}));
        }
        let tasks = r
            .tasks
            .into_iter()
            .map(|t| crate::task_manager::TaskMetrics {
                vertex: VertexId(t.vertex),
                subtask: t.subtask,
                attempt: t.attempt,
                operators: t.operators.into_iter().map(metrics_from_wire).collect(),
                backpressured_ms: t.backpressured_ms,
            })
            .collect();
        self.metrics.update(job, tasks);
        let user = user_metrics_from_wire(r.user_metrics)?;
        self.metrics.update_user(job, r.task_manager_id, user);
        Ok(Response::new(Empty {}))
    }

    async fn sync_watermarks(
        &self,
        request: Request<WatermarkSyncRequest>,
    ) -> RpcResult<WatermarkSyncResponse> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "watermark sync")?;
        if !self.routes.knows(job) {
            self.watermarks.forget(job);
            return Err(Status::not_found(format!("job {job} runs no tasks here")));
        }
        let groups = r
            .groups
            .into_iter()
            .map(|g| (g.name, g.members.into_iter().map(|m| m.watermark).collect()))
            .collect();
        let lows = self.watermarks.sync(job, &r.task_manager_id, groups);
        Ok(Response::new(WatermarkSyncResponse {
            groups: lows
                .into_iter()
                .map(|(name, low)| GroupLow { name, low })
                .collect(),
        }))
    }

    async fn worker_lost(&self, request: Request<WorkerLostReport>) -> RpcResult<Empty> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "worker-lost report")?;
        self.routes
            .process_lost(Some(job), &r.task_manager_id, &r.reason);
        Ok(Response::new(Empty {}))
    }
}
