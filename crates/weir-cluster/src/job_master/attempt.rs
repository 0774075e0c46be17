//! One execution attempt of a job, as an explicit state machine: deployed, then running
//! until every task ended, or failing / cancelling once a task failed or the user cancelled.
//!
//! ```text
//!             deploy ok                 every task ended
//!   deploy ──────────────> Running ───────────────────────> Finished
//!     │                     │   │
//!     │ deploy failed       │   │ cancel           every task ended
//!     │                     │   └────────> Cancelling ──────────────> Cancelled
//!     │                     │ a task failed, a checkpoint expired too often
//!     └─────────────────────┴───────────> Failing ───────────────────> Failed
//! ```
//!
//! Failing and Cancelling have cancelled every task and wait for their ends, up to
//! [`CANCEL_WAIT`]: a task stuck in user code must not hold the job forever. While Running,
//! the checkpoint coordinator triggers checkpoints, and once every task finished its input
//! and the final checkpoint completed, the final notice goes out (two-phase-commit sinks
//! commit what they prepared at the end) and the tasks end.

use super::{AttemptEnd, AttemptResponder, JobMaster, Msg, Totals};
use crate::coordinator::{CheckpointCoordinator, TaskDirectory};
use crate::error::{ClusterError, Result};
use crate::gateway::{
    AllocatedSlot, RestorePoint, TaskDeployment, TaskEnd, TaskExecutionState, TaskExecutorGateway,
    TaskLocations, TaskStateListener,
};
use crate::result::{JobStatus, OperatorSummary};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::{JobGraph, VertexId};
use weir_runtime::checkpoint::{CheckpointNotice, CheckpointResponder};
use weir_runtime::inbox::TaskControl;

/// How long a failing or cancelling job waits for its tasks to stop before it gives up on
/// them (a task stuck in user code that never returns).
pub(super) const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Where an attempt stands.
enum State {
    /// Tasks run; `final_sent` once the final notice went out.
    Running { final_sent: bool },
    /// Deployment or a task failed: every task was cancelled; waiting for their ends.
    Failing {
        cause: ClusterError,
        deadline: Instant,
    },
    /// The user cancelled: every task was cancelled; waiting for their ends.
    Cancelling { deadline: Instant },
}

/// The first slot of each slot sharing group: group g gets a contiguous run of slots, and
/// subtask i of every vertex in the group goes to the group's slot i.
pub(super) fn slot_bases(graph: &JobGraph) -> BTreeMap<&str, usize> {
    let mut width: BTreeMap<&str, u32> = BTreeMap::new();
    for v in &graph.vertices {
        let w = width.entry(v.slot_sharing_group.as_str()).or_default();
        *w = (*w).max(v.parallelism);
    }
    let mut next = 0;
    width
        .into_iter()
        .map(|(group, w)| {
            let base = next;
            next += w as usize;
            (group, base)
        })
        .collect()
}

/// One execution attempt: its tasks, where they run, and where it stands.
pub(super) struct Attempt<'a> {
    master: &'a JobMaster,
    number: u32,
    /// TaskManagers with tasks of this attempt.
    gateways: Vec<Arc<dyn TaskExecutorGateway>>,
    directory: TaskDirectory,
    /// Deployed subtasks whose end was reported; each counts once.
    ended: HashSet<(VertexId, u32)>,
    state: State,
}

impl<'a> Attempt<'a> {
    /// Prepares the TaskManagers of `slots` and deploys every subtask; a failure on the way
    /// leaves the attempt Failing, with what was deployed being cancelled.
    pub(super) fn deploy(
        master: &'a JobMaster,
        number: u32,
        slots: &[AllocatedSlot],
        restore: Option<RestorePoint>,
    ) -> Self {
        master.set_status(JobStatus::Running);
        let mut attempt = Attempt {
            master,
            number,
            gateways: Vec::new(),
            directory: TaskDirectory::default(),
            ended: HashSet::new(),
            state: State::Running { final_sent: false },
        };
        if let Err(e) = attempt.deploy_all(slots, restore) {
            attempt.fail(e);
        }
        attempt
    }

