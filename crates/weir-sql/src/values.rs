//! Single values taken out of Arrow columns, for the operators that keep rows in state
//! (group keys, accumulators), and columns built back from them.
//!
//! [`RowKey`] is a group key as keyed state holds it. Its hash is defined to equal the
//! hash the keyed batch exchange computes for the same row
//! (`weir_runtime::batch::channels_of_rows`), so a key arrives at the subtask whose key
//! groups hold its state.

use crate::types::{FlinkType, Kind};
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, Int8Builder, StringBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder, TimestampNanosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// One non-NULL SQL value. Integers of every width are `Int`, timestamps are `Int`
/// in the column's own unit, DECIMALs are their unscaled `i128`; the column's type says
/// how to read them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    /// BOOLEAN
    Bool(bool),
    /// TINYINT to BIGINT, DATE (days), TIMESTAMP (in its unit)
    Int(i64),
    /// FLOAT, DOUBLE
    Float(f64),
    /// DECIMAL, unscaled
    Decimal(i128),
    /// CHAR, VARCHAR
    Str(String),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// Values of one column compare as SQL orders them (strings by their UTF-8 bytes,
    /// doubles by IEEE total order); values of different kinds never meet in one column
    /// and compare by kind.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Value::Bool(b) => b.hash(h),
            Value::Int(i) => i.hash(h),
            Value::Float(f) => f.to_bits().hash(h),
            Value::Decimal(d) => d.hash(h),
            Value::Str(s) => s.hash(h),
        }
    }
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) => 1,
            Value::Float(_) => 2,
            Value::Decimal(_) => 3,
            Value::Str(_) => 4,
        }
    }
}

