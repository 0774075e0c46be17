//! `'connector' = 'datagen'`: rows made up per column, with Flink's options.
//!
//! | option | meaning |
//! |---|---|
//! | `rows-per-second` | rows per second over all subtasks (default 10000) |
//! | `number-of-rows` | rows in all; without it (and without a sequence) it never ends |
//! | `fields.<col>.kind` | `random` (default) or `sequence` |
//! | `fields.<col>.min`, `.max` | bounds of a random number (default: the type's range) |
//! | `fields.<col>.length` | length of a random string (default 100) |
//! | `fields.<col>.var-len` | a random string of random length up to `length` |
//! | `fields.<col>.max-past` | a random timestamp at most this long before now (default 0) |
//! | `fields.<col>.start`, `.end` | a sequence's first and last number (both needed) |
//! | `fields.<col>.null-rate` | share of NULLs, 0 to 1 (default 0) |
//!
//! A sequence ends the table when it runs out (the shortest one, if several). Row `i` of
//! the table is a function of `i` alone (random values come from a hash of the column and
//! `i`; timestamps also from the clock), so a restored job generates the same rows again
//! from its checkpointed position: replays are exact where Flink's random generator is
//! not. The row range is cut into one contiguous split per subtask; a checkpoint holds each
//! split's position, so a restore at another parallelism spreads them over the new readers.

use super::{RowWatermarks, ScanRequest, SourceFactory};
use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use crate::types::{FlinkType, Kind};
use crate::values::{build_column, Value};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::source::{Boundedness, IndexSplits, Source, SourceContext};
use weir_api::UserError;
use weir_runtime::source::{PollStatus, RateLimiter, SourceOutput, SourceReader};

/// Rows per batch at most.
const BATCH_ROWS: u64 = 1024;

/// How one column's values are made.
#[derive(Clone, Debug, PartialEq)]
enum Generator {
    /// `start + i`: integers, or their decimal text.
    Sequence { start: i64, end: i64 },
    /// A uniform integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// A uniform number in `[min, max)`.
    Float { min: f64, max: f64 },
    /// True or false.
    Bool,
    /// Hex characters, `length` of them (or 1 to `length` with `var_len`).
    Str { length: u32, var_len: bool },
    /// The clock, minus up to `max_past_ms`.
    Timestamp { max_past_ms: i64 },
}

/// One column of the table as generated.
#[derive(Clone, Debug)]
struct Field {
    ty: FlinkType,
    generator: Generator,
    null_rate: f64,
    /// Where its random values start (the column's position).
    seed: u64,
}

/// A 64-bit mix of `x` (SplitMix64's finaliser): the random source of row `i`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Field {
    /// The `k`-th random word of row `i` of this column.
    fn word(&self, i: u64, k: u64) -> u64 {
        mix(mix(self.seed.wrapping_mul(0x1000_0001) ^ k).wrapping_add(i))
    }

    /// A uniform number in `[0, 1)` from the `k`-th word.
    fn unit(&self, i: u64, k: u64) -> f64 {
        (self.word(i, k) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The value of row `i`; `now_ms` is the clock for timestamps.
    fn value(&self, i: u64, now_ms: i64) -> Option<Value> {
        if self.null_rate > 0.0 && self.unit(i, 0) < self.null_rate {
            return None;
        }
        Some(match &self.generator {
            Generator::Sequence { start, .. } => {
                let n = start.wrapping_add(i as i64);
                match self.ty.kind {
                    Kind::Char(_) | Kind::Varchar(_) => Value::Str(n.to_string()),
                    _ => Value::Int(n),
                }
            }
            Generator::Int { min, max } => {
                let span = (*max as i128 - *min as i128 + 1) as u128;
                let r = (self.word(i, 1) as u128 * span) >> 64;
                Value::Int((*min as i128 + r as i128) as i64)
            }
            Generator::Float { min, max } => Value::Float(min + (max - min) * self.unit(i, 1)),
            Generator::Bool => Value::Bool(self.word(i, 1) & 1 == 1),
            Generator::Str { length, var_len } => {
                let len = if *var_len {
                    1 + (self.word(i, 1) % (*length).max(1) as u64) as usize
                } else {
                    *length as usize
                };
                let mut s = String::with_capacity(len);
                let mut word = 0u64;
                for c in 0..len {
                    if c % 16 == 0 {
                        word = self.word(i, 2 + c as u64 / 16);
                    }
                    let nibble = (word >> ((c % 16) * 4)) & 0xF;
                    s.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
                }
                Value::Str(s)
            }
            Generator::Timestamp { max_past_ms } => {
                let back = (self.unit(i, 1) * (*max_past_ms as f64 + 1.0)) as i64;
                let ms = now_ms - back.min(*max_past_ms);
                let scale = match self.ty.kind {
                    Kind::Timestamp(p) if p > 6 => 1_000_000,
                    Kind::Timestamp(p) if p > 3 => 1_000,
                    _ => 1,
                };
                Value::Int(ms.saturating_mul(scale))
            }
        })
    }
}

/// Reads option `fields.<column>.<what>` of `table` as a `T`.
fn field_option<T: std::str::FromStr>(
    table: &TableDef,
    column: &str,
    what: &str,
) -> Result<Option<T>> {
    parsed_option(table, &format!("fields.{column}.{what}"), "a valid value")
}

/// Reads option `key` of `table` as a `T`; a value that does not parse is an error saying
/// it is not `expected`.
fn parsed_option<T: std::str::FromStr>(
    table: &TableDef,
    key: &str,
    expected: &str,
) -> Result<Option<T>> {
    table
        .option(key)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                SqlError::Invalid(format!(
                    "table '{}': '{key}' = '{v}' is not {expected}",
                    table.name
                ))
            })
        })
        .transpose()
}

