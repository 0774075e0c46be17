//! A planned query as a streaming job: each [`Node`] of the plan becomes Weir operators over
//! Arrow batches: the table's source, vectorised `Calc`s (Flink's name for a projection
//! with a filter) that evaluate DataFusion physical expressions on each batch, window
//! assigners, and window aggregates behind a batch exchange keyed by their group key; then
//! the result back to the client.

use crate::catalog::TableDef;
use crate::connector::{Connectors, DynSink, ScanRequest, SinkRequest};
use crate::csv_source::schema_of;
use crate::error::{Result, SqlError};
use crate::join::JoinOp;
use crate::plan::{Node, Query, ScopeColumn};
use crate::types::FlinkType;
use crate::window_agg::{WindowAggregateOp, WindowAggregator};
use crate::window_slices::SlicedWindowAggregateOp;
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
use weir_core::StateBackendKind;

/// The rows a query produced, as batches of its output columns; the batches of an updating
/// query also hold a row-kind column ([`crate::changelog`]).
pub struct QueryOutput {
    /// The output columns.
    pub columns: Vec<(String, FlinkType)>,
    /// The result batches, in the order the client received them.
    pub batches: Vec<RecordBatch>,
}

/// Where a job's tables are found: the directory relative paths resolve against, the
/// connector factories, and the parallelism its operators run at.
#[derive(Clone, Copy)]
pub struct JobSettings<'a> {
    /// Where relative `'path'`s resolve.
    pub base: &'a Path,
    /// The connectors tables may name.
    pub connectors: &'a Connectors,
    /// The parallelism of the keyed operators (and of parallel sources).
    pub parallelism: u32,
    /// Where the operators keep their state (`SET 'state.backend.type'`).
    pub state_backend: &'a weir_core::StateBackendConfig,
    /// Exactly-once checkpoints this often (`SET 'execution.checkpointing.interval'`).
    pub checkpoint_interval: Option<std::time::Duration>,
    /// Idle state retention of the updating operators (`SET 'table.exec.state.ttl'`).
    pub state_ttl: Option<std::time::Duration>,
}

/// Runs `query` on the embedded mini-cluster and returns its rows.
pub fn run(query: &Query, settings: JobSettings<'_>) -> Result<QueryOutput> {
    let started = start(query, settings)?;
    started.client.wait()?;
    Ok(QueryOutput {
        columns: query.columns.clone(),
        batches: started.batches.take().into_iter().map(|b| b.0).collect(),
    })
}

/// A SELECT's job started in the background: its client, and the result batches as they
/// arrive. The environment holds the embedded mini-cluster the job runs on.
pub struct StartedQuery {
    /// The environment that submitted the job.
    pub env: StreamExecutionEnvironment,
    /// The running job.
    pub client: weir_api::JobClient,
    /// The result batches, taken as they come.
    pub batches: weir_api::sink::CollectedValues<Batch>,
}

/// Starts `query` on the embedded mini-cluster without waiting for it (an interactive
/// client shows its result as it changes, and may cancel it).
pub fn start(query: &Query, settings: JobSettings<'_>) -> Result<StartedQuery> {
    let env = environment(settings);
    let batches = Builder {
        env: &env,
        settings,
    }
    .build(&query.root)?
    .0
    .collect_values();
    let client = env.execute_async("SELECT")?;
    Ok(StartedQuery {
        env,
        client,
        batches,
    })
}

/// The job of `INSERT INTO sink SELECT ...`, built but not started: the query's rows,
/// cast to the sink's column types, into the sink's connector. The caller executes it
/// (`env.execute(name)`), so a benchmark can time the job without its planning.
///
/// Checked before anything runs, as Flink's planner checks: the query must have as many
/// columns as the sink, each implicitly castable to the sink column's type
/// ([`implicitly_castable`]), and an updating query needs a sink that takes updates.
///
/// `targets` is the statement's column list (`INSERT INTO t (a, c) SELECT ...`): the
/// query's columns go to those sink columns and the others get NULL; empty means all of
/// the sink's columns in order.
pub fn insert_job(
    query: &Query,
    sink: &TableDef,
    targets: &[String],
    settings: JobSettings<'_>,
) -> Result<StreamExecutionEnvironment> {
    let factory = settings.connectors.sink_factory(sink)?;
    if query.root.is_updating() && !factory.accepts_updates() {
        return Err(SqlError::Invalid(format!(
            "table sink '{}' doesn't support consuming update changes, which the query produces (its '{}' connector takes inserts only)",
            sink.name,
            sink.option("connector").unwrap_or_default()
        )));
    }
    let cast = SinkCast::new(query, sink, targets)?;
    let connector = factory.create_sink(&SinkRequest {
        table: sink,
        base: settings.base,
    })?;
    let env = environment(settings);
    Builder {
        env: &env,
        settings,
    }
    .build(&query.root)?
    .0
    .rich_flat_map(cast)
    .name("SinkConversion")
    .sink_to(DynSink(connector), &sink.name);
    Ok(env)
}

