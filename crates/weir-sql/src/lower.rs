//! DataFusion's logical plan lowered to Weir's operator tree ([`Node`]).
//!
//! Each logical operator becomes the operator that runs it with Flink's semantics: a scan
//! the table's source, filters and projections one `Calc` (consecutive ones merged), a
//! window TVF a window assigner, and `GROUP BY window_start, window_end, ...` over a window
//! TVF a window aggregate that assigns windows itself (so it can drop late rows), fed by a
//! `Calc` that computes its group keys and arguments and a batch exchange keyed by them.
//! Every expression is typed on the way ([`Typer`]): a column's type is the one Flink gives
//! it, and the lowered expression computes Flink's value.

use crate::aggregate::{AggCall, AggFunc};
use crate::changelog::ROW_KIND;
use crate::csv_source::ROW_WATERMARK;
use crate::error::{Result, SqlError};
use crate::group_agg::{GroupAggSpec, GroupColumn};
use crate::plan::{
    window_column_types, Node, Query, ScopeColumn, StatementContext, WINDOW_COLUMNS,
};
use crate::types::{FlinkType, Kind};
use crate::typing::Typer;
use crate::values::can_be_key;
use crate::window_agg::{OutputColumn, WindowAggSpec};
use datafusion_common::{Column, DFSchema};
use datafusion_expr::expr::{AggregateFunction, Alias};
use datafusion_expr::{Expr, LogicalPlan};
use std::sync::Arc;

/// An expression typed by Flink's rules, with its type.
type Typed = (Expr, FlinkType);

/// Lowers the logical plan of a SELECT.
pub(crate) fn lower_query(plan: &LogicalPlan, ctx: &StatementContext<'_>) -> Result<Query> {
    let (root, scope) = lower(plan, ctx)?;
    let columns = visible(&scope)
        .map(|c| (c.name.clone(), c.ty))
        .collect::<Vec<_>>();
    // The result holds the visible columns only (no per-row watermark).
    let root = match root {
        _ if !scope.iter().any(|c| c.name == ROW_WATERMARK) => root,
        Node::Calc {
            input,
            input_scope,
            filter,
            mut columns,
        } => {
            columns.retain(|(name, _, _)| name != ROW_WATERMARK);
            Node::Calc {
                input,
                input_scope,
                filter,
                columns,
            }
        }
        other => project_visible(other, scope),
    };
    Ok(Query {
        root,
        columns,
        logical_plan: String::new(),
    })
}

/// True for the columns that travel with the rows but no query names: the per-row
/// watermark and the row kind of an updating stream.
fn is_hidden(name: &str) -> bool {
    name == ROW_WATERMARK || name == ROW_KIND
}

/// The columns of `scope` a query may name.
fn visible(scope: &[ScopeColumn]) -> impl Iterator<Item = &ScopeColumn> {
    scope.iter().filter(|c| !is_hidden(&c.name))
}

fn column_expr(c: &ScopeColumn) -> Expr {
    Expr::Column(Column::new(c.qualifier.clone(), c.name.clone()))
}

/// A Calc that keeps the visible columns of `input` and its row kinds.
fn project_visible(input: Node, scope: Vec<ScopeColumn>) -> Node {
    let columns = scope
        .iter()
        .filter(|c| c.name != ROW_WATERMARK)
        .map(|c| (c.name.clone(), column_expr(c), c.ty))
        .collect();
    Node::Calc {
        input: Box::new(input),
        input_scope: scope,
        filter: None,
        columns,
    }
}

