//! The data plane's wire protocol: the frames two processes exchange on one TCP connection,
//! which carries every channel between them (Flink's netty protocol, in its own form).
//!
//! A frame is `u32 length` (of what follows, little-endian), a `u8` tag, then the tag's
//! fields. The receiving side of a channel opens it with a [`Message::Request`] naming the
//! channel and the credit it grants; from then on both sides name it by the small stream id
//! the receiver chose. The sender sends a [`Message::Buffer`] only while it holds credit,
//! one credit per buffer; the receiver grants more with [`Message::Credit`] as its buffers
//! come free. Each buffer tells how many more wait behind it (`backlog`), which is how the
//! receiver decides where its floating buffers go. An unaligned checkpoint's barrier is a
//! [`Message::Barrier`]: it needs no credit and leaves ahead of the buffers queued before it,
//! saying how many it overtook.
//!
//! Decoding checks everything: a frame longer than [`MAX_FRAME`], an unknown tag, a field
//! that runs past the frame's end or bytes left over are errors, and the connection that
//! sent them is closed.

use crate::checkpoint::{CheckpointBarrier, SnapshotKind};
use crate::error::{Result, RuntimeError};
use crate::inbox::ChannelEvent;

/// The largest frame accepted: a buffer of the largest configurable size plus its header.
pub const MAX_FRAME: usize = 16 << 20;

/// Identifies one channel across processes: the subpartition of a producer subtask that one
/// input channel of a consumer subtask reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    /// The job.
    pub job: u128,
    /// The job's execution attempt: channels of different attempts never meet.
    pub attempt: u32,
    /// The producer's vertex.
    pub producer_vertex: u32,
    /// The producer's subtask.
    pub producer_subtask: u32,
    /// The consumer's vertex.
    pub consumer_vertex: u32,
    /// The consumer's subtask (the subpartition's index).
    pub consumer_subtask: u32,
}

/// One frame of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Receiver to sender: send channel `key` as stream `stream`, with `credit` buffers'
    /// worth of credit to start with.
    Request {
        /// The stream id the receiver chose.
        stream: u32,
        /// The channel.
        key: ChannelKey,
        /// Initial credit.
        credit: u32,
    },
    /// Receiver to sender: `credit` more buffers may be sent on `stream`.
    Credit {
        /// The stream.
        stream: u32,
        /// Added credit.
        credit: u32,
    },
    /// Sender to receiver: the bytes of one buffer; `backlog` more are queued behind it.
    Buffer {
        /// The stream.
        stream: u32,
        /// Buffers queued behind this one at the sender.
        backlog: u32,
        /// The buffer's bytes (encoded stream elements).
        data: Vec<u8>,
    },
    /// Sender to receiver: an event that ends the stream.
    Event {
        /// The stream.
        stream: u32,
        /// The event.
        event: ChannelEvent,
    },
    /// Sender to receiver: an unaligned checkpoint's barrier, sent ahead of `overtaken`
    /// messages of the stream still queued at the sender (they follow it).
    Barrier {
        /// The stream.
        stream: u32,
        /// Messages queued before the barrier that it overtook.
        overtaken: u32,
        /// The barrier.
        barrier: CheckpointBarrier,
    },
    /// Either way: the stream failed (an unknown channel, a cancelled task).
    Error {
        /// The stream.
        stream: u32,
        /// Why, for the other side's log and error.
        message: String,
    },
}

const TAG_REQUEST: u8 = 1;
const TAG_CREDIT: u8 = 2;
const TAG_BUFFER: u8 = 3;
const TAG_EVENT: u8 = 4;
const TAG_ERROR: u8 = 5;
const TAG_BARRIER: u8 = 6;

const EVENT_END: u8 = 0;
const EVENT_STOPPED: u8 = 1;

/// Bytes of a buffer frame before its data: length, tag, stream, backlog.
pub const BUFFER_HEADER: usize = 4 + 1 + 4 + 4;

fn corrupt(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Codec {
        context: "corrupt frame on a data connection".into(),
        message: message.into(),
    }
}