fn environment(settings: JobSettings<'_>) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(settings.parallelism.max(1) as i64);
    env.set_state_backend(settings.state_backend.clone());
    if let Some(interval) = settings.checkpoint_interval {
        env.enable_checkpointing(interval);
    }
    env
}

/// True if Flink casts a value of `from` to `to` implicitly (on INSERT), as its
/// `LogicalTypeCasts.supportsImplicitCast` says: the same kind (any length, precision or
/// nullability; a CHAR only from a CHAR), a number into a wider one or into any DECIMAL,
/// and a TIMESTAMP into a DATE.
pub fn implicitly_castable(from: &FlinkType, to: &FlinkType) -> bool {
    use crate::types::Kind::*;
    let rank = |k: &crate::types::Kind| match k {
        TinyInt => Some(1),
        SmallInt => Some(2),
        Int => Some(3),
        BigInt => Some(4),
        Decimal(..) => Some(5),
        Float => Some(6),
        Double => Some(7),
        _ => None,
    };
    match (&from.kind, &to.kind) {
        (Char(_), Char(_)) | (Char(_) | Varchar(_), Varchar(_)) => true,
        (Timestamp(_), Timestamp(_) | Date) => true,
        // A DECIMAL takes any number.
        (a, Decimal(..)) => rank(a).is_some(),
        (a, b) if a == b => true,
        (a, b) => matches!((rank(a), rank(b)), (Some(x), Some(y)) if x <= y),
    }
}

/// Turns a query's batches into the sink table's: its column names, the sink's types,
/// NOT NULL enforced (Flink's default `table.exec.sink.not-null-enforcer = ERROR`), the
/// row-kind column kept for sinks that take updates.
#[derive(Clone)]
struct SinkCast {
    sink: String,
    columns: Vec<(String, FlinkType)>,
    /// For each sink column, the query column written into it (`None`: NULL).
    sources: Vec<Option<usize>>,
    /// The query's row-kind column, if it is updating.
    row_kind: Option<usize>,
    schema: SchemaRef,
}

impl SinkCast {
    fn new(query: &Query, sink: &TableDef, targets: &[String]) -> Result<Self> {
        let query_types: Vec<String> = query
            .columns
            .iter()
            .map(|(n, t)| format!("{n}: {}", t.display()))
            .collect();
        let sink_types: Vec<String> = sink
            .columns
            .iter()
            .map(|c| format!("{}: {}", c.name, c.ty.display()))
            .collect();
        let mismatch = |why: String| {
            SqlError::Invalid(format!(
                "column types of query result and sink for '{}' do not match: {why}. Query schema: [{}]; sink schema: [{}]",
                sink.name,
                query_types.join(", "),
                sink_types.join(", ")
            ))
        };
        let targets: Vec<usize> = if targets.is_empty() {
            (0..sink.columns.len()).collect()
        } else {
            targets
                .iter()
                .map(|t| {
                    sink.columns
                        .iter()
                        .position(|c| &c.name == t)
                        .ok_or_else(|| {
                            SqlError::Invalid(format!(
                                "unknown target column '{t}' of table '{}'",
                                sink.name
                            ))
                        })
                })
                .collect::<Result<_>>()?
        };
        if query.columns.len() != targets.len() {
            return Err(mismatch(format!(
                "the query has {} columns, the sink {}",
                query.columns.len(),
                targets.len()
            )));
        }
        let mut sources = vec![None; sink.columns.len()];
        for (i, ((_, from), &to)) in query.columns.iter().zip(&targets).enumerate() {
            let to_column = &sink.columns[to];
            if !implicitly_castable(from, &to_column.ty) {
                return Err(mismatch(format!(
                    "incompatible types for sink column '{}' at position {i}",
                    to_column.name
                )));
            }
            if sources[to].replace(i).is_some() {
                return Err(SqlError::Invalid(format!(
                    "target column '{}' of table '{}' is named twice",
                    to_column.name, sink.name
                )));
            }
        }
        if let Some(c) = sink
            .columns
            .iter()
            .zip(&sources)
            .find(|(c, s)| s.is_none() && !c.ty.nullable)
        {
            return Err(SqlError::Invalid(format!(
                "column '{}' of table '{}' is NOT NULL and gets no value from the column list",
                c.0.name, sink.name
            )));
        }
        let mut fields: Vec<Field> = sink
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow(), true))
            .collect();
        if query.root.is_updating() {
            fields.push(Field::new(
                crate::changelog::ROW_KIND,
                arrow_schema::DataType::Int8,
                false,
            ));
        }
        Ok(SinkCast {
            sink: sink.name.clone(),
            columns: sink
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty))
                .collect(),
            sources,
            row_kind: query.root.is_updating().then_some(query.columns.len()),
            schema: Arc::new(arrow_schema::Schema::new(fields)),
        })
    }

    fn apply(&self, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
        let mut arrays = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in self.schema.fields().iter().enumerate() {
            let from = match self.sources.get(i) {
                Some(Some(q)) => *q,
                Some(None) => {
                    arrays.push(arrow_array::new_null_array(
                        field.data_type(),
                        batch.num_rows(),
                    ));
                    continue;
                }
                None => self
                    .row_kind
                    .ok_or("a row-kind column without an updating query")?,
            };
            let column = batch.column(from);
            let column = if column.data_type() == field.data_type() {
                column.clone()
            } else {
                arrow_cast::cast(column, field.data_type()).map_err(|e| e.to_string())?
            };
            if let Some((name, ty)) = self.columns.get(i) {
                if !ty.nullable && column.null_count() > 0 {
                    return Err(format!(
                        "column '{name}' of sink '{}' is NOT NULL, however, a null value is being written into it",
                        self.sink
                    ));
                }
            }
            arrays.push(column);
        }
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| e.to_string())
    }
}

