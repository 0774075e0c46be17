//! Flink's math functions of DOUBLE results: `SQRT`, `LN`, `LOG10`, `LOG2`, `LOG(x)` and
//! `LOG(base, x)`, `EXP`, `POWER`, the trigonometric functions, `DEGREES`, `RADIANS`, as
//! DataFusion scalar functions over `Float64` arrays. The planner casts every argument to
//! DOUBLE first, as Flink does; the values are those of Java's `Math` (NaN for a square
//! root of a negative number, -Infinity for `LN(0)`). `ABS`, `SIGN` and `PI` keep their
//! argument's type and are rewritten by the planner instead ([`crate::typing`]).

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array};
use arrow_schema::DataType;
use datafusion_common::{DataFusionError, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

/// A Flink math function with a DOUBLE result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    /// `SQRT(x)`
    Sqrt,
    /// `LN(x)`, and `LOG(x)` with one argument.
    Ln,
    /// `LOG10(x)`
    Log10,
    /// `LOG2(x)`
    Log2,
    /// `LOG(base, x)`
    Log,
    /// `EXP(x)`
    Exp,
    /// `POWER(x, y)`
    Power,
    /// `SIN(x)`
    Sin,
    /// `COS(x)`
    Cos,
    /// `TAN(x)`
    Tan,
    /// `COT(x)`
    Cot,
    /// `ASIN(x)`
    Asin,
    /// `ACOS(x)`
    Acos,
    /// `ATAN(x)`
    Atan,
    /// `ATAN2(y, x)`
    Atan2,
    /// `DEGREES(x)`: radians to degrees.
    Degrees,
    /// `RADIANS(x)`: degrees to radians.
    Radians,
}

/// The SQL names of the functions (lower case).
pub const NAMES: &[&str] = &[
    "sqrt", "ln", "log10", "log2", "log", "exp", "power", "sin", "cos", "tan", "cot", "asin",
    "acos", "atan", "atan2", "degrees", "radians",
];

/// The function called `name` with `args` arguments, if it is one of these.
pub fn by_name(name: &str, args: usize) -> Option<MathFn> {
    Some(match (name, args) {
        ("sqrt", 1) => MathFn::Sqrt,
        ("ln", 1) | ("log", 1) => MathFn::Ln,
        ("log10", 1) => MathFn::Log10,
        ("log2", 1) => MathFn::Log2,
        ("log", 2) => MathFn::Log,
        ("exp", 1) => MathFn::Exp,
        ("power", 2) => MathFn::Power,
        ("sin", 1) => MathFn::Sin,
        ("cos", 1) => MathFn::Cos,
        ("tan", 1) => MathFn::Tan,
        ("cot", 1) => MathFn::Cot,
        ("asin", 1) => MathFn::Asin,
        ("acos", 1) => MathFn::Acos,
        ("atan", 1) => MathFn::Atan,
        ("atan2", 2) => MathFn::Atan2,
        ("degrees", 1) => MathFn::Degrees,
        ("radians", 1) => MathFn::Radians,
        _ => return None,
    })
}

impl MathFn {
    /// The value for arguments `x` (and `y`).
    pub fn apply(self, x: f64, y: f64) -> f64 {
        match self {
            MathFn::Sqrt => x.sqrt(),
            MathFn::Ln => x.ln(),
            MathFn::Log10 => x.log10(),
            MathFn::Log2 => x.ln() / std::f64::consts::LN_2,
            // LOG(base, x) = ln(x) / ln(base), as Flink computes it.
            MathFn::Log => y.ln() / x.ln(),
            MathFn::Exp => x.exp(),
            MathFn::Power => x.powf(y),
            MathFn::Sin => x.sin(),
            MathFn::Cos => x.cos(),
            MathFn::Tan => x.tan(),
            MathFn::Cot => 1.0 / x.tan(),
            MathFn::Asin => x.asin(),
            MathFn::Acos => x.acos(),
            MathFn::Atan => x.atan(),
            MathFn::Atan2 => x.atan2(y),
            MathFn::Degrees => x.to_degrees(),
            MathFn::Radians => x.to_radians(),
        }
    }
}

/// A [`MathFn`] as a DataFusion scalar function over DOUBLE arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MathUdf {
    f: MathFn,
    signature: Signature,
}

impl MathUdf {
    /// The function `f`.
    pub fn new(f: MathFn) -> Self {
        MathUdf {
            f,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MathUdf {
    fn name(&self) -> &str {
        "weir_math"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let args = call
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                a.as_primitive_opt::<Float64Type>().cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!("a math function got {}", a.data_type()))
                })
            })
            .collect::<Result<Vec<Float64Array>>>()?;
        let value = |a: &Float64Array, r: usize| a.is_valid(r).then(|| a.value(r));
        let out: ArrayRef = Arc::new(
            (0..rows)
                .map(|r| {
                    let x = value(&args[0], r)?;
                    let y = match args.get(1) {
                        Some(a) => value(a, r)?,
                        None => 0.0,
                    };
                    Some(self.f.apply(x, y))
                })
                .collect::<Float64Array>(),
        );
        crate::functions::columnar_result(&call.args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_javas() {
        assert_eq!(MathFn::Sqrt.apply(16.0, 0.0), 4.0);
        assert!(MathFn::Sqrt.apply(-1.0, 0.0).is_nan());
        assert_eq!(MathFn::Ln.apply(0.0, 0.0), f64::NEG_INFINITY);
        assert_eq!(MathFn::Log.apply(2.0, 8.0), 3.0);
        assert_eq!(MathFn::Power.apply(2.0, 10.0), 1024.0);
        assert_eq!(MathFn::Log2.apply(8.0, 0.0), 3.0);
        assert_eq!(by_name("log", 1), Some(MathFn::Ln));
        assert_eq!(by_name("log", 3), None);
    }
}

