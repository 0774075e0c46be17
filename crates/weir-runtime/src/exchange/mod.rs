//! The network data plane: channels between tasks in different processes, over TCP, with
//! Flink's credit-based flow control.
//!
//! - [`protocol`]: the frames on a connection.
//! - [`sender`]: a producer's subpartition for a remote consumer; its buffers wait for credit.
//! - [`receiver`]: a consumer's input gate, with exclusive and floating buffers, granting
//!   credit as buffers come free.
//! - [`connection`]: one TCP connection per pair of processes and direction, carrying every
//!   channel the initiating side reads from the other (as in Flink, the consumer opens it).
//! - [`NetworkEnvironment`]: a process's data port and its table of subpartitions.
//!
//! Local channels are unaffected: a [`ChannelSender`] is either a task's inbox in this
//! process or a [`Subpartition`] here, and a consumer's [`TaskInbox`] receives network
//! buffers like local ones. Records cross processes as bytes only; a writer with a remote
//! channel must not hand typed batches over in memory.

pub mod connection;
pub mod protocol;
pub mod receiver;
pub mod sender;

pub use protocol::ChannelKey;
pub use receiver::{CreditConfig, InputGate};
pub use sender::Subpartition;

use crate::error::{Result, RuntimeError};
use crate::inbox::ChannelSender;
use connection::Connection;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How long a connection attempt to a peer's data port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Partitions {
    registered: HashMap<ChannelKey, Arc<Subpartition>>,
    /// Requests that arrived before their producer registered: served on registration.
    waiting: HashMap<ChannelKey, (Weak<Connection>, u32, u32)>,
}

pub(crate) struct Shared {
    config: CreditConfig,
    partitions: Mutex<Partitions>,
    /// Connections this process opened, by peer data address.
    outgoing: Mutex<HashMap<SocketAddr, Arc<Connection>>>,
    /// Connections peers opened to this process.
    incoming: Mutex<Vec<Arc<Connection>>>,
    stopped: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each table update is one insert or remove: consistent even after a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// A consumer requested `key` as `stream` on `conn`.
    pub(crate) fn requested(
        &self,
        conn: &Arc<Connection>,
        key: ChannelKey,
        stream: u32,
        credit: u32,
    ) {
        let mut p = lock(&self.partitions);
        let reject = match p.registered.get(&key).cloned() {
            Some(sub) if sub.is_attached() => Some("the channel is already being read"),
            Some(sub) => {
                drop(p);
                conn.serve(sub, stream, credit);
                None
            }
            None if p.waiting.contains_key(&key) => Some("the channel is already requested"),
            None => {
                p.waiting
                    .insert(key, (Arc::downgrade(conn), stream, credit));
                None
            }
        };
        if let Some(why) = reject {
            conn.reject(stream, format!("{why}: {key:?}"));
        }
    }

    /// A connection closed: its requests that wait for a producer are void.
    pub(crate) fn forget_requests_of(&self, conn: &Connection) {
        lock(&self.partitions)
            .waiting
            .retain(|_, (c, _, _)| !std::ptr::eq(c.as_ptr(), conn));
    }
}

/// A process's data plane: the port peers connect to, and the channels it serves and reads.
pub struct NetworkEnvironment {
    shared: Arc<Shared>,
    local: SocketAddr,
}

