//! Reads files in parallel: line formats (text, CSV, JSON lines) and Parquet.
//!
//! The input is cut into splits: one per file, and for line formats files larger than the
//! block size into one split per block (a Parquet file is one split). Split `i` is read by subtask `i % parallelism`; every subtask lists
//! the same files in the same order, so the assignment needs no coordination. A line belongs
//! to the split in which it starts: a reader of a split that starts inside a file skips the
//! partial line at its start, and reads past its end to finish its last line.

use super::format::parquet::ParquetRows;
use super::format::{LineFormat, TextLines};
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_api::functions::UserError;
use weir_api::source::{encode_split, Boundedness, Source, SourceContext};
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::{Result, RuntimeError};

/// Default block size: files larger than this are read by several subtasks.
pub const DEFAULT_BLOCK_SIZE: u64 = 32 * 1024 * 1024;

/// Lines emitted per poll.
const LINES_PER_POLL: usize = 1024;

/// A byte range of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSplit {
    /// The file.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// How a [`FileSource`] turns files into records.
enum Format<T> {
    /// One record per line; files split by block.
    Lines(Arc<dyn LineFormat<T>>),
    /// Parquet; a file is one split, read in batches.
    Parquet(Arc<OpenParquet<T>>),
}

impl<T> Clone for Format<T> {
    fn clone(&self) -> Self {
        match self {
            Format::Lines(f) => Format::Lines(f.clone()),
            Format::Parquet(f) => Format::Parquet(f.clone()),
        }
    }
}

/// Opens a Parquet file at a row.
type OpenParquet<T> =
    dyn Fn(File, u64) -> std::result::Result<ParquetRows<T>, String> + Send + Sync;

/// A bounded source of the records of files (Flink's `FileSource`): lines of text
/// ([`TextFileSource`]), a [`LineFormat`] such as CSV or JSON lines, or Parquet.
///
/// ```no_run
/// use weir_connectors::file::{CsvFormat, FileSource};
/// # let env = weir_api::StreamExecutionEnvironment::new();
/// let csv = FileSource::for_line_format(CsvFormat::<(String, i64)>::new().with_header(), vec!["/data/in".into()]);
/// let rows = env.from_source(csv, "csv files");
/// let parquet = FileSource::<(String, i64)>::for_parquet(vec!["/data/pq".into()]);
/// let more = env.from_source(parquet, "parquet files");
/// ```
pub struct FileSource<T> {
    paths: Vec<PathBuf>,
    block_size: u64,
    format: Format<T>,
}

impl<T> Clone for FileSource<T> {
    fn clone(&self) -> Self {
        FileSource {
            paths: self.paths.clone(),
            block_size: self.block_size,
            format: self.format.clone(),
        }
    }
}

/// The lines of text files (UTF-8; invalid bytes are replaced).
pub type TextFileSource = FileSource<String>;

impl FileSource<String> {
    /// Lines of the files at `paths`; a directory stands for the files in it (not
    /// recursively), skipping hidden files whose names start with `.` or `_`, as Flink does.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self::for_line_format(TextLines, paths)
    }
}

impl<T> FileSource<T> {
    /// Records of `format`, one per line, of the files at `paths` (directories as in
    /// [`TextFileSource::new`]).
    pub fn for_line_format(format: impl LineFormat<T>, paths: Vec<PathBuf>) -> Self {
        FileSource {
            paths,
            block_size: DEFAULT_BLOCK_SIZE,
            format: Format::Lines(Arc::new(format)),
        }
    }

    /// Records of the Parquet files at `paths` (columns matched to `T`'s fields by name,
    /// as [`ParquetFormat`] writes them); each file is one split.
    pub fn for_parquet(paths: Vec<PathBuf>) -> Self
    where
        T: DeserializeOwned + 'static,
    {
        FileSource {
            paths,
            block_size: u64::MAX,
            format: Format::Parquet(Arc::new(|file, skip| {
                ParquetRows::open(file, skip, PARQUET_BATCH_ROWS)
            })),
        }
    }

    /// Splits files of a line format into blocks of `bytes` (at least 1).
    pub fn with_block_size(mut self, bytes: u64) -> Self {
        if matches!(self.format, Format::Lines(_)) {
            self.block_size = bytes.max(1);
        }
        self
    }

    fn list(path: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()?;
            entries.sort();
            for p in entries {
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') || n.starts_with('_'));
                if !hidden && std::fs::metadata(&p)?.is_file() {
                    out.push((p.clone(), std::fs::metadata(&p)?.len()));
                }
            }
        } else {
            out.push((path.to_path_buf(), meta.len()));
        }
        Ok(())
    }

    /// All splits of the input, in a fixed order.
    pub fn splits(&self) -> Result<Vec<FileSplit>> {
        let mut files = Vec::new();
        for p in &self.paths {
            Self::list(p, &mut files).map_err(|e| {
                RuntimeError::io(format!("cannot read input path '{}'", p.display()), e)
            })?;
        }
        let mut splits = Vec::new();
        for (path, len) in files {
            if len == 0 {
                continue;
            }
            let mut start = 0;
            while start < len {
                let end = (start + self.block_size).min(len);
                splits.push(FileSplit {
                    path: path.clone(),
                    start,
                    end,
                });
                start = end;
            }
        }
        Ok(splits)
    }
}

