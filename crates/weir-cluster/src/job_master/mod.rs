//! The JobMaster: runs one job. It allocates slots, places subtasks with slot sharing,
//! deploys them, runs the checkpoint coordinator, and follows the tasks to the end.
//!
//! A task failure cancels every other task of the execution attempt. The restart strategy
//! then decides: fail the job, or wait and deploy a new attempt that restores every task
//! from the latest completed checkpoint (sources replay from their checkpointed positions).
//! A checkpoint that cannot be restored (a damaged file) is dropped and the one before it
//! is used, where one exists.
//!
//! The end of a job is a protocol too: a task whose input ended finishes its chain and
//! reports it; when every task did, the JobMaster sends the final notice, on which
//! two-phase-commit sinks commit what they prepared at the end, and the tasks end.
//!
//! Each execution attempt is a state machine of its own ([`attempt`]); this module holds
//! what spans attempts: slots, restarts, the restore point and the result.

mod attempt;

use crate::coordinator::{CheckpointCoordinator, CheckpointStatsCell};
use crate::error::{ClusterError, Result};
use crate::gateway::{
    AllocatedSlot, JobMasterGateway, ResourceManagerGateway, RestorePoint, SavepointReply,
    TaskExecutionState, TaskExecutorGateway, TaskStateListener,
};
use crate::restart::RestartBackoff;
use crate::result::{JobExecutionResult, JobStatus, OperatorSummary};
use attempt::Attempt;
use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::{JobGraph, JobId, VertexId};
use weir_runtime::checkpoint::{CheckpointAck, CheckpointResponder};
use weir_runtime::deploy::JobCode;
use weir_runtime::RuntimeError;
use weir_state::{CheckpointStorage, SnapshotMetadata};

/// How many failures a job's exception history keeps (Flink's
/// `web.exception-history-size` default).
pub const EXCEPTION_HISTORY: usize = 16;

enum Msg {
    Task(TaskExecutionState),
    Cancel,
    Ack(u32, CheckpointAck),
    Decline(u32, u64, String),
    FinishedInput(u32, VertexId, u32),
    Savepoint(String, bool, SavepointReply),
}

/// The handle tasks and the Dispatcher use to talk to a JobMaster.
pub struct JobMasterHandle {
    tx: Mutex<Sender<Msg>>,
}

impl JobMasterHandle {
    fn send(&self, m: Msg) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        // If the JobMaster is gone the job already ended; nothing to tell.
        let _ = tx.send(m);
    }
}

impl TaskStateListener for JobMasterHandle {
    fn update_task_execution_state(&self, state: TaskExecutionState) {
        self.send(Msg::Task(state));
    }
}

impl JobMasterGateway for JobMasterHandle {
    fn cancel(&self) {
        self.send(Msg::Cancel);
    }

    fn trigger_savepoint(&self, target_dir: String, stop: bool, reply: SavepointReply) {
        self.send(Msg::Savepoint(target_dir, stop, reply));
    }
}

/// The checkpoint responder of one execution attempt: reports are tagged with the attempt,
/// so late reports of an earlier attempt are ignored.
struct AttemptResponder {
    handle: Arc<JobMasterHandle>,
    attempt: u32,
}

