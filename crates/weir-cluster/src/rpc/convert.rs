//! Conversions between the control plane's wire messages and the runtime's types. Reading a
//! message checks it: a malformed one is an error naming the field, never a panic.

use super::{
    CheckpointAckReport, ControlKind, OperatorMetricsReport, OperatorStateSizeReport,
    TaskControlRequest, TaskEndKind, TaskExecutionStateReport, UserMetricFamily, UserMetricSeries,
};
use crate::gateway::{TaskEnd, TaskExecutionState};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use weir_core::{JobId, VertexId};
use weir_runtime::checkpoint::{
    CheckpointAck, CheckpointBarrier, CheckpointNotice, OperatorStateSize, SnapshotKind,
};
use weir_runtime::inbox::TaskControl;
use weir_runtime::metrics::OperatorMetrics;
use weir_runtime::RuntimeError;

/// A wire message that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed {message}: {why}")]
pub struct Malformed {
    /// Which message.
    pub message: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl From<Malformed> for tonic::Status {
    fn from(m: Malformed) -> Self {
        tonic::Status::invalid_argument(m.to_string())
    }
}

/// Reads a job id (32 hex digits).
pub fn job_id(s: &str, message: &'static str) -> Result<JobId, Malformed> {
    if s.len() == 32 {
        if let Ok(v) = u128::from_str_radix(s, 16) {
            return Ok(JobId(v));
        }
    }
    Err(Malformed {
        message,
        why: format!("job id '{s}' is not 32 hexadecimal digits"),
    })
}

/// The wire form of a control request for subtask `subtask` of `vertex`.
pub fn control_to_wire(
    job: JobId,
    vertex: VertexId,
    subtask: u32,
    control: &TaskControl,
) -> TaskControlRequest {
    let mut r = TaskControlRequest {
        job_id: job.to_string(),
        vertex: vertex.0,
        subtask,
        ..Default::default()
    };
    let barrier = |r: &mut TaskControlRequest, b: &CheckpointBarrier, kind: ControlKind| {
        r.kind = kind as i32;
        r.checkpoint_id = b.id;
        r.timestamp = b.timestamp;
        r.target = b.target.clone();
        r.savepoint = b.is_savepoint();
        r.unaligned = b.unaligned;
    };
    match control {
        TaskControl::TriggerCheckpoint(b) => barrier(&mut r, b, ControlKind::TriggerCheckpoint),
        TaskControl::StopWithSavepoint(b) => barrier(&mut r, b, ControlKind::StopWithSavepoint),
        TaskControl::Notify(CheckpointNotice::Complete(id)) => {
            r.kind = ControlKind::Complete as i32;
            r.checkpoint_id = *id;
        }
        TaskControl::Notify(CheckpointNotice::Aborted(id)) => {
            r.kind = ControlKind::Aborted as i32;
            r.checkpoint_id = *id;
        }
        TaskControl::Notify(CheckpointNotice::Final) => r.kind = ControlKind::Final as i32,
    }
    r
}

/// Reads a control request.
pub fn control_from_wire(r: &TaskControlRequest) -> Result<TaskControl, Malformed> {
    let barrier = || CheckpointBarrier {
        id: r.checkpoint_id,
        timestamp: r.timestamp,
        kind: if r.savepoint {
            SnapshotKind::Savepoint
        } else {
            SnapshotKind::Checkpoint
        },
        target: r.target.clone(),
        unaligned: r.unaligned,
    };
    Ok(match ControlKind::try_from(r.kind) {
        Ok(ControlKind::TriggerCheckpoint) => TaskControl::TriggerCheckpoint(barrier()),
        Ok(ControlKind::StopWithSavepoint) => TaskControl::StopWithSavepoint(barrier()),
        Ok(ControlKind::Complete) => {
            TaskControl::Notify(CheckpointNotice::Complete(r.checkpoint_id))
        }
        Ok(ControlKind::Aborted) => TaskControl::Notify(CheckpointNotice::Aborted(r.checkpoint_id)),
        Ok(ControlKind::Final) => TaskControl::Notify(CheckpointNotice::Final),
        Ok(ControlKind::Unspecified) | Err(_) => {
            return Err(Malformed {
                message: "task control request",
                why: format!("unknown kind {}", r.kind),
            })
        }
    })
}

/// The wire form of a task's final report.
pub fn task_state_to_wire(s: &TaskExecutionState) -> TaskExecutionStateReport {
    let (end, failure, restore_checkpoint_id) = match &s.end {
        TaskEnd::Finished => (TaskEndKind::Finished, String::new(), None),
        TaskEnd::Canceled => (TaskEndKind::Canceled, String::new(), None),
        TaskEnd::Failed(RuntimeError::Restore {
            checkpoint_id,
            source,
        }) => (
            TaskEndKind::Failed,
            source.to_string(),
            Some(*checkpoint_id),
        ),
        TaskEnd::Failed(e) => (TaskEndKind::Failed, e.to_string(), None),
    };
    TaskExecutionStateReport {
        job_id: s.job.to_string(),
        vertex: s.vertex.0,
        subtask: s.subtask,
        attempt: s.attempt,
        end: end as i32,
        failure,
        restore_checkpoint_id,
        metrics: s.metrics.iter().cloned().map(metrics_to_wire).collect(),
        backpressured_ms: s.backpressured_ms,
    }
}

/// Reads a task's final report. A failure keeps its kind where the JobMaster acts on it
/// (a checkpoint that cannot be restored); others arrive as their message.
pub fn task_state_from_wire(r: TaskExecutionStateReport) -> Result<TaskExecutionState, Malformed> {
    let job = job_id(&r.job_id, "task execution state")?;
    let end = match TaskEndKind::try_from(r.end) {
        Ok(TaskEndKind::Finished) => TaskEnd::Finished,
        Ok(TaskEndKind::Canceled) => TaskEnd::Canceled,
        Ok(TaskEndKind::Failed) => TaskEnd::Failed(match r.restore_checkpoint_id {
            Some(checkpoint_id) => RuntimeError::Restore {
                checkpoint_id,
                source: weir_state::StateError::Restore(r.failure),
            },
            None => RuntimeError::Other(r.failure),
        }),
        Ok(TaskEndKind::Unspecified) | Err(_) => {
            return Err(Malformed {
                message: "task execution state",
                why: format!("unknown end {}", r.end),
            })
        }
    };
    Ok(TaskExecutionState {
        job,
        vertex: VertexId(r.vertex),
        subtask: r.subtask,
        end,
        metrics: r.metrics.into_iter().map(metrics_from_wire).collect(),
        backpressured_ms: r.backpressured_ms,
        attempt: r.attempt,
    })
}

/// The wire form of one operator's counters.
pub fn metrics_to_wire(m: OperatorMetrics) -> OperatorMetricsReport {
    OperatorMetricsReport {
        node: m.node,
        name: m.name,
        records_in: m.records_in,
        records_out: m.records_out,
        state_entries: m.state_entries,
    }
}

/// Reads one operator's counters.
pub fn metrics_from_wire(m: OperatorMetricsReport) -> OperatorMetrics {
    OperatorMetrics {
        node: m.node,
        name: m.name,
        records_in: m.records_in,
        records_out: m.records_out,
        state_entries: m.state_entries,
    }
}

/// The wire form of a checkpoint acknowledgement of `attempt` of `job`.
pub fn ack_to_wire(job: JobId, attempt: u32, a: &CheckpointAck) -> CheckpointAckReport {
    CheckpointAckReport {
        job_id: job.to_string(),
        attempt,
        checkpoint_id: a.checkpoint_id,
        vertex: a.vertex.0,
        subtask: a.subtask,
        file: a.file.as_ref().map(|f| f.0.clone()),
        file_size: a.file.as_ref().map_or(0, |f| f.1),
        operators: a
            .operators
            .iter()
            .map(|o| OperatorStateSizeReport {
                uid: o.uid.clone(),
                bytes: o.bytes,
                keyed: o.keyed,
                union: o.union,
            })
            .collect(),
        alignment_ms: a.alignment_ms,
        sync_ms: a.sync_ms,
        async_ms: a.async_ms,
        shared_files: a.shared_files.clone(),
    }
}

/// Reads a checkpoint acknowledgement.
pub fn ack_from_wire(r: CheckpointAckReport) -> CheckpointAck {
    CheckpointAck {
        checkpoint_id: r.checkpoint_id,
        vertex: VertexId(r.vertex),
        subtask: r.subtask,
        file: r.file.map(|f| (f, r.file_size)),
        operators: r
            .operators
            .into_iter()
            .map(|o| OperatorStateSize {
                uid: o.uid,
                bytes: o.bytes,
                keyed: o.keyed,
                union: o.union,
            })
            .collect(),
        alignment_ms: r.alignment_ms,
        sync_ms: r.sync_ms,
        async_ms: r.async_ms,
        shared_files: r.shared_files,
    }
}

/// A process's user metric families (what its registry gathers), for the wire.
pub fn user_metrics_to_wire(families: Vec<MetricFamily>) -> Vec<UserMetricFamily> {
    families
        .into_iter()
        .filter_map(|f| {
            let kind = match f.get_field_type() {
                MetricType::COUNTER => 0,
                MetricType::GAUGE => 1,
                MetricType::HISTOGRAM => 2,
                // User metrics are only these three.
                _ => return None,
            };
            let series = f
                .get_metric()
                .iter()
                .map(|m| {
                    let (label_names, label_values) = m
                        .get_label()
                        .iter()
                        .map(|l| (l.name().to_string(), l.value().to_string()))
                        .unzip();
                    let h = m.get_histogram();
                    UserMetricSeries {
                        label_names,
                        label_values,
                        value: match kind {
                            0 => m.get_counter().get_value(),
                            1 => m.get_gauge().get_value(),
                            _ => 0.0,
                        },
                        sample_count: h.get_sample_count(),
                        sample_sum: h.get_sample_sum(),
                        bucket_bounds: h.get_bucket().iter().map(|b| b.upper_bound()).collect(),
                        bucket_counts: h
                            .get_bucket()
                            .iter()
                            .map(|b| b.cumulative_count())
                            .collect(),
                    }
                })
                .collect();
            Some(UserMetricFamily {
                name: f.name().to_string(),
                help: f.help().to_string(),
                kind,
                series,
            })
        })
        .collect()
}

/// Reads user metric families a worker reported.
pub fn user_metrics_from_wire(
    families: Vec<UserMetricFamily>,
) -> Result<Vec<MetricFamily>, Malformed> {
    families
        .into_iter()
        .map(|f| {
            let kind = match f.kind {
                0 => MetricType::COUNTER,
                1 => MetricType::GAUGE,
                2 => MetricType::HISTOGRAM,
                k => {
                    return Err(Malformed {
                        message: "task metrics report",
                        why: format!("user metric '{}' of unknown kind {k}", f.name),
                    })
                }
            };
            let metrics = f
                .series
                .into_iter()
                .map(|s| {
                    if s.label_names.len() != s.label_values.len()
                        || s.bucket_bounds.len() != s.bucket_counts.len()
                    {
                        return Err(Malformed {
                            message: "task metrics report",
                            why: format!("a series of user metric '{}' does not add up", f.name),
                        });
                    }
                    let labels = s
                        .label_names
                        .into_iter()
                        .zip(s.label_values)
                        .map(|(n, v)| {
                            let mut l = LabelPair::default();
                            l.set_name(n);
                            l.set_value(v);
                            l
                        })
                        .collect();
                    let mut m = Metric::from_label(labels);
                    match kind {
                        MetricType::COUNTER => {
                            let mut c = Counter::default();
                            c.set_value(s.value);
                            m.set_counter(c);
                        }
                        MetricType::GAUGE => {
                            let mut g = Gauge::default();
                            g.set_value(s.value);
                            m.set_gauge(g);
                        }
                        _ => {
                            let mut h = Histogram::default();
                            h.set_sample_count(s.sample_count);
                            h.set_sample_sum(s.sample_sum);
                            h.set_bucket(
                                s.bucket_bounds
                                    .into_iter()
                                    .zip(s.bucket_counts)
                                    .map(|(bound, count)| {
                                        let mut b = Bucket::default();
                                        b.set_upper_bound(bound);
                                        b.set_cumulative_count(count);
                                        b
                                    })
                                    .collect(),
                            );
                            m.set_histogram(h);
                        }
                    }
                    Ok(m)
                })
                .collect::<Result<Vec<_>, Malformed>>()?;
            let mut family = MetricFamily::default();
            family.set_name(f.name);
            family.set_help(f.help);
            family.set_field_type(kind);
            family.set_metric(metrics);
            Ok(family)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metrics_cross_the_wire_unchanged_and_bad_ones_are_refused() {
        use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
        let registry = prometheus::Registry::new();
        let counter =
            IntCounterVec::new(Opts::new("weir_user_kept", "kept"), &["subtask"]).unwrap();
        let gauge = IntGaugeVec::new(Opts::new("weir_user_last", "last"), &["subtask"]).unwrap();
        let histogram = HistogramVec::new(
            HistogramOpts::new("weir_user_values", "values").buckets(vec![1.0, 10.0]),
            &["subtask"],
        )
        .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        counter.with_label_values(&["0"]).inc_by(7);
        gauge.with_label_values(&["1"]).set(-3);
        histogram.with_label_values(&["0"]).observe(5.0);
        let text = |families: &[MetricFamily]| {
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(families, &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        let gathered = registry.gather();
        let wire = user_metrics_to_wire(gathered.clone());
        let back = user_metrics_from_wire(wire.clone()).unwrap();
        assert_eq!(text(&back), text(&gathered));
        let mut bad = wire.clone();
        bad[0].kind = 9;
        assert!(user_metrics_from_wire(bad).is_err());
        let mut bad = wire;
        bad[0].series[0].label_values.clear();
        assert!(user_metrics_from_wire(bad).is_err());
    }

    #[test]
    fn controls_round_trip_and_unknown_kinds_are_errors() {
        let job = JobId(7);
        let b = CheckpointBarrier {
            id: 3,
            timestamp: 99,
            kind: SnapshotKind::Savepoint,
            target: "/sp".into(),
            unaligned: true,
        };
        for c in [
            TaskControl::TriggerCheckpoint(b.clone()),
            TaskControl::StopWithSavepoint(b),
            TaskControl::Notify(CheckpointNotice::Complete(4)),
            TaskControl::Notify(CheckpointNotice::Aborted(5)),
            TaskControl::Notify(CheckpointNotice::Final),
        ] {
            let w = control_to_wire(job, VertexId(1), 2, &c);
            assert_eq!(
                format!("{:?}", control_from_wire(&w).unwrap()),
                format!("{c:?}")
            );
        }
        let bad = TaskControlRequest {
            kind: 42,
            ..Default::default()
        };
        assert!(control_from_wire(&bad).is_err());
    }

    #[test]
    fn task_states_keep_restore_failures_and_reject_bad_ids() {
        let s = TaskExecutionState {
            job: JobId(9),
            vertex: VertexId(2),
            subtask: 1,
            end: TaskEnd::Failed(RuntimeError::Restore {
                checkpoint_id: 12,
                source: weir_state::StateError::Restore("damaged".into()),
            }),
            metrics: vec![],
            backpressured_ms: 5,
            attempt: 3,
        };
        let back = task_state_from_wire(task_state_to_wire(&s)).unwrap();
        assert!(matches!(
            back.end,
            TaskEnd::Failed(RuntimeError::Restore {
                checkpoint_id: 12,
                ..
            })
        ));
        assert_eq!(
            (back.attempt, back.subtask, back.vertex),
            (3, 1, VertexId(2))
        );
        let mut w = task_state_to_wire(&s);
        w.job_id = "xyz".into();
        assert!(task_state_from_wire(w).is_err());
    }
}
