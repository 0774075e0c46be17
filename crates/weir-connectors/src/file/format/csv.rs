//! CSV through serde (the `csv` crate): records as rows, fields in declaration order.

use super::{LineFormat, PartFormat, PartWriter};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::BufWriter;
use std::marker::PhantomData;
use weir_api::functions::UserError;

/// CSV rows of serde records (Flink's CSV format): the sink writes one row per record,
/// after a header row of the field names if asked; the source reads one record per line,
/// by position, skipping each file's first line if it has a header. Fields that need it
/// are quoted (`"`), quotes doubled.
pub struct CsvFormat<T> {
    delimiter: u8,
    header: bool,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for CsvFormat<T> {
    fn clone(&self) -> Self {
        CsvFormat {
            delimiter: self.delimiter,
            header: self.header,
            _records: PhantomData,
        }
    }
}

impl<T> Default for CsvFormat<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CsvFormat<T> {
    /// Comma-separated, without a header.
    pub fn new() -> Self {
        CsvFormat {
            delimiter: b',',
            header: false,
            _records: PhantomData,
        }
    }

    /// Separates fields with `delimiter` (one byte, e.g. `b';'` or `b'\t'`).
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Files start with a header row: written by the sink (the field names), skipped by
    /// the source.
    pub fn with_header(mut self) -> Self {
        self.header = true;
        self
    }
}

struct CsvWriter {
    out: csv::Writer<BufWriter<File>>,
}

impl<T: Serialize> PartWriter<T> for CsvWriter {
    fn write(&mut self, record: &T) -> Result<(), UserError> {
        self.out
            .serialize(record)
            .map_err(|e| format!("cannot write a record as CSV: {e}").into())
    }

    fn finish(self: Box<Self>) -> Result<File, UserError> {
        let buffered = self
            .out
            .into_inner()
            .map_err(|e| format!("cannot write CSV: {}", e.error()))?;
        buffered.into_inner().map_err(|e| e.into_error().into())
    }
}

impl<T: Serialize + Send + 'static> PartFormat<T> for CsvFormat<T> {
    fn open(&self, file: File) -> Result<Box<dyn PartWriter<T>>, UserError> {
        let out = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(self.header)
            .from_writer(BufWriter::with_capacity(64 * 1024, file));
        Ok(Box::new(CsvWriter { out }))
    }

    fn suffix(&self) -> &str {
        ".csv"
    }
}

impl<T: DeserializeOwned + 'static> LineFormat<T> for CsvFormat<T> {
    fn decode(&self, line: &[u8]) -> Result<Option<T>, UserError> {
        if line.is_empty() {
            return Ok(None);
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(false)
            .from_reader(line);
        match reader.deserialize::<T>().next() {
            Some(Ok(record)) => Ok(Some(record)),
            Some(Err(e)) => Err(format!(
                "cannot read the CSV row '{}': {e}",
                String::from_utf8_lossy(line)
            )
            .into()),
            None => Ok(None),
        }
    }

    fn has_header(&self) -> bool {
        self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Row {
        name: String,
        n: i64,
        price: Option<f64>,
    }

    #[test]
    fn rows_round_trip_with_quotes_header_and_empty_fields() {
        let f = CsvFormat::<Row>::new().with_header();
        let file = tempfile::tempfile().unwrap();
        let mut w = PartFormat::<Row>::open(&f, file).unwrap();
        let rows = vec![
            Row {
                name: "plain".into(),
                n: 1,
                price: Some(2.5),
            },
            Row {
                name: "a, \"quoted\" one".into(),
                n: -7,
                price: None,
            },
        ];
        for r in &rows {
            w.write(r).unwrap();
        }
        let mut file = w.finish().unwrap();
        file.rewind().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(
            text,
            "name,n,price\nplain,1,2.5\n\"a, \"\"quoted\"\" one\",-7,\n"
        );
        let read: Vec<Row> = text
            .lines()
            .skip(1)
            .map(|l| f.decode(l.as_bytes()).unwrap().unwrap())
            .collect();
        assert_eq!(read, rows);
        let bad = f.decode(b"x,notanumber,1").unwrap_err().to_string();
        assert!(bad.contains("x,notanumber,1"), "{bad}");
        let tabs = CsvFormat::<(String, i64)>::new().with_delimiter(b'\t');
        assert_eq!(
            tabs.decode(b"a b\t3").unwrap(),
            Some(("a b".to_string(), 3))
        );
    }
}
