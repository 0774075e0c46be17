//! Messages between the JobManager, TaskManager processes and job workers: preparing a
//! job on a TaskManager, deploying and steering its tasks, and the tasks' reports back to
//! their JobMaster. Field numbers are the wire contract: add fields with new numbers, never
//! reuse one.

/// The JobManager asks a TaskManager to get a job's code ready: fetch its binary from the
/// blob store and start it as the job's worker process.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrepareJobRequest {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The binary's blob key (its SHA-256, hex).
    #[prost(string, tag = "2")]
    pub blob_key: String,
    /// Where the TaskManager downloads blobs: the JobManager's REST address, `HOST:PORT`.
    #[prost(string, tag = "3")]
    pub blob_server: String,
    /// The program's arguments, as the client ran it.
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    /// Environment variables the client ran it with that shape the graph (`WEIR_*`).
    #[prost(message, repeated, tag = "5")]
    pub env: Vec<EnvVar>,
    /// The graph's fingerprint: the worker must build the same graph.
    #[prost(string, tag = "6")]
    pub fingerprint: String,
    /// The JobManager's RPC address, where the worker's tasks report.
    #[prost(string, tag = "7")]
    pub jobmanager_rpc: String,
    /// The JobGraph as submitted (JSON): the worker runs this one.
    #[prost(bytes = "vec", tag = "8")]
    pub job_graph_json: Vec<u8>,
}

/// One environment variable.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnvVar {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The job's worker on that TaskManager is running.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrepareJobResponse {
    /// The worker's RPC address (tasks are deployed there).
    #[prost(string, tag = "1")]
    pub worker_rpc: String,
    /// The worker's data address (its tasks' output channels are read there).
    #[prost(string, tag = "2")]
    pub data_address: String,
}

/// Names a job.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JobRequest {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
}

/// Where the subtasks of one vertex run: the data address of each subtask's process.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VertexLocations {
    /// The vertex id.
    #[prost(uint32, tag = "1")]
    pub vertex: u32,
    /// One data address per subtask, by subtask index.
    #[prost(string, repeated, tag = "2")]
    pub data_addresses: Vec<String>,
}

/// Deploys one subtask into a worker (Flink's TaskDeploymentDescriptor).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubmitTaskRequest {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The vertex.
    #[prost(uint32, tag = "2")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "3")]
    pub subtask: u32,
    /// The execution attempt.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
    /// The snapshot directory to restore from, if any.
    #[prost(string, optional, tag = "5")]
    pub restore_location: Option<String>,
    /// Where every subtask of the job runs, for the channels between them.
    #[prost(message, repeated, tag = "6")]
    pub locations: Vec<VertexLocations>,
}

/// A control request for one running subtask.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskControlRequest {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The vertex.
    #[prost(uint32, tag = "2")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "3")]
    pub subtask: u32,
    /// What to do: see [`ControlKind`].
    #[prost(enumeration = "ControlKind", tag = "4")]
    pub kind: i32,
    /// The checkpoint id (of the barrier or the notice).
    #[prost(uint64, tag = "5")]
    pub checkpoint_id: u64,
    /// The barrier's trigger time, ms since the epoch.
    #[prost(int64, tag = "6")]
    pub timestamp: i64,
    /// The barrier's snapshot directory.
    #[prost(string, tag = "7")]
    pub target: String,
    /// True if the barrier is a savepoint's.
    #[prost(bool, tag = "8")]
    pub savepoint: bool,
    /// True if the barrier is an unaligned checkpoint's (it overtakes queued data).
    #[prost(bool, tag = "9")]
    pub unaligned: bool,
}

/// The kinds of [`TaskControlRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ControlKind {
    /// Not set: rejected.
    Unspecified = 0,
    /// A source takes a checkpoint.
    TriggerCheckpoint = 1,
    /// A source takes a savepoint and then ends.
    StopWithSavepoint = 2,
    /// A checkpoint completed.
    Complete = 3,
    /// A checkpoint was aborted.
    Aborted = 4,
    /// Every task finished: commit what was prepared at the end.
    Final = 5,
}

