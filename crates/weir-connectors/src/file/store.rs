//! Where the file connectors' files live: local paths, or objects in S3 (and S3-compatible
//! stores) named by `s3://bucket/key` URLs, through the `object_store` crate.
//!
//! S3 credentials, region and endpoint come from the `AWS_*` environment variables, as for
//! checkpoint storage (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Calls block the
//! calling task's thread on the process's object-storage I/O runtime: the file connectors
//! read and write from their task thread, as they do with local files.

use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// Bytes fetched per ranged GET when reading an object sequentially.
const READ_CHUNK: u64 = 8 * 1024 * 1024;

/// The `s3://` URL of an object or prefix, split into its bucket and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct S3Url {
    pub bucket: String,
    /// The key, without leading or trailing `/` (empty: the whole bucket).
    pub key: String,
}

impl S3Url {
    /// Parses `s3://bucket/key`; `None` if `path` is not an `s3://` URL.
    pub fn parse(path: &str) -> Option<Result<S3Url, String>> {
        let rest = path.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(format!("'{path}' names no bucket")));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.trim_matches('/').to_string(),
        }))
    }

    /// The URL of the object `name` below this prefix.
    pub fn child(&self, name: &str) -> S3Url {
        let key = if self.key.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.key)
        };
        S3Url {
            bucket: self.bucket.clone(),
            key,
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A blocking client of one S3 bucket.
#[derive(Clone)]
pub(crate) struct S3Bucket {
    store: Arc<AmazonS3>,
    rt: &'static tokio::runtime::Runtime,
}

fn s3_err(url: &S3Url, what: &str, e: impl std::fmt::Display) -> String {
    format!("cannot {what} '{url}': {e}")
}

impl S3Bucket {
    /// A client for `url`'s bucket.
    pub fn open(url: &S3Url) -> Result<S3Bucket, String> {
        let rt = weir_state::storage::io_runtime().map_err(|e| e.to_string())?;
        let store = weir_state::storage::s3_bucket(&url.bucket)
            .map_err(|e| s3_err(url, "configure S3 for", e))?;
        Ok(S3Bucket {
            store: Arc::new(store),
            rt,
        })
    }

    fn path(url: &S3Url) -> Result<ObjPath, String> {
        ObjPath::parse(&url.key).map_err(|e| s3_err(url, "parse", e))
    }

    /// The size of the object `url`, or `None` if there is none.
    pub fn size(&self, url: &S3Url) -> Result<Option<u64>, String> {
        if url.key.is_empty() {
            return Ok(None);
        }
        let p = Self::path(url)?;
        match self.rt.block_on(self.store.head(&p)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err(url, "look up", e)),
        }
    }

    /// The objects directly below the prefix `url` (not recursively), as (name, size),
    /// sorted by name.
    pub fn list(&self, url: &S3Url) -> Result<Vec<(String, u64)>, String> {
        let p = Self::path(url)?;
        let listing = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&p)))
            .map_err(|e| s3_err(url, "list", e))?;
        let mut out: Vec<(String, u64)> = listing
            .objects
            .into_iter()
            .filter_map(|o| Some((o.location.filename()?.to_string(), o.size)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The bytes `range` of the object `url`.
    pub fn get_range(&self, url: &S3Url, range: std::ops::Range<u64>) -> Result<Vec<u8>, String> {
        let p = Self::path(url)?;
        self.rt
            .block_on(self.store.get_range(&p, range))
            .map(|b| b.to_vec())
            .map_err(|e| s3_err(url, "read", e))
    }

    /// Copies the object `url` into `out`, a chunk at a time.
    pub fn download(&self, url: &S3Url, out: &mut File) -> Result<(), String> {
        let p = Self::path(url)?;
        self.rt
            .block_on(async {
                let mut body = self.store.get(&p).await?.into_stream();
                while let Some(chunk) = body.try_next().await? {
                    out.write_all(&chunk)
                        .map_err(|e| object_store::Error::Generic {
                            store: "local copy",
                            source: Box::new(e),
                        })?;
                }
                Ok::<_, object_store::Error>(())
            })
            .map_err(|e| s3_err(url, "download", e))
    }

    /// Starts a multipart upload to `url`; nothing is visible there until it completes.
    pub fn create_multipart(&self, url: &S3Url) -> Result<String, String> {
        let p = Self::path(url)?;
        self.rt
            .block_on(self.store.create_multipart(&p))
            .map_err(|e| s3_err(url, "start a multipart upload to", e))
    }

    /// Uploads part `index` (from 0) of the upload `id`; returns the part's tag.
    pub fn put_part(
        &self,
        url: &S3Url,
        id: &str,
        index: usize,
        bytes: Vec<u8>,
    ) -> Result<String, String> {
        let p = Self::path(url)?;
        self.rt
            .block_on(
                self.store
                    .put_part(&p, &id.to_string(), index, PutPayload::from(bytes)),
            )
            .map(|part| part.content_id)
            .map_err(|e| s3_err(url, &format!("upload part {index} of"), e))
    }

    /// Completes the upload `id` of `parts`: the object appears, whole, at `url`.
    pub fn complete_multipart(
        &self,
        url: &S3Url,
        id: &str,
        parts: &[String],
    ) -> Result<(), String> {
        let p = Self::path(url)?;
        let parts = parts
            .iter()
            .map(|c| PartId {
                content_id: c.clone(),
            })
            .collect();
        self.rt
            .block_on(self.store.complete_multipart(&p, &id.to_string(), parts))
            .map(|_| ())
            .map_err(|e| s3_err(url, "complete the multipart upload to", e))
    }
}

/// A file named by a connector: a local path or an S3 object.
#[derive(Clone)]
pub(crate) enum Location {
    Local(std::path::PathBuf),
    S3(S3Url, S3Bucket),
}

impl Location {
    /// Where `path` points: an `s3://` URL or a local path.
    pub fn of(path: &Path) -> Result<Location, String> {
        let text = path.to_string_lossy();
        match S3Url::parse(&text) {
            None => Ok(Location::Local(path.to_path_buf())),
            Some(url) => {
                let url = url?;
                let bucket = S3Bucket::open(&url)?;
                Ok(Location::S3(url, bucket))
            }
        }
    }

    /// The files at this location, as (path or URL, size), in a fixed order: the location
    /// itself if it is a file, else the files directly in it, skipping hidden ones (names
    /// starting with `.` or `_`, as Flink does).
    pub fn list_files(&self) -> Result<Vec<(String, u64)>, String> {
        match self {
            Location::Local(path) => list_local(path)
                .map_err(|e| format!("cannot read input path '{}': {e}", path.display())),
            Location::S3(url, bucket) => {
                if let Some(size) = bucket.size(url)? {
                    return Ok(vec![(url.to_string(), size)]);
                }
                Ok(bucket
                    .list(url)?
                    .into_iter()
                    .filter(|(name, _)| !is_hidden(name))
                    .map(|(name, size)| (url.child(&name).to_string(), size))
                    .collect())
            }
        }
    }

    /// A buffered reader of the file from byte `offset` on.
    pub fn open_at(&self, offset: u64) -> Result<Box<dyn BufRead + Send>, String> {
        match self {
            Location::Local(path) => {
                let mut file = File::open(path)
                    .map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| format!("cannot seek in '{}': {e}", path.display()))?;
                Ok(Box::new(BufReader::with_capacity(64 * 1024, file)))
            }
            Location::S3(url, bucket) => {
                let len = bucket
                    .size(url)?
                    .ok_or_else(|| format!("'{url}' does not exist"))?;
                Ok(Box::new(BufReader::with_capacity(
                    64 * 1024,
                    ObjectReader {
                        url: url.clone(),
                        bucket: bucket.clone(),
                        pos: offset,
                        len,
                        chunk: Vec::new(),
                        at: 0,
                    },
                )))
            }
        }
    }

    /// The file as a local file to read at random: the file itself, or a local copy of an
    /// S3 object (in the temporary directory, unlinked at once, so it goes when closed).
    pub fn open_local(&self) -> Result<File, String> {
        match self {
            Location::Local(path) => {
                File::open(path).map_err(|e| format!("cannot open '{}': {e}", path.display()))
            }
            Location::S3(url, bucket) => {
                let tmp = staging_path("download");
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| format!("cannot create '{}': {e}", tmp.display()))?;
                // The open handle keeps the data; the name is not needed.
                let _ = std::fs::remove_file(&tmp);
                bucket.download(url, &mut file)?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| format!("cannot read the copy of '{url}': {e}"))?;
                Ok(file)
            }
        }
    }
}

