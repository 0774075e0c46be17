//! Expressions typed as Flink SQL types them.
//!
//! DataFusion's planner gives expressions DataFusion's types; Flink's differ (an integer
//! literal is INT, `0.908 * price` is DECIMAL(24, 3), `MOD` has its divisor's type, string
//! literals are CHAR(n)). [`Typer`] walks an expression over the columns in scope and
//! rewrites it with explicit casts, so that DataFusion's vectorised kernels compute exactly
//! Flink's values, and says the Flink type of the result.

use crate::error::{Result, SqlError};
use crate::plan::ScopeColumn;
use crate::types::{FlinkType, Kind, MAX_PRECISION};
use arrow_schema::DataType;
use datafusion_common::ScalarValue;
use datafusion_expr::expr::{Alias, Cast, ScalarFunction};
use datafusion_expr::{BinaryExpr, Expr, Operator, ScalarUDF};
use std::sync::Arc;

/// Types expressions over the columns in scope by Flink's rules.
#[derive(Default)]
pub(crate) struct Typer {
    /// The columns an expression may name.
    pub scope: Vec<ScopeColumn>,
}

impl Typer {
    /// A typer over `scope`.
    pub fn new(scope: Vec<ScopeColumn>) -> Self {
        Typer { scope }
    }

    /// A time function call, typed: timestamps go in as nanoseconds; FLOOR and CEIL give
    /// back the argument's type (a time attribute stays one, as in Flink).
    fn time_call(&self, name: &str, args: &[Expr]) -> Result<(Expr, FlinkType)> {
        use crate::time_functions::{TimeFn, Unit};
        let unit_of = |e: &Expr| -> Result<Unit> {
            match e {
                Expr::Literal(ScalarValue::Utf8(Some(u)), _) => Unit::parse(u)
                    .ok_or_else(|| SqlError::Unsupported(format!("the time unit {u}"))),
                other => Err(SqlError::Invalid(format!("'{other}' is not a time unit"))),
            }
        };
        let timestamp = |e: &Expr| -> Result<(Expr, FlinkType)> {
            let (x, t) = self.typed(e)?;
            if !matches!(t.kind, Kind::Timestamp(_)) {
                return Err(SqlError::Invalid(format!(
                    "{} needs a TIMESTAMP, not {}",
                    name.to_ascii_uppercase(),
                    t.display()
                )));
            }
            Ok((cast(x, &FlinkType::nullable(Kind::Timestamp(9))), t))
        };
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(SqlError::Invalid(format!(
                    "{} takes {n} arguments",
                    name.to_ascii_uppercase()
                )))
            }
        };
        let bigint = |t: &FlinkType| FlinkType::nullable(Kind::BigInt).with_nullable(t.nullable);
        Ok(match name {
            "extract" => {
                arity(2)?;
                let unit = unit_of(&args[0])?;
                let (x, t) = timestamp(&args[1])?;
                (time_udf(TimeFn::Extract(unit), vec![x]), bigint(&t))
            }
            "hour" | "minute" | "second" => {
                arity(1)?;
                let unit = Unit::parse(name).unwrap_or(Unit::Second);
                let (x, t) = timestamp(&args[0])?;
                (time_udf(TimeFn::Extract(unit), vec![x]), bigint(&t))
            }
            "__floor_time" | "__ceil_time" => {
                arity(2)?;
                let unit = unit_of(&args[1])?;
                let (x, t) = timestamp(&args[0])?;
                let f = if name == "__floor_time" {
                    TimeFn::Floor(unit)
                } else {
                    TimeFn::Ceil(unit)
                };
                (cast(time_udf(f, vec![x]), &t), t)
            }
            "timestampdiff" => {
                arity(3)?;
                let unit = unit_of(&args[0])?;
                let (a, at) = timestamp(&args[1])?;
                let (b, bt) = timestamp(&args[2])?;
                (
                    time_udf(TimeFn::Diff(unit), vec![a, b]),
                    FlinkType {
                        kind: Kind::Int,
                        nullable: at.nullable || bt.nullable,
                        rowtime: false,
                    },
                )
            }
            _ => {
                arity(2)?;
                let (x, t) = timestamp(&args[0])?;
                let (p, pt) = self.typed(&args[1])?;
                if !pt.is_string() {
                    return Err(SqlError::Invalid(
                        "DATE_FORMAT needs a pattern string".into(),
                    ));
                }
                (
                    time_udf(TimeFn::Format, vec![x, p]),
                    FlinkType {
                        kind: Kind::Varchar(crate::types::MAX_LENGTH),
                        nullable: t.nullable || pt.nullable,
                        rowtime: false,
                    },
                )
            }
        })
    }

    /// A math function of DOUBLE result: its numeric arguments cast to DOUBLE.
    fn math_call(
        &self,
        f: crate::math_functions::MathFn,
        name: &str,
        args: &[Expr],
    ) -> Result<(Expr, FlinkType)> {
        let double = FlinkType::nullable(Kind::Double);
        let mut nullable = false;
        let mut exprs = Vec::with_capacity(args.len());
        for a in args {
            let (x, t) = self.typed(a)?;
            expect_numeric(&t, || {
                format!("{} needs numeric arguments", name.to_ascii_uppercase())
            })?;
            nullable |= t.nullable;
            exprs.push(cast(x, &double));
        }
        Ok((
            Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::from(crate::math_functions::MathUdf::new(f))),
                exprs,
            )),
            double.with_nullable(nullable),
        ))
    }

    /// `ROUND(x[, d])` and `TRUNCATE(x[, d])` (`d` an integer literal): integers and
    /// floating-point numbers keep their type; a `DECIMAL(p, s)` becomes Flink's
    /// `DECIMAL(1 + p - s + d, d)` when `d < s` (`DECIMAL(1 + p - s, 0)` when `d < 0`).
    fn round_call(&self, name: &str, args: &[Expr]) -> Result<(Expr, FlinkType)> {
        let upper = name.to_ascii_uppercase();
        let (x, places) = match args {
            [x] => (x, 0i64),
            [x, Expr::Literal(v, _)] => {
                let d = match v {
                    ScalarValue::Int64(Some(d)) => *d,
                    ScalarValue::Int32(Some(d)) => *d as i64,
                    _ => {
                        return Err(SqlError::Invalid(format!(
                            "{upper} needs an integer number of places"
                        )))
                    }
                };
                (x, d)
            }
            [_, _] => {
                return Err(SqlError::Unsupported(format!(
                    "{upper} to a number of places that is not a literal"
                )))
            }
            _ => return Err(SqlError::Invalid(format!("{upper} takes 1 or 2 arguments"))),
        };
        let places = places.clamp(-38, 38) as i32;
        let (x, t) = self.typed(x)?;
        let t = FlinkType {
            rowtime: false,
            ..t
        };
        let (input, result) = match t.kind {
            _ if t.is_integer() => (FlinkType::nullable(Kind::BigInt), t),
            Kind::Float | Kind::Double => (FlinkType::nullable(Kind::Double), t),
            Kind::Decimal(p, s) => {
                let (p, s) = (p as i32, s as i32);
                let kind = if places >= s {
                    Kind::Decimal(p as u8, s as i8)
                } else if places < 0 {
                    Kind::Decimal((1 + p - s).min(38) as u8, 0)
                } else {
                    Kind::Decimal((1 + p - s + places).min(38) as u8, places as i8)
                };
                (t, FlinkType { kind, ..t })
            }
            _ => {
                return Err(SqlError::Invalid(format!(
                    "{upper} needs a numeric argument, not {}",
                    t.display()
                )))
            }
        };
        let output = match result.kind {
            Kind::Decimal(..) => result.arrow(),
            _ => input.arrow(),
        };
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::from(crate::math_functions::RoundUdf::new(
                name == "truncate",
                places,
                output,
            ))),
            vec![cast(x, &input)],
        ));
        Ok((cast(call, &result), result))
    }

    /// `ABS(x)` and `SIGN(x)`, of `x`'s type, and `PI()`.
    fn signed_call(&self, name: &str, args: &[Expr]) -> Result<(Expr, FlinkType)> {
        use datafusion_expr::expr::Case;
        if name == "pi" {
            if !args.is_empty() {
                return Err(SqlError::Invalid("PI takes no arguments".into()));
            }
            return Ok((
                Expr::Literal(ScalarValue::Float64(Some(std::f64::consts::PI)), None),
                FlinkType::not_null(Kind::Double),
            ));
        }
        let [a] = args else {
            return Err(SqlError::Invalid(format!(
                "{} takes 1 argument",
                name.to_ascii_uppercase()
            )));
        };
        let (x, t) = self.typed(a)?;
        expect_numeric(&t, || {
            format!("{} needs a numeric argument", name.to_ascii_uppercase())
        })?;
        let t = FlinkType {
            rowtime: false,
            ..t
        };
        let number = |n: i64| cast(Expr::Literal(ScalarValue::Int64(Some(n)), None), &t);
        let compare = |op: Operator| {
            Box::new(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(x.clone()),
                op,
                Box::new(number(0)),
            )))
        };
        let e = if name == "abs" {
            Expr::Case(Case::new(
                None,
                vec![(
                    compare(Operator::Lt),
                    Box::new(Expr::Negative(Box::new(x.clone()))),
                )],
                Some(Box::new(x.clone())),
            ))
        } else {
            // NULL stays NULL (no ELSE).
            Expr::Case(Case::new(
                None,
                vec![
                    (compare(Operator::Gt), Box::new(number(1))),
                    (compare(Operator::Lt), Box::new(number(-1))),
                    (compare(Operator::Eq), Box::new(number(0))),
                ],
                None,
            ))
        };
        Ok((e, t))
    }

    /// The type of the column `c` (qualified or not).
    fn column(&self, c: &datafusion_common::Column) -> Result<FlinkType> {
        self.scope
            .iter()
            .find(|s| s.matches(c))
            .map(|s| s.ty)
            .ok_or_else(|| SqlError::Invalid(format!("no column '{}'", c.name)))
    }

    /// `e` typed by Flink's rules, rewritten so that evaluating it gives Flink's values.
    pub fn typed(&self, e: &Expr) -> Result<(Expr, FlinkType)> {
        // `x [NOT] BETWEEN a AND b` is `a <= x AND x <= b` (negated), as in Flink.
        if let Expr::Between(b) = e {
            let ge = Expr::BinaryExpr(BinaryExpr::new(
                b.expr.clone(),
                Operator::GtEq,
                b.low.clone(),
            ));
            let le = Expr::BinaryExpr(BinaryExpr::new(
                b.expr.clone(),
                Operator::LtEq,
                b.high.clone(),
            ));
            let both = ge.and(le);
            return self.typed(&if b.negated {
                Expr::Not(Box::new(both))
            } else {
                both
            });
        }
        if let Expr::ScalarFunction(ScalarFunction { func, args }) = e {
            if let Some(f) = crate::functions::by_name(func.name()) {
                let typed = args
                    .iter()
                    .map(|a| self.typed(a))
                    .collect::<Result<Vec<_>>>()?;
                return string_call(f, func.name(), typed);
            }
            if crate::plan::TIME_FUNCTIONS.contains(&func.name()) {
                return self.time_call(func.name(), args);
            }
            if let Some(f) = crate::math_functions::by_name(func.name(), args.len()) {
                return self.math_call(f, func.name(), args);
            }
            if matches!(func.name(), "round" | "truncate") {
                return self.round_call(func.name(), args);
            }
            if matches!(func.name(), "abs" | "sign" | "pi") {
                return self.signed_call(func.name(), args);
            }
        }
        if let Expr::BinaryExpr(b) = e {
            if is_day_time_interval(&b.right) && matches!(b.op, Operator::Plus | Operator::Minus) {
                let (l, lt) = self.typed(&b.left)?;
                if !matches!(lt.kind, Kind::Timestamp(_)) {
                    return Err(SqlError::Invalid(format!(
                        "an interval added to a {}",
                        lt.display()
                    )));
                }
                // The timestamp keeps its type, time attribute included (as in Flink).
                return Ok((
                    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), b.op, b.right.clone())),
                    lt,
                ));
            }
        }
        Ok(match e {
            Expr::Alias(Alias { expr, .. }) => self.typed(expr)?,
            Expr::Column(c) => (e.clone(), self.column(c)?),
            Expr::Literal(v, _) => literal(v)?,
            Expr::BinaryExpr(b) => {
                let (l, lt) = self.typed(&b.left)?;
                let (r, rt) = self.typed(&b.right)?;
                binary(l, lt, b.op, r, rt)?
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "mod" => {
                let [a, b] = args.as_slice() else {
                    return Err(SqlError::Invalid("MOD takes two arguments".into()));
                };
                let (l, lt) = self.typed(a)?;
                let (r, rt) = self.typed(b)?;
                binary(l, lt, Operator::Modulo, r, rt)?
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "coalesce" => {
                let typed = args
                    .iter()
                    .map(|a| self.typed(a))
                    .collect::<Result<Vec<_>>>()?;
                let Some(result) = common_type(typed.iter().map(|(_, t)| t))? else {
                    return Err(SqlError::Invalid("COALESCE needs arguments".into()));
                };
                let result = result.with_nullable(typed.iter().all(|(_, t)| t.nullable));
                let mut branches = typed
                    .into_iter()
                    .map(|(e, _)| cast(e, &result))
                    .collect::<Vec<_>>();
                let last = branches
                    .pop()
                    .unwrap_or_else(|| Expr::Literal(ScalarValue::Null, None));
                let when_then = branches
                    .into_iter()
                    .map(|e| (Box::new(Expr::IsNotNull(Box::new(e.clone()))), Box::new(e)))
                    .collect();
                (
                    Expr::Case(datafusion_expr::expr::Case::new(
                        None,
                        when_then,
                        Some(Box::new(last)),
                    )),
                    result,
                )
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "nullif" => {
                let [a, b] = args.as_slice() else {
                    return Err(SqlError::Invalid("NULLIF takes two arguments".into()));
                };
                let (a, at) = self.typed(a)?;
                let (b, bt) = self.typed(b)?;
                let (equal, _) = binary(a.clone(), at, Operator::Eq, b, bt)?;
                let result = at.with_nullable(true);
                (
                    Expr::Case(datafusion_expr::expr::Case::new(
                        None,
                        vec![(
                            Box::new(equal),
                            Box::new(Expr::Literal(null_of(&result)?, None)),
                        )],
                        Some(Box::new(cast(a, &result))),
                    )),
                    result,
                )
            }
            Expr::Case(c) => {
                if c.expr.is_some() {
                    return Err(SqlError::Unsupported(
                        "CASE x WHEN ... (use CASE WHEN x = ...)".into(),
                    ));
                }
                let mut whens = Vec::new();
                let mut thens = Vec::new();
                for (w, t) in &c.when_then_expr {
                    let (w, wt) = self.typed(w)?;
                    expect_boolean(&wt, "CASE WHEN")?;
                    whens.push(w);
                    thens.push(self.typed(t)?);
                }
                let otherwise = c.else_expr.as_ref().map(|e| self.typed(e)).transpose()?;
                let Some(result) =
                    common_type(thens.iter().chain(otherwise.iter()).map(|(_, t)| t))?
                else {
                    return Err(SqlError::Invalid("CASE needs a THEN".into()));
                };
                let nullable = otherwise.as_ref().is_none_or(|(_, t)| t.nullable)
                    || thens.iter().any(|(_, t)| t.nullable);
                let result = result.with_nullable(nullable);
                let when_then = whens
                    .into_iter()
                    .zip(thens)
                    .map(|(w, (t, _))| (Box::new(w), Box::new(cast(t, &result))))
                    .collect();
                let otherwise = match otherwise {
                    Some((e, _)) => cast(e, &result),
                    None => Expr::Literal(null_of(&result)?, None),
                };
                (
                    Expr::Case(datafusion_expr::expr::Case::new(
                        None,
                        when_then,
                        Some(Box::new(otherwise)),
                    )),
                    result,
                )
            }
            Expr::Like(like) => {
                let (x, xt) = self.typed(&like.expr)?;
                let (pattern, pt) = self.typed(&like.pattern)?;
                if !xt.is_string() || !pt.is_string() {
                    return Err(SqlError::Invalid(format!(
                        "LIKE needs strings, not {} and {}",
                        xt.display(),
                        pt.display()
                    )));
                }
                (
                    Expr::Like(datafusion_expr::expr::Like::new(
                        like.negated,
                        Box::new(x),
                        Box::new(pattern),
                        like.escape_char,
                        like.case_insensitive,
                    )),
                    FlinkType {
                        kind: Kind::Boolean,
                        nullable: xt.nullable || pt.nullable,
                        rowtime: false,
                    },
                )
            }
            Expr::IsNull(inner) => {
                let (x, _) = self.typed(inner)?;
                (
                    Expr::IsNull(Box::new(x)),
                    FlinkType::not_null(Kind::Boolean),
                )
            }
            Expr::IsNotNull(inner) => {
                let (x, _) = self.typed(inner)?;
                (
                    Expr::IsNotNull(Box::new(x)),
                    FlinkType::not_null(Kind::Boolean),
                )
            }
            Expr::Not(inner) => {
                let (x, t) = self.typed(inner)?;
                expect_boolean(&t, "NOT")?;
                (Expr::Not(Box::new(x)), t)
            }
            Expr::Negative(inner) => {
                let (x, t) = self.typed(inner)?;
                if !(t.is_exact_numeric() || t.is_approximate()) {
                    return Err(SqlError::Invalid(format!(
                        "cannot negate a {}",
                        t.display()
                    )));
                }
                (Expr::Negative(Box::new(x)), t)
            }
            Expr::Cast(Cast { expr, field }) => {
                let data_type = field.data_type();
                // `CAST(NULL AS t)`: a NULL of type t.
                if matches!(expr.as_ref(), Expr::Literal(v, _) if v.is_null()) {
                    let kind = kind_of_arrow(data_type)?;
                    let null = ScalarValue::try_from(data_type)
                        .map_err(|e| SqlError::Invalid(e.to_string()))?;
                    return Ok((Expr::Literal(null, None), FlinkType::nullable(kind)));
                }
                let (x, t) = self.typed(expr)?;
                if let (DataType::Utf8, Kind::Timestamp(p)) = (data_type, t.kind) {
                    // Flink's text of a timestamp, not arrow's (`T` between date and time).
                    let call = time_udf(
                        crate::time_functions::TimeFn::ToString(p),
                        vec![cast(x, &FlinkType::nullable(Kind::Timestamp(9)))],
                    );
                    return Ok((
                        call,
                        FlinkType::nullable(Kind::Varchar(crate::types::MAX_LENGTH))
                            .with_nullable(t.nullable),
                    ));
                }
                let kind = kind_of_arrow(data_type)?;
                (
                    Expr::Cast(Cast::new(Box::new(x), data_type.clone())),
                    FlinkType {
                        kind,
                        nullable: t.nullable,
                        rowtime: false,
                    },
                )
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "the expression '{other}' (Weir's SQL runs projections and filters with \
                     arithmetic, MOD, comparisons, AND/OR/NOT, IS [NOT] NULL and CAST so far)"
                )))
            }
        })
    }
}

