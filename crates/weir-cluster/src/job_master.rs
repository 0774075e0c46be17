//! The JobMaster: runs one job. It allocates slots, places subtasks with slot sharing,
//! deploys them, and follows them to the end. The first task failure fails the job: every
//! other task is cancelled and the job's error names the failed task and its cause.
//!
//! Restart strategies and the checkpoint coordinator live here once they exist; for now a
//! failure is final.

use crate::error::{ClusterError, Result};
use crate::gateway::{
    AllocatedSlot, JobMasterGateway, ResourceManagerGateway, TaskDeployment, TaskEnd,
    TaskExecutionState, TaskExecutorGateway,
};
use crate::result::{JobExecutionResult, JobStatus, OperatorSummary};
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::{JobGraph, JobId};
use weir_runtime::deploy::JobCode;

/// How long a failing or cancelling job waits for its tasks to stop before it gives up on
/// them (a task stuck in user code that never returns).
const CANCEL_WAIT: Duration = Duration::from_secs(30);

enum Msg {
    Task(TaskExecutionState),
    Cancel,
}

/// The handle tasks and the Dispatcher use to talk to a JobMaster.
pub struct JobMasterHandle {
    tx: Mutex<Sender<Msg>>,
}

impl JobMasterGateway for JobMasterHandle {
    fn update_task_execution_state(&self, state: TaskExecutionState) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        // If the JobMaster is gone the job already ended; nothing to tell.
        let _ = tx.send(Msg::Task(state));
    }

    fn cancel(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(Msg::Cancel);
    }
}

/// Shared, observable status of a job.
pub type StatusCell = Arc<Mutex<JobStatus>>;

/// Everything a JobMaster needs to run a job.
pub struct JobMasterParams {
    /// The job.
    pub job: JobId,
    /// Its graph.
    pub graph: Arc<JobGraph>,
    /// Its code.
    pub code: Arc<dyn JobCode>,
    /// Where slots come from.
    pub resource_manager: Arc<dyn ResourceManagerGateway>,
    /// Where the status is published.
    pub status: StatusCell,
}

/// Starts a JobMaster thread; `done` receives the job's result.
pub fn spawn(
    params: JobMasterParams,
    done: impl FnOnce(Result<JobExecutionResult>) + Send + 'static,
) -> Result<Arc<JobMasterHandle>> {
    let (tx, rx) = channel();
    let handle = Arc::new(JobMasterHandle { tx: Mutex::new(tx) });
    let gateway: Arc<dyn JobMasterGateway> = handle.clone();
    let job = params.job;
    std::thread::Builder::new()
        .name(format!("jobmaster-{}", &job.to_string()[..8]))
        .spawn(move || {
            let result = JobMaster {
                params,
                rx,
                gateway,
            }
            .run();
            done(result)
        })
        .map_err(|e| ClusterError::Deployment {
            job,
            message: format!("cannot start the JobMaster thread: {e}"),
        })?;
    Ok(handle)
}

struct JobMaster {
    params: JobMasterParams,
    rx: Receiver<Msg>,
    gateway: Arc<dyn JobMasterGateway>,
}

impl JobMaster {
    fn set_status(&self, s: JobStatus) {
        *self.params.status.lock().unwrap_or_else(|p| p.into_inner()) = s;
        tracing::info!(job = %self.params.job, name = %self.params.graph.name, status = %s, "job status");
    }

