//! A task: one subtask of a chain, run by one dedicated OS thread in a mailbox loop.
//!
//! The loop alternates between the default action (poll the source, or process the input
//! buffers that arrived) and the mailbox (mails, cancellation). When there is nothing to do
//! the thread sleeps on its [`TaskInbox`] until data, a mail or the next buffer-timeout flush.
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

use crate::buffer::BufferPool;
use crate::checkpoint::{
    in_flight_uid, BarrierAction, CheckpointAck, CheckpointBarrier, CheckpointNotice,
    CheckpointResponder, InFlightChannel, OperatorStateSize, IN_FLIGHT_STATE,
};
use crate::error::{Result, RuntimeError};
use crate::head::{InputChainHead, SourceChainHead};
use crate::inbox::{Drained, TaskControl, TaskInbox};
use crate::metrics::{LiveMetrics, OperatorMetrics, LIVE_METRICS_INTERVAL};
use crate::operator::catch_user_panic;
use crate::source::PollStatus;
use crate::time::{now_ms, ProcessingTimeService};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_core::VertexId;
use weir_state::{CheckpointStorage, TaskStateSnapshot};

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

/// Copies the chain's counters into `live`. Out of line and cold: it runs about once a
/// second, and must not change how the record loop around it is compiled.
#[cold]
#[inline(never)]
fn publish_live(live: &LiveMetrics, visit: impl FnOnce(crate::metrics::MetricsVisitor<'_>)) {
    let mut metrics = Vec::new();
    visit(&mut |m| metrics.push(m.clone()));
    live.publish(metrics);
}

/// One runnable subtask.
pub struct Task {
    name: String,
    head: ChainHead,
    inbox: Arc<TaskInbox>,
    pool: BufferPool,
    buffer_timeout: Option<Duration>,
    processing_time: ProcessingTimeService,
    checkpointing: Option<TaskCheckpointing>,
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
            name,
            head,
            inbox,
            pool,
            buffer_timeout,
            processing_time,
            checkpointing: None,
            live_metrics: None,
        }
    }

    /// Publishes the operators' counters to `live` while the task runs (with the buffer
    /// timeout's flushes, at most every [`LIVE_METRICS_INTERVAL`]).
    pub fn with_live_metrics(mut self, live: LiveMetrics) -> Self {
        self.live_metrics = Some(live);
        self
    }

    /// Lets the task take part in checkpoints and the end-of-job protocol.
    pub fn with_checkpointing(mut self, checkpointing: TaskCheckpointing) -> Self {
        self.checkpointing = Some(checkpointing);
        self
    }

    /// The task's display name.
    pub fn name(&self) -> &str {
        &self.name
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
        let name = self.name.clone();
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

    fn run_mails(drained: &mut Drained) -> Result<()> {
        if drained.cancelled {
            return Err(RuntimeError::Cancelled);
        }
        while let Some(mail) = drained.mails.pop_front() {
            mail()?;
        }
        Ok(())
    }

    /// Takes checkpoint `barrier` of the chain behind `head` (the closure snapshots the
    /// chain and sends the barrier on), then stores the snapshot in the background and
    /// acknowledges it.
    fn take_checkpoint(
        checkpointing: &Option<TaskCheckpointing>,
        name: &str,
        barrier: &CheckpointBarrier,
        alignment_ms: u64,
        snapshot_chain: impl FnOnce(&mut TaskStateSnapshot) -> Result<()>,
    ) -> Result<()> {
        let start = Instant::now();
        let mut snap = TaskStateSnapshot::default();
        if let Some(cp) = checkpointing {
            cp.last_snapshot
                .fetch_max(barrier.id, std::sync::atomic::Ordering::Relaxed);
        }
        snapshot_chain(&mut snap)?;
        Self::store_snapshot(checkpointing, name, barrier, alignment_ms, start, snap);
        Ok(())
    }

    /// Adds the recorded in-flight data of an unaligned checkpoint to its snapshot.
    fn add_in_flight(
        checkpointing: &Option<TaskCheckpointing>,
        channels: usize,
        data: Vec<(usize, Vec<u8>)>,
        snap: &mut TaskStateSnapshot,
    ) -> Result<()> {
        let Some(cp) = checkpointing else {
            return Ok(());
        };
        let elements = data
            .into_iter()
            .map(|(ch, data)| {
                bincode::serialize(&InFlightChannel {
                    subtask: cp.subtask,
                    parallelism: cp.parallelism,
                    channels: channels as u32,
                    channel: ch as u32,
                    data,
                })
                .map_err(|e| RuntimeError::Codec {
                    context: "cannot encode in-flight data".into(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !elements.is_empty() {
            snap.operators
                .entry(in_flight_uid(cp.vertex))
                .or_default()
                .add_list(IN_FLIGHT_STATE, elements);
        }
        Ok(())
    }

    /// Stores a taken snapshot in the background and acknowledges it (or declines). The
    /// snapshot's deferred parts are encoded there too, so processing waited only for the
    /// copies the operators took.
    fn store_snapshot(
        checkpointing: &Option<TaskCheckpointing>,
        name: &str,
        barrier: &CheckpointBarrier,
        alignment_ms: u64,
        start: Instant,
        mut snap: TaskStateSnapshot,
    ) {
        let Some(cp) = checkpointing else {
            // A task outside checkpointing (an embedded test) only forwards barriers.
            return;
        };
        let mut ack = CheckpointAck {
            checkpoint_id: barrier.id,
            vertex: cp.vertex,
            subtask: cp.subtask,
            file: None,
            operators: Vec::new(),
            alignment_ms,
            sync_ms: start.elapsed().as_millis() as u64,
            async_ms: 0,
            shared_files: Vec::new(),
        };
        if snap.operators.is_empty() {
            cp.responder.acknowledge(ack);
            return;
        }
        let storage = match CheckpointStorage::open(&barrier.target) {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("task '{name}': {e}");
                tracing::warn!(task = %name, checkpoint = barrier.id, %reason, "checkpoint declined");
                cp.responder
                    .decline(barrier.id, cp.vertex, cp.subtask, reason);
                return;
            }
        };
        let file = format!("v{}-s{}.state", cp.vertex.0, cp.subtask);
        let responder = cp.responder.clone();
        let (id, vertex, subtask) = (barrier.id, cp.vertex, cp.subtask);
        let task = name.to_string();
        let upload_start = Instant::now();
        storage.put_async(
            file.clone(),
            move || {
                snap.resolve()?;
                let sizes: Vec<OperatorStateSize> = snap
                    .operators
                    .iter()
                    .map(|(uid, st)| OperatorStateSize {
                        uid: uid.clone(),
                        bytes: st.size(),
                        keyed: !st.key_groups.is_empty() || !st.handles.is_empty(),
                        union: !st.unions.is_empty(),
                    })
                    .collect();
                let shared: Vec<String> = snap
                    .operators
                    .values()
                    .flat_map(|st| st.shared_files())
                    .collect();
                Ok((snap.to_file_bytes()?, (sizes, shared)))
            },
            move |r| match r {
                Ok((size, (sizes, shared))) => {
                    ack.operators = sizes;
                    ack.shared_files = shared;
                    ack.file = Some((file, size));
                    ack.async_ms = upload_start.elapsed().as_millis() as u64;
                    responder.acknowledge(ack);
                }
                Err(e) => {
                    let reason = format!("task '{task}' cannot store its state: {e}");
                    tracing::warn!(task = %task, checkpoint = id, %reason, "checkpoint declined");
                    responder.decline(id, vertex, subtask, reason)
                }
            },
        );
    }

    /// The instant until which the task may sleep: the next flush or timer, whichever is
    /// first, and never later than `cap`.
    fn wake_at(&self, next_flush: Option<Instant>, cap: Option<Instant>) -> Option<Instant> {
        let timer = self
            .processing_time
            .wait_bound(now_ms())
            .map(|d| Instant::now() + d);
        [next_flush, cap, timer].into_iter().flatten().min()
    }

    /// After the input ended: report it, then wait for the final notice (or cancellation),
    /// passing on checkpoint notices that arrive meanwhile.
    fn await_end_of_job(&mut self) -> Result<()> {
        let Some(cp) = self.checkpointing.clone() else {
            return Ok(());
        };
        cp.responder.finished_input(cp.vertex, cp.subtask);
        let mut drained = Drained::default();
        loop {
            self.inbox.drain(None, &mut drained);
            // Every channel ended: no barrier can come, and none matters any more.
            drained.priority.clear();
            Self::run_mails(&mut drained)?;
            while let Some(c) = drained.controls.pop_front() {
                match c {
                    TaskControl::TriggerCheckpoint(b) | TaskControl::StopWithSavepoint(b) => {
                        // A checkpoint this task has not seen the barrier of: its input ended
                        // before, so its final state belongs to it. (One it took already is
                        // on its way to the JobMaster.)
                        let last = cp.last_snapshot.load(std::sync::atomic::Ordering::Relaxed);
                        if b.id > last {
                            let name = self.name.clone();
                            let checkpointing = self.checkpointing.clone();
                            let head = &mut self.head;
                            Self::take_checkpoint(
                                &checkpointing,
                                &name,
                                &b,
                                0,
                                |snap| match head {
                                    ChainHead::Source(h) => h.checkpoint(&b, snap),
                                    ChainHead::Input(h) => h.checkpoint(&b, snap),
                                },
                            )?;
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
        let mut drained = Drained::default();
        let timeout = self.buffer_timeout;
        let mut next_flush = timeout.map(|t| Instant::now() + t);
        let inbox = self.inbox.clone();
        let pts = self.processing_time.clone();
        let name = self.name.clone();
        let checkpointing = self.checkpointing.clone();
        let live = self.live_metrics.clone();
        let mut next_publish = Instant::now();
        // Timers and flushes, checked after every step of the default action; the live
        // counters go out with a flush now and then.
        macro_rules! housekeeping {
            ($head:expr) => {{
                if pts.next().is_some() {
                    let now = now_ms();
                    if pts.take_due(now) {
                        $head.on_processing_time(now)?;
                    }
                }
                if let (Some(t), Some(due)) = (timeout, next_flush) {
                    let now = Instant::now();
                    if now >= due {
                        $head.flush()?;
                        next_flush = Some(now + t);
                        if let Some(live) = live.as_ref().filter(|_| now >= next_publish) {
                            publish_live(live, |v| $head.visit_metrics(v));
                            next_publish = now + LIVE_METRICS_INTERVAL;
                        }
                    }
                }
            }};
        }
        // Stop-with-savepoint: the savepoint a source waits for before it ends.
        let mut stopping: Option<u64> = None;
        let mut stop_now = false;
        // Control requests: checkpoint triggers (sources) and notices.
        macro_rules! controls {
            ($head:expr, $is_source:expr) => {{
                while let Some(c) = drained.controls.pop_front() {
                    match c {
                        TaskControl::TriggerCheckpoint(b) if $is_source => {
                            Self::take_checkpoint(&checkpointing, &name, &b, 0, |snap| {
                                $head.checkpoint(&b, snap)
                            })?;
                        }
                        TaskControl::StopWithSavepoint(b) if $is_source => {
                            Self::take_checkpoint(&checkpointing, &name, &b, 0, |snap| {
                                $head.checkpoint(&b, snap)
                            })?;
                            stopping = Some(b.id);
                        }
                        TaskControl::TriggerCheckpoint(b) | TaskControl::StopWithSavepoint(b) => {
                            tracing::warn!(task = %name, checkpoint = b.id, "a task with inputs ignores a checkpoint trigger");
                        }
                        TaskControl::Notify(n) => {
                            $head.notify_checkpoint(n)?;
                            // Input heads never stop: their assignments go unread.
                            #[allow(unused_assignments)]
                            match (n, stopping) {
                                (CheckpointNotice::Complete(id), Some(s)) if id >= s => stop_now = true,
                                (CheckpointNotice::Aborted(id), Some(s)) if id == s => stopping = None,
                                _ => {}
                            }
                        }
                    }
                }
            }};
        }
        if let ChainHead::Source(_) = &self.head {
            loop {
                if inbox.has_mail() || stopping.is_some() {
                    // While stopping, nothing is polled: wait for the savepoint's outcome.
                    let until = match stopping {
                        // Timers do not run while stopping: only flushes wake the task.
                        Some(_) => next_flush,
                        None => Some(Instant::now()),
                    };
                    inbox.drain(until, &mut drained);
                    Self::run_mails(&mut drained)?;
                    let ChainHead::Source(src) = &mut self.head else {
                        unreachable!("checked above")
                    };
                    controls!(src, true);
                    if stop_now {
                        tracing::info!(task = %name, "stopped after a savepoint");
                        return src.stop();
                    }
                    if stopping.is_some() {
                        // Nothing may be emitted after the savepoint's barrier: no timers,
                        // only the flush of what was written before it.
                        if let (Some(t), Some(due)) = (timeout, next_flush) {
                            if Instant::now() >= due {
                                src.flush()?;
                                next_flush = Some(Instant::now() + t);
                            }
                        }
                        continue;
                    }
                }
                let status = match &mut self.head {
                    ChainHead::Source(src) => src.poll()?,
                    ChainHead::Input(_) => unreachable!("checked above"),
                };
                if status == PollStatus::NothingAvailable {
                    let until = self.wake_at(next_flush, Some(Instant::now() + IDLE_SOURCE_WAIT));
                    inbox.drain(until, &mut drained);
                    Self::run_mails(&mut drained)?;
                }
                let ChainHead::Source(src) = &mut self.head else {
                    unreachable!("checked above")
                };
                controls!(src, true);
                if stopping.is_some() {
                    continue;
                }
                if status == PollStatus::Finished {
                    return src.end_of_input();
                }
                housekeeping!(src);
            }
        }
        // An unaligned checkpoint whose snapshot is taken and whose in-flight data is still
        // being recorded: (barrier, snapshot, start, alignment ms).
        let mut in_flight: Option<(CheckpointBarrier, TaskStateSnapshot, Instant, u64)> = None;
        loop {
            let timeout_at = match &self.head {
                ChainHead::Input(h) => h.alignment_timeout_at(),
                ChainHead::Source(_) => None,
            };
            let until = self.wake_at(next_flush, timeout_at);
            inbox.drain(until, &mut drained);
            Self::run_mails(&mut drained)?;
            let ChainHead::Input(head) = &mut self.head else {
                unreachable!("sources return above")
            };
            controls!(head, false);
            if let Some((b, ..)) = &in_flight {
                // An aborted unaligned checkpoint is forgotten.
                if head.is_aborted(b.id) {
                    in_flight = None;
                }
            }
            // Checkpoint actions due now, then what alignment held back.
            macro_rules! checkpoints {
                ($due:expr) => {{
                    let mut due = $due;
                    while let Some(action) = due {
                        match action {
                            BarrierAction::Snapshot(b) => {
                                let alignment_ms = head.last_alignment_ms();
                                Self::take_checkpoint(
                                    &checkpointing,
                                    &name,
                                    &b,
                                    alignment_ms,
                                    |snap| head.checkpoint(&b, snap),
                                )?;
                            }
                            BarrierAction::SnapshotUnaligned(b) => {
                                if let Some(cp) = &checkpointing {
                                    cp.last_snapshot
                                        .fetch_max(b.id, std::sync::atomic::Ordering::Relaxed);
                                }
                                let start = Instant::now();
                                let mut snap = TaskStateSnapshot::default();
                                head.checkpoint(&b, &mut snap)?;
                                in_flight = Some((b, snap, start, head.last_alignment_ms()));
                            }
                            BarrierAction::InFlightComplete(id, data) => match in_flight.take() {
                                Some((b, mut snap, start, alignment_ms)) if b.id == id => {
                                    Self::add_in_flight(
                                        &checkpointing,
                                        head.num_channels(),
                                        data,
                                        &mut snap,
                                    )?;
                                    Self::store_snapshot(
                                        &checkpointing,
                                        &name,
                                        &b,
                                        alignment_ms,
                                        start,
                                        snap,
                                    );
                                }
                                other => in_flight = other,
                            },
                        }
                        due = head.resume()?;
                    }
                }};
            }
            // Priority barriers first: those taken with the inputs counted them already.
            while let Some(p) = drained.priority.pop_front() {
                checkpoints!(head.on_priority_barrier(p.channel as usize, p.barrier, p.overtaken));
            }
            loop {
                if inbox.has_priority() {
                    // A priority barrier that came meanwhile overtakes what is left here too.
                    inbox.take_priority(&mut drained.priority);
                    while let Some(p) = drained.priority.pop_front() {
                        let queued = drained
                            .inputs
                            .iter()
                            .filter(|(c, _)| *c == p.channel)
                            .count() as u32;
                        checkpoints!(head.on_priority_barrier(
                            p.channel as usize,
                            p.barrier,
                            p.overtaken.saturating_add(queued)
                        ));
                    }
                }
                let Some((ch, msg)) = drained.inputs.pop_front() else {
                    break;
                };
                checkpoints!(head.on_message(ch as usize, msg)?);
            }
            checkpoints!(head.check_alignment_timeout());
            // An aborted alignment releases what it held.
            checkpoints!(head.resume()?);
            if head.input_ended() {
                return head.end_of_input();
            }
            housekeeping!(head);
        }
    }
}
