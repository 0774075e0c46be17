//! Connectors: how a table's `'connector'` option becomes a source or a sink of Arrow
//! batches, as Flink's `DynamicTableSourceFactory` and `DynamicTableSinkFactory` do.
//!
//! A [`Connectors`] registry maps identifiers to factories. It starts with Weir's built-in
//! connectors (`filesystem` with the `csv` format and `datagen` as sources, `blackhole` and
//! `print` as sinks); an application adds its own with [`Connectors::register_source`] and
//! [`Connectors::register_sink`], as a Flink job puts a factory on its class path.
//!
//! ```
//! use weir_sql::connector::Connectors;
//! let connectors = Connectors::default();
//! assert!(connectors.has_sink("blackhole"));
//! ```
//!
//! A source gets the table's definition and the columns the query reads (projection
//! push-down: a generator builds only those); a table with a `WATERMARK` must emit its
//! watermarks and the per-row watermark column ([`RowWatermarks`] does both). A sink gets
//! the batches of the query's rows under the sink table's column names, with the row-kind
//! column ([`crate::changelog`]) when the query is updating and the sink accepts updates.

mod blackhole;
mod datagen;
mod print;
mod watermarks;

pub use blackhole::BlackholeSink;
pub use print::PrintSink;
pub use watermarks::RowWatermarks;

use crate::catalog::TableDef;
use crate::csv_source::{schema_of, CsvTable, ROW_WATERMARK};
use crate::error::{Result, SqlError};
use crate::types::FlinkType;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::sink::{Sink, SinkContext, SinkWriter};
use weir_api::source::{Boundedness, Source, SourceContext};
use weir_api::UserError;
use weir_runtime::source::SourceReader;

/// What a source factory is asked for: a scan of `table`.
pub struct ScanRequest<'a> {
    /// The table, as declared.
    pub table: &'a TableDef,
    /// The table columns the query reads, in order (indices into `table.columns`).
    pub projection: &'a [usize],
    /// Where relative paths resolve.
    pub base: &'a Path,
}

impl ScanRequest<'_> {
    /// The Arrow schema a scan must emit: the projected columns, then the per-row
    /// watermark column if the table declares a watermark.
    pub fn schema(&self) -> SchemaRef {
        let columns: Vec<(String, FlinkType)> = self
            .projection
            .iter()
            .map(|&i| {
                let c = &self.table.columns[i];
                (c.name.clone(), c.ty)
            })
            .collect();
        let schema = schema_of(&columns);
        if self.table.watermark.is_none() {
            return schema;
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(ROW_WATERMARK, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }
}

/// What a sink factory is asked for: a sink writing into `table`.
pub struct SinkRequest<'a> {
    /// The table, as declared.
    pub table: &'a TableDef,
    /// Where relative paths resolve.
    pub base: &'a Path,
}

/// Makes the sources of tables with one `'connector'` value.
pub trait SourceFactory: Send + Sync {
    /// Builds the source of a scan; errors name the table and the option at fault.
    fn create_source(&self, request: &ScanRequest<'_>) -> Result<Arc<dyn Source<Batch>>>;
}

/// Makes the sinks of tables with one `'connector'` value.
pub trait SinkFactory: Send + Sync {
    /// Builds the sink; errors name the table and the option at fault.
    fn create_sink(&self, request: &SinkRequest<'_>) -> Result<Arc<dyn Sink<Batch>>>;

    /// True if the sink takes updating results (rows with a row kind other than +I), as
    /// Flink's `ChangelogMode` of the sink says; an updating query into a sink that does
    /// not is refused before it runs.
    fn accepts_updates(&self) -> bool;
}

/// The connector factories a session knows, by identifier.
#[derive(Clone)]
pub struct Connectors {
    sources: HashMap<String, Arc<dyn SourceFactory>>,
    sinks: HashMap<String, Arc<dyn SinkFactory>>,
}

impl Default for Connectors {
    /// The built-in connectors.
    fn default() -> Self {
        let mut c = Connectors {
            sources: HashMap::new(),
            sinks: HashMap::new(),
        };
        c.register_source("filesystem", Arc::new(FileSystemFactory));
        c.register_source("datagen", Arc::new(datagen::DataGenFactory));
        c.register_sink("blackhole", Arc::new(blackhole::BlackholeFactory));
        c.register_sink("print", Arc::new(print::PrintFactory));
        c
    }
}

impl Connectors {
    /// Adds (or replaces) the source factory of `identifier`.
    pub fn register_source(&mut self, identifier: &str, factory: Arc<dyn SourceFactory>) {
        self.sources.insert(identifier.to_string(), factory);
    }

