//! `weir cluster start|stop`: a session cluster on this host, as background processes (one
//! JobManager, N TaskManagers), each with a pid file and a log file in the cluster directory.
//!
//! The directory holds `jobmanager.pid`, `taskmanager-<i>.pid`, `jobmanager.address` (the
//! bound RPC and REST addresses) and `log/<role>.log`. The processes run in their own process
//! groups, so they outlive the shell that started them; `stop` ends them by their pids.

use crate::error::{CliError, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weir_cluster::process::JobManagerAddresses;

/// `weir cluster` actions.
#[derive(Subcommand)]
pub enum ClusterAction {
    /// Starts a JobManager and TaskManagers in the background.
    Start(StartArgs),
    /// Stops the processes started by `weir cluster start`.
    Stop(DirArgs),
}

/// Where the cluster's pid, address and log files live.
#[derive(Args)]
pub struct DirArgs {
    /// The cluster directory (default: $WEIR_CLUSTER_DIR, else ~/.weir/cluster).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Options of `weir cluster start`.
#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Number of TaskManagers.
    #[arg(long, default_value_t = 1)]
    taskmanagers: u32,
    /// Slots per TaskManager.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// The JobManager's RPC port (0: any free port).
    #[arg(long, default_value_t = 6123)]
    rpc_port: u16,
    /// The JobManager's REST port (0: any free port).
    #[arg(long, default_value_t = 8081)]
    rest_port: u16,
    /// The TaskManagers' heartbeat timeout, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    heartbeat_timeout_ms: u64,
}

/// How long `start` waits for the JobManager to bind its ports, and `stop` for a process to
/// end after SIGTERM before it sends SIGKILL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn cluster_dir(args: &DirArgs) -> Result<PathBuf> {
    if let Some(d) = &args.dir {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os("WEIR_CLUSTER_DIR") {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| {
        CliError::Usage("no cluster directory: pass --dir or set WEIR_CLUSTER_DIR".into())
    })?;
    Ok(PathBuf::from(home).join(".weir").join("cluster"))
}

/// Runs a `weir cluster` action.
pub fn run(action: ClusterAction) -> Result<()> {
    match action {
        ClusterAction::Start(args) => start(args),
        ClusterAction::Stop(args) => stop(&cluster_dir(&args)?),
    }
}

/// True if process `pid` exists and has not exited (a zombie, exited but not yet reaped by
/// its parent, counts as ended).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists and
    // may be signalled. It touches no memory of ours.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists && !zombie(pid)
}

/// True if `/proc` says `pid` is a zombie.
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The state follows the command name, which is in parentheses and may hold
            // spaces: take the first field after the last ')'.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: `pid` is positive (see `read_pid`), so this signals that one process and no
    // group; the call shares no memory with us.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The pid files of a cluster directory: TaskManagers first, the JobManager last.
fn pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pid"))
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|p| {
        (
            p.file_name().is_some_and(|n| n == "jobmanager.pid"),
            p.clone(),
        )
    });
    files
}

/// The pid in a pid file; only a positive one (0 and negative pids name process groups or
/// every process to `kill`, which a damaged file must never make us signal).
fn read_pid(file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    (pid > 0).then_some(pid)
}

/// Starts `weir ROLE ARGS` in the background, logging to `log/<name>.log`, and writes its
/// pid to `<name>.pid`.
fn spawn(dir: &Path, name: &str, args: &[String]) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(CliError::io("cannot find the weir executable"))?;
    let log_path = dir.join("log").join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(CliError::io(format!(
        "cannot create {}",
        log_path.display()
    )))?;
    let err = log
        .try_clone()
        .map_err(CliError::io(format!("cannot open {}", log_path.display())))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(CliError::io(format!("cannot start the {name} process")))?;
    let pid = child.id();
    crate::roles::write_atomically(&dir.join(format!("{name}.pid")), &pid.to_string())?;
    Ok(pid)
}

fn start(args: StartArgs) -> Result<()> {
    let dir = cluster_dir(&args.dir)?;
    if args.taskmanagers == 0 || args.slots == 0 {
        return Err(CliError::Usage(
            "a cluster needs at least one TaskManager with at least one slot".into(),
        ));
    }
    if pid_files(&dir)
        .iter()
        .filter_map(|f| read_pid(f))
        .any(alive)
    {
        return Err(CliError::Usage(format!(
            "a cluster is already running in {} (stop it with `weir cluster stop --dir {}`)",
            dir.display(),
            dir.display()
        )));
    }
    let started = start_processes(&dir, &args);
    if started.is_err() {
        // Leave nothing half-started behind.
        let _ = stop(&dir);
    }
    started
}

fn start_processes(dir: &Path, args: &StartArgs) -> Result<()> {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(dir.join("log"))
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    for stale in pid_files(&dir) {
        let _ = std::fs::remove_file(stale);
    }
    let address_file = dir.join("jobmanager.address");
    let _ = std::fs::remove_file(&address_file);
    let jm_pid = spawn(
        &dir,
        "jobmanager",
        &[
            "jobmanager".into(),
            format!("--rpc-port={}", args.rpc_port),
            format!("--rest-port={}", args.rest_port),
            format!("--heartbeat-timeout-ms={}", args.heartbeat_timeout_ms),
            format!(
                "--heartbeat-interval-ms={}",
                (args.heartbeat_timeout_ms / 5).max(1)
            ),
            format!("--address-file={}", address_file.display()),
        ],
    )?;
    let deadline = Instant::now() + START_TIMEOUT;
    let addresses = loop {
        if let Ok(line) = std::fs::read_to_string(&address_file) {
            break JobManagerAddresses::parse(&line)?;
        }
        if !alive(jm_pid as i32) || Instant::now() > deadline {
            return Err(CliError::Usage(format!(
                "the JobManager did not start; see {}",
                dir.join("log").join("jobmanager.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for i in 0..args.taskmanagers {
        spawn(
            &dir,
            &format!("taskmanager-{i}"),
            &[
                "taskmanager".into(),
                format!("--jobmanager={}", addresses.rpc),
                format!("--slots={}", args.slots),
            ],
        )?;
    }
    if !alive(jm_pid as i32) {
        return Err(CliError::Usage(format!(
            "the JobManager ended right after it started; see {}",
            dir.join("log").join("jobmanager.log").display()
        )));
    }
    println!(
        "Started a session cluster in {}: JobManager RPC at {}, REST at http://{}, {} TaskManager(s) with {} slot(s) each",
        dir.display(),
        addresses.rpc,
        addresses.rest,
        args.taskmanagers,
        args.slots
    );
    Ok(())
}

fn stop(dir: &Path) -> Result<()> {
    let files = pid_files(dir);
    if files.is_empty() {
        return Err(CliError::Usage(format!(
            "no cluster is running in {}",
            dir.display()
        )));
    }
    // SIGTERM to every process first, then wait for all of them together.
    let pids: Vec<i32> = files
        .iter()
        .filter_map(|f| read_pid(f))
        .filter(|p| alive(*p))
        .collect();
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        pids.iter().for_each(|p| reap(*p));
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids.iter().filter(|p| alive(**p)) {
        eprintln!("weir: process {pid} did not stop within 10 s of SIGTERM; sending SIGKILL");
        signal(pid, libc::SIGKILL);
    }
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    let stopped = pids.len();
    let _ = std::fs::remove_file(dir.join("jobmanager.address"));
    println!(
        "Stopped {stopped} process(es) of the cluster in {}",
        dir.display()
    );
    Ok(())
}

/// Collects `pid` if it is our own exited child (so `alive` stops seeing a zombie).
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a single pid writes only into `status`, a local.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}
