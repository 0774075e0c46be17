//! The `filesystem` connector with `'format' = 'csv'`: a bounded source that reads a CSV
//! file into Arrow batches of the table's columns, as Flink's CSV format reads it.
//!
//! Flink's rules: fields are separated by `,` (`'csv.field-delimiter'`), may be quoted with
//! `"` (a doubled quote inside is a quote), there is no header, and there is no NULL unless
//! `'csv.null-literal'` names the text that means NULL; an empty field is then an empty
//! string, and for other types a parse error that fails the job with the file and line.
//! The reader checkpoints its position (the byte offset of the next line), so a restored
//! job reads on from there.
//!
//! A table with a `WATERMARK` gets its watermarks here, as Flink's watermark assigner
//! right after the scan makes them: the largest rowtime so far minus the delay, emitted
//! after each batch. Flink emits one after every row that advances it, and whether a row
//! is late depends on the watermark just before it; so each batch also carries that
//! watermark per row, as a last column named [`ROW_WATERMARK`], for the operators that
//! drop late rows.

use crate::catalog::TableDef;
use crate::connector::RowWatermarks;
use crate::error::{Result, SqlError};
use crate::types::{FlinkType, Kind};
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, Int8Builder, StringBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::source::{encode_split, Boundedness, Source, SourceContext};
use weir_api::UserError;
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};

/// The name of the per-row watermark column of a table with a watermark.
pub const ROW_WATERMARK: &str = "$watermark";

/// Rows per emitted batch.
const BATCH_ROWS: usize = 1024;

/// How a CSV file maps to a table's columns.
#[derive(Clone, Debug)]
pub struct CsvTable {
    path: PathBuf,
    columns: Vec<(String, FlinkType)>,
    delimiter: u8,
    null_literal: Option<String>,
    /// The columns the scan emits (indices into `columns`).
    projection: Vec<usize>,
    /// The rowtime column and the watermark's delay in milliseconds.
    watermark: Option<(usize, i64)>,
    schema: SchemaRef,
}

impl CsvTable {
    /// The CSV reading of `table` (options `path`, `csv.field-delimiter`,
    /// `csv.null-literal`) that emits the columns of `projection`; relative paths resolve
    /// against `base`.
    pub fn new(table: &TableDef, base: &std::path::Path, projection: &[usize]) -> Result<Self> {
        let path = PathBuf::from(table.required("path")?);
        let path = if path.is_relative() {
            base.join(path)
        } else {
            path
        };
        let delimiter = match table.option("csv.field-delimiter") {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                return Err(SqlError::Invalid(format!(
                    "'csv.field-delimiter' of table '{}' must be one character, not '{d}'",
                    table.name
                )))
            }
        };
        let columns: Vec<(String, FlinkType)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        let watermark = table.watermark.as_ref().map(|w| (w.column, w.delay_ms));
        let schema = crate::connector::ScanRequest {
            table,
            projection,
            base,
        }
        .schema();
        Ok(CsvTable {
            projection: projection.to_vec(),
            path,
            delimiter,
            null_literal: table.option("csv.null-literal").map(str::to_string),
            watermark,
            schema,
            columns,
        })
    }

    /// The Arrow schema of the batches it reads: the projected columns, then the per-row
    /// watermark if the table has a watermark.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_watermarks(&self) -> Option<RowWatermarks> {
        self.watermark.map(|(_, delay)| RowWatermarks::new(delay))
    }
}