    /// Adds (or replaces) the sink factory of `identifier`.
    pub fn register_sink(&mut self, identifier: &str, factory: Arc<dyn SinkFactory>) {
        self.sinks.insert(identifier.to_string(), factory);
    }

    /// True if a sink factory is registered for `identifier`.
    pub fn has_sink(&self, identifier: &str) -> bool {
        self.sinks.contains_key(identifier)
    }

    /// The source of a scan of `request.table`, by its `'connector'`.
    pub fn source(&self, request: &ScanRequest<'_>) -> Result<DynSource> {
        let id = connector_of(request.table)?;
        let factory = self.sources.get(id).ok_or_else(|| {
            SqlError::Unsupported(format!(
                "the '{id}' connector as a source (table '{}'; sources: {})",
                request.table.name,
                names(self.sources.keys())
            ))
        })?;
        Ok(DynSource(factory.create_source(request)?))
    }

    /// The sink factory of `table`, by its `'connector'`.
    pub fn sink_factory(&self, table: &TableDef) -> Result<&Arc<dyn SinkFactory>> {
        let id = connector_of(table)?;
        self.sinks.get(id).ok_or_else(|| {
            SqlError::Unsupported(format!(
                "the '{id}' connector as a sink (table '{}'; sinks: {})",
                table.name,
                names(self.sinks.keys())
            ))
        })
    }
}

fn connector_of(table: &TableDef) -> Result<&str> {
    table
        .option("connector")
        .ok_or_else(|| SqlError::Invalid(format!("table '{}' needs a 'connector'", table.name)))
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = keys.map(String::as_str).collect();
    names.sort_unstable();
    names.join(", ")
}

/// A source chosen at run time, as the DataStream API's `from_source` takes it.
#[derive(Clone)]
pub struct DynSource(pub Arc<dyn Source<Batch>>);

impl Source<Batch> for DynSource {
    fn boundedness(&self) -> Boundedness {
        self.0.boundedness()
    }

    fn is_parallel(&self) -> bool {
        self.0.is_parallel()
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> std::result::Result<Box<dyn SourceReader<Batch>>, UserError> {
        self.0.create_reader(ctx)
    }
}

/// A sink chosen at run time, as the DataStream API's `sink_to` takes it.
#[derive(Clone)]
pub struct DynSink(pub Arc<dyn Sink<Batch>>);

impl Sink<Batch> for DynSink {
    fn create_writer(
        &self,
        ctx: &SinkContext,
    ) -> std::result::Result<Box<dyn SinkWriter<Batch>>, UserError> {
        self.0.create_writer(ctx)
    }
}

/// `'connector' = 'filesystem'` as a source: the `csv` format.
struct FileSystemFactory;

impl SourceFactory for FileSystemFactory {
    fn create_source(&self, request: &ScanRequest<'_>) -> Result<Arc<dyn Source<Batch>>> {
        let table = request.table;
        match table.option("format") {
            Some("csv") => Ok(Arc::new(CsvTable::new(
                table,
                request.base,
                request.projection,
            )?)),
            Some(other) => Err(SqlError::Unsupported(format!(
                "the '{other}' format (table '{}'; Weir reads 'csv' so far)",
                table.name
            ))),
            None => Err(SqlError::Invalid(format!(
                "table '{}' needs a 'format'",
                table.name
            ))),
        }
    }
}