/// The value of row `row` of `col`, or `None` for NULL.
pub fn value_at(col: &dyn Array, row: usize) -> Option<Value> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => Value::Int(col.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(col.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(col.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(col.as_primitive::<Int64Type>().value(row)),
        DataType::Date32 => Value::Int(col.as_primitive::<Date32Type>().value(row) as i64),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Value::Int(col.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::Int(col.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Value::Int(col.as_primitive::<TimestampNanosecondType>().value(row))
        }
        DataType::Float32 => Value::Float(col.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::Float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) => Value::Decimal(col.as_primitive::<Decimal128Type>().value(row)),
        DataType::Utf8 => Value::Str(col.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::Str(col.as_string::<i64>().value(row).to_string()),
        // The planner gives columns only the types above.
        _ => return None,
    })
}

/// Builds a column of Flink type `ty` from values (which must be of that type's kind).
pub fn build_column(ty: &FlinkType, values: impl IntoIterator<Item = Option<Value>>) -> ArrayRef {
    let ints = values.into_iter();
    macro_rules! primitive {
        ($builder:expr, $variant:ident, $conv:expr) => {{
            let mut b = $builder;
            for v in ints {
                match v {
                    Some(Value::$variant(x)) => b.append_value($conv(x)),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty.kind {
        Kind::Boolean => primitive!(BooleanBuilder::new(), Bool, |x| x),
        Kind::TinyInt => primitive!(Int8Builder::new(), Int, |x: i64| x as i8),
        Kind::SmallInt => primitive!(Int16Builder::new(), Int, |x: i64| x as i16),
        Kind::Int => primitive!(Int32Builder::new(), Int, |x: i64| x as i32),
        Kind::BigInt => primitive!(Int64Builder::new(), Int, |x: i64| x),
        Kind::Float => primitive!(Float32Builder::new(), Float, |x: f64| x as f32),
        Kind::Double => primitive!(Float64Builder::new(), Float, |x: f64| x),
        Kind::Decimal(p, s) => {
            let mut b = Decimal128Builder::new();
            for v in ints {
                match v {
                    Some(Value::Decimal(x)) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            // Precision and scale are within Arrow's limits by construction.
            match b.finish().with_precision_and_scale(p, s) {
                Ok(a) => Arc::new(a),
                Err(_) => Arc::new(arrow_array::new_null_array(&ty.arrow(), 0)),
            }
        }
        Kind::Char(_) | Kind::Varchar(_) => {
            let mut b = StringBuilder::new();
            for v in ints {
                match v {
                    Some(Value::Str(s)) => b.append_value(s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Date => primitive!(Date32Builder::new(), Int, |x: i64| x as i32),
        Kind::Timestamp(p) if p <= 3 => {
            primitive!(TimestampMillisecondBuilder::new(), Int, |x: i64| x)
        }
        Kind::Timestamp(p) if p <= 6 => {
            primitive!(TimestampMicrosecondBuilder::new(), Int, |x: i64| x)
        }
        Kind::Timestamp(_) => primitive!(TimestampNanosecondBuilder::new(), Int, |x: i64| x),
    }
}

/// Hands on rows of values as one batch of `schema` (nothing if there are none): each
/// column built from its Flink type in `types`, then the rows' kinds as a last Int8
/// column if `kinds` is given (an updating output).
pub(crate) fn emit_rows(
    out: &mut weir_runtime::operator::Outputs<weir_api::arrow_batch::Batch>,
    schema: &arrow_schema::SchemaRef,
    types: impl Iterator<Item = FlinkType>,
    mut rows: Vec<Vec<Option<Value>>>,
    kinds: Option<Vec<i8>>,
    info: &weir_runtime::operator::OperatorInfo,
) -> weir_runtime::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns: Vec<ArrayRef> = types
        .enumerate()
        .map(|(i, ty)| build_column(&ty, rows.iter_mut().map(|r| r[i].take())))
        .collect();
    if let Some(k) = kinds {
        columns.push(Arc::new(arrow_array::Int8Array::from(k)));
    }
    let batch = arrow_array::RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| info.error(format!("cannot build a result batch: {e}")))?;
    out.collect(weir_runtime::StreamRecord::new(
        weir_api::arrow_batch::Batch(batch),
    ))
}

/// One cell of a group key, with the width of its column (the exchange hashes integers at
/// their width).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCell {
    /// NULL (a group of its own, as in SQL's GROUP BY).
    Null,
    /// BOOLEAN
    Bool(bool),
    /// TINYINT
    I8(i8),
    /// SMALLINT
    I16(i16),
    /// INT
    I32(i32),
    /// BIGINT
    I64(i64),
    /// CHAR, VARCHAR
    Str(String),
}

impl Hash for KeyCell {
    /// As `weir_runtime::batch` hashes a cell: NULL as `Option::None`, a value as itself.
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            KeyCell::Null => 0usize.hash(h),
            KeyCell::Bool(b) => b.hash(h),
            KeyCell::I8(v) => v.hash(h),
            KeyCell::I16(v) => v.hash(h),
            KeyCell::I32(v) => v.hash(h),
            KeyCell::I64(v) => v.hash(h),
            KeyCell::Str(s) => s.as_str().hash(h),
        }
    }
}

impl KeyCell {
    /// The key cell of row `row` of `col`; `None` if the column's type cannot be a key.
    pub fn at(col: &dyn Array, row: usize) -> Option<KeyCell> {
        if col.is_null(row) {
            return Some(KeyCell::Null);
        }
        Some(match col.data_type() {
            DataType::Boolean => KeyCell::Bool(col.as_boolean().value(row)),
            DataType::Int8 => KeyCell::I8(col.as_primitive::<Int8Type>().value(row)),
            DataType::Int16 => KeyCell::I16(col.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => KeyCell::I32(col.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => KeyCell::I64(col.as_primitive::<Int64Type>().value(row)),
            DataType::Utf8 => KeyCell::Str(col.as_string::<i32>().value(row).to_string()),
            _ => return None,
        })
    }

    /// The cell as a value.
    pub fn value(&self) -> Option<Value> {
        Some(match self {
            KeyCell::Null => return None,
            KeyCell::Bool(b) => Value::Bool(*b),
            KeyCell::I8(v) => Value::Int(*v as i64),
            KeyCell::I16(v) => Value::Int(*v as i64),
            KeyCell::I32(v) => Value::Int(*v as i64),
            KeyCell::I64(v) => Value::Int(*v),
            KeyCell::Str(s) => Value::Str(s.clone()),
        })
    }
}

/// True if a column of Flink type `ty` can be a group key.
pub fn can_be_key(ty: &FlinkType) -> bool {
    matches!(
        ty.kind,
        Kind::Boolean
            | Kind::TinyInt
            | Kind::SmallInt
            | Kind::Int
            | Kind::BigInt
            | Kind::Char(_)
            | Kind::Varchar(_)
    )
}

/// A group key: the cells of the key columns, hashed in order (as a tuple is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RowKey(pub Vec<KeyCell>);

impl Hash for RowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for c in &self.0 {
            c.hash(h);
        }
    }
}

impl RowKey {
    /// The key of row `row` out of the key columns `cols`.
    pub fn of_row(cols: &[ArrayRef], row: usize) -> Option<RowKey> {
        cols.iter()
            .map(|c| KeyCell::at(c.as_ref(), row))
            .collect::<Option<Vec<_>>>()
            .map(RowKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use weir_core::key_group::{key_group_for_key, operator_index_for_key_group};

    #[test]
    fn row_keys_hash_as_the_exchange_routes_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(7), Some(-3)])),
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("y"),
                    None,
                    Some(""),
                ])),
                Arc::new(Int32Array::from(vec![Some(5), Some(6), Some(7), None])),
            ],
        )
        .unwrap();
        let mut channels = Vec::new();
        for n in [2usize, 3, 7] {
            weir_runtime::batch::channels_of_rows(&batch, &[0, 1, 2], 128, n, &mut channels)
                .unwrap();
            for (row, &c) in channels.iter().enumerate() {
                let key = RowKey::of_row(batch.columns(), row).unwrap();
                let kg = key_group_for_key(&key, 128);
                assert_eq!(operator_index_for_key_group(128, n as u32, kg), c);
            }
        }
    }

    #[test]
    fn values_order_as_sql_does_and_build_back() {
        assert!(Value::Str("B".into()) < Value::Str("a".into()));
        assert!(Value::Float(-0.5) < Value::Float(2.0));
        let ty = FlinkType::nullable(Kind::Int);
        let col = build_column(&ty, vec![Some(Value::Int(3)), None]);
        assert_eq!(value_at(col.as_ref(), 0), Some(Value::Int(3)));
        assert_eq!(value_at(col.as_ref(), 1), None);
    }
}
