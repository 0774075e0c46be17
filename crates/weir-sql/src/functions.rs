//! Flink's string functions, with Flink's semantics (NULL handling, 1-based positions,
//! padding that truncates, `SPLIT_INDEX` counting from 0, ...), as DataFusion scalar
//! functions over Arrow string arrays. The planner types the call ([`signature`]) and
//! the function runs row by row over the batch's arrays.

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Int32Array, StringArray};
use arrow_schema::DataType;
use datafusion_common::{DataFusionError, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

/// A Flink string function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StringFn {
    /// `UPPER(s)`
    Upper,
    /// `LOWER(s)`
    Lower,
    /// `CHAR_LENGTH(s)`: characters.
    CharLength,
    /// `SUBSTRING(s FROM pos [FOR len])`
    Substring,
    /// `CONCAT(a, b, ...)` and `a || b`: NULL if any argument is.
    Concat,
    /// `CONCAT_WS(sep, a, b, ...)`: NULL arguments are skipped.
    ConcatWs,
    /// `TRIM(BOTH chars FROM s)` (and LEADING, TRAILING): strips the characters in `chars`.
    Trim(bool, bool),
    /// `REPLACE(s, from, to)`: every occurrence.
    Replace,
    /// `POSITION(sub IN s)`: 1-based, 0 if absent.
    Position,
    /// `INITCAP(s)`: each word's first letter upper case, the rest lower case.
    Initcap,
    /// `LPAD(s, len, pad)` / `RPAD`: padded or truncated to `len` characters.
    Pad(bool),
    /// `SPLIT_INDEX(s, sep, i)`: the i-th (from 0) piece, NULL if there is none.
    SplitIndex,
    /// `REGEXP_REPLACE(s, regex, replacement)`: NULL if the regex is invalid.
    RegexpReplace,
}

/// The function called `name` (lower case) in SQL, if it is one of these.
pub fn by_name(name: &str) -> Option<StringFn> {
    Some(match name {
        "upper" => StringFn::Upper,
        "lower" => StringFn::Lower,
        "char_length" | "character_length" => StringFn::CharLength,
        "substring" | "substr" => StringFn::Substring,
        "concat" => StringFn::Concat,
        "concat_ws" => StringFn::ConcatWs,
        "btrim" => StringFn::Trim(true, true),
        "ltrim" => StringFn::Trim(true, false),
        "rtrim" => StringFn::Trim(false, true),
        "replace" => StringFn::Replace,
        "position" => StringFn::Position,
        "initcap" => StringFn::Initcap,
        "lpad" => StringFn::Pad(true),
        "rpad" => StringFn::Pad(false),
        "split_index" => StringFn::SplitIndex,
        "regexp_replace" => StringFn::RegexpReplace,
        _ => return None,
    })
}

/// The names [`by_name`] knows.
pub const NAMES: &[&str] = &[
    "upper",
    "lower",
    "char_length",
    "character_length",
    "substring",
    "substr",
    "concat",
    "concat_ws",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "position",
    "initcap",
    "lpad",
    "rpad",
    "split_index",
    "regexp_replace",
];

/// What a function takes: `true` for a string argument, `false` for an INT one, per
/// position; `None` for any number of strings.
pub fn signature(f: StringFn) -> Option<&'static [bool]> {
    Some(match f {
        StringFn::Upper | StringFn::Lower | StringFn::CharLength | StringFn::Initcap => &[true],
        StringFn::Substring => &[true, false, false],
        StringFn::Concat | StringFn::ConcatWs => return None,
        StringFn::Trim(..) => &[true, true],
        StringFn::Replace | StringFn::RegexpReplace => &[true, true, true],
        StringFn::Position => &[true, true],
        StringFn::Pad(_) => &[true, false, true],
        StringFn::SplitIndex => &[true, true, false],
    })
}

/// True if the function returns an INT (else a string).
pub fn returns_int(f: StringFn) -> bool {
    matches!(f, StringFn::CharLength | StringFn::Position)
}

