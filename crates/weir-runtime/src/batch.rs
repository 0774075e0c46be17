//! Arrow `RecordBatch`es as stream elements.
//!
//! The SQL layer runs on the same exchange as the DataStream API, with batches as elements:
//! [`ArrowIpcSerializer`] encodes a batch as an Arrow IPC stream, and [`BatchHashWriter`]
//! splits each batch by the key group of its key columns into one batch per consumer
//! channel. Key hashing matches [`weir_core::key_group::stable_hash`] of the equivalent Rust
//! value (`i64`, `&str`, `bool`, tuples of them), so a keyed SQL exchange and a keyed
//! DataStream exchange place the same key on the same subtask.

use crate::element::{StreamRecord, Watermark, WatermarkStatus};
use crate::error::{Result, RuntimeError};
use crate::operator::{Output, OutputControl};
use crate::serializer::TypeSerializer;
use crate::writer::{begin_record_frame, end_frame, status_frame, watermark_frame, ChannelBuffers};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, SchemaRef};
use std::hash::{Hash, Hasher};
use weir_core::key_group::{key_group_for_hash, operator_index_for_key_group, StableHasher};

fn codec_err(context: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Codec {
        context: context.to_string(),
        message: e.to_string(),
    }
}

/// Encodes record batches as Arrow IPC streams (schema + one batch).
#[derive(Clone, Debug)]
pub struct ArrowIpcSerializer {
    schema: SchemaRef,
}

impl ArrowIpcSerializer {
    /// A serializer for batches of `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        ArrowIpcSerializer { schema }
    }
}

impl TypeSerializer<RecordBatch> for ArrowIpcSerializer {
    fn serialize(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        let mut w = StreamWriter::try_new(out, &self.schema)
            .map_err(|e| codec_err("cannot start an Arrow IPC stream", e))?;
        w.write(batch)
            .map_err(|e| codec_err("cannot encode a record batch as Arrow IPC", e))?;
        w.finish()
            .map_err(|e| codec_err("cannot finish an Arrow IPC stream", e))
    }

    /// The batch's buffers' size: close to its IPC encoding, without encoding it.
    fn encoded_len(&self, batch: &RecordBatch) -> Result<usize> {
        Ok(batch.get_array_memory_size())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<RecordBatch> {
        let mut r = StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| codec_err("cannot read an Arrow IPC stream", e))?;
        match r.next() {
            Some(b) => b.map_err(|e| codec_err("cannot decode an Arrow IPC record batch", e)),
            None => Err(codec_err(
                "cannot decode an Arrow IPC record batch",
                "stream holds no batch",
            )),
        }
    }
}

/// Hashes row `row` of `col` into `h` the way the equivalent Rust value hashes.
fn hash_cell(col: &dyn Array, row: usize, h: &mut StableHasher) -> Result<()> {
    if col.is_null(row) {
        // Option::None hashes as discriminant 0.
        0usize.hash(h);
        return Ok(());
    }
    match col.data_type() {
        DataType::Int8 => col.as_primitive::<Int8Type>().value(row).hash(h),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row).hash(h),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).hash(h),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).hash(h),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).hash(h),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row).hash(h),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).hash(h),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).hash(h),
        DataType::Boolean => col.as_boolean().value(row).hash(h),
        DataType::Utf8 => col.as_string::<i32>().value(row).hash(h),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).hash(h),
        other => {
            return Err(RuntimeError::Other(format!(
                "cannot partition by a key column of type {other}; supported: integers, booleans, strings"
            )))
        }
    }
    Ok(())
}

/// The consumer channel of every row of `batch`, keyed by the columns `key_columns`.
pub fn channels_of_rows(
    batch: &RecordBatch,
    key_columns: &[usize],
    max_parallelism: u32,
    num_channels: usize,
    out: &mut Vec<u32>,
) -> Result<()> {
    out.clear();
    let cols: Vec<&dyn Array> =
        key_columns
            .iter()
            .map(|&i| {
                batch.columns().get(i).map(|c| c.as_ref()).ok_or_else(|| {
                    RuntimeError::Other(format!("key column {i} is not in the batch"))
                })
            })
            .collect::<Result<_>>()?;
    for row in 0..batch.num_rows() {
        let mut h = StableHasher::new();
        for c in &cols {
            hash_cell(*c, row, &mut h)?;
        }
        let kg = key_group_for_hash(h.finish(), max_parallelism);
        out.push(operator_index_for_key_group(
            max_parallelism,
            num_channels as u32,
            kg,
        ));
    }
    Ok(())
}

/// Splits each batch by key into one batch per consumer channel and sends them.
pub struct BatchHashWriter {
    channels: ChannelBuffers,
    serializer: ArrowIpcSerializer,
    key_columns: Vec<usize>,
    max_parallelism: u32,
    row_channels: Vec<u32>,
    scratch: Vec<u8>,
}

impl BatchHashWriter {
    /// A writer that hashes `key_columns` into `max_parallelism` key groups.
    pub fn new(
        channels: ChannelBuffers,
        serializer: ArrowIpcSerializer,
        key_columns: Vec<usize>,
        max_parallelism: u32,
    ) -> Self {
        BatchHashWriter {
            channels,
            serializer,
            key_columns,
            max_parallelism,
            row_channels: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

impl OutputControl for BatchHashWriter {
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.channels.append_all(&watermark_frame(wm))
    }
    fn emit_watermark_status(&mut self, s: WatermarkStatus) -> Result<()> {
        self.channels.append_all(&status_frame(s))
    }
    fn flush(&mut self) -> Result<()> {
        self.channels.flush()
    }
    fn finish(&mut self) -> Result<()> {
        self.channels.finish()
    }
    fn stop(&mut self) -> Result<()> {
        self.channels.stop()
    }
    fn checkpoint(
        &mut self,
        barrier: &crate::checkpoint::CheckpointBarrier,
        _: &mut weir_state::TaskStateSnapshot,
    ) -> Result<()> {
        self.channels.broadcast_barrier(barrier)
    }
    fn notify_checkpoint(&mut self, _: crate::checkpoint::CheckpointNotice) -> Result<()> {
        Ok(())
    }
}

impl Output<RecordBatch> for BatchHashWriter {
    fn collect(&mut self, record: StreamRecord<RecordBatch>) -> Result<()> {
        let n = self.channels.num_channels();
        let batch = &record.value;
        channels_of_rows(
            batch,
            &self.key_columns,
            self.max_parallelism,
            n,
            &mut self.row_channels,
        )?;
        for c in 0..n {
            let idx: UInt32Array = self
                .row_channels
                .iter()
                .enumerate()
                .filter(|(_, &ch)| ch as usize == c)
                .map(|(i, _)| i as u32)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let part = arrow_select::take::take_record_batch(batch, &idx)
                .map_err(|e| codec_err("cannot split a record batch by key", e))?;
            begin_record_frame(&mut self.scratch, record.timestamp());
            self.serializer.serialize(&part, &mut self.scratch)?;
            end_frame(&mut self.scratch)?;
            self.channels.append(c, &self.scratch)?;
        }
        Ok(())
    }
}
