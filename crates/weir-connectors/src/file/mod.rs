//! Text files: a parallel line source and a per-subtask line sink.

mod sink;
mod source;

pub use sink::{TextFileSink, WriteMode};
pub use source::{FileSplit, TextFileSource};
