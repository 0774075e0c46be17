//! Checkpoint storage through the `object_store` crate: a local directory by default.
//!
//! Layout (as Flink's): `<root>/<job-id>/chk-<n>/` holds one state file per task and the
//! checkpoint's `_metadata`; a savepoint is a self-contained directory of the same shape.
//! File names in the metadata are relative to the checkpoint's directory, so a savepoint can
//! be moved. A checkpoint exists only once `_metadata` is written, and the store writes it
//! atomically (the local store writes a staging file and renames it).
//!
//! Uploads run on a small tokio runtime owned by the storage, so a task hands its snapshot
//! bytes over and goes on processing records.

use crate::error::{Result, StateError};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;

/// Name of the metadata file in a checkpoint or savepoint directory.
pub const METADATA_FILE: &str = "_metadata";

/// The process's I/O runtime for checkpoint storage, started on first use.
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("weir-ckpt-io")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| StateError::Storage {
        location: "checkpoint I/O runtime".into(),
        message: format!("cannot start it: {e}"),
    })
}

/// A directory of checkpoint storage: a job's checkpoint root, one checkpoint, or a
/// savepoint. Paths given to its methods are relative to it.
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    root: std::path::PathBuf,
    rt: &'static tokio::runtime::Runtime,
}

impl std::fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStorage({})", self.root.display())
    }
}

/// Turns a location (a path or a `file://` URL) into a local directory path.
pub fn local_path(location: &str) -> Result<std::path::PathBuf> {
    if let Some(p) = location.strip_prefix("file://") {
        return Ok(std::path::PathBuf::from(p));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(StateError::Storage {
            location: location.to_string(),
            message: format!(
                "the '{scheme}' scheme is not available in this build; use a local directory or a file:// URL"
            ),
        });
    }
    Ok(std::path::PathBuf::from(location))
}

fn storage_err(location: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Storage {
        location: location.to_string(),
        message: e.to_string(),
    }
}

impl CheckpointStorage {
    /// Opens (creating it if needed) the storage at `location`, a directory or `file://` URL.
    pub fn open(location: &str) -> Result<Arc<Self>> {
        let root = local_path(location)?;
        std::fs::create_dir_all(&root).map_err(|e| storage_err(location, e))?;
        let root = root.canonicalize().map_err(|e| storage_err(location, e))?;
        let store =
            LocalFileSystem::new_with_prefix(&root).map_err(|e| storage_err(location, e))?;
        let rt = io_runtime()?;
        Ok(Arc::new(CheckpointStorage {
            store: Arc::new(store),
            root,
            rt,
        }))
    }

    /// The root directory.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The location of the directory `rel` below this one, for [`Self::open`].
    pub fn location_of(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    /// The full local path of `rel`, for messages.
    pub fn display(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    fn obj(&self, rel: &str) -> Result<ObjPath> {
        ObjPath::parse(rel).map_err(|e| storage_err(&self.display(rel), e))
    }

    /// Writes `bytes` to `rel` in the background; `done` gets the size written or the error.
    pub fn put_async(
        self: &Arc<Self>,
        rel: String,
        bytes: Vec<u8>,
        done: impl FnOnce(Result<u64>) + Send + 'static,
    ) {
        let this = self.clone();
        self.rt.spawn(async move {
            let len = bytes.len() as u64;
            let r = match this.obj(&rel) {
                Ok(p) => this
                    .store
                    .put(&p, PutPayload::from(bytes))
                    .await
                    .map(|_| len)
                    .map_err(|e| storage_err(&this.display(&rel), e)),
                Err(e) => Err(e),
            };
            done(r)
        });
    }

    /// Writes `bytes` to `rel` and waits; the write is atomic (all or nothing).
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let p = self.obj(rel)?;
        self.rt
            .block_on(self.store.put(&p, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| storage_err(&self.display(rel), e))
    }

    /// Reads the whole file `rel`.
    pub fn get(&self, rel: &str) -> Result<Vec<u8>> {
        let p = self.obj(rel)?;
        self.rt
            .block_on(async {
                let r = self.store.get(&p).await?;
                r.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| storage_err(&self.display(rel), e))
    }

    /// True if `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        match self.obj(rel) {
            Ok(p) => self.rt.block_on(self.store.head(&p)).is_ok(),
            Err(_) => false,
        }
    }

    /// Deletes every file under the directory `rel` (and the directory, for local storage).
    pub fn delete_dir(&self, rel: &str) -> Result<()> {
        let p = self.obj(rel)?;
        self.rt
            .block_on(async {
                let files: Vec<_> = self.store.list(Some(&p)).try_collect().await?;
                for f in files {
                    self.store.delete(&f.location).await?;
                }
                Ok::<_, object_store::Error>(())
            })
            .map_err(|e| storage_err(&self.display(rel), e))?;
        // The object store removes files; empty local directories stay behind otherwise.
        let _ = std::fs::remove_dir_all(self.root.join(rel));
        Ok(())
    }

    /// The names of the directories directly under `rel`.
    pub fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let p = self.obj(rel)?;
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&p)))
            .map_err(|e| storage_err(&self.display(rel), e))?;
        Ok(r.common_prefixes
            .into_iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = CheckpointStorage::open(dir.path().to_str().unwrap()).unwrap();
        s.put("job/chk-1/a.state", b"hello".to_vec()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        s.put_async("job/chk-2/b.state".into(), vec![7; 10], move |r| {
            tx.send(r).unwrap()
        });
        assert_eq!(rx.recv().unwrap().unwrap(), 10);
        assert_eq!(s.get("job/chk-1/a.state").unwrap(), b"hello");
        let mut dirs = s.list_dirs("job").unwrap();
        dirs.sort();
        assert_eq!(dirs, vec!["chk-1", "chk-2"]);
        s.delete_dir("job/chk-1").unwrap();
        assert!(!s.exists("job/chk-1/a.state"));
        assert!(s.get("job/chk-1/a.state").is_err());
        assert_eq!(s.list_dirs("job").unwrap(), vec!["chk-2"]);
        let e = CheckpointStorage::open("s3://bucket/x").unwrap_err();
        assert!(e.to_string().contains("'s3' scheme"), "{e}");
    }
}