    /// Waits for slots in short steps so a cancel request is seen while waiting.
    fn allocate(&self) -> Result<Option<Vec<AllocatedSlot>>> {
        let p = &self.params;
        let needed = p.graph.required_slots();
        let timeout = Duration::from_millis(p.graph.config.slot_request_timeout_ms);
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let step = left.min(Duration::from_millis(100));
            match p.resource_manager.request_slots(p.job, needed, step) {
                Ok(slots) => return Ok(Some(slots)),
                Err(ClusterError::NotEnoughSlots { total, free, .. }) if left > step => {
                    tracing::debug!(job = %p.job, needed, total, free, "waiting for slots");
                }
                Err(ClusterError::NotEnoughSlots { total, free, .. }) => {
                    return Err(ClusterError::NotEnoughSlots {
                        job: p.job,
                        needed,
                        total,
                        free,
                        waited_ms: start.elapsed().as_millis() as u64,
                    })
                }
                Err(e) => return Err(e),
            }
            if let Ok(Msg::Cancel) = self.rx.try_recv() {
                return Ok(None);
            }
        }
    }

    fn run(self) -> Result<JobExecutionResult> {
        let p = &self.params;
        let job = p.job;
        self.set_status(JobStatus::Created);
        let slots = match self.allocate() {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.set_status(JobStatus::Canceled);
                return Err(ClusterError::Cancelled(job));
            }
            Err(e) => {
                self.set_status(JobStatus::Failed);
                return Err(e);
            }
        };
        let result = self.execute(&slots);
        p.resource_manager.release_slots(job);
        self.set_status(match &result {
            Ok(_) => JobStatus::Finished,
            Err(ClusterError::Cancelled(_)) => JobStatus::Canceled,
            Err(_) => JobStatus::Failed,
        });
        result
    }

    fn execute(&self, slots: &[AllocatedSlot]) -> Result<JobExecutionResult> {
        let p = &self.params;
        let graph = &p.graph;
        let start = Instant::now();
        // Slot sharing: group g gets a contiguous run of slots; subtask i of every vertex in
        // the group goes to the group's slot i.
        let mut group_base: BTreeMap<&str, (usize, u32)> = BTreeMap::new();
        for v in &graph.vertices {
            let e = group_base.entry(v.slot_sharing_group.as_str()).or_default();
            e.1 = e.1.max(v.parallelism);
        }
        let mut next = 0;
        for (_, (base, width)) in group_base.iter_mut() {
            *base = next;
            next += *width as usize;
        }
        let mut gateways: Vec<Arc<dyn TaskExecutorGateway>> = Vec::new();
        let mut total = 0;
        let mut deploy_error = None;
        'deploy: for v in &graph.vertices {
            let base = group_base[v.slot_sharing_group.as_str()].0;
            for s in 0..v.parallelism {
                let slot = &slots[base + s as usize];
                if !gateways.iter().any(|g| Arc::ptr_eq(g, &slot.gateway)) {
                    gateways.push(slot.gateway.clone());
                }
                let d = TaskDeployment {
                    job: p.job,
                    graph: graph.clone(),
                    vertex: v.id,
                    subtask: s,
                    code: p.code.clone(),
                    job_master: self.gateway.clone(),
                };
                if let Err(e) = slot.gateway.submit_task(d) {
                    deploy_error = Some(e);
                    break 'deploy;
                }
                total += 1;
            }
        }
        self.set_status(JobStatus::Running);

        let mut failure: Option<ClusterError> = deploy_error;
        let mut cancelled = false;
        let cancel_all = |gws: &[Arc<dyn TaskExecutorGateway>]| {
            for g in gws {
                g.cancel_job_tasks(p.job);
            }
        };
        if failure.is_some() {
            self.set_status(JobStatus::Failing);
            cancel_all(&gateways);
        }
        let mut ended = 0;
        let mut metrics: BTreeMap<u32, OperatorSummary> = BTreeMap::new();
        let mut backpressured_ms = 0;
        let mut stop_deadline: Option<Instant> = None;
        while ended < total {
            let msg = match stop_deadline {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => self
                    .rx
                    .recv_timeout(d.saturating_duration_since(Instant::now())),
            };
            let msg = match msg {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(job = %p.job, "{} tasks did not stop within {:?}; giving up on them", total - ended, CANCEL_WAIT);
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Msg::Cancel => {
                    if failure.is_none() && !cancelled {
                        cancelled = true;
                        self.set_status(JobStatus::Cancelling);
                        cancel_all(&gateways);
                        stop_deadline = Some(Instant::now() + CANCEL_WAIT);
                    }
                }
                Msg::Task(state) => {
                    ended += 1;
                    backpressured_ms += state.backpressured_ms;
                    for m in state.metrics {
                        let e = metrics.entry(m.node).or_insert_with(|| OperatorSummary {
                            node: m.node,
                            name: m.name.clone(),
                            ..Default::default()
                        });
                        e.records_in += m.records_in;
                        e.records_out += m.records_out;
                        e.state_entries += m.state_entries;
                    }
                    if let TaskEnd::Failed(err) = state.end {
                        let v = graph.vertex(state.vertex);
                        tracing::error!(job = %p.job, task = %v.name, subtask = state.subtask, error = %err, "task failed");
                        if failure.is_none() && !cancelled {
                            failure = Some(ClusterError::TaskFailed {
                                task: v.name.clone(),
                                subtask: state.subtask,
                                parallelism: v.parallelism,
                                source: Arc::new(err),
                            });
                            self.set_status(JobStatus::Failing);
                            cancel_all(&gateways);
                            stop_deadline = Some(Instant::now() + CANCEL_WAIT);
                        }
                    }
                }
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }
        if cancelled {
            return Err(ClusterError::Cancelled(p.job));
        }
        Ok(JobExecutionResult {
            job_id: p.job,
            job_name: graph.name.clone(),
            net_runtime: start.elapsed(),
            operators: metrics.into_values().collect(),
            backpressured_ms,
        })
    }
}
