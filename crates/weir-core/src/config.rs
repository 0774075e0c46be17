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
        }
    }
}
