//! SQL interval literals (`INTERVAL '5' SECOND`) as milliseconds.

use crate::error::{Result, SqlError};
use datafusion_sql::sqlparser::ast::{DateTimeField, Expr, Value};

/// The length of an `INTERVAL 'n' UNIT` literal in milliseconds (units DAY to
/// MILLISECOND; `n` may have a fraction for SECOND).
pub fn interval_ms(e: &Expr) -> Result<i64> {
    let Expr::Interval(i) = e else {
        return Err(SqlError::Unsupported(format!("'{e}' as an interval")));
    };
    let text = match i.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            other => return Err(SqlError::Invalid(format!("interval value {other}"))),
        },
        other => return Err(SqlError::Invalid(format!("interval value {other}"))),
    };
    let amount: f64 = text
        .trim()
        .parse()
        .map_err(|_| SqlError::Invalid(format!("interval value '{text}' is not a number")))?;
    let unit_ms = match i.leading_field.as_ref() {
        Some(DateTimeField::Day | DateTimeField::Days) => 86_400_000.0,
        Some(DateTimeField::Hour | DateTimeField::Hours) => 3_600_000.0,
        Some(DateTimeField::Minute | DateTimeField::Minutes) => 60_000.0,
        Some(DateTimeField::Second | DateTimeField::Seconds) | None => 1_000.0,
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => 1.0,
        Some(other) => return Err(SqlError::Unsupported(format!("intervals of {other}"))),
    };
    Ok((amount * unit_ms).round() as i64)
}
