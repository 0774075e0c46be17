//! The receiving side of network channels: an input gate per consumer task, with exclusive
//! buffers per channel and floating buffers shared by the gate's channels (Flink's
//! credit-based flow control).
//!
//! Credit is the receiver's promise of a free buffer. Invariants, per channel:
//! - `outstanding` (credit granted and not yet used by an arriving buffer) equals the free
//!   exclusive buffers plus the floating buffers reserved for the channel, so an arriving
//!   buffer always finds room, and a sender that sends without credit is caught;
//! - an exclusive buffer that comes back (the task processed it) is granted again to its own
//!   channel at once;
//! - a floating buffer goes to a channel whose sender announced more backlog than it holds
//!   credit for; when it comes back it goes to the next such channel of the gate.

use super::connection::Connection;
use crate::buffer::{Buffer, BufferPool};
use crate::error::{Result, RuntimeError};
use crate::inbox::{ChannelMessage, TaskInbox};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// How many buffers a gate's network channels receive into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditConfig {
    /// Buffers of each channel's own (Flink's default: 2).
    pub exclusive_buffers: usize,
    /// Buffers shared by the gate's channels (Flink's default: 8).
    pub floating_buffers: usize,
    /// Bytes per buffer.
    pub buffer_size: usize,
}

impl Default for CreditConfig {
    fn default() -> Self {
        CreditConfig {
            exclusive_buffers: 2,
            floating_buffers: 8,
            buffer_size: 32 * 1024,
        }
    }
}

/// The network inputs of one consumer task.
pub struct InputGate {
    inbox: Arc<TaskInbox>,
    config: CreditConfig,
    floating: BufferPool,
    channels: Mutex<Vec<Weak<RemoteInput>>>,
}

impl InputGate {
    /// A gate delivering into `inbox`.
    pub fn new(inbox: Arc<TaskInbox>, mut config: CreditConfig) -> Arc<Self> {
        // A channel without an exclusive buffer could never start: it gets credit only from
        // backlog, which it learns from a buffer.
        config.exclusive_buffers = config.exclusive_buffers.max(1);
        Arc::new_cyclic(|gate: &Weak<InputGate>| {
            let gate = gate.clone();
            InputGate {
                inbox,
                config,
                floating: BufferPool::with_return_hook(
                    config.floating_buffers,
                    config.buffer_size,
                    Box::new(move || {
                        if let Some(g) = gate.upgrade() {
                            g.place_floating();
                        }
                    }),
                ),
                channels: Mutex::new(Vec::new()),
            }
        })
    }

    /// Gives free floating buffers to channels whose backlog exceeds their credit.
    fn place_floating(&self) {
        let channels: Vec<Arc<RemoteInput>> = {
            let mut all = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            // Channels that ended are gone: forget them.
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        for ch in channels {
            ch.take_floating(&self.floating);
        }
    }

    pub(crate) fn add_channel(
        self: &Arc<Self>,
        channel: u32,
        conn: &Arc<Connection>,
        stream: u32,
    ) -> Arc<RemoteInput> {
        let input = Arc::new_cyclic(|me: &Weak<RemoteInput>| {
            let me = me.clone();
            RemoteInput {
                channel,
                inbox: self.inbox.clone(),
                gate: self.clone(),
                conn: Arc::downgrade(conn),
                stream,
                exclusive: BufferPool::with_return_hook(
                    self.config.exclusive_buffers,
                    self.config.buffer_size,
                    Box::new(move || {
                        if let Some(input) = me.upgrade() {
                            input.grant(1);
                        }
                    }),
                ),
                credit: Mutex::new(Credit {
                    outstanding: self.config.exclusive_buffers as u32,
                    reserved: Vec::new(),
                    backlog: 0,
                }),
            }
        });
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&input));
        input
    }
}

struct Credit {
    outstanding: u32,
    reserved: Vec<Buffer>,
    backlog: u32,
}

/// One network input channel of a gate.
pub(crate) struct RemoteInput {
    channel: u32,
    inbox: Arc<TaskInbox>,
    gate: Arc<InputGate>,
    conn: Weak<Connection>,
    stream: u32,
    exclusive: BufferPool,
    credit: Mutex<Credit>,
}

impl RemoteInput {
    fn lock(&self) -> MutexGuard<'_, Credit> {
        self.credit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The credit to grant when the channel is requested.
    pub(crate) fn initial_credit(&self) -> u32 {
        self.gate.config.exclusive_buffers as u32
    }

    fn grant(&self, credit: u32) {
        if let Some(conn) = self.conn.upgrade() {
            let mut c = self.lock();
            c.outstanding += credit;
            drop(c);
            conn.send_credit(self.stream, credit);
        }
    }

    /// Reserves floating buffers while the sender's backlog exceeds the credit it holds.
    fn take_floating(&self, floating: &BufferPool) {
        let mut granted = 0;
        {
            let mut c = self.lock();
            while c.backlog > c.outstanding {
                match floating.try_request() {
                    Some(b) => {
                        c.reserved.push(b);
                        c.outstanding += 1;
                        granted += 1;
                    }
                    None => break,
                }
            }
        }
        if granted > 0 {
            if let Some(conn) = self.conn.upgrade() {
                conn.send_credit(self.stream, granted);
            }
        }
    }

    /// A buffer frame arrived with `backlog` more behind it: the buffer to read it into.
    pub(crate) fn receive_buffer(&self, backlog: u32) -> Result<Buffer> {
        let mut c = self.lock();
        if c.outstanding == 0 {
            return Err(RuntimeError::Codec {
                context: "flow control violated on a data connection".into(),
                message: format!("a buffer arrived on stream {} without credit", self.stream),
            });
        }
        let buf = match self.exclusive.try_request() {
            Some(b) => b,
            None => c.reserved.pop().ok_or_else(|| RuntimeError::Codec {
                context: "flow control violated on a data connection".into(),
                message: format!("no free buffer for stream {} despite credit", self.stream),
            })?,
        };
        c.outstanding -= 1;
        c.backlog = backlog;
        Ok(buf)
    }

    /// Hands a received buffer to the task, then gives floating buffers to the backlog.
    pub(crate) fn deliver(&self, msg: ChannelMessage) -> Result<()> {
        self.inbox.push(self.channel, msg)?;
        self.gate.place_floating();
        Ok(())
    }

    /// Hands an unaligned checkpoint's barrier to the task, ahead of its queued buffers;
    /// `overtaken` more buffers of the channel, queued at the sender, precede it.
    pub(crate) fn deliver_priority(
        &self,
        barrier: crate::checkpoint::CheckpointBarrier,
        overtaken: u32,
    ) -> Result<()> {
        self.inbox.push_priority(self.channel, barrier, overtaken)
    }

    /// The channel failed: the task fails with `why`.
    pub(crate) fn fail(&self, why: &str) {
        let _ = self
            .inbox
            .push(self.channel, ChannelMessage::Error(why.to_string()));
    }
}
