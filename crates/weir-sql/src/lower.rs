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
use crate::join::{JoinKind, JoinSpec};
use crate::plan::{
    window_column_types, Node, Query, ScopeColumn, StatementContext, WINDOW_COLUMNS,
};
use crate::types::{FlinkType, Kind};
use crate::typing::Typer;
use crate::values::can_be_key;
use crate::window_agg::{OutputColumn, WindowAggSpec};
use datafusion_common::JoinType;
use datafusion_common::{Column, DFSchema};
use datafusion_expr::expr::{AggregateFunction, Alias};
use datafusion_expr::utils::split_conjunction;
use datafusion_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use std::sync::Arc;

mod over;

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
    let mut root = root;
    crate::prune::prune_scans(&mut root);
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

/// A reference to `c` (its qualifier taken as it is: not parsed, so case stays).
fn column_expr(c: &ScopeColumn) -> Expr {
    Expr::Column(Column::new(
        c.qualifier
            .as_deref()
            .map(datafusion_common::TableReference::bare),
        c.name.clone(),
    ))
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
        LogicalPlan::TableScan(scan) => match scan.source.get_logical_plan() {
            // A view: its query, its columns qualified by the view's name.
            Some(view) => {
                let (node, scope) = lower(&view, ctx)?;
                Ok((node, requalify(scope, scan.table_name.table())))
            }
            None => scan_of(scan.table_name.table(), ctx),
        },
        LogicalPlan::Union(u) => lower_union(u, ctx),
        LogicalPlan::SubqueryAlias(a) => {
            let (node, scope) = lower(&a.input, ctx)?;
            Ok((node, requalify(scope, a.alias.table())))
        }
        LogicalPlan::Filter(f) => {
            if let Some(rank) = lower_rank(f, ctx)? {
                return Ok(rank);
            }
            // A WHERE over a comma join (`FROM a, b WHERE a.k = b.k AND ...`) is its ON.
            if let LogicalPlan::Join(j) = f.input.as_ref() {
                if j.join_type == JoinType::Inner {
                    return lower_join(j, Some(&f.predicate), ctx);
                }
            }
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
                } if is_identity(&columns, &input_scope, &scope) => (*input, input_scope, filter),
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
        LogicalPlan::Window(w) => over::lower_over(w, ctx),
        LogicalPlan::Join(j) => lower_join(j, None, ctx),
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

/// `scope`'s visible columns qualified by `name` (a view's or alias's).
fn requalify(mut scope: Vec<ScopeColumn>, name: &str) -> Vec<ScopeColumn> {
    for c in scope.iter_mut().filter(|c| !is_hidden(&c.name)) {
        c.qualifier = Some(name.to_string());
    }
    scope
}

/// A window TVF over the view `view` (its plan), named `name`.
fn window_over_view(
    name: &str,
    view: &LogicalPlan,
    window: &crate::window_tvf::WindowTvf,
    ctx: &StatementContext<'_>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let (node, scope) = lower(view, ctx)?;
    let scope = requalify(scope, name);
    let rowtime = scope
        .iter()
        .position(|c| c.name == window.time_column && c.ty.rowtime)
        .ok_or_else(|| {
            SqlError::Invalid(format!(
                "{}: DESCRIPTOR({}) must name a time attribute of view '{}'",
                window.kind.name(),
                window.time_column,
                window.table
            ))
        })?;
    Ok(window_tvf(node, scope, name, window, rowtime))
}

/// The window TVF `window` (named `name`) over `input`: its scope gains the window's
/// columns.
fn window_tvf(
    input: Node,
    mut scope: Vec<ScopeColumn>,
    name: &str,
    window: &crate::window_tvf::WindowTvf,
    rowtime: usize,
) -> (Node, Vec<ScopeColumn>) {
    for (n, t) in WINDOW_COLUMNS.iter().zip(window_column_types()) {
        scope.push(ScopeColumn {
            qualifier: Some(name.to_string()),
            name: n.to_string(),
            ty: t,
        });
    }
    (
        Node::WindowTvf {
            input: Box::new(input),
            kind: window.kind,
            rowtime,
            partition_by: window.partition_by.clone(),
        },
        scope,
    )
}

/// The source of table `name` (a window TVF's windowed table included).
fn scan_of(name: &str, ctx: &StatementContext<'_>) -> Result<(Node, Vec<ScopeColumn>)> {
    let window = ctx.window(name);
    let table_name = window.map_or(name, |w| w.table.as_str());
    if let Some(w) = window {
        if let Some(view) = ctx.view(table_name)? {
            return window_over_view(name, &view, w, ctx);
        }
    }
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
        projection: (0..table.columns.len()).collect(),
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
    // The catalog refuses time attributes finer than milliseconds.
    Ok(window_tvf(scan, scope, name, window, rowtime))
}

/// `node` with rows that fail `predicate` dropped.
fn add_filter(node: Node, scope: Vec<ScopeColumn>, predicate: Expr) -> (Node, Vec<ScopeColumn>) {
    match node {
        Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        } if is_identity(&columns, &input_scope, &scope) => {
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

/// True if a Calc over `input_scope` computing `columns` only filters: its columns are
/// its input's, in order, and its output is still known by the same names (`scope`: no
/// alias renamed it since), so another Calc can take its place.
fn is_identity(
    columns: &[(String, Expr, FlinkType)],
    input_scope: &[ScopeColumn],
    scope: &[ScopeColumn],
) -> bool {
    columns.len() == input_scope.len()
        && columns
            .iter()
            .zip(input_scope)
            .all(|((_, e, _), c)| matches!(e, Expr::Column(col) if c.matches(col)))
        && input_scope.len() == scope.len()
        && input_scope
            .iter()
            .zip(scope)
            .all(|(a, b)| a.qualifier == b.qualifier && a.name == b.name)
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
        } if is_identity(&columns, &input_scope, &scope)
            && matches!(*input, Node::WindowTvf { .. }) =>
        {
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
        } if is_identity(&below, &input_scope, &scope) => Node::Calc {
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
        state_ttl: None,
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
        state_ttl: None,
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
        partition_by,
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
    // Sessions are kept per group: the group must be the session's partition (or finer).
    for p in &partition_by {
        let grouped = a
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::Column(c) if c.name == *p));
        if !grouped {
            return Err(SqlError::Unsupported(format!(
                "a SESSION aggregate not grouped by its partition column {p}"
            )));
        }
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
        key_types: keys.iter().map(|(_, t)| *t).collect(),
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

/// True if every column `e` names is in `scope` (and it names one).
fn only_in(e: &Expr, scope: &[ScopeColumn]) -> bool {
    let refs = e.column_refs();
    !refs.is_empty() && refs.iter().all(|c| scope.iter().any(|s| s.matches(c)))
}

/// Two join keys typed alike, so equal values hash alike on both sides: integers as
/// BIGINT, times (precision 3 and below) as their epoch milliseconds, strings as they are.
fn join_keys(l: Typed, r: Typed) -> Result<(Typed, Typed)> {
    let (le, lt) = l;
    let (re, rt) = r;
    if lt.is_integer() && rt.is_integer() {
        let bigint = |e: Expr, t: FlinkType| {
            let to = FlinkType {
                kind: Kind::BigInt,
                nullable: t.nullable,
                rowtime: false,
            };
            (crate::typing::cast(e, &to), to)
        };
        return Ok((bigint(le, lt), bigint(re, rt)));
    }
    // Times join by their epoch value (milliseconds at precision 3 and below).
    if let (Kind::Timestamp(lp), Kind::Timestamp(rp)) = (lt.kind, rt.kind) {
        if lp <= 3 && rp <= 3 {
            let epoch = |e: Expr, t: FlinkType| {
                let to = FlinkType {
                    kind: Kind::BigInt,
                    nullable: t.nullable,
                    rowtime: false,
                };
                (
                    Expr::Cast(datafusion_expr::expr::Cast::new(
                        Box::new(e),
                        arrow_schema::DataType::Int64,
                    )),
                    to,
                )
            };
            return Ok((epoch(le, lt), epoch(re, rt)));
        }
    }
    if (lt.is_string() && rt.is_string()) || lt.kind == rt.kind {
        if !can_be_key(&lt) {
            return Err(SqlError::Unsupported(format!(
                "a join key of type {} (keys are integers, booleans and strings so far)",
                lt.display()
            )));
        }
        return Ok(((le, lt), (re, rt)));
    }
    Err(SqlError::Invalid(format!(
        "a join condition compares {} with {}",
        lt.display(),
        rt.display()
    )))
}

/// A regular join, its condition from ON (and the WHERE of a comma join, `filter`).
fn lower_join(
    j: &datafusion_expr::logical_plan::Join,
    filter: Option<&Expr>,
    ctx: &StatementContext<'_>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let kind = match j.join_type {
        JoinType::Inner => JoinKind::Inner,
        JoinType::Left => JoinKind::Left,
        JoinType::Right => JoinKind::Right,
        JoinType::Full => JoinKind::Full,
        other => {
            return Err(SqlError::Unsupported(format!(
                "{other} joins (Weir runs inner, left, right and full outer joins)"
            )))
        }
    };
    let (ln, ls) = lower(&j.left, ctx)?;
    let (rn, rs) = lower(&j.right, ctx)?;
    let lv: Vec<ScopeColumn> = visible(&ls).cloned().collect();
    let rv: Vec<ScopeColumn> = visible(&rs).cloned().collect();
    // The condition: equalities between the sides are the key, the rest is residual.
    let mut conditions: Vec<Expr> = j.on.iter().map(|(l, r)| l.clone().eq(r.clone())).collect();
    for e in j.filter.iter().chain(filter) {
        conditions.extend(split_conjunction(e).into_iter().cloned());
    }
    let (lt, rt) = (Typer::new(lv.clone()), Typer::new(rv.clone()));
    let mut keys: Vec<(Typed, Typed)> = Vec::new();
    let mut residual: Vec<Expr> = Vec::new();
    for c in conditions {
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = &c
        {
            let pair = if only_in(left, &lv) && only_in(right, &rv) {
                Some((left, right))
            } else if only_in(left, &rv) && only_in(right, &lv) {
                Some((right, left))
            } else {
                None
            };
            if let Some((l, r)) = pair {
                keys.push(join_keys(lt.typed(l)?, rt.typed(r)?)?);
                continue;
            }
        }
        residual.push(c);
    }
    if keys.is_empty() {
        return Err(SqlError::Unsupported(
            "a join without an equality between the two sides (Weir runs equi-joins)".into(),
        ));
    }
    // The joined row's columns, for the residual condition and the output.
    let nullable = |c: &ScopeColumn, padded: bool| ScopeColumn {
        ty: FlinkType {
            nullable: c.ty.nullable || padded,
            ..c.ty
        },
        ..c.clone()
    };
    let mut out_scope: Vec<ScopeColumn> = lv
        .iter()
        .map(|c| nullable(c, kind.keeps(1)))
        .chain(rv.iter().map(|c| nullable(c, kind.keeps(0))))
        .collect();
    let joined_typer = Typer::new(lv.iter().chain(&rv).cloned().collect());
    let residual_conditions = residual.clone();
    let residual = residual
        .into_iter()
        .map(|e| {
            let (x, t) = joined_typer.typed(&e)?;
            if t.kind != Kind::Boolean {
                return Err(SqlError::Invalid(format!(
                    "a join condition must be BOOLEAN, not {}",
                    t.display()
                )));
            }
            Ok(x)
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .reduce(Expr::and);
    // Each side: its key columns, its own columns, its row kinds.
    let side = |node: Node, scope: Vec<ScopeColumn>, own: &[ScopeColumn], keys: Vec<Typed>| {
        let mut columns: Vec<(String, Expr, FlinkType)> = keys
            .into_iter()
            .enumerate()
            .map(|(i, (e, t))| (format!("$key{i}"), e, t))
            .collect();
        columns.extend(own.iter().map(|c| (c.name.clone(), column_expr(c), c.ty)));
        let row_kind = scope.iter().find(|c| c.name == ROW_KIND).cloned();
        if let Some(k) = &row_kind {
            columns.push((k.name.clone(), column_expr(k), k.ty));
        }
        (calc_over(node, scope, columns), row_kind.is_some())
    };
    let (left_keys, right_keys): (Vec<Typed>, Vec<Typed>) = keys.into_iter().unzip();
    let key_count = left_keys.len();
    let (left, left_updating) = side(ln, ls, &lv, left_keys);
    let (right, right_updating) = side(rn, rs, &rv, right_keys);
    // An interval join (both sides' time attributes bounded against each other) emits its
    // padded rows once, when they expire: its output is append-only.
    let interval = if left_updating || right_updating {
        None
    } else {
        interval_bounds(&residual_conditions, &lv, &rv)
    };
    let emits_kinds =
        (kind != JoinKind::Inner && interval.is_none()) || left_updating || right_updating;
    let output: Vec<(String, FlinkType)> =
        out_scope.iter().map(|c| (c.name.clone(), c.ty)).collect();
    let spec = JoinSpec {
        kind,
        keys: key_count,
        sides: [
            lv.iter().map(|c| c.ty).collect(),
            rv.iter().map(|c| c.ty).collect(),
        ],
        updating: [left_updating, right_updating],
        output,
        emits_kinds,
        interval,
        state_ttl: None,
    };
    let residual_scope: Vec<ScopeColumn> = lv.iter().chain(&rv).cloned().collect();
    if emits_kinds {
        out_scope.push(ScopeColumn {
            qualifier: None,
            name: ROW_KIND.to_string(),
            ty: FlinkType::not_null(Kind::TinyInt),
        });
    }
    Ok((
        Node::Join {
            left: Box::new(left),
            right: Box::new(right),
            spec: Arc::new(spec),
            residual,
            residual_scope,
        },
        out_scope,
    ))
}

/// UNION ALL: every input's visible columns cast to the common types (Flink's: strings of
/// different lengths become VARCHAR of the longest), with row kinds if any input updates.
fn lower_union(
    u: &datafusion_expr::logical_plan::Union,
    ctx: &StatementContext<'_>,
) -> Result<(Node, Vec<ScopeColumn>)> {
    let lowered = u
        .inputs
        .iter()
        .map(|i| lower(i, ctx))
        .collect::<Result<Vec<_>>>()?;
    let width = u.schema.fields().len();
    let mut types = Vec::with_capacity(width);
    for i in 0..width {
        let column: Vec<FlinkType> = lowered
            .iter()
            .map(|(_, scope)| {
                visible(scope)
                    .nth(i)
                    .map(|c| c.ty)
                    .ok_or_else(|| SqlError::Invalid("UNION ALL inputs of different widths".into()))
            })
            .collect::<Result<_>>()?;
        let mut common = crate::typing::common_type(column.iter())?
            .ok_or_else(|| SqlError::Invalid("UNION ALL of nothing".into()))?;
        common.rowtime = column.iter().all(|t| t.rowtime);
        types.push(common);
    }
    let updating = lowered
        .iter()
        .any(|(_, scope)| scope.iter().any(|c| c.name == ROW_KIND));
    let row_kind = FlinkType::not_null(Kind::TinyInt);
    let mut inputs = Vec::with_capacity(lowered.len());
    for (node, scope) in lowered {
        let mut columns: Vec<(String, Expr, FlinkType)> = visible(&scope)
            .zip(&types)
            .map(|(c, t)| {
                let e = if c.ty.kind == t.kind {
                    column_expr(c)
                } else {
                    crate::typing::cast(column_expr(c), t)
                };
                (c.name.clone(), e, *t)
            })
            .collect();
        if updating {
            let kind = match scope.iter().find(|c| c.name == ROW_KIND) {
                Some(k) => column_expr(k),
                None => Expr::Literal(
                    datafusion_common::ScalarValue::Int8(Some(
                        crate::changelog::RowKind::Insert as i8,
                    )),
                    None,
                ),
            };
            columns.push((ROW_KIND.to_string(), kind, row_kind));
        }
        inputs.push(Node::Calc {
            input: Box::new(node),
            input_scope: scope,
            filter: None,
            columns,
        });
    }
    let mut scope: Vec<ScopeColumn> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (qualifier, field) = u.schema.qualified_field(i);
            ScopeColumn {
                qualifier: qualifier.map(|q| q.table().to_string()),
                name: field.name().clone(),
                ty: *t,
            }
        })
        .collect();
    if updating {
        scope.push(ScopeColumn {
            qualifier: None,
            name: ROW_KIND.to_string(),
            ty: row_kind,
        });
    }
    Ok((Node::Union { inputs }, scope))
}

/// `WHERE rn <= N` (or `rn < N`, `rn = 1`) over `ROW_NUMBER() OVER (PARTITION BY ... ORDER
/// BY ...) AS rn`: a Top-N. `None` if the filter is not one.
fn lower_rank(
    f: &datafusion_expr::logical_plan::Filter,
    ctx: &StatementContext<'_>,
) -> Result<Option<(Node, Vec<ScopeColumn>)>> {
    use datafusion_expr::expr::{WindowFunction, WindowFunctionParams};
    let mut input = f.input.as_ref();
    let mut alias = None;
    if let LogicalPlan::SubqueryAlias(a) = input {
        alias = Some(a.alias.table().to_string());
        input = a.input.as_ref();
    }
    let LogicalPlan::Projection(p) = input else {
        return Ok(None);
    };
    let LogicalPlan::Window(w) = p.input.as_ref() else {
        return Ok(None);
    };
    let [Expr::WindowFunction(wf)] = w.window_expr.as_slice() else {
        return Ok(None);
    };
    let WindowFunction {
        fun,
        params:
            WindowFunctionParams {
                partition_by,
                order_by,
                args,
                ..
            },
    } = wf.as_ref();
    if fun.name() != "row_number" || !args.is_empty() {
        return Ok(None);
    }
    // The window function's column, and which projected column names it.
    let rn_name = w.schema.field(w.schema.fields().len() - 1).name().clone();
    let projects_rn = |e: &Expr| {
        let inner = match e {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        matches!(inner, Expr::Column(c) if c.name == rn_name)
    };
    let Some(rn_at) = p.expr.iter().position(projects_rn) else {
        return Ok(None);
    };
    let rn_column = p.schema.field(rn_at).name().clone();
    // The limit.
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &f.predicate else {
        return Ok(None);
    };
    let (Expr::Column(c), Expr::Literal(v, _)) = (left.as_ref(), right.as_ref()) else {
        return Ok(None);
    };
    if c.name != rn_column {
        return Ok(None);
    }
    let n = match v {
        datafusion_common::ScalarValue::Int64(Some(n)) => *n,
        datafusion_common::ScalarValue::Int32(Some(n)) => *n as i64,
        _ => return Ok(None),
    };
    let limit = match op {
        Operator::LtEq => n,
        Operator::Lt => n - 1,
        Operator::Eq if n == 1 => 1,
        _ => {
            return Err(SqlError::Unsupported(
                "a filter on ROW_NUMBER() other than rn <= N, rn < N or rn = 1".into(),
            ))
        }
    };
    if limit < 1 {
        return Err(SqlError::Invalid(format!(
            "a Top-N of {limit} rows keeps nothing"
        )));
    }
    let (node, scope) = lower(&w.input, ctx)?;
    let typer = Typer::new(scope.clone());
    let mut columns: Vec<(String, Expr, FlinkType)> = Vec::new();
    for (i, e) in partition_by.iter().enumerate() {
        columns.push(partition_key(&typer, e, i)?);
    }
    let keys = columns.len();
    let newer_first = limit == 1
        && order_by.len() == 1
        && !order_by[0].asc
        && matches!(&order_by[0].expr, Expr::Column(c) if scope.iter().any(|s| s.matches(c) && s.ty.rowtime));
    let mut sort = Vec::new();
    for (i, s) in order_by.iter().enumerate() {
        let (x, t) = typer.typed(&s.expr)?;
        columns.push((format!("$sort{i}"), x, t));
        sort.push(crate::rank::SortKey {
            asc: s.asc,
            nulls_first: s.nulls_first,
        });
    }
    let mut row_types = Vec::new();
    let mut output = Vec::new();
    let mut out_scope = Vec::new();
    for (i, e) in p.expr.iter().enumerate() {
        let (qualifier, field) = p.schema.qualified_field(i);
        let ty = if i == rn_at {
            FlinkType::not_null(Kind::BigInt)
        } else {
            let inner = match e {
                Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
                other => other,
            };
            let (x, t) = typer.typed(inner)?;
            columns.push((field.name().clone(), x, t));
            row_types.push(t);
            t
        };
        output.push((field.name().clone(), ty));
        out_scope.push(ScopeColumn {
            qualifier: alias
                .clone()
                .or_else(|| qualifier.map(|q| q.table().to_string())),
            name: field.name().clone(),
            ty,
        });
    }
    let updating = scope.iter().any(|c| c.name == ROW_KIND);
    if let Some(k) = scope.iter().find(|c| c.name == ROW_KIND) {
        columns.push((k.name.clone(), column_expr(k), k.ty));
    }
    out_scope.push(ScopeColumn {
        qualifier: None,
        name: ROW_KIND.to_string(),
        ty: FlinkType::not_null(Kind::TinyInt),
    });
    let spec = crate::rank::RankSpec {
        keys,
        sort,
        limit: limit as usize,
        columns: row_types,
        row_number_at: Some(rn_at),
        output,
        updating,
        newer_first,
        state_ttl: None,
    };
    Ok(Some((
        Node::Rank {
            input: Box::new(calc_over(node, scope, columns)),
            spec: Arc::new(spec),
        },
        out_scope,
    )))
}

/// PARTITION BY expression `e` as key column `$key{i}`: a time column partitions by its
/// epoch value.
fn partition_key(typer: &Typer, e: &Expr, i: usize) -> Result<(String, Expr, FlinkType)> {
    let (x, t) = typer.typed(e)?;
    let (x, t) = match t.kind {
        Kind::Timestamp(_) | Kind::Date => (
            Expr::Cast(datafusion_expr::expr::Cast::new(
                Box::new(x),
                arrow_schema::DataType::Int64,
            )),
            FlinkType::nullable(Kind::BigInt),
        ),
        _ if can_be_key(&t) => (x, t),
        _ => {
            return Err(SqlError::Unsupported(format!(
                "PARTITION BY a {} column",
                t.display()
            )))
        }
    };
    Ok((format!("$key{i}"), x, t))
}

/// `c` plus a constant interval, as (column, milliseconds): `ts`, `ts + INTERVAL '5'
/// SECOND`, `ts - INTERVAL ...`.
fn time_term(e: &Expr) -> Option<(&Column, i64)> {
    match e {
        Expr::Column(c) => Some((c, 0)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let Expr::Column(c) = left.as_ref() else {
                return None;
            };
            let ms = interval_literal_ms(right)?;
            match op {
                Operator::Plus => Some((c, ms)),
                Operator::Minus => Some((c, -ms)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The length of a day-time interval literal in milliseconds.
fn interval_literal_ms(e: &Expr) -> Option<i64> {
    use datafusion_common::ScalarValue;
    match e {
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
        }
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        _ => None,
    }
}

/// The bounds on `right.time - left.time` that `conditions` set, if they bound it on both
/// sides with the two sides' time attributes (Flink's interval join condition).
fn interval_bounds(
    conditions: &[Expr],
    left: &[ScopeColumn],
    right: &[ScopeColumn],
) -> Option<crate::join::IntervalBounds> {
    // Each bound as `x >= y + c` (`ge`) or `x <= y + c`.
    let mut bounds: Vec<(&Expr, &Expr, bool, i64)> = Vec::new();
    for c in conditions {
        match c {
            Expr::Between(b) if !b.negated => {
                bounds.push((&b.expr, &b.low, true, 0));
                bounds.push((&b.expr, &b.high, false, 0));
            }
            Expr::BinaryExpr(BinaryExpr {
                left: x,
                op,
                right: y,
            }) => match op {
                Operator::GtEq => bounds.push((x, y, true, 0)),
                Operator::Gt => bounds.push((x, y, true, 1)),
                Operator::LtEq => bounds.push((x, y, false, 0)),
                Operator::Lt => bounds.push((x, y, false, -1)),
                _ => {}
            },
            _ => {}
        }
    }
    let time_of =
        |c: &Column, scope: &[ScopeColumn]| scope.iter().position(|s| s.matches(c) && s.ty.rowtime);
    let (mut lower, mut upper) = (None::<i64>, None::<i64>);
    let mut times = None;
    for (x, y, ge, strict) in bounds {
        let (Some((xc, xo)), Some((yc, yo))) = (time_term(x), time_term(y)) else {
            continue;
        };
        // `x + xo >= y + yo + strict`, i.e. x - y >= yo - xo + strict (or <=).
        let c = yo - xo + strict;
        let (x_right, pair) = match (
            time_of(xc, right),
            time_of(yc, left),
            time_of(xc, left),
            time_of(yc, right),
        ) {
            (Some(r), Some(l), _, _) => (true, (l, r)),
            (_, _, Some(l), Some(r)) => (false, (l, r)),
            _ => continue,
        };
        if *times.get_or_insert(pair) != pair {
            return None;
        }
        // right - left >= c when x is the right side and the bound is `>=`.
        match (x_right, ge) {
            (true, true) | (false, false) => {
                let v = if x_right { c } else { -c };
                lower = Some(lower.map_or(v, |l| l.max(v)));
            }
            (true, false) | (false, true) => {
                let v = if x_right { c } else { -c };
                upper = Some(upper.map_or(v, |u| u.min(v)));
            }
        }
    }
    let (left_time, right_time) = times?;
    Some(crate::join::IntervalBounds {
        left_time,
        right_time,
        lower: lower?,
        upper: upper?,
    })
}
