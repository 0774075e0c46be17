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
use weir_runtime::operator::{Output, OutputControl};
use weir_runtime::{Result as RtResult, StreamRecord, Watermark, WatermarkStatus};

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

impl crate::DataStream<Batch> {
    /// Partitions the rows of every batch by the values of the columns `key_columns` (Flink's
    /// hash exchange, per row): each batch is split into one batch per consumer subtask,
    /// holding the rows whose key group that subtask owns. A key lands on the same subtask
    /// as the equal Rust key (`i64`, `&str`, `bool`, tuples of them) would in a `key_by`.
    /// Key columns must be integers, booleans or strings; another type fails the job.
    pub fn key_by_columns(&self, key_columns: Vec<usize>) -> crate::DataStream<Batch> {
        self.repartitioned(
            weir_core::PartitionerKind::Hash,
            Some(split_writer(key_columns.into())),
        )
    }
}

/// The writer factory of a batch edge keyed by columns.
fn split_writer(key_columns: std::sync::Arc<[usize]>) -> crate::exchange::WriterFactory {
    use weir_runtime::serializer::BincodeSerializer;
    use weir_runtime::writer::RecordWriter;
    std::sync::Arc::new(move |setup: crate::exchange::WriterSetup| {
        let selector = FirstRowChannel {
            key_columns: key_columns.clone(),
            max_parallelism: setup.consumer_max_parallelism,
            scratch: Vec::new(),
        };
        let channels = setup.channels.num_channels();
        let serializer = BincodeSerializer::<Batch>::new();
        let inner: Box<dyn Output<Batch>> = if setup.in_memory {
            Box::new(RecordWriter::in_memory(
                setup.channels,
                serializer,
                selector,
            ))
        } else {
            Box::new(RecordWriter::new(setup.channels, serializer, selector))
        };
        Ok(crate::types::erase::<Batch>(Box::new(SplitByKey {
            inner,
            key_columns: key_columns.clone(),
            max_parallelism: setup.consumer_max_parallelism,
            channels,
            row_channels: Vec::new(),
        })))
    })
}

/// Routes a batch whose rows all belong to one consumer (as [`SplitByKey`] makes them) by
/// the key of its first row.
struct FirstRowChannel {
    key_columns: std::sync::Arc<[usize]>,
    max_parallelism: u32,
    scratch: Vec<u32>,
}

impl weir_runtime::partitioner::ChannelSelector<Batch> for FirstRowChannel {
    fn select(&mut self, record: &Batch, num_channels: usize) -> usize {
        if num_channels <= 1 || record.0.num_rows() == 0 {
            return 0;
        }
        // `SplitByKey` hashed these columns already, so this cannot fail.
        match weir_runtime::batch::channels_of_rows(
            &record.0.slice(0, 1),
            &self.key_columns,
            self.max_parallelism,
            num_channels,
            &mut self.scratch,
        ) {
            Ok(()) => self.scratch.first().map_or(0, |&c| c as usize),
            Err(_) => 0,
        }
    }
}

/// Splits each batch into one batch per consumer channel by the key group of each row.
struct SplitByKey {
    inner: Box<dyn Output<Batch>>,
    key_columns: std::sync::Arc<[usize]>,
    max_parallelism: u32,
    channels: usize,
    row_channels: Vec<u32>,
}

impl OutputControl for SplitByKey {
    fn emit_watermark(&mut self, wm: Watermark) -> RtResult<()> {
        self.inner.emit_watermark(wm)
    }
    fn emit_watermark_status(&mut self, s: WatermarkStatus) -> RtResult<()> {
        self.inner.emit_watermark_status(s)
    }
    fn flush(&mut self) -> RtResult<()> {
        self.inner.flush()
    }
    fn finish(&mut self) -> RtResult<()> {
        self.inner.finish()
    }
    fn stop(&mut self) -> RtResult<()> {
        self.inner.stop()
    }
    fn visit_metrics(&self, visitor: weir_runtime::metrics::MetricsVisitor<'_>) {
        self.inner.visit_metrics(visitor)
    }
    fn on_processing_time(&mut self, now: i64) -> RtResult<()> {
        self.inner.on_processing_time(now)
    }
    fn checkpoint(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        state: &mut weir_state::TaskStateSnapshot,
    ) -> RtResult<()> {
        self.inner.checkpoint(barrier, state)
    }
    fn notify_checkpoint(
        &mut self,
        notice: weir_runtime::checkpoint::CheckpointNotice,
    ) -> RtResult<()> {
        self.inner.notify_checkpoint(notice)
    }
}

impl Output<Batch> for SplitByKey {
    fn collect(&mut self, record: StreamRecord<Batch>) -> RtResult<()> {
        if self.channels <= 1 {
            return self.inner.collect(record);
        }
        let batch = &record.value.0;
        weir_runtime::batch::channels_of_rows(
            batch,
            &self.key_columns,
            self.max_parallelism,
            self.channels,
            &mut self.row_channels,
        )?;
        let first = self.row_channels.first().copied();
        if self.row_channels.iter().all(|&c| Some(c) == first) {
            return self.inner.collect(record);
        }
        let timestamp = record.timestamp();
        // One pass puts every row in its channel's bucket.
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); self.channels];
        for (row, &c) in self.row_channels.iter().enumerate() {
            if let Some(b) = buckets.get_mut(c as usize) {
                b.push(row as u32);
            }
        }
        for rows in buckets {
            if rows.is_empty() {
                continue;
            }
            let rows = arrow_array::UInt32Array::from(rows);
            let part = arrow_select::take::take_record_batch(batch, &rows).map_err(|e| {
                weir_runtime::RuntimeError::Other(format!("cannot split a batch by key: {e}"))
            })?;
            self.inner
                .collect(StreamRecord::from_parts(Batch(part), timestamp))?;
        }
        Ok(())
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
