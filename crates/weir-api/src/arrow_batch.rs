//! Arrow `RecordBatch`es as DataStream elements.
//!
//! A stream element must be serde-serialisable ([`crate::Data`]), which `RecordBatch` is
//! not; [`Batch`] wraps one and encodes it as an Arrow IPC stream (schema and batch), so a
//! `DataStream<Batch>` crosses exchanges, in-flight data and state like any other element.
//! Between chained operators and on in-memory channels a batch is handed over as it is
//! (its columns are shared, not copied).
//!
//! ```
//! use std::sync::Arc;
//! use weir_api::arrow_batch::Batch;
//! use weir_api::arrow_array::{Int64Array, RecordBatch};
//! use weir_api::arrow_schema::{DataType, Field, Schema};
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
//! let rb = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
//! let bytes = bincode::serialize(&Batch(rb.clone())).unwrap();
//! let back: Batch = bincode::deserialize(&bytes).unwrap();
//! assert_eq!(back.0, rb);
//! ```

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use serde::de::Visitor;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `RecordBatch` as a stream element: serialised as an Arrow IPC stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch(pub RecordBatch);

impl Batch {
    /// The batch's rows.
    pub fn num_rows(&self) -> usize {
        self.0.num_rows()
    }
}

impl From<RecordBatch> for Batch {
    fn from(b: RecordBatch) -> Self {
        Batch(b)
    }
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.get_array_memory_size() + 256);
        let mut w = StreamWriter::try_new(&mut out, &self.0.schema())
            .map_err(|e| S::Error::custom(format!("cannot start an Arrow IPC stream: {e}")))?;
        w.write(&self.0)
            .map_err(|e| S::Error::custom(format!("cannot encode a record batch: {e}")))?;
        w.finish()
            .map_err(|e| S::Error::custom(format!("cannot finish an Arrow IPC stream: {e}")))?;
        drop(w);
        s.serialize_bytes(&out)
    }
}

struct IpcVisitor;

impl<'de> Visitor<'de> for IpcVisitor {
    type Value = Batch;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an Arrow IPC stream holding one record batch")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Batch, E> {
        let mut reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| E::custom(format!("not an Arrow IPC stream: {e}")))?;
        match reader.next() {
            Some(Ok(b)) => Ok(Batch(b)),
            Some(Err(e)) => Err(E::custom(format!("a damaged record batch: {e}"))),
            None => Err(E::custom("an Arrow IPC stream without a record batch")),
        }
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Batch, E> {
        self.visit_bytes(&bytes)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
        // Formats without a byte type (JSON) write bytes as a sequence of numbers.
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        self.visit_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        d.deserialize_byte_buf(IpcVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn batches_round_trip_and_damaged_bytes_are_errors() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let rb = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let bytes = bincode::serialize(&Batch(rb.clone())).unwrap();
        let back: Batch = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.0, rb);
        let json = serde_json::to_string(&Batch(rb.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&json).unwrap().0, rb);
        let mut damaged = bytes.clone();
        let n = damaged.len();
        damaged.truncate(n - 12);
        assert!(bincode::deserialize::<Batch>(&damaged).is_err());
        let garbage = bincode::serialize(&vec![7u8; 40]).unwrap();
        assert!(bincode::deserialize::<Batch>(&garbage).is_err());
    }
}