impl RichFunction for SinkCast {}

impl RichFlatMapFunction<Batch, Batch> for SinkCast {
    fn flat_map(&mut self, value: Batch, out: &mut Collector<'_, Batch>) -> Result<(), UserError> {
        out.collect(Batch(self.apply(&value.0)?));
        Ok(())
    }
}

/// Builds a plan's operators into one job.
struct Builder<'a> {
    env: &'a StreamExecutionEnvironment,
    settings: JobSettings<'a>,
}

impl Builder<'_> {
    /// The TTL of the updating operators' state, if one is set.
    fn state_ttl(&self) -> Option<crate::retention::StateTtl> {
        self.settings
            .state_ttl
            .map(|d| crate::retention::StateTtl(d.as_millis().min(i64::MAX as u128) as i64))
            .filter(|t| t.0 > 0)
    }

    /// The stream of batches `node` produces, and whether it runs in its source's one
    /// subtask.
    ///
    /// The file source reads on one subtask (a file is one split). The stateless operators
    /// after it run there too, chained to it, as Flink chains them into the one active
    /// source task: rows reach the first keyed exchange in file order, so every key's rows
    /// keep their order (which Top-N ties and session merging depend on), and the keyed
    /// operators after the exchange run at the query's parallelism. A parallel source
    /// (a generator) and the operators chained to it run at the query's parallelism.
    fn build(&self, node: &Node) -> Result<(DataStream<Batch>, bool)> {
        let in_source = |stream: DataStream<Batch>, bound: bool| {
            if bound {
                (stream.set_parallelism(1), true)
            } else {
                (stream, false)
            }
        };
        Ok(match node {
            Node::Scan { table, projection } => {
                let source = self.settings.connectors.source(&ScanRequest {
                    table,
                    projection,
                    base: self.settings.base,
                })?;
                let single = !source.is_parallel();
                let name = format!("Source: {}", table.name);
                let stream = match alignment_of(table)? {
                    Some((group, drift)) => {
                        self.env.from_source_aligned(source, &name, &group, drift)
                    }
                    None => self.env.from_source(source, &name),
                };
                in_source(stream, single)
            }
            Node::Calc {
                input,
                input_scope,
                filter,
                columns,
            } => {
                let calc = Calc::new(input_scope, filter.as_ref(), columns)?;
                let (upstream, bound) = self.build(input)?;
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
                let (upstream, bound) = self.build(input)?;
                in_source(upstream.rich_flat_map(assign).name(kind.name()), bound)
            }
            Node::WindowAggregate { input, spec } => {
                let spec = spec.clone();
                let sliced = SlicedWindowAggregateOp::supports(&spec);
                let stream = self
                    .build(input)?
                    .0
                    .key_by_columns((0..spec.keys).collect())
                    .transform("WindowAggregate", move |info| {
                        // By slices on the heap backend; RocksDB keeps the accumulators
                        // of the general operator.
                        Ok(
                            if sliced && info.state_backend.kind == StateBackendKind::Heap {
                                WindowAggregator::Sliced(SlicedWindowAggregateOp::new(
                                    spec.clone(),
                                    info,
                                )?)
                            } else {
                                WindowAggregator::General(WindowAggregateOp::new(
                                    spec.clone(),
                                    info,
                                )?)
                            },
                        )
                    });
                (stream, false)
            }
            Node::Rank { input, spec } => {
                let spec = Arc::new(crate::rank::RankSpec {
                    state_ttl: self.state_ttl(),
                    ..spec.as_ref().clone()
                });
                let stream = self
                    .build(input)?
                    .0
                    .key_by_columns((0..spec.keys).collect())
                    .transform("Rank", move |info| {
                        crate::rank::RankOp::new(spec.clone(), info)
                    });
                (stream, false)
            }
            Node::OverAggregate { input, spec } => {
                let (upstream, one_source) = self.build(input)?;
                let spec = Arc::new(crate::over_agg::OverSpec {
                    rows_advance_watermark: one_source,
                    ..spec.as_ref().clone()
                });
                let stream = upstream
                    .key_by_columns((0..spec.keys).collect())
                    .transform("OverAggregate", move |info| {
                        crate::over_agg::OverAggregateOp::new(spec.clone(), info)
                    });
                (stream, false)
            }
            Node::Union { inputs } => {
                let built = inputs
                    .iter()
                    .map(|i| self.build(i))
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
                let spec = Arc::new(crate::join::JoinSpec {
                    state_ttl: self.state_ttl(),
                    ..spec.as_ref().clone()
                });
                let keys: Vec<usize> = (0..spec.keys).collect();
                let l = self.build(left)?.0.key_by_columns(keys.clone());
                let r = self.build(right)?.0.key_by_columns(keys);
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
                let spec = Arc::new(crate::group_agg::GroupAggSpec {
                    state_ttl: self.state_ttl(),
                    ..spec.as_ref().clone()
                });
                let stream = self
                    .build(input)?
                    .0
                    .key_by_columns((0..spec.keys).collect())
                    .transform("GroupAggregate", move |info| {
                        crate::group_agg::GroupAggregateOp::new(spec.clone(), info)
                    });
                (stream, false)
            }
        })
    }
}

