//! Text to values, as Flink reads them: decimals (rounded half up to the column's scale),
//! dates `YYYY-MM-DD` and timestamps `YYYY-MM-DD HH:MM:SS[.f...]`.

use crate::format::days_from_civil;

/// `text` as an unscaled DECIMAL(`precision`, `scale`) value; `None` if it is not a number
/// or does not fit.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut unscaled: i128 = 0;
    for b in int.bytes().chain(frac.bytes().take(scale)) {
        unscaled = unscaled.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    for _ in frac.len()..scale {
        unscaled = unscaled.checked_mul(10)?;
    }
    // Half up on the first dropped digit.
    if frac.len() > scale && frac.as_bytes()[scale] >= b'5' {
        unscaled = unscaled.checked_add(1)?;
    }
    if unscaled >= 10i128.checked_pow(precision as u32)? {
        return None;
    }
    Some(if negative { -unscaled } else { unscaled })
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (or with `T`) as nanoseconds since the epoch.
pub fn parse_timestamp_nanos(text: &str) -> Option<i128> {
    let (date, time) = text.split_once([' ', 'T']).unwrap_or((text, "00:00:00"));
    let days = parse_date(date)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.splitn(3, ':');
    let h: u32 = parts.next()?.parse().ok()?;
    let mi: u32 = parts.next()?.parse().ok()?;
    let s: u32 = parts.next().unwrap_or("0").parse().ok()?;
    if h > 23 || mi > 59 || s > 59 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i128 = 0;
    for (i, b) in frac.bytes().enumerate() {
        nanos += (b - b'0') as i128 * 10i128.pow(8 - i as u32);
    }
    let seconds = (h * 3600 + mi * 60 + s) as i64;
    Some(((days * 86_400 + seconds) as i128) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_dates_and_timestamps() {
        assert_eq!(parse_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_decimal("-0.5", 3, 1), Some(-5));
        assert_eq!(parse_decimal("7", 5, 2), Some(700));
        assert_eq!(parse_decimal("1000", 3, 0), None);
        assert_eq!(parse_decimal("1x", 3, 0), None);
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(
            parse_timestamp_nanos("1970-01-01 00:00:01.5"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_timestamp_nanos("1970-01-01 25:00:00"), None);
        assert_eq!(parse_timestamp_nanos("1970-01-01 -1:-5:00"), None);
    }
}