/// True if the function can return NULL for arguments that are not NULL.
pub fn may_return_null(f: StringFn) -> bool {
    matches!(
        f,
        StringFn::Substring | StringFn::Pad(_) | StringFn::SplitIndex | StringFn::RegexpReplace
    )
}

/// A string function as a DataFusion scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringUdf {
    f: StringFn,
    signature: Signature,
}

impl StringUdf {
    /// The DataFusion form of `f`.
    pub fn new(f: StringFn) -> Self {
        StringUdf {
            f,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// One argument's values.
enum Arg {
    Str(StringArray),
    Int(Int32Array),
}

impl Arg {
    fn str(&self, row: usize) -> Option<&str> {
        match self {
            Arg::Str(a) => (!a.is_null(row)).then(|| a.value(row)),
            Arg::Int(_) => None,
        }
    }

    fn int(&self, row: usize) -> Option<i32> {
        match self {
            Arg::Int(a) => (!a.is_null(row)).then(|| a.value(row)),
            Arg::Str(_) => None,
        }
    }
}

impl ScalarUDFImpl for StringUdf {
    fn name(&self) -> &str {
        "flink_string_function"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if returns_int(self.f) {
            DataType::Int32
        } else {
            DataType::Utf8
        })
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let args = call
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                Ok(match a.data_type() {
                    DataType::Utf8 => Arg::Str(a.as_string::<i32>().clone()),
                    DataType::Int32 => Arg::Int(a.as_primitive::<Int32Type>().clone()),
                    other => {
                        return Err(DataFusionError::Internal(format!(
                            "a string function got {other}"
                        )))
                    }
                })
            })
            .collect::<Result<Vec<Arg>>>()?;
        let out: ArrayRef = if returns_int(self.f) {
            Arc::new(
                (0..rows)
                    .map(|r| self.int_row(&args, r))
                    .collect::<Int32Array>(),
            )
        } else {
            let mut regex_cache = None;
            Arc::new(
                (0..rows)
                    .map(|r| self.str_row(&args, r, &mut regex_cache))
                    .collect::<StringArray>(),
            )
        };
        columnar_result(&call.args, out)
    }
}

/// The result of a function computed row by row: a scalar when every argument was one
/// (a call on constants), else the array.
pub(crate) fn columnar_result(args: &[ColumnarValue], out: ArrayRef) -> Result<ColumnarValue> {
    if out.len() == 1 && args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(
            datafusion_common::ScalarValue::try_from_array(&out, 0)?,
        ));
    }
    Ok(ColumnarValue::Array(out))
}

impl StringUdf {
    fn int_row(&self, args: &[Arg], r: usize) -> Option<i32> {
        match self.f {
            StringFn::CharLength => Some(args[0].str(r)?.chars().count() as i32),
            StringFn::Position => {
                // DataFusion passes (string, substring).
                let (s, sub) = (args[0].str(r)?, args[1].str(r)?);
                Some(match s.find(sub) {
                    Some(byte) => s[..byte].chars().count() as i32 + 1,
                    None => 0,
                })
            }
            _ => None,
        }
    }