/// A table's watermark alignment group and maximum drift (Flink's
/// `'scan.watermark.alignment.group'` and `'scan.watermark.alignment.max-drift'`): both or
/// neither, on a table with a watermark.
fn alignment_of(table: &TableDef) -> Result<Option<(String, std::time::Duration)>> {
    let group = table.option("scan.watermark.alignment.group");
    let drift = table.option("scan.watermark.alignment.max-drift");
    let (group, drift) = match (group, drift) {
        (None, None) => return Ok(None),
        (Some(g), Some(d)) => (g, d),
        _ => {
            return Err(SqlError::Invalid(format!(
                "table '{}': 'scan.watermark.alignment.group' and 'scan.watermark.alignment.max-drift' go together",
                table.name
            )))
        }
    };
    if table.watermark.is_none() {
        return Err(SqlError::Invalid(format!(
            "table '{}': watermark alignment needs a WATERMARK in the table",
            table.name
        )));
    }
    let drift = crate::client::parse_duration(drift).ok_or_else(|| {
        SqlError::Invalid(format!(
            "table '{}': 'scan.watermark.alignment.max-drift' = '{drift}' is not a duration",
            table.name
        ))
    })?;
    Ok(Some((group.to_string(), drift)))
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
        // A Calc may keep no column (`COUNT(*)` reads none): the batch still has its rows.
        Ok(Some(RecordBatch::try_new_with_options(
            self.output.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?))
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

#[cfg(test)]
mod tests {
    use super::implicitly_castable;
    use crate::types::{FlinkType, Kind};

    #[test]
    fn insert_casts_follow_flinks_implicit_rules() {
        let t = FlinkType::nullable;
        let yes = [
            (Kind::Int, Kind::BigInt),
            (Kind::BigInt, Kind::Double),
            (Kind::Double, Kind::Decimal(10, 2)),
            (Kind::Decimal(20, 4), Kind::Decimal(10, 2)),
            (Kind::Char(3), Kind::Varchar(10)),
            (Kind::Char(3), Kind::Char(5)),
            (Kind::Timestamp(3), Kind::Timestamp(6)),
            (Kind::Timestamp(3), Kind::Date),
        ];
        let no = [
            (Kind::BigInt, Kind::Int),
            (Kind::Double, Kind::BigInt),
            (Kind::Varchar(10), Kind::Char(10)),
            (Kind::Varchar(10), Kind::BigInt),
            (Kind::Date, Kind::Timestamp(3)),
            (Kind::Boolean, Kind::Int),
        ];
        for (from, to) in yes {
            assert!(implicitly_castable(&t(from), &t(to)), "{from:?} -> {to:?}");
        }
        for (from, to) in no {
            assert!(!implicitly_castable(&t(from), &t(to)), "{from:?} -> {to:?}");
        }
    }
}
