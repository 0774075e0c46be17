//! File formats: how records become the bytes of a part file ([`PartFormat`], for the
//! exactly-once [`FileSink`](super::FileSink)) and how the lines of a file become records
//! ([`LineFormat`], for the [`FileSource`](super::FileSource)).
//!
//! | format | sink | source |
//! |---|---|---|
//! | [`TextLines`]: one `Display` line per record / each line a `String` | row | lines, split by block |
//! | [`CsvFormat`]: serde records as CSV rows, optional header | row | lines, split by block |
//! | [`JsonLinesFormat`]: serde records as one JSON object per line | row | lines, split by block |
//! | [`ParquetFormat`]: serde records in Parquet row groups (arrow) | bulk | one split per file |
//!
//! Line formats read records that do not span lines (a CSV field with a line break in
//! quotes cannot be split by lines; Weir's line source refuses nothing, it reads such a
//! record as two broken ones).

mod csv;
mod json;
pub(crate) mod parquet;
mod text;

pub use self::csv::CsvFormat;
pub use self::json::JsonLinesFormat;
pub use self::parquet::{ParquetCompression, ParquetFormat};
pub use self::text::TextLines;

use std::fs::File;
use weir_api::functions::UserError;

/// Writes the records of one part file.
pub trait PartWriter<T>: Send {
    /// Appends a record.
    fn write(&mut self, record: &T) -> Result<(), UserError>;
    /// Writes what is buffered and the file's footer, and returns the file (to be synced).
    fn finish(self: Box<Self>) -> Result<File, UserError>;
}

/// How a [`FileSink`](super::FileSink) writes part files (Flink's row encoders and bulk
/// writer factories).
pub trait PartFormat<T>: Send + Sync + 'static {
    /// A writer for a new, empty part file.
    fn open(&self, file: File) -> Result<Box<dyn PartWriter<T>>, UserError>;
    /// The part files' name suffix, e.g. `.csv`.
    fn suffix(&self) -> &str;
}

/// How a [`FileSource`](super::FileSource) makes records of lines (Flink's stream
/// formats for line-oriented files).
pub trait LineFormat<T>: Send + Sync + 'static {
    /// The record of one line (without its line break), or `None` to skip the line.
    fn decode(&self, line: &[u8]) -> Result<Option<T>, UserError>;
    /// True if the first line of every file is a header, not a record.
    fn has_header(&self) -> bool {
        false
    }
}

/// A row-format part writer: records encoded one after another into a buffered file.
pub(crate) struct RowWriter<T> {
    out: std::io::BufWriter<File>,
    encode: fn(&T, &mut std::io::BufWriter<File>) -> Result<(), UserError>,
}

impl<T> RowWriter<T> {
    pub(crate) fn new(
        file: File,
        encode: fn(&T, &mut std::io::BufWriter<File>) -> Result<(), UserError>,
    ) -> Self {
        RowWriter {
            out: std::io::BufWriter::with_capacity(64 * 1024, file),
            encode,
        }
    }
}

impl<T> PartWriter<T> for RowWriter<T> {
    fn write(&mut self, record: &T) -> Result<(), UserError> {
        (self.encode)(record, &mut self.out)
    }

    fn finish(self: Box<Self>) -> Result<File, UserError> {
        self.out.into_inner().map_err(|e| e.into_error().into())
    }
}
