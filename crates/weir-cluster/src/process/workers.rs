//! A TaskManager's job workers: for each job with slots here, the job's binary running in
//! worker mode ([`super::worker`]).
//!
//! Preparing a job downloads its binary from the JobManager's blob store (once per binary;
//! the SHA-256 must match the key, or the binary is refused), starts it with the program's
//! arguments and the worker variables, and waits for its ready file. A worker dies with its
//! TaskManager (`PR_SET_PDEATHSIG`), is killed when the job is released, and a worker that
//! ends while its job still runs here is reported to the JobManager, which fails the
//! subtasks it ran (and only those of that job).

use super::blob_store::{is_blob_key, BlobStore};
use super::worker::WorkerEnv;
use crate::rpc::convert::job_id;
use crate::rpc::job_master::job_master_client::JobMasterClient;
use crate::rpc::task_manager::task_manager_server::TaskManager as TaskManagerRpc;
use crate::rpc::{
    endpoint_uri, Empty, JobRequest, PrepareJobRequest, PrepareJobResponse, WorkerLostReport,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use weir_core::JobId;

/// How long a worker may take from start to serving.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One running worker.
struct Worker {
    child: Arc<Mutex<Child>>,
    rpc: String,
    data: String,
}

/// The TaskManager's workers and where their binaries are cached.
pub struct Workers {
    task_manager: String,
    host: String,
    slots: usize,
    dir: PathBuf,
    running: Mutex<HashMap<JobId, Worker>>,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Workers {
    /// The workers of TaskManager `task_manager`, caching binaries under `dir`.
    pub fn new(
        task_manager: String,
        host: String,
        slots: usize,
        dir: PathBuf,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(Workers {
            task_manager,
            host,
            slots,
            dir,
            running: Mutex::new(HashMap::new()),
            runtime,
        })
    }

    /// Downloads blob `key` from `server` unless it is cached; checks its hash.
    async fn fetch(&self, server: &str, key: &str) -> Result<PathBuf, Status> {
        if !is_blob_key(key) {
            return Err(Status::invalid_argument(format!(
                "'{key}' is not a blob key"
            )));
        }
        let path = self.dir.join(key);
        if path.is_file() {
            return Ok(path);
        }
        let url = format!("http://{server}/blobs/{key}");
        let unavailable = |e: reqwest::Error| {
            Status::unavailable(format!("cannot download the job binary {url}: {e}"))
        };
        let store = BlobStore::open(&self.dir).map_err(|e| Status::internal(e.to_string()))?;
        let mut writer = store
            .writer()
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut response = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?;
        // Streamed to disk and hashed on the way: a binary is not held in memory.
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            writer
                .write(&chunk)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let (got, stored) = writer
            .finish()
            .map_err(|e| Status::internal(e.to_string()))?;
        if got != key {
            let _ = std::fs::remove_file(&stored);
            return Err(Status::data_loss(format!(
                "the job binary downloaded from {url} has SHA-256 {got}, not {key}: refusing to run it"
            )));
        }
        make_executable(&stored)
            .map_err(|e| Status::internal(format!("cannot make the job binary executable: {e}")))?;
        Ok(stored)
    }

    /// Starts the worker of `r`'s job and waits until it serves.
    fn start(
        self: &Arc<Self>,
        job: JobId,
        binary: &Path,
        r: &PrepareJobRequest,
    ) -> Result<Worker, Status> {
        // A directory per start: two starts of one job never read each other's files.
        static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = self.dir.join(format!("job-{job}-{n}"));
        std::fs::create_dir_all(&work)
            .map_err(|e| Status::internal(format!("cannot create {}: {e}", work.display())))?;
        let env = WorkerEnv {
            job,
            ready_file: work.join("ready"),
            graph_file: work.join("graph.json"),
            fingerprint: r.fingerprint.clone(),
            jobmanager: r.jobmanager_rpc.clone(),
            host: self.host.clone(),
            task_manager: self.task_manager.clone(),
            slots: self.slots,
        };
        let _ = std::fs::remove_file(&env.ready_file);
        std::fs::write(&env.graph_file, &r.job_graph_json)
            .map_err(|e| Status::internal(format!("cannot write the job graph: {e}")))?;
        let mut cmd = Command::new(binary);
        cmd.args(&r.args).current_dir(&work);
        for v in &r.env {
            if v.name.starts_with("WEIR_") {
                cmd.env(&v.name, &v.value);
            }
        }
        cmd.env_remove("WEIR_JOBMANAGER");
        for (name, value) in env.to_vars() {
            cmd.env(name, value);
        }
        // The worker's output (its log and what the program prints) goes to the
        // TaskManager's log: stderr, where the TaskManager logs too.
        if let Ok(err) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
            cmd.stdout(std::process::Stdio::from(err));
        }
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            Status::internal(format!(
                "cannot start the job binary {}: {e}",
                binary.display()
            ))
        })?;
        let child = Arc::new(Mutex::new(child));
        let started = Instant::now();
        let ready = loop {
            if let Ok(line) = std::fs::read_to_string(&env.ready_file) {
                break parse_ready(line.trim());
            }
            if let Ok(Some(status)) = lock(&child).try_wait() {
                break Err(Status::failed_precondition(format!(
                    "the job's worker exited before it served ({status}); see the TaskManager's log"
                )));
            }
            if started.elapsed() > READY_TIMEOUT {
                break Err(Status::deadline_exceeded(format!(
                    "the job's worker did not serve within {READY_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        match ready {
            Ok((rpc, data)) => Ok(Worker { child, rpc, data }),
            Err(e) => {
                // No zombie, no orphan: the worker is ended and reaped.
                let mut c = lock(&child);
                let _ = c.kill();
                let _ = c.wait();
                let _ = std::fs::remove_dir_all(&work);
                Err(e)
            }
        }
    }

    /// Watches `job`'s worker: when it ends while still registered (not released), the
    /// JobManager hears of it.
    fn watch(self: &Arc<Self>, job: JobId, child: Arc<Mutex<Child>>, jobmanager: String) {
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name(format!("worker-watch-{}", &job.to_string()[..8]))
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let status = match lock(&child).try_wait() {
                    Ok(Some(s)) => s.to_string(),
                    Ok(None) => continue,
                    Err(e) => format!("cannot wait for it: {e}"),
                };
                let Some(me) = me.upgrade() else { return };
                let still_ours = {
                    let mut running = lock(&me.running);
                    match running.get(&job) {
                        Some(w) if Arc::ptr_eq(&w.child, &child) => {
                            running.remove(&job);
                            true
                        }
                        _ => false,
                    }
                };
                if still_ours {
                    tracing::error!(job = %job, %status, "a job's worker ended while the job runs here");
                    me.report_lost(job, &jobmanager, format!("the job's worker process exited ({status})"));
                }
                return;
            });
        if let Err(e) = spawned {
            tracing::error!(job = %job, error = %e, "cannot watch a job's worker");
        }
    }

    fn report_lost(&self, job: JobId, jobmanager: &str, reason: String) {
        let report = WorkerLostReport {
            job_id: job.to_string(),
            task_manager_id: self.task_manager.clone(),
            reason,
        };
        let uri = endpoint_uri(jobmanager);
        let result = self.runtime.block_on(async move {
            let channel = tonic::transport::Channel::from_shared(uri)
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(10))
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let mut c = JobMasterClient::new(channel);
            c.worker_lost(report)
                .await
                .map_err(|s| s.message().to_string())
        });
        if let Err(e) = result {
            tracing::error!(job = %job, error = %e, "cannot tell the JobManager that a worker ended");
        }
    }

    /// Kills every worker: their jobs are not this TaskManager's any more (`reason`).
    pub fn stop_jobs(&self, reason: &str) {
        let workers: Vec<(JobId, Worker)> = lock(&self.running).drain().collect();
        for (job, w) in workers {
            tracing::warn!(job = %job, %reason, "stopping the job's worker");
            let mut child = lock(&w.child);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every worker and removes the cached binaries (the TaskManager stops).
    pub fn stop_all(&self) {
        self.stop_jobs("the TaskManager stops");
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the job binaries");
            }
        }
    }
}