/// The Arrow schema of `columns`.
pub fn schema_of(columns: &[(String, FlinkType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, t)| Field::new(n, t.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

impl Source<Batch> for CsvTable {
    fn boundedness(&self) -> weir_api::source::Boundedness {
        Boundedness::Bounded
    }

    fn is_parallel(&self) -> bool {
        false
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Batch>>, UserError> {
        let offset = ctx
            .decode_restored::<u64>()?
            .and_then(|o| o.into_iter().next())
            .unwrap_or(0);
        let mut file = std::fs::File::open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        Ok(Box::new(CsvReader {
            table: self.clone(),
            input: BufReader::new(file),
            offset,
            line_number: 0,
            done: false,
            // As Flink's watermark generators, a restored reader starts without one.
            watermarks: self.table_watermarks(),
        }))
    }
}

struct CsvReader {
    table: CsvTable,
    input: BufReader<std::fs::File>,
    /// Byte offset of the next line.
    offset: u64,
    /// Lines read by this reader (for messages; a restored reader counts from its offset).
    line_number: u64,
    done: bool,
    /// The table's watermarks, if it declares one.
    watermarks: Option<RowWatermarks>,
}

impl CsvReader {
    fn fail(&self, why: impl std::fmt::Display) -> weir_runtime::RuntimeError {
        weir_runtime::RuntimeError::Other(format!(
            "{} (line {} after byte {}): {why}",
            self.table.path.display(),
            self.line_number,
            self.offset
        ))
    }
}

impl SourceReader<Batch> for CsvReader {
    fn poll_next(
        &mut self,
        output: &mut SourceOutput<'_, Batch>,
    ) -> weir_runtime::Result<PollStatus> {
        if self.done {
            return Ok(PollStatus::Finished);
        }
        let mut columns: Vec<ColumnBuilder> = self
            .table
            .columns
            .iter()
            .map(|(_, t)| ColumnBuilder::new(t))
            .collect();
        let mut rows = 0;
        let mut line = String::new();
        while rows < BATCH_ROWS {
            line.clear();
            let n = self.input.read_line(&mut line).map_err(|e| self.fail(e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.line_number += 1;
            let text = line.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                self.offset += n as u64;
                continue;
            }
            let fields = split_fields(text, self.table.delimiter).map_err(|e| self.fail(e))?;
            if fields.len() != columns.len() {
                return Err(self.fail(format!(
                    "{} fields, the table has {} columns",
                    fields.len(),
                    columns.len()
                )));
            }
            for (i, f) in fields.iter().enumerate() {
                let null = self.table.null_literal.as_deref() == Some(f.as_str());
                let (name, _) = &self.table.columns[i];
                columns[i]
                    .push(if null { None } else { Some(f.as_str()) })
                    .map_err(|e| self.fail(format!("column '{name}': {e}")))?;
            }
            self.offset += n as u64;
            rows += 1;
        }
        if rows > 0 {
            let mut arrays = columns
                .into_iter()
                .map(ColumnBuilder::finish)
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()
                .map_err(|e| self.fail(e))?;
            let row_watermarks = match self.table.watermark {
                Some((column, _)) => Some(self.row_watermarks(&arrays[column])?),
                None => None,
            };
            let mut projected: Vec<ArrayRef> = self
                .table
                .projection
                .iter()
                .map(|&i| {
                    std::mem::replace(&mut arrays[i], Arc::new(arrow_array::NullArray::new(0)))
                })
                .collect();
            projected.extend(row_watermarks);
            // A scan may read no column (`COUNT(*)`): the batch still has its rows.
            let batch = RecordBatch::try_new_with_options(
                self.table.schema.clone(),
                projected,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
            )
            .map_err(|e| self.fail(e))?;
            output.collect(Batch(batch))?;
            if let Some(w) = self.watermarks.as_mut().and_then(RowWatermarks::advance) {
                output.emit_watermark(w)?;
            }
        }
        Ok(if self.done {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> weir_runtime::Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&self.offset)?])
    }
}

impl CsvReader {
    /// The watermark in force before each row of `rowtimes` (Flink's: the largest rowtime
    /// before it minus `delay`), advancing the reader's largest rowtime.
    fn row_watermarks(&mut self, rowtimes: &ArrayRef) -> weir_runtime::Result<ArrayRef> {
        let mut times = Vec::with_capacity(rowtimes.len());
        for row in 0..rowtimes.len() {
            match crate::values::value_at(rowtimes.as_ref(), row) {
                Some(crate::values::Value::Int(t)) => {
                    let ms = match rowtimes.data_type() {
                        DataType::Timestamp(TimeUnit::Microsecond, _) => t.div_euclid(1_000),
                        DataType::Timestamp(TimeUnit::Nanosecond, _) => t.div_euclid(1_000_000),
                        _ => t,
                    };
                    times.push(ms);
                }
                _ => return Err(self.fail(
                    "the rowtime column is NULL (a time attribute must not be NULL, as in Flink)",
                )),
            }
        }
        let watermarks = self
            .watermarks
            .as_mut()
            .ok_or_else(|| weir_runtime::RuntimeError::Other("no watermark declared".into()))?;
        Ok(watermarks.before_each(times))
    }
}

/// The fields of one CSV line (quotes removed, `""` inside quotes is a quote).
fn split_fields(line: &str, delimiter: u8) -> std::result::Result<Vec<String>, String> {
    let delimiter = delimiter as char;
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            c if c == delimiter => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

/// Builds one column of a batch from text fields.
enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    String(StringBuilder),
    Date(Date32Builder),
    TimestampMs(TimestampMillisecondBuilder),
    TimestampUs(TimestampMicrosecondBuilder),
    TimestampNs(TimestampNanosecondBuilder),
}

impl ColumnBuilder {
    fn new(t: &FlinkType) -> Self {
        match t.kind {
            Kind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            Kind::TinyInt => ColumnBuilder::Int8(Int8Builder::new()),
            Kind::SmallInt => ColumnBuilder::Int16(Int16Builder::new()),
            Kind::Int => ColumnBuilder::Int32(Int32Builder::new()),
            Kind::BigInt => ColumnBuilder::Int64(Int64Builder::new()),
            Kind::Float => ColumnBuilder::Float32(Float32Builder::new()),
            Kind::Double => ColumnBuilder::Float64(Float64Builder::new()),
            Kind::Decimal(p, s) => ColumnBuilder::Decimal(Decimal128Builder::new(), p, s),
            Kind::Char(_) | Kind::Varchar(_) => ColumnBuilder::String(StringBuilder::new()),
            Kind::Date => ColumnBuilder::Date(Date32Builder::new()),
            Kind::Timestamp(p) if p <= 3 => {
                ColumnBuilder::TimestampMs(TimestampMillisecondBuilder::new())
            }
            Kind::Timestamp(p) if p <= 6 => {
                ColumnBuilder::TimestampUs(TimestampMicrosecondBuilder::new())
            }
            Kind::Timestamp(_) => ColumnBuilder::TimestampNs(TimestampNanosecondBuilder::new()),
        }
    }

    fn push(&mut self, field: Option<&str>) -> std::result::Result<(), String> {
        let Some(f) = field else {
            match self {
                ColumnBuilder::Boolean(b) => b.append_null(),
                ColumnBuilder::Int8(b) => b.append_null(),
                ColumnBuilder::Int16(b) => b.append_null(),
                ColumnBuilder::Int32(b) => b.append_null(),
                ColumnBuilder::Int64(b) => b.append_null(),
                ColumnBuilder::Float32(b) => b.append_null(),
                ColumnBuilder::Float64(b) => b.append_null(),
                ColumnBuilder::Decimal(b, ..) => b.append_null(),
                ColumnBuilder::String(b) => b.append_null(),
                ColumnBuilder::Date(b) => b.append_null(),
                ColumnBuilder::TimestampMs(b) => b.append_null(),
                ColumnBuilder::TimestampUs(b) => b.append_null(),
                ColumnBuilder::TimestampNs(b) => b.append_null(),
            }
            return Ok(());
        };
        let number = |what: &str| format!("'{f}' is not {what}");
        match self {
            ColumnBuilder::Boolean(b) => {
                let f = f.trim();
                b.append_value(if f.eq_ignore_ascii_case("true") {
                    true
                } else if f.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(number("a BOOLEAN"));
                })
            }
            ColumnBuilder::Int8(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("a TINYINT"))?)
            }
            ColumnBuilder::Int16(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("a SMALLINT"))?)
            }
            ColumnBuilder::Int32(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("an INT"))?)
            }
            ColumnBuilder::Int64(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("a BIGINT"))?)
            }
            ColumnBuilder::Float32(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("a FLOAT"))?)
            }
            ColumnBuilder::Float64(b) => {
                b.append_value(f.trim().parse().map_err(|_| number("a DOUBLE"))?)
            }
            ColumnBuilder::Decimal(b, p, s) => b.append_value(
                crate::literal::parse_decimal(f.trim(), *p, *s)
                    .ok_or_else(|| number(&format!("a DECIMAL({p}, {s})")))?,
            ),
            ColumnBuilder::String(b) => b.append_value(f),
            ColumnBuilder::Date(b) => b.append_value(
                crate::literal::parse_date(f.trim()).ok_or_else(|| number("a DATE"))? as i32,
            ),
            ColumnBuilder::TimestampMs(b) => b.append_value(
                (crate::literal::parse_timestamp_nanos(f.trim())
                    .ok_or_else(|| number("a TIMESTAMP"))?
                    / 1_000_000) as i64,
            ),
            ColumnBuilder::TimestampUs(b) => b.append_value(
                (crate::literal::parse_timestamp_nanos(f.trim())
                    .ok_or_else(|| number("a TIMESTAMP"))?
                    / 1_000) as i64,
            ),
            ColumnBuilder::TimestampNs(b) => b.append_value(
                crate::literal::parse_timestamp_nanos(f.trim())
                    .ok_or_else(|| number("a TIMESTAMP"))? as i64,
            ),
        }
        Ok(())
    }

    fn finish(self) -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
        Ok(match self {
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(mut b, p, s) => {
                Arc::new(b.finish().with_precision_and_scale(p, s)?)
            }
            ColumnBuilder::String(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Date(mut b) => Arc::new(b.finish()),
            ColumnBuilder::TimestampMs(mut b) => Arc::new(b.finish()),
            ColumnBuilder::TimestampUs(mut b) => Arc::new(b.finish()),
            ColumnBuilder::TimestampNs(mut b) => Arc::new(b.finish()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_with_quotes() {
        assert_eq!(
            split_fields("a,\"b,c\",,\"d\"\"e\"", b',').unwrap(),
            vec!["a", "b,c", "", "d\"e"]
        );
        assert!(split_fields("a,\"b", b',').is_err());
    }
}
