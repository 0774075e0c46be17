//! `agg(x) OVER (PARTITION BY ... ORDER BY rowtime ROWS|RANGE ...)` lowered to an OVER
//! aggregate ([`crate::over_agg`]), refused where Flink's planner refuses it, with Flink's
//! messages.

use super::{calc_over, column_expr, interval_literal_ms, is_wildcard, lower, partition_key};
use crate::aggregate::{AggCall, AggFunc};
use crate::changelog::ROW_KIND;
use crate::csv_source::ROW_WATERMARK;
use crate::error::{Result, SqlError};
use crate::over_agg::{OverFrame, OverSpec};
use crate::plan::{Node, ScopeColumn, StatementContext};
use crate::types::FlinkType;
use crate::typing::Typer;
use datafusion_common::ScalarValue;
use datafusion_expr::expr::{Alias, WindowFunction, WindowFunctionParams};
use datafusion_expr::logical_plan::Window;
use datafusion_expr::{
    Expr, LogicalPlan, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use std::sync::Arc;

/// Flink's message for OVER aggregates over different windows in one SELECT.
const ONE_WINDOW: &str =
    "All aggregates must be computed on the same window (Flink runs one OVER window per SELECT)";

/// The OVER aggregate of the window functions of `w`.
pub(super) fn lower_over(
    w: &Window,
    ctx: &StatementContext<'_>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    if matches!(w.input.as_ref(), LogicalPlan::Window(_)) {
        return Err(SqlError::Unsupported(ONE_WINDOW.into()));
    }
    let calls = window_calls(w)?;
    let Some(&(_, first)) = calls.first() else {
        return Err(SqlError::Invalid("an OVER window without functions".into()));
    };
    if calls.iter().any(|(_, p)| {
        p.partition_by != first.partition_by
            || p.order_by != first.order_by
            || p.window_frame != first.window_frame
    }) {
        return Err(SqlError::Unsupported(ONE_WINDOW.into()));
    }
    let (node, scope) = lower(&w.input, ctx)?;
    if scope.iter().any(|c| c.name == ROW_KIND) {
        return Err(SqlError::Unsupported(
            "an OVER aggregate over an updating input (Flink's OverAggregate takes insert-only input)"
                .into(),
        ));
    }
    let typer = Typer::new(scope.clone());
    // Partition keys, then the row's columns, then the arguments.
    let mut columns: Vec<(String, Expr, FlinkType)> = Vec::new();
    for (i, e) in first.partition_by.iter().enumerate() {
        columns.push(partition_key(&typer, e, i)?);
    }
    let keys = columns.len();
    let rowtime = keys + rowtime_of(first, &scope)?;
    let frame = frame_of(&first.window_frame)?;
    for c in &scope {
        columns.push((c.name.clone(), column_expr(c), c.ty));
    }
    let mut aggs = Vec::new();
    for (fun, params) in &calls {
        let (call, arg) = agg_call(fun, params, &typer, columns.len(), frame)?;
        if let Some((expr, ty)) = arg {
            columns.push((format!("$arg{}", aggs.len()), expr, ty));
        }
        aggs.push(call);
    }
    let watermark = scope
        .iter()
        .position(|c| c.name == ROW_WATERMARK)
        .map(|i| keys + i);
    // The row's columns (without the per-row watermark), then the aggregates by the names
    // the logical plan gives them.
    let input_width = w.input.schema().fields().len();
    let mut out_scope: Vec<ScopeColumn> = scope
        .iter()
        .filter(|c| c.name != ROW_WATERMARK)
        .cloned()
        .collect();
    for (j, call) in aggs.iter().enumerate() {
        out_scope.push(ScopeColumn {
            qualifier: None,
            name: w.schema.field(input_width + j).name().clone(),
            ty: call.result,
        });
    }
    let spec = OverSpec {
        keys,
        columns: scope.iter().map(|c| c.ty).collect(),
        rowtime,
        watermark,
        rows_advance_watermark: false,
        frame,
        aggs,
        output: out_scope.iter().map(|c| (c.name.clone(), c.ty)).collect(),
    };
    Ok((
        Node::OverAggregate {
            input: Box::new(calc_over(node, scope, columns)),
            spec: Arc::new(spec),
        },
        out_scope,
    ))
}

/// Each window function of `w` with its OVER clause.
fn window_calls(w: &Window) -> Result<Vec<(&WindowFunctionDefinition, &WindowFunctionParams)>> {
    w.window_expr
        .iter()
        .map(|e| {
            let inner = match e {
                Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
                other => other,
            };
            match inner {
                Expr::WindowFunction(wf) => {
                    let WindowFunction { fun, params } = wf.as_ref();
                    Ok((fun, params))
                }
                other => Err(SqlError::Unsupported(format!(
                    "the window expression {other}"
                ))),
            }
        })
        .collect()
}

