//! A task's inbox: its input channels and its mailbox behind one lock and one condition
//! variable, so the task thread sleeps until either data or a mail arrives.
//!
//! Producers push whole buffers (tens of KiB, thousands of records), so the lock is taken
//! once per buffer, not per record. The queue itself needs no bound: everything in it is a
//! buffer taken from some producer's bounded pool.
//!
//! An unaligned checkpoint's barrier is a priority event ([`PriorityBarrier`]): it does not
//! queue behind its channel's messages but beside them, with the number of them it overtook,
//! and the task looks for it between any two messages it processes. Invariant: a priority
//! barrier's `overtaken` counts exactly the messages of its channel that precede it in the
//! channel's order and that the task had not yet taken out of the inbox when it arrived
//! (plus what the producer's side reported it overtook there); the task adds those it had
//! taken and not yet processed ([`TaskInbox::take_priority`]).

use crate::buffer::Buffer;
use crate::checkpoint::{CheckpointBarrier, CheckpointNotice};
use crate::error::{Result, RuntimeError};
use crate::typed::TypedRecords;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// In-band events that are not records: they end a buffer and are sent at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The producer subtask finished; no more data on this channel.
    EndOfPartition,
    /// The producer stopped after a savepoint without draining: no more data, and no
    /// event-time progress either (windows are not fired by the end of this channel).
    Stopped,
}

/// What travels on one input channel.
pub enum ChannelMessage {
    /// A buffer of encoded stream elements.
    Buffer(Buffer),
    /// Records handed over in memory by a producer in the same process (never between
    /// processes); see [`crate::typed`].
    Records(TypedRecords),
    /// A control event.
    Event(ChannelEvent),
    /// The channel failed (its network connection broke, or the producer's side reported
    /// an error): the consuming task fails with this message.
    Error(String),
}

/// An unaligned checkpoint's barrier that arrived on `channel` ahead of queued messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityBarrier {
    /// The input channel.
    pub channel: u32,
    /// The barrier.
    pub barrier: CheckpointBarrier,
    /// Messages of the channel that precede the barrier and were not yet processed when it
    /// arrived: see the module's invariant.
    pub overtaken: u32,
}

/// An action to run on the task thread between records (Flink's mailbox "letters").
pub type Mail = Box<dyn FnOnce() -> Result<()> + Send>;

/// A request of the JobMaster to a running task, handled between records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskControl {
    /// A source task takes a checkpoint and sends this barrier downstream.
    TriggerCheckpoint(CheckpointBarrier),
    /// A source task takes this savepoint, then emits nothing more: it ends its input once
    /// the savepoint completed (and goes on if it was aborted). Stop-with-savepoint.
    StopWithSavepoint(CheckpointBarrier),
    /// A checkpoint completed or was aborted.
    Notify(CheckpointNotice),
}

#[derive(Default)]
struct InboxState {
    inputs: VecDeque<(u32, ChannelMessage)>,
    priority: VecDeque<PriorityBarrier>,
    mails: VecDeque<Mail>,
    controls: VecDeque<TaskControl>,
    cancelled: bool,
    /// The task thread sleeps in `drain` and no push has notified it yet: only then does a
    /// push notify the condition variable (a notify is a system call even when nobody
    /// waits; data arrives once per buffer, and the task is usually busy when it does).
    waiting: bool,
}

/// The receiving end of a task: input channels plus mailbox.
#[derive(Default)]
pub struct TaskInbox {
    state: Mutex<InboxState>,
    wake: Condvar,
    has_mail: AtomicBool,
    has_priority: AtomicBool,
}

/// Everything taken out of an inbox in one go.
#[derive(Default)]
pub struct Drained {
    /// Channel messages in arrival order, with their channel index.
    pub inputs: VecDeque<(u32, ChannelMessage)>,
    /// Priority barriers, to handle before `inputs`: their `overtaken` counts messages of
    /// `inputs` (taken with them) and none processed before.
    pub priority: VecDeque<PriorityBarrier>,
    /// Mails in arrival order.
    pub mails: VecDeque<Mail>,
    /// Control requests in arrival order.
    pub controls: VecDeque<TaskControl>,
    /// The task must stop.
    pub cancelled: bool,
}