/// Rows per batch when reading Parquet.
const PARQUET_BATCH_ROWS: usize = 4096;

impl<T: Send + 'static> Source<T> for FileSource<T> {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        match &self.format {
            Format::Lines(format) => self.line_reader(format.clone(), ctx),
            Format::Parquet(open) => self.parquet_reader(open.clone(), ctx),
        }
    }
}

impl<T: Send + 'static> FileSource<T> {
    fn line_reader(
        &self,
        format: Arc<dyn LineFormat<T>>,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let mine: Vec<PendingSplit> = match ctx.decode_restored::<SplitState>()? {
            Some(restored) => restored
                .into_iter()
                .map(|(path, start, end, at_line_start)| PendingSplit {
                    split: FileSplit {
                        path: PathBuf::from(path),
                        start,
                        end,
                    },
                    at_line_start,
                })
                .collect(),
            None => self
                .splits()?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % ctx.parallelism == ctx.subtask)
                .map(|(_, split)| PendingSplit {
                    at_line_start: split.start == 0,
                    split,
                })
                .collect(),
        };
        Ok(Box::new(LineReader {
            format,
            splits: mine.into_iter().rev().collect(),
            current: None,
            line: Vec::new(),
        }))
    }

    fn parquet_reader(
        &self,
        open: Arc<OpenParquet<T>>,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let mine: Vec<(PathBuf, u64)> = match ctx.decode_restored::<(String, u64)>()? {
            Some(restored) => restored
                .into_iter()
                .map(|(path, row)| (PathBuf::from(path), row))
                .collect(),
            None => self
                .splits()?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % ctx.parallelism == ctx.subtask)
                .map(|(_, split)| (split.path, 0))
                .collect(),
        };
        Ok(Box::new(ParquetReader {
            open,
            files: mine.into_iter().rev().collect(),
            current: None,
        }))
    }
}

/// Reads Parquet files, one after another, a batch per poll.
struct ParquetReader<T> {
    open: Arc<OpenParquet<T>>,
    /// Files still to read (last first), each with the rows of it already read.
    files: Vec<(PathBuf, u64)>,
    /// The open file: its path, rows read, and reader.
    current: Option<(PathBuf, u64, ParquetRows<T>)>,
}

impl<T: 'static> SourceReader<T> for ParquetReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        let (path, read, rows) = match &mut self.current {
            Some(c) => c,
            None => match self.files.pop() {
                Some((path, skip)) => {
                    let file = File::open(&path).map_err(|e| {
                        RuntimeError::io(format!("cannot open '{}'", path.display()), e)
                    })?;
                    let rows = (self.open)(file, skip)
                        .map_err(|e| RuntimeError::Other(format!("'{}': {e}", path.display())))?;
                    self.current.insert((path, skip, rows))
                }
                None => return Ok(PollStatus::Finished),
            },
        };
        match rows
            .next_batch()
            .map_err(|e| RuntimeError::Other(format!("'{}': {e}", path.display())))?
        {
            Some(batch) => {
                *read += batch.len() as u64;
                for r in batch {
                    out.collect(r)?;
                }
            }
            None => self.current = None,
        }
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        if let Some((path, read, _)) = &self.current {
            out.push(encode_split(&(path.display().to_string(), *read))?);
        }
        for (path, read) in self.files.iter().rev() {
            out.push(encode_split(&(path.display().to_string(), *read))?);
        }
        Ok(out)
    }
}

/// A split's checkpointed position: path, next byte, end, and whether the next byte starts
/// a line (a split read from its middle) or the line it is in belongs to the split before.
type SplitState = (String, u64, u64, bool);

/// A split not opened yet.
struct PendingSplit {
    split: FileSplit,
    /// `split.start` begins a line of this split (no partial line to skip).
    at_line_start: bool,
}

struct OpenSplit {
    split: FileSplit,
    reader: BufReader<File>,
    /// Offset of the next unread byte.
    pos: u64,
}

struct LineReader<T> {
    format: Arc<dyn LineFormat<T>>,
    /// Splits still to read, last first.
    splits: Vec<PendingSplit>,
    current: Option<OpenSplit>,
    line: Vec<u8>,
}

