//! Fault-tolerance settings that travel with a job: checkpointing and restart strategies.
//!
//! Names and defaults follow Flink's `execution.checkpointing.*` and `restart-strategy.*`
//! options, so a Flink user finds the same knobs.

use serde::{Deserialize, Serialize};

/// Whether barriers are aligned (exactly-once) or only counted (at-least-once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointingMode {
    /// A task with several inputs holds back an input after its barrier until every input
    /// delivered the same barrier; state then reflects exactly the records before it.
    #[default]
    ExactlyOnce,
    /// Barriers are counted, inputs never blocked; after a recovery some records may be
    /// applied twice.
    AtLeastOnce,
}

/// Periodic checkpoints of a job (Flink's `CheckpointConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Milliseconds between the triggers of two checkpoints; 0 disables checkpointing.
    pub interval_ms: u64,
    /// Barrier alignment.
    pub mode: CheckpointingMode,
    /// A checkpoint not complete after this many milliseconds is aborted.
    pub timeout_ms: u64,
    /// Milliseconds between the end of one checkpoint and the trigger of the next.
    pub min_pause_ms: u64,
    /// Checkpoints that may be in progress at once.
    pub max_concurrent: u32,
    /// Failed checkpoints in a row that the job tolerates before it fails (and restarts).
    pub tolerable_failures: u32,
    /// Completed checkpoints kept in storage; older ones are deleted.
    pub retained: u32,
    /// Where checkpoints go: a local directory path, or a URL (`file:///...`). `None`: a
    /// directory under the system's temporary directory, named after the job.
    pub storage: Option<String>,
    /// Unaligned checkpoints: a task snapshots at the first barrier instead of waiting for
    /// all of them, and the data still arriving before the other barriers is stored with
    /// the checkpoint (exactly-once mode only; savepoints are always aligned).
    pub unaligned: bool,
    /// With `unaligned`: start aligned and switch to unaligned once an alignment took this
    /// many milliseconds (0: unaligned from the start), as Flink's aligned checkpoint
    /// timeout.
    pub aligned_timeout_ms: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval_ms: 0,
            mode: CheckpointingMode::ExactlyOnce,
            timeout_ms: 10 * 60 * 1000,
            min_pause_ms: 0,
            max_concurrent: 1,
            tolerable_failures: 0,
            retained: 1,
            storage: None,
            unaligned: false,
            aligned_timeout_ms: 0,
        }
    }
}

impl CheckpointConfig {
    /// True if periodic checkpoints are on.
    pub fn enabled(&self) -> bool {
        self.interval_ms > 0
    }

    /// How tasks align barriers under this configuration.
    pub fn alignment(&self) -> BarrierAlignment {
        BarrierAlignment {
            mode: self.mode,
            unaligned: self.unaligned && self.mode == CheckpointingMode::ExactlyOnce,
            aligned_timeout_ms: self.aligned_timeout_ms,
        }
    }
}

/// How a task with inputs handles checkpoint barriers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarrierAlignment {
    /// Exactly-once (align) or at-least-once (count).
    pub mode: CheckpointingMode,
    /// Snapshot at the first barrier and store the in-flight data (exactly-once only).
    pub unaligned: bool,
    /// Milliseconds of aligning before switching to unaligned (0: unaligned at once).
    pub aligned_timeout_ms: u64,
}

impl From<CheckpointingMode> for BarrierAlignment {
    fn from(mode: CheckpointingMode) -> Self {
        BarrierAlignment {
            mode,
            unaligned: false,
            aligned_timeout_ms: 0,
        }
    }
}

/// What the JobMaster does when a task fails (Flink's restart strategies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RestartStrategy {
    /// A failure fails the job.
    None,
    /// Restart up to `attempts` times, waiting `delay_ms` before each.
    FixedDelay {
        /// Restarts allowed over the job's life.
        attempts: u32,
        /// Milliseconds between the failure and the restart.
        delay_ms: u64,
    },
    /// Restart with a delay that grows by `multiplier` per failure up to `max_ms`, and falls
    /// back to `initial_ms` after `reset_threshold_ms` without a failure.
    ExponentialDelay {
        /// First delay.
        initial_ms: u64,
        /// Largest delay.
        max_ms: u64,
        /// Growth per failure.
        multiplier: f64,
        /// Time without failure after which the delay starts over.
        reset_threshold_ms: u64,
        /// Random variation of each delay, as a fraction of it (0 to 1).
        jitter: f64,
    },
    /// Restart after `delay_ms` unless more than `max_failures` happened within the last
    /// `interval_ms`.
    FailureRate {
        /// Failures allowed per interval.
        max_failures: u32,
        /// The sliding interval.
        interval_ms: u64,
        /// Milliseconds between the failure and the restart.
        delay_ms: u64,
    },
}

impl RestartStrategy {
    /// Flink's default when checkpointing is on: exponential delay from 1 s to 1 min,
    /// multiplier 1.5, reset after 1 h, jitter 10 %.
    pub fn flink_default_with_checkpoints() -> Self {
        RestartStrategy::ExponentialDelay {
            initial_ms: 1000,
            max_ms: 60_000,
            multiplier: 1.5,
            reset_threshold_ms: 3_600_000,
            jitter: 0.1,
        }
    }
}

/// Where a job starts from: a savepoint or a retained checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSettings {
    /// The savepoint or checkpoint directory (holding `_metadata`), a path or URL.
    pub path: String,
    /// Start even if state in the savepoint belongs to no operator of the job.
    pub allow_non_restored_state: bool,
}