/// Whether a control request reached a running task.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskControlResponse {
    /// False if the task is not running there.
    #[prost(bool, tag = "1")]
    pub delivered: bool,
}

/// How a task ended, for its JobMaster.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskExecutionStateReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The vertex.
    #[prost(uint32, tag = "2")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "3")]
    pub subtask: u32,
    /// The execution attempt.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
    /// How it ended: see [`TaskEndKind`].
    #[prost(enumeration = "TaskEndKind", tag = "5")]
    pub end: i32,
    /// The failure, when it failed.
    #[prost(string, tag = "6")]
    pub failure: String,
    /// Set when the failure was restoring this checkpoint.
    #[prost(uint64, optional, tag = "7")]
    pub restore_checkpoint_id: Option<u64>,
    /// Per-operator counters.
    #[prost(message, repeated, tag = "8")]
    pub metrics: Vec<OperatorMetricsReport>,
    /// Time its writers waited for buffers, in ms.
    #[prost(uint64, tag = "9")]
    pub backpressured_ms: u64,
}

/// The kinds of task ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TaskEndKind {
    /// Not set: read as a failure.
    Unspecified = 0,
    /// Input ended and every operator finished.
    Finished = 1,
    /// Cancelled.
    Canceled = 2,
    /// Failed.
    Failed = 3,
}

/// One operator's counters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorMetricsReport {
    /// StreamGraph node id.
    #[prost(uint32, tag = "1")]
    pub node: u32,
    /// Operator name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Records in.
    #[prost(uint64, tag = "3")]
    pub records_in: u64,
    /// Records out.
    #[prost(uint64, tag = "4")]
    pub records_out: u64,
    /// State entries.
    #[prost(uint64, tag = "5")]
    pub state_entries: u64,
}

/// A task stored its snapshot of a checkpoint.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointAckReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The execution attempt.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
    /// The checkpoint id.
    #[prost(uint64, tag = "3")]
    pub checkpoint_id: u64,
    /// The vertex.
    #[prost(uint32, tag = "4")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "5")]
    pub subtask: u32,
    /// The state file relative to the snapshot directory, if any.
    #[prost(string, optional, tag = "6")]
    pub file: Option<String>,
    /// Its size in bytes.
    #[prost(uint64, tag = "7")]
    pub file_size: u64,
    /// Per-operator state sizes.
    #[prost(message, repeated, tag = "8")]
    pub operators: Vec<OperatorStateSizeReport>,
    /// Alignment time, ms.
    #[prost(uint64, tag = "9")]
    pub alignment_ms: u64,
    /// Synchronous part, ms.
    #[prost(uint64, tag = "10")]
    pub sync_ms: u64,
    /// Asynchronous part, ms.
    #[prost(uint64, tag = "11")]
    pub async_ms: u64,
    /// Shared state files referred to.
    #[prost(string, repeated, tag = "12")]
    pub shared_files: Vec<String>,
}

/// One operator's part of a snapshot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorStateSizeReport {
    /// Operator uid.
    #[prost(string, tag = "1")]
    pub uid: String,
    /// Bytes.
    #[prost(uint64, tag = "2")]
    pub bytes: u64,
    /// Keyed state.
    #[prost(bool, tag = "3")]
    pub keyed: bool,
    /// Union list state.
    #[prost(bool, tag = "4")]
    pub union: bool,
}

/// A task cannot take a checkpoint.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckpointDeclineReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The execution attempt.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
    /// The checkpoint id.
    #[prost(uint64, tag = "3")]
    pub checkpoint_id: u64,
    /// The vertex.
    #[prost(uint32, tag = "4")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "5")]
    pub subtask: u32,
    /// Why.
    #[prost(string, tag = "6")]
    pub reason: String,
}

/// A task's input ended and its operators finished; it waits for the final notice.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FinishedInputReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The execution attempt.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
    /// The vertex.
    #[prost(uint32, tag = "3")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "4")]
    pub subtask: u32,
}