/// The range of an integer type.
fn int_range(kind: Kind) -> Option<(i64, i64)> {
    Some(match kind {
        Kind::TinyInt => (i8::MIN as i64, i8::MAX as i64),
        Kind::SmallInt => (i16::MIN as i64, i16::MAX as i64),
        Kind::Int => (i32::MIN as i64, i32::MAX as i64),
        Kind::BigInt => (i64::MIN, i64::MAX),
        _ => return None,
    })
}

/// The generator of column `c` of `table`, from its `fields.<c>.*` options.
fn field_of(table: &TableDef, c: usize) -> Result<Field> {
    let column = &table.columns[c];
    let (name, ty) = (column.name.as_str(), column.ty);
    let kind = table
        .option(&format!("fields.{name}.kind"))
        .unwrap_or("random");
    let unsupported = |what: &str| {
        SqlError::Unsupported(format!(
            "table '{}': datagen makes no {what} {} column ('{name}')",
            table.name,
            ty.display()
        ))
    };
    let generator = match kind {
        "sequence" => {
            if int_range(ty.kind).is_none() && !matches!(ty.kind, Kind::Char(_) | Kind::Varchar(_))
            {
                return Err(unsupported("sequence for a"));
            }
            let start: i64 = field_option(table, name, "start")?.ok_or_else(|| {
                SqlError::Invalid(format!(
                    "table '{}': a sequence needs 'fields.{name}.start'",
                    table.name
                ))
            })?;
            let end: i64 = field_option(table, name, "end")?.ok_or_else(|| {
                SqlError::Invalid(format!(
                    "table '{}': a sequence needs 'fields.{name}.end'",
                    table.name
                ))
            })?;
            if end < start {
                return Err(SqlError::Invalid(format!(
                    "table '{}': 'fields.{name}.end' ({end}) is below 'fields.{name}.start' ({start})",
                    table.name
                )));
            }
            Generator::Sequence { start, end }
        }
        "random" => match ty.kind {
            Kind::TinyInt | Kind::SmallInt | Kind::Int | Kind::BigInt => {
                let (lo, hi) = int_range(ty.kind).unwrap_or((i64::MIN, i64::MAX));
                let min = field_option(table, name, "min")?.unwrap_or(lo);
                let max = field_option(table, name, "max")?.unwrap_or(hi);
                if min > max || min < lo || max > hi {
                    return Err(SqlError::Invalid(format!(
                        "table '{}': 'fields.{name}.min' and '.max' must be a range of {}",
                        table.name,
                        ty.display()
                    )));
                }
                Generator::Int { min, max }
            }
            Kind::Float | Kind::Double => {
                let (lo, hi) = if ty.kind == Kind::Float {
                    (f32::MIN as f64, f32::MAX as f64)
                } else {
                    (f64::MIN, f64::MAX)
                };
                let min = field_option(table, name, "min")?.unwrap_or(lo);
                let max = field_option(table, name, "max")?.unwrap_or(hi);
                if min > max {
                    return Err(SqlError::Invalid(format!(
                        "table '{}': 'fields.{name}.min' is above '.max'",
                        table.name
                    )));
                }
                Generator::Float { min, max }
            }
            Kind::Boolean => Generator::Bool,
            Kind::Char(n) | Kind::Varchar(n) => {
                let length: u32 = field_option(table, name, "length")?.unwrap_or(100);
                Generator::Str {
                    length: length.min(n),
                    var_len: field_option(table, name, "var-len")?.unwrap_or(false),
                }
            }
            Kind::Timestamp(_) => {
                let max_past_ms = match table.option(&format!("fields.{name}.max-past")) {
                    Some(v) => crate::client::parse_duration(v)
                        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
                        .ok_or_else(|| {
                            SqlError::Invalid(format!(
                                "table '{}': 'fields.{name}.max-past' = '{v}' is not a duration",
                                table.name
                            ))
                        })?,
                    None => 0,
                };
                Generator::Timestamp { max_past_ms }
            }
            Kind::Decimal(..) | Kind::Date => return Err(unsupported("random")),
        },
        other => {
            return Err(SqlError::Invalid(format!(
                "table '{}': 'fields.{name}.kind' must be 'random' or 'sequence', not '{other}'",
                table.name
            )))
        }
    };
    let null_rate: f64 = field_option(table, name, "null-rate")?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&null_rate) {
        return Err(SqlError::Invalid(format!(
            "table '{}': 'fields.{name}.null-rate' must be between 0 and 1",
            table.name
        )));
    }
    Ok(Field {
        ty,
        generator,
        null_rate,
        seed: c as u64,
    })
}

