//! A task: one subtask of a chain, run by one dedicated OS thread in a mailbox loop.
//!
//! The loop alternates between the default action (poll the source, or process the input
//! buffers that arrived) and the mailbox (mails, cancellation). When there is nothing to do
//! the thread sleeps on its [`TaskInbox`] until data, a mail or the next buffer-timeout flush.
//! The two loops are `source_loop` (with stop-with-savepoint as a phase) and `input_loop`
//! (with the actions barrier alignment asks for); `housekeeping` holds what both check after
//! every step (timers, flushes, live counters) and `snapshots` how a snapshot is stored and
//! acknowledged.
//!
//! Checkpoints happen on the same thread: a source task when the JobMaster's trigger
//! arrives, a task with inputs when its head aligned the barrier. The chain's state is
//! serialised in place (processing waits for that copy only) and written to storage in the
//! background; the acknowledgement goes to the JobMaster when the write is done.
//!
//! When its input ended, a task finishes its chain and then waits for the JobMaster's final
//! notice ([`CheckpointNotice::Final`]): it comes once every task of the job finished, so a
//! two-phase-commit sink commits its last data only when no failure can replay it. While it
//! waits, it still takes part in checkpoints: asked for one whose barrier it never saw (its
//! input ended first), it snapshots its final state, so the rest of the job keeps
//! checkpointing after some sources finished (as Flink does since FLIP-147).

mod housekeeping;
mod input_loop;
mod snapshots;
mod source_loop;

use crate::buffer::BufferPool;
use crate::checkpoint::{CheckpointNotice, CheckpointResponder};
use crate::error::{Result, RuntimeError};
use crate::head::{InputChainHead, SourceChainHead};
use crate::inbox::{Drained, TaskControl, TaskInbox};
use crate::metrics::{LiveMetrics, OperatorMetrics};
use crate::operator::catch_user_panic;
use crate::time::ProcessingTimeService;
use housekeeping::Housekeeping;
use input_loop::InputLoop;
use snapshots::Snapshots;
use source_loop::SourceLoop;
use std::sync::Arc;
use std::time::Duration;
use weir_core::VertexId;

/// How a task takes part in checkpoints: who it reports to, and as which subtask.
#[derive(Clone)]
pub struct TaskCheckpointing {
    /// The JobMaster's checkpoint coordinator.
    pub responder: Arc<dyn CheckpointResponder>,
    /// The task's vertex.
    pub vertex: VertexId,
    /// The task's subtask index.
    pub subtask: u32,
    /// The vertex's parallelism.
    pub parallelism: u32,
    /// The highest checkpoint id the task took a snapshot for.
    pub last_snapshot: Arc<std::sync::atomic::AtomicU64>,
}

/// How long a source that has nothing to emit waits before it is polled again (unless a
/// mail arrives first).
const IDLE_SOURCE_WAIT: Duration = Duration::from_millis(5);

/// What a task drives.
pub enum ChainHead {
    /// A source task.
    Source(Box<dyn SourceChainHead>),
    /// A task with network inputs.
    Input(Box<dyn InputChainHead>),
}

/// Stops a running task from another thread.
#[derive(Clone)]
pub struct TaskCanceller {
    inbox: Arc<TaskInbox>,
    pool: BufferPool,
}

impl TaskCanceller {
    /// A canceller for the task that owns `inbox` and `pool`.
    pub fn new(inbox: Arc<TaskInbox>, pool: BufferPool) -> Self {
        TaskCanceller { inbox, pool }
    }

    /// Wakes the task and makes it stop: its inbox refuses input, its buffer pool refuses
    /// requests (so a writer blocked by backpressure wakes up).
    pub fn cancel(&self) {
        self.inbox.cancel();
        self.pool.close();
    }
}

/// How a task ended, with its operators' counters.
pub struct TaskOutcome {
    /// `Ok` if the input ended and every operator finished.
    pub result: Result<()>,
    /// Per-operator record counts of this subtask.
    pub metrics: Vec<OperatorMetrics>,
    /// Time the task's writers waited for buffers, in milliseconds.
    pub backpressured_ms: u64,
}

/// Runs the drained mails; fails if the task was cancelled.
fn run_mails(drained: &mut Drained) -> Result<()> {
    if drained.cancelled {
        return Err(RuntimeError::Cancelled);
    }
    while let Some(mail) = drained.mails.pop_front() {
        mail()?;
    }
    Ok(())
}

/// One runnable subtask.
pub struct Task {
    head: ChainHead,
    inbox: Arc<TaskInbox>,
    pool: BufferPool,
    buffer_timeout: Option<Duration>,
    processing_time: ProcessingTimeService,
    snapshots: Snapshots,
    live_metrics: Option<LiveMetrics>,
}

