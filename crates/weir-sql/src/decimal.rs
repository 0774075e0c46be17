//! DECIMAL division as Flink computes it: the quotient rounded half up to the result's
//! scale (Flink's `s = max(6, s1 + p2 + 1)`), computed exactly on the unscaled integers.

use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef, Decimal128Array};
use arrow_schema::DataType;
use datafusion_common::{DataFusionError, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

/// `a / b` for two DECIMAL columns, as DECIMAL(`precision`, `scale`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalDivide {
    precision: u8,
    scale: i8,
    signature: Signature,
}

impl DecimalDivide {
    /// A division whose result is DECIMAL(`precision`, `scale`).
    pub fn new(precision: u8, scale: i8) -> Self {
        DecimalDivide {
            precision,
            scale,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// `n / d` rounded half up (away from zero on a tie); `None` on division by zero.
pub(crate) fn div_half_up(n: i128, d: i128) -> Option<i128> {
    if d == 0 {
        return None;
    }
    let q = n / d;
    let r = n % d;
    // |2r| >= |d| rounds away from zero.
    if r.unsigned_abs() * 2 >= d.unsigned_abs() {
        Some(if (n < 0) == (d < 0) { q + 1 } else { q - 1 })
    } else {
        Some(q)
    }
}

impl ScalarUDFImpl for DecimalDivide {
    fn name(&self) -> &str {
        "decimal_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "a division needs two operands".into(),
            ));
        };
        let (a, b) = (a.to_array(rows)?, b.to_array(rows)?);
        let scale_of = |x: &ArrayRef| match x.data_type() {
            DataType::Decimal128(_, s) => Ok(*s as i32),
            other => Err(DataFusionError::Internal(format!(
                "a DECIMAL division of {other}"
            ))),
        };
        let (sa, sb) = (scale_of(&a)?, scale_of(&b)?);
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        // quotient = a / b at scale s: (ua / 10^sa) / (ub / 10^sb) * 10^s
        //          = ua * 10^(s - sa + sb) / ub
        let shift = self.scale as i32 - sa + sb;
        let limit = 10i128.pow(self.precision as u32);
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if a.is_null(i) || b.is_null(i) {
                out.push(None);
                continue;
            }
            let (ua, ub) = (a.value(i), b.value(i));
            let (n, d) = if shift >= 0 {
                let n = 10i128
                    .checked_pow(shift as u32)
                    .and_then(|f| ua.checked_mul(f))
                    .ok_or_else(|| {
                        DataFusionError::Execution("DECIMAL overflow in a division".into())
                    })?;
                (n, ub)
            } else {
                let d = 10i128
                    .checked_pow((-shift) as u32)
                    .and_then(|f| ub.checked_mul(f))
                    .ok_or_else(|| {
                        DataFusionError::Execution("DECIMAL overflow in a division".into())
                    })?;
                (ua, d)
            };
            let q = div_half_up(n, d)
                .ok_or_else(|| DataFusionError::Execution("Division by zero".into()))?;
            if q.abs() >= limit {
                return Err(DataFusionError::Execution(format!(
                    "a quotient does not fit DECIMAL({}, {})",
                    self.precision, self.scale
                )));
            }
            out.push(Some(q));
        }
        let array =
            Decimal128Array::from(out).with_precision_and_scale(self.precision, self.scale)?;
        crate::functions::columnar_result(&args.args, Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotients_round_half_up() {
        assert_eq!(div_half_up(5, 2), Some(3));
        assert_eq!(div_half_up(-5, 2), Some(-3));
        assert_eq!(div_half_up(4, 3), Some(1));
        assert_eq!(div_half_up(-7, 4), Some(-2));
        assert_eq!(div_half_up(1, 0), None);
    }
}
