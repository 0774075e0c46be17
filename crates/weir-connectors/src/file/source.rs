//! Reads files in parallel: line formats (text, CSV, JSON lines) and Parquet, from local
//! paths or S3 (`s3://bucket/prefix` URLs), once (bounded) or continuously.
//!
//! Bounded, the input is cut into splits: one per file, and for line formats files larger
//! than the block size into one split per block (a Parquet file is one split). Split `i` is
//! read by subtask `i % parallelism`; every subtask lists the same files in the same order,
//! so the assignment needs no coordination. A line belongs to the split in which it starts:
//! a reader of a split that starts inside a file skips the partial line at its start, and
//! reads past its end to finish its last line.
//!
//! Monitoring continuously ([`FileSource::monitor_continuously`]), the source is unbounded:
//! each subtask lists the paths at an interval and reads the new files that hash to it
//! (see [`super::discovery`]).

use super::discovery::{owner, Discovery};
use super::format::parquet::ParquetRows;
use super::format::{LineFormat, TextLines};
use super::store::Location;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_api::functions::UserError;
use weir_api::source::{encode_split, Boundedness, Source, SourceContext};
use weir_runtime::source::{PollStatus, Redistribution, SourceOutput, SourceReader};
use weir_runtime::{Result, RuntimeError};

/// Default block size: files larger than this are read by several subtasks.
pub const DEFAULT_BLOCK_SIZE: u64 = 32 * 1024 * 1024;

/// Lines emitted per poll.
const LINES_PER_POLL: usize = 1024;

/// A byte range of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSplit {
    /// The file: a local path, or an `s3://` URL.
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

/// A source of the records of files (Flink's `FileSource`): lines of text
/// ([`TextFileSource`]), a [`LineFormat`] such as CSV or JSON lines, or Parquet; from local
/// paths or `s3://bucket/prefix` URLs (configured as checkpoint storage on S3 is, by the
/// `AWS_*` environment variables); bounded by default, or monitoring its paths for new
/// files.
///
/// ```no_run
/// use std::time::Duration;
/// use weir_connectors::file::{CsvFormat, FileSource};
/// # let env = weir_api::StreamExecutionEnvironment::new();
/// let csv = FileSource::for_line_format(CsvFormat::<(String, i64)>::new().with_header(), vec!["/data/in".into()]);
/// let rows = env.from_source(csv, "csv files");
/// let parquet = FileSource::<(String, i64)>::for_parquet(vec!["s3://bucket/tables/trades".into()]);
/// let more = env.from_source(parquet, "parquet files");
/// let landing = FileSource::new(vec!["/data/landing".into()])
///     .monitor_continuously(Duration::from_secs(10));
/// let lines = env.from_source(landing, "new files as they land");
/// ```
pub struct FileSource<T> {
    paths: Vec<PathBuf>,
    block_size: u64,
    format: Format<T>,
    /// List the paths at this interval for new files (unbounded), or read them once.
    monitor: Option<Duration>,
}

impl<T> Clone for FileSource<T> {
    fn clone(&self) -> Self {
        FileSource {
            paths: self.paths.clone(),
            block_size: self.block_size,
            format: self.format.clone(),
            monitor: self.monitor,
        }
    }
}

/// The lines of text files (UTF-8; invalid bytes are replaced).
pub type TextFileSource = FileSource<String>;

impl FileSource<String> {
    /// Lines of the files at `paths`; a directory (or an S3 prefix) stands for the files in
    /// it (not recursively), skipping hidden files whose names start with `.` or `_`, as
    /// Flink does.
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
            monitor: None,
        }
    }

    /// Records of the Parquet files at `paths` (columns matched to `T`'s fields by name,
    /// as [`ParquetFormat`](super::ParquetFormat) writes them); each file is one split. A
    /// file in S3 is copied to the local temporary directory to be read.
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
            monitor: None,
        }
    }

    /// Splits files of a line format into blocks of `bytes` (at least 1).
    pub fn with_block_size(mut self, bytes: u64) -> Self {
        if matches!(self.format, Format::Lines(_)) {
            self.block_size = bytes.max(1);
        }
        self
    }

    /// Makes the source unbounded: it reads the files there are, then lists its paths
    /// every `interval` and reads each new file once (Flink's `monitorContinuously`).
    pub fn monitor_continuously(mut self, interval: Duration) -> Self {
        self.monitor = Some(interval);
        self
    }

    /// All splits of the input as it is now, in a fixed order.
    pub fn splits(&self) -> Result<Vec<FileSplit>> {
        let mut splits = Vec::new();
        for p in &self.paths {
            let files = Location::of(p)
                .and_then(|l| l.list_files())
                .map_err(RuntimeError::Other)?;
            for (path, len) in files {
                splits.extend(block_splits(&path, len, self.block_size));
            }
        }
        Ok(splits)
    }
}

/// The splits of one file of `len` bytes: blocks of `block_size` bytes.
fn block_splits(path: &str, len: u64, block_size: u64) -> Vec<FileSplit> {
    let mut splits = Vec::new();
    let mut start = 0;
    while start < len {
        let end = start.saturating_add(block_size).min(len);
        splits.push(FileSplit {
            path: PathBuf::from(path),
            start,
            end,
        });
        start = end;
    }
    splits
}