impl Message {
    /// Appends the frame of this message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            Message::Request {
                stream,
                key,
                credit,
            } => {
                out.push(TAG_REQUEST);
                out.extend_from_slice(&stream.to_le_bytes());
                out.extend_from_slice(&key.job.to_le_bytes());
                for v in [
                    key.attempt,
                    key.producer_vertex,
                    key.producer_subtask,
                    key.consumer_vertex,
                    key.consumer_subtask,
                    *credit,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Message::Credit { stream, credit } => {
                out.push(TAG_CREDIT);
                out.extend_from_slice(&stream.to_le_bytes());
                out.extend_from_slice(&credit.to_le_bytes());
            }
            Message::Buffer {
                stream,
                backlog,
                data,
            } => {
                out.push(TAG_BUFFER);
                out.extend_from_slice(&stream.to_le_bytes());
                out.extend_from_slice(&backlog.to_le_bytes());
                out.extend_from_slice(data);
            }
            Message::Event { stream, event } => {
                out.push(TAG_EVENT);
                out.extend_from_slice(&stream.to_le_bytes());
                out.push(match event {
                    ChannelEvent::EndOfPartition => EVENT_END,
                    ChannelEvent::Stopped => EVENT_STOPPED,
                });
            }
            Message::Barrier {
                stream,
                overtaken,
                barrier,
            } => {
                out.push(TAG_BARRIER);
                out.extend_from_slice(&stream.to_le_bytes());
                out.extend_from_slice(&overtaken.to_le_bytes());
                out.extend_from_slice(&barrier.id.to_le_bytes());
                out.extend_from_slice(&barrier.timestamp.to_le_bytes());
                out.push(u8::from(barrier.is_savepoint()));
                out.push(u8::from(barrier.unaligned));
                out.extend_from_slice(&(barrier.target.len() as u32).to_le_bytes());
                out.extend_from_slice(barrier.target.as_bytes());
            }
            Message::Error { stream, message } => {
                out.push(TAG_ERROR);
                out.extend_from_slice(&stream.to_le_bytes());
                // Keep the frame small: an error message is for a log line.
                let mut end = message.len().min(4096);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&message.as_bytes()[..end]);
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Decodes one frame's body (what follows its length prefix).
    pub fn decode(body: &[u8]) -> Result<Message> {
        let mut r = Reader(body);
        let msg = match r.u8()? {
            TAG_REQUEST => {
                let stream = r.u32()?;
                let job = r.u128()?;
                let key = ChannelKey {
                    job,
                    attempt: r.u32()?,
                    producer_vertex: r.u32()?,
                    producer_subtask: r.u32()?,
                    consumer_vertex: r.u32()?,
                    consumer_subtask: r.u32()?,
                };
                Message::Request {
                    stream,
                    key,
                    credit: r.u32()?,
                }
            }
            TAG_CREDIT => Message::Credit {
                stream: r.u32()?,
                credit: r.u32()?,
            },
            TAG_BUFFER => Message::Buffer {
                stream: r.u32()?,
                backlog: r.u32()?,
                data: r.rest().to_vec(),
            },
            TAG_EVENT => Message::Event {
                stream: r.u32()?,
                event: match r.u8()? {
                    EVENT_END => ChannelEvent::EndOfPartition,
                    EVENT_STOPPED => ChannelEvent::Stopped,
                    e => return Err(corrupt(format!("unknown event {e}"))),
                },
            },
            TAG_BARRIER => Message::Barrier {
                stream: r.u32()?,
                overtaken: r.u32()?,
                barrier: CheckpointBarrier {
                    id: u64::from_le_bytes(r.take()?),
                    timestamp: i64::from_le_bytes(r.take()?),
                    kind: match r.u8()? {
                        0 => SnapshotKind::Checkpoint,
                        1 => SnapshotKind::Savepoint,
                        k => return Err(corrupt(format!("unknown snapshot kind {k}"))),
                    },
                    unaligned: match r.u8()? {
                        0 => false,
                        1 => true,
                        u => return Err(corrupt(format!("a flag of value {u}"))),
                    },
                    target: {
                        let len = r.u32()? as usize;
                        let bytes = r.bytes(len)?;
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| corrupt("a barrier's target is not UTF-8"))?
                    },
                },
            },
            TAG_ERROR => Message::Error {
                stream: r.u32()?,
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            },
            t => return Err(corrupt(format!("unknown frame tag {t}"))),
        };
        if !r.0.is_empty() {
            return Err(corrupt(format!(
                "{} bytes left over after a frame",
                r.0.len()
            )));
        }
        Ok(msg)
    }
}

