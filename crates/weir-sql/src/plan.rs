//! A SELECT planned by DataFusion, typed as Flink types it, as a tree of Weir's operators.
//!
//! DataFusion's SQL planner turns the statement into a logical plan over the catalog's
//! tables (window TVF calls resolved to windowed tables, see [`crate::window_tvf`]).
//! [`crate::lower`] walks that plan into a [`Node`] tree, typing every expression by Flink
//! SQL's rules ([`crate::typing`]); [`crate::job`] runs the tree as a streaming job. Every
//! node is data (its expressions, windows and aggregate calls), not code.

use crate::aggregate::AggFunc;
use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use crate::group_agg::GroupAggSpec;
use crate::types::{FlinkType, Kind};
use crate::window_agg::WindowAggSpec;
use crate::window_tvf::{WindowKind, WindowTvf};
use arrow_schema::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::TableReference;
use datafusion_expr::expr::ScalarFunction;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner, PlannerResult};
use datafusion_expr::{
    AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, HigherOrderUDF, LogicalPlan,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TableSource, Volatility, WindowUDF,
};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::ast::Statement as SqlStatement;
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use std::collections::HashMap;
use std::sync::Arc;

/// A column an expression may name: its qualifier (table or alias), name and Flink type.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeColumn {
    /// The table or alias that qualifies it, if any.
    pub qualifier: Option<String>,
    /// Its name.
    pub name: String,
    /// Its Flink type.
    pub ty: FlinkType,
}

impl ScopeColumn {
    /// True if DataFusion's column reference `c` names this column.
    pub fn matches(&self, c: &datafusion_common::Column) -> bool {
        c.name == self.name
            && match (&c.relation, &self.qualifier) {
                (None, _) => true,
                (Some(r), Some(q)) => r.table() == q.as_str() || r.to_string() == *q,
                (Some(_), None) => false,
            }
    }
}

/// One operator of a query's job, as data.
#[derive(Clone, Debug)]
pub enum Node {
    /// A table's rows, read by its connector (with the per-row watermark column last if
    /// the table declares a watermark).
    Scan {
        /// The table.
        table: Arc<TableDef>,
        /// The table columns the scan emits, in order (indices into `table.columns`): all
        /// of them, until [`Node::prune_scans`] drops what no operator reads.
        projection: Vec<usize>,
    },
    /// Rows that pass `filter`, projected (Flink's `Calc`).
    Calc {
        /// Where its rows come from.
        input: Box<Node>,
        /// The input's columns.
        input_scope: Vec<ScopeColumn>,
        /// Rows pass if this is true (NULL drops them).
        filter: Option<Expr>,
        /// The output columns: name, expression over the input, Flink type.
        columns: Vec<(String, Expr, FlinkType)>,
    },
    /// A window TVF without aggregation: each row once per window it falls in, with
    /// `window_start`, `window_end` and `window_time` appended.
    WindowTvf {
        /// Where its rows come from.
        input: Box<Node>,
        /// The windows.
        kind: WindowKind,
        /// The input column of the time attribute.
        rowtime: usize,
        /// A SESSION's partition columns.
        partition_by: Vec<String>,
    },
    /// A window aggregate; its input is partitioned by the first `spec.keys` columns.
    WindowAggregate {
        /// Where its rows come from (group keys, arguments, rowtime, watermark).
        input: Box<Node>,
        /// What it computes.
        spec: Arc<WindowAggSpec>,
    },
    /// A Top-N per partition (an updating result); its input is partitioned by the first
    /// `spec.keys` columns.
    Rank {
        /// Where its rows come from (partition keys, sort keys, columns, row kinds).
        input: Box<Node>,
        /// What it keeps.
        spec: Arc<crate::rank::RankSpec>,
    },
    /// The rows of every input (UNION ALL), each laid out alike.
    Union {
        /// The inputs.
        inputs: Vec<Node>,
    },
    /// A regular join; both inputs are partitioned by their first `spec.keys` columns.
    Join {
        /// The left input (key columns, then its own columns, then row kinds if updating).
        left: Box<Node>,
        /// The right input, laid out alike.
        right: Box<Node>,
        /// What it joins and emits.
        spec: Arc<crate::join::JoinSpec>,
        /// The non-equi part of the condition, over the joined row.
        residual: Option<Expr>,
        /// The joined row's columns (left's, then right's).
        residual_scope: Vec<ScopeColumn>,
    },
    /// An OVER aggregate (insert-only); its input is partitioned by the first `spec.keys`
    /// columns.
    OverAggregate {
        /// Where its rows come from (partition keys, the row's columns, arguments).
        input: Box<Node>,
        /// What it computes.
        spec: Arc<crate::over_agg::OverSpec>,
    },
    /// A group aggregate (an updating result); its input is partitioned by the first
    /// `spec.keys` columns.
    GroupAggregate {
        /// Where its rows come from (group keys, arguments, row kinds).
        input: Box<Node>,
        /// What it computes.
        spec: Arc<GroupAggSpec>,
    },
}