/// Rows per batch when reading Parquet.
const PARQUET_BATCH_ROWS: usize = 4096;

/// One entry of a file reader's checkpointed state.
#[derive(Serialize, Deserialize)]
enum Entry<S> {
    /// A split still to read (or being read), from its checkpointed position.
    Split(S),
    /// A file a monitoring subtask has taken.
    Seen(String),
}

/// A split's path in its checkpointed position.
trait SplitPath {
    fn path(&self) -> &str;
}

impl SplitPath for SplitState {
    fn path(&self) -> &str {
        &self.0
    }
}

impl SplitPath for ParquetState {
    fn path(&self) -> &str {
        &self.0
    }
}

impl<T: Send + 'static> Source<T> for FileSource<T> {
    fn boundedness(&self) -> Boundedness {
        if self.monitor.is_some() {
            Boundedness::Unbounded
        } else {
            Boundedness::Bounded
        }
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        match &self.format {
            Format::Lines(format) => self.line_reader(format.clone(), ctx),
            Format::Parquet(open) => self.parquet_reader(open.clone(), ctx),
        }
    }
}

impl<T: Send + 'static> FileSource<T> {
    /// This subtask's splits as restored or as assigned, and its discovery if monitoring.
    fn assign<S: SplitPath + DeserializeOwned>(
        &self,
        ctx: &SourceContext,
        initial: impl FnOnce(Vec<FileSplit>) -> Vec<S>,
    ) -> Result<(Vec<S>, Option<Discovery>)> {
        let restored = ctx.decode_restored::<Entry<S>>()?;
        let Some(interval) = self.monitor else {
            let mine = match restored {
                // Bounded: the entries were split evenly over the subtasks.
                Some(entries) => entries
                    .into_iter()
                    .filter_map(|e| match e {
                        Entry::Split(s) => Some(s),
                        Entry::Seen(_) => None,
                    })
                    .collect(),
                None => initial(
                    self.splits()?
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| *i as u32 % ctx.parallelism == ctx.subtask)
                        .map(|(_, split)| split)
                        .collect(),
                ),
            };
            return Ok((mine, None));
        };
        // Monitoring: every subtask got every entry (union); it keeps those it owns.
        let mut mine = Vec::new();
        let mut seen = Vec::new();
        for e in restored.into_iter().flatten() {
            match e {
                Entry::Split(s) if owner(s.path(), ctx.parallelism) == ctx.subtask => mine.push(s),
                Entry::Split(_) => {}
                Entry::Seen(p) => seen.push(p),
            }
        }
        let discovery = Discovery::new(
            self.paths.clone(),
            interval,
            seen,
            ctx.subtask,
            ctx.parallelism,
        );
        Ok((mine, Some(discovery)))
    }

    fn line_reader(
        &self,
        format: Arc<dyn LineFormat<T>>,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let (mine, discovery) = self.assign::<SplitState>(ctx, |splits| {
            splits
                .into_iter()
                .map(|s| (s.path.display().to_string(), s.start, s.end, s.start == 0))
                .collect()
        })?;
        let splits = mine
            .into_iter()
            .rev()
            .map(|(path, start, end, at_line_start)| PendingSplit {
                split: FileSplit {
                    path: PathBuf::from(path),
                    start,
                    end,
                },
                at_line_start,
            })
            .collect();
        Ok(Box::new(LineReader {
            format,
            block_size: self.block_size,
            splits,
            current: None,
            line: Vec::new(),
            discovery,
        }))
    }

    fn parquet_reader(
        &self,
        open: Arc<OpenParquet<T>>,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let (mine, discovery) = self.assign::<ParquetState>(ctx, |splits| {
            splits
                .into_iter()
                .map(|s| (s.path.display().to_string(), 0))
                .collect()
        })?;
        Ok(Box::new(ParquetReader {
            open,
            files: mine
                .into_iter()
                .rev()
                .map(|(p, row)| (PathBuf::from(p), row))
                .collect(),
            current: None,
            discovery,
        }))
    }
}

/// Asks `discovery` (if any) for new files and gives each, with its size, to `take`.
fn discover(discovery: &mut Option<Discovery>, mut take: impl FnMut(String, u64)) -> Result<()> {
    if let Some(d) = discovery {
        for (path, len) in d.poll().map_err(RuntimeError::Other)? {
            take(path, len);
        }
    }
    Ok(())
}

/// What a reader says when it has nothing to read now: finished, or waiting for new files.
fn idle(discovery: &Option<Discovery>) -> PollStatus {
    if discovery.is_some() {
        PollStatus::NothingAvailable
    } else {
        PollStatus::Finished
    }
}

/// A Parquet file's checkpointed position: path and rows already read.
type ParquetState = (String, u64);

/// Reads Parquet files, one after another, a batch per poll.
struct ParquetReader<T> {
    open: Arc<OpenParquet<T>>,
    /// Files still to read (last first), each with the rows of it already read.
    files: Vec<(PathBuf, u64)>,
    /// The open file: its path, rows read, and reader.
    current: Option<(PathBuf, u64, ParquetRows<T>)>,
    discovery: Option<Discovery>,
}

