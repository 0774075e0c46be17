//! A planned query as a streaming job: each [`Node`] of the plan becomes Weir operators over
//! Arrow batches: the table's source, vectorised `Calc`s (Flink's name for a projection
//! with a filter) that evaluate DataFusion physical expressions on each batch, window
//! assigners, and window aggregates behind a batch exchange keyed by their group key; then
//! the result back to the client.

use crate::catalog::TableDef;
use crate::csv_source::{schema_of, CsvTable};
use crate::error::{Result, SqlError};
use crate::join::JoinOp;
use crate::plan::{Node, Query, ScopeColumn};
use crate::types::FlinkType;
use crate::window_agg::WindowAggregateOp;
use crate::window_tvf::WindowKind;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Field, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::Expr;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use std::path::Path;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::prelude::*;

/// The rows a query produced, as batches of its output columns; the batches of an updating
/// query also hold a row-kind column ([`crate::changelog`]).
pub struct QueryOutput {
    /// The output columns.
    pub columns: Vec<(String, FlinkType)>,
    /// The result batches, in the order the client received them.
    pub batches: Vec<RecordBatch>,
}

/// The source of `table`: its connector, from the WITH options.
fn source(table: &TableDef, base: &Path) -> Result<CsvTable> {
    match table.option("connector") {
        Some("filesystem") => match table.option("format") {
            Some("csv") => CsvTable::new(table, base),
            Some(other) => Err(SqlError::Unsupported(format!(
                "the '{other}' format (table '{}'; Weir reads 'csv' so far)",
                table.name
            ))),
            None => Err(SqlError::Invalid(format!(
                "table '{}' needs a 'format'",
                table.name
            ))),
        },
        Some(other) => Err(SqlError::Unsupported(format!(
            "the '{other}' connector as a source (table '{}'; Weir reads 'filesystem' so far)",
            table.name
        ))),
        None => Err(SqlError::Invalid(format!(
            "table '{}' needs a 'connector'",
            table.name
        ))),
    }
}

/// Runs `query` on the embedded mini-cluster at `parallelism` and returns its rows.
/// Relative paths of the tables resolve against `base`.
pub fn run(query: &Query, base: &Path, parallelism: u32) -> Result<QueryOutput> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism.max(1) as i64);
    let rows = build(&query.root, &env, base)?.0.collect_values();
    env.execute("SELECT")?;
    Ok(QueryOutput {
        columns: query.columns.clone(),
        batches: rows.take().into_iter().map(|b| b.0).collect(),
    })
}

/// The stream of batches `node` produces, and whether it runs in its source's one
/// subtask.
///
/// The file source reads on one subtask (a file is one split). The stateless operators
/// after it run there too, chained to it, as Flink chains them into the one active source
/// task: rows reach the first keyed exchange in file order, so every key's rows keep
/// their order (which Top-N ties and session merging depend on), and the keyed operators
/// after the exchange run at the query's parallelism.
fn build(
    node: &Node,
    env: &StreamExecutionEnvironment,
    base: &Path,
) -> Result<(DataStream<Batch>, bool)> {
    let in_source = |stream: DataStream<Batch>, bound: bool| {
        if bound {
            (stream.set_parallelism(1), true)
        } else {
            (stream, false)
        }
    };
    Ok(match node {
        Node::Scan { table } => {
            let source = source(table, base)?;
            (
                env.from_source(source, &format!("Source: {}", table.name)),
                true,
            )
        }
        Node::Calc {
            input,
            input_scope,
            filter,
            columns,
        } => {
            let calc = Calc::new(input_scope, filter.as_ref(), columns)?;
            let (upstream, bound) = build(input, env, base)?;
            in_source(upstream.rich_flat_map(calc).name("Calc"), bound)
        }
        Node::WindowTvf {
            input,
            kind,
            rowtime,
            ..
        } => {
            if let WindowKind::Session { .. } = kind {
                return Err(SqlError::Unsupported(
                    "a SESSION window TVF without GROUP BY window_start, window_end (its rows are only known when the session closes)".into(),
                ));
            }
            let assign = AssignWindows {
                kind: *kind,
                rowtime: *rowtime,
            };
            let (upstream, bound) = build(input, env, base)?;
            in_source(upstream.rich_flat_map(assign).name(kind.name()), bound)
        }
        Node::WindowAggregate { input, spec } => {
            let spec = spec.clone();
            let stream = build(input, env, base)?
                .0
                .key_by_columns((0..spec.keys).collect())
                .transform("WindowAggregate", move |info| {
                    WindowAggregateOp::new(spec.clone(), info)
                });
            (stream, false)
        }
        Node::Rank { input, spec } => {
            let spec = spec.clone();
            let stream = build(input, env, base)?
                .0
                .key_by_columns((0..spec.keys).collect())
                .transform("Rank", move |info| {
                    crate::rank::RankOp::new(spec.clone(), info)
                });
            (stream, false)
        }
        Node::Union { inputs } => {
            let built = inputs
                .iter()
                .map(|i| build(i, env, base))
                .collect::<Result<Vec<_>>>()?;
            let bound = built.iter().all(|(_, b)| *b);
            let streams: Vec<DataStream<Batch>> = built.into_iter().map(|(s, _)| s).collect();
            let (first, rest) = streams
                .split_first()
                .ok_or_else(|| SqlError::Invalid("UNION ALL of nothing".into()))?;
            let rest: Vec<&DataStream<Batch>> = rest.iter().collect();
            (first.union(&rest), bound)
        }
        Node::Join {
            left,
            right,
            spec,
            residual,
            residual_scope,
        } => {
            let schema = schema_of_scope(residual_scope)?;
            let residual = residual
                .as_ref()
                .map(|e| {
                    create_physical_expr(
                        e,
                        &schema,
                        &ExecutionProps::new(),
                        &PhysicalPlanningContext::default(),
                    )
                })
                .transpose()?;
            let residual_schema = Arc::new(schema.as_arrow().clone());
            let spec = spec.clone();
            let keys: Vec<usize> = (0..spec.keys).collect();
            let l = build(left, env, base)?.0.key_by_columns(keys.clone());
            let r = build(right, env, base)?.0.key_by_columns(keys);
            let stream = l.connect(&r).transform("Join", move |info| {
                JoinOp::new(
                    spec.clone(),
                    residual.clone(),
                    residual_schema.clone(),
                    info,
                )
            });
            (stream, false)
        }
        Node::GroupAggregate { input, spec } => {
            let spec = spec.clone();
            let stream = build(input, env, base)?
                .0
                .key_by_columns((0..spec.keys).collect())
                .transform("GroupAggregate", move |info| {
                    crate::group_agg::GroupAggregateOp::new(spec.clone(), info)
                });
            (stream, false)
        }
    })
}