    fn deploy_all(&mut self, slots: &[AllocatedSlot], restore: Option<RestorePoint>) -> Result<()> {
        let p = &self.master.params;
        let bases = slot_bases(&p.graph);
        let locations = self.prepare(slots, &bases)?;
        let responder: Arc<dyn CheckpointResponder> = Arc::new(AttemptResponder {
            handle: self.master.handle.clone(),
            attempt: self.number,
        });
        let job_master: Arc<dyn TaskStateListener> = self.master.handle.clone();
        for v in &p.graph.vertices {
            let base = bases[v.slot_sharing_group.as_str()];
            for s in 0..v.parallelism {
                let slot = &slots[base + s as usize];
                if !self.gateways.iter().any(|g| Arc::ptr_eq(g, &slot.gateway)) {
                    self.gateways.push(slot.gateway.clone());
                }
                slot.gateway.submit_task(TaskDeployment {
                    job: p.job,
                    graph: p.graph.clone(),
                    vertex: v.id,
                    subtask: s,
                    code: p.code.clone(),
                    job_master: job_master.clone(),
                    checkpoints: Some(responder.clone()),
                    attempt: self.number,
                    restore: restore.clone(),
                    locations: locations.clone(),
                })?;
                self.directory
                    .tasks
                    .push((slot.gateway.clone(), v.id, s, v.is_source));
            }
        }
        Ok(())
    }

