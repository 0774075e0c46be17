//! Writes elements as lines of text files, one file per sink subtask.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use weir_api::functions::UserError;
use weir_api::sink::{Sink, SinkContext, SinkWriter};

/// What to do when the output exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail if the output exists (Flink's default).
    NoOverwrite,
    /// Replace it.
    Overwrite,
}

/// Lines of text: the file `path` at parallelism 1, else files `1`, `2`, ... in the
/// directory `path`, as Flink's `writeAsText` lays them out.
#[derive(Clone, Debug)]
pub struct TextFileSink {
    path: PathBuf,
    mode: WriteMode,
}

impl TextFileSink {
    /// A sink writing to `path`.
    pub fn new(path: PathBuf, mode: WriteMode) -> Self {
        TextFileSink { path, mode }
    }
}

struct TextFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl<T: Display + Send + 'static> Sink<T> for TextFileSink {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        let target = if ctx.parallelism == 1 {
            self.path.clone()
        } else {
            std::fs::create_dir_all(&self.path).map_err(|e| {
                format!(
                    "cannot create output directory '{}': {e}",
                    self.path.display()
                )
            })?;
            self.path.join((ctx.subtask + 1).to_string())
        };
        if self.mode == WriteMode::NoOverwrite && target.exists() {
            return Err(format!(
                "output '{}' exists; remove it or use WriteMode::Overwrite",
                target.display()
            )
            .into());
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create directory '{}': {e}", parent.display()))?;
        }
        let file = File::create(&target)
            .map_err(|e| format!("cannot create output file '{}': {e}", target.display()))?;
        Ok(Box::new(TextFileWriter {
            path: target,
            out: BufWriter::with_capacity(64 * 1024, file),
        }))
    }
}

impl<T: Display> SinkWriter<T> for TextFileWriter {
    #[inline]
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        writeln!(self.out, "{value}")
            .map_err(|e| format!("cannot write to '{}': {e}", self.path.display()).into())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.out
            .flush()
            .map_err(|e| format!("cannot write to '{}': {e}", self.path.display()).into())
    }
}
