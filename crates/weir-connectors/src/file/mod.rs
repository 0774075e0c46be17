//! Files: a parallel source of line formats (text, CSV, JSON lines) and Parquet, a
//! per-subtask line sink, and an exactly-once part-file sink in row and bulk formats.

mod exactly_once;
pub mod format;
mod sink;
mod source;

pub use exactly_once::FileSink;
pub use format::{
    CsvFormat, JsonLinesFormat, LineFormat, ParquetCompression, ParquetFormat, PartFormat,
    PartWriter, TextLines,
};
pub use sink::{TextFileSink, WriteMode};
pub use source::{FileSource, FileSplit, TextFileSource};
