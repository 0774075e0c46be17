//! SQL aggregate functions as Flink types and computes them: COUNT(*), COUNT, COUNT
//! DISTINCT, SUM, MIN, MAX and AVG, each an accumulator kept in keyed state per group (and
//! window) and turned into the result value when the group's row is emitted.
//!
//! Flink's result types: COUNT is `BIGINT NOT NULL`; SUM keeps an integer or floating
//! argument's type (and wraps on overflow, as Java's arithmetic does) and makes a
//! `DECIMAL(p, s)` into `DECIMAL(38, s)`; MIN and MAX keep the argument's type; AVG of an
//! integer type is that type (the quotient truncated), of a `DECIMAL(p, s)` is
//! `DECIMAL(38, max(6, s))` rounded half up. MIN and MAX of a time attribute are time
//! attributes too.

use crate::error::{Result, SqlError};
use crate::types::{FlinkType, Kind, MAX_PRECISION};
use crate::values::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggFunc {
    /// `COUNT(*)`: rows.
    CountStar,
    /// `COUNT(x)`: rows where `x` is not NULL.
    Count,
    /// `COUNT(DISTINCT x)`: distinct non-NULL values.
    CountDistinct,
    /// `SUM(x)`
    Sum,
    /// `MIN(x)`
    Min,
    /// `MAX(x)`
    Max,
    /// `AVG(x)`
    Avg,
}

impl AggFunc {
    /// The function called `name` (DataFusion's lower-case name), DISTINCT or not.
    pub fn by_name(name: &str, distinct: bool, has_arg: bool) -> Result<AggFunc> {
        let f = match name {
            "count" if !has_arg => AggFunc::CountStar,
            "count" if distinct => AggFunc::CountDistinct,
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" => AggFunc::Avg,
            other => {
                return Err(SqlError::Unsupported(format!(
                    "the aggregate function {} (Weir has COUNT, SUM, MIN, MAX, AVG)",
                    other.to_ascii_uppercase()
                )))
            }
        };
        // DISTINCT changes nothing for MIN and MAX.
        if distinct && !matches!(f, AggFunc::CountDistinct | AggFunc::Min | AggFunc::Max) {
            return Err(SqlError::Unsupported(format!(
                "{}(DISTINCT ...) (Weir has COUNT(DISTINCT ...))",
                name.to_ascii_uppercase()
            )));
        }
        Ok(f)
    }

    /// Flink's result type for an argument of type `arg`.
    pub fn result_type(&self, arg: Option<&FlinkType>) -> Result<FlinkType> {
        let bigint = FlinkType::not_null(Kind::BigInt);
        let Some(arg) = arg else {
            return Ok(bigint);
        };
        let numeric = |what: &str| {
            if arg.is_exact_numeric() || arg.is_approximate() {
                Ok(())
            } else {
                Err(SqlError::Invalid(format!(
                    "{what} needs a numeric argument, not {}",
                    arg.display()
                )))
            }
        };
        Ok(match self {
            AggFunc::CountStar | AggFunc::Count | AggFunc::CountDistinct => bigint,
            AggFunc::Sum => {
                numeric("SUM")?;
                match arg.kind {
                    Kind::Decimal(_, s) => FlinkType::nullable(Kind::Decimal(MAX_PRECISION, s)),
                    k => FlinkType::nullable(k),
                }
            }
            // A time attribute stays one (Flink's schema prints MAX(ts) as *ROWTIME*).
            AggFunc::Min | AggFunc::Max => FlinkType {
                kind: arg.kind,
                nullable: true,
                rowtime: arg.rowtime,
            },
            AggFunc::Avg => {
                numeric("AVG")?;
                match arg.kind {
                    Kind::Decimal(_, s) => {
                        FlinkType::nullable(Kind::Decimal(MAX_PRECISION, s.max(6)))
                    }
                    k => FlinkType::nullable(k),
                }
            }
        })
    }
}

/// One aggregate call of a query, over an input column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// The input column of its argument (none for `COUNT(*)`).
    pub arg: Option<usize>,
    /// The argument's type.
    pub arg_type: Option<FlinkType>,
    /// The result's type.
    pub result: FlinkType,
    /// The input retracts rows (an updating input): MIN and MAX keep every value.
    pub retracts: bool,
}

/// The running state of one aggregate call for one group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Acc {
    /// Rows counted.
    Count(i64),
    /// The sum of the non-NULL values and how many there are (NULL when none).
    Sum {
        /// Their sum.
        sum: Option<Value>,
        /// How many there are.
        count: i64,
    },
    /// The smallest value so far.
    Min(Option<Value>),
    /// The largest value so far.
    Max(Option<Value>),
    /// Sum and count of the values so far.
    Avg {
        /// Sum of the non-NULL values.
        sum: Option<Value>,
        /// How many there were.
        count: i64,
    },
    /// The distinct values so far, each with how often it came.
    Distinct(BTreeMap<Value, i64>),
    /// MIN or MAX over an input that retracts rows: every value with how often it is in.
    Extremes(BTreeMap<Value, i64>),
}