impl Node {
    /// True if the operator's output is a changelog (it carries the row-kind column).
    pub fn is_updating(&self) -> bool {
        match self {
            Node::Scan { .. } | Node::WindowAggregate { .. } | Node::OverAggregate { .. } => false,
            Node::Rank { .. } | Node::GroupAggregate { .. } => true,
            Node::Calc { input, .. } | Node::WindowTvf { input, .. } => input.is_updating(),
            Node::Union { inputs } => inputs.iter().any(Node::is_updating),
            Node::Join { spec, .. } => spec.emits_kinds,
        }
    }

    /// The operator tree, one operator per line, inputs indented below their consumer.
    pub fn explain(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        match self {
            Node::Scan { table, projection } => {
                let columns: Vec<&str> = projection
                    .iter()
                    .map(|&i| table.columns[i].name.as_str())
                    .collect();
                out.push_str(&format!(
                    "{pad}Source: {} ({}), columns [{}]\n",
                    table.name,
                    table.option("connector").unwrap_or("?"),
                    columns.join(", ")
                ));
            }
            Node::Calc {
                input,
                filter,
                columns,
                ..
            } => {
                out.push_str(&format!("{pad}Calc\n"));
                if let Some(f) = filter {
                    out.push_str(&format!("{pad}  where: {f}\n"));
                }
                for (name, e, t) in columns {
                    out.push_str(&format!("{pad}  {name} {}: {e}\n", t.display()));
                }
                input.explain(depth + 1, out);
            }
            Node::WindowTvf {
                input,
                kind,
                rowtime,
                ..
            } => {
                out.push_str(&format!("{pad}{kind:?} on column {rowtime}\n"));
                input.explain(depth + 1, out);
            }
            Node::WindowAggregate { input, spec } => {
                out.push_str(&format!(
                    "{pad}WindowAggregate {:?}, partitioned by columns 0..{}\n",
                    spec.window, spec.keys
                ));
                for (name, c, t) in &spec.output {
                    let what = match c {
                        crate::window_agg::OutputColumn::Agg(i) => {
                            let a = &spec.aggs[*i];
                            format!("{:?}(column {:?})", a.func, a.arg)
                        }
                        other => format!("{other:?}"),
                    };
                    out.push_str(&format!("{pad}  {name} {}: {what}\n", t.display()));
                }
                input.explain(depth + 1, out);
            }
            Node::OverAggregate { input, spec } => {
                out.push_str(&format!(
                    "{pad}OverAggregate {:?}, partitioned by columns 0..{}\n",
                    spec.frame, spec.keys
                ));
                let first_agg = spec.output.len() - spec.aggs.len();
                for ((name, t), a) in spec.output[first_agg..].iter().zip(&spec.aggs) {
                    out.push_str(&format!(
                        "{pad}  {name} {}: {:?}(column {:?})\n",
                        t.display(),
                        a.func,
                        a.arg
                    ));
                }
                input.explain(depth + 1, out);
            }
            Node::Rank { input, spec } => {
                out.push_str(&format!(
                    "{pad}Rank: the first {} rows per partition of columns 0..{}, sorted by {:?} (updating)\n",
                    spec.limit, spec.keys, spec.sort
                ));
                input.explain(depth + 1, out);
            }
            Node::Union { inputs } => {
                out.push_str(&format!("{pad}Union\n"));
                for i in inputs {
                    i.explain(depth + 1, out);
                }
            }
            Node::Join {
                left,
                right,
                spec,
                residual,
                ..
            } => {
                out.push_str(&format!(
                    "{pad}Join {:?}, both sides partitioned by columns 0..{}{}\n",
                    spec.kind,
                    spec.keys,
                    if spec.emits_kinds { " (updating)" } else { "" }
                ));
                if let Some(b) = &spec.interval {
                    out.push_str(&format!(
                        "{pad}  interval: right time - left time in [{}, {}] ms (rows expire with the watermark)\n",
                        b.lower, b.upper
                    ));
                }
                if let Some(r) = residual {
                    out.push_str(&format!("{pad}  where: {r}\n"));
                }
                left.explain(depth + 1, out);
                right.explain(depth + 1, out);
            }
            Node::GroupAggregate { input, spec } => {
                out.push_str(&format!(
                    "{pad}GroupAggregate, partitioned by columns 0..{} (updating)\n",
                    spec.keys
                ));
                for (name, c, t) in &spec.output {
                    let what = match c {
                        crate::group_agg::GroupColumn::Agg(i) => {
                            let a = &spec.aggs[*i];
                            format!("{:?}(column {:?})", a.func, a.arg)
                        }
                        other => format!("{other:?}"),
                    };
                    out.push_str(&format!("{pad}  {name} {}: {what}\n", t.display()));
                }
                input.explain(depth + 1, out);
            }
        }
    }
}

