//! One TCP connection between two processes, carrying every channel one of them reads from
//! the other, both ways: buffers and events from the producing side, requests and credit
//! from the consuming side.
//!
//! Two threads per connection. The reader decodes frames and reads a buffer frame's data
//! straight into a buffer of the receiving channel. The writer sends control messages first
//! (credit must not wait behind data), then serves the subpartitions in its ready queue round
//! robin, one frame each, and flushes when it runs out of work.
//!
//! A bad frame (corrupt, oversized, for an unknown stream, or a buffer without credit) or an
//! I/O error closes the connection: the channels it carried fail, which fails the tasks
//! that use them and through them only their jobs; the process keeps running.

use super::protocol::{
    buffer_fields, frame_len, ChannelKey, Message, BUFFER_HEADER, BUFFER_TAG, MAX_CONTROL_FRAME,
};
use super::receiver::RemoteInput;
use super::sender::{Outgoing, Subpartition};
use super::Shared;
use crate::error::{Result, RuntimeError};
use crate::inbox::ChannelMessage;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

#[derive(Default)]
struct State {
    control: VecDeque<Message>,
    ready: VecDeque<Arc<Subpartition>>,
    /// Subpartitions served on this connection, by stream id.
    served: HashMap<u32, Arc<Subpartition>>,
    /// Channels read on this connection, by stream id.
    inputs: HashMap<u32, Arc<RemoteInput>>,
    /// Streams whose consuming task went away: what the sender sent before it heard of it
    /// is still on its way and is dropped, not treated as a protocol error. (Stream ids are
    /// never reused on a connection; the set grows with cancelled channels only.)
    discarding: HashSet<u32>,
    closed: Option<String>,
}

/// A data connection to one peer process.
pub struct Connection {
    peer: SocketAddr,
    socket: TcpStream,
    shared: Weak<Shared>,
    state: Mutex<State>,
    work: Condvar,
    next_stream: AtomicU32,
}

