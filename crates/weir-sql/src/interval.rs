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

/// The length of an interval written as text, `'10 SECOND'` or `'1.5 minutes'` (the form
/// DataFusion's planner leaves an `INTERVAL '10' SECOND` frame bound in), in milliseconds.
pub fn interval_text_ms(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let amount: f64 = parts.next()?.trim_matches('\'').parse().ok()?;
    let unit_ms = match parts.next().map(|u| u.to_ascii_uppercase()) {
        Some(u) if u.starts_with("DAY") => 86_400_000.0,
        Some(u) if u.starts_with("HOUR") => 3_600_000.0,
        Some(u) if u.starts_with("MINUTE") => 60_000.0,
        Some(u) if u.starts_with("SECOND") => 1_000.0,
        Some(u) if u.starts_with("MILLISECOND") => 1.0,
        None => 1_000.0,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((amount * unit_ms).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::interval_text_ms;

    #[test]
    fn interval_text_reads_amount_and_unit() {
        assert_eq!(interval_text_ms("10 SECOND"), Some(10_000));
        assert_eq!(interval_text_ms("1.5 minutes"), Some(90_000));
        assert_eq!(interval_text_ms("2 DAY"), Some(172_800_000));
        assert_eq!(interval_text_ms("3 MONTH"), None);
        assert_eq!(interval_text_ms("x SECOND"), None);
    }
}