impl TaskInbox {
    /// A new, empty inbox.
    pub fn new() -> Arc<Self> {
        Arc::new(TaskInbox::default())
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases the lock and wakes the task thread if it sleeps in `drain`. The first
    /// message after the task fell asleep clears `waiting`, so the ones that follow before
    /// the task runs again (it may wait for a core) make no further system calls.
    fn wake_task(&self, mut st: MutexGuard<'_, InboxState>) {
        let sleeping = std::mem::replace(&mut st.waiting, false);
        drop(st);
        if sleeping {
            self.wake.notify_one();
        }
    }

    /// Delivers a message on `channel`. Fails if the task was cancelled.
    pub fn push(&self, channel: u32, msg: ChannelMessage) -> Result<()> {
        let mut st = self.lock();
        if st.cancelled {
            return Err(RuntimeError::Cancelled);
        }
        st.inputs.push_back((channel, msg));
        self.wake_task(st);
        Ok(())
    }

    /// Delivers an unaligned checkpoint's barrier on `channel` ahead of the channel's queued
    /// messages; `overtaken_upstream` messages precede it that the producer's side still
    /// holds (a network sender's queue). Fails if the task was cancelled.
    pub fn push_priority(
        &self,
        channel: u32,
        barrier: CheckpointBarrier,
        overtaken_upstream: u32,
    ) -> Result<()> {
        let mut st = self.lock();
        if st.cancelled {
            return Err(RuntimeError::Cancelled);
        }
        let queued = st.inputs.iter().filter(|(c, _)| *c == channel).count() as u32;
        st.priority.push_back(PriorityBarrier {
            channel,
            barrier,
            overtaken: overtaken_upstream.saturating_add(queued),
        });
        self.has_priority.store(true, Ordering::Release);
        self.wake_task(st);
        Ok(())
    }

    /// Cheap check, without locking, whether a priority barrier waits.
    #[inline]
    pub fn has_priority(&self) -> bool {
        self.has_priority.load(Ordering::Acquire)
    }

    /// Takes the waiting priority barriers without the messages queued with them: their
    /// `overtaken` does not count the messages the task took out earlier and has not
    /// processed yet; the caller adds those of the barrier's channel.
    pub fn take_priority(&self, into: &mut VecDeque<PriorityBarrier>) {
        let mut st = self.lock();
        into.extend(st.priority.drain(..));
        self.has_priority.store(false, Ordering::Release);
    }

    /// Puts a mail in the mailbox.
    pub fn send_mail(&self, mail: Mail) {
        let mut st = self.lock();
        st.mails.push_back(mail);
        self.has_mail.store(true, Ordering::Release);
        self.wake_task(st);
    }

    /// Delivers a control request.
    pub fn send_control(&self, control: TaskControl) {
        let mut st = self.lock();
        st.controls.push_back(control);
        self.has_mail.store(true, Ordering::Release);
        self.wake_task(st);
    }

    /// Marks the task cancelled and wakes it. Later pushes fail.
    pub fn cancel(&self) {
        let mut st = self.lock();
        st.cancelled = true;
        // Dropped after the lock is released: a returning buffer may run its pool's hook
        // (a network channel grants credit), which must not run under the inbox's lock.
        let dropped = std::mem::take(&mut st.inputs);
        st.priority.clear();
        self.has_mail.store(true, Ordering::Release);
        drop(st);
        drop(dropped);
        self.wake.notify_all();
    }

    /// Cheap check, without locking, whether mails or a cancellation are waiting.
    #[inline]
    pub fn has_mail(&self) -> bool {
        self.has_mail.load(Ordering::Acquire)
    }

    /// Takes everything queued, waiting until something arrives or `deadline` passes
    /// (`None`: wait without limit). `into` is reused to avoid allocation; its `inputs`
    /// must be empty (processed), or the priority barriers' counts would not add up.
    pub fn drain(&self, deadline: Option<Instant>, into: &mut Drained) {
        let mut st = self.lock();
        loop {
            if st.cancelled
                || !st.inputs.is_empty()
                || !st.priority.is_empty()
                || !st.mails.is_empty()
                || !st.controls.is_empty()
            {
                break;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    Some(d - now)
                }
            };
            st.waiting = true;
            st = match timeout {
                None => self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(t) => {
                    self.wake
                        .wait_timeout(st, t)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            st.waiting = false;
        }
        std::mem::swap(&mut st.inputs, &mut into.inputs);
        into.priority.extend(st.priority.drain(..));
        self.has_priority.store(false, Ordering::Release);
        std::mem::swap(&mut st.mails, &mut into.mails);
        into.controls.extend(st.controls.drain(..));
        into.cancelled = st.cancelled;
        self.has_mail.store(st.cancelled, Ordering::Release);
    }
}

/// The sending end of one input channel of a consumer task: the consumer's inbox in this
/// process, or a subpartition served to a consumer in another process over the network.
#[derive(Clone)]
pub struct ChannelSender {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Local { inbox: Arc<TaskInbox>, channel: u32 },
    Remote(Arc<crate::exchange::Subpartition>),
}

impl ChannelSender {
    /// Sends to channel `channel` of the task owning `inbox`.
    pub fn new(inbox: Arc<TaskInbox>, channel: u32) -> Self {
        ChannelSender {
            target: Target::Local { inbox, channel },
        }
    }

    /// Sends into `subpartition`, which a consumer in another process reads.
    pub fn remote(subpartition: Arc<crate::exchange::Subpartition>) -> Self {
        ChannelSender {
            target: Target::Remote(subpartition),
        }
    }

    /// Delivers one message.
    #[inline]
    pub fn send(&self, msg: ChannelMessage) -> Result<()> {
        match &self.target {
            Target::Local { inbox, channel } => inbox.push(*channel, msg),
            Target::Remote(sub) => sub.push(msg),
        }
    }

    /// Delivers an unaligned checkpoint's barrier ahead of what is queued for the consumer.
    pub fn send_priority(&self, barrier: CheckpointBarrier) -> Result<()> {
        match &self.target {
            Target::Local { inbox, channel } => inbox.push_priority(*channel, barrier, 0),
            Target::Remote(sub) => sub.push_priority(barrier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Two producers push in bursts, pausing now and then so that the task falls asleep;
    /// every message must arrive, whether the task waits without limit or with a deadline.
    /// A lost wake-up shows as a timeout here, not as a hang.
    fn all_pushes_wake_the_task(deadline: Option<Duration>) {
        const PER_PRODUCER: usize = 2_000;
        let inbox = TaskInbox::new();
        let (done_tx, done_rx) = mpsc::channel();
        let consumer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let mut drained = Drained::default();
                let mut received = 0;
                while received < 2 * PER_PRODUCER {
                    inbox.drain(deadline.map(|d| Instant::now() + d), &mut drained);
                    received += drained.inputs.drain(..).count();
                }
                let _ = done_tx.send(received);
            })
        };
        let producers: Vec<_> = (0..2)
            .map(|channel| {
                let sender = ChannelSender::new(inbox.clone(), channel);
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        sender
                            .send(ChannelMessage::Event(ChannelEvent::EndOfPartition))
                            .expect("inbox open");
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().expect("producer panicked");
        }
        let received = done_rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            received,
            Ok(2 * PER_PRODUCER),
            "a push did not wake the task"
        );
        consumer.join().expect("consumer panicked");
    }

    #[test]
    fn a_priority_barrier_counts_the_queued_messages_of_its_channel_only() {
        let inbox = TaskInbox::new();
        let msg = || ChannelMessage::Event(ChannelEvent::EndOfPartition);
        let b = CheckpointBarrier {
            id: 3,
            timestamp: 0,
            kind: weir_state::SnapshotKind::Checkpoint,
            target: String::new(),
            unaligned: true,
        };
        for ch in [0, 1, 0, 0] {
            inbox.push(ch, msg()).unwrap();
        }
        assert!(!inbox.has_priority());
        inbox.push_priority(0, b.clone(), 2).unwrap();
        assert!(inbox.has_priority());
        inbox.push(0, msg()).unwrap();
        let mut d = Drained::default();
        inbox.drain(Some(Instant::now()), &mut d);
        assert!(!inbox.has_priority());
        assert_eq!(
            d.priority.pop_front(),
            Some(PriorityBarrier {
                channel: 0,
                barrier: b.clone(),
                overtaken: 5
            }),
            "three queued here, two at the producer; the one after it is not overtaken"
        );
        assert_eq!(d.inputs.len(), 5);
        // Taken alone, a barrier leaves the inputs queued.
        inbox.push(1, msg()).unwrap();
        inbox.push_priority(1, b, 0).unwrap();
        let mut p = VecDeque::new();
        inbox.take_priority(&mut p);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].overtaken, 1);
        inbox.drain(Some(Instant::now()), &mut Drained::default());
        inbox.cancel();
        assert!(inbox.push_priority(0, p[0].barrier.clone(), 0).is_err());
    }

    #[test]
    fn every_push_reaches_a_task_that_waits_without_limit() {
        all_pushes_wake_the_task(None);
    }

    #[test]
    fn every_push_reaches_a_task_that_waits_with_a_deadline() {
        all_pushes_wake_the_task(Some(Duration::from_millis(5)));
    }
}
