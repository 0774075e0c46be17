//! Sinks: the [`Sink`] trait, and the built-in print, discard and collect sinks.

use crate::functions::UserError;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Facts a sink writer is created with.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SinkContext {
    /// Subtask index, from 0.
    pub subtask: u32,
    /// Number of sink subtasks.
    pub parallelism: u32,
    /// When the job is restored: this subtask's share of what writers returned from
    /// [`SinkWriter::snapshot_state`] (e.g. files prepared for commit), split evenly if the
    /// parallelism changed. `None` on a fresh start.
    pub restored_state: Option<Vec<Vec<u8>>>,
    /// When the job is restored: the checkpoint (or savepoint) it restores from. Everything
    /// a writer prepared for a later checkpoint belongs to an attempt that failed and may be
    /// rolled back; two-phase-commit sinks use it to find such leftovers.
    pub restored_checkpoint_id: Option<u64>,
    /// The task's processing-time service: a writer that flushes on a timer asks here for a
    /// callback ([`ProcessingTimeService::request`]) and gets
    /// [`SinkWriter::on_processing_time`] on its own thread when it is due.
    pub processing_time: ProcessingTimeService,
}

impl SinkContext {
    /// The context of subtask `subtask` of `parallelism`, started fresh (for writers driven
    /// by hand, e.g. in tests).
    pub fn new(subtask: u32, parallelism: u32) -> Self {
        SinkContext {
            subtask,
            parallelism,
            restored_state: None,
            restored_checkpoint_id: None,
            processing_time: ProcessingTimeService::default(),
        }
    }

    /// The same context, restored from `checkpoint_id` with this subtask's share of the
    /// writers' state.
    pub fn restored(mut self, checkpoint_id: u64, state: Vec<Vec<u8>>) -> Self {
        self.restored_checkpoint_id = Some(checkpoint_id);
        self.restored_state = Some(state);
        self
    }
}

/// A destination for records: creates one writer per subtask (Flink's `Sink`).
pub trait Sink<T>: Send + Sync + 'static {
    /// Creates the writer of one subtask.
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError>;
}

/// Writes the records of one sink subtask.
pub trait SinkWriter<T>: Send {
    /// Writes one record.
    fn write(&mut self, value: T, timestamp: Option<i64>) -> Result<(), UserError>;

    /// The input ended: write out everything buffered.
    fn finish(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// A checkpoint barrier passed: prepare what was written since the last checkpoint
    /// for commit (the first phase of a two-phase commit) and return the writer's state,
    /// e.g. the prepared files. Writers without state return nothing (the default).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        Ok(Vec::new())
    }

    /// A checkpoint completed (commit what was prepared up to it), was aborted, or the job
    /// ended ([`CheckpointNotice::Final`]: commit everything prepared).
    fn notify_checkpoint(&mut self, _notice: CheckpointNotice) -> Result<(), UserError> {
        Ok(())
    }

    /// Processing time reached `now_ms`, at or after a moment the writer asked for through
    /// [`SinkContext::processing_time`] (e.g. to flush a batch that waited long enough).
    /// Runs on the task's thread, between records.
    fn on_processing_time(&mut self, _now_ms: i64) -> Result<(), UserError> {
        Ok(())
    }
}

pub use weir_runtime::checkpoint::CheckpointNotice;
pub use weir_runtime::time::ProcessingTimeService;

/// The list state under which a sink writer's state is stored.
pub(crate) const SINK_WRITER_STATE: &str = "sink-writer";

/// Prints each record on standard output (or error), one per line: strings as they are,
/// other values in their `Debug` form. With parallelism above
/// 1 each line starts with `N> ` where N is the subtask index + 1; with an identifier,
/// `identifier:N> ` (or `identifier> ` at parallelism 1), as Flink's `PrintSink` does.
pub struct PrintSink {
    identifier: Option<String>,
    stderr: bool,
}

impl PrintSink {
    /// Prints to stdout, optionally prefixed with `identifier`.
    pub fn new(identifier: Option<String>, stderr: bool) -> Self {
        PrintSink { identifier, stderr }
    }
}

struct PrintWriter {
    prefix: String,
    stderr: bool,
}

/// The line prefix of a print sink subtask, as Flink's `PrintSinkOutputWriter` makes it.
fn print_prefix(identifier: Option<&str>, subtask: u32, parallelism: u32) -> String {
    match (identifier, parallelism > 1) {
        (Some(id), true) => format!("{id}:{}> ", subtask + 1),
        (Some(id), false) => format!("{id}> "),
        (None, true) => format!("{}> ", subtask + 1),
        (None, false) => String::new(),
    }
}

impl<T: std::fmt::Debug + Send + 'static> Sink<T> for PrintSink {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(PrintWriter {
            prefix: print_prefix(self.identifier.as_deref(), ctx.subtask, ctx.parallelism),
            stderr: self.stderr,
        }))
    }
}

impl<T: std::fmt::Debug + 'static> SinkWriter<T> for PrintWriter {
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        // Strings print as they are (as Flink prints a String's toString); everything else
        // in its Debug form.
        let any = &value as &dyn std::any::Any;
        let text = match any.downcast_ref::<String>() {
            Some(s) => std::borrow::Cow::Borrowed(s.as_str()),
            None => std::borrow::Cow::Owned(format!("{value:?}")),
        };
        let r = if self.stderr {
            writeln!(std::io::stderr().lock(), "{}{text}", self.prefix)
        } else {
            writeln!(std::io::stdout().lock(), "{}{text}", self.prefix)
        };
        r.map_err(|e| format!("cannot print to standard output: {e}").into())
    }
}

/// Drops every record (Flink's `DiscardingSink`).
pub struct DiscardSink;

struct DiscardWriter;

impl<T> SinkWriter<T> for DiscardWriter {
    #[inline]
    fn write(&mut self, _: T, _: Option<i64>) -> Result<(), UserError> {
        Ok(())
    }
}

impl<T: 'static> Sink<T> for DiscardSink {
    fn create_writer(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(DiscardWriter))
    }
}

/// The records a collect sink gathered, readable once the job has ended (or while it runs,
/// in batches). Order across subtasks is arbitrary.
pub struct CollectedValues<T> {
    values: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectedValues<T> {
    fn clone(&self) -> Self {
        CollectedValues {
            values: self.values.clone(),
        }
    }
}

impl<T> CollectedValues<T> {
    pub(crate) fn new() -> Self {
        CollectedValues {
            values: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Takes the values gathered so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.values.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of values gathered so far.
    pub fn len(&self) -> usize {
        self.values.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True if nothing was gathered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Gathers records into a [`CollectedValues`] (for tests and clients).
pub(crate) struct CollectSink<T> {
    pub target: CollectedValues<T>,
}

/// Publishes every record at once, so a client sees results of a job that never ends
/// (the lock is uncontended but for the reader).
struct CollectWriter<T> {
    target: CollectedValues<T>,
}

impl<T: Send> SinkWriter<T> for CollectWriter<T> {
    #[inline]
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        self.target
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(value);
        Ok(())
    }
}

impl<T: Send + 'static> Sink<T> for CollectSink<T> {
    fn create_writer(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(CollectWriter {
            target: self.target.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::print_prefix;

    #[test]
    fn print_prefixes_follow_flink() {
        assert_eq!(print_prefix(None, 0, 1), "");
        assert_eq!(print_prefix(None, 2, 4), "3> ");
        assert_eq!(print_prefix(Some("out"), 0, 1), "out> ");
        assert_eq!(print_prefix(Some("out"), 1, 2), "out:2> ");
    }
}