impl AggCall {
    /// The accumulator of a group that has seen no row.
    pub fn empty(&self) -> Acc {
        match self.func {
            AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
            AggFunc::CountDistinct => Acc::Distinct(BTreeMap::new()),
            AggFunc::Sum => Acc::Sum {
                sum: None,
                count: 0,
            },
            AggFunc::Min | AggFunc::Max if self.retracts => Acc::Extremes(BTreeMap::new()),
            AggFunc::Min => Acc::Min(None),
            AggFunc::Max => Acc::Max(None),
            AggFunc::Avg => Acc::Avg {
                sum: None,
                count: 0,
            },
        }
    }

    /// Adds a row whose argument is `v` (`None`: NULL, or no argument).
    pub fn accumulate(&self, acc: &mut Acc, v: Option<&Value>) {
        match acc {
            Acc::Count(n) => {
                if self.func == AggFunc::CountStar || v.is_some() {
                    *n += 1;
                }
            }
            Acc::Sum { sum, count } | Acc::Avg { sum, count } => {
                if let Some(v) = v {
                    *sum = Some(match sum.take() {
                        Some(s) => add(&s, v),
                        None => v.clone(),
                    });
                    *count += 1;
                }
            }
            Acc::Min(m) => {
                if let Some(v) = v {
                    if m.as_ref().is_none_or(|m| v < m) {
                        *m = Some(v.clone());
                    }
                }
            }
            Acc::Max(m) => {
                if let Some(v) = v {
                    if m.as_ref().is_none_or(|m| v > m) {
                        *m = Some(v.clone());
                    }
                }
            }
            Acc::Distinct(seen) | Acc::Extremes(seen) => {
                if let Some(v) = v {
                    *seen.entry(v.clone()).or_insert(0) += 1;
                }
            }
        }
    }

    /// Takes back a row whose argument is `v` (a retraction of an updating input).
    pub fn retract(&self, acc: &mut Acc, v: Option<&Value>) {
        match acc {
            Acc::Count(n) => {
                if self.func == AggFunc::CountStar || v.is_some() {
                    *n -= 1;
                }
            }
            Acc::Sum { sum, count } | Acc::Avg { sum, count } => {
                if let Some(v) = v {
                    *sum = Some(match sum.take() {
                        Some(s) => sub(&s, v),
                        None => negate(v),
                    });
                    *count -= 1;
                }
            }
            Acc::Distinct(seen) | Acc::Extremes(seen) => {
                if let Some(v) = v {
                    if let Some(n) = seen.get_mut(v) {
                        *n -= 1;
                        if *n <= 0 {
                            seen.remove(v);
                        }
                    }
                }
            }
            // Append-only accumulators are not asked to retract (the planner gives an
            // updating input retracting ones).
            Acc::Min(_) | Acc::Max(_) => {}
        }
    }

    /// Adds everything `other` holds to `acc` (two sessions that merge).
    pub fn merge(&self, acc: &mut Acc, other: Acc) {
        match (acc, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum { sum, count }, Acc::Sum { sum: s2, count: c2 })
            | (Acc::Avg { sum, count }, Acc::Avg { sum: s2, count: c2 }) => {
                if let Some(v) = s2 {
                    *sum = Some(match sum.take() {
                        Some(s) => add(&s, &v),
                        None => v,
                    });
                }
                *count += c2;
            }
            (Acc::Min(a), Acc::Min(Some(b))) if a.as_ref().is_none_or(|a| b < *a) => *a = Some(b),
            (Acc::Max(a), Acc::Max(Some(b))) if a.as_ref().is_none_or(|a| b > *a) => *a = Some(b),
            (Acc::Distinct(a), Acc::Distinct(b)) | (Acc::Extremes(a), Acc::Extremes(b)) => {
                for (v, n) in b {
                    *a.entry(v).or_insert(0) += n;
                }
            }
            // Accumulators of one call are all of one kind.
            _ => {}
        }
    }

    /// The result of the accumulator, of type [`AggCall::result`].
    pub fn value(&self, acc: &Acc) -> Option<Value> {
        match acc {
            Acc::Count(n) => Some(Value::Int(*n)),
            Acc::Distinct(seen) => Some(Value::Int(seen.len() as i64)),
            Acc::Sum { sum, count } => {
                if *count == 0 {
                    return None;
                }
                sum.as_ref().map(|s| self.narrow(s.clone()))
            }
            Acc::Min(m) | Acc::Max(m) => m.clone(),
            Acc::Extremes(seen) => {
                if self.func == AggFunc::Min {
                    seen.keys().next().cloned()
                } else {
                    seen.keys().next_back().cloned()
                }
            }
            Acc::Avg { sum, count } => {
                let sum = sum.as_ref()?;
                if *count == 0 {
                    return None;
                }
                Some(match (sum, self.result.kind) {
                    (Value::Int(s), _) => self.narrow(Value::Int(s.wrapping_div(*count))),
                    (Value::Float(s), _) => Value::Float(s / *count as f64),
                    (Value::Decimal(s), Kind::Decimal(_, rs)) => {
                        let from = match self.arg_type.map(|t| t.kind) {
                            Some(Kind::Decimal(_, s)) => s,
                            _ => 0,
                        };
                        let scaled = s.checked_mul(10i128.checked_pow((rs - from) as u32)?)?;
                        Value::Decimal(crate::decimal::div_half_up(scaled, *count as i128)?)
                    }
                    (other, _) => other.clone(),
                })
            }
        }
    }

    /// An integer sum or average at the width of the result type (Java's wrapping).
    fn narrow(&self, v: Value) -> Value {
        match (v, self.result.kind) {
            (Value::Int(i), Kind::TinyInt) => Value::Int(i as i8 as i64),
            (Value::Int(i), Kind::SmallInt) => Value::Int(i as i16 as i64),
            (Value::Int(i), Kind::Int) => Value::Int(i as i32 as i64),
            (v, _) => v,
        }
    }
}