impl CheckpointResponder for AttemptResponder {
    fn acknowledge(&self, ack: CheckpointAck) {
        self.handle.send(Msg::Ack(self.attempt, ack));
    }
    fn decline(&self, checkpoint_id: u64, vertex: VertexId, subtask: u32, reason: String) {
        tracing::debug!(checkpoint_id, vertex = vertex.0, subtask, %reason, "declined");
        self.handle
            .send(Msg::Decline(self.attempt, checkpoint_id, reason));
    }
    fn finished_input(&self, vertex: VertexId, subtask: u32) {
        self.handle
            .send(Msg::FinishedInput(self.attempt, vertex, subtask));
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
    /// Where checkpoint statistics are published.
    pub checkpoint_stats: CheckpointStatsCell,
    /// Where failures are recorded.
    pub exceptions: crate::result::ExceptionHistory,
    /// The cluster's metrics registry.
    pub metrics: Arc<crate::metrics::ClusterMetrics>,
}

/// Starts a JobMaster thread; `done` receives the job's result.
pub fn spawn(
    params: JobMasterParams,
    done: impl FnOnce(Result<JobExecutionResult>) + Send + 'static,
) -> Result<Arc<JobMasterHandle>> {
    let (tx, rx) = channel();
    let handle = Arc::new(JobMasterHandle { tx: Mutex::new(tx) });
    let job = params.job;
    let h = handle.clone();
    std::thread::Builder::new()
        .name(format!("jobmaster-{}", &job.to_string()[..8]))
        .spawn(move || {
            let result = JobMaster {
                params,
                rx,
                handle: h,
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

/// How one execution attempt ended.
enum AttemptEnd {
    Finished,
    Cancelled,
    Failed(ClusterError),
}

/// Counters summed over the tasks of an attempt.
#[derive(Default)]
struct Totals {
    operators: BTreeMap<u32, OperatorSummary>,
    backpressured_ms: u64,
}

struct JobMaster {
    params: JobMasterParams,
    rx: Receiver<Msg>,
    handle: Arc<JobMasterHandle>,
}

/// Tells each TaskManager of `slots` that is not in `keep` that the job is gone from it.
fn release_gateways(job: JobId, slots: &[AllocatedSlot], keep: &[AllocatedSlot]) {
    let mut released: Vec<&Arc<dyn TaskExecutorGateway>> = Vec::new();
    for slot in slots {
        let kept = keep.iter().any(|k| Arc::ptr_eq(&k.gateway, &slot.gateway));
        if !kept && !released.iter().any(|g| Arc::ptr_eq(g, &slot.gateway)) {
            slot.gateway.release_job(job);
            released.push(&slot.gateway);
        }
    }
}

/// Reads the savepoint or checkpoint a job is configured to start from, and checks that
/// its state belongs to the job's operators.
fn initial_restore(job: JobId, graph: &JobGraph) -> Result<Option<RestorePoint>> {
    let Some(r) = &graph.config.restore else {
        return Ok(None);
    };
    let fail = |message: String| ClusterError::Deployment { job, message };
    let storage = CheckpointStorage::open(&r.path)
        .map_err(|e| fail(format!("cannot open savepoint '{}': {e}", r.path)))?;
    let metadata = SnapshotMetadata::read(&storage)
        .map_err(|e| fail(format!("cannot read savepoint '{}': {e}", r.path)))?;
    let in_flight: Vec<String> = graph
        .vertices
        .iter()
        .map(|v| weir_runtime::checkpoint::in_flight_uid(v.id))
        .collect();
    let uids: HashSet<&str> = graph
        .vertices
        .iter()
        .flat_map(|v| v.operators.iter().map(|o| o.uid.as_str()))
        .chain(in_flight.iter().map(String::as_str))
        .collect();
    let unknown: Vec<String> = metadata
        .operators
        .iter()
        .filter(|(uid, _)| !uids.contains(uid.as_str()))
        .map(|(uid, m)| format!("'{uid}' ({})", m.name))
        .collect();
    if !unknown.is_empty() && !r.allow_non_restored_state {
        return Err(fail(format!(
            "savepoint '{}' holds state of operators that are not in this job: {}; give those operators the same uid as before, or allow non-restored state to drop it",
            r.path,
            unknown.join(", ")
        )));
    }
    for u in &unknown {
        tracing::warn!(job = %job, operator = %u, "state in the savepoint is not restored: no operator has its uid");
    }
    Ok(Some(RestorePoint {
        location: storage.location().to_string(),
        metadata: Arc::new(metadata),
    }))
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
        let mut slots = match self.allocate() {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.set_status(JobStatus::Canceled);
                return Err(ClusterError::Cancelled(job));
            }
            Err(e) => {
                self.record_exception(&e);
                self.set_status(JobStatus::Failed);
                return Err(e);
            }
        };
        let result = self.execute(&mut slots);
        release_gateways(job, &slots, &[]);
        p.resource_manager.release_slots(job);
        self.set_status(match &result {
            Ok(_) => JobStatus::Finished,
            Err(ClusterError::Cancelled(_)) => JobStatus::Canceled,
            Err(_) => JobStatus::Failed,
        });
        result
    }

    /// Before a restart: keeps the slots if every TaskManager holding one is still there;
    /// otherwise (a TaskManager was lost) gives them back and asks for a new set, waiting
    /// for slots as at the start, and releases the job on TaskManagers no longer used.
    /// `Ok(false)` if the job was cancelled meanwhile.
    fn reallocate(&self, slots: &mut Vec<AllocatedSlot>) -> Result<bool> {
        let p = &self.params;
        let lost: Vec<&str> = slots
            .iter()
            .filter(|s| !p.resource_manager.still_holds(s))
            .map(|s| s.task_manager.as_str())
            .collect();
        if lost.is_empty() {
            return Ok(true);
        }
        tracing::warn!(job = %p.job, lost = ?lost, "TaskManagers of the job are gone; asking for new slots");
        p.resource_manager.release_slots(p.job);
        match self.allocate()? {
            Some(new) => {
                release_gateways(p.job, slots, &new);
                *slots = new;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs attempts until the job finishes, is cancelled, or may not restart any more.
    fn execute(&self, slots: &mut Vec<AllocatedSlot>) -> Result<JobExecutionResult> {
        let p = &self.params;
        let start = Instant::now();
        let mut coord = CheckpointCoordinator::new(
            p.job,
            p.graph.clone(),
            p.checkpoint_stats.clone(),
            p.metrics.clone(),
        )
        .map_err(|e| ClusterError::Deployment {
            job: p.job,
            message: format!("cannot open checkpoint storage: {e}"),
        })?;
        let initial = initial_restore(p.job, &p.graph)?;
        let mut restore = initial.clone();
        let mut backoff = RestartBackoff::new(p.graph.config.effective_restart_strategy());
        let mut attempt = 0u32;
        let totals = loop {
            if let Some(r) = &restore {
                coord.continue_after(r.metadata.checkpoint_id);
                let (id, loc) = (r.metadata.checkpoint_id, r.location.clone());
                p.checkpoint_stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .restored_from = Some((id, loc));
                tracing::info!(job = %p.job, checkpoint = id, location = %r.location, "restoring state");
            }
            let mut totals = Totals::default();
            let end = self.run_attempt(attempt, slots, restore.clone(), &mut coord, &mut totals);
            coord.abort_all("the execution attempt ended");
            let err = match end {
                AttemptEnd::Finished => break totals,
                AttemptEnd::Cancelled => {
                    coord.shutdown();
                    return Err(ClusterError::Cancelled(p.job));
                }
                AttemptEnd::Failed(e) => e,
            };
            self.record_exception(&err);
            if let ClusterError::JobBinary { .. } = err {
                tracing::error!(job = %p.job, error = %err, "the job cannot run; it is not restarted");
                coord.shutdown();
                return Err(err);
            }
            // A checkpoint that cannot be read is dropped; an earlier one is used instead.
            if let Some(RuntimeError::Restore { checkpoint_id, .. }) = err.task_error() {
                let from_coordinator = restore
                    .as_ref()
                    .is_some_and(|r| r.metadata.checkpoint_id == *checkpoint_id)
                    && initial
                        .as_ref()
                        .is_none_or(|i| i.metadata.checkpoint_id != *checkpoint_id);
                if !from_coordinator {
                    coord.shutdown();
                    return Err(err);
                }
                tracing::error!(job = %p.job, checkpoint = checkpoint_id, error = %err, "checkpoint cannot be restored; falling back to an earlier one (output committed after that one is written again)");
                coord.discard(*checkpoint_id);
                if coord.latest().is_none() && initial.is_none() {
                    coord.shutdown();
                    return Err(ClusterError::Deployment {
                        job: p.job,
                        message: format!(
                            "no complete checkpoint can be restored (the last one failed: {err}); starting over would replay output that was already committed"
                        ),
                    });
                }
            }
            if let Some(id) = coord.stopped_at_savepoint() {
                // The user stopped the job with savepoint `id`; restarting would run it on.
                tracing::error!(job = %p.job, savepoint = id, error = %err, "a task failed after the stop-with-savepoint completed; the job ends failed (the savepoint is complete)");
                coord.shutdown();
                return Err(err);
            }
            let Some(delay) = backoff.on_failure(Instant::now()) else {
                coord.shutdown();
                return Err(err);
            };
            tracing::warn!(job = %p.job, error = %err, delay_ms = delay.as_millis() as u64, restarts = backoff.restarts(), "restarting the job");
            self.set_status(JobStatus::Restarting);
            p.metrics.restarted(&p.job.to_string(), &p.graph.name);
            if self.wait_or_cancel(delay) {
                coord.shutdown();
                return Err(ClusterError::Cancelled(p.job));
            }
            match self.reallocate(slots) {
                Ok(true) => {}
                Ok(false) => {
                    coord.shutdown();
                    return Err(ClusterError::Cancelled(p.job));
                }
                Err(e) => {
                    coord.shutdown();
                    return Err(e);
                }
            }
            restore = coord.latest().or_else(|| initial.clone());
            attempt += 1;
        };
        coord.shutdown();
        let checkpoints = p
            .checkpoint_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(JobExecutionResult {
            job_id: p.job,
            job_name: p.graph.name.clone(),
            net_runtime: start.elapsed(),
            operators: totals.operators.into_values().collect(),
            backpressured_ms: totals.backpressured_ms,
            restarts: backoff.restarts(),
            checkpoints,
        })
    }

    /// Adds an attempt's failure to the job's exception history (the newest
    /// [`EXCEPTION_HISTORY`] are kept).
    fn record_exception(&self, err: &ClusterError) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (name, task) = match err {
            ClusterError::TaskFailed {
                task,
                subtask,
                parallelism,
                ..
            } => (
                "TaskFailed",
                Some(format!("{task} ({}/{parallelism})", subtask + 1)),
            ),
            ClusterError::Checkpointing { .. } => ("CheckpointingFailed", None),
            ClusterError::Deployment { .. } => ("DeploymentFailed", None),
            ClusterError::JobBinary { .. } => ("JobBinaryFailed", None),
            ClusterError::NotEnoughSlots { .. } => ("NotEnoughSlots", None),
            _ => ("JobFailed", None),
        };
        let mut history = self
            .params
            .exceptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        history.push(crate::result::JobException {
            timestamp_ms: now,
            name: name.to_string(),
            message: err.to_string(),
            task,
        });
        // One more than shown: the REST API says the history was truncated when it is there.
        let excess = history.len().saturating_sub(EXCEPTION_HISTORY + 1);
        history.drain(..excess);
    }

    /// Sleeps `delay` while draining stale messages; true if the job was cancelled.
    fn wait_or_cancel(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(Msg::Cancel) => return true,
                Ok(Msg::Savepoint(_, _, reply)) => {
                    let _ = reply.send(Err(ClusterError::Savepoint {
                        job: self.params.job,
                        message: "the job is restarting".into(),
                    }));
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return true,
            }
        }
    }

    fn run_attempt(
        &self,
        attempt: u32,
        slots: &[AllocatedSlot],
        restore: Option<RestorePoint>,
        coord: &mut CheckpointCoordinator,
        totals: &mut Totals,
    ) -> AttemptEnd {
        let a = Attempt::deploy(self, attempt, slots, restore);
        coord.start_attempt(a.tasks());
        a.run(coord, totals)
    }
}
