//! Continuous monitoring of a file source's paths for new files (Flink's
//! `FileSource...monitorContinuously(interval)`).
//!
//! Flink's continuous enumerator is one coordinator: it lists the paths, remembers the files
//! it has handed out, and hands the splits of new files to readers. Weir's source readers
//! have no coordinator to ask, so each subtask lists the paths itself and takes the new
//! files whose path hashes to it ([`owner`], by the key-group assignment): a new file is read whole by one subtask (the
//! bounded source, which knows all files at once, splits large files by block instead).
//!
//! Each subtask remembers the files it has taken (Flink's "already processed paths") and
//! keeps them in its checkpoint. The reader's state is restored by union, so after a
//! rescale every subtask sees every remembered file and every unfinished split, and keeps
//! those whose path now hashes to it. A file no subtask had taken at the checkpoint is found
//! again by its new owner's next listing; so every file is read exactly once across
//! failures and rescaling. As in Flink, the remembered set grows with the number of files,
//! and a file is picked up once, by name: write files under a hidden name (starting with `.`
//! or `_`) and rename them when complete, as the exactly-once `FileSink` does.

use super::store::Location;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The subtask (of `parallelism`) that reads the file `path` in monitoring mode: the path
/// is assigned as a key is (its key group among the most key groups there can be, and that
/// group's subtask), which every subtask, in every process and attempt, computes the same.
pub(crate) fn owner(path: &str, parallelism: u32) -> u32 {
    use weir_core::key_group::{
        key_group_for_key, operator_index_for_key_group, UPPER_BOUND_MAX_PARALLELISM,
    };
    let kg = key_group_for_key(path, UPPER_BOUND_MAX_PARALLELISM);
    operator_index_for_key_group(UPPER_BOUND_MAX_PARALLELISM, parallelism.max(1), kg)
}

/// Lists the source's paths every `interval` and yields the files new to this subtask.
pub(crate) struct Discovery {
    paths: Vec<PathBuf>,
    interval: Duration,
    next_scan: Instant,
    /// Files this subtask has taken (only files it owns).
    seen: HashSet<String>,
    subtask: u32,
    parallelism: u32,
}

impl Discovery {
    /// Discovery for `subtask` of `parallelism` over `paths`, remembering `seen` (restored
    /// from a checkpoint; files of other subtasks are dropped). The first listing is due at
    /// once.
    pub fn new(
        paths: Vec<PathBuf>,
        interval: Duration,
        seen: impl IntoIterator<Item = String>,
        subtask: u32,
        parallelism: u32,
    ) -> Self {
        let seen = seen
            .into_iter()
            .filter(|p| owner(p, parallelism) == subtask)
            .collect();
        Discovery {
            paths,
            interval,
            next_scan: Instant::now(),
            seen,
            subtask,
            parallelism,
        }
    }

    /// True if `path` is this subtask's to read.
    pub fn owns(&self, path: &str) -> bool {
        owner(path, self.parallelism) == self.subtask
    }

    /// If a listing is due, lists the paths and returns this subtask's new files as
    /// (path, size), in listing order, remembering them as taken.
    pub fn poll(&mut self) -> Result<Vec<(String, u64)>, String> {
        let now = Instant::now();
        if now < self.next_scan {
            return Ok(Vec::new());
        }
        self.next_scan = now + self.interval;
        let mut new = Vec::new();
        for p in &self.paths {
            let files = match Location::of(p)?.list_files() {
                Ok(files) => files,
                // A monitored directory may appear later; anything else is an error.
                Err(e) if !p.to_string_lossy().starts_with("s3://") && !p.exists() => {
                    tracing::debug!(path = %p.display(), error = %e, "monitored path does not exist yet");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (file, size) in files {
                if self.owns(&file) && self.seen.insert(file.clone()) {
                    new.push((file, size));
                }
            }
        }
        if !new.is_empty() {
            tracing::info!(
                subtask = self.subtask,
                files = new.len(),
                "file source found new files"
            );
        }
        Ok(new)
    }

    /// The files taken so far, for the checkpoint.
    pub fn seen(&self) -> impl Iterator<Item = &String> {
        self.seen.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_stable_and_spreads() {
        assert_eq!(owner("/data/a.csv", 4), owner("/data/a.csv", 4));
        let mut counts = [0u32; 4];
        for i in 0..400 {
            counts[owner(&format!("/data/file-{i}.csv"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 60), "{counts:?}");
        assert_eq!(owner("x", 0), 0);
    }

    #[test]
    fn yields_each_owned_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut subs: Vec<Discovery> = (0..2)
            .map(|s| Discovery::new(vec![dir.path().into()], Duration::ZERO, [], s, 2))
            .collect();
        let mut got = Vec::new();
        for round in 0..3 {
            for i in 0..5 {
                std::fs::write(dir.path().join(format!("f{round}-{i}")), "x\n").unwrap();
            }
            for d in &mut subs {
                got.extend(d.poll().unwrap().into_iter().map(|(p, _)| p));
            }
        }
        got.sort();
        let before = got.len();
        got.dedup();
        assert_eq!((before, got.len()), (15, 15));
        // A restored subtask keeps only the files it owns.
        let all: Vec<String> = got.clone();
        let d = Discovery::new(vec![dir.path().into()], Duration::ZERO, all, 0, 3);
        assert!(d.seen().all(|p| owner(p, 3) == 0));
    }
}
