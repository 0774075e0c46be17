//! `weir-bench --taskmanagers N ...`: the workloads on a session cluster of processes on
//! this host, a JobManager and N TaskManagers with one slot each (the `weir` binary next to
//! this one), so that every exchange between subtasks on different TaskManagers crosses TCP
//! on loopback. The benchmark submits itself, as any job binary does with `weir run`; its
//! workers are this binary in worker mode (they never start a cluster).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_cluster::rest::client::RestClient;

/// A JobManager and its TaskManagers, stopped when dropped.
pub struct LocalCluster {
    processes: Vec<Child>,
    dir: PathBuf,
    /// The JobManager's REST address.
    pub rest: String,
}

/// True in a job's worker process (started by a TaskManager), where no cluster is started.
pub fn is_worker() -> bool {
    std::env::var_os(weir_cluster::process::worker::WORKER_JOB).is_some()
}

fn spawn(weir: &Path, args: &[&str], log: &Path) -> Result<Child, String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    Command::new(weir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", weir.display()))
}

impl LocalCluster {
    /// Starts a JobManager and `task_managers` TaskManagers with one slot each, and waits
    /// until they are registered.
    pub fn start(task_managers: usize) -> Result<LocalCluster, String> {
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let weir = me.with_file_name("weir");
        if !weir.is_file() {
            return Err(format!(
                "{} is missing: build it with `cargo build --release -p weir-cli`",
                weir.display()
            ));
        }
        let dir = std::env::temp_dir().join(format!("weir-bench-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let address = dir.join("address");
        let mut cluster = LocalCluster {
            processes: Vec::new(),
            dir: dir.clone(),
            rest: String::new(),
        };
        cluster.processes.push(spawn(
            &weir,
            &[
                "jobmanager",
                "--rpc-port",
                "0",
                "--rest-port",
                "0",
                "--address-file",
                &address.display().to_string(),
            ],
            &dir.join("jobmanager.log"),
        )?);
        let start = Instant::now();
        let line = loop {
            match std::fs::read_to_string(&address) {
                Ok(l) if l.ends_with('\n') => break l,
                _ if start.elapsed() > Duration::from_secs(20) => {
                    return Err("the JobManager did not start".into())
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|p| p.strip_prefix(k))
                .map(str::to_string)
                .ok_or_else(|| format!("bad address line '{line}'"))
        };
        let rpc = field("rpc=")?;
        cluster.rest = field("rest=")?;
        for i in 0..task_managers {
            cluster.processes.push(spawn(
                &weir,
                &["taskmanager", "--jobmanager", &rpc, "--slots", "1"],
                &dir.join(format!("taskmanager-{i}.log")),
            )?);
        }
        let client = RestClient::new(&cluster.rest).map_err(|e| e.to_string())?;
        while client.task_managers().map_err(|e| e.to_string())? < task_managers {
            if start.elapsed() > Duration::from_secs(30) {
                return Err("the TaskManagers did not register".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "cluster: JobManager at {} with {task_managers} TaskManagers (logs in {})",
            cluster.rest,
            dir.display()
        );
        Ok(cluster)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // TaskManagers first (they stop their workers), then the JobManager.
        for p in self.processes.iter_mut().rev() {
            // SAFETY: signals our own child process; no memory is involved.
            unsafe {
                libc::kill(p.id() as i32, libc::SIGTERM);
            }
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