/// Makes the file at `path` executable.
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// Makes the child die when this process dies, even by `kill -9` (Linux).
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe functions may be called; `prctl` and `getppid` are system calls
    // without locks or allocation, and `std::io::Error::from_raw_os_error` only wraps an
    // integer. Nothing else is touched.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// Reads a ready file's line: `rpc=A data=B`, or `error=REASON`.
fn parse_ready(line: &str) -> Result<(String, String), Status> {
    if let Some(reason) = line.strip_prefix("error=") {
        return Err(Status::failed_precondition(reason.to_string()));
    }
    let (mut rpc, mut data) = (None, None);
    for part in line.split_whitespace() {
        match part.split_once('=') {
            Some(("rpc", v)) => rpc = Some(v.to_string()),
            Some(("data", v)) => data = Some(v.to_string()),
            _ => {}
        }
    }
    match (rpc, data) {
        (Some(r), Some(d)) => Ok((r, d)),
        _ => Err(Status::internal(format!(
            "the worker's ready file is malformed: '{line}'"
        ))),
    }
}

/// The TaskManager RPC service over [`Workers`].
pub struct TaskManagerService {
    workers: Arc<Workers>,
}

impl TaskManagerService {
    /// A service starting and stopping `workers`.
    pub fn new(workers: Arc<Workers>) -> Self {
        TaskManagerService { workers }
    }
}