/// A planned query: the operator tree and the columns of its result.
#[derive(Clone, Debug)]
pub struct Query {
    /// The last operator (its inputs below it).
    pub root: Node,
    /// The result's columns with Flink's types.
    pub columns: Vec<(String, FlinkType)>,
    /// DataFusion's logical plan of the statement, indented (for EXPLAIN).
    pub logical_plan: String,
}

impl Query {
    /// The plan as `EXPLAIN` prints it: DataFusion's logical plan, then the job Weir runs,
    /// with the Flink-typed expressions each operator evaluates.
    pub fn explain(&self) -> String {
        let mut out = String::from("== Logical Plan (DataFusion) ==\n");
        out.push_str(&self.logical_plan);
        out.push_str("\n\n== Weir Job ==\n");
        self.root.explain(0, &mut out);
        out
    }
}

/// The tables a statement may name.
#[derive(Default)]
pub struct Catalog {
    tables: HashMap<String, Arc<TableDef>>,
    views: HashMap<String, View>,
    options: ConfigOptions,
    functions: HashMap<String, Arc<ScalarUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    /// An empty catalog with Weir's built-in functions.
    pub fn new() -> Self {
        let mut functions = HashMap::new();
        let names = [
            "mod", "coalesce", "nullif", "abs", "sign", "pi", "round", "truncate",
        ]
        .iter()
        .chain(crate::functions::NAMES)
        .chain(crate::math_functions::NAMES)
        .chain(TIME_FUNCTIONS);
        for name in names {
            functions.insert(
                name.to_string(),
                Arc::new(ScalarUDF::from(Rewritten::new(name))),
            );
        }
        let function = |name: &str| {
            functions
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::new(ScalarUDF::from(Rewritten::new(name))))
        };
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![Arc::new(SpecialSyntax {
            substring: function("substring"),
            position: function("position"),
            extract: function("extract"),
        })];
        Catalog {
            tables: HashMap::new(),
            views: HashMap::new(),
            options: ConfigOptions::default(),
            functions,
            planners,
        }
    }

    /// Adds a view: the query `sql` under `name`, planned (and so checked) now and again
    /// wherever it is used, as Flink inlines views.
    pub fn create_view(&mut self, name: &str, sql: &str) -> Result<()> {
        if self.tables.contains_key(name) || self.views.contains_key(name) {
            return Err(SqlError::Invalid(format!(
                "a table or view '{name}' already exists"
            )));
        }
        let prefix = format!("{}{name}_", crate::window_tvf::WINDOW_TABLE_PREFIX);
        let (statement, windows) = crate::window_tvf::parse_statement_with_prefix(sql, &prefix)?;
        let view = View { statement, windows };
        StatementContext {
            catalog: self,
            windows: &[],
        }
        .view_plan(&view)?;
        self.views.insert(name.to_string(), view);
        Ok(())
    }

    /// Adds a table; an existing one of the same name is an error.
    pub fn create_table(&mut self, table: TableDef) -> Result<()> {
        if self.views.contains_key(&table.name) {
            return Err(SqlError::Invalid(format!(
                "a view '{}' already exists",
                table.name
            )));
        }
        if self.tables.contains_key(&table.name) {
            return Err(SqlError::Invalid(format!(
                "table '{}' already exists",
                table.name
            )));
        }
        self.tables.insert(table.name.clone(), Arc::new(table));
        Ok(())
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(name)
    }

    /// The catalog's table and view names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Plans a SELECT statement whose window TVF calls were rewritten to `windows`.
    pub fn plan_query(&self, statement: SqlStatement, windows: &[WindowTvf]) -> Result<Query> {
        let context = StatementContext {
            catalog: self,
            windows,
        };
        let plan = context.logical_plan(statement)?;
        let mut query = crate::lower::lower_query(&plan, &context)?;
        query.logical_plan = plan.display_indent().to_string();
        Ok(query)
    }

    /// Plans the SELECT statement `sql` (window TVFs included).
    pub fn plan_sql(&self, sql: &str) -> Result<Query> {
        let (statement, windows) = crate::window_tvf::parse_statement(sql)?;
        self.plan_query(statement, &windows)
    }
}