/// The operator tree of `plan` and the columns it outputs.
fn lower(plan: &LogicalPlan, ctx: &StatementContext<'_>) -> Result<(Node, Vec<ScopeColumn>)> {
    match plan {
        LogicalPlan::TableScan(scan) => scan_of(scan.table_name.table(), ctx),
        LogicalPlan::SubqueryAlias(a) => {
            let (node, mut scope) = lower(&a.input, ctx)?;
            for c in scope.iter_mut() {
                c.qualifier = Some(a.alias.table().to_string());
            }
            Ok((node, scope))
        }
        LogicalPlan::Filter(f) => {
            let (node, scope) = lower(&f.input, ctx)?;
            let (predicate, ty) = Typer::new(scope.clone()).typed(&f.predicate)?;
            if ty.kind != Kind::Boolean {
                return Err(SqlError::Invalid(format!(
                    "WHERE needs a BOOLEAN condition, not {}",
                    ty.display()
                )));
            }
            Ok(add_filter(node, scope, predicate))
        }
        LogicalPlan::Projection(p) => {
            let (node, scope) = lower(&p.input, ctx)?;
            // A filter right below merges into the projection's Calc.
            let (input, input_scope, filter) = match node {
                Node::Calc {
                    input,
                    input_scope,
                    filter,
                    columns,
                } if is_identity(&columns, &input_scope) => (*input, input_scope, filter),
                other => (other, scope, None),
            };
            let typer = Typer::new(input_scope.clone());
            let mut columns = Vec::with_capacity(p.expr.len());
            let mut out_scope = Vec::with_capacity(p.expr.len());
            for (i, e) in p.expr.iter().enumerate() {
                let (qualifier, field) = p.schema.qualified_field(i);
                let inner = match e {
                    Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
                    other => other,
                };
                let (expr, ty) = typer.typed(inner)?;
                columns.push((field.name().clone(), expr, ty));
                out_scope.push(ScopeColumn {
                    qualifier: qualifier.map(|q| q.table().to_string()),
                    name: field.name().clone(),
                    ty,
                });
            }
            // Keep the per-row watermark flowing to the operators that drop late rows,
            // and the row kinds of an updating stream.
            for w in input_scope.iter().filter(|c| is_hidden(&c.name)) {
                columns.push((w.name.clone(), column_expr(w), w.ty));
                out_scope.push(w.clone());
            }
            Ok((
                Node::Calc {
                    input: Box::new(input),
                    input_scope,
                    filter,
                    columns,
                },
                out_scope,
            ))
        }
        LogicalPlan::Aggregate(a) => lower_aggregate(a, ctx),
        LogicalPlan::Distinct(datafusion_expr::logical_plan::Distinct::All(input)) => {
            let (node, scope) = lower(input, ctx)?;
            lower_distinct(node, scope)
        }
        other => Err(SqlError::Unsupported(format!(
            "queries that plan to {} (Weir runs projections, filters, window TVFs and window aggregates so far)",
            other.display()
        ))),
    }
}

/// The source of table `name` (a window TVF's windowed table included).
fn scan_of(name: &str, ctx: &StatementContext<'_>) -> Result<(Node, Vec<ScopeColumn>)> {
    let window = ctx.window(name);
    let table_name = window.map_or(name, |w| w.table.as_str());
    let table = ctx
        .catalog
        .table(table_name)
        .ok_or_else(|| SqlError::Invalid(format!("table '{table_name}' does not exist")))?
        .clone();
    let mut scope: Vec<ScopeColumn> = table
        .columns
        .iter()
        .map(|c| ScopeColumn {
            qualifier: Some(name.to_string()),
            name: c.name.clone(),
            ty: c.ty,
        })
        .collect();
    if table.watermark.is_some() {
        scope.push(ScopeColumn {
            qualifier: None,
            name: ROW_WATERMARK.to_string(),
            ty: FlinkType::not_null(Kind::BigInt),
        });
    }
    let scan = Node::Scan {
        table: table.clone(),
    };
    let Some(window) = window else {
        return Ok((scan, scope));
    };
    let rowtime = table
        .watermark
        .as_ref()
        .map(|w| w.column)
        .filter(|&c| table.columns[c].name == window.time_column)
        .ok_or_else(|| {
            SqlError::Invalid(format!(
                "{}: DESCRIPTOR({}) must name the time attribute of table '{}' (a column with a WATERMARK)",
                window.kind.name(),
                window.time_column,
                table.name
            ))
        })?;
    if !matches!(table.columns[rowtime].ty.kind, Kind::Timestamp(p) if p <= 3) {
        return Err(SqlError::Unsupported(format!(
            "a time attribute of type {} (TIMESTAMP(3) is)",
            table.columns[rowtime].ty.display()
        )));
    }
    for (n, t) in WINDOW_COLUMNS.iter().zip(window_column_types()) {
        scope.push(ScopeColumn {
            qualifier: Some(name.to_string()),
            name: n.to_string(),
            ty: t,
        });
    }
    Ok((
        Node::WindowTvf {
            input: Box::new(scan),
            kind: window.kind,
            rowtime,
        },
        scope,
    ))
}