    fn str_row(
        &self,
        args: &[Arg],
        r: usize,
        regex_cache: &mut Option<(String, Option<regex::Regex>)>,
    ) -> Option<String> {
        match self.f {
            StringFn::Upper => Some(args[0].str(r)?.to_uppercase()),
            StringFn::Lower => Some(args[0].str(r)?.to_lowercase()),
            StringFn::Initcap => Some(initcap(args[0].str(r)?)),
            StringFn::Substring => {
                let s = args[0].str(r)?;
                let pos = args[1].int(r)?;
                let len = match args.get(2) {
                    Some(a) => Some(a.int(r)?),
                    None => None,
                };
                substring(s, pos, len)
            }
            StringFn::Concat => {
                let mut out = String::new();
                for a in args {
                    out.push_str(a.str(r)?);
                }
                Some(out)
            }
            StringFn::ConcatWs => {
                let sep = args.first()?.str(r)?;
                let parts: Vec<&str> = args[1..].iter().filter_map(|a| a.str(r)).collect();
                Some(parts.join(sep))
            }
            StringFn::Trim(left, right) => {
                let s = args[0].str(r)?;
                let chars = args.get(1).map_or(Some(" "), |a| a.str(r))?;
                let strip = |c: char| chars.contains(c);
                let s = if left { s.trim_start_matches(strip) } else { s };
                let s = if right { s.trim_end_matches(strip) } else { s };
                Some(s.to_string())
            }
            StringFn::Replace => {
                let (s, from, to) = (args[0].str(r)?, args[1].str(r)?, args[2].str(r)?);
                Some(if from.is_empty() {
                    s.to_string()
                } else {
                    s.replace(from, to)
                })
            }
            StringFn::Pad(left) => {
                let (s, len, pad) = (args[0].str(r)?, args[1].int(r)?, args[2].str(r)?);
                pad_to(s, len, pad, left)
            }
            StringFn::SplitIndex => {
                let (s, sep, i) = (args[0].str(r)?, args[1].str(r)?, args[2].int(r)?);
                if i < 0 || s.is_empty() || sep.is_empty() {
                    return None;
                }
                s.split(sep).nth(i as usize).map(str::to_string)
            }
            StringFn::RegexpReplace => {
                let (s, pattern, replacement) = (args[0].str(r)?, args[1].str(r)?, args[2].str(r)?);
                if regex_cache.as_ref().is_none_or(|(p, _)| p != pattern) {
                    *regex_cache = Some((pattern.to_string(), regex::Regex::new(pattern).ok()));
                }
                let re = regex_cache.as_ref()?.1.as_ref()?;
                Some(re.replace_all(s, replacement).into_owned())
            }
            StringFn::CharLength | StringFn::Position => None,
        }
    }
}

/// Flink's SUBSTRING: `pos` from 1 (0 is 1; negative counts from the end), `len`
/// characters or to the end; NULL for a negative length.
fn substring(s: &str, pos: i32, len: Option<i32>) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = match pos as i64 {
        p if p > 0 => p - 1,
        0 => 0,
        p => n + p,
    };
    let end = match len {
        Some(l) if l < 0 => return None,
        Some(l) => start + l as i64,
        None => n,
    };
    let (start, end) = (start.clamp(0, n), end.clamp(0, n));
    if start >= end {
        return Some(String::new());
    }
    Some(chars[start as usize..end as usize].iter().collect())
}

/// LPAD / RPAD: NULL for a negative length or an empty pad when padding is needed;
/// truncated to `len` when longer.
fn pad_to(s: &str, len: i32, pad: &str, left: bool) -> Option<String> {
    if len < 0 {
        return None;
    }
    let len = len as usize;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= len {
        return Some(chars[..len].iter().collect());
    }
    if pad.is_empty() {
        return None;
    }
    let filler: String = pad.chars().cycle().take(len - chars.len()).collect();
    Some(if left {
        filler + s
    } else {
        s.to_string() + &filler
    })
}

/// Words (runs of letters and digits) with their first character upper case and the rest
/// lower case.
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flinks_string_semantics() {
        assert_eq!(substring("judy 70", 2, Some(3)).as_deref(), Some("udy"));
        assert_eq!(substring("abc", 0, Some(2)).as_deref(), Some("ab"));
        assert_eq!(substring("abc", -2, None).as_deref(), Some("bc"));
        assert_eq!(substring("abc", 5, Some(2)).as_deref(), Some(""));
        assert_eq!(substring("abc", 1, Some(-1)), None);
        assert_eq!(pad_to("CA", 4, "*", true).as_deref(), Some("**CA"));
        assert_eq!(pad_to("CA", 4, ".", false).as_deref(), Some("CA.."));
        assert_eq!(pad_to("hello", 3, "*", true).as_deref(), Some("hel"));
        assert_eq!(pad_to("a", 3, "", true), None);
        assert_eq!(initcap("judy 70 mcDONALD"), "Judy 70 Mcdonald");
    }
}