impl<T> LineReader<T> {
    fn open(pending: PendingSplit) -> Result<OpenSplit> {
        let split = pending.split;
        let ctx = |what: &str| format!("cannot {what} '{}'", split.path.display());
        let file = File::open(&split.path).map_err(|e| RuntimeError::io(ctx("open"), e))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut pos = split.start;
        if pending.at_line_start {
            reader
                .seek(SeekFrom::Start(split.start))
                .map_err(|e| RuntimeError::io(ctx("seek in"), e))?;
        } else {
            // Skip the line that started in the previous split.
            reader
                .seek(SeekFrom::Start(split.start - 1))
                .map_err(|e| RuntimeError::io(ctx("seek in"), e))?;
            let mut skipped = Vec::new();
            let n = reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| RuntimeError::io(ctx("read"), e))?;
            pos = split.start - 1 + n as u64;
        }
        Ok(OpenSplit { split, reader, pos })
    }
}

impl<T: 'static> SourceReader<T> for LineReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        let cur = match &mut self.current {
            Some(c) => c,
            None => match self.splits.pop() {
                Some(s) => self.current.insert(Self::open(s)?),
                None => return Ok(PollStatus::Finished),
            },
        };
        for _ in 0..LINES_PER_POLL {
            // A line belongs to this split if it starts before the split's end.
            if cur.pos >= cur.split.end {
                self.current = None;
                return Ok(PollStatus::MoreAvailable);
            }
            self.line.clear();
            let n = cur.reader.read_until(b'\n', &mut self.line).map_err(|e| {
                RuntimeError::io(format!("cannot read '{}'", cur.split.path.display()), e)
            })?;
            if n == 0 {
                self.current = None;
                return Ok(PollStatus::MoreAvailable);
            }
            cur.pos += n as u64;
            let mut l = &self.line[..];
            if l.last() == Some(&b'\n') {
                l = &l[..l.len() - 1];
                if l.last() == Some(&b'\r') {
                    l = &l[..l.len() - 1];
                }
            }
            let at = cur.pos - n as u64;
            if at == 0 && self.format.has_header() {
                continue;
            }
            let record = self.format.decode(l).map_err(|e| {
                RuntimeError::Other(format!(
                    "'{}', line at byte {at}: {e}",
                    cur.split.path.display()
                ))
            })?;
            if let Some(r) = record {
                out.collect(r)?;
            }
        }
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        let state = |split: &FileSplit, start: u64, at_line_start: bool| -> SplitState {
            (
                split.path.display().to_string(),
                start,
                split.end,
                at_line_start,
            )
        };
        let mut out = Vec::new();
        if let Some(c) = &self.current {
            if c.pos < c.split.end {
                out.push(encode_split(&state(&c.split, c.pos, true))?);
            }
        }
        for p in self.splits.iter().rev() {
            out.push(encode_split(&state(
                &p.split,
                p.split.start,
                p.at_line_start,
            ))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn splits_by_block_and_reads_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for f in 0..3 {
            let mut file = File::create(dir.path().join(format!("part-{f}"))).unwrap();
            for i in 0..(50 * (f + 1)) {
                let line = format!("file {f} line {i} {}", "x".repeat(i % 13));
                writeln!(file, "{line}").unwrap();
                expected.push(line);
            }
        }
        // Hidden files are skipped.
        std::fs::write(dir.path().join(".hidden"), "nope\n").unwrap();
        expected.sort();
        for block in [7u64, 64, 1000, 1 << 20] {
            for p in 1..4u32 {
                let src =
                    TextFileSource::new(vec![dir.path().to_path_buf()]).with_block_size(block);
                let mut got = Vec::new();
                for s in 0..p {
                    let mut r = src
                        .create_reader(&SourceContext {
                            restored_splits: None,
                            subtask: s,
                            parallelism: p,
                            auto_watermark_interval_ms: 200,
                        })
                        .unwrap();
                    got.extend(drain(r.as_mut()));
                }
                got.sort();
                assert_eq!(got, expected, "block {block} parallelism {p}");
            }
        }
    }

    fn drain(r: &mut dyn SourceReader<String>) -> Vec<String> {
        use weir_runtime::operator::{CollectingOutput, Outputs};
        let (sink, got) = CollectingOutput::new();
        let mut outs = Outputs::new(Box::new(sink), Vec::new());
        let mut batch = Vec::new();
        loop {
            let mut out = SourceOutput::new(&mut outs, &mut batch);
            let status = r.poll_next(&mut out).unwrap();
            out.flush().unwrap();
            if status == PollStatus::Finished {
                break;
            }
        }
        let v = got.lock().unwrap().clone();
        v
    }

    #[test]
    fn missing_path_names_the_path() {
        let src = TextFileSource::new(vec![PathBuf::from("/no/such/weir-input.txt")]);
        let err = src
            .create_reader(&SourceContext {
                restored_splits: None,
                subtask: 0,
                parallelism: 1,
                auto_watermark_interval_ms: 200,
            })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/no/such/weir-input.txt"), "{err}");
    }
}