/// `ROUND(x, d)` or `TRUNCATE(x, d)` at `d` decimal places (negative: tens, hundreds, ...),
/// as Flink computes them: half up (away from zero) on the value's decimal digits (a DOUBLE
/// by its shortest decimal form, as Java's `BigDecimal.valueOf`), or toward zero.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RoundUdf {
    /// TRUNCATE rather than ROUND.
    truncate: bool,
    /// The decimal places.
    places: i32,
    /// The result's Arrow type: Int64, Float64, or the result DECIMAL.
    output: DataType,
    signature: Signature,
}

impl RoundUdf {
    /// Rounds (or truncates) to `places`; the argument arrives as Int64, Float64 or a
    /// Decimal128, and the result is `output`.
    pub fn new(truncate: bool, places: i32, output: DataType) -> Self {
        RoundUdf {
            truncate,
            places,
            output,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// `v` with `k` > 0 digits dropped (half up or toward zero), in units of 10^k.
    fn drop_digits(&self, v: i128, k: u32) -> Option<i128> {
        // Past 10^38 the unit exceeds every value an i128 decimal holds: nothing is left.
        let Some(unit) = 10i128.checked_pow(k) else {
            return Some(0);
        };
        let q = v / unit;
        let rest = v % unit;
        Some(if !self.truncate && rest.abs() * 2 >= unit {
            q + rest.signum()
        } else {
            q
        })
    }

    /// An unscaled integer `v` of scale `scale` at this call's places. With no more digits
    /// than `places` it is unchanged, at scale `scale` (Flink keeps the type then);
    /// otherwise the result is at scale `max(places, 0)`.
    fn decimal(&self, v: i128, scale: i32) -> Option<i128> {
        if self.places >= scale {
            return Some(v);
        }
        let q = self.drop_digits(v, (scale - self.places) as u32)?;
        if self.places < 0 {
            q.checked_mul(10i128.checked_pow((-self.places) as u32)?)
        } else {
            Some(q)
        }
    }

    /// A DOUBLE through its shortest decimal form.
    fn double(&self, x: f64) -> f64 {
        if !x.is_finite() {
            return x;
        }
        let text = format!("{x}");
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let digits = format!("{int}{frac}");
        let Ok(v) = digits.parse::<i128>() else {
            return x;
        };
        let scale = frac.len() as i32;
        if self.places >= scale {
            return x;
        }
        let out_scale = self.places.max(0);
        match self.decimal(v, scale) {
            Some(r) => format!("{r}e-{out_scale}").parse().unwrap_or(x),
            None => x,
        }
    }
}

impl ScalarUDFImpl for RoundUdf {
    fn name(&self) -> &str {
        if self.truncate {
            "weir_truncate"
        } else {
            "weir_round"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow_array::types::{Decimal128Type, Int64Type};
        let rows = call.number_rows;
        let a = call.args[0].to_array(rows)?;
        let out: ArrayRef = match (a.data_type(), &self.output) {
            (DataType::Int64, _) => Arc::new(
                a.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.and_then(|v| self.decimal(v as i128, 0)).map(|v| v as i64))
                    .collect::<arrow_array::Int64Array>(),
            ),
            (DataType::Float64, _) => Arc::new(
                a.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| self.double(v)))
                    .collect::<Float64Array>(),
            ),
            (DataType::Decimal128(_, s), DataType::Decimal128(p, rs)) => Arc::new(
                a.as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| v.and_then(|v| self.decimal(v, *s as i32)))
                    .collect::<arrow_array::Decimal128Array>()
                    .with_precision_and_scale(*p, *rs)?,
            ),
            (other, _) => {
                return Err(DataFusionError::Internal(format!(
                    "ROUND got {other} for {}",
                    self.output
                )))
            }
        };
        crate::functions::columnar_result(&call.args, out)
    }
}

#[cfg(test)]
mod round_tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_on_decimal_digits() {
        let r = |p| RoundUdf::new(false, p, DataType::Float64);
        assert_eq!(
            r(2).double(1.005),
            1.01,
            "1.005 as written, not its binary value"
        );
        assert_eq!(r(0).double(-2.5), -3.0);
        assert_eq!(r(-2).double(151.0), 200.0);
        assert_eq!(r(0).decimal(25, 1), Some(3));
        assert_eq!(r(-1).decimal(171, 0), Some(170));
        let t = RoundUdf::new(true, 2, DataType::Float64);
        assert_eq!(t.double(142.857), 142.85);
        assert_eq!(
            t.decimal(-199, 0),
            Some(-199),
            "no more digits than places: unchanged at its own scale, as Flink keeps the type"
        );
        assert_eq!(t.double(7.25), 7.25);
        assert_eq!(
            RoundUdf::new(true, -2, DataType::Int64).decimal(-199, 0),
            Some(-100)
        );
    }
}
