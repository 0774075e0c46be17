//! The interfaces between cluster roles (Flink's RPC gateways).
//!
//! In the mini-cluster they are plain method calls on shared objects; the networked cluster
//! implements the same traits over gRPC. Calls never block on the callee's work, except
//! where a method says it waits.

use crate::error::Result;
use crate::result::{CheckpointHistory, JobExecutionResult, JobStatus};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use weir_core::{JobGraph, JobId, VertexId};
use weir_runtime::checkpoint::CheckpointResponder;
use weir_runtime::deploy::JobCode;
use weir_runtime::inbox::TaskControl;
use weir_runtime::metrics::OperatorMetrics;
use weir_runtime::RuntimeError;
use weir_state::SnapshotMetadata;

/// A snapshot a deployment restores from: its directory and its metadata.
#[derive(Clone, Debug)]
pub struct RestorePoint {
    /// The snapshot's directory (path or URL).
    pub location: String,
    /// Its `_metadata`.
    pub metadata: Arc<SnapshotMetadata>,
}

/// Identifies a TaskManager.
pub type TaskManagerId = String;

/// A slot handed to a job.
#[derive(Clone)]
pub struct AllocatedSlot {
    /// The TaskManager holding the slot.
    pub task_manager: TaskManagerId,
    /// Slot index within the TaskManager.
    pub index: usize,
    /// How to deploy to that TaskManager.
    pub gateway: Arc<dyn TaskExecutorGateway>,
}

/// Free and total slots of the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotReport {
    /// Registered TaskManagers.
    pub task_managers: usize,
    /// Slots in all TaskManagers.
    pub total: usize,
    /// Slots not allocated to a job.
    pub free: usize,
}

/// The ResourceManager: who has slots, and who gets them.
pub trait ResourceManagerGateway: Send + Sync {
    /// A TaskManager offers `slots` slots.
    fn register_task_manager(
        &self,
        id: TaskManagerId,
        slots: usize,
        gateway: Arc<dyn TaskExecutorGateway>,
    );
    /// Allocates `count` slots to `job`, all or none, waiting up to `timeout` for them.
    fn request_slots(
        &self,
        job: JobId,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<AllocatedSlot>>;
    /// Returns every slot of `job`.
    fn release_slots(&self, job: JobId);
    /// Current slot counts.
    fn slot_report(&self) -> SlotReport;
    /// True while `slot`'s TaskManager is still registered as it was when the slot was
    /// handed out: not lost, not gone, and not registered again (which starts afresh, with
    /// all its slots free).
    fn still_holds(&self, slot: &AllocatedSlot) -> bool;
}

/// What a TaskManager deploys: one subtask of one vertex.
#[derive(Clone)]
pub struct TaskDeployment {
    /// The job.
    pub job: JobId,
    /// The whole job graph (shared).
    pub graph: Arc<JobGraph>,
    /// The vertex.
    pub vertex: VertexId,
    /// Subtask index, from 0.
    pub subtask: u32,
    /// The job's code.
    pub code: Arc<dyn JobCode>,
    /// Where the task reports its end.
    pub job_master: Arc<dyn TaskStateListener>,
    /// Where the task reports checkpoints; `None` outside checkpointing.
    pub checkpoints: Option<Arc<dyn CheckpointResponder>>,
    /// The execution attempt (0 first, +1 per restart): tasks of different attempts never
    /// exchange data.
    pub attempt: u32,
    /// The snapshot to restore state from.
    pub restore: Option<RestorePoint>,
    /// Where the job's subtasks run, when they run in several processes; `None` when
    /// every subtask is in this process.
    pub locations: Option<Arc<TaskLocations>>,
}

/// The data address of the process each subtask of a job runs in: where its output
/// channels are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskLocations {
    /// By vertex id, one address per subtask.
    pub by_vertex: std::collections::BTreeMap<u32, Vec<SocketAddr>>,
}

impl TaskLocations {
    /// Where subtask `subtask` of `vertex` runs, if known.
    pub fn get(&self, vertex: VertexId, subtask: u32) -> Option<SocketAddr> {
        self.by_vertex
            .get(&vertex.0)
            .and_then(|v| v.get(subtask as usize))
            .copied()
    }
}