fn expect_boolean(t: &FlinkType, what: &str) -> Result<()> {
    if t.kind == Kind::Boolean {
        Ok(())
    } else {
        Err(SqlError::Invalid(format!(
            "{what} needs BOOLEAN operands, not {}",
            t.display()
        )))
    }
}

/// An error unless `t` is numeric (exact or approximate); `what` says what needed it.
fn expect_numeric(t: &FlinkType, what: impl FnOnce() -> String) -> Result<()> {
    if t.is_exact_numeric() || t.is_approximate() {
        Ok(())
    } else {
        Err(SqlError::Invalid(format!(
            "{}, not {}",
            what(),
            t.display()
        )))
    }
}

/// The Flink kind of a CAST's target type as DataFusion's planner gives it.
fn kind_of_arrow(t: &DataType) -> Result<Kind> {
    Ok(match t {
        DataType::Boolean => Kind::Boolean,
        DataType::Int8 => Kind::TinyInt,
        DataType::Int16 => Kind::SmallInt,
        DataType::Int32 => Kind::Int,
        DataType::Int64 => Kind::BigInt,
        DataType::Float32 => Kind::Float,
        DataType::Float64 => Kind::Double,
        DataType::Decimal128(p, s) => Kind::Decimal(*p, *s),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Kind::Varchar(crate::types::MAX_LENGTH)
        }
        DataType::Date32 => Kind::Date,
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None) => Kind::Timestamp(3),
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None) => Kind::Timestamp(6),
        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None) => Kind::Timestamp(9),
        other => return Err(SqlError::Unsupported(format!("a CAST to {other}"))),
    })
}

