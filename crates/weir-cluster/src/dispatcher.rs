//! The Dispatcher: accepts jobs, starts a JobMaster for each, and answers for their status
//! and results.

use crate::coordinator::CheckpointStatsCell;
use crate::error::{ClusterError, Result};
use crate::gateway::{DispatcherGateway, JobMasterGateway, ResourceManagerGateway};
use crate::job_master::{self, JobMasterHandle, JobMasterParams, StatusCell};
use crate::result::{CheckpointHistory, JobExecutionResult, JobStatus};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use weir_core::{JobGraph, JobId};
use weir_runtime::deploy::JobCode;

#[derive(Default)]
struct ResultCell {
    value: Mutex<Option<Result<JobExecutionResult>>>,
    ready: Condvar,
}

struct JobEntry {
    name: String,
    graph: Arc<JobGraph>,
    status: StatusCell,
    checkpoints: CheckpointStatsCell,
    exceptions: crate::result::ExceptionHistory,
    /// Submission time, ms since the epoch.
    start_ms: u64,
    /// When the job ended (set by its JobMaster's end).
    end_ms: Arc<Mutex<Option<u64>>>,
    master: Arc<JobMasterHandle>,
    result: Arc<ResultCell>,
}

/// Hook called when a job ends, to free per-job resources (e.g. shuffle inboxes).
pub type JobEndHook = Arc<dyn Fn(JobId) + Send + Sync>;

/// Accepts and tracks jobs.
pub struct Dispatcher {
    resource_manager: Arc<dyn ResourceManagerGateway>,
    metrics: Arc<crate::metrics::ClusterMetrics>,
    jobs: Mutex<HashMap<JobId, JobEntry>>,
    on_job_end: JobEndHook,
}

impl Dispatcher {
    /// A Dispatcher that schedules on `resource_manager`'s slots and reports to `metrics`.
    pub fn new(
        resource_manager: Arc<dyn ResourceManagerGateway>,
        on_job_end: JobEndHook,
        metrics: Arc<crate::metrics::ClusterMetrics>,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            resource_manager,
            metrics,
            jobs: Mutex::new(HashMap::new()),
            on_job_end,
        })
    }

    fn with_job<R>(&self, job: JobId, f: impl FnOnce(&JobEntry) -> R) -> Result<R> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(&job).map(f).ok_or(ClusterError::UnknownJob(job))
    }
}

impl DispatcherGateway for Dispatcher {
    fn submit_job(&self, graph: JobGraph, code: Arc<dyn JobCode>) -> Result<JobId> {
        let job = JobId::generate();
        let name = graph.name.clone();
        tracing::info!(job = %job, name = %name, "job submitted");
        let status: StatusCell = Arc::new(Mutex::new(JobStatus::Created));
        let checkpoints: CheckpointStatsCell = Arc::new(Mutex::new(CheckpointHistory::default()));
        let exceptions = crate::result::ExceptionHistory::default();
        let start_ms = crate::result::epoch_ms();
        let end_ms: Arc<Mutex<Option<u64>>> = Arc::default();
        let ended = end_ms.clone();
        let result = Arc::new(ResultCell::default());
        let cell = result.clone();
        let graph = Arc::new(graph);
        let on_end = self.on_job_end.clone();
        let master = job_master::spawn(
            JobMasterParams {
                job,
                graph: graph.clone(),
                code,
                resource_manager: self.resource_manager.clone(),
                status: status.clone(),
                checkpoint_stats: checkpoints.clone(),
                exceptions: exceptions.clone(),
                metrics: self.metrics.clone(),
            },
            move |r| {
                *ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(crate::result::epoch_ms());
                on_end(job);
                *cell.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                cell.ready.notify_all();
            },
        )?;
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            job,
            JobEntry {
                name,
                graph,
                status,
                checkpoints,
                exceptions,
                start_ms,
                end_ms,
                master,
                result,
            },
        );
        Ok(job)
    }

    fn job_status(&self, job: JobId) -> Result<JobStatus> {
        self.with_job(job, |e| *e.status.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn job_graph(&self, job: JobId) -> Result<Arc<JobGraph>> {
        self.with_job(job, |e| e.graph.clone())
    }

    fn job_times(&self, job: JobId) -> Result<crate::result::JobTimes> {
        self.with_job(job, |e| crate::result::JobTimes {
            start_ms: e.start_ms,
            end_ms: *e.end_ms.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    fn job_exceptions(&self, job: JobId) -> Result<Vec<crate::result::JobException>> {
        self.with_job(job, |e| {
            e.exceptions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    fn checkpoint_stats(&self, job: JobId) -> Result<CheckpointHistory> {
        self.with_job(job, |e| {
            e.checkpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    fn trigger_savepoint(&self, job: JobId, target_dir: String, stop: bool) -> Result<String> {
        let master = self.with_job(job, |e| e.master.clone())?;
        let (tx, rx) = std::sync::mpsc::channel();
        master.trigger_savepoint(target_dir, stop, tx);
        rx.recv().map_err(|_| ClusterError::Savepoint {
            job,
            message: "the job ended before the savepoint was taken".into(),
        })?
    }

    fn cancel_job(&self, job: JobId) -> Result<()> {
        self.with_job(job, |e| e.master.cancel())
    }

    fn request_job_result(&self, job: JobId) -> Result<JobExecutionResult> {
        let cell = self.with_job(job, |e| e.result.clone())?;
        let mut v = cell.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = v.as_ref() {
                return r.clone();
            }
            v = cell.ready.wait(v).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn list_jobs(&self) -> Vec<(JobId, String, JobStatus)> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter()
            .map(|(id, e)| {
                (
                    *id,
                    e.name.clone(),
                    *e.status.lock().unwrap_or_else(|p| p.into_inner()),
                )
            })
            .collect()
    }
}