/// A TaskManager's worker process for a job ended while the job ran there.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerLostReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The TaskManager that ran the worker.
    #[prost(string, tag = "2")]
    pub task_manager_id: String,
    /// How it ended (exit status or signal).
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// The latest counters of a worker's tasks, sent about once a second while they run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskMetricsReport {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// One entry per subtask in the worker.
    #[prost(message, repeated, tag = "2")]
    pub tasks: Vec<SubtaskMetrics>,
    /// The reporting worker (its TaskManager's id): a worker's user metrics replace what
    /// it reported before.
    #[prost(string, tag = "3")]
    pub task_manager_id: String,
    /// The user metrics the worker's operators registered, as Prometheus families.
    #[prost(message, repeated, tag = "4")]
    pub user_metrics: Vec<UserMetricFamily>,
}

/// One user metric family (a Prometheus family: counter, gauge or histogram).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserMetricFamily {
    /// The family's name (`weir_user_...`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its help text.
    #[prost(string, tag = "2")]
    pub help: String,
    /// 0 counter, 1 gauge, 2 histogram.
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    /// Its series.
    #[prost(message, repeated, tag = "4")]
    pub series: Vec<UserMetricSeries>,
}

/// One series of a user metric family.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserMetricSeries {
    /// Label names, in the order of `label_values`.
    #[prost(string, repeated, tag = "1")]
    pub label_names: Vec<String>,
    /// Label values.
    #[prost(string, repeated, tag = "2")]
    pub label_values: Vec<String>,
    /// A counter's or gauge's value.
    #[prost(double, tag = "3")]
    pub value: f64,
    /// A histogram's observation count.
    #[prost(uint64, tag = "4")]
    pub sample_count: u64,
    /// A histogram's sum of observations.
    #[prost(double, tag = "5")]
    pub sample_sum: f64,
    /// A histogram's bucket upper bounds.
    #[prost(double, repeated, tag = "6")]
    pub bucket_bounds: Vec<f64>,
    /// A histogram's cumulative bucket counts, one per bound.
    #[prost(uint64, repeated, tag = "7")]
    pub bucket_counts: Vec<u64>,
}

/// One subtask's counters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubtaskMetrics {
    /// The vertex.
    #[prost(uint32, tag = "1")]
    pub vertex: u32,
    /// The subtask index.
    #[prost(uint32, tag = "2")]
    pub subtask: u32,
    /// The execution attempt.
    #[prost(uint32, tag = "3")]
    pub attempt: u32,
    /// Per operator of its chain.
    #[prost(message, repeated, tag = "4")]
    pub operators: Vec<OperatorMetricsReport>,
    /// Time its writers waited for buffers so far, ms.
    #[prost(uint64, tag = "5")]
    pub backpressured_ms: u64,
}

/// A worker's watermarks of its aligned source subtasks, per alignment group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatermarkSyncRequest {
    /// The job, as 32 hex digits.
    #[prost(string, tag = "1")]
    pub job_id: String,
    /// The worker's TaskManager.
    #[prost(string, tag = "2")]
    pub task_manager_id: String,
    /// Every alignment group of the job, with this worker's members (maybe none).
    #[prost(message, repeated, tag = "3")]
    pub groups: Vec<GroupWatermarks>,
}

/// One group's members in one worker.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupWatermarks {
    /// The group's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its members here.
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<MemberWatermark>,
}

/// One member's watermark.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MemberWatermark {
    /// The source's number in its group.
    #[prost(uint32, tag = "1")]
    pub source: u32,
    /// The source subtask.
    #[prost(uint32, tag = "2")]
    pub subtask: u32,
    /// Its watermark.
    #[prost(int64, tag = "3")]
    pub watermark: i64,
}

/// Per group, the lowest watermark of its members in the other workers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatermarkSyncResponse {
    /// One entry per group of the request.
    #[prost(message, repeated, tag = "1")]
    pub groups: Vec<GroupLow>,
}

/// The lowest watermark of a group's members elsewhere.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupLow {
    /// The group's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The lowest watermark; absent when no member elsewhere has one.
    #[prost(int64, optional, tag = "2")]
    pub low: Option<i64>,
}
