//! Flink SQL's logical types: what a column is in Flink's terms (with nullability and the
//! rowtime marker), how Flink prints it in a schema, and the Arrow type that holds it.

use crate::error::{Result, SqlError};
use arrow_schema::{DataType, TimeUnit};
use datafusion_sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// Flink's `STRING`: `VARCHAR` of the largest length.
pub const MAX_LENGTH: u32 = i32::MAX as u32;

/// Flink's largest DECIMAL precision.
pub const MAX_PRECISION: u8 = 38;

/// The kind of a Flink logical type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `BOOLEAN`
    Boolean,
    /// `TINYINT`
    TinyInt,
    /// `SMALLINT`
    SmallInt,
    /// `INT`
    Int,
    /// `BIGINT`
    BigInt,
    /// `FLOAT`
    Float,
    /// `DOUBLE`
    Double,
    /// `DECIMAL(precision, scale)`
    Decimal(u8, i8),
    /// `CHAR(length)`
    Char(u32),
    /// `VARCHAR(length)`; `STRING` is [`MAX_LENGTH`].
    Varchar(u32),
    /// `DATE`
    Date,
    /// `TIMESTAMP(precision)`
    Timestamp(u8),
}

/// A column's Flink type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FlinkType {
    /// What it is.
    pub kind: Kind,
    /// May it be NULL.
    pub nullable: bool,
    /// The table's event-time attribute (`*ROWTIME*` in a schema).
    pub rowtime: bool,
}

impl FlinkType {
    /// A nullable type of `kind`.
    pub fn nullable(kind: Kind) -> Self {
        FlinkType {
            kind,
            nullable: true,
            rowtime: false,
        }
    }

    /// A NOT NULL type of `kind`.
    pub fn not_null(kind: Kind) -> Self {
        FlinkType {
            kind,
            nullable: false,
            rowtime: false,
        }
    }

    /// The same type with nullability `nullable` (and no rowtime marker).
    pub fn with_nullable(self, nullable: bool) -> Self {
        FlinkType {
            nullable,
            rowtime: false,
            ..self
        }
    }

    /// The Arrow type that holds values of this type.
    pub fn arrow(&self) -> DataType {
        match self.kind {
            Kind::Boolean => DataType::Boolean,
            Kind::TinyInt => DataType::Int8,
            Kind::SmallInt => DataType::Int16,
            Kind::Int => DataType::Int32,
            Kind::BigInt => DataType::Int64,
            Kind::Float => DataType::Float32,
            Kind::Double => DataType::Float64,
            Kind::Decimal(p, s) => DataType::Decimal128(p, s),
            Kind::Char(_) | Kind::Varchar(_) => DataType::Utf8,
            Kind::Date => DataType::Date32,
            Kind::Timestamp(p) if p <= 3 => DataType::Timestamp(TimeUnit::Millisecond, None),
            Kind::Timestamp(p) if p <= 6 => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamp(_) => DataType::Timestamp(TimeUnit::Nanosecond, None),
        }
    }

    /// True for the exact numeric kinds (integers and decimals).
    pub fn is_exact_numeric(&self) -> bool {
        matches!(
            self.kind,
            Kind::TinyInt | Kind::SmallInt | Kind::Int | Kind::BigInt | Kind::Decimal(..)
        )
    }

    /// True for the integer kinds.
    pub fn is_integer(&self) -> bool {
        matches!(
            self.kind,
            Kind::TinyInt | Kind::SmallInt | Kind::Int | Kind::BigInt
        )
    }

    /// True for FLOAT and DOUBLE.
    pub fn is_approximate(&self) -> bool {
        matches!(self.kind, Kind::Float | Kind::Double)
    }

    /// True for CHAR and VARCHAR.
    pub fn is_string(&self) -> bool {
        matches!(self.kind, Kind::Char(_) | Kind::Varchar(_))
    }

    /// An exact numeric kind as the DECIMAL that holds every value of it (Flink's rule:
    /// TINYINT is DECIMAL(3, 0), SMALLINT (5, 0), INT (10, 0), BIGINT (19, 0)).
    pub fn as_decimal(&self) -> Option<(u8, i8)> {
        match self.kind {
            Kind::TinyInt => Some((3, 0)),
            Kind::SmallInt => Some((5, 0)),
            Kind::Int => Some((10, 0)),
            Kind::BigInt => Some((19, 0)),
            Kind::Decimal(p, s) => Some((p, s)),
            _ => None,
        }
    }