impl Task {
    /// A task named `name` (e.g. `Map -> Filter (2/4)`) driving `head`, receiving on `inbox`,
    /// writing with buffers from `pool`. `buffer_timeout_ms` > 0 flushes partly filled buffers
    /// that often. `processing_time` is shared with the task's operators.
    pub fn new(
        name: String,
        head: ChainHead,
        inbox: Arc<TaskInbox>,
        pool: BufferPool,
        buffer_timeout_ms: i64,
        processing_time: ProcessingTimeService,
    ) -> Self {
        let buffer_timeout =
            (buffer_timeout_ms > 0).then(|| Duration::from_millis(buffer_timeout_ms as u64));
        Task {
            head,
            inbox,
            pool,
            buffer_timeout,
            processing_time,
            snapshots: Snapshots {
                name,
                checkpointing: None,
            },
            live_metrics: None,
        }
    }

    /// Publishes the operators' counters to `live` while the task runs (with the buffer
    /// timeout's flushes, at most every [`crate::metrics::LIVE_METRICS_INTERVAL`]).
    pub fn with_live_metrics(mut self, live: LiveMetrics) -> Self {
        self.live_metrics = Some(live);
        self
    }

    /// Lets the task take part in checkpoints and the end-of-job protocol.
    pub fn with_checkpointing(mut self, checkpointing: TaskCheckpointing) -> Self {
        self.snapshots.checkpointing = Some(checkpointing);
        self
    }

    /// The task's display name.
    pub fn name(&self) -> &str {
        &self.snapshots.name
    }

    /// A handle that cancels this task.
    pub fn canceller(&self) -> TaskCanceller {
        TaskCanceller {
            inbox: self.inbox.clone(),
            pool: self.pool.clone(),
        }
    }

    /// Runs the task to its end on the calling thread.
    pub fn run(mut self) -> TaskOutcome {
        let name = self.snapshots.name.clone();
        let result = catch_user_panic(|| self.run_loop()).map_err(|e| match e {
            RuntimeError::Other(m) => RuntimeError::Other(format!("task '{name}': {m}")),
            e => e,
        });
        // Closing runs user code too: a panic there must fail the task, not kill its thread.
        let result = match (&mut self.head, result) {
            (ChainHead::Source(s), Ok(())) => catch_user_panic(|| s.close()),
            (ChainHead::Source(s), Err(e)) => {
                let _ = catch_user_panic(|| s.close());
                Err(e)
            }
            (_, r) => r,
        };
        let mut metrics = Vec::new();
        match &self.head {
            ChainHead::Source(s) => s.visit_metrics(&mut |m| metrics.push(m.clone())),
            ChainHead::Input(i) => i.visit_metrics(&mut |m| metrics.push(m.clone())),
        }
        if let Some(live) = &self.live_metrics {
            live.publish(metrics.clone());
        }
        if result.is_err() {
            // Release whatever waits on us.
            self.canceller().cancel();
        }
        TaskOutcome {
            result,
            metrics,
            backpressured_ms: self.pool.backpressured_ms(),
        }
    }

    /// After the input ended: report it, then wait for the final notice (or cancellation),
    /// passing on checkpoint notices that arrive meanwhile.
    fn await_end_of_job(&mut self) -> Result<()> {
        let Some(cp) = self.snapshots.checkpointing.clone() else {
            return Ok(());
        };
        cp.responder.finished_input(cp.vertex, cp.subtask);
        let mut drained = Drained::default();
        loop {
            self.inbox.drain(None, &mut drained);
            // Every channel ended: no barrier can come, and none matters any more.
            drained.priority.clear();
            run_mails(&mut drained)?;
            while let Some(c) = drained.controls.pop_front() {
                match c {
                    TaskControl::TriggerCheckpoint(b) | TaskControl::StopWithSavepoint(b) => {
                        // A checkpoint this task has not seen the barrier of: its input ended
                        // before, so its final state belongs to it. (One it took already is
                        // on its way to the JobMaster.)
                        let last = cp.last_snapshot.load(std::sync::atomic::Ordering::Relaxed);
                        if b.id > last {
                            let head = &mut self.head;
                            self.snapshots.take(&b, 0, |snap| match head {
                                ChainHead::Source(h) => h.checkpoint(&b, snap),
                                ChainHead::Input(h) => h.checkpoint(&b, snap),
                            })?;
                        }
                    }
                    TaskControl::Notify(n) => {
                        match &mut self.head {
                            ChainHead::Source(h) => h.notify_checkpoint(n)?,
                            ChainHead::Input(h) => h.notify_checkpoint(n)?,
                        }
                        if n == CheckpointNotice::Final {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn run_loop(&mut self) -> Result<()> {
        self.run_input()?;
        self.await_end_of_job()
    }

    fn run_input(&mut self) -> Result<()> {
        let housekeeping = Housekeeping::new(
            self.processing_time.clone(),
            self.buffer_timeout,
            self.live_metrics.clone(),
        );
        match &mut self.head {
            ChainHead::Source(src) => {
                SourceLoop::new(src, &self.inbox, &self.snapshots, housekeeping).run()
            }
            ChainHead::Input(head) => {
                InputLoop::new(head, &self.inbox, &self.snapshots, housekeeping).run()
            }
        }
    }
}