/// The catalog as one statement sees it: its tables, and the windowed tables of the
/// statement's window TVF calls.
pub(crate) struct StatementContext<'a> {
    pub catalog: &'a Catalog,
    pub windows: &'a [WindowTvf],
}

/// A view: its query, parsed, with its window TVF calls.
struct View {
    statement: SqlStatement,
    windows: Vec<WindowTvf>,
}

/// A view as DataFusion's planner sees it: a table with its query's schema and plan.
struct ViewSource {
    plan: LogicalPlan,
    schema: arrow_schema::SchemaRef,
}

impl TableSource for ViewSource {
    fn schema(&self) -> arrow_schema::SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        Some(std::borrow::Cow::Borrowed(&self.plan))
    }
}

impl StatementContext<'_> {
    /// The window TVF call a table name stands for (of the statement or of a view).
    pub fn window(&self, name: &str) -> Option<&WindowTvf> {
        self.windows
            .iter()
            .chain(self.catalog.views.values().flat_map(|v| &v.windows))
            .find(|w| w.alias == name)
    }

    /// The logical plan of a statement, by DataFusion's SQL planner.
    fn logical_plan(&self, mut statement: SqlStatement) -> Result<LogicalPlan> {
        rewrite_time_syntax(&mut statement)?;
        let options = ParserOptions {
            parse_float_as_decimal: true,
            enable_ident_normalization: false,
            map_string_types_to_utf8view: false,
            // Flink sorts NULLs as the smallest values: first ascending, last descending.
            default_null_ordering: datafusion_sql::planner::NullOrdering::NullsMin,
            ..ParserOptions::new()
        };
        Ok(SqlToRel::new_with_options(self, options).sql_statement_to_plan(statement)?)
    }

    /// The logical plan of a view's query.
    fn view_plan(&self, view: &View) -> Result<LogicalPlan> {
        StatementContext {
            catalog: self.catalog,
            windows: &view.windows,
        }
        .logical_plan(view.statement.clone())
    }

    /// The logical plan of the view called `name`, if there is one.
    pub fn view(&self, name: &str) -> Result<Option<LogicalPlan>> {
        match self.catalog.views.get(name) {
            Some(v) => self.view_plan(v).map(Some),
            None => Ok(None),
        }
    }
}

/// The columns a window TVF appends to its input's.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// The types of [`WINDOW_COLUMNS`] (window_time is a time attribute).
pub fn window_column_types() -> [FlinkType; 3] {
    let ts = FlinkType::not_null(Kind::Timestamp(3));
    let mut time = ts;
    time.rowtime = true;
    [ts, ts, time]
}

