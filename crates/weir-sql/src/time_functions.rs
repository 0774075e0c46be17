//! Flink's time functions on TIMESTAMP values: EXTRACT and HOUR / MINUTE / SECOND, FLOOR and
//! CEIL to a unit (`FLOOR(ts TO MINUTE)`), TIMESTAMPDIFF, DATE_FORMAT with Java's pattern
//! letters, and CAST of a timestamp to a string in Flink's form. Timestamps are handled as
//! nanoseconds since the epoch (UTC, no time zone: Flink's TIMESTAMP).

use crate::format::{civil_from_days, days_from_civil};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, StringArray, TimestampNanosecondArray};
use arrow_schema::{DataType, TimeUnit};
use datafusion_common::{DataFusionError, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A unit of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// SECOND
    Second,
    /// MINUTE
    Minute,
    /// HOUR
    Hour,
    /// DAY
    Day,
    /// MONTH
    Month,
    /// YEAR
    Year,
}

impl Unit {
    /// The unit named `s` (SQL's keyword, any case).
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "SECOND" | "SECONDS" => Unit::Second,
            "MINUTE" | "MINUTES" => Unit::Minute,
            "HOUR" | "HOURS" => Unit::Hour,
            "DAY" | "DAYS" => Unit::Day,
            "MONTH" | "MONTHS" => Unit::Month,
            "YEAR" | "YEARS" => Unit::Year,
            _ => return None,
        })
    }

    /// Nanoseconds in the unit, for the units of fixed length.
    fn fixed_nanos(self) -> Option<i64> {
        Some(match self {
            Unit::Second => NANOS_PER_SECOND,
            Unit::Minute => 60 * NANOS_PER_SECOND,
            Unit::Hour => 3600 * NANOS_PER_SECOND,
            Unit::Day => 86_400 * NANOS_PER_SECOND,
            Unit::Month | Unit::Year => return None,
        })
    }
}

/// A Flink time function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeFn {
    /// `EXTRACT(unit FROM ts)`, `HOUR(ts)`, ...: BIGINT.
    Extract(Unit),
    /// `FLOOR(ts TO unit)`: the timestamp.
    Floor(Unit),
    /// `CEIL(ts TO unit)`: the timestamp.
    Ceil(Unit),
    /// `TIMESTAMPDIFF(unit, a, b)`: whole units from `a` to `b`, INT.
    Diff(Unit),
    /// `DATE_FORMAT(ts, pattern)`: STRING.
    Format,
    /// `CAST(ts AS STRING)` with `precision` fraction digits at least: STRING.
    ToString(u8),
}

/// A time function as a DataFusion scalar function; timestamp arguments arrive as
/// `Timestamp(Nanosecond)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeUdf {
    f: TimeFn,
    signature: Signature,
}

impl TimeUdf {
    /// The DataFusion form of `f`.
    pub fn new(f: TimeFn) -> Self {
        TimeUdf {
            f,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// `(year, month, day, seconds of day, nanos of second)` of `ns`.
fn parts(ns: i64) -> (i64, u32, u32, i64, i64) {
    let secs = ns.div_euclid(NANOS_PER_SECOND);
    let nanos = ns.rem_euclid(NANOS_PER_SECOND);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (y, m, d, secs.rem_euclid(86_400), nanos)
}

fn from_date(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * 86_400 * NANOS_PER_SECOND
}

fn floor(ns: i64, unit: Unit) -> i64 {
    match unit.fixed_nanos() {
        Some(n) => ns - ns.rem_euclid(n),
        None => {
            let (y, m, ..) = parts(ns);
            match unit {
                Unit::Month => from_date(y, m, 1),
                _ => from_date(y, 1, 1),
            }
        }
    }
}

fn ceil(ns: i64, unit: Unit) -> i64 {
    let f = floor(ns, unit);
    if f == ns {
        return ns;
    }
    match unit.fixed_nanos() {
        Some(n) => f + n,
        None => {
            let (y, m, ..) = parts(f);
            match unit {
                Unit::Month if m == 12 => from_date(y + 1, 1, 1),
                Unit::Month => from_date(y, m + 1, 1),
                _ => from_date(y + 1, 1, 1),
            }
        }
    }
}

fn extract(ns: i64, unit: Unit) -> i64 {
    let (y, m, d, sod, _) = parts(ns);
    match unit {
        Unit::Year => y,
        Unit::Month => m as i64,
        Unit::Day => d as i64,
        Unit::Hour => sod / 3600,
        Unit::Minute => sod % 3600 / 60,
        Unit::Second => sod % 60,
    }
}

/// Whole units from `a` to `b`, truncated toward zero (months count calendar months, less
/// one if `b`'s day and time of the month come before `a`'s).
fn diff(a: i64, b: i64, unit: Unit) -> i64 {
    if let Some(n) = unit.fixed_nanos() {
        return (b - a) / n;
    }
    let (ya, ma, da, sa, na) = parts(a);
    let (yb, mb, db, sb, nb) = parts(b);
    let mut months = (yb * 12 + mb as i64) - (ya * 12 + ma as i64);
    let rest_a = (da, sa, na);
    let rest_b = (db, sb, nb);
    if months > 0 && rest_b < rest_a {
        months -= 1;
    } else if months < 0 && rest_b > rest_a {
        months += 1;
    }
    match unit {
        Unit::Year => months / 12,
        _ => months,
    }
}

/// `ns` formatted with a Java date pattern: y, M, d, H, m, s, S (run lengths give the
/// width; `yy` is the year's last two digits), text in single quotes, other characters as
/// they are. `None` for a pattern letter Weir does not know.
fn date_format(ns: i64, pattern: &str) -> Option<String> {
    let (y, mo, d, sod, nanos) = parts(ns);
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .map(|p| i + 1 + p)?;
            if end == i + 1 {
                out.push('\'');
            } else {
                out.extend(&chars[i + 1..end]);
            }
            i = end + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let value = match c {
            'y' if run == 2 => y.rem_euclid(100),
            'y' => y,
            'M' => mo as i64,
            'd' => d as i64,
            'H' => sod / 3600,
            'm' => sod % 3600 / 60,
            's' => sod % 60,
            'S' => {
                // Fraction digits: the first `run` digits of the nanoseconds.
                let digits = format!("{nanos:09}");
                out.push_str(&digits[..run.min(9)]);
                i += run;
                continue;
            }
            _ => return None,
        };
        out.push_str(&format!("{value:0run$}"));
        i += run;
    }
    Some(out)
}

fn nanos_arg(v: &ColumnarValue, rows: usize) -> Result<TimestampNanosecondArray> {
    let a = v.to_array(rows)?;
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, None) => {
            Ok(a.as_primitive::<TimestampNanosecondType>().clone())
        }
        other => Err(DataFusionError::Internal(format!(
            "a time function got {other}"
        ))),
    }
}

