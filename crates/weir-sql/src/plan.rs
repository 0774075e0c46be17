//! A SELECT planned by DataFusion and typed as Flink types it.
//!
//! DataFusion's SQL planner turns the statement into a logical plan over the catalog's
//! tables. Weir walks that plan and types every expression by Flink SQL's rules (which
//! differ from DataFusion's: an integer literal is INT, `0.908 * price` is DECIMAL(24, 3),
//! `MOD` has its divisor's type), rewriting each into a DataFusion expression with explicit
//! casts, so that DataFusion's vectorised kernels compute exactly Flink's values. The result
//! is a [`Query`]: the scanned table, a filter and the projected columns, each with the
//! Flink type Flink gives it.

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use crate::types::{FlinkType, Kind, MAX_PRECISION};
use arrow_schema::DataType;
use datafusion_common::config::ConfigOptions;
use datafusion_common::{ScalarValue, TableReference};
use datafusion_expr::expr::{Alias, Cast, ScalarFunction};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner, PlannerResult};
use datafusion_expr::{
    AggregateUDF, BinaryExpr, ColumnarValue, Expr, HigherOrderUDF, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TableSource, Volatility, WindowUDF,
};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::ast::Statement as SqlStatement;
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use std::collections::HashMap;
use std::sync::Arc;

/// A planned append-only query: rows of `table` that pass `filter`, projected.
#[derive(Clone, Debug)]
pub struct Query {
    /// The scanned table.
    pub table: Arc<TableDef>,
    /// Rows pass if this is true (NULL drops them, as in SQL).
    pub filter: Option<Expr>,
    /// The output columns: name, expression over the table's columns, Flink type.
    pub columns: Vec<(String, Expr, FlinkType)>,
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
        out.push_str(&format!("Source: {} (filesystem)\n", self.table.name));
        out.push_str("  -> rebalance\n");
        out.push_str("Calc\n");
        if let Some(f) = &self.filter {
            out.push_str(&format!("  where: {f}\n"));
        }
        for (name, e, t) in &self.columns {
            out.push_str(&format!("  {name} {}: {e}\n", t.display()));
        }
        out
    }
}

/// The tables a statement may name.
#[derive(Default)]
pub struct Catalog {
    tables: HashMap<String, Arc<TableDef>>,
    options: ConfigOptions,
    functions: HashMap<String, Arc<ScalarUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    /// An empty catalog with Weir's built-in functions.
    pub fn new() -> Self {
        let mut functions = HashMap::new();
        let names = ["mod", "coalesce", "nullif"]
            .iter()
            .chain(crate::functions::NAMES)
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
            options: ConfigOptions::default(),
            functions,
            planners,
        }
    }

    /// Adds a table; an existing one of the same name is an error.
    pub fn create_table(&mut self, table: TableDef) -> Result<()> {
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

    /// The catalog's table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.keys().cloned().collect();
        names.sort();
        names
    }

    /// Plans a SELECT statement.
    pub fn plan_query(&self, mut statement: SqlStatement) -> Result<Query> {
        rewrite_time_syntax(&mut statement)?;
        let options = ParserOptions {
            parse_float_as_decimal: true,
            enable_ident_normalization: false,
            map_string_types_to_utf8view: false,
            ..ParserOptions::new()
        };
        let plan = SqlToRel::new_with_options(self, options).sql_statement_to_plan(statement)?;
        let mut query = QueryBuilder::default().plan(&plan, self)?;
        query.logical_plan = plan.display_indent().to_string();
        Ok(query)
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let table = self.tables.get(name.table()).ok_or_else(|| {
            datafusion_common::DataFusionError::Plan(format!("table '{name}' does not exist"))
        })?;
        let columns: Vec<(String, FlinkType)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect();
        Ok(Arc::new(LogicalTableSource::new(
            crate::csv_source::schema_of(&columns),
        )))
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Time functions the planner types itself (`__floor_time` / `__ceil_time` stand for
/// `FLOOR(ts TO unit)` / `CEIL(ts TO unit)`, which the SQL is rewritten to first).
const TIME_FUNCTIONS: &[&str] = &[
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
            signature: Signature::variadic_any(Volatility::Immutable),
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

/// Walks a logical plan into a [`Query`].
#[derive(Default)]
struct QueryBuilder {
    table: Option<Arc<TableDef>>,
    filter: Option<Expr>,
}

impl QueryBuilder {
    fn plan(mut self, plan: &LogicalPlan, catalog: &Catalog) -> Result<Query> {
        let columns = match plan {
            LogicalPlan::Projection(p) => {
                self.input(&p.input, catalog)?;
                p.expr
                    .iter()
                    .map(|e| {
                        let name = e.schema_name().to_string();
                        let (name, inner) = match e {
                            Expr::Alias(Alias { expr, name, .. }) => (name.clone(), expr.as_ref()),
                            Expr::Column(c) => (c.name.clone(), e),
                            _ => (name, e),
                        };
                        let (expr, ty) = self.typed(inner)?;
                        Ok((name, expr, ty))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                "queries other than projections and filters of one table (this one plans to {})",
                other.display()
            )))
            }
        };
        let table = self
            .table
            .ok_or_else(|| SqlError::Unsupported("a query without a table".into()))?;
        Ok(Query {
            table,
            filter: self.filter,
            columns,
            logical_plan: String::new(),
        })
    }

    fn input(&mut self, plan: &LogicalPlan, catalog: &Catalog) -> Result<()> {
        match plan {
            LogicalPlan::Filter(f) => {
                self.input(&f.input, catalog)?;
                let (predicate, ty) = self.typed(&f.predicate)?;
                if ty.kind != Kind::Boolean {
                    return Err(SqlError::Invalid(format!(
                        "WHERE needs a BOOLEAN condition, not {}",
                        ty.display()
                    )));
                }
                self.filter = Some(match self.filter.take() {
                    Some(f) => f.and(predicate),
                    None => predicate,
                });
                Ok(())
            }
            LogicalPlan::SubqueryAlias(a) => self.input(&a.input, catalog),
            LogicalPlan::TableScan(scan) => {
                let table = catalog.table(scan.table_name.table()).ok_or_else(|| {
                    SqlError::Invalid(format!("table '{}' does not exist", scan.table_name))
                })?;
                self.table = Some(table.clone());
                Ok(())
            }
            other => Err(SqlError::Unsupported(format!(
                "queries other than projections and filters of one table (this one reads {})",
                other.display()
            ))),
        }
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

    fn column(&self, name: &str) -> Result<FlinkType> {
        self.table
            .as_ref()
            .and_then(|t| t.columns.iter().find(|c| c.name == name))
            .map(|c| c.ty)
            .ok_or_else(|| SqlError::Invalid(format!("no column '{name}'")))
    }

    /// `e` typed by Flink's rules, rewritten so that evaluating it gives Flink's values.
    fn typed(&self, e: &Expr) -> Result<(Expr, FlinkType)> {
        if let Expr::ScalarFunction(ScalarFunction { func, args }) = e {
            if let Some(f) = crate::functions::by_name(func.name()) {
                let typed = args
                    .iter()
                    .map(|a| self.typed(a))
                    .collect::<Result<Vec<_>>>()?;
                return string_call(f, func.name(), typed);
            }
            if TIME_FUNCTIONS.contains(&func.name()) {
                return self.time_call(func.name(), args);
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
            Expr::Column(c) => (e.clone(), self.column(&c.name)?),
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

fn cast(e: Expr, t: &FlinkType) -> Expr {
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
fn common_type<'a>(types: impl Iterator<Item = &'a FlinkType>) -> Result<Option<FlinkType>> {
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