/// A literal's Flink type: integers are INT (BIGINT if they do not fit), decimals
/// DECIMAL(digits, scale) with at least one integer digit, strings CHAR(length).
fn literal(v: &ScalarValue) -> Result<(Expr, FlinkType)> {
    let lit = |v: ScalarValue| Expr::Literal(v, None);
    Ok(match v {
        ScalarValue::Int64(Some(i)) => match i32::try_from(*i) {
            Ok(i) => (
                lit(ScalarValue::Int32(Some(i))),
                FlinkType::not_null(Kind::Int),
            ),
            Err(_) => (lit(v.clone()), FlinkType::not_null(Kind::BigInt)),
        },
        ScalarValue::Decimal128(Some(u), _, s) => {
            let digits = u.unsigned_abs().to_string().len() as u8;
            let p = digits.max((*s).max(0) as u8 + 1).min(MAX_PRECISION);
            (
                lit(ScalarValue::Decimal128(Some(*u), p, *s)),
                FlinkType::not_null(Kind::Decimal(p, *s)),
            )
        }
        ScalarValue::Float64(Some(_)) => (lit(v.clone()), FlinkType::not_null(Kind::Double)),
        ScalarValue::Utf8(Some(s)) => (
            lit(v.clone()),
            FlinkType::not_null(Kind::Char(s.chars().count().max(1) as u32)),
        ),
        ScalarValue::Boolean(Some(_)) => (lit(v.clone()), FlinkType::not_null(Kind::Boolean)),
        other => return Err(SqlError::Unsupported(format!("the literal {other}"))),
    })
}