impl<T: 'static> ParquetReader<T> {
    fn next_file(&mut self) -> Result<Option<(PathBuf, u64)>> {
        if self.files.is_empty() {
            let mut new = Vec::new();
            discover(&mut self.discovery, |path, len| {
                if len > 0 {
                    new.push((PathBuf::from(path), 0));
                }
            })?;
            // Queued last first: reverse the listing order.
            self.files.extend(new.into_iter().rev());
        }
        Ok(self.files.pop())
    }
}

impl<T: 'static> SourceReader<T> for ParquetReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        if self.current.is_none() {
            let Some((path, skip)) = self.next_file()? else {
                return Ok(idle(&self.discovery));
            };
            let file = Location::of(&path)
                .and_then(|l| l.open_local())
                .map_err(RuntimeError::Other)?;
            let rows = (self.open)(file, skip)
                .map_err(|e| RuntimeError::Other(format!("'{}': {e}", path.display())))?;
            self.current = Some((path, skip, rows));
        }
        let Some((path, read, rows)) = &mut self.current else {
            return Ok(PollStatus::MoreAvailable);
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
            let s: ParquetState = (path.display().to_string(), *read);
            out.push(encode_split(&Entry::Split(s))?);
        }
        for (path, read) in self.files.iter().rev() {
            let s: ParquetState = (path.display().to_string(), *read);
            out.push(encode_split(&Entry::Split(s))?);
        }
        snapshot_seen(&self.discovery, &mut out)?;
        Ok(out)
    }

    fn split_redistribution(&self) -> Redistribution {
        redistribution(&self.discovery)
    }
}

/// Adds the files a monitoring reader has taken to its checkpoint entries.
fn snapshot_seen(discovery: &Option<Discovery>, out: &mut Vec<Vec<u8>>) -> Result<()> {
    if let Some(d) = discovery {
        for p in d.seen() {
            out.push(encode_split(&Entry::<()>::Seen(p.clone()))?);
        }
    }
    Ok(())
}

/// Bounded readers split their entries evenly; monitoring ones need them all (union) to
/// pick what they own.
fn redistribution(discovery: &Option<Discovery>) -> Redistribution {
    if discovery.is_some() {
        Redistribution::Union
    } else {
        Redistribution::EvenSplit
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
    reader: Box<dyn BufRead + Send>,
    /// Offset of the next unread byte.
    pos: u64,
}

struct LineReader<T> {
    format: Arc<dyn LineFormat<T>>,
    /// Newly discovered files are cut into blocks of this size.
    block_size: u64,
    /// Splits still to read, last first.
    splits: Vec<PendingSplit>,
    current: Option<OpenSplit>,
    line: Vec<u8>,
    discovery: Option<Discovery>,
}

impl<T> LineReader<T> {
    fn open(pending: PendingSplit) -> Result<OpenSplit> {
        let split = pending.split;
        let location = Location::of(&split.path).map_err(RuntimeError::Other)?;
        if pending.at_line_start {
            let reader = location.open_at(split.start).map_err(RuntimeError::Other)?;
            let pos = split.start;
            return Ok(OpenSplit { split, reader, pos });
        }
        // Skip the line that started in the previous split.
        let mut reader = location
            .open_at(split.start - 1)
            .map_err(RuntimeError::Other)?;
        let mut skipped = Vec::new();
        let n = reader
            .read_until(b'\n', &mut skipped)
            .map_err(|e| RuntimeError::io(format!("cannot read '{}'", split.path.display()), e))?;
        let pos = split.start - 1 + n as u64;
        Ok(OpenSplit { split, reader, pos })
    }

    fn next_split(&mut self) -> Result<Option<PendingSplit>> {
        if self.splits.is_empty() {
            let mut new = Vec::new();
            let block_size = self.block_size;
            discover(&mut self.discovery, |path, len| {
                new.extend(block_splits(&path, len, block_size));
            })?;
            self.splits
                .extend(new.into_iter().rev().map(|split| PendingSplit {
                    at_line_start: split.start == 0,
                    split,
                }));
        }
        Ok(self.splits.pop())
    }
}

impl<T: 'static> SourceReader<T> for LineReader<T> {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<PollStatus> {
        if self.current.is_none() {
            let Some(split) = self.next_split()? else {
                return Ok(idle(&self.discovery));
            };
            self.current = Some(Self::open(split)?);
        }
        let Some(cur) = &mut self.current else {
            return Ok(PollStatus::MoreAvailable);
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
                out.push(encode_split(&Entry::Split(state(&c.split, c.pos, true)))?);
            }
        }
        for p in self.splits.iter().rev() {
            out.push(encode_split(&Entry::Split(state(
                &p.split,
                p.split.start,
                p.at_line_start,
            )))?);
        }
        snapshot_seen(&self.discovery, &mut out)?;
        Ok(out)
    }

    fn split_redistribution(&self) -> Redistribution {
        redistribution(&self.discovery)
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
