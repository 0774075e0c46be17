//! An exactly-once file sink by two-phase commit (Flink's `FileSink` with its
//! on-checkpoint rolling policy), in any [`PartFormat`]: text, CSV or JSON lines (row
//! formats) or Parquet (a bulk format).
//!
//! Each sink subtask writes records into one *in-progress* part file at a time. On a
//! checkpoint barrier the file is closed, synced and renamed to *pending* (pre-commit), and
//! the pending files go into the checkpoint. When the checkpoint completes they are renamed
//! to their *finished* names (commit). In-progress and pending files are hidden (their
//! names start with `.`); finished ones are not:
//!
//! ```text
//! .part-<run>-<subtask>-<n><suffix>.inprogress   being written
//! .part-<run>-<subtask>-<n><suffix>.pending      prepared by checkpoint c, committed when c completes
//! part-<run>-<subtask>-<n><suffix>               finished
//! ```
//!
//! The suffix is the format's (`.csv`, `.json`, `.parquet`, none for text). A bulk format
//! such as Parquet writes its footer when the file is closed, on the barrier, so every
//! committed file is complete.
//!
//! `<run>` is unique per writer instance, so files of a failed attempt never collide with
//! those of the attempt that replaces it. A restored writer commits the pending files of
//! the checkpoint it restores from (that checkpoint completed; its notice may just not have
//! arrived), so nothing prepared is lost, and whatever an attempt wrote after its last
//! completed checkpoint stays hidden and uncommitted, so nothing is duplicated. At the end
//! of a bounded job the last file is prepared when the input ends and committed on the
//! job's final notice. Commits are renames, and committing a file twice is a no-op, so a
//! commit can be retried.
//!
//! A restored writer deletes the in-progress files earlier attempts of its subtask index
//! left. Left behind: pending files of checkpoints that never completed (a restored subtask
//! cannot tell which pending files another subtask still has to commit after a rescale).
//!
//! The directory may be an `s3://bucket/prefix` URL: then a part is staged locally,
//! uploaded as a multipart upload on the barrier (invisible until completed) and completed
//! on commit; see [`super::part_store`]. Uploads of checkpoints that never completed stay
//! incomplete in the bucket: an S3 lifecycle rule that aborts incomplete multipart uploads
//! after a few days removes them (Flink leaves them the same way).

use super::format::{PartFormat, PartWriter, TextLines};
use super::part_store::{PartStore, Prepared};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;
use weir_api::functions::UserError;
use weir_api::sink::{CheckpointNotice, Sink, SinkContext, SinkWriter};

/// Writes records into part files in a directory (a local path or an `s3://bucket/prefix`
/// URL), exactly once across failures.
///
/// ```no_run
/// use weir_connectors::file::{CsvFormat, FileSink, ParquetFormat};
/// # let env = weir_api::StreamExecutionEnvironment::new();
/// # let trades = env.from_collection(vec![("a".to_string(), 1i64)]);
/// trades.sink_to(FileSink::for_format("/data/trades-csv", CsvFormat::new()), "csv");
/// let parquet = ParquetFormat::<(String, i64)>::new().expect("a schema for the type");
/// trades.sink_to(FileSink::for_format("/data/trades", parquet), "parquet");
/// ```
#[derive(Debug)]
pub struct FileSink<F = TextLines> {
    dir: PathBuf,
    prefix: String,
    format: Arc<F>,
}

impl<F> Clone for FileSink<F> {
    fn clone(&self) -> Self {
        FileSink {
            dir: self.dir.clone(),
            prefix: self.prefix.clone(),
            format: self.format.clone(),
        }
    }
}

impl FileSink<TextLines> {
    /// A sink writing each record's `Display` form as a line, into part files (named
    /// `part-...`) in `dir`.
    pub fn for_row_format(dir: impl Into<PathBuf>) -> Self {
        Self::for_format(dir, TextLines)
    }
}

impl<F> FileSink<F> {
    /// A sink writing part files of `format` (row or bulk) into `dir`: a local directory
    /// or an `s3://bucket/prefix` URL (S3 configured by the `AWS_*` environment variables).
    pub fn for_format(dir: impl Into<PathBuf>, format: F) -> Self {
        FileSink {
            dir: dir.into(),
            prefix: "part".into(),
            format: Arc::new(format),
        }
    }

    /// Names part files `<prefix>-...` instead of `part-...`.
    pub fn with_part_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// A file prepared for commit, as stored in checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    /// The checkpoint that prepared it (`u64::MAX`: the end of input).
    checkpoint: u64,
    /// Its finished name, relative to the sink's directory.
    name: String,
    /// What committing it needs.
    prepared: Prepared,
}

struct InProgress<T> {
    name: String,
    out: Box<dyn PartWriter<T>>,
}

struct FileSinkWriter<T> {
    store: PartStore,
    prefix: String,
    format: Arc<dyn PartFormat<T>>,
    run: String,
    subtask: u32,
    counter: u64,
    current: Option<InProgress<T>>,
    pending: Vec<Pending>,
}