/// Flink's precision and scale adjustment when a DECIMAL result needs more than 38 digits:
/// integer digits are kept, the scale shrinks, down to 6 at least.
fn adjust(precision: u32, scale: u32) -> (u8, i8) {
    if precision <= MAX_PRECISION as u32 {
        return (precision as u8, scale as i8);
    }
    let integer = precision - scale;
    let min_scale = scale.min(6);
    let scale = (MAX_PRECISION as u32)
        .saturating_sub(integer)
        .max(min_scale);
    (MAX_PRECISION, scale as i8)
}

fn integer_rank(k: Kind) -> u8 {
    match k {
        Kind::TinyInt => 1,
        Kind::SmallInt => 2,
        Kind::Int => 3,
        _ => 4,
    }
}

pub(crate) fn cast(e: Expr, t: &FlinkType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), t.arrow()))
}

/// A binary operation typed by Flink's rules.
fn binary(
    l: Expr,
    lt: FlinkType,
    op: Operator,
    r: Expr,
    rt: FlinkType,
) -> Result<(Expr, FlinkType)> {
    let nullable = lt.nullable || rt.nullable;
    let bin = |l: Expr, r: Expr| Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)));
    let numeric = |t: &FlinkType| t.is_exact_numeric() || t.is_approximate();
    match op {
        Operator::And | Operator::Or => {
            expect_boolean(&lt, &op.to_string())?;
            expect_boolean(&rt, &op.to_string())?;
            Ok((
                bin(l, r),
                FlinkType {
                    kind: Kind::Boolean,
                    nullable,
                    rowtime: false,
                },
            ))
        }
        Operator::Eq
        | Operator::NotEq
        | Operator::Lt
        | Operator::LtEq
        | Operator::Gt
        | Operator::GtEq => {
            let boolean = FlinkType {
                kind: Kind::Boolean,
                nullable,
                rowtime: false,
            };
            if numeric(&lt) && numeric(&rt) {
                let common = common_numeric(&lt, &rt);
                return Ok((bin(cast(l, &common), cast(r, &common)), boolean));
            }
            let comparable = (lt.is_string() && rt.is_string())
                || (lt.kind == rt.kind)
                || (matches!(lt.kind, Kind::Timestamp(_)) && matches!(rt.kind, Kind::Timestamp(_)));
            if !comparable {
                return Err(SqlError::Invalid(format!(
                    "cannot compare {} with {}",
                    lt.display(),
                    rt.display()
                )));
            }
            let common = if matches!(lt.kind, Kind::Timestamp(_)) {
                lt.max_timestamp(&rt)
            } else {
                lt
            };
            Ok((bin(cast(l, &common), cast(r, &common)), boolean))
        }
        Operator::Plus
        | Operator::Minus
        | Operator::Multiply
        | Operator::Divide
        | Operator::Modulo => {
            if !numeric(&lt) || !numeric(&rt) {
                return Err(SqlError::Invalid(format!(
                    "cannot apply {op} to {} and {}",
                    lt.display(),
                    rt.display()
                )));
            }
            if lt.is_approximate() || rt.is_approximate() {
                let kind = if lt.kind == Kind::Float && rt.kind == Kind::Float {
                    Kind::Float
                } else {
                    Kind::Double
                };
                let t = FlinkType {
                    kind,
                    nullable,
                    rowtime: false,
                };
                return Ok((bin(cast(l, &t), cast(r, &t)), t));
            }
            if lt.is_integer() && rt.is_integer() {
                let wider = if integer_rank(lt.kind) >= integer_rank(rt.kind) {
                    lt.kind
                } else {
                    rt.kind
                };
                let compute = FlinkType {
                    kind: wider,
                    nullable,
                    rowtime: false,
                };
                let result = if op == Operator::Modulo {
                    FlinkType {
                        kind: rt.kind,
                        nullable,
                        rowtime: false,
                    }
                } else {
                    compute
                };
                let e = bin(cast(l, &compute), cast(r, &compute));
                return Ok((
                    if result == compute {
                        e
                    } else {
                        cast(e, &result)
                    },
                    result,
                ));
            }
            // Exact with at least one DECIMAL.
            let (p1, s1) = lt.as_decimal().unwrap_or((19, 0));
            let (p2, s2) = rt.as_decimal().unwrap_or((19, 0));
            let (p1, s1, p2, s2) = (p1 as u32, s1.max(0) as u32, p2 as u32, s2.max(0) as u32);
            let (p, s) = match op {
                Operator::Plus | Operator::Minus => {
                    let s = s1.max(s2);
                    adjust((p1 - s1).max(p2 - s2) + s + 1, s)
                }
                Operator::Multiply => adjust(p1 + p2 + 1, s1 + s2),
                Operator::Divide => {
                    let s = 6.max(s1 + p2 + 1);
                    adjust(p1 - s1 + s2 + s, s)
                }
                _ => {
                    return Err(SqlError::Unsupported(format!(
                        "{op} on DECIMAL values (Weir's SQL multiplies, adds and subtracts them so far)"
                    )))
                }
            };
            let result = FlinkType {
                kind: Kind::Decimal(p, s),
                nullable,
                rowtime: false,
            };
            let as_decimal = |e: Expr, t: &FlinkType, (dp, ds): (u8, i8)| match t.kind {
                Kind::Decimal(..) => e,
                _ => cast(e, &FlinkType::nullable(Kind::Decimal(dp, ds))),
            };
            let l = as_decimal(l, &lt, (p1 as u8, s1 as i8));
            let r = as_decimal(r, &rt, (p2 as u8, s2 as i8));
            let e = match op {
                Operator::Multiply => bin(l, r),
                Operator::Divide => Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::from(crate::decimal::DecimalDivide::new(p, s))),
                    vec![l, r],
                )),
                _ => bin(cast(l, &result), cast(r, &result)),
            };
            Ok((cast(e, &result), result))
        }
        Operator::StringConcat => string_call(
            crate::functions::StringFn::Concat,
            "||",
            vec![(l, lt), (r, rt)],
        ),
        other => Err(SqlError::Unsupported(format!("the operator {other}"))),
    }
}