/// `node` with rows that fail `predicate` dropped.
fn add_filter(node: Node, scope: Vec<ScopeColumn>, predicate: Expr) -> (Node, Vec<ScopeColumn>) {
    match node {
        Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        } if is_identity(&columns, &input_scope) => {
            let filter = Some(match filter {
                Some(f) => f.and(predicate),
                None => predicate,
            });
            (
                Node::Calc {
                    input,
                    input_scope,
                    filter,
                    columns,
                },
                scope,
            )
        }
        other => {
            let columns = scope
                .iter()
                .map(|c| (c.name.clone(), column_expr(c), c.ty))
                .collect();
            (
                Node::Calc {
                    input: Box::new(other),
                    input_scope: scope.clone(),
                    filter: Some(predicate),
                    columns,
                },
                scope,
            )
        }
    }
}

/// True if `columns` are the columns of `scope`, in order (a Calc that only filters).
fn is_identity(columns: &[(String, Expr, FlinkType)], scope: &[ScopeColumn]) -> bool {
    columns.len() == scope.len()
        && columns
            .iter()
            .zip(scope)
            .all(|((_, e, _), c)| matches!(e, Expr::Column(col) if c.matches(col)))
}

/// `GROUP BY`: a window aggregate over a window TVF grouped by its window, a group
/// aggregate otherwise.
fn lower_aggregate(
    a: &datafusion_expr::logical_plan::Aggregate,
    ctx: &StatementContext<'_>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let (node, scope) = lower(&a.input, ctx)?;
    match node {
        Node::WindowTvf { .. } => lower_window_aggregate(a, node, None, scope),
        Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        } if is_identity(&columns, &input_scope) && matches!(*input, Node::WindowTvf { .. }) => {
            lower_window_aggregate(a, *input, filter, scope)
        }
        other => lower_group_aggregate(a, other, scope),
    }
}

/// The aggregate calls of `a` typed over `typer`'s scope, with their arguments, which
/// become input columns from `first_column` on.
fn aggregate_calls(
    a: &datafusion_expr::logical_plan::Aggregate,
    typer: &Typer,
    first_column: usize,
    retracts: bool,
    names_window: &dyn Fn(&Expr) -> bool,
) -> Result<(Vec<Typed>, Vec<AggCall>)> {
    let mut args: Vec<Typed> = Vec::new();
    let mut calls = Vec::new();
    for e in &a.aggr_expr {
        let inner = match e {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Err(SqlError::Unsupported(format!("the aggregate {e}")));
        };
        if params.filter.is_some() || !params.order_by.is_empty() {
            return Err(SqlError::Unsupported(format!(
                "FILTER or ORDER BY in the aggregate {e}"
            )));
        }
        // COUNT(*) reaches here as COUNT of a literal.
        let arg = match params.args.as_slice() {
            [] => None,
            [Expr::Literal(v, _)] if func.name() == "count" && !v.is_null() => None,
            [x] if func.name() == "count" && is_wildcard(x) => None,
            [x] => Some(x),
            _ => {
                return Err(SqlError::Unsupported(format!(
                    "the aggregate {e} with several arguments"
                )))
            }
        };
        let f = AggFunc::by_name(func.name(), params.distinct, arg.is_some())?;
        let (arg_column, arg_type) = match arg {
            Some(x) => {
                if names_window(x) {
                    return Err(SqlError::Unsupported(format!(
                        "an aggregate of a window column ({e})"
                    )));
                }
                let (expr, ty) = typer.typed(x)?;
                args.push((expr, ty));
                (Some(first_column + args.len() - 1), Some(ty))
            }
            None => (None, None),
        };
        calls.push(AggCall {
            func: f,
            arg: arg_column,
            arg_type,
            result: f.result_type(arg_type.as_ref())?,
            retracts,
        });
    }
    Ok((args, calls))
}

/// True for the `*` of `COUNT(*)`: DataFusion's SQL planner leaves it as a wildcard
/// argument (its analyzer, which Weir does not run, would rewrite it).
#[allow(deprecated)]
fn is_wildcard(e: &Expr) -> bool {
    matches!(e, Expr::Wildcard { .. })
}

/// Typed group keys that are not window columns; each must be able to key state.
fn group_key(typer: &Typer, e: &Expr) -> Result<(Expr, FlinkType)> {
    let (expr, ty) = typer.typed(e)?;
    if !can_be_key(&ty) {
        return Err(SqlError::Unsupported(format!(
            "a group key of type {} (keys are integers, booleans and strings so far)",
            ty.display()
        )));
    }
    Ok((expr, ty))
}

