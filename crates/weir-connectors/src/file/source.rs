//! Reads lines of text files in parallel.
//!
//! The input is cut into splits: one per file, and files larger than the block size into
//! one split per block. Split `i` is read by subtask `i % parallelism`; every subtask lists
//! the same files in the same order, so the assignment needs no coordination. A line belongs
//! to the split in which it starts: a reader of a split that starts inside a file skips the
//! partial line at its start, and reads past its end to finish its last line.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
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

/// A bounded source of the lines of text files (UTF-8; invalid bytes are replaced).
#[derive(Clone, Debug)]
pub struct TextFileSource {
    paths: Vec<PathBuf>,
    block_size: u64,
}

impl TextFileSource {
    /// Lines of the files at `paths`; a directory stands for the files in it (not
    /// recursively), skipping hidden files whose names start with `.` or `_`, as Flink does.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        TextFileSource {
            paths,
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }

    /// Splits files into blocks of `bytes` (at least 1).
    pub fn with_block_size(mut self, bytes: u64) -> Self {
        self.block_size = bytes.max(1);
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

impl Source<String> for TextFileSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<String>>, UserError> {
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
        Ok(Box::new(TextFileReader {
            splits: mine.into_iter().rev().collect(),
            current: None,
            line: Vec::new(),
        }))
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

struct TextFileReader {
    /// Splits still to read, last first.
    splits: Vec<PendingSplit>,
    current: Option<OpenSplit>,
    line: Vec<u8>,
}

impl TextFileReader {
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

impl SourceReader<String> for TextFileReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, String>) -> Result<PollStatus> {
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
            out.collect(String::from_utf8_lossy(l).into_owned())?;
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