/// A call of a string function, typed: string arguments as they are, INT arguments cast
/// to INT; the result a string (CONCAT of bounded strings: VARCHAR of their total length,
/// else STRING) or an INT, nullable if an argument is or the function can return NULL.
fn string_call(
    f: crate::functions::StringFn,
    name: &str,
    args: Vec<(Expr, FlinkType)>,
) -> Result<(Expr, FlinkType)> {
    use crate::functions::{may_return_null, returns_int, signature, StringUdf};
    let wants = |i: usize| signature(f).map_or(Some(true), |s| s.get(i).copied());
    let arity_ok = match signature(f) {
        Some(s) => {
            args.len() <= s.len()
                && args.len()
                    + usize::from(matches!(
                        f,
                        crate::functions::StringFn::Substring
                            | crate::functions::StringFn::Trim(..)
                    ))
                    >= s.len()
        }
        None => !args.is_empty(),
    };
    if !arity_ok {
        return Err(SqlError::Invalid(format!(
            "{} does not take {} arguments",
            name.to_ascii_uppercase(),
            args.len()
        )));
    }
    let nullable = args.iter().any(|(_, t)| t.nullable) || may_return_null(f);
    let mut exprs = Vec::with_capacity(args.len());
    let mut length: u64 = 0;
    let mut unbounded = false;
    for (i, (e, t)) in args.into_iter().enumerate() {
        match wants(i) {
            Some(true) if t.is_string() => {
                match t.kind {
                    Kind::Char(n) | Kind::Varchar(n) if n < crate::types::MAX_LENGTH => {
                        length += n as u64
                    }
                    _ => unbounded = true,
                }
                exprs.push(e);
            }
            Some(false) if t.is_integer() => exprs.push(cast(e, &FlinkType::nullable(Kind::Int))),
            _ => {
                return Err(SqlError::Invalid(format!(
                    "{} cannot take {} as argument {}",
                    name.to_ascii_uppercase(),
                    t.display(),
                    i + 1
                )))
            }
        }
    }
    let kind = if returns_int(f) {
        Kind::Int
    } else if matches!(f, crate::functions::StringFn::Concat) && !unbounded {
        Kind::Varchar(length.min(crate::types::MAX_LENGTH as u64) as u32)
    } else {
        Kind::Varchar(crate::types::MAX_LENGTH)
    };
    Ok((
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::from(StringUdf::new(f))),
            exprs,
        )),
        FlinkType {
            kind,
            nullable,
            rowtime: false,
        },
    ))
}