/// Filters and projects batches with DataFusion's physical expressions.
#[derive(Clone)]
struct Calc {
    filter: Option<Arc<dyn PhysicalExpr>>,
    projections: Vec<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
}

impl Calc {
    fn new(
        input: &[ScopeColumn],
        filter: Option<&Expr>,
        columns: &[(String, Expr, FlinkType)],
    ) -> Result<Self> {
        let schema = schema_of_scope(input)?;
        let props = ExecutionProps::new();
        let context = PhysicalPlanningContext::default();
        let compile = |e| create_physical_expr(e, &schema, &props, &context);
        let output: Vec<(String, FlinkType)> =
            columns.iter().map(|(n, _, t)| (n.clone(), *t)).collect();
        Ok(Calc {
            filter: filter.map(compile).transpose()?,
            projections: columns
                .iter()
                .map(|(_, e, _)| compile(e))
                .collect::<datafusion_common::Result<_>>()?,
            output: schema_of(&output),
        })
    }

    fn apply(&self, batch: &RecordBatch) -> datafusion_common::Result<Option<RecordBatch>> {
        let filtered;
        let batch = match &self.filter {
            Some(f) => {
                let keep = f.evaluate(batch)?.into_array(batch.num_rows())?;
                let keep = keep
                    .as_any()
                    .downcast_ref::<arrow_array::BooleanArray>()
                    .ok_or_else(|| {
                        datafusion_common::DataFusionError::Internal(
                            "a filter that is not BOOLEAN".into(),
                        )
                    })?;
                filtered = arrow_select::filter::filter_record_batch(batch, keep)?;
                &filtered
            }
            None => batch,
        };
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let columns = self
            .projections
            .iter()
            .map(|p| p.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<datafusion_common::Result<Vec<ArrayRef>>>()?;
        Ok(Some(RecordBatch::try_new(self.output.clone(), columns)?))
    }
}

impl RichFunction for Calc {}

impl RichFlatMapFunction<Batch, Batch> for Calc {
    fn flat_map(&mut self, value: Batch, out: &mut Collector<'_, Batch>) -> Result<(), UserError> {
        match self.apply(&value.0) {
            Ok(Some(b)) => {
                out.collect(Batch(b));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.strip_backtrace().into()),
        }
    }
}

/// The DataFusion schema of a scope's columns (qualified as the plan names them).
fn schema_of_scope(scope: &[ScopeColumn]) -> Result<DFSchema> {
    let fields = scope
        .iter()
        .map(|c| {
            (
                c.qualifier
                    .as_deref()
                    .map(datafusion_common::TableReference::bare),
                Arc::new(Field::new(&c.name, c.ty.arrow(), true)),
            )
        })
        .collect();
    Ok(DFSchema::new_with_metadata(fields, Default::default())?)
}

/// A window TVF without aggregation: each row once per window it falls in, with the
/// window's start, end and time appended. Late rows are kept (only aggregates drop them).
#[derive(Clone)]
struct AssignWindows {
    kind: WindowKind,
    rowtime: usize,
}

impl AssignWindows {
    fn apply(&self, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
        use crate::values::{value_at, Value};
        let mut rows = Vec::with_capacity(batch.num_rows());
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        let mut windows = Vec::new();
        let time = batch.column(self.rowtime);
        for row in 0..batch.num_rows() {
            let Some(Value::Int(ts)) = value_at(time.as_ref(), row) else {
                return Err("a row's time attribute is NULL".into());
            };
            self.kind.windows_of(ts, &mut windows);
            for &(start, end) in &windows {
                rows.push(row as u32);
                starts.push(start);
                ends.push(end);
            }
        }
        let rows = arrow_array::UInt32Array::from(rows);
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| arrow_select::take::take(c.as_ref(), &rows, None))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        for values in [starts, ends, times] {
            columns.push(Arc::new(arrow_array::TimestampMillisecondArray::from(
                values,
            )));
        }
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in crate::plan::WINDOW_COLUMNS {
            fields.push(Field::new(
                name,
                FlinkType::not_null(crate::types::Kind::Timestamp(3)).arrow(),
                true,
            ));
        }
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
            .map_err(|e| e.to_string())
    }
}

impl RichFunction for AssignWindows {}

impl RichFlatMapFunction<Batch, Batch> for AssignWindows {
    fn flat_map(&mut self, value: Batch, out: &mut Collector<'_, Batch>) -> Result<(), UserError> {
        let b = self.apply(&value.0)?;
        if b.num_rows() > 0 {
            out.collect(Batch(b));
        }
        Ok(())
    }
}
