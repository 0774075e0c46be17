//! A planned query as a streaming job: the table's source, then one vectorised `Calc`
//! operator (Flink's name for a projection with a filter) that evaluates the query's
//! expressions on each Arrow batch, then the result back to the client.

use crate::catalog::TableDef;
use crate::csv_source::{schema_of, CsvTable};
use crate::error::{Result, SqlError};
use crate::plan::Query;
use crate::types::FlinkType;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use datafusion_common::DFSchema;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use std::path::Path;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::prelude::*;

/// The rows a query produced, as batches of its output columns (append-only: every row is
/// an insertion).
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
    let source = source(&query.table, base)?;
    let calc = Calc::new(query, source.schema())?;
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism.max(1) as i64);
    let rows = env
        .from_source(source, &format!("Source: {}", query.table.name))
        .rebalance()
        .rich_flat_map(calc)
        .name("Calc")
        .collect_values();
    env.execute("SELECT")?;
    Ok(QueryOutput {
        columns: query
            .columns
            .iter()
            .map(|(n, _, t)| (n.clone(), *t))
            .collect(),
        batches: rows.take().into_iter().map(|b| b.0).collect(),
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
    fn new(query: &Query, input: SchemaRef) -> Result<Self> {
        let schema = DFSchema::try_from_qualified_schema(query.table.name.as_str(), &input)?;
        let props = ExecutionProps::new();
        let context = PhysicalPlanningContext::default();
        let compile = |e| create_physical_expr(e, &schema, &props, &context);
        let columns: Vec<(String, FlinkType)> = query
            .columns
            .iter()
            .map(|(n, _, t)| (n.clone(), *t))
            .collect();
        Ok(Calc {
            filter: query.filter.as_ref().map(compile).transpose()?,
            projections: query
                .columns
                .iter()
                .map(|(_, e, _)| compile(e))
                .collect::<datafusion_common::Result<_>>()?,
            output: schema_of(&columns),
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