fn sub(a: &Value, b: &Value) -> Value {
    add(a, &negate(b))
}

fn negate(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::Float(f) => Value::Float(-f),
        Value::Decimal(d) => Value::Decimal(d.wrapping_neg()),
        other => other.clone(),
    }
}

fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(*b)),
        (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
        (Value::Decimal(a), Value::Decimal(b)) => Value::Decimal(a.wrapping_add(*b)),
        (a, _) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(func: AggFunc, arg: Kind) -> AggCall {
        let arg_type = FlinkType::nullable(arg);
        AggCall {
            func,
            arg: Some(0),
            arg_type: Some(arg_type),
            result: func.result_type(Some(&arg_type)).unwrap(),
            retracts: false,
        }
    }

    fn run(c: &AggCall, values: &[Option<Value>]) -> Option<Value> {
        let mut acc = c.empty();
        for v in values {
            c.accumulate(&mut acc, v.as_ref());
        }
        c.value(&acc)
    }

    #[test]
    fn results_as_flink_computes_them() {
        let ints = [
            Some(Value::Int(1)),
            None,
            Some(Value::Int(2)),
            Some(Value::Int(-8)),
        ];
        assert_eq!(
            run(&call(AggFunc::Avg, Kind::BigInt), &ints),
            Some(Value::Int(-1))
        );
        assert_eq!(
            run(&call(AggFunc::Count, Kind::BigInt), &ints),
            Some(Value::Int(3))
        );
        assert_eq!(
            run(&call(AggFunc::Sum, Kind::BigInt), &[None]),
            None,
            "SUM of NULLs is NULL"
        );
        let max = Some(Value::Int(i32::MAX as i64));
        assert_eq!(
            run(&call(AggFunc::Sum, Kind::Int), &[max.clone(), max]),
            Some(Value::Int(-2)),
            "SUM(INT) wraps"
        );
        // AVG(DECIMAL(10, 2)) is DECIMAL(38, 6), half up: (1.00 + 2.00 + 2.00) / 3.
        let c = call(AggFunc::Avg, Kind::Decimal(10, 2));
        assert_eq!(c.result.display(), "DECIMAL(38, 6)");
        let d = |x| Some(Value::Decimal(x));
        assert_eq!(run(&c, &[d(100), d(200), d(200)]), d(1_666_667));
        let c = call(AggFunc::CountDistinct, Kind::Varchar(10));
        let s = |x: &str| Some(Value::Str(x.into()));
        assert_eq!(
            run(&c, &[s("a"), s("b"), s("a"), None]),
            Some(Value::Int(2))
        );
        // Retractions: MAX over an updating input falls back to the next largest value,
        // SUM goes back to NULL when its last value is taken back.
        let mut c = call(AggFunc::Max, Kind::BigInt);
        c.retracts = true;
        let mut acc = c.empty();
        for v in [5, 9, 9, 7] {
            c.accumulate(&mut acc, Some(&Value::Int(v)));
        }
        c.retract(&mut acc, Some(&Value::Int(9)));
        assert_eq!(c.value(&acc), Some(Value::Int(9)));
        c.retract(&mut acc, Some(&Value::Int(9)));
        assert_eq!(c.value(&acc), Some(Value::Int(7)));
        let c = call(AggFunc::Sum, Kind::BigInt);
        let mut acc = c.empty();
        c.accumulate(&mut acc, Some(&Value::Int(4)));
        c.retract(&mut acc, Some(&Value::Int(4)));
        assert_eq!(c.value(&acc), None);
        // Merged accumulators give what one over all the rows gives.
        let c = call(AggFunc::Avg, Kind::BigInt);
        let (mut a, mut b) = (c.empty(), c.empty());
        c.accumulate(&mut a, Some(&Value::Int(3)));
        c.accumulate(&mut b, Some(&Value::Int(8)));
        c.merge(&mut a, b);
        assert_eq!(c.value(&a), Some(Value::Int(5)));
        assert!(AggFunc::by_name("sum", true, true).is_err());
        assert!(AggFunc::by_name("stddev", false, true).is_err());
        assert!(AggFunc::Sum
            .result_type(Some(&FlinkType::nullable(Kind::Varchar(3))))
            .is_err());
    }
}
