//! The cluster's metrics registry, in Prometheus form, with Flink's names for checkpoint
//! metrics (`numberOfCompletedCheckpoints`, `lastCheckpointDuration`, ...), labelled by job.
//!
//! The JobMaster's checkpoint coordinator updates it as checkpoints end; a scrape renders
//! the text exposition format.

use crate::result::{CheckpointStats, CheckpointStatus};
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Metrics of every job of a cluster.
pub struct ClusterMetrics {
    registry: Registry,
    completed: IntCounterVec,
    failed: IntCounterVec,
    restarts: IntCounterVec,
    last_duration: IntGaugeVec,
    last_size: IntGaugeVec,
    last_alignment: IntGaugeVec,
    last_sync: IntGaugeVec,
    last_async: IntGaugeVec,
    last_id: IntGaugeVec,
    operator_size: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("weir"), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    // Names are fixed and distinct, so registration cannot collide.
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("weir"), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        let r = Registry::new();
        let job = &["job_id", "job_name"];
        let op = &["job_id", "job_name", "operator_uid", "operator_name"];
        ClusterMetrics {
            completed: counter(
                &r,
                "numberOfCompletedCheckpoints",
                "Completed checkpoints.",
                job,
            ),
            failed: counter(
                &r,
                "numberOfFailedCheckpoints",
                "Failed or aborted checkpoints.",
                job,
            ),
            restarts: counter(&r, "numRestarts", "Restarts after task failures.", job),
            last_duration: gauge(
                &r,
                "lastCheckpointDuration",
                "Milliseconds the last completed checkpoint took.",
                job,
            ),
            last_size: gauge(
                &r,
                "lastCheckpointSize",
                "Bytes of the last completed checkpoint.",
                job,
            ),
            last_alignment: gauge(
                &r,
                "lastCheckpointAlignmentTime",
                "Longest barrier alignment (ms) of a task in the last completed checkpoint.",
                job,
            ),
            last_sync: gauge(
                &r,
                "lastCheckpointSyncDuration",
                "Longest synchronous snapshot (ms) of a task in the last completed checkpoint.",
                job,
            ),
            last_async: gauge(
                &r,
                "lastCheckpointAsyncDuration",
                "Longest background upload (ms) of a task in the last completed checkpoint.",
                job,
            ),
            last_id: gauge(
                &r,
                "lastCompletedCheckpointId",
                "Id of the last completed checkpoint.",
                job,
            ),
            operator_size: gauge(
                &r,
                "lastCheckpointOperatorStateSize",
                "Bytes of an operator's state in the last completed checkpoint.",
                op,
            ),
            registry: r,
        }
    }
}

impl ClusterMetrics {
    /// A checkpoint of job (`id`, `name`) ended.
    pub fn checkpoint_ended(&self, job_id: &str, job_name: &str, s: &CheckpointStats) {
        let job = &[job_id, job_name];
        match &s.status {
            CheckpointStatus::Failed(_) => self.failed.with_label_values(job).inc(),
            CheckpointStatus::Completed => {
                self.completed.with_label_values(job).inc();
                let set = |g: &IntGaugeVec, v: u64| g.with_label_values(job).set(v as i64);
                set(&self.last_duration, s.duration_ms);
                set(&self.last_size, s.size_bytes);
                set(&self.last_alignment, s.alignment_ms);
                set(&self.last_sync, s.sync_ms);
                set(&self.last_async, s.async_ms);
                set(&self.last_id, s.id);
                for o in &s.operators {
                    self.operator_size
                        .with_label_values(&[job_id, job_name, &o.uid, &o.name])
                        .set(o.size_bytes as i64);
                }
            }
        }
    }

    /// Job (`id`, `name`) restarted.
    pub fn restarted(&self, job_id: &str, job_name: &str) {
        self.restarts.with_label_values(&[job_id, job_name]).inc();
    }

    /// The registry, for more metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own well-formed metrics into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
