//! Where the exactly-once [`FileSink`](super::FileSink) puts its part files, and how a part
//! is prepared (durable, invisible) and committed (visible under its finished name).
//!
//! - A local directory: a part is written to a hidden in-progress file, synced and renamed
//!   to a hidden pending file when prepared, and renamed to its finished name on commit.
//! - S3 (`s3://bucket/prefix`): a part is written to a local staging file (in the temporary
//!   directory, unlinked at once so a crash leaves nothing behind); when prepared, it is
//!   uploaded as the parts of a multipart upload, which S3 keeps invisible; on commit the
//!   upload is completed and the object appears whole under its finished name. The upload
//!   id and part tags go into the checkpoint, so a restored writer can complete it. This is
//!   how Flink's S3 recoverable writer commits; unlike Flink's, which uploads a part file's
//!   parts while it is written, Weir uploads on the barrier (the file is bounded by what
//!   arrives in one checkpoint interval), so the barrier waits for the upload.

use super::store::{staging_path, S3Bucket, S3Url};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use weir_api::functions::UserError;

/// Bytes per part of a multipart upload (S3's smallest part size, as Flink's default
/// `s3.upload.min.part.size`); the last part may be smaller.
pub(crate) const UPLOAD_PART_BYTES: usize = 5 * 1024 * 1024;

/// What committing a prepared part needs besides its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Prepared {
    /// A local pending file, renamed on commit.
    LocalFile,
    /// An S3 multipart upload, completed on commit.
    Upload {
        /// The upload's id.
        id: String,
        /// The tags of its parts, in order.
        parts: Vec<String>,
    },
}

/// The directory or prefix a sink writes to.
pub(crate) enum PartStore {
    Local(PathBuf),
    S3(S3Url, S3Bucket),
}

fn pending_name(name: &str) -> String {
    format!(".{name}.pending")
}

fn in_progress_name(name: &str) -> String {
    format!(".{name}.inprogress")
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> UserError {
    format!("file sink: cannot {what} '{}': {e}", path.display()).into()
}

impl PartStore {
    /// The store at `dir`: an `s3://` URL or a local directory (created if needed).
    pub fn open(dir: &Path) -> Result<PartStore, UserError> {
        let text = dir.to_string_lossy();
        if let Some(url) = S3Url::parse(&text) {
            let url = url.map_err(|e| format!("file sink: {e}"))?;
            let bucket = S3Bucket::open(&url).map_err(|e| format!("file sink: {e}"))?;
            return Ok(PartStore::S3(url, bucket));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        Ok(PartStore::Local(dir.to_path_buf()))
    }

    /// Where the part `name` is written while in progress, for messages.
    pub fn describe(&self, name: &str) -> String {
        match self {
            PartStore::Local(dir) => dir.join(in_progress_name(name)).display().to_string(),
            PartStore::S3(url, _) => format!("{} (staged locally)", url.child(name)),
        }
    }

    /// Creates the file the part `name` is written into.
    pub fn create(&self, name: &str) -> Result<File, UserError> {
        match self {
            PartStore::Local(dir) => {
                let path = dir.join(in_progress_name(name));
                File::create(&path).map_err(|e| io_err("create", &path, e))
            }
            PartStore::S3(..) => {
                let path = staging_path("part");
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io_err("create the staging file", &path, e))?;
                // The handle keeps the data; unlinked, the file goes with the process.
                let _ = std::fs::remove_file(&path);
                Ok(file)
            }
        }
    }

    /// Makes the written part `name` durable but invisible, ready to commit.
    pub fn prepare(&self, name: &str, mut file: File) -> Result<Prepared, UserError> {
        match self {
            PartStore::Local(dir) => {
                let from = dir.join(in_progress_name(name));
                file.sync_all().map_err(|e| io_err("sync", &from, e))?;
                let to = dir.join(pending_name(name));
                std::fs::rename(&from, &to).map_err(|e| io_err("rename", &from, e))?;
                Ok(Prepared::LocalFile)
            }
            PartStore::S3(prefix, bucket) => {
                let url = prefix.child(name);
                file.seek(SeekFrom::Start(0)).map_err(|e| {
                    format!("file sink: cannot read back the part for '{url}': {e}")
                })?;
                let id = bucket.create_multipart(&url)?;
                let mut parts = Vec::new();
                loop {
                    let chunk = read_chunk(&mut file, UPLOAD_PART_BYTES).map_err(|e| {
                        format!("file sink: cannot read back the part for '{url}': {e}")
                    })?;
                    // An empty part only if the file is empty: S3 needs one part.
                    if chunk.is_empty() && !parts.is_empty() {
                        break;
                    }
                    let last = chunk.len() < UPLOAD_PART_BYTES;
                    parts.push(bucket.put_part(&url, &id, parts.len(), chunk)?);
                    if last {
                        break;
                    }
                }
                tracing::debug!(%url, parts = parts.len(), "file sink: part uploaded, to complete on commit");
                Ok(Prepared::Upload { id, parts })
            }
        }
    }

    /// Makes the prepared part `name` visible under its finished name. Committing a part
    /// that was committed before does nothing, so a commit can be retried.
    pub fn commit(&self, name: &str, prepared: &Prepared) -> Result<(), UserError> {
        match (self, prepared) {
            (PartStore::Local(dir), Prepared::LocalFile) => {
                let from = dir.join(pending_name(name));
                let to = dir.join(name);
                match std::fs::rename(&from, &to) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => Ok(()),
                    Err(e) => Err(io_err("commit", &from, e)),
                }
            }
            (PartStore::S3(prefix, bucket), Prepared::Upload { id, parts }) => {
                let url = prefix.child(name);
                match bucket.complete_multipart(&url, id, parts) {
                    Ok(()) => Ok(()),
                    // Completed before (the upload is gone, its object is there).
                    Err(e) => match bucket.size(&url) {
                        Ok(Some(_)) => Ok(()),
                        _ => Err(format!("file sink: {e}").into()),
                    },
                }
            }
            _ => Err(format!(
                "file sink: the part '{name}' was prepared for another kind of storage \
                 (the sink's path changed between the checkpoint and the restore)"
            )
            .into()),
        }
    }

    /// After a restore, deletes the in-progress files an earlier attempt of subtask
    /// `subtask` left: no checkpoint refers to an in-progress file (a restored writer always
    /// starts a new one), and files of other subtask indexes are left to their own subtask,
    /// which may be writing them now. (On S3 nothing is in progress in the store: staging
    /// files are local and unlinked.)
    pub fn delete_abandoned(&self, prefix: &str, subtask: u32) {
        let PartStore::Local(dir) = self else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mine = format!("-{subtask}-");
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let abandoned = name
                .strip_prefix(&format!(".{prefix}-"))
                .and_then(|rest| rest.strip_suffix(".inprogress"))
                // `<run>-<subtask>-<n>`: the run is 16 hex digits.
                .is_some_and(|rest| rest.get(16..).is_some_and(|tail| tail.starts_with(&mine)));
            if abandoned {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot delete an abandoned in-progress file");
                }
            }
        }
    }
}

/// Reads up to `n` bytes (fewer only at the end of the file).
fn read_chunk(file: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    file.by_ref().take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