/// A TaskManager's task-facing interface (Flink's `TaskExecutorGateway`).
pub trait TaskExecutorGateway: Send + Sync {
    /// Gets the job's code ready on this TaskManager before its tasks are deployed, and
    /// returns the data address its tasks there will publish their channels on; `None` when
    /// the tasks run in this process and exchange data through the local shuffle.
    fn prepare_job(
        &self,
        job: JobId,
        graph: &Arc<JobGraph>,
        code: &Arc<dyn JobCode>,
    ) -> Result<Option<SocketAddr>> {
        let _ = (job, graph, code);
        Ok(None)
    }
    /// The job ended: whatever [`prepare_job`](Self::prepare_job) started for it is stopped.
    fn release_job(&self, job: JobId) {
        let _ = job;
    }
    /// Starts a task; its end is reported to the deployment's JobMaster.
    fn submit_task(&self, deployment: TaskDeployment) -> Result<()>;
    /// Cancels every task of `job` on this TaskManager.
    fn cancel_job_tasks(&self, job: JobId);
    /// Delivers a control request to a running task; false if it is not running here.
    fn send_task_control(
        &self,
        job: JobId,
        vertex: VertexId,
        subtask: u32,
        control: TaskControl,
    ) -> bool;
    /// Tasks whose thread is still alive.
    fn running_tasks(&self) -> usize;
}

/// How a task ended.
#[derive(Debug)]
pub enum TaskEnd {
    /// Input ended and every operator finished.
    Finished,
    /// Stopped because it was cancelled.
    Canceled,
    /// Failed with an error.
    Failed(RuntimeError),
}

/// A task's final report.
pub struct TaskExecutionState {
    /// The job.
    pub job: JobId,
    /// The vertex.
    pub vertex: VertexId,
    /// Subtask index.
    pub subtask: u32,
    /// How it ended.
    pub end: TaskEnd,
    /// Per-operator counters of this subtask.
    pub metrics: Vec<OperatorMetrics>,
    /// Time its writers waited for buffers, in ms.
    pub backpressured_ms: u64,
    /// The execution attempt the task belonged to.
    pub attempt: u32,
}

/// Where tasks report how they ended: their JobMaster, in this process or over RPC.
pub trait TaskStateListener: Send + Sync {
    /// A task reached an end state.
    fn update_task_execution_state(&self, state: TaskExecutionState);
}

/// A JobMaster, as tasks and the Dispatcher see it.
pub trait JobMasterGateway: TaskStateListener {
    /// The user asked to cancel the job.
    fn cancel(&self);
    /// Takes a savepoint into a new directory below `target_dir`; with `stop` the sources
    /// end right after it (stop-with-savepoint). `reply` gets the savepoint's directory.
    fn trigger_savepoint(&self, target_dir: String, stop: bool, reply: SavepointReply);
}

/// Where the outcome of a savepoint request goes: its directory, or why it failed.
pub type SavepointReply = std::sync::mpsc::Sender<Result<String>>;

/// The Dispatcher, as clients see it.
pub trait DispatcherGateway: Send + Sync {
    /// Accepts a job and starts its JobMaster.
    fn submit_job(&self, graph: JobGraph, code: Arc<dyn JobCode>) -> Result<JobId>;
    /// The job's current status.
    fn job_status(&self, job: JobId) -> Result<JobStatus>;
    /// The job's checkpoint counts and history so far.
    fn checkpoint_stats(&self, job: JobId) -> Result<CheckpointHistory>;
    /// When the job was submitted and when it ended.
    fn job_times(&self, job: JobId) -> Result<crate::result::JobTimes>;
    /// The job's failures so far, oldest first.
    fn job_exceptions(&self, job: JobId) -> Result<Vec<crate::result::JobException>>;
    /// The job's graph, as submitted.
    fn job_graph(&self, job: JobId) -> Result<Arc<JobGraph>>;
    /// Takes a savepoint of a running job into a new directory below `target_dir` and
    /// waits for it; with `stop` the job then ends. Returns the savepoint's directory.
    fn trigger_savepoint(&self, job: JobId, target_dir: String, stop: bool) -> Result<String>;
    /// Asks the job to cancel; returns at once.
    fn cancel_job(&self, job: JobId) -> Result<()>;
    /// Waits until the job ends and returns its result.
    fn request_job_result(&self, job: JobId) -> Result<JobExecutionResult>;
    /// All jobs this dispatcher knows, with name and status.
    fn list_jobs(&self) -> Vec<(JobId, String, JobStatus)>;
}