/// The scope index of the ORDER BY column, which must be an ascending time attribute.
fn rowtime_of(params: &WindowFunctionParams, scope: &[ScopeColumn]) -> Result<usize> {
    let [sort] = params.order_by.as_slice() else {
        return Err(SqlError::Invalid(
            "an OVER window must be ordered by a single time attribute (ORDER BY rowtime)".into(),
        ));
    };
    if !sort.asc {
        return Err(SqlError::Invalid(
            "an OVER window can only be ordered in ASCENDING mode".into(),
        ));
    }
    let at = match &sort.expr {
        Expr::Column(c) => scope.iter().position(|s| s.matches(c)),
        _ => None,
    };
    match at {
        Some(i) if scope[i].ty.rowtime => Ok(i),
        _ => Err(SqlError::Unsupported(format!(
            "OVER windows' ordering in stream mode must be defined on a time attribute, not {}",
            sort.expr
        ))),
    }
}

/// The frame of an OVER clause: from UNBOUNDED or n PRECEDING to the current row.
fn frame_of(frame: &WindowFrame) -> Result<OverFrame> {
    if !matches!(frame.end_bound, WindowFrameBound::CurrentRow) {
        return Err(SqlError::Unsupported(
            "OVER windows that end after the current row (Flink: OVER RANGE FOLLOWING windows are not supported)"
                .into(),
        ));
    }
    let preceding = match &frame.start_bound {
        WindowFrameBound::Preceding(v) if v.is_null() => None,
        WindowFrameBound::Preceding(v) => Some(v),
        WindowFrameBound::CurrentRow => {
            return Ok(match frame.units {
                WindowFrameUnits::Range => OverFrame::Range(0),
                _ => OverFrame::Rows(0),
            })
        }
        WindowFrameBound::Following(_) => {
            return Err(SqlError::Invalid(
                "an OVER window that starts after the current row".into(),
            ))
        }
    };
    match (frame.units, preceding) {
        (WindowFrameUnits::Rows, None) => Ok(OverFrame::RowsUnbounded),
        (WindowFrameUnits::Range, None) => Ok(OverFrame::RangeUnbounded),
        (WindowFrameUnits::Rows, Some(v)) => row_count(v)
            .map(OverFrame::Rows)
            .ok_or_else(|| SqlError::Invalid(format!("ROWS {v} PRECEDING needs a row count"))),
        (WindowFrameUnits::Range, Some(v)) => match v {
            ScalarValue::Utf8(Some(text)) => crate::interval::interval_text_ms(text),
            other => interval_literal_ms(&Expr::Literal(other.clone(), None)),
        }
        .filter(|ms| *ms >= 0)
        .map(OverFrame::Range)
        .ok_or_else(|| {
            SqlError::Unsupported(format!(
                "RANGE {v} PRECEDING (a RANGE frame over a time attribute takes an INTERVAL)"
            ))
        }),
        (WindowFrameUnits::Groups, _) => Err(SqlError::Unsupported(
            "GROUPS frames (Flink has ROWS and RANGE)".into(),
        )),
    }
}

/// A non-negative integer literal.
fn row_count(v: &ScalarValue) -> Option<u64> {
    match v {
        ScalarValue::UInt64(Some(n)) => Some(*n),
        ScalarValue::UInt32(Some(n)) => Some(*n as u64),
        ScalarValue::Int64(Some(n)) => u64::try_from(*n).ok(),
        ScalarValue::Int32(Some(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The aggregate call of window function `fun`, its argument (if any) typed, to become
/// input column `arg_column`.
fn agg_call(
    fun: &WindowFunctionDefinition,
    params: &WindowFunctionParams,
    typer: &Typer,
    arg_column: usize,
    frame: OverFrame,
) -> Result<(AggCall, Option<(Expr, FlinkType)>)> {
    let WindowFunctionDefinition::AggregateUDF(udf) = fun else {
        return Err(SqlError::Unsupported(format!(
            "the window function {} outside a Top-N (Weir runs ROW_NUMBER() filtered by rn <= N, and aggregates OVER a window)",
            fun.name().to_ascii_uppercase()
        )));
    };
    if params.filter.is_some() {
        return Err(SqlError::Unsupported(format!(
            "FILTER in the OVER aggregate {}",
            udf.name().to_ascii_uppercase()
        )));
    }
    let name = udf.name();
    let arg = match params.args.as_slice() {
        [] => None,
        [Expr::Literal(v, _)] if name == "count" && !v.is_null() => None,
        [x] if name == "count" && is_wildcard(x) => None,
        [x] => Some(x),
        _ => {
            return Err(SqlError::Unsupported(format!(
                "the OVER aggregate {} with several arguments",
                name.to_ascii_uppercase()
            )))
        }
    };
    let func = AggFunc::by_name(name, params.distinct, arg.is_some())?;
    let arg = arg.map(|x| typer.typed(x)).transpose()?;
    let arg_type = arg.as_ref().map(|(_, t)| *t);
    let call = AggCall {
        func,
        arg: arg.as_ref().map(|_| arg_column),
        arg_type,
        result: func.result_type(arg_type.as_ref())?,
        retracts: frame.is_bounded(),
    };
    Ok((call, arg))
}
