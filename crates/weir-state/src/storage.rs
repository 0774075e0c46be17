//! Checkpoint storage through the `object_store` crate: a local directory by default,
//! S3-compatible object stores by URL.
//!
//! Layout (as Flink's): `<root>/<job-id>/chk-<n>/` holds one state file per task and the
//! checkpoint's `_metadata`; a savepoint is a self-contained directory of the same shape.
//! File names in the metadata are relative to the checkpoint's directory, so a savepoint can
//! be moved. A checkpoint exists only once `_metadata` is written, and both stores write it
//! atomically (the local store writes a staging file and renames it; an object store makes
//! an object visible only when its upload completed).
//!
//! Locations are local paths, `file://` URLs, or `s3://bucket/prefix` URLs. S3 credentials,
//! region and endpoint come from the usual `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for an
//! S3-compatible service, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
//!
//! Uploads run on a small tokio runtime shared by the process, so a task hands its snapshot
//! bytes over and goes on processing records.

use crate::error::{Result, StateError};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;

/// Name of the metadata file in a checkpoint or savepoint directory.
pub const METADATA_FILE: &str = "_metadata";

/// The process's I/O runtime for object storage (checkpoints, and the file connectors'
/// S3 access), started on first use.
pub fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .enable_all()
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

/// Background uploads not finished yet, over the process.
static UPLOADS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits until no background upload is in flight, or `timeout` passed; true if none is.
pub fn wait_for_uploads(timeout: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while UPLOADS_IN_FLIGHT.load(std::sync::atomic::Ordering::Acquire) > 0 {
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    true
}

/// A directory of checkpoint storage: a job's checkpoint root, one checkpoint, or a
/// savepoint. Paths given to its methods are relative to it.
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    /// The directory within the store.
    prefix: ObjPath,
    /// The location as the user wrote it (normalised), for messages and sub-locations.
    location: String,
    /// The local directory, for a local store.
    local: Option<std::path::PathBuf>,
    rt: &'static tokio::runtime::Runtime,
}

impl std::fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStorage({})", self.location)
    }
}

/// The location `name` below `base` (a path or URL).
pub fn join_location(base: &str, name: &str) -> String {
    if base.contains("://") && !base.starts_with("file://") {
        format!("{}/{name}", base.trim_end_matches('/'))
    } else {
        let base = base.strip_prefix("file://").unwrap_or(base);
        std::path::Path::new(base).join(name).display().to_string()
    }
}

/// A client for the S3 `bucket`, configured from the `AWS_*` environment variables (see
/// the module's documentation).
pub fn s3_bucket(bucket: &str) -> std::result::Result<AmazonS3, object_store::Error> {
    AmazonS3Builder::from_env().with_bucket_name(bucket).build()
}

fn storage_err(location: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Storage {
        location: location.to_string(),
        message: e.to_string(),
    }
}

