//! A task: one subtask of a chain, run by one dedicated OS thread in a mailbox loop.
//!
//! The loop alternates between the default action (poll the source, or process the input
//! buffers that arrived) and the mailbox (mails, cancellation). When there is nothing to do
//! the thread sleeps on its [`TaskInbox`] until data, a mail or the next buffer-timeout flush.

use crate::buffer::BufferPool;
use crate::error::{Result, RuntimeError};
use crate::head::{InputChainHead, SourceChainHead};
use crate::inbox::{ChannelEvent, ChannelMessage, Drained, TaskInbox};
use crate::metrics::OperatorMetrics;
use crate::operator::catch_user_panic;
use crate::source::PollStatus;
use crate::time::{now_ms, ProcessingTimeService};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// One runnable subtask.
pub struct Task {
    name: String,
    head: ChainHead,
    inbox: Arc<TaskInbox>,
    pool: BufferPool,
    buffer_timeout: Option<Duration>,
    processing_time: ProcessingTimeService,
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
        }
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

    /// The instant until which the task may sleep: the next flush or timer, whichever is
    /// first, and never later than `cap`.
    fn wake_at(&self, next_flush: Option<Instant>, cap: Option<Instant>) -> Option<Instant> {
        let timer = self
            .processing_time
            .wait_bound(now_ms())
            .map(|d| Instant::now() + d);
        [next_flush, cap, timer].into_iter().flatten().min()
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut drained = Drained::default();
        let timeout = self.buffer_timeout;
        let mut next_flush = timeout.map(|t| Instant::now() + t);
        let inbox = self.inbox.clone();
        let pts = self.processing_time.clone();
        // Timers and flushes, checked after every step of the default action.
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
                    }
                }
            }};
        }
        if let ChainHead::Source(_) = &self.head {
            loop {
                if inbox.has_mail() {
                    inbox.drain(Some(Instant::now()), &mut drained);
                    Self::run_mails(&mut drained)?;
                }
                let status = match &mut self.head {
                    ChainHead::Source(src) => src.poll()?,
                    ChainHead::Input(_) => unreachable!("checked above"),
                };
                match status {
                    PollStatus::MoreAvailable => {}
                    PollStatus::NothingAvailable => {
                        let until =
                            self.wake_at(next_flush, Some(Instant::now() + IDLE_SOURCE_WAIT));
                        inbox.drain(until, &mut drained);
                        Self::run_mails(&mut drained)?;
                    }
                    PollStatus::Finished => {}
                }
                let ChainHead::Source(src) = &mut self.head else {
                    unreachable!("checked above")
                };
                if status == PollStatus::Finished {
                    return src.end_of_input();
                }
                housekeeping!(src);
            }
        }
        let channels = match &self.head {
            ChainHead::Input(h) => h.num_channels(),
            ChainHead::Source(_) => 0,
        };
        let mut ended = 0;
        loop {
            let until = self.wake_at(next_flush, None);
            inbox.drain(until, &mut drained);
            Self::run_mails(&mut drained)?;
            let ChainHead::Input(head) = &mut self.head else {
                unreachable!("sources return above")
            };
            while let Some((ch, msg)) = drained.inputs.pop_front() {
                match msg {
                    ChannelMessage::Buffer(buf) => head.on_buffer(ch as usize, &buf)?,
                    ChannelMessage::Event(ChannelEvent::EndOfPartition) => {
                        head.on_channel_end(ch as usize)?;
                        ended += 1;
                    }
                }
            }
            if ended >= channels {
                return head.end_of_input();
            }
            housekeeping!(head);
        }
    }
}