impl<T: 'static> FileSinkWriter<T> {
    fn open(&mut self) -> Result<&mut InProgress<T>, UserError> {
        if self.current.is_none() {
            let name = format!(
                "{}-{}-{}-{}{}",
                self.prefix,
                self.run,
                self.subtask,
                self.counter,
                self.format.suffix()
            );
            self.counter += 1;
            let file = self.store.create(&name)?;
            let out = self.format.open(file)?;
            self.current = Some(InProgress { name, out });
        }
        self.current
            .as_mut()
            .ok_or_else(|| "file sink: no in-progress file".into())
    }

    /// Closes the in-progress file and prepares it for commit, for `checkpoint`.
    fn prepare(&mut self, checkpoint: u64) -> Result<(), UserError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let file = cur.out.finish().map_err(|e| {
            format!(
                "file sink: cannot write '{}': {e}",
                self.store.describe(&cur.name)
            )
        })?;
        let prepared = self.store.prepare(&cur.name, file)?;
        self.pending.push(Pending {
            checkpoint,
            name: cur.name,
            prepared,
        });
        Ok(())
    }

    /// Commits the pending files prepared by checkpoints up to `upto`.
    fn commit(&mut self, upto: u64) -> Result<(), UserError> {
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.checkpoint <= upto {
                self.store.commit(&p.name, &p.prepared)?;
            } else {
                keep.push(p);
            }
        }
        self.pending = keep;
        Ok(())
    }
}

impl<T: Send + 'static, F: PartFormat<T>> Sink<T> for FileSink<F> {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        let store = PartStore::open(&self.dir)?;
        // Files prepared by the checkpoint this job restores from are committed now.
        for bytes in ctx.restored_state.iter().flatten() {
            let p: Pending = bincode::deserialize(bytes)
                .map_err(|e| format!("file sink: unreadable restored state: {e}"))?;
            store.commit(&p.name, &p.prepared)?;
        }
        if ctx.restored_state.is_some() {
            store.delete_abandoned(&self.prefix, ctx.subtask);
        }
        let run = format!(
            "{:016x}",
            RandomState::new().hash_one((std::time::SystemTime::now(), ctx.subtask))
        );
        Ok(Box::new(FileSinkWriter {
            store,
            prefix: self.prefix.clone(),
            format: self.format.clone(),
            run,
            subtask: ctx.subtask,
            counter: 0,
            current: None,
            pending: Vec::new(),
        }))
    }
}

impl<T: Send + 'static> SinkWriter<T> for FileSinkWriter<T> {
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        let cur = self.open()?;
        if let Err(e) = cur.out.write(&value) {
            let name = cur.name.clone();
            return Err(format!(
                "file sink: cannot write '{}': {e}",
                self.store.describe(&name)
            )
            .into());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.prepare(u64::MAX)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        self.prepare(checkpoint_id)?;
        self.pending
            .iter()
            .map(|p| bincode::serialize(p).map_err(|e| e.to_string().into()))
            .collect()
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        match notice {
            CheckpointNotice::Complete(id) => self.commit(id),
            // Pending files stay: the next checkpoint carries them and commits them.
            CheckpointNotice::Aborted(_) => Ok(()),
            CheckpointNotice::Final => self.commit(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &Path) -> (Vec<String>, Vec<String>) {
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                hidden.push(n);
            } else {
                visible.push(n);
            }
        }
        (visible, hidden)
    }

    fn ctx(restored: Option<Vec<Vec<u8>>>) -> SinkContext {
        match restored {
            None => SinkContext::new(0, 1),
            Some(state) => SinkContext::new(0, 1).restored(7, state),
        }
    }

    #[test]
    fn prepare_on_barrier_commit_on_completion() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(dir.path());
        let mut w = Sink::<i32>::create_writer(&sink, &ctx(None)).unwrap();
        w.write(1, None).unwrap();
        w.write(2, None).unwrap();
        assert_eq!(files(dir.path()).0.len(), 0);
        let state = w.snapshot_state(1).unwrap();
        assert_eq!(state.len(), 1);
        let (visible, hidden) = files(dir.path());
        assert!(
            visible.is_empty() && hidden[0].ends_with(".pending"),
            "{hidden:?}"
        );
        w.write(3, None).unwrap();
        // Aborted: stays pending, carried by the next checkpoint.
        w.notify_checkpoint(CheckpointNotice::Aborted(1)).unwrap();
        let state2 = w.snapshot_state(2).unwrap();
        assert_eq!(state2.len(), 2);
        w.notify_checkpoint(CheckpointNotice::Complete(2)).unwrap();
        let (visible, hidden) = files(dir.path());
        assert_eq!((visible.len(), hidden.len()), (2, 0));
        let mut lines: Vec<String> = visible
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(dir.path().join(f))
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        assert_eq!(lines, vec!["1", "2", "3"]);
    }

    #[test]
    fn restore_commits_what_the_checkpoint_prepared_and_hides_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::for_row_format(dir.path());
        let mut w = Sink::<i32>::create_writer(&sink, &ctx(None)).unwrap();
        w.write(1, None).unwrap();
        let state = w.snapshot_state(7).unwrap();
        w.write(2, None).unwrap(); // after the checkpoint: lost with the failure
        drop(w);
        // Restored from checkpoint 7 whose notice never arrived.
        let w2 = Sink::<i32>::create_writer(&sink, &ctx(Some(state.clone()))).unwrap();
        let (visible, _) = files(dir.path());
        assert_eq!(visible.len(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&visible[0])).unwrap(),
            "1\n"
        );
        drop(w2);
        // Restoring twice (a second failure) commits nothing new, and the in-progress file
        // the first attempt left is gone.
        let _w3 = Sink::<i32>::create_writer(&sink, &ctx(Some(state))).unwrap();
        let (visible, hidden) = files(dir.path());
        assert_eq!(visible.len(), 1);
        assert!(
            hidden.iter().all(|h| !h.ends_with(".inprogress")),
            "{hidden:?}"
        );
    }
}
