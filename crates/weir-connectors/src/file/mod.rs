//! Files: a parallel source of line formats (text, CSV, JSON lines) and Parquet, bounded
//! or monitoring for new files, a per-subtask line sink, and an exactly-once part-file sink
//! in row and bulk formats; on local disk or S3.

mod discovery;
mod exactly_once;
pub mod format;
mod part_store;
mod sink;
mod source;
mod store;

pub use exactly_once::FileSink;
pub use format::{
    CsvFormat, JsonLinesFormat, LineFormat, ParquetCompression, ParquetFormat, PartFormat,
    PartWriter, TextLines,
};
pub use sink::{TextFileSink, WriteMode};
pub use source::{FileSource, FileSplit, TextFileSource};
