//! Records handed over in memory between two tasks of one process.
//!
//! DESIGN.md §3 lets a channel between tasks of the same process carry typed record batches
//! instead of serialised bytes, if that is faster and the channel stays bounded. It is
//! faster: a keyed exchange of `(String, i64)` records spends about a quarter of both tasks'
//! time encoding, framing, parsing, decoding and re-allocating the values (a profile of the
//! W4 word count), and a moved `Vec` costs none of that; values that borrow shared data
//! (`Cow::Borrowed`) even stay borrowed (W2's tumbling windows over bids ran twice as fast).
//!
//! The bounds are those of the byte exchange: a batch holds at most one network buffer's
//! worth of records by their encoded size (the serializer computes it without encoding,
//! [`TypeSerializer::encoded_len`]), and at most as many records as fit in a buffer by their
//! in-memory size ([`typed_batch_capacity`]). A writer takes a permit of its
//! [`BufferPool`](crate::buffer::BufferPool) when it opens a batch, and the consumer returns
//! it once the batch was processed, so open and in-flight batches together are bounded by the
//! pool as buffers are, and a slow consumer blocks a fast producer after the same number of
//! buffers' worth of records.
//!
//! A value is handed over as it is, not through its serde form: a field the serde form skips
//! arrives with its value, unlike in a job whose tasks run in several processes (or in
//! in-flight data replayed after a restore). A job that depends on that can serialise its
//! local exchange too (`serialize_local_exchange`).
//!
//! Control elements (watermarks, status changes, barriers) still travel as frames in byte
//! buffers. A writer sends a channel's open byte buffer before a typed batch and its open
//! typed batch before a control frame, so the channel keeps the stream's order.
//!
//! Where bytes are needed the batch is encoded with the edge's serializer, record by record
//! in the usual frame format: as in-flight data of an unaligned checkpoint.

use crate::buffer::Buffer;
use crate::element::StreamRecord;
use crate::error::{Result, RuntimeError};
use crate::serializer::TypeSerializer;
use crate::writer::{begin_record_frame_into, end_frame};
use std::any::Any;

/// A batch of records of one type on its way to a consumer task in the same process.
pub struct TypedRecords {
    records: Box<dyn Any + Send>,
    /// The producer's pool permit: returned when the consumer is done with the batch.
    permit: Buffer,
}

impl TypedRecords {
    /// Wraps `records`, holding `permit` until the batch is dropped.
    pub fn new<T: Send + 'static>(records: Vec<StreamRecord<T>>, permit: Buffer) -> Self {
        TypedRecords {
            records: Box::new(records),
            permit,
        }
    }

    /// The records without the permit (the producer's pool gets it back at once).
    pub fn into_records(self) -> ErasedRecords {
        ErasedRecords(self.records)
    }

    /// The records and the permit, to be dropped once the records were processed.
    pub fn into_parts(self) -> (ErasedRecords, Buffer) {
        (ErasedRecords(self.records), self.permit)
    }
}

/// A typed batch without its permit, still type-erased: what alignment holds back.
pub struct ErasedRecords(Box<dyn Any + Send>);

impl ErasedRecords {
    /// The records, if they are of type `T`; a mismatch means two tasks disagree on an
    /// edge's element type, a bug in graph assembly, reported as an error.
    pub fn downcast<T: 'static>(self) -> Result<Vec<StreamRecord<T>>> {
        self.0
            .downcast::<Vec<StreamRecord<T>>>()
            .map(|b| *b)
            .map_err(|_| {
                RuntimeError::Other(format!(
                    "internal error: an in-memory batch on this channel does not hold records \
                     of type {}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

/// How many records of type `T` one typed batch holds: as many as fit, by their in-memory
/// size, in a network buffer of `buffer_size` bytes (at least 16, at most 4096).
#[inline]
pub fn typed_batch_capacity<T>(buffer_size: usize) -> usize {
    let size = std::mem::size_of::<StreamRecord<T>>().max(1);
    (buffer_size / size).clamp(16, 4096)
}

/// Appends `records` to `out` as record frames, as a byte channel would have carried them.
pub fn encode_records<T, S: TypeSerializer<T>>(
    serializer: &S,
    records: &[StreamRecord<T>],
    out: &mut Vec<u8>,
) -> Result<()> {
    for r in records {
        let start = out.len();
        begin_record_frame_into(out, r.timestamp());
        serializer.serialize(&r.value, out)?;
        end_frame(&mut out[start..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferPool;
    use crate::reader::{ChannelDecoder, Frame};
    use crate::serializer::BincodeSerializer;

    #[test]
    fn a_batch_holds_its_permit_until_dropped() {
        let pool = BufferPool::new(2, 1024);
        let a = TypedRecords::new(
            vec![StreamRecord::new(1u32)],
            pool.request_permit().unwrap(),
        );
        let b = TypedRecords::new(
            vec![StreamRecord::new(2u32)],
            pool.request_permit().unwrap(),
        );
        assert_eq!(pool.in_use(), 2);
        let (records, permit) = a.into_parts();
        drop(permit);
        assert_eq!(pool.in_use(), 1, "the permit goes back without the records");
        assert_eq!(records.downcast::<u32>().unwrap()[0].value, 1);
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn the_wrong_type_is_an_error() {
        let pool = BufferPool::new(1, 1024);
        let a = TypedRecords::new(
            vec![StreamRecord::new(1u32)],
            pool.request_permit().unwrap(),
        );
        let err = a.into_records().downcast::<String>().unwrap_err();
        assert!(err.to_string().contains("does not hold records"), "{err}");
    }

    #[test]
    fn encoded_records_decode_as_frames() {
        let s = BincodeSerializer::<(String, i64)>::new();
        let records = vec![
            StreamRecord::with_timestamp(("a".to_string(), 1), 10),
            StreamRecord::new(("bb".to_string(), 2)),
        ];
        let mut bytes = vec![9, 9];
        encode_records(&s, &records, &mut bytes).unwrap();
        let mut got = Vec::new();
        ChannelDecoder::default()
            .decode(&bytes[2..], |f| {
                if let Frame::Record(ts, b) = f {
                    got.push(StreamRecord::from_parts(s.deserialize(b)?, ts));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(got, records);
    }

    #[test]
    fn capacity_follows_the_record_size() {
        assert_eq!(typed_batch_capacity::<u64>(32 * 1024), 32 * 1024 / 16);
        assert_eq!(typed_batch_capacity::<[u8; 4096]>(32 * 1024), 16);
        assert_eq!(typed_batch_capacity::<()>(1 << 20), 4096);
    }
}