/// `'connector' = 'datagen'`.
pub(super) struct DataGenFactory;

impl SourceFactory for DataGenFactory {
    fn create_source(&self, request: &ScanRequest<'_>) -> Result<Arc<dyn Source<Batch>>> {
        let table = request.table;
        let number = |key: &str| parsed_option::<u64>(table, key, "a number");
        let rows_per_second = number("rows-per-second")?.unwrap_or(10_000);
        if rows_per_second == 0 {
            return Err(SqlError::Invalid(format!(
                "table '{}': 'rows-per-second' must be above 0",
                table.name
            )));
        }
        // Every column is checked, also those the query does not read.
        let all = (0..table.columns.len())
            .map(|c| field_of(table, c))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = number("number-of-rows")?.unwrap_or(u64::MAX);
        for f in &all {
            if let Generator::Sequence { start, end } = f.generator {
                rows = rows.min((end as i128 - start as i128 + 1) as u64);
            }
        }
        let watermark = match &table.watermark {
            Some(w) => {
                if !matches!(all[w.column].generator, Generator::Timestamp { .. }) {
                    return Err(SqlError::Invalid(format!(
                        "table '{}': the time attribute '{}' of a datagen table must be a random TIMESTAMP",
                        table.name, table.columns[w.column].name
                    )));
                }
                Some((all[w.column].clone(), w.delay_ms))
            }
            None => None,
        };
        Ok(Arc::new(DataGen {
            fields: request.projection.iter().map(|&c| all[c].clone()).collect(),
            rows,
            rows_per_second: rows_per_second as f64,
            watermark,
            schema: request.schema(),
        }))
    }
}

/// The source of a datagen table scan.
struct DataGen {
    /// The scanned columns.
    fields: Vec<Field>,
    /// Rows in all (`u64::MAX`: unbounded).
    rows: u64,
    rows_per_second: f64,
    /// The time attribute's column (scanned or not), and the watermark delay.
    watermark: Option<(Field, i64)>,
    schema: SchemaRef,
}

