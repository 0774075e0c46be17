//! The consuming side of the exchange: frames decoded from buffers, per input channel,
//! including frames that span buffers.

use crate::checkpoint::CheckpointBarrier;
use crate::element::{Watermark, WatermarkStatus};
use crate::error::{Result, RuntimeError};
use crate::writer::{TAG_ACTIVE, TAG_BARRIER, TAG_IDLE, TAG_RECORD, TAG_RECORD_TS, TAG_WATERMARK};

/// One decoded frame, borrowing its payload from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A record's encoded value and its timestamp.
    Record(Option<i64>, &'a [u8]),
    /// A watermark.
    Watermark(Watermark),
    /// A watermark status change.
    Status(WatermarkStatus),
    /// A checkpoint barrier (always the last frame of its buffer).
    Barrier(CheckpointBarrier),
}

/// Decodes one frame (without its length prefix). Records, nearly every frame, take the
/// inlined path; control frames and errors the out-of-line one.
#[inline(always)]
fn parse(frame: &[u8]) -> Result<Frame<'_>> {
    match frame.first() {
        Some(&TAG_RECORD) => Ok(Frame::Record(None, &frame[1..])),
        Some(&TAG_RECORD_TS) if frame.len() >= 9 => {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&frame[1..9]);
            Ok(Frame::Record(Some(i64::from_le_bytes(ts)), &frame[9..]))
        }
        _ => parse_other(frame),
    }
}

#[cold]
#[inline(never)]
fn parse_other(frame: &[u8]) -> Result<Frame<'_>> {
    let bad = |what: &str| RuntimeError::Codec {
        context: "corrupt frame on an input channel".into(),
        message: what.to_string(),
    };
    let (&tag, rest) = frame.split_first().ok_or_else(|| bad("empty frame"))?;
    let read_i64 = |b: &[u8]| -> Result<i64> {
        let arr: [u8; 8] = b
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("truncated timestamp"))?;
        Ok(i64::from_le_bytes(arr))
    };
    match tag {
        // Only a record whose timestamp is cut off gets here: `parse` took the others.
        TAG_RECORD_TS => Ok(Frame::Record(Some(read_i64(rest)?), &rest[8..])),
        TAG_WATERMARK => Ok(Frame::Watermark(Watermark(read_i64(rest)?))),
        TAG_IDLE => Ok(Frame::Status(WatermarkStatus::Idle)),
        TAG_ACTIVE => Ok(Frame::Status(WatermarkStatus::Active)),
        TAG_BARRIER => bincode::deserialize(rest)
            .map(Frame::Barrier)
            .map_err(|e| bad(&format!("bad checkpoint barrier: {e}"))),
        t => Err(bad(&format!("unknown tag {t}"))),
    }
}

/// Reassembles frames of one input channel from its buffers.
#[derive(Default)]
pub struct ChannelDecoder {
    partial: Vec<u8>,
}

impl ChannelDecoder {
    /// Calls `f` for every complete frame in `buf`, keeping an incomplete tail for the next
    /// buffer of the same channel.
    #[inline]
    pub fn decode<F>(&mut self, buf: &[u8], mut f: F) -> Result<()>
    where
        F: FnMut(Frame<'_>) -> Result<()>,
    {
        let mut pos = 0;
        if !self.partial.is_empty() {
            if self.partial.len() < 4 {
                let take = (4 - self.partial.len()).min(buf.len());
                self.partial.extend_from_slice(&buf[..take]);
                pos = take;
                if self.partial.len() < 4 {
                    return Ok(());
                }
            }
            let len = u32::from_le_bytes([
                self.partial[0],
                self.partial[1],
                self.partial[2],
                self.partial[3],
            ]) as usize;
            let need = 4 + len - self.partial.len();
            let take = need.min(buf.len() - pos);
            self.partial.extend_from_slice(&buf[pos..pos + take]);
            pos += take;
            if self.partial.len() < 4 + len {
                return Ok(());
            }
            let whole = std::mem::take(&mut self.partial);
            let r = parse(&whole[4..]).and_then(&mut f);
            self.partial = whole;
            self.partial.clear();
            r?;
        }
        while pos < buf.len() {
            if buf.len() - pos < 4 {
                self.partial.extend_from_slice(&buf[pos..]);
                break;
            }
            let len =
                u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
            if pos + 4 + len > buf.len() {
                self.partial.extend_from_slice(&buf[pos..]);
                break;
            }
            f(parse(&buf[pos + 4..pos + 4 + len])?)?;
            pos += 4 + len;
        }
        Ok(())
    }

    /// True if a frame was cut off and never completed.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The bytes of a frame begun in an earlier buffer and not finished yet.
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{begin_record_frame, end_frame, watermark_frame};

    #[test]
    fn frames_spanning_buffers_are_reassembled() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let mut f = Vec::new();
            let payload = vec![i as u8; (i as usize * 7) % 50];
            begin_record_frame(&mut f, if i % 2 == 0 { Some(i as i64) } else { None });
            f.extend_from_slice(&payload);
            end_frame(&mut f).unwrap();
            stream.extend_from_slice(&f);
            expected.push((if i % 2 == 0 { Some(i as i64) } else { None }, payload));
            if i % 10 == 0 {
                stream.extend_from_slice(&watermark_frame(Watermark(i as i64)));
            }
        }
        for chunk in [1usize, 3, 4, 5, 13, 64, 1000] {
            let mut d = ChannelDecoder::default();
            let mut got = Vec::new();
            let mut wms = 0;
            for piece in stream.chunks(chunk) {
                d.decode(piece, |fr| {
                    match fr {
                        Frame::Record(ts, p) => got.push((ts, p.to_vec())),
                        Frame::Watermark(_) => wms += 1,
                        Frame::Status(_) | Frame::Barrier(_) => {}
                    }
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(got, expected, "chunk {chunk}");
            assert_eq!(wms, 20);
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn a_barrier_frame_has_the_size_it_is_said_to_have() {
        let b = crate::checkpoint::CheckpointBarrier {
            id: 7,
            timestamp: 123,
            kind: weir_state::SnapshotKind::Savepoint,
            target: "s3://bucket/sp".into(),
            unaligned: false,
        };
        let frame = crate::writer::barrier_frame(&b).unwrap();
        assert_eq!(crate::writer::barrier_frame_len(&b).unwrap(), frame.len());
        let mut got = None;
        ChannelDecoder::default()
            .decode(&frame, |f| {
                if let Frame::Barrier(x) = f {
                    got = Some(x);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(got, Some(b));
    }

    #[test]
    fn corrupt_tag_is_an_error() {
        let mut d = ChannelDecoder::default();
        let err = d.decode(&[1, 0, 0, 0, 99], |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("unknown tag 99"));
    }
}
