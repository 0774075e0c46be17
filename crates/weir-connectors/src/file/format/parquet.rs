//! Parquet through Arrow: serde records become Arrow columns (`serde_arrow`), written in
//! row groups by the `parquet` crate, and read back the same way.

use super::{PartFormat, PartWriter};
use crate::ConnectorError;
use arrow_schema::{FieldRef, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use serde_arrow::ArrayBuilder;
use std::fs::File;
use std::marker::PhantomData;
use std::sync::Arc;
use weir_api::functions::UserError;

/// Rows gathered into one Arrow batch before it goes to the Parquet writer.
const BATCH_ROWS: usize = 8192;

/// How Parquet pages are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    /// Not compressed.
    Uncompressed,
    /// Snappy (the default).
    Snappy,
}

/// Parquet files of serde records (Flink's `ParquetWriterFactory` and Parquet input
/// format): a bulk format, so the sink rolls a part file on every checkpoint and the
/// source reads a file as one split. The Arrow schema is traced from the type (struct
/// fields in order; `Option` fields nullable; strings as `Utf8`) or given.
pub struct ParquetFormat<T> {
    fields: Arc<Vec<FieldRef>>,
    compression: ParquetCompression,
    row_group_rows: usize,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for ParquetFormat<T> {
    fn clone(&self) -> Self {
        ParquetFormat {
            fields: self.fields.clone(),
            compression: self.compression,
            row_group_rows: self.row_group_rows,
            _records: PhantomData,
        }
    }
}

fn config(message: String) -> ConnectorError {
    ConnectorError::Config {
        connector: "parquet format",
        message,
    }
}

impl<T> ParquetFormat<T> {
    /// Records of `T`, with the schema traced from the type.
    pub fn new() -> Result<Self, ConnectorError>
    where
        T: DeserializeOwned,
    {
        let options = TracingOptions::default()
            .allow_null_fields(true)
            .strings_as_large_utf8(false);
        let fields = Vec::<FieldRef>::from_type::<T>(options).map_err(|e| {
            config(format!(
                "cannot derive an Arrow schema from the record type (give one with ParquetFormat::with_fields): {e}"
            ))
        })?;
        Ok(Self::with_fields(fields))
    }

    /// Records of `T` written with (and read as) the columns `fields`.
    pub fn with_fields(fields: Vec<FieldRef>) -> Self {
        ParquetFormat {
            fields: Arc::new(fields),
            compression: ParquetCompression::Snappy,
            row_group_rows: 1024 * 1024,
            _records: PhantomData,
        }
    }

    /// Compresses pages with `compression` (default Snappy).
    pub fn with_compression(mut self, compression: ParquetCompression) -> Self {
        self.compression = compression;
        self
    }

    /// At most `rows` rows per row group (default 1 Mi; a part file ends its last row group
    /// when it rolls).
    pub fn with_row_group_size(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// The Arrow columns.
    pub fn fields(&self) -> &[FieldRef] {
        &self.fields
    }
}

/// Gathers records into Arrow batches and writes them as row groups.
struct ParquetPartWriter {
    builder: ArrayBuilder,
    rows: usize,
    writer: ArrowWriter<File>,
}

impl ParquetPartWriter {
    fn flush_batch(&mut self) -> Result<(), UserError> {
        if self.rows == 0 {
            return Ok(());
        }
        let batch = self
            .builder
            .to_record_batch()
            .map_err(|e| format!("cannot build an Arrow batch of the records: {e}"))?;
        self.rows = 0;
        self.writer
            .write(&batch)
            .map_err(|e| format!("cannot write Parquet: {e}").into())
    }
}

impl<T: Serialize> PartWriter<T> for ParquetPartWriter {
    fn write(&mut self, record: &T) -> Result<(), UserError> {
        self.builder
            .push(record)
            .map_err(|e| format!("cannot turn a record into Parquet columns: {e}"))?;
        self.rows += 1;
        if self.rows >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<File, UserError> {
        self.flush_batch()?;
        // Writes the last row group and the footer, and hands the file back.
        self.writer
            .into_inner()
            .map_err(|e| format!("cannot finish the Parquet file: {e}").into())
    }
}

impl<T: Serialize + Send + 'static> PartFormat<T> for ParquetFormat<T> {
    fn open(&self, file: File) -> Result<Box<dyn PartWriter<T>>, UserError> {
        let builder = ArrayBuilder::from_arrow(&self.fields)
            .map_err(|e| format!("parquet format: unusable schema: {e}"))?;
        let schema = Arc::new(Schema::new(self.fields.as_ref().clone()));
        let compression = match self.compression {
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| format!("cannot start a Parquet file: {e}"))?;
        Ok(Box::new(ParquetPartWriter {
            builder,
            rows: 0,
            writer,
        }))
    }