impl CheckpointStorage {
    /// Opens the storage at `location`: a directory (created if needed), a `file://` URL,
    /// or an `s3://bucket/prefix` URL.
    pub fn open(location: &str) -> Result<Arc<Self>> {
        let rt = io_runtime()?;
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(storage_err(location, "the URL names no bucket"));
            }
            let store = s3_bucket(bucket).map_err(|e| storage_err(location, e))?;
            let prefix = ObjPath::parse(prefix).map_err(|e| storage_err(location, e))?;
            return Ok(Arc::new(CheckpointStorage {
                store: Arc::new(store),
                prefix,
                location: location.trim_end_matches('/').to_string(),
                local: None,
                rt,
            }));
        }
        let path = match location.strip_prefix("file://") {
            Some(p) => p,
            None if location.contains("://") => {
                let scheme = location.split("://").next().unwrap_or_default();
                return Err(storage_err(
                    location,
                    format!("the '{scheme}' scheme is not supported; use a local directory, a file:// URL or an s3:// URL"),
                ));
            }
            None => location,
        };
        std::fs::create_dir_all(path).map_err(|e| storage_err(location, e))?;
        let root = std::path::Path::new(path)
            .canonicalize()
            .map_err(|e| storage_err(location, e))?;
        let store =
            LocalFileSystem::new_with_prefix(&root).map_err(|e| storage_err(location, e))?;
        Ok(Arc::new(CheckpointStorage {
            store: Arc::new(store),
            prefix: ObjPath::default(),
            location: root.display().to_string(),
            local: Some(root),
            rt,
        }))
    }

    /// The location of this directory (a path or URL), for [`Self::open`].
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The location of the directory `rel` below this one, for [`Self::open`].
    pub fn location_of(&self, rel: &str) -> String {
        join_location(&self.location, rel)
    }

    fn obj(&self, rel: &str) -> Result<ObjPath> {
        let rel = ObjPath::parse(rel).map_err(|e| storage_err(&self.location_of(rel), e))?;
        Ok(self.prefix.parts().chain(rel.parts()).collect())
    }

    /// Writes to `rel`, in the background, the bytes `produce` makes (on a blocking thread:
    /// encoding a snapshot is CPU work); `done` gets the size written with what `produce`
    /// returned besides the bytes, or the error.
    pub fn put_async<X: Send + 'static>(
        self: &Arc<Self>,
        rel: String,
        produce: impl FnOnce() -> Result<(Vec<u8>, X)> + Send + 'static,
        done: impl FnOnce(Result<(u64, X)>) + Send + 'static,
    ) {
        let this = self.clone();
        UPLOADS_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.rt.spawn(async move {
            let produced = tokio::task::spawn_blocking(produce)
                .await
                .unwrap_or_else(|e| {
                    Err(storage_err(
                        &this.location_of(&rel),
                        format!("encoding the snapshot failed: {e}"),
                    ))
                });
            let r = match (produced, this.obj(&rel)) {
                (Ok((bytes, extra)), Ok(p)) => {
                    let len = bytes.len() as u64;
                    this.store
                        .put(&p, PutPayload::from(bytes))
                        .await
                        .map(|_| (len, extra))
                        .map_err(|e| storage_err(&this.location_of(&rel), e))
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            UPLOADS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            done(r)
        });
    }

    /// Writes `bytes` to `rel` and waits; the write is atomic (all or nothing).
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let p = self.obj(rel)?;
        self.rt
            .block_on(self.store.put(&p, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| storage_err(&self.location_of(rel), e))
    }

    /// Writes the local file `path` to `rel` and waits; atomic (all or nothing).
    ///
    /// Safe to call from a task of the storage's own runtime (a background snapshot part):
    /// local storage copies with the standard library instead of going through the
    /// runtime's blocking pool, which that caller may be holding.
    pub fn put_file(&self, rel: &str, path: &std::path::Path) -> Result<()> {
        let Some(root) = &self.local else {
            let bytes =
                std::fs::read(path).map_err(|e| storage_err(&path.display().to_string(), e))?;
            return self.put(rel, bytes);
        };
        let target = root.join(rel);
        let err = |e: std::io::Error| storage_err(&target.display().to_string(), e);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = target.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::copy(path, &tmp).map_err(err)?;
        std::fs::rename(&tmp, &target).map_err(err)
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
            .map_err(|e| storage_err(&self.location_of(rel), e))
    }

    /// The size of the file `rel`.
    pub fn size(&self, rel: &str) -> Result<u64> {
        let p = self.obj(rel)?;
        self.rt
            .block_on(self.store.head(&p))
            .map(|m| m.size)
            .map_err(|e| storage_err(&self.location_of(rel), e))
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
            .map_err(|e| storage_err(&self.location_of(rel), e))?;
        if let Some(root) = &self.local {
            // The object store removes files; empty local directories stay behind otherwise.
            let _ = std::fs::remove_dir_all(root.join(rel));
        }
        Ok(())
    }

    /// Deletes the file `rel` (nothing if it does not exist).
    pub fn delete(&self, rel: &str) -> Result<()> {
        let p = self.obj(rel)?;
        match self.rt.block_on(self.store.delete(&p)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_err(&self.location_of(rel), e)),
        }
    }

    /// The names of the files directly under `rel` (none if it does not exist).
    pub fn list_files(&self, rel: &str) -> Result<Vec<String>> {
        let p = self.obj(rel)?;
        let r = self.rt.block_on(self.store.list_with_delimiter(Some(&p)));
        match r {
            Ok(r) => Ok(r
                .objects
                .into_iter()
                .filter_map(|o| o.location.filename().map(str::to_string))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(storage_err(&self.location_of(rel), e)),
        }
    }

    /// The names of the directories directly under `rel`.
    pub fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let p = self.obj(rel)?;
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&p)))
            .map_err(|e| storage_err(&self.location_of(rel), e))?;
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
        s.put_async(
            "job/chk-2/b.state".into(),
            || Ok((vec![7; 10], "extra")),
            move |r| tx.send(r).unwrap(),
        );
        assert_eq!(rx.recv().unwrap().unwrap(), (10, "extra"));
        assert_eq!(s.get("job/chk-1/a.state").unwrap(), b"hello");
        let mut dirs = s.list_dirs("job").unwrap();
        dirs.sort();
        assert_eq!(dirs, vec!["chk-1", "chk-2"]);
        s.delete_dir("job/chk-1").unwrap();
        assert!(!s.exists("job/chk-1/a.state"));
        assert!(s.get("job/chk-1/a.state").is_err());
        assert_eq!(s.list_dirs("job").unwrap(), vec!["chk-2"]);
        // A sub-location opens as a storage of its own.
        let sub = CheckpointStorage::open(&s.location_of("job/chk-2")).unwrap();
        assert_eq!(sub.get("b.state").unwrap(), vec![7; 10]);
        let e = CheckpointStorage::open("gs://bucket/x").unwrap_err();
        assert!(e.to_string().contains("'gs' scheme"), "{e}");
        assert_eq!(join_location("s3://b/p/", "chk-1"), "s3://b/p/chk-1");
    }
}