#[tonic::async_trait]
impl TaskManagerRpc for TaskManagerService {
    async fn prepare_job(
        &self,
        request: Request<PrepareJobRequest>,
    ) -> Result<Response<PrepareJobResponse>, Status> {
        let r = request.into_inner();
        let job = job_id(&r.job_id, "prepare-job request")?;
        if let Some(w) = lock(&self.workers.running).get(&job) {
            if matches!(lock(&w.child).try_wait(), Ok(None)) {
                return Ok(Response::new(PrepareJobResponse {
                    worker_rpc: w.rpc.clone(),
                    data_address: w.data.clone(),
                }));
            }
        }
        let binary = self.workers.fetch(&r.blob_server, &r.blob_key).await?;
        let workers = self.workers.clone();
        let jobmanager = r.jobmanager_rpc.clone();
        let worker = tokio::task::spawn_blocking(move || workers.start(job, &binary, &r))
            .await
            .map_err(|e| Status::internal(format!("starting the worker panicked: {e}")))??;
        let response = PrepareJobResponse {
            worker_rpc: worker.rpc.clone(),
            data_address: worker.data.clone(),
        };
        let child = worker.child.clone();
        let old = lock(&self.workers.running).insert(job, worker);
        if let Some(old) = old {
            let _ = lock(&old.child).kill();
        }
        self.workers.watch(job, child, jobmanager);
        tracing::info!(job = %job, worker = %response.worker_rpc, "job worker started");
        Ok(Response::new(response))
    }

    async fn release_job(&self, request: Request<JobRequest>) -> Result<Response<Empty>, Status> {
        let job = job_id(&request.get_ref().job_id, "release-job request")?;
        let removed = lock(&self.workers.running).remove(&job);
        if let Some(w) = removed {
            tracing::info!(job = %job, "job released; stopping its worker");
            let mut c = lock(&w.child);
            let _ = c.kill();
            let _ = c.wait();
        }
        // The job's start directories (graph and ready files).
        if let Ok(entries) = std::fs::read_dir(&self.workers.dir) {
            let prefix = format!("job-{job}-");
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_give_addresses_or_the_reason() {
        assert_eq!(
            parse_ready("rpc=127.0.0.1:1 data=127.0.0.1:2").unwrap(),
            ("127.0.0.1:1".into(), "127.0.0.1:2".into())
        );
        let e = parse_ready("error=the graph differs").unwrap_err();
        assert_eq!(e.message(), "the graph differs");
        assert!(parse_ready("rpc=1").is_err());
    }
}