impl ScalarUDFImpl for TimeUdf {
    fn name(&self) -> &str {
        "flink_time_function"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.f {
            TimeFn::Extract(_) => DataType::Int64,
            TimeFn::Floor(_) | TimeFn::Ceil(_) => DataType::Timestamp(TimeUnit::Nanosecond, None),
            TimeFn::Diff(_) => DataType::Int32,
            TimeFn::Format | TimeFn::ToString(_) => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let first = nanos_arg(&args.args[0], rows)?;
        let get = |a: &TimestampNanosecondArray, r: usize| (!a.is_null(r)).then(|| a.value(r));
        let out: ArrayRef = match self.f {
            TimeFn::Extract(u) => Arc::new(
                (0..rows)
                    .map(|r| get(&first, r).map(|v| extract(v, u)))
                    .collect::<Int64Array>(),
            ),
            TimeFn::Floor(u) => Arc::new(
                (0..rows)
                    .map(|r| get(&first, r).map(|v| floor(v, u)))
                    .collect::<TimestampNanosecondArray>(),
            ),
            TimeFn::Ceil(u) => Arc::new(
                (0..rows)
                    .map(|r| get(&first, r).map(|v| ceil(v, u)))
                    .collect::<TimestampNanosecondArray>(),
            ),
            TimeFn::Diff(u) => {
                let second = nanos_arg(&args.args[1], rows)?;
                Arc::new(
                    (0..rows)
                        .map(|r| Some(diff(get(&first, r)?, get(&second, r)?, u) as i32))
                        .collect::<Int32Array>(),
                )
            }
            TimeFn::Format => {
                let patterns = args.args[1].to_array(rows)?;
                let patterns = patterns.as_string::<i32>();
                Arc::new(
                    (0..rows)
                        .map(|r| {
                            let p = (!patterns.is_null(r)).then(|| patterns.value(r))?;
                            date_format(get(&first, r)?, p)
                        })
                        .collect::<StringArray>(),
                )
            }
            TimeFn::ToString(precision) => Arc::new(
                (0..rows)
                    .map(|r| {
                        get(&first, r).map(|v| crate::format::timestamp_text(v as i128, precision))
                    })
                    .collect::<StringArray>(),
            ),
        };
        crate::functions::columnar_result(&args.args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
        from_date(y, mo, d) + ((h * 3600 + mi * 60 + s) * 1000 + ms) * 1_000_000
    }

    #[test]
    fn floors_ceils_extracts_and_diffs() {
        let t = ts(2024, 1, 31, 23, 59, 1, 533);
        assert_eq!(floor(t, Unit::Minute), ts(2024, 1, 31, 23, 59, 0, 0));
        assert_eq!(ceil(t, Unit::Minute), ts(2024, 2, 1, 0, 0, 0, 0));
        assert_eq!(
            ceil(ts(2024, 1, 1, 0, 1, 0, 0), Unit::Minute),
            ts(2024, 1, 1, 0, 1, 0, 0)
        );
        assert_eq!(ceil(t, Unit::Month), ts(2024, 2, 1, 0, 0, 0, 0));
        assert_eq!(floor(t, Unit::Year), ts(2024, 1, 1, 0, 0, 0, 0));
        assert_eq!(extract(t, Unit::Second), 1);
        assert_eq!(extract(t, Unit::Hour), 23);
        assert_eq!(extract(t, Unit::Month), 1);
        assert_eq!(
            diff(
                ts(2024, 1, 1, 0, 0, 0, 533),
                ts(2024, 1, 1, 0, 0, 54, 0),
                Unit::Second
            ),
            53
        );
        assert_eq!(
            diff(
                ts(2024, 1, 31, 0, 0, 0, 0),
                ts(2024, 2, 29, 0, 0, 0, 0),
                Unit::Month
            ),
            0
        );
        assert_eq!(
            diff(
                ts(2024, 1, 31, 0, 0, 0, 0),
                ts(2024, 3, 31, 0, 0, 0, 0),
                Unit::Month
            ),
            2
        );
        assert_eq!(
            date_format(t, "yyyy-MM-dd HH:mm:ss.SSS 'at' yy").as_deref(),
            Some("2024-01-31 23:59:01.533 at 24")
        );
        assert_eq!(date_format(t, "yyyy Q"), None);
    }
}