impl Connection {
    /// Starts the reader and writer threads of `socket`.
    pub(crate) fn start(socket: TcpStream, shared: Weak<Shared>) -> Result<Arc<Self>> {
        let io = |e: std::io::Error| RuntimeError::Other(format!("data connection: {e}"));
        socket.set_nodelay(true).map_err(io)?;
        let peer = socket.peer_addr().map_err(io)?;
        let reader = socket.try_clone().map_err(io)?;
        let writer = socket.try_clone().map_err(io)?;
        let conn = Arc::new(Connection {
            peer,
            socket,
            shared,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            next_stream: AtomicU32::new(0),
        });
        let (r, w) = (conn.clone(), conn.clone());
        std::thread::Builder::new()
            .name(format!("weir-net-read {peer}"))
            .spawn(move || r.read_loop(reader))
            .map_err(io)?;
        std::thread::Builder::new()
            .name(format!("weir-net-write {peer}"))
            .spawn(move || w.write_loop(writer))
            .map_err(io)?;
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the connection closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    fn push_control(&self, msg: Message) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.control.push_back(msg);
            drop(st);
            self.work.notify_one();
        }
    }

    pub(crate) fn send_credit(&self, stream: u32, credit: u32) {
        self.push_control(Message::Credit { stream, credit });
    }

    pub(crate) fn schedule(&self, sub: Arc<Subpartition>) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.ready.push_back(sub);
            drop(st);
            self.work.notify_one();
        }
    }

    /// Opens a channel read through this connection: registers `input`'s stream and sends
    /// the request with its initial credit.
    pub(crate) fn request(
        self: &Arc<Self>,
        key: ChannelKey,
        make_input: impl FnOnce(u32) -> Arc<RemoteInput>,
    ) -> Result<()> {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let input = make_input(stream);
        let credit = input.initial_credit();
        let mut st = self.lock();
        if let Some(why) = &st.closed {
            return Err(RuntimeError::Other(format!(
                "the data connection to {} is closed: {why}",
                self.peer
            )));
        }
        st.inputs.insert(stream, input);
        st.control.push_back(Message::Request {
            stream,
            key,
            credit,
        });
        drop(st);
        self.work.notify_one();
        Ok(())
    }

    /// Serves `sub` as `stream` (a request arrived, now or before the producer registered).
    pub(crate) fn serve(self: &Arc<Self>, sub: Arc<Subpartition>, stream: u32, credit: u32) {
        let mut st = self.lock();
        if let Some(why) = st.closed.clone() {
            drop(st);
            sub.fail(&why);
            return;
        }
        if st.served.contains_key(&stream) {
            drop(st);
            self.push_control(Message::Error {
                stream,
                message: format!("stream {stream} is already in use on this connection"),
            });
            return;
        }
        st.served.insert(stream, sub.clone());
        drop(st);
        sub.attach(self, stream, credit);
    }

    /// Closes the connection: every channel on it fails with `why`.
    pub(crate) fn close(&self, why: &str) {
        let (served, inputs) = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(why.to_string());
            st.ready.clear();
            st.control.clear();
            (
                std::mem::take(&mut st.served),
                std::mem::take(&mut st.inputs),
            )
        };
        self.work.notify_all();
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(shared) = self.shared.upgrade() {
            shared.forget_requests_of(self);
        }
        for sub in served.values() {
            sub.fail(why);
        }
        for input in inputs.values() {
            input.fail(why);
        }
    }

    /// Logs why the connection ends: at debug level if it ended cleanly (`clean`: the peer
    /// hung up between frames, or a write failed after it did) while no channel used it (a
    /// peer process that ended after its channels finished, say); an error otherwise (a bad
    /// frame, or channels still open).
    fn log_end(&self, e: &dyn std::fmt::Display, clean: bool) {
        if self.is_closed() {
            return;
        }
        let idle = {
            let st = self.lock();
            st.served.is_empty() && st.inputs.is_empty()
        };
        if clean && idle {
            tracing::debug!(peer = %self.peer, error = %e, "an idle data connection ended");
        } else {
            tracing::error!(peer = %self.peer, error = %e, "closing a data connection");
        }
    }

    fn read_loop(self: Arc<Self>, mut socket: TcpStream) {
        let (e, clean) = match self.read_frames(&mut socket) {
            Ok(()) => (
                RuntimeError::Other("the peer closed the connection".into()),
                true,
            ),
            Err(e) => (e, false),
        };
        let why = format!("data connection to {} closed: {e}", self.peer);
        self.log_end(&e, clean);
        self.close(&why);
    }

    fn read_frames(self: &Arc<Self>, socket: &mut TcpStream) -> Result<()> {
        let io = |e: std::io::Error| RuntimeError::Other(e.to_string());
        loop {
            let mut prefix = [0u8; 4];
            match socket.read_exact(&mut prefix) {
                Ok(()) => {}
                // Between frames: the peer hung up cleanly.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(io(e)),
            }
            let len = frame_len(prefix)?;
            let mut tag = [0u8; 1];
            socket.read_exact(&mut tag).map_err(io)?;
            if tag[0] == BUFFER_TAG {
                let data_len =
                    len.checked_sub(BUFFER_HEADER - 4)
                        .ok_or_else(|| RuntimeError::Codec {
                            context: "corrupt frame on a data connection".into(),
                            message: format!(
                                "a buffer frame of {len} bytes has no room for its header"
                            ),
                        })?;
                let mut fields = [0u8; 8];
                socket.read_exact(&mut fields).map_err(io)?;
                let (stream, backlog) = buffer_fields(fields);
                let (input, discard) = {
                    let st = self.lock();
                    (
                        st.inputs.get(&stream).cloned(),
                        st.discarding.contains(&stream),
                    )
                };
                let input = match input {
                    Some(input) => input,
                    None if discard => {
                        // In flight before the sender heard that its consumer is gone.
                        std::io::copy(
                            &mut (&mut *socket).take(data_len as u64),
                            &mut std::io::sink(),
                        )
                        .map_err(io)?;
                        continue;
                    }
                    None => {
                        return Err(RuntimeError::Codec {
                            context: "corrupt frame on a data connection".into(),
                            message: format!("a buffer for unknown stream {stream}"),
                        })
                    }
                };
                let mut buf = input.receive_buffer(backlog)?;
                buf.resize(data_len, 0);
                socket.read_exact(&mut buf[..]).map_err(io)?;
                self.deliver(stream, &input, ChannelMessage::Buffer(buf));
                continue;
            }
            if len > MAX_CONTROL_FRAME {
                return Err(RuntimeError::Codec {
                    context: "corrupt frame on a data connection".into(),
                    message: format!(
                        "a control frame of {len} bytes, more than the {MAX_CONTROL_FRAME} allowed"
                    ),
                });
            }
            let mut body = vec![0u8; len];
            body[0] = tag[0];
            socket.read_exact(&mut body[1..]).map_err(io)?;
            self.on_message(Message::decode(&body)?)?;
        }
    }

    fn on_message(self: &Arc<Self>, msg: Message) -> Result<()> {
        match msg {
            Message::Request {
                stream,
                key,
                credit,
            } => {
                let shared = self.shared.upgrade().ok_or_else(|| {
                    RuntimeError::Other("the network environment shut down".into())
                })?;
                shared.requested(self, key, stream, credit);
            }
            Message::Credit { stream, credit } => {
                let sub = self.lock().served.get(&stream).cloned();
                match sub {
                    Some(sub) => sub.add_credit(credit),
                    None => tracing::debug!(stream, "credit for a stream no longer served"),
                }
            }
            Message::Event { stream, event } => {
                let input = self.lock().inputs.get(&stream).cloned();
                if let Some(input) = input {
                    self.deliver(stream, &input, ChannelMessage::Event(event));
                    self.lock().inputs.remove(&stream);
                }
            }
            Message::Barrier {
                stream,
                overtaken,
                barrier,
            } => {
                let input = self.lock().inputs.get(&stream).cloned();
                if let Some(input) = input {
                    self.deliver_with(stream, || input.deliver_priority(barrier, overtaken));
                }
            }
            Message::Error { stream, message } => {
                let (input, sub) = {
                    let mut st = self.lock();
                    (st.inputs.remove(&stream), st.served.remove(&stream))
                };
                if let Some(input) = input {
                    input.fail(&message);
                }
                if let Some(sub) = sub {
                    sub.fail(&message);
                }
            }
            Message::Buffer { .. } => unreachable!("buffer frames are read in place"),
        }
        Ok(())
    }

    /// Hands `msg` to the task reading `stream`. A task that is gone (cancelled, failed)
    /// closes only its own channel: the producer is told, the connection goes on.
    fn deliver(&self, stream: u32, input: &RemoteInput, msg: ChannelMessage) {
        self.deliver_with(stream, || input.deliver(msg));
    }

    /// Runs `deliver` (a hand-over to the task reading `stream`); see [`Self::deliver`].
    fn deliver_with(&self, stream: u32, deliver: impl FnOnce() -> Result<()>) {
        if let Err(e) = deliver() {
            tracing::debug!(peer = %self.peer, stream, error = %e, "the consuming task is gone; closing its channel");
            let mut st = self.lock();
            st.inputs.remove(&stream);
            st.discarding.insert(stream);
            drop(st);
            self.push_control(Message::Error {
                stream,
                message: "the consuming task is gone".into(),
            });
        }
    }

    /// Tells the consumer of `stream` that its request cannot be served.
    pub(crate) fn reject(&self, stream: u32, message: String) {
        self.push_control(Message::Error { stream, message });
    }

    /// Stops serving `stream` (its job was released here) and tells the consumer why.
    pub(crate) fn stop_serving(&self, stream: u32, why: &str) {
        if self.lock().served.remove(&stream).is_some() {
            self.push_control(Message::Error {
                stream,
                message: why.to_string(),
            });
        }
    }

    fn write_loop(self: Arc<Self>, socket: TcpStream) {
        let mut out = BufWriter::with_capacity(64 * 1024, socket);
        if let Err(e) = self.write_frames(&mut out) {
            self.log_end(&e, true);
            self.close(&format!("data connection to {} closed: {e}", self.peer));
        }
    }

    fn write_frames(&self, out: &mut BufWriter<TcpStream>) -> std::io::Result<()> {
        let mut scratch = Vec::new();
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if st.closed.is_some() {
                        return Ok(());
                    }
                    if let Some(m) = st.control.pop_front() {
                        break Ok(m);
                    }
                    if let Some(sub) = st.ready.pop_front() {
                        break Err(sub);
                    }
                    // Nothing to do: send what is buffered before sleeping.
                    drop(st);
                    out.flush()?;
                    st = self.lock();
                    if st.closed.is_none() && st.control.is_empty() && st.ready.is_empty() {
                        st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                }
            };
            match job {
                Ok(msg) => {
                    scratch.clear();
                    msg.encode(&mut scratch);
                    out.write_all(&scratch)?;
                }
                Err(sub) => {
                    if let Some((stream, item, backlog, more)) = sub.next_to_send() {
                        match item {
                            Outgoing::Buffer(buf) => {
                                scratch.clear();
                                super::protocol::encode_buffer_header(
                                    &mut scratch,
                                    stream,
                                    backlog,
                                    buf.len(),
                                );
                                out.write_all(&scratch)?;
                                out.write_all(&buf)?;
                                // `buf` drops here: back to the producer's pool.
                            }
                            Outgoing::Event(event) => {
                                scratch.clear();
                                Message::Event { stream, event }.encode(&mut scratch);
                                out.write_all(&scratch)?;
                                self.lock().served.remove(&stream);
                            }
                            Outgoing::Barrier(barrier, overtaken) => {
                                scratch.clear();
                                Message::Barrier {
                                    stream,
                                    overtaken,
                                    barrier,
                                }
                                .encode(&mut scratch);
                                out.write_all(&scratch)?;
                            }
                        }
                        if more {
                            self.schedule(sub);
                        }
                    }
                }
            }
        }
    }
}
