//! Text files: a parallel line source, a per-subtask line sink, and an exactly-once
//! part-file sink.

mod exactly_once;
mod sink;
mod source;

pub use exactly_once::FileSink;
pub use sink::{TextFileSink, WriteMode};
pub use source::{FileSplit, TextFileSource};
