//! `'connector' = 'print'`: every row to standard output, as Flink's print connector
//! writes it: `+I[1, Facebook, 2023-11-14T22:13:20.001]`, after `identifier> ` when
//! `'print-identifier'` is set and `subtask> ` (counted from 1) when the sink runs on more
//! than one subtask (`identifier:subtask> ` with both). Values print as Java prints them
//! (`null`, strings as they are, timestamps in ISO form).

use super::{SinkFactory, SinkRequest};
use crate::catalog::TableDef;
use crate::changelog::{kind_at, kinds};
use crate::error::Result;
use crate::format;
use crate::types::{FlinkType, Kind};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, ArrayRef};
use std::io::Write;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::sink::{Sink, SinkContext, SinkWriter};
use weir_api::UserError;

/// Prints rows to standard output (updates with their row kinds).
pub struct PrintSink {
    identifier: String,
    types: Vec<FlinkType>,
}

impl PrintSink {
    /// A print sink for `table`'s columns.
    pub fn new(table: &TableDef) -> Self {
        PrintSink {
            identifier: table.option("print-identifier").unwrap_or("").to_string(),
            types: table.columns.iter().map(|c| c.ty).collect(),
        }
    }
}

impl Sink<Batch> for PrintSink {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Batch>>, UserError> {
        let prefix = match (self.identifier.is_empty(), ctx.parallelism > 1) {
            (true, false) => String::new(),
            (true, true) => format!("{}> ", ctx.subtask + 1),
            (false, false) => format!("{}> ", self.identifier),
            (false, true) => format!("{}:{}> ", self.identifier, ctx.subtask + 1),
        };
        Ok(Box::new(PrintWriter {
            prefix,
            types: self.types.clone(),
        }))
    }
}

struct PrintWriter {
    prefix: String,
    types: Vec<FlinkType>,
}

impl SinkWriter<Batch> for PrintWriter {
    fn write(&mut self, value: Batch, _timestamp: Option<i64>) -> Result<(), UserError> {
        let batch = &value.0;
        let kinds = kinds(batch);
        let mut text = String::new();
        for row in 0..batch.num_rows() {
            text.push_str(&self.prefix);
            text.push_str(kind_at(kinds.as_ref(), row).short());
            text.push('[');
            for (i, ty) in self.types.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&java_text(batch.column(i), ty, row));
            }
            text.push_str("]\n");
        }
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| UserError::from(format!("print sink: cannot write to stdout: {e}")))
    }
}

/// Row `row` of `column` as Java's `toString` of Flink's external type prints it.
fn java_text(column: &ArrayRef, ty: &FlinkType, row: usize) -> String {
    if column.is_null(row) {
        return "null".into();
    }
    match ty.kind {
        Kind::Char(_) | Kind::Varchar(_) => column.as_string::<i32>().value(row).to_string(),
        Kind::Timestamp(p) => {
            let (seconds, nanos) = if p <= 3 {
                let ms = column.as_primitive::<TimestampMillisecondType>().value(row);
                (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
            } else if p <= 6 {
                let us = column.as_primitive::<TimestampMicrosecondType>().value(row);
                (us.div_euclid(1_000_000), us.rem_euclid(1_000_000) * 1000)
            } else {
                let ns = column.as_primitive::<TimestampNanosecondType>().value(row);
                (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
            };
            local_date_time(seconds, nanos)
        }
        Kind::Double | Kind::Float => {
            let text = format::value(column, ty, row);
            if text.contains(['.', 'E', 'N', 'I']) {
                text
            } else {
                text + ".0"
            }
        }
        _ => format::value(column, ty, row),
    }
}

/// Java's `LocalDateTime.toString`: `2023-11-14T22:13`, with `:ss` when seconds or
/// nanoseconds are not zero, and the fraction in groups of three digits.
fn local_date_time(seconds: i64, nanos: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let s = seconds.rem_euclid(86_400);
    let date = format::date(days);
    let mut out = format!("{date}T{:02}:{:02}", s / 3600, s / 60 % 60);
    if s % 60 != 0 || nanos != 0 {
        out.push_str(&format!(":{:02}", s % 60));
    }
    if nanos != 0 {
        if nanos % 1_000_000 == 0 {
            out.push_str(&format!(".{:03}", nanos / 1_000_000));
        } else if nanos % 1000 == 0 {
            out.push_str(&format!(".{:06}", nanos / 1000));
        } else {
            out.push_str(&format!(".{nanos:09}"));
        }
    }
    out
}

pub(super) struct PrintFactory;

impl SinkFactory for PrintFactory {
    fn create_sink(&self, request: &SinkRequest<'_>) -> Result<Arc<dyn Sink<Batch>>> {
        Ok(Arc::new(PrintSink::new(request.table)))
    }

    fn accepts_updates(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_java_local_date_times() {
        assert_eq!(local_date_time(1_700_000_000, 0), "2023-11-14T22:13:20");
        assert_eq!(local_date_time(1_699_999_980, 0), "2023-11-14T22:13");
        assert_eq!(
            local_date_time(1_700_000_000, 1_000_000),
            "2023-11-14T22:13:20.001"
        );
        assert_eq!(
            local_date_time(1_700_000_000, 1_500),
            "2023-11-14T22:13:20.000001500"
        );
    }
}
