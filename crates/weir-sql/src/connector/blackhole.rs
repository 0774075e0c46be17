//! `'connector' = 'blackhole'`: a sink that drops every row (Flink's, for benchmarks and
//! for queries run only for their side effects).

use super::{SinkFactory, SinkRequest};
use crate::error::Result;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::sink::{Sink, SinkContext, SinkWriter};
use weir_api::UserError;

/// Drops all rows, updates included.
pub struct BlackholeSink;

impl Sink<Batch> for BlackholeSink {
    fn create_writer(&self, _ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Batch>>, UserError> {
        Ok(Box::new(BlackholeSink))
    }
}

impl SinkWriter<Batch> for BlackholeSink {
    fn write(&mut self, _value: Batch, _timestamp: Option<i64>) -> Result<(), UserError> {
        Ok(())
    }
}

pub(super) struct BlackholeFactory;

impl SinkFactory for BlackholeFactory {
    fn create_sink(&self, _request: &SinkRequest<'_>) -> Result<Arc<dyn Sink<Batch>>> {
        Ok(Arc::new(BlackholeSink))
    }

    fn accepts_updates(&self) -> bool {
        true
    }
}
