//! Values printed as Flink's SQL results print them (the oracle's format): `\N` for NULL,
//! decimals with exactly their scale's digits, doubles to 12 significant digits, timestamps
//! with at least millisecond digits, and strings with `\`, `,`, newline and CR escaped so a
//! row is one line of comma-separated fields.

use crate::types::{FlinkType, Kind};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, ArrayRef};

/// Row `row` of `column` as the client's tables show it: `<NULL>`, or its text.
pub fn cell(column: &ArrayRef, t: &FlinkType, row: usize) -> String {
    if column.is_null(row) {
        "<NULL>".to_string()
    } else {
        value(column, t, row)
    }
}

/// The text of row `row` of `column`, a column of type `t`.
pub fn value(column: &ArrayRef, t: &FlinkType, row: usize) -> String {
    if column.is_null(row) {
        return "\\N".to_string();
    }
    match t.kind {
        Kind::Boolean => column.as_boolean().value(row).to_string(),
        Kind::TinyInt => column.as_primitive::<Int8Type>().value(row).to_string(),
        Kind::SmallInt => column.as_primitive::<Int16Type>().value(row).to_string(),
        Kind::Int => column.as_primitive::<Int32Type>().value(row).to_string(),
        Kind::BigInt => column.as_primitive::<Int64Type>().value(row).to_string(),
        Kind::Float => approximate(column.as_primitive::<Float32Type>().value(row) as f64, 6),
        Kind::Double => approximate(column.as_primitive::<Float64Type>().value(row), 12),
        Kind::Decimal(_, s) => decimal(column.as_primitive::<Decimal128Type>().value(row), s),
        Kind::Char(_) | Kind::Varchar(_) => escape(column.as_string::<i32>().value(row)),
        Kind::Date => {
            let days = column.as_primitive::<Date32Type>().value(row);
            date(days as i64)
        }
        Kind::Timestamp(p) => {
            let nanos = if p <= 3 {
                column.as_primitive::<TimestampMillisecondType>().value(row) as i128 * 1_000_000
            } else if p <= 6 {
                column.as_primitive::<TimestampMicrosecondType>().value(row) as i128 * 1_000
            } else {
                column.as_primitive::<TimestampNanosecondType>().value(row) as i128
            };
            timestamp(nanos)
        }
    }
}

/// A string field: `\` → `\\`, `,` → `\,`, newline → `\n`, CR → `\r`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// An unscaled decimal with `scale` fraction digits, in plain notation (Java's
/// `BigDecimal.toPlainString`).
pub fn decimal(unscaled: i128, scale: i8) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (-scale) as usize));
        return out;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A double (or float) rounded to `significant` digits, half-even from its exact binary
/// value; trailing zeros and point dropped; plain notation for 1e-7 <= |x| < 1e21, else
/// `d.ddE+n` / `d.ddE-n`.
pub fn approximate(x: f64, significant: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` with a precision rounds the exact value, ties to even.
    let sci = format!("{:.*e}", significant - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-7..=20).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&exp.abs().to_string());
    }
    out
}

/// Days since the epoch as `YYYY-MM-DD`.
pub(crate) fn date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Nanoseconds since the epoch as Flink casts a TIMESTAMP(`precision`) to a string: the
/// fraction has `precision` digits (none for 0), more only when the value has them.
pub(crate) fn timestamp_text(nanos: i128, precision: u8) -> String {
    let full = timestamp(nanos);
    let (head, fraction) = full.split_once('.').unwrap_or((full.as_str(), ""));
    let mut digits = fraction.trim_end_matches('0').to_string();
    while digits.len() < precision as usize {
        digits.push('0');
    }
    if digits.is_empty() {
        head.to_string()
    } else {
        format!("{head}.{digits}")
    }
}

/// Nanoseconds since the epoch as `YYYY-MM-DD HH:MM:SS.fff`, with 6 or 9 fraction digits
/// only when the value has them.
fn timestamp(nanos: i128) -> String {
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let fraction = if frac.is_multiple_of(1_000_000) {
        format!("{:03}", frac / 1_000_000)
    } else if frac.is_multiple_of(1_000) {
        format!("{:06}", frac / 1_000)
    } else {
        format!("{frac:09}")
    };
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{fraction}")
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_have_twelve_significant_digits() {
        assert_eq!(approximate(104.0, 12), "104");
        assert_eq!(approximate(1.0 / 3.0, 12), "0.333333333333");
        assert_eq!(approximate(10336.0 / 3.0, 12), "3445.33333333");
        assert_eq!(approximate(1.5e25, 12), "1.5E+25");
        assert_eq!(approximate(2516.666666666667, 12), "2516.66666667");
        assert_eq!(approximate(1e-8, 12), "1E-8");
        assert_eq!(approximate(2.5e-8, 12), "2.5E-8");
        assert_eq!(approximate(-0.0, 12), "0");
        assert_eq!(approximate(0.1f32 as f64, 6), "0.1");
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal(908, 1), "90.8");
        assert_eq!(decimal(90800, 3), "90.800");
        assert_eq!(decimal(-5, 3), "-0.005");
        assert_eq!(decimal(18875000000000000, 13), "1887.5000000000000");
    }

    #[test]
    fn timestamps_and_strings() {
        let ms = days_from_civil(2024, 1, 1) as i128 * 86_400_000 + 23_375;
        assert_eq!(timestamp(ms * 1_000_000), "2024-01-01 00:00:23.375");
        assert_eq!(
            timestamp(ms * 1_000_000 + 5_000),
            "2024-01-01 00:00:23.375005"
        );
        assert_eq!(date(days_from_civil(1999, 12, 31)), "1999-12-31");
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(escape("Kent, WA\\N\n"), "Kent\\, WA\\\\N\\n");
    }
}
