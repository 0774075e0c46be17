//! JSON lines through serde: one JSON value per line.

use super::{LineFormat, PartFormat, PartWriter, RowWriter};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use weir_api::functions::UserError;

/// JSON lines of serde records (Flink's JSON format): the sink writes each record as one
/// line of JSON; the source reads each non-empty line as one record.
pub struct JsonLinesFormat<T>(PhantomData<fn() -> T>);

impl<T> JsonLinesFormat<T> {
    /// JSON lines of `T`.
    pub fn new() -> Self {
        JsonLinesFormat(PhantomData)
    }
}

impl<T> Default for JsonLinesFormat<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonLinesFormat<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T: Serialize + Send + 'static> PartFormat<T> for JsonLinesFormat<T> {
    fn open(&self, file: File) -> Result<Box<dyn PartWriter<T>>, UserError> {
        Ok(Box::new(RowWriter::new(file, |r: &T, out| {
            serde_json::to_writer(&mut *out, r)
                .map_err(|e| format!("cannot write a record as JSON: {e}"))?;
            out.write_all(b"\n").map_err(Into::into)
        })))
    }

    fn suffix(&self) -> &str {
        ".json"
    }
}

impl<T: DeserializeOwned + 'static> LineFormat<T> for JsonLinesFormat<T> {
    fn decode(&self, line: &[u8]) -> Result<Option<T>, UserError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(line).map(Some).map_err(|e| {
            format!(
                "cannot read the JSON line '{}': {e}",
                String::from_utf8_lossy(line)
            )
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Ev {
        k: String,
        v: Vec<u32>,
    }

    #[test]
    fn lines_round_trip_and_bad_lines_are_named() {
        let f = JsonLinesFormat::<Ev>::new();
        let mut w = PartFormat::<Ev>::open(&f, tempfile::tempfile().unwrap()).unwrap();
        let evs = vec![
            Ev {
                k: "a\nb".into(),
                v: vec![1, 2],
            },
            Ev {
                k: "c".into(),
                v: vec![],
            },
        ];
        for e in &evs {
            w.write(e).unwrap();
        }
        let mut file = w.finish().unwrap();
        file.rewind().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let back: Vec<Ev> = text
            .lines()
            .filter_map(|l| f.decode(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(back, evs);
        assert_eq!(f.decode(b"  ").unwrap(), None);
        let e = f.decode(b"{\"k\":").unwrap_err().to_string();
        assert!(e.contains("{\"k\":"), "{e}");
    }
}