/// A call of a time function.
fn time_udf(f: crate::time_functions::TimeFn, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::from(crate::time_functions::TimeUdf::new(f))),
        args,
    ))
}

/// True if `e` is an interval literal of days and time (what `ts ± INTERVAL` adds).
fn is_day_time_interval(e: &Expr) -> bool {
    match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) => v.months == 0,
        Expr::Literal(ScalarValue::IntervalDayTime(Some(_)), _) => true,
        _ => false,
    }
}

/// A NULL of `t`'s Arrow type.
fn null_of(t: &FlinkType) -> Result<ScalarValue> {
    Ok(ScalarValue::try_from(&t.arrow())?)
}

/// The type of values that may be any of `types` (the branches of a CASE, the arguments of
/// COALESCE), by Flink's rules: strings of different lengths are VARCHAR of the longest,
/// numbers their common numeric type; nullable if any is.
pub(crate) fn common_type<'a>(
    types: impl Iterator<Item = &'a FlinkType>,
) -> Result<Option<FlinkType>> {
    let mut common: Option<FlinkType> = None;
    for t in types {
        common = Some(match common {
            None => *t,
            Some(c) => {
                let nullable = c.nullable || t.nullable;
                let kind = match (c.kind, t.kind) {
                    (a, b) if a == b => a,
                    (Kind::Char(a) | Kind::Varchar(a), Kind::Char(b) | Kind::Varchar(b)) => {
                        Kind::Varchar(a.max(b))
                    }
                    _ if (c.is_exact_numeric() || c.is_approximate())
                        && (t.is_exact_numeric() || t.is_approximate()) =>
                    {
                        common_numeric(&c, t).kind
                    }
                    (Kind::Timestamp(a), Kind::Timestamp(b)) => Kind::Timestamp(a.max(b)),
                    _ => {
                        return Err(SqlError::Invalid(format!(
                            "no common type of {} and {}",
                            c.display(),
                            t.display()
                        )))
                    }
                };
                FlinkType {
                    kind,
                    nullable,
                    rowtime: false,
                }
            }
        });
    }
    Ok(common.map(|c| FlinkType {
        rowtime: false,
        ..c
    }))
}

/// The type two numbers are compared in.
fn common_numeric(a: &FlinkType, b: &FlinkType) -> FlinkType {
    let kind = if a.is_approximate() || b.is_approximate() {
        Kind::Double
    } else if a.is_integer() && b.is_integer() {
        if integer_rank(a.kind) >= integer_rank(b.kind) {
            a.kind
        } else {
            b.kind
        }
    } else {
        let (p1, s1) = a.as_decimal().unwrap_or((19, 0));
        let (p2, s2) = b.as_decimal().unwrap_or((19, 0));
        let s = s1.max(s2);
        let int = (p1 as i32 - s1 as i32).max(p2 as i32 - s2 as i32);
        let (p, s) = adjust((int + s as i32) as u32, s as u32);
        Kind::Decimal(p, s)
    };
    FlinkType::nullable(kind)
}

impl FlinkType {
    fn max_timestamp(&self, other: &FlinkType) -> FlinkType {
        match (self.kind, other.kind) {
            (Kind::Timestamp(a), Kind::Timestamp(b)) => {
                FlinkType::nullable(Kind::Timestamp(a.max(b)))
            }
            _ => *self,
        }
    }
}