    /// Gets the job's code ready on every TaskManager of `slots` at once (a worker process
    /// per TaskManager for a job submitted as a binary) and returns where each subtask will
    /// run; `None` when all of them run in this process.
    fn prepare(
        &self,
        slots: &[AllocatedSlot],
        bases: &BTreeMap<&str, usize>,
    ) -> Result<Option<Arc<TaskLocations>>> {
        let p = &self.master.params;
        let mut gateways: Vec<&Arc<dyn TaskExecutorGateway>> = Vec::new();
        for slot in slots {
            if !gateways.iter().any(|g| Arc::ptr_eq(g, &slot.gateway)) {
                gateways.push(&slot.gateway);
            }
        }
        let prepared: Vec<Result<Option<SocketAddr>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = gateways
                .iter()
                .map(|g| scope.spawn(|| g.prepare_job(p.job, &p.graph, &p.code)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ClusterError::Deployment {
                            job: p.job,
                            message: "preparing a TaskManager panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut addresses = Vec::with_capacity(gateways.len());
        for (g, r) in gateways.into_iter().zip(prepared) {
            addresses.push((g, r?));
        }
        if addresses.iter().all(|(_, a)| a.is_none()) {
            return Ok(None);
        }
        let mut locations = TaskLocations::default();
        for v in &p.graph.vertices {
            let base = bases[v.slot_sharing_group.as_str()];
            let mut subtasks = Vec::with_capacity(v.parallelism as usize);
            for s in 0..v.parallelism as usize {
                let gw = &slots[base + s].gateway;
                let addr = addresses
                    .iter()
                    .find(|(g, _)| Arc::ptr_eq(g, gw))
                    .and_then(|(_, a)| *a)
                    .ok_or_else(|| ClusterError::Deployment {
                        job: p.job,
                        message: format!(
                            "subtask {s} of '{}' would run in the JobManager's process while others run in TaskManager processes",
                            v.name
                        ),
                    })?;
                subtasks.push(addr);
            }
            locations.by_vertex.insert(v.id.0, subtasks);
        }
        Ok(Some(Arc::new(locations)))
    }

    /// The deployed tasks.
    pub(super) fn tasks(&self) -> usize {
        self.directory.tasks.len()
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn cancel_all(&self) {
        for g in &self.gateways {
            g.cancel_job_tasks(self.master.params.job);
        }
    }

    /// Running -> Failing: every task is cancelled. A failure while already stopping is
    /// only logged (the first cause is the job's).
    fn fail(&mut self, cause: ClusterError) {
        if !self.running() {
            tracing::debug!(job = %self.master.params.job, error = %cause, "a further failure while the attempt stops");
            return;
        }
        self.master.set_status(JobStatus::Failing);
        self.cancel_all();
        self.state = State::Failing {
            cause,
            deadline: Instant::now() + CANCEL_WAIT,
        };
    }

    /// Running -> Cancelling: every task is cancelled.
    fn cancel(&mut self) {
        if !self.running() {
            return;
        }
        self.master.set_status(JobStatus::Cancelling);
        self.cancel_all();
        self.state = State::Cancelling {
            deadline: Instant::now() + CANCEL_WAIT,
        };
    }

    /// Runs the attempt until every task ended (or, stopping, until the wait ran out).
    pub(super) fn run(
        mut self,
        coord: &mut CheckpointCoordinator,
        totals: &mut Totals,
    ) -> AttemptEnd {
        while self.ended.len() < self.tasks() {
            let msg = match self.next_message(coord) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::warn!(job = %self.master.params.job, "{} tasks did not stop within {CANCEL_WAIT:?}; giving up on them", self.tasks() - self.ended.len());
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.on_tick(coord);
            if let Some(msg) = msg {
                self.on_message(msg, coord, totals);
                self.send_final_if_ready(coord);
            }
        }
        match self.state {
            State::Running { .. } => AttemptEnd::Finished,
            State::Failing { cause, .. } => AttemptEnd::Failed(cause),
            State::Cancelling { .. } => AttemptEnd::Cancelled,
        }
    }

    /// The next message, or `None` when a checkpoint deadline came first. While stopping,
    /// the stop deadline passing is a timeout.
    fn next_message(
        &self,
        coord: &CheckpointCoordinator,
    ) -> std::result::Result<Option<Msg>, RecvTimeoutError> {
        let rx = &self.master.rx;
        match self.state {
            State::Failing { deadline, .. } | State::Cancelling { deadline } => rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map(Some),
            State::Running { .. } => match coord.next_deadline() {
                None => rx
                    .recv()
                    .map(Some)
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(m) => Ok(Some(m)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(e) => Err(e),
                },
            },
        }
    }

    /// Time passed: checkpoints that expired, new ones due, and the final notice.
    fn on_tick(&mut self, coord: &mut CheckpointCoordinator) {
        if self.running() {
            let now = Instant::now();
            if let Err(e) = coord.check_timeouts(now, &self.directory) {
                self.fail(self.checkpointing(e.0));
            }
            if self.running() {
                coord.maybe_trigger(now, &self.directory);
            }
        }
        self.send_final_if_ready(coord);
    }

    fn checkpointing(&self, message: String) -> ClusterError {
        ClusterError::Checkpointing {
            job: self.master.params.job,
            message,
        }
    }

    /// Every task finished and the final checkpoint completed: commit and end.
    fn send_final_if_ready(&mut self, coord: &CheckpointCoordinator) {
        if let State::Running { final_sent } = &mut self.state {
            if !*final_sent && coord.final_ready() {
                *final_sent = true;
                for (gw, v, s, _) in &self.directory.tasks {
                    gw.send_task_control(
                        self.master.params.job,
                        *v,
                        *s,
                        TaskControl::Notify(CheckpointNotice::Final),
                    );
                }
            }
        }
    }

    fn on_message(&mut self, msg: Msg, coord: &mut CheckpointCoordinator, totals: &mut Totals) {
        let job = self.master.params.job;
        let current = |a: u32| a == self.number;
        match msg {
            Msg::Cancel => self.cancel(),
            Msg::Ack(a, ack) if current(a) && self.running() => {
                if let Err(e) = coord.on_ack(ack, &self.directory) {
                    self.fail(self.checkpointing(e.0));
                }
            }
            Msg::Decline(a, id, reason) if current(a) && self.running() => {
                if let Err(e) = coord.on_decline(id, reason, &self.directory) {
                    self.fail(self.checkpointing(e.0));
                }
            }
            Msg::FinishedInput(a, v, s) if current(a) => {
                tracing::debug!(job = %job, vertex = v.0, subtask = s, "task finished its input");
                coord.task_finished(v, s, &self.directory);
            }
            Msg::Savepoint(dir, stop, reply) => {
                if self.running() {
                    coord.trigger_savepoint(&dir, stop, reply, &self.directory);
                } else {
                    let _ = reply.send(Err(ClusterError::Savepoint {
                        job,
                        message: "the job is failing or being cancelled".into(),
                    }));
                }
            }
            Msg::Ack(..) | Msg::Decline(..) | Msg::FinishedInput(..) => {}
            Msg::Task(state) if !current(state.attempt) => {}
            Msg::Task(state) => self.task_ended(state, totals),
        }
    }

    /// A task of this attempt ended: its counters are added; a failure fails the attempt.
    fn task_ended(&mut self, state: TaskExecutionState, totals: &mut Totals) {
        let key = (state.vertex, state.subtask);
        let deployed = self
            .directory
            .tasks
            .iter()
            .any(|(_, v, s, _)| (*v, *s) == key);
        if !deployed || !self.ended.insert(key) {
            tracing::debug!(job = %self.master.params.job, vertex = key.0 .0, subtask = key.1, "the end of a subtask that is not running in this attempt is ignored");
            return;
        }
        totals.backpressured_ms += state.backpressured_ms;
        for m in state.metrics {
            let e = totals
                .operators
                .entry(m.node)
                .or_insert_with(|| OperatorSummary {
                    node: m.node,
                    name: m.name.clone(),
                    ..Default::default()
                });
            e.records_in += m.records_in;
            e.records_out += m.records_out;
            e.state_entries += m.state_entries;
        }
        if let TaskEnd::Failed(err) = state.end {
            // Deployed, so the vertex exists.
            let v = self.master.params.graph.vertex(state.vertex);
            tracing::error!(job = %self.master.params.job, task = %v.name, subtask = state.subtask, error = %err, "task failed");
            self.fail(ClusterError::TaskFailed {
                task: v.name.clone(),
                subtask: state.subtask,
                parallelism: v.parallelism,
                source: Arc::new(err),
            });
        }
    }
}