impl ContextProvider for StatementContext<'_> {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let (table, window) = match self.window(name.table()) {
            Some(w) => (w.table.as_str(), true),
            None => (name.table(), false),
        };
        if let Some(plan) = self
            .view(table)
            .map_err(|e| datafusion_common::DataFusionError::Plan(e.to_string()))?
        {
            let mut fields: Vec<arrow_schema::Field> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            if window {
                for (n, t) in WINDOW_COLUMNS.iter().zip(window_column_types()) {
                    fields.push(arrow_schema::Field::new(*n, t.arrow(), true));
                }
                // A windowed view is planned by Weir from the view's plan; DataFusion only
                // needs its columns.
                return Ok(Arc::new(LogicalTableSource::new(Arc::new(
                    arrow_schema::Schema::new(fields),
                ))));
            }
            return Ok(Arc::new(ViewSource {
                schema: Arc::new(arrow_schema::Schema::new(fields)),
                plan,
            }));
        }
        let table = self.catalog.tables.get(table).ok_or_else(|| {
            datafusion_common::DataFusionError::Plan(format!("table '{table}' does not exist"))
        })?;
        let mut columns: Vec<(String, FlinkType)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        if window {
            for (n, t) in WINDOW_COLUMNS.iter().zip(window_column_types()) {
                columns.push((n.to_string(), t));
            }
        }
        Ok(Arc::new(LogicalTableSource::new(
            crate::csv_source::schema_of(&columns),
        )))
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.catalog
            .functions
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.catalog.planners
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        let name = name.to_ascii_lowercase();
        AGGREGATES
            .contains(&name.as_str())
            .then(|| Arc::new(AggregateUDF::from(PlannedAggregate::new(&name))))
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        name.eq_ignore_ascii_case("row_number")
            .then(|| Arc::new(WindowUDF::from(RowNumber::default())))
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.catalog.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.catalog.functions.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        AGGREGATES.iter().map(|s| s.to_string()).collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        vec!["row_number".to_string()]
    }
}

/// `ROW_NUMBER()` as DataFusion's planner sees it; Weir's Top-N operator numbers the rows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RowNumber {
    signature: Signature,
}

impl Default for RowNumber {
    fn default() -> Self {
        RowNumber {
            signature: Signature::exact(vec![], Volatility::Immutable),
        }
    }
}

impl datafusion_expr::WindowUDFImpl for RowNumber {
    fn name(&self) -> &str {
        "row_number"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: datafusion_expr::function::PartitionEvaluatorArgs,
    ) -> datafusion_common::Result<Box<dyn datafusion_expr::PartitionEvaluator>> {
        Err(datafusion_common::DataFusionError::Internal(
            "ROW_NUMBER() is computed by Weir's Top-N operator".into(),
        ))
    }

    fn field(
        &self,
        args: datafusion_expr::function::WindowUDFFieldArgs,
    ) -> datafusion_common::Result<arrow_schema::FieldRef> {
        Ok(Arc::new(arrow_schema::Field::new(
            args.name(),
            DataType::Int64,
            false,
        )))
    }
}

/// The aggregate functions Weir computes (see [`crate::aggregate`]).
const AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];

/// An aggregate function as DataFusion's planner sees it: a name and a result type. Weir's
/// operators compute it ([`AggFunc`]); DataFusion never does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PlannedAggregate {
    name: String,
    signature: Signature,
}

