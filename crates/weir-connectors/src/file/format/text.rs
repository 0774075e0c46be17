//! Plain text: a record's `Display` form per line; each line a `String`.

use super::{LineFormat, PartFormat, PartWriter, RowWriter};
use std::fmt::Display;
use std::fs::File;
use std::io::Write;
use weir_api::functions::UserError;

/// Text lines (Flink's `SimpleStringEncoder` and `TextLineInputFormat`): the sink writes
/// each record's `Display` form and a line break; the source reads each line as a
/// `String` (invalid UTF-8 replaced, a trailing `\r` dropped).
#[derive(Clone, Copy, Debug, Default)]
pub struct TextLines;

impl<T: Display + Send + 'static> PartFormat<T> for TextLines {
    fn open(&self, file: File) -> Result<Box<dyn PartWriter<T>>, UserError> {
        Ok(Box::new(RowWriter::new(file, |r: &T, out| {
            writeln!(out, "{r}").map_err(Into::into)
        })))
    }

    fn suffix(&self) -> &str {
        ""
    }
}

impl LineFormat<String> for TextLines {
    fn decode(&self, line: &[u8]) -> Result<Option<String>, UserError> {
        Ok(Some(String::from_utf8_lossy(line).into_owned()))
    }
}