/// A Calc computing `columns` over `node`, merged with a Calc below that only filters.
fn calc_over(node: Node, scope: Vec<ScopeColumn>, columns: Vec<(String, Expr, FlinkType)>) -> Node {
    match node {
        Node::Calc {
            input,
            input_scope,
            filter,
            columns: below,
        } if is_identity(&below, &input_scope) => Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        },
        other => Node::Calc {
            input: Box::new(other),
            input_scope: scope,
            filter: None,
            columns,
        },
    }
}

/// The aggregate's output columns and scope: its schema's columns (group columns, then
/// aggregates), typed.
fn aggregate_output<C: Copy>(
    a: &datafusion_expr::logical_plan::Aggregate,
    columns: impl Iterator<Item = (C, FlinkType)>,
) -> (Vec<(String, C, FlinkType)>, Vec<ScopeColumn>) {
    let schema: &DFSchema = a.schema.as_ref();
    let mut output = Vec::new();
    let mut scope = Vec::new();
    for (i, (c, ty)) in columns.enumerate() {
        let (qualifier, field) = schema.qualified_field(i);
        output.push((field.name().clone(), c, ty));
        scope.push(ScopeColumn {
            qualifier: qualifier.map(|q| q.table().to_string()),
            name: field.name().clone(),
            ty,
        });
    }
    (output, scope)
}

/// `GROUP BY` without a window: an updating result.
fn lower_group_aggregate(
    a: &datafusion_expr::logical_plan::Aggregate,
    node: Node,
    scope: Vec<ScopeColumn>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let typer = Typer::new(scope.clone());
    let keys = a
        .group_expr
        .iter()
        .map(|e| group_key(&typer, e))
        .collect::<Result<Vec<_>>>()?;
    let row_kind = scope.iter().find(|c| c.name == ROW_KIND).cloned();
    let (args, calls) = aggregate_calls(a, &typer, keys.len(), row_kind.is_some(), &|_| false)?;
    let mut columns: Vec<(String, Expr, FlinkType)> = Vec::new();
    for (i, (e, t)) in keys.iter().enumerate() {
        columns.push((format!("$key{i}"), e.clone(), *t));
    }
    for (i, (e, t)) in args.iter().enumerate() {
        columns.push((format!("$arg{i}"), e.clone(), *t));
    }
    if let Some(k) = &row_kind {
        columns.push((k.name.clone(), column_expr(k), k.ty));
    }
    let pre = calc_over(node, scope, columns);
    let (output, out_scope) = aggregate_output(
        a,
        keys.iter()
            .enumerate()
            .map(|(i, (_, t))| (GroupColumn::Key(i), *t))
            .chain(
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (GroupColumn::Agg(i), c.result)),
            ),
    );
    let spec = GroupAggSpec {
        keys: keys.len(),
        aggs: calls,
        output,
    };
    Ok(group_aggregate(pre, spec, out_scope))
}

/// A group aggregate node over `pre`; its output, `scope`, gains the row kind.
fn group_aggregate(
    pre: Node,
    spec: GroupAggSpec,
    mut scope: Vec<ScopeColumn>,
) -> (Node, Vec<ScopeColumn>) {
    scope.push(ScopeColumn {
        qualifier: None,
        name: ROW_KIND.to_string(),
        ty: FlinkType::not_null(Kind::TinyInt),
    });
    (
        Node::GroupAggregate {
            input: Box::new(pre),
            spec: Arc::new(spec),
        },
        scope,
    )
}

/// `SELECT DISTINCT`: a group aggregate keyed by every column, with no aggregates.
fn lower_distinct(node: Node, scope: Vec<ScopeColumn>) -> Result<(Node, Vec<ScopeColumn>)> {
    let keys: Vec<ScopeColumn> = visible(&scope).cloned().collect();
    for k in &keys {
        if !can_be_key(&k.ty) {
            return Err(SqlError::Unsupported(format!(
                "SELECT DISTINCT of a {} column (keys are integers, booleans and strings so far)",
                k.ty.display()
            )));
        }
    }
    let mut columns: Vec<(String, Expr, FlinkType)> = keys
        .iter()
        .map(|k| (k.name.clone(), column_expr(k), k.ty))
        .collect();
    if let Some(k) = scope.iter().find(|c| c.name == ROW_KIND) {
        columns.push((k.name.clone(), column_expr(k), k.ty));
    }
    let spec = GroupAggSpec {
        keys: keys.len(),
        aggs: Vec::new(),
        output: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name.clone(), GroupColumn::Key(i), k.ty))
            .collect(),
    };
    Ok(group_aggregate(calc_over(node, scope, columns), spec, keys))
}

