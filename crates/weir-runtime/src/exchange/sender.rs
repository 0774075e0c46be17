//! The sending side of a network channel: a subpartition whose buffers wait here until the
//! consumer's credit lets the connection send them.
//!
//! Invariants:
//! - a buffer leaves the queue only with a credit (one credit, one buffer); events need none;
//! - an unaligned checkpoint's barrier goes to the front of the queue (behind earlier such
//!   barriers only) and carries the number of messages it overtook there: the consumer
//!   records that many more messages of the channel as the checkpoint's in-flight data;
//! - `buffers` is the number of buffers in the queue (the backlog announced to the consumer);
//! - queued buffers stay out of the producer's pool, so a consumer that grants no credit
//!   blocks its producer once the pool is used up: backpressure crosses processes, and the
//!   sender's memory stays bounded by its pool;
//! - the subpartition is in its connection's ready queue at most once (`scheduled`), and
//!   whenever it can send something it is there or being served.

use super::connection::Connection;
use super::protocol::{ChannelKey, MAX_FRAME};
use crate::buffer::Buffer;
use crate::checkpoint::CheckpointBarrier;
use crate::error::{Result, RuntimeError};
use crate::inbox::{ChannelEvent, ChannelMessage};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The largest buffer a data connection carries (a frame's limit less its header).
const MAX_BUFFER: usize = MAX_FRAME - super::protocol::BUFFER_HEADER;

/// What waits to be sent.
pub(crate) enum Outgoing {
    Buffer(Buffer),
    Event(ChannelEvent),
    /// A priority barrier and the number of queued messages it overtook.
    Barrier(CheckpointBarrier, u32),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outgoing>,
    /// Buffers in `queue`.
    buffers: u32,
    credit: u32,
    /// The connection and stream id the consumer requested this subpartition on.
    attached: Option<(Weak<Connection>, u32)>,
    scheduled: bool,
    /// The consumer is gone: why. Later pushes fail the producer.
    failed: Option<String>,
}

impl State {
    fn sendable(&self) -> bool {
        self.attached.is_some()
            && match self.queue.front() {
                Some(Outgoing::Event(_) | Outgoing::Barrier(..)) => true,
                Some(Outgoing::Buffer(_)) => self.credit > 0,
                None => false,
            }
    }
}

/// One subpartition served to a consumer in another process.
pub struct Subpartition {
    key: ChannelKey,
    state: Mutex<State>,
}

impl Subpartition {
    pub(crate) fn new(key: ChannelKey) -> Arc<Self> {
        Arc::new(Subpartition {
            key,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent; a panicking holder cannot break it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message of the producer (its writer's send).
    pub fn push(self: &Arc<Self>, msg: ChannelMessage) -> Result<()> {
        let out = match msg {
            ChannelMessage::Buffer(b) if b.is_empty() => return Ok(()),
            ChannelMessage::Buffer(b) if b.len() > MAX_BUFFER => {
                return Err(RuntimeError::Other(format!(
                    "a buffer of {} bytes for network channel {:?} is larger than the {MAX_BUFFER} a data connection carries: a record of that size cannot cross processes",
                    b.len(),
                    self.key
                )))
            }
            ChannelMessage::Buffer(b) => Outgoing::Buffer(b),
            ChannelMessage::Event(e) => Outgoing::Event(e),
            ChannelMessage::Records(_) | ChannelMessage::Error(_) => {
                return Err(RuntimeError::Other(format!(
                    "internal error: only buffers and events travel on the network channel {:?}",
                    self.key
                )))
            }
        };
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(RuntimeError::Other(format!(
                "the consumer of network channel {:?} is gone: {why}",
                self.key
            )));
        }
        if matches!(out, Outgoing::Buffer(_)) {
            st.buffers += 1;
        }
        st.queue.push_back(out);
        self.schedule_if_sendable(st);
        Ok(())
    }

    /// Queues an unaligned checkpoint's barrier ahead of the queued messages (behind earlier
    /// barriers only, so barriers keep their order); it needs no credit.
    pub fn push_priority(self: &Arc<Self>, barrier: CheckpointBarrier) -> Result<()> {
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(RuntimeError::Other(format!(
                "the consumer of network channel {:?} is gone: {why}",
                self.key
            )));
        }
        let at = st
            .queue
            .iter()
            .position(|o| !matches!(o, Outgoing::Barrier(..)))
            .unwrap_or(st.queue.len());
        let overtaken = (st.queue.len() - at) as u32;
        st.queue.insert(at, Outgoing::Barrier(barrier, overtaken));
        self.schedule_if_sendable(st);
        Ok(())
    }

    /// Puts this subpartition in its connection's ready queue if it can send and is not
    /// there yet; releases the lock first.
    fn schedule_if_sendable(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        if st.scheduled || !st.sendable() {
            return;
        }
        let conn = st.attached.as_ref().and_then(|(c, _)| c.upgrade());
        if let Some(conn) = conn {
            st.scheduled = true;
            drop(st);
            conn.schedule(self.clone());
        }
    }

    /// The consumer requested this subpartition on `conn` as `stream` with `credit`.
    pub(crate) fn attach(self: &Arc<Self>, conn: &Arc<Connection>, stream: u32, credit: u32) {
        let mut st = self.lock();
        st.attached = Some((Arc::downgrade(conn), stream));
        st.credit = credit;
        st.scheduled = false;
        self.schedule_if_sendable(st);
    }

    /// The consumer granted `credit` more buffers.
    pub(crate) fn add_credit(self: &Arc<Self>, credit: u32) {
        let mut st = self.lock();
        st.credit = st.credit.saturating_add(credit);
        self.schedule_if_sendable(st);
    }

    /// The next frame to send, with its stream id and the backlog behind it, if one may go
    /// now. Unschedules the subpartition when nothing more may go; the connection
    /// reschedules it when `more` is true.
    pub(crate) fn next_to_send(&self) -> Option<(u32, Outgoing, u32, bool)> {
        let mut st = self.lock();
        let stream = st.attached.as_ref()?.1;
        let item = if st.sendable() {
            match st.queue.pop_front() {
                Some(Outgoing::Buffer(b)) => {
                    st.credit -= 1;
                    st.buffers -= 1;
                    Some(Outgoing::Buffer(b))
                }
                other => other,
            }
        } else {
            None
        };
        let more = st.sendable();
        st.scheduled = more;
        // The backlog counts buffers only: events and barriers need no buffer at the receiver.
        item.map(|i| (stream, i, st.buffers, more))
    }

    /// True while a consumer's request is attached.
    pub(crate) fn is_attached(&self) -> bool {
        self.lock().attached.is_some()
    }

    /// The job ended here: tell the consumer (if one is attached) and drop what is queued.
    pub(crate) fn release(&self, why: &str) {
        let attached = self.lock().attached.clone();
        if let Some((conn, stream)) = attached {
            if let Some(conn) = conn.upgrade() {
                conn.stop_serving(stream, why);
            }
        }
        self.fail(why);
    }

    /// The consumer or the connection is gone: drop what is queued (its buffers go back to
    /// the producer's pool, which wakes a blocked producer) and fail later pushes.
    pub(crate) fn fail(&self, why: &str) {
        let dropped = {
            let mut st = self.lock();
            st.failed.get_or_insert_with(|| why.to_string());
            st.attached = None;
            st.scheduled = false;
            st.buffers = 0;
            std::mem::take(&mut st.queue)
        };
        // Dropped outside the lock: returning buffers may run pool hooks.
        drop(dropped);
    }
}