impl NetworkEnvironment {
    /// Binds the data port at `bind` (port 0: any free port) and accepts connections.
    pub fn start(bind: SocketAddr, config: CreditConfig) -> Result<Self> {
        let listener = TcpListener::bind(bind)
            .map_err(|e| RuntimeError::Other(format!("cannot bind the data port {bind}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| RuntimeError::Other(format!("cannot read the data port: {e}")))?;
        let shared = Arc::new(Shared {
            config,
            partitions: Mutex::new(Partitions::default()),
            outgoing: Mutex::new(HashMap::new()),
            incoming: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name(format!("weir-net-accept {local}"))
            .spawn(move || accept_loop(listener, weak))
            .map_err(|e| RuntimeError::Other(format!("cannot start the data port thread: {e}")))?;
        tracing::info!(data_port = %local, "data port bound");
        Ok(NetworkEnvironment { shared, local })
    }

    /// The bound data address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Registers the subpartition `key` that a remote consumer will request, and returns the
    /// producer's sender for it. A request that arrived first is served now.
    pub fn register_subpartition(&self, key: ChannelKey) -> ChannelSender {
        let sub = Subpartition::new(key);
        let mut p = lock(&self.shared.partitions);
        p.registered.insert(key, sub.clone());
        let waiting = p.waiting.remove(&key);
        drop(p);
        if let Some((conn, stream, credit)) = waiting {
            if let Some(conn) = conn.upgrade() {
                conn.serve(sub.clone(), stream, credit);
            }
        }
        ChannelSender::remote(sub)
    }

    /// Releases every subpartition of `job` (its tasks ended or were cancelled): their
    /// consumers are told, their queued buffers dropped, and requests for them forgotten.
    pub fn release_job(&self, job: u128) {
        self.release_where(
            |k| k.job == job,
            "the producing job was released on its TaskManager",
        );
    }

    /// Releases the subpartitions of `job`'s execution attempts before `attempt` (a new
    /// attempt is being deployed: the earlier ones' channels are dead).
    pub fn release_attempts_before(&self, job: u128, attempt: u32) {
        self.release_where(
            |k| k.job == job && k.attempt < attempt,
            "the producing execution attempt was replaced by a restart",
        );
    }

    fn release_where(&self, matches: impl Fn(&ChannelKey) -> bool, why: &str) {
        let released: Vec<Arc<Subpartition>> = {
            let mut p = lock(&self.shared.partitions);
            p.waiting.retain(|k, _| !matches(k));
            let keys: Vec<ChannelKey> = p
                .registered
                .keys()
                .filter(|k| matches(k))
                .copied()
                .collect();
            keys.iter().filter_map(|k| p.registered.remove(k)).collect()
        };
        for sub in released {
            sub.release(why);
        }
    }

    /// An input gate for a consumer task delivering into `inbox`.
    pub fn input_gate(&self, inbox: Arc<crate::inbox::TaskInbox>) -> Arc<InputGate> {
        InputGate::new(inbox, self.shared.config)
    }

    /// Opens input channel `channel` of `gate`: channel `key`, produced in the process whose
    /// data port is `peer`. Every channel read from one peer shares one connection.
    pub fn connect_input(
        &self,
        gate: &Arc<InputGate>,
        peer: SocketAddr,
        key: ChannelKey,
        channel: u32,
    ) -> Result<()> {
        let conn = self.connection_to(peer)?;
        conn.request(key, |stream| gate.add_channel(channel, &conn, stream))
    }

    fn connection_to(&self, peer: SocketAddr) -> Result<Arc<Connection>> {
        if let Some(c) = lock(&self.shared.outgoing).get(&peer) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        // Connect without holding the table: a peer that does not answer must not stall
        // channels to other peers.
        let socket = TcpStream::connect_timeout(&peer, CONNECT_TIMEOUT).map_err(|e| {
            RuntimeError::Other(format!("cannot connect to the data port {peer}: {e}"))
        })?;
        let conn = Connection::start(socket, Arc::downgrade(&self.shared))?;
        let mut out = lock(&self.shared.outgoing);
        match out.get(&peer) {
            // Another thread connected meanwhile: use its connection, close ours.
            Some(c) if !c.is_closed() => {
                let existing = c.clone();
                drop(out);
                conn.close("a second connection to the same peer is not needed");
                Ok(existing)
            }
            _ => {
                out.insert(peer, conn.clone());
                Ok(conn)
            }
        }
    }

    /// Closes the data port and every connection.
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_secs(1));
        let outgoing: Vec<_> = lock(&self.shared.outgoing)
            .drain()
            .map(|(_, c)| c)
            .collect();
        let incoming: Vec<_> = lock(&self.shared.incoming).drain(..).collect();
        for c in outgoing.iter().chain(&incoming) {
            c.close("the network environment shut down");
        }
    }
}

impl Drop for NetworkEnvironment {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Weak<Shared>) {
    for socket in listener.incoming() {
        let Some(sh) = shared.upgrade() else { return };
        if sh.stopped.load(Ordering::SeqCst) {
            return;
        }
        match socket
            .map_err(|e| RuntimeError::Other(e.to_string()))
            .and_then(|s| Connection::start(s, shared.clone()))
        {
            Ok(conn) => {
                let mut incoming = lock(&sh.incoming);
                incoming.retain(|c| !c.is_closed());
                if sh.stopped.load(Ordering::SeqCst) {
                    // Accepted while shutting down: nobody would close it later.
                    drop(incoming);
                    conn.close("the network environment shut down");
                    return;
                }
                incoming.push(conn);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a data connection");
                // Out of file descriptors, typically: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