impl PlannedAggregate {
    fn new(name: &str) -> Self {
        PlannedAggregate {
            name: name.to_string(),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for PlannedAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The call's column name, with its arguments as written: DataFusion's default names a
    /// CAST by its operand only, so `AVG(CAST(x AS DOUBLE))` and `AVG(CAST(x AS
    /// DECIMAL(10, 2)))` would get one name and collide.
    fn schema_name(
        &self,
        params: &datafusion_expr::expr::AggregateFunctionParams,
    ) -> datafusion_common::Result<String> {
        let args: Vec<String> = params.args.iter().map(|a| a.to_string()).collect();
        Ok(format!(
            "{}({}{})",
            self.name,
            if params.distinct { "DISTINCT " } else { "" },
            args.join(", ")
        ))
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(
            match AggFunc::by_name(&self.name, false, !arg_types.is_empty()) {
                Ok(AggFunc::Count | AggFunc::CountStar | AggFunc::CountDistinct) => DataType::Int64,
                _ => arg_types.first().cloned().unwrap_or(DataType::Int64),
            },
        )
    }

    fn accumulator(
        &self,
        _args: datafusion_expr::function::AccumulatorArgs,
    ) -> datafusion_common::Result<Box<dyn datafusion_expr::Accumulator>> {
        Err(datafusion_common::DataFusionError::Internal(format!(
            "{} is computed by Weir's operators",
            self.name
        )))
    }
}

/// Time functions the planner types itself (`__floor_time` / `__ceil_time` stand for
/// `FLOOR(ts TO unit)` / `CEIL(ts TO unit)`, which the SQL is rewritten to first).
pub(crate) const TIME_FUNCTIONS: &[&str] = &[
    "extract",
    "hour",
    "minute",
    "second",
    "__floor_time",
    "__ceil_time",
    "timestampdiff",
    "date_format",
];

/// Rewrites SQL syntax DataFusion's planner does not take into calls it does:
/// `FLOOR(ts TO unit)` / `CEIL(ts TO unit)` into `__floor_time(ts, 'unit')` /
/// `__ceil_time(ts, 'unit')`, and the unit keyword of `TIMESTAMPDIFF(unit, a, b)` into a
/// string.
fn rewrite_time_syntax(statement: &mut SqlStatement) -> Result<()> {
    use datafusion_sql::sqlparser::ast::{
        visit_expressions_mut, CeilFloorKind, DateTimeField, Expr as SqlExpr, FunctionArg,
        FunctionArgExpr, FunctionArguments, Value,
    };
    use std::ops::ControlFlow;
    let flow = visit_expressions_mut(statement, |e: &mut SqlExpr| {
        let replacement = match e {
            SqlExpr::Floor {
                expr,
                field: CeilFloorKind::DateTimeField(f),
            } if *f != DateTimeField::NoDateTime => Some(format!("__floor_time({expr}, '{f}')")),
            SqlExpr::Ceil {
                expr,
                field: CeilFloorKind::DateTimeField(f),
            } if *f != DateTimeField::NoDateTime => Some(format!("__ceil_time({expr}, '{f}')")),
            SqlExpr::Function(func)
                if func.name.to_string().eq_ignore_ascii_case("timestampdiff") =>
            {
                if let FunctionArguments::List(list) = &mut func.args {
                    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(first))) =
                        list.args.first_mut()
                    {
                        if let SqlExpr::Identifier(unit) = first {
                            *first = SqlExpr::value(Value::SingleQuotedString(unit.value.clone()));
                        }
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(text) = replacement {
            match Parser::new(&GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
            {
                Ok(call) => *e = call,
                Err(err) => return ControlFlow::Break(err.to_string()),
            }
        }
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(e) => Err(SqlError::Invalid(e)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Plans SQL's special call syntax, `SUBSTRING(s FROM a FOR b)` and `POSITION(a IN s)`, as
/// calls of the functions of those names.
#[derive(Debug)]
struct SpecialSyntax {
    substring: Arc<ScalarUDF>,
    position: Arc<ScalarUDF>,
    extract: Arc<ScalarUDF>,
}

impl ExprPlanner for SpecialSyntax {
    fn plan_substring(
        &self,
        args: Vec<Expr>,
    ) -> datafusion_common::Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.substring.clone(), args),
        )))
    }

    fn plan_extract(&self, args: Vec<Expr>) -> datafusion_common::Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.extract.clone(), args),
        )))
    }

    fn plan_position(
        &self,
        args: Vec<Expr>,
    ) -> datafusion_common::Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.position.clone(), args),
        )))
    }
}

/// A function Weir's planner knows by name and rewrites into other expressions before
/// anything runs (`MOD(a, b)` becomes `a % b` with Flink's types).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rewritten {
    name: String,
    signature: Signature,
}

impl Rewritten {
    fn new(name: &str) -> Self {
        Rewritten {
            name: name.to_string(),
            // `PI()` takes nothing; the others at least one argument.
            signature: Signature::one_of(
                vec![
                    datafusion_expr::TypeSignature::Nullary,
                    datafusion_expr::TypeSignature::VariadicAny,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Rewritten {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(arg_types.last().cloned().unwrap_or(DataType::Null))
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion_common::Result<ColumnarValue> {
        Err(datafusion_common::DataFusionError::Internal(format!(
            "{} is rewritten before a query runs",
            self.name
        )))
    }
}