    /// The type as Flink prints it in a schema: `BIGINT`, `DECIMAL(24, 3)`, `STRING NOT
    /// NULL`, `TIMESTAMP(3) *ROWTIME*`.
    pub fn display(&self) -> String {
        let mut s = match self.kind {
            Kind::Boolean => "BOOLEAN".to_string(),
            Kind::TinyInt => "TINYINT".to_string(),
            Kind::SmallInt => "SMALLINT".to_string(),
            Kind::Int => "INT".to_string(),
            Kind::BigInt => "BIGINT".to_string(),
            Kind::Float => "FLOAT".to_string(),
            Kind::Double => "DOUBLE".to_string(),
            Kind::Decimal(p, s) => format!("DECIMAL({p}, {s})"),
            Kind::Char(n) => format!("CHAR({n})"),
            Kind::Varchar(MAX_LENGTH) => "STRING".to_string(),
            Kind::Varchar(n) => format!("VARCHAR({n})"),
            Kind::Date => "DATE".to_string(),
            Kind::Timestamp(p) => format!("TIMESTAMP({p})"),
        };
        if !self.nullable {
            s.push_str(" NOT NULL");
        }
        if self.rowtime {
            s.push_str(" *ROWTIME*");
        }
        s
    }
}

/// The Flink kind of a type written in DDL or a CAST.
pub fn kind_of(t: &SqlType) -> Result<Kind> {
    let length =
        |n: &Option<u64>, default: u32| n.map_or(default, |n| n.min(MAX_LENGTH as u64) as u32);
    Ok(match t {
        SqlType::Boolean | SqlType::Bool => Kind::Boolean,
        SqlType::TinyInt(_) => Kind::TinyInt,
        SqlType::SmallInt(_) => Kind::SmallInt,
        SqlType::Int(_) | SqlType::Integer(_) => Kind::Int,
        SqlType::BigInt(_) => Kind::BigInt,
        SqlType::Float(_) | SqlType::Real => Kind::Float,
        SqlType::Double(_) | SqlType::DoublePrecision => Kind::Double,
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::None => Kind::Decimal(10, 0),
            ExactNumberInfo::Precision(p) => Kind::Decimal(decimal_precision(*p)?, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                let p = decimal_precision(*p)?;
                if *s < 0 || *s > p as i64 {
                    return Err(SqlError::Invalid(format!(
                        "DECIMAL scale {s} must be between 0 and the precision {p}"
                    )));
                }
                Kind::Decimal(p, *s as i8)
            }
        },
        SqlType::String(_) | SqlType::Text => Kind::Varchar(MAX_LENGTH),
        SqlType::Varchar(n) | SqlType::CharacterVarying(n) | SqlType::CharVarying(n) => {
            Kind::Varchar(n.as_ref().map_or(1, |l| match l {
                datafusion_sql::sqlparser::ast::CharacterLength::IntegerLength {
                    length, ..
                } => (*length).min(MAX_LENGTH as u64) as u32,
                datafusion_sql::sqlparser::ast::CharacterLength::Max => MAX_LENGTH,
            }))
        }
        SqlType::Char(n) | SqlType::Character(n) => Kind::Char(n.as_ref().map_or(1, |l| match l {
            datafusion_sql::sqlparser::ast::CharacterLength::IntegerLength { length, .. } => {
                (*length).min(MAX_LENGTH as u64) as u32
            }
            datafusion_sql::sqlparser::ast::CharacterLength::Max => MAX_LENGTH,
        })),
        SqlType::Date => Kind::Date,
        SqlType::Timestamp(p, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            Kind::Timestamp(length(p, 6).min(9) as u8)
        }
        other => return Err(SqlError::Unsupported(format!("the type {other}"))),
    })
}

fn decimal_precision(p: u64) -> Result<u8> {
    if p == 0 || p > MAX_PRECISION as u64 {
        return Err(SqlError::Invalid(format!(
            "DECIMAL precision {p} must be between 1 and {MAX_PRECISION}"
        )));
    }
    Ok(p as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_print_as_flink_prints_them() {
        let mut ts = FlinkType::nullable(Kind::Timestamp(3));
        ts.rowtime = true;
        assert_eq!(ts.display(), "TIMESTAMP(3) *ROWTIME*");
        assert_eq!(
            FlinkType::not_null(Kind::Varchar(MAX_LENGTH)).display(),
            "STRING NOT NULL"
        );
        assert_eq!(
            FlinkType::nullable(Kind::Decimal(24, 3)).display(),
            "DECIMAL(24, 3)"
        );
        assert_eq!(
            FlinkType::not_null(Kind::Varchar(4)).display(),
            "VARCHAR(4) NOT NULL"
        );
    }
}