/// `GROUP BY window_start, window_end, ...` over the window TVF `tvf`, with the rows
/// passing `filter`.
fn lower_window_aggregate(
    a: &datafusion_expr::logical_plan::Aggregate,
    tvf: Node,
    filter: Option<Expr>,
    scope: Vec<ScopeColumn>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let Node::WindowTvf {
        input: scan,
        kind,
        rowtime,
    } = tvf
    else {
        return Err(SqlError::Unsupported("an aggregate of this input".into()));
    };
    let typer = Typer::new(scope.clone());
    let window_column = |e: &Expr| -> Option<OutputColumn> {
        let Expr::Column(c) = e else { return None };
        let i = scope.iter().position(|s| s.matches(c))?;
        // The window columns are the scope's last three.
        match scope.len() - i {
            3 => Some(OutputColumn::WindowStart),
            2 => Some(OutputColumn::WindowEnd),
            1 => Some(OutputColumn::WindowTime),
            _ => None,
        }
    };
    let names_window = |e: &Expr| -> bool {
        e.column_refs().iter().any(|c| {
            scope
                .iter()
                .position(|s| s.matches(c))
                .is_some_and(|i| i + 3 >= scope.len())
        })
    };
    // Group keys: the window's columns, and key expressions over the table's columns.
    let mut keys: Vec<(Expr, FlinkType)> = Vec::new();
    let mut group_columns = Vec::new();
    for e in &a.group_expr {
        if let Some(w) = window_column(e) {
            group_columns.push(w);
            continue;
        }
        if names_window(e) {
            return Err(SqlError::Unsupported(format!(
                "the group key {e} (window columns group as they are)"
            )));
        }
        group_columns.push(OutputColumn::Key(keys.len()));
        keys.push(group_key(&typer, e)?);
    }
    let grouped = |c: OutputColumn| group_columns.contains(&c);
    if !(grouped(OutputColumn::WindowStart) && grouped(OutputColumn::WindowEnd)) {
        return Err(SqlError::Unsupported(
            "a window aggregate not grouped by both window_start and window_end".into(),
        ));
    }
    if scope.iter().any(|c| c.name == ROW_KIND) {
        return Err(SqlError::Unsupported(
            "a window aggregate over an updating input".into(),
        ));
    }
    let (args, calls) = aggregate_calls(a, &typer, keys.len(), false, &names_window)?;
    // The Calc before the exchange: keys, arguments, rowtime, per-row watermark.
    let base_scope: Vec<ScopeColumn> = scope[..scope.len() - 3].to_vec();
    if let Some(f) = &filter {
        if names_window(f) {
            return Err(SqlError::Unsupported(
                "a WHERE on window columns before a window aggregate".into(),
            ));
        }
    }
    let mut columns: Vec<(String, Expr, FlinkType)> = Vec::new();
    for (i, (e, t)) in keys.iter().enumerate() {
        columns.push((format!("$key{i}"), e.clone(), *t));
    }
    for (i, (e, t)) in args.iter().enumerate() {
        columns.push((format!("$arg{i}"), e.clone(), *t));
    }
    let time = &base_scope[rowtime];
    columns.push((time.name.clone(), column_expr(time), time.ty));
    let watermark = base_scope.iter().find(|c| c.name == ROW_WATERMARK).cloned();
    if let Some(w) = &watermark {
        columns.push((w.name.clone(), column_expr(w), w.ty));
    }
    let width = keys.len() + args.len();
    let pre = Node::Calc {
        input: scan,
        input_scope: base_scope,
        filter,
        columns,
    };
    let window_types = window_column_types();
    let (output, out_scope) = aggregate_output(
        a,
        group_columns
            .iter()
            .copied()
            .chain((0..calls.len()).map(OutputColumn::Agg))
            .map(|c| {
                let ty = match c {
                    OutputColumn::Key(k) => keys[k].1,
                    OutputColumn::WindowStart => window_types[0],
                    OutputColumn::WindowEnd => window_types[1],
                    OutputColumn::WindowTime => window_types[2],
                    OutputColumn::Agg(j) => calls[j].result,
                };
                (c, ty)
            }),
    );
    let spec = WindowAggSpec {
        window: kind,
        keys: keys.len(),
        rowtime: width,
        watermark: watermark.map(|_| width + 1),
        aggs: calls,
        output,
    };
    Ok((
        Node::WindowAggregate {
            input: Box::new(pre),
            spec: Arc::new(spec),
        },
        out_scope,
    ))
}
