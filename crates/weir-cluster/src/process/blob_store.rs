//! The JobManager's blob store: job binaries uploaded by clients, named by their SHA-256, so
//! a TaskManager that downloads one can check it got exactly what was uploaded.

use crate::error::{ClusterError, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The SHA-256 of `bytes`, as 64 lowercase hex digits: a blob's key.
pub fn blob_key(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True if `key` has a blob key's form (64 lowercase hex digits); anything else never
/// reaches the file system.
pub fn is_blob_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Blobs in a directory, one file per key.
pub struct BlobStore {
    dir: PathBuf,
}

fn io_error(context: String, e: std::io::Error) -> ClusterError {
    ClusterError::Network {
        context,
        message: e.to_string(),
    }
}

impl BlobStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            io_error(
                format!("cannot create the blob directory {}", dir.display()),
                e,
            )
        })?;
        Ok(BlobStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` and returns their key. Storing the same bytes twice keeps one file.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let key = blob_key(bytes);
        let path = self.dir.join(&key);
        if !path.exists() {
            // Written under a temporary name and renamed: a reader never sees half a blob.
            let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| io_error(format!("cannot store blob {key}"), e))?;
        }
        Ok(key)
    }

    /// A blob written piece by piece (an upload), hashed as it is written.
    pub fn writer(&self) -> Result<BlobWriter> {
        let tmp = self.dir.join(format!(
            ".upload-{}-{}",
            std::process::id(),
            weir_core::JobId::generate()
        ));
        let file = std::fs::File::create(&tmp)
            .map_err(|e| io_error(format!("cannot create {}", tmp.display()), e))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            tmp,
            dir: self.dir.clone(),
        })
    }

    /// The file of blob `key`, if the store has it.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        if !is_blob_key(key) {
            return None;
        }
        let p = self.dir.join(key);
        p.is_file().then_some(p)
    }
}

/// A blob being written: [`BlobWriter::finish`] names it by its hash. Dropped unfinished,
/// it leaves nothing behind.
pub struct BlobWriter {
    file: std::fs::File,
    hasher: Sha256,
    tmp: PathBuf,
    dir: PathBuf,
}

impl BlobWriter {
    /// Appends `chunk`.
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        use std::io::Write;
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .map_err(|e| io_error(format!("cannot write {}", self.tmp.display()), e))
    }

    /// Ends the blob; returns its key (and its path).
    pub fn finish(mut self) -> Result<(String, PathBuf)> {
        let key: String = std::mem::take(&mut self.hasher)
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // No fsync: blobs live in a temporary directory for the life of the process, and a
        // reader checks the hash (the JobManager's on upload, a TaskManager's on download).
        let path = self.dir.join(&key);
        std::fs::rename(&self.tmp, &path)
            .map_err(|e| io_error(format!("cannot store blob {key}"), e))?;
        Ok((key, path))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After `finish` the file was renamed away and this finds nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_named_by_their_hash_and_bad_keys_find_nothing() {
        let dir = std::env::temp_dir().join(format!("weir-blob-test-{}", std::process::id()));
        let store = BlobStore::open(&dir).unwrap();
        let key = store.put(b"abc").unwrap();
        assert_eq!(
            key,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(store.put(b"abc").unwrap(), key);
        assert_eq!(std::fs::read(store.path(&key).unwrap()).unwrap(), b"abc");
        assert!(store.path("../etc/passwd").is_none());
        assert!(store.path(&"0".repeat(64)).is_none());
        let mut w = store.writer().unwrap();
        w.write(b"a").unwrap();
        w.write(b"bc").unwrap();
        assert_eq!(w.finish().unwrap().0, key);
        let mut w = store.writer().unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "an abandoned upload leaves nothing"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