impl Source<Batch> for DataGen {
    fn boundedness(&self) -> Boundedness {
        if self.rows == u64::MAX {
            Boundedness::Unbounded
        } else {
            Boundedness::Bounded
        }
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> std::result::Result<Box<dyn SourceReader<Batch>>, UserError> {
        let p = ctx.parallelism.max(1);
        let splits = IndexSplits::for_reader(ctx, self.rows)?;
        Ok(Box::new(DataGenReader {
            fields: self.fields.clone(),
            splits,
            limit: RateLimiter::new(self.rows_per_second / p as f64),
            watermark: self
                .watermark
                .clone()
                .map(|(field, delay)| (field, RowWatermarks::new(delay))),
            schema: self.schema.clone(),
        }))
    }
}

/// Generates its splits' rows in order, each split as (next row, end).
struct DataGenReader {
    fields: Vec<Field>,
    splits: IndexSplits,
    limit: RateLimiter,
    watermark: Option<(Field, RowWatermarks)>,
    schema: SchemaRef,
}

impl DataGenReader {
    /// The batch of rows `first..first + n`.
    fn batch(&mut self, first: u64, n: u64) -> weir_runtime::Result<RecordBatch> {
        let now = weir_runtime::time::now_ms();
        let mut columns: Vec<ArrayRef> = self
            .fields
            .iter()
            .map(|f| build_column(&f.ty, (first..first + n).map(|i| f.value(i, now))))
            .collect();
        if let Some((field, w)) = &mut self.watermark {
            // The time attribute's values again (the same clock reading), in milliseconds.
            let scale = match field.ty.kind {
                Kind::Timestamp(p) if p > 6 => 1_000_000,
                Kind::Timestamp(p) if p > 3 => 1_000,
                _ => 1,
            };
            columns.push(
                w.before_each((first..first + n).map(|i| match field.value(i, now) {
                    Some(Value::Int(t)) => t / scale,
                    _ => i64::MIN,
                })),
            );
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(n as usize)),
        )
        .map_err(|e| weir_runtime::RuntimeError::Other(format!("datagen: {e}")))
    }
}

impl SourceReader<Batch> for DataGenReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, Batch>) -> weir_runtime::Result<PollStatus> {
        let Some((next, available)) = self.splits.next(BATCH_ROWS) else {
            return Ok(PollStatus::Finished);
        };
        let n = self.limit.budget(available);
        if n == 0 {
            return Ok(PollStatus::NothingAvailable);
        }
        let batch = self.batch(next, n)?;
        out.collect(Batch(batch))?;
        if let Some(w) = self.watermark.as_mut().and_then(|(_, w)| w.advance()) {
            out.emit_watermark(w)?;
        }
        self.limit.taken(n);
        self.splits.take(n);
        Ok(if self.splits.is_empty() {
            PollStatus::Finished
        } else {
            PollStatus::MoreAvailable
        })
    }

    fn snapshot_state(&mut self, _: u64) -> weir_runtime::Result<Vec<Vec<u8>>> {
        self.splits.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(generator: Generator, ty: FlinkType) -> Field {
        Field {
            ty,
            generator,
            null_rate: 0.0,
            seed: 3,
        }
    }

    #[test]
    fn random_values_stay_in_range_and_repeat_for_the_same_row() {
        let f = field(
            Generator::Int { min: -5, max: 5 },
            FlinkType::nullable(Kind::Int),
        );
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let Some(Value::Int(v)) = f.value(i, 0) else {
                panic!("an INT")
            };
            assert!((-5..=5).contains(&v));
            assert_eq!(f.value(i, 0), Some(Value::Int(v)), "row {i} again");
            seen.insert(v);
        }
        assert_eq!(seen.len(), 11, "every value of the range comes up");
        let full = field(
            Generator::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            FlinkType::nullable(Kind::BigInt),
        );
        assert!(full.value(1, 0).is_some());
    }

    #[test]
    fn strings_sequences_timestamps_and_nulls() {
        let s = field(
            Generator::Str {
                length: 20,
                var_len: false,
            },
            FlinkType::nullable(Kind::Varchar(u32::MAX)),
        );
        let Some(Value::Str(text)) = s.value(7, 0) else {
            panic!("a string")
        };
        assert_eq!(text.len(), 20);
        assert!(text.chars().all(|c| c.is_ascii_hexdigit()));
        let q = field(
            Generator::Sequence { start: 10, end: 20 },
            FlinkType::nullable(Kind::Varchar(u32::MAX)),
        );
        assert_eq!(q.value(3, 0), Some(Value::Str("13".into())));
        let t = field(
            Generator::Timestamp { max_past_ms: 1000 },
            FlinkType::nullable(Kind::Timestamp(3)),
        );
        for i in 0..100 {
            let Some(Value::Int(ms)) = t.value(i, 50_000) else {
                panic!("a timestamp")
            };
            assert!((49_000..=50_000).contains(&ms), "{ms}");
        }
        let mut n = field(Generator::Bool, FlinkType::nullable(Kind::Boolean));
        n.null_rate = 0.5;
        let nulls = (0..1000).filter(|&i| n.value(i, 0).is_none()).count();
        assert!((400..600).contains(&nulls), "{nulls} NULLs of 1000");
    }
}
