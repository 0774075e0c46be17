//! Execution settings that travel with a job.

use crate::checkpoint_config::{CheckpointConfig, RestartStrategy, RestoreSettings};
use serde::{Deserialize, Serialize};

/// Default size of one network buffer: 32 KiB, as in Flink.
pub const DEFAULT_BUFFER_SIZE: usize = 32 * 1024;

/// Default buffer timeout: a partly filled buffer is sent after 100 ms.
pub const DEFAULT_BUFFER_TIMEOUT_MS: i64 = 100;

/// How a job runs: the settings the environment collected, carried by the [`JobGraph`].
///
/// [`JobGraph`]: crate::JobGraph
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionConfig {
    /// Parallelism of operators that do not set their own.
    pub parallelism: u32,
    /// Max parallelism (number of key groups) of operators that do not set their own;
    /// `None` derives it from the parallelism as Flink does.
    pub max_parallelism: Option<u32>,
    /// Whether operators may be chained into one task.
    pub chaining_enabled: bool,
    /// Milliseconds after which a partly filled buffer is sent: `0` sends after every record,
    /// `-1` only sends full buffers (and at the end of input).
    pub buffer_timeout_ms: i64,
    /// Bytes per network buffer.
    pub buffer_size: usize,
    /// Extra buffers per task beyond one per outgoing channel; the pool is bounded, so a slow
    /// consumer blocks a fast producer once they are all in flight.
    pub floating_buffers_per_task: usize,
    /// Milliseconds a job waits for slots before it fails.
    pub slot_request_timeout_ms: u64,
    /// Milliseconds between periodic watermark emissions (Flink's auto watermark interval);
    /// 0 turns periodic emission off.
    pub auto_watermark_interval_ms: u64,
    /// Periodic checkpoints (off unless an interval is set).
    pub checkpoint: CheckpointConfig,
    /// What happens when a task fails; `None` picks Flink's default: no restart without
    /// checkpoints, exponential delay with them.
    pub restart_strategy: Option<RestartStrategy>,
    /// A savepoint or checkpoint to start from.
    pub restore: Option<RestoreSettings>,
    /// Where keyed state lives.
    #[serde(default)]
    pub state_backend: StateBackendConfig,
    /// Serialise records between tasks of the same process as between processes, into
    /// buffers, instead of handing them over in memory in typed batches (the default, and
    /// faster). For comparisons and for tests of the byte path.
    #[serde(default)]
    pub serialize_local_exchange: bool,
    /// How the operating system schedules the job's task threads.
    #[serde(default)]
    pub task_thread_scheduling: TaskThreadScheduling,
}

/// The operating system's scheduling policy for task threads (on Linux; elsewhere task
/// threads are scheduled as every other thread).
///
/// A task that finds its input empty sleeps, and wakes when the next batch arrives. When
/// tasks outnumber cores, Linux's default policy lets the woken consumer preempt the
/// producer that woke it on the spot, so the two take turns batch by batch, each switch
/// evicting the other's data from the core's caches. `SCHED_BATCH` drops that preemption
/// for task threads: they still share the cores fairly, but a woken task waits for the
/// running one's time slice. The W4 word count at parallelism 2 on 2 cores (4 task threads)
/// ran 6-15 % faster (medians of three trials of 8 interleaved runs each: 6.43 -> 6.85,
/// 5.74 -> 6.17 and 5.90 -> 6.76 M events/s).
///
/// `Batch` only replaces the ordinary policy: a process started under a real-time or idle
/// policy keeps it. Threads that a task starts inherit its policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskThreadScheduling {
    /// `SCHED_BATCH`: for throughput; the default.
    #[default]
    Batch,
    /// Task threads keep the policy they inherit: `SCHED_OTHER`, that of ordinary threads,
    /// unless the process was started under another. A woken task may then preempt a
    /// running one at once: for jobs where a few milliseconds of latency matter more than
    /// throughput and whose task threads share cores.
    Normal,
}

impl std::str::FromStr for TaskThreadScheduling {
    type Err = crate::CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "batch" => Ok(TaskThreadScheduling::Batch),
            "normal" | "other" => Ok(TaskThreadScheduling::Normal),
            other => Err(crate::CoreError::InvalidConfig(format!(
                "unknown task thread scheduling '{other}': use 'batch' or 'normal'"
            ))),
        }
    }
}

/// The keyed state backend (Flink's `state.backend.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateBackendKind {
    /// Objects in hash tables on the heap (Flink's `hashmap`): fastest, bounded by memory.
    #[default]
    Heap,
    /// An embedded RocksDB instance per operator subtask (Flink's `rocksdb`): state larger
    /// than memory, incremental checkpoints.
    RocksDb,
}

impl std::str::FromStr for StateBackendKind {
    type Err = crate::CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "heap" | "hashmap" => Ok(StateBackendKind::Heap),
            "rocksdb" => Ok(StateBackendKind::RocksDb),
            other => Err(crate::CoreError::InvalidConfig(format!(
                "unknown state backend '{other}': use 'heap' (or 'hashmap') or 'rocksdb'"
            ))),
        }
    }
}

/// State backend settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBackendConfig {
    /// Heap or RocksDB.
    pub kind: StateBackendKind,
    /// RocksDB: checkpoints upload only the SST files that are new since the last one
    /// (Flink's `execution.checkpointing.incremental`, off by default as there). Savepoints
    /// are always full.
    pub incremental: bool,
    /// RocksDB: where the working directories go (Flink's `state.backend.rocksdb.localdir`);
    /// default: `weir-rocksdb` under the system's temporary directory.
    pub local_dir: Option<String>,
    /// RocksDB: bytes of memory the RocksDB instances of a process share for their block
    /// cache and memtables (Flink's `state.backend.rocksdb.memory.fixed-per-tm`); default
    /// 512 MiB.
    #[serde(default)]
    pub rocksdb_memory_bytes: Option<u64>,
}

impl ExecutionConfig {
    /// The restart strategy in effect.
    pub fn effective_restart_strategy(&self) -> RestartStrategy {
        match &self.restart_strategy {
            Some(s) => s.clone(),
            None if self.checkpoint.enabled() => RestartStrategy::flink_default_with_checkpoints(),
            None => RestartStrategy::None,
        }
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            max_parallelism: None,
            chaining_enabled: true,
            buffer_timeout_ms: DEFAULT_BUFFER_TIMEOUT_MS,
            buffer_size: DEFAULT_BUFFER_SIZE,
            floating_buffers_per_task: 8,
            slot_request_timeout_ms: 10_000,
            auto_watermark_interval_ms: 200,
            checkpoint: CheckpointConfig::default(),
            restart_strategy: None,
            restore: None,
            state_backend: StateBackendConfig::default(),
            serialize_local_exchange: false,
            task_thread_scheduling: TaskThreadScheduling::Batch,
        }
    }
}