    fn suffix(&self) -> &str {
        ".parquet"
    }
}

/// Reads the records of one Parquet file, from row `skip` on, a batch at a time.
pub(crate) struct ParquetRows<T> {
    batches: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    decode: fn(&arrow_array::RecordBatch) -> Result<Vec<T>, String>,
}

impl<T> ParquetRows<T> {
    /// Opens `file` and skips its first `skip` rows.
    pub(crate) fn open(file: File, skip: u64, batch_rows: usize) -> Result<Self, String>
    where
        T: DeserializeOwned,
    {
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?
            .with_batch_size(batch_rows)
            .with_offset(skip as usize)
            .build()
            .map_err(|e| format!("cannot read the Parquet file: {e}"))?;
        Ok(ParquetRows {
            batches,
            decode: |batch| {
                serde_arrow::from_record_batch::<Vec<T>>(batch)
                    .map_err(|e| format!("the Parquet columns do not fit the record type: {e}"))
            },
        })
    }

    /// The next batch's records; `None` at the end of the file.
    pub(crate) fn next_batch(&mut self) -> Result<Option<Vec<T>>, String> {
        match self.batches.next() {
            None => Ok(None),
            Some(Err(e)) => Err(format!("cannot read the Parquet file: {e}")),
            Some(Ok(batch)) => (self.decode)(&batch).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Trade {
        symbol: String,
        qty: i64,
        price: f64,
        note: Option<String>,
    }

    fn trades(n: usize) -> Vec<Trade> {
        (0..n)
            .map(|i| Trade {
                symbol: format!("S{}", i % 7),
                qty: i as i64 - 50,
                price: i as f64 / 4.0,
                note: (i % 3 == 0).then(|| format!("n{i}")),
            })
            .collect()
    }

    #[test]
    fn records_round_trip_through_row_groups_and_skip() {
        let format = ParquetFormat::<Trade>::new()
            .unwrap()
            .with_row_group_size(1000);
        assert_eq!(format.fields().len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut w = PartFormat::<Trade>::open(&format, File::create(&path).unwrap()).unwrap();
        let all = trades(20_000);
        for t in &all {
            w.write(t).unwrap();
        }
        w.finish().unwrap();
        let meta = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        assert_eq!(meta.metadata().num_row_groups(), 20);
        let mut read = Vec::new();
        let mut rows = ParquetRows::<Trade>::open(File::open(&path).unwrap(), 0, 3000).unwrap();
        while let Some(b) = rows.next_batch().unwrap() {
            read.extend(b);
        }
        assert_eq!(read, all);
        let mut rest =
            ParquetRows::<Trade>::open(File::open(&path).unwrap(), 12_345, 4096).unwrap();
        let mut tail = Vec::new();
        while let Some(b) = rest.next_batch().unwrap() {
            tail.extend(b);
        }
        assert_eq!(tail, all[12_345..]);
        let not_parquet = dir.path().join("x");
        std::fs::write(&not_parquet, b"hello").unwrap();
        let e = ParquetRows::<Trade>::open(File::open(&not_parquet).unwrap(), 0, 10)
            .err()
            .unwrap();
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }
}