/// A unique path in the temporary directory for a staging or downloaded file.
pub(crate) fn staging_path(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("weir-{what}-{}-{n}", std::process::id()))
}

/// True for names Flink's file sources skip.
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

fn list_local(path: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(vec![(path.display().to_string(), meta.len())]);
    }
    let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_hidden);
        if hidden {
            continue;
        }
        // A file deleted between the listing and this look is skipped, not an error.
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => out.push((p.display().to_string(), m.len())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads an object sequentially by ranged GETs of [`READ_CHUNK`] bytes.
struct ObjectReader {
    url: S3Url,
    bucket: S3Bucket,
    /// Offset of the first byte of the next chunk to fetch.
    pos: u64,
    len: u64,
    chunk: Vec<u8>,
    /// Bytes of `chunk` already read.
    at: usize,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.chunk.len() {
            if self.pos >= self.len {
                return Ok(0);
            }
            let end = (self.pos + READ_CHUNK).min(self.len);
            self.chunk = self
                .bucket
                .get_range(&self.url, self.pos..end)
                .map_err(std::io::Error::other)?;
            self.pos = end;
            self.at = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        assert_eq!(S3Url::parse("/data/in"), None);
        let u = S3Url::parse("s3://bucket/a/b/").unwrap().unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("bucket", "a/b"));
        assert_eq!(u.child("x.csv").to_string(), "s3://bucket/a/b/x.csv");
        let root = S3Url::parse("s3://bucket").unwrap().unwrap();
        assert_eq!(root.child("x").to_string(), "s3://bucket/x");
        assert!(S3Url::parse("s3:///key").unwrap().is_err());
    }

    #[test]
    fn lists_local_files_skipping_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b"), "12").unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        std::fs::write(dir.path().join(".a.inprogress"), "x").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let got = Location::of(dir.path()).unwrap().list_files().unwrap();
        let names: Vec<(String, u64)> = got
            .into_iter()
            .map(|(p, n)| (p.rsplit('/').next().unwrap().to_string(), n))
            .collect();
        assert_eq!(names, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    }
}