/// Writes the header of a buffer frame carrying `len` bytes (the data follows it).
pub fn encode_buffer_header(out: &mut Vec<u8>, stream: u32, backlog: u32, len: usize) {
    out.extend_from_slice(&((len + 1 + 8) as u32).to_le_bytes());
    out.push(TAG_BUFFER);
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(&backlog.to_le_bytes());
}

/// The largest frame other than a buffer (requests, credit, events, errors are small).
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// Checks a frame's length prefix.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len == 0 {
        return Err(corrupt("an empty frame"));
    }
    if len > MAX_FRAME {
        return Err(corrupt(format!(
            "a frame of {len} bytes, more than the {MAX_FRAME} allowed"
        )));
    }
    Ok(len)
}

/// The (stream, backlog) of a buffer frame whose tag byte was read, from its next 8 bytes.
pub fn buffer_fields(fields: [u8; 8]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = fields;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// The tag of buffer frames, whose data the connection reads straight into a buffer.
pub const BUFFER_TAG: u8 = TAG_BUFFER;

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.0.len() < N {
            return Err(corrupt("a frame ends in the middle of a field"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u128(&mut self) -> Result<u128> {
        Ok(u128::from_le_bytes(self.take()?))
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(corrupt("a frame ends in the middle of a field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChannelKey {
        ChannelKey {
            job: u128::MAX - 7,
            attempt: 2,
            producer_vertex: 1,
            producer_subtask: 3,
            consumer_vertex: 4,
            consumer_subtask: 0,
        }
    }

    fn all() -> Vec<Message> {
        vec![
            Message::Request {
                stream: 9,
                key: key(),
                credit: 2,
            },
            Message::Credit {
                stream: 9,
                credit: 5,
            },
            Message::Buffer {
                stream: 9,
                backlog: 3,
                data: vec![1, 2, 3],
            },
            Message::Buffer {
                stream: 1,
                backlog: 0,
                data: Vec::new(),
            },
            Message::Event {
                stream: 9,
                event: ChannelEvent::EndOfPartition,
            },
            Message::Event {
                stream: 9,
                event: ChannelEvent::Stopped,
            },
            Message::Error {
                stream: 9,
                message: "no such channel".into(),
            },
            Message::Barrier {
                stream: 9,
                overtaken: 17,
                barrier: CheckpointBarrier {
                    id: 12,
                    timestamp: -3,
                    kind: SnapshotKind::Checkpoint,
                    target: "file:///tmp/chk-12".into(),
                    unaligned: true,
                },
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let mut out = Vec::new();
            m.encode(&mut out);
            let len = frame_len([out[0], out[1], out[2], out[3]]).unwrap();
            assert_eq!(len, out.len() - 4);
            assert_eq!(Message::decode(&out[4..]).unwrap(), m);
        }
    }

    #[test]
    fn truncated_extended_and_unknown_frames_are_errors() {
        for m in all() {
            let mut out = Vec::new();
            m.encode(&mut out);
            let body = &out[4..];
            // Buffers and errors end with free-length data: cutting them is not detectable
            // there, only in the length prefix, which the connection checks.
            if !matches!(m, Message::Buffer { .. } | Message::Error { .. }) {
                assert!(Message::decode(&body[..body.len() - 1]).is_err(), "{m:?}");
                let mut longer = body.to_vec();
                longer.push(0);
                assert!(Message::decode(&longer).is_err(), "{m:?}");
            }
        }
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[99, 0, 0, 0, 0]).is_err());
        assert!(Message::decode(&[TAG_EVENT, 0, 0, 0, 0, 7]).is_err());
        assert!(frame_len(0u32.to_le_bytes()).is_err());
        assert!(frame_len(((MAX_FRAME + 1) as u32).to_le_bytes()).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small deterministic generator: the decoder must return, never panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = Message::decode(&bytes);
        }
    }
}
