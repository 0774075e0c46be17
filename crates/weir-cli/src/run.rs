//! `weir run`: runs a job binary as the client of a cluster, as `flink run` runs a jar. The
//! binary is started with the JobManager's REST address in `WEIR_JOBMANAGER` (and the other
//! options in `WEIR_*` variables); its `execute` then uploads the binary and its graph
//! instead of starting an embedded mini-cluster, and follows the job to its end unless
//! detached.
//!
//! With `--application`, the cluster belongs to this one job (Flink's application mode): a
//! JobManager is started for it (and, with `--taskmanagers N`, TaskManagers on this host;
//! others may join at its RPC address), and all of them stop when the job ends.

use crate::client::JobManagerAddress;
use crate::error::{CliError, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Options of `weir run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    jobmanager: JobManagerAddress,
    /// Return once the job is submitted instead of waiting for its end.
    #[arg(long, short = 'd')]
    detached: bool,
    /// The default parallelism of the job's operators.
    #[arg(long, short = 'p')]
    parallelism: Option<u32>,
    /// Start the job from this savepoint or retained checkpoint directory.
    #[arg(long, short = 's')]
    from_savepoint: Option<String>,
    #[command(flatten)]
    application: ApplicationArgs,
    /// The job binary (a program built with Weir's DataStream API).
    job_binary: PathBuf,
    /// The program's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Application mode: a cluster of its own for this job.
#[derive(Args)]
pub struct ApplicationArgs {
    /// Start a JobManager for this job alone, stopped when the job ends.
    #[arg(long, conflicts_with_all = ["detached", "jobmanager"])]
    application: bool,
    /// With --application: its RPC port, where TaskManagers join (0: any free port).
    #[arg(long, default_value_t = 0, requires = "application")]
    rpc_port: u16,
    /// With --application: its REST port (0: any free port).
    #[arg(long, default_value_t = 0, requires = "application")]
    rest_port: u16,
    /// With --application: writes the JobManager's `rpc=HOST:PORT rest=HOST:PORT` here.
    #[arg(long, requires = "application")]
    address_file: Option<PathBuf>,
    /// With --application: TaskManagers to start on this host, one slot each unless
    /// --slots says otherwise.
    #[arg(long, default_value_t = 0, requires = "application")]
    taskmanagers: u32,
    /// With --application: slots of each TaskManager started here.
    #[arg(long, default_value_t = 1, requires = "application")]
    slots: u32,
}

fn check_binary(path: &Path) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "the job binary {} does not exist",
            path.display()
        )))
    }
}

/// The program's failure as `weir`'s: it printed its own error; `weir` exits the same way.
fn program_outcome(status: ExitStatus) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(CliError::ProgramFailed(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1)
            .max(1),
    ))
}

/// Runs the job binary against the cluster; fails with the program's exit status.
pub fn run(a: RunArgs) -> Result<()> {
    check_binary(&a.job_binary)?;
    if a.parallelism == Some(0) {
        return Err(CliError::Usage("--parallelism must be at least 1".into()));
    }
    let application = if a.application.application {
        Some(Application::start(&a.application)?)
    } else {
        None
    };
    let rest = match &application {
        Some(app) => app.rest.clone(),
        None => a.jobmanager.address(),
    };
    let mut cmd = Command::new(&a.job_binary);
    cmd.args(&a.args).env("WEIR_JOBMANAGER", rest);
    if a.detached {
        cmd.env("WEIR_DETACHED", "1");
    }
    if let Some(p) = a.parallelism {
        cmd.env("WEIR_PARALLELISM", p.to_string());
    }
    if let Some(s) = &a.from_savepoint {
        cmd.env("WEIR_FROM_SAVEPOINT", s);
    }
    let status = cmd
        .status()
        .map_err(|e| CliError::Usage(format!("cannot start {}: {e}", a.job_binary.display())))?;
    drop(application);
    program_outcome(status)
}

/// The processes of an application cluster; stopped (TaskManagers first) when dropped.
struct Application {
    processes: Vec<Child>,
    rest: String,
    dir: PathBuf,
}

impl Application {
    fn start(a: &ApplicationArgs) -> Result<Application> {
        let weir = std::env::current_exe().map_err(CliError::io("cannot find the weir binary"))?;
        let dir = std::env::temp_dir().join(format!("weir-application-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
        let address = dir.join("address");
        let mut app = Application {
            processes: Vec::new(),
            rest: String::new(),
            dir: dir.clone(),
        };
        let spawn = |args: Vec<String>, log: &str| -> Result<Child> {
            let file = std::fs::File::create(dir.join(log))
                .map_err(CliError::io(format!("cannot create {log}")))?;
            Command::new(&weir)
                .args(args)
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .map_err(CliError::io("cannot start a cluster process"))
        };
        app.processes.push(spawn(
            vec![
                "jobmanager".into(),
                "--rpc-port".into(),
                a.rpc_port.to_string(),
                "--rest-port".into(),
                a.rest_port.to_string(),
                "--address-file".into(),
                address.display().to_string(),
            ],
            "jobmanager.log",
        )?);
        let start = Instant::now();
        let failed = |app: &mut Application, why: &str| {
            let log = std::fs::read_to_string(dir.join("jobmanager.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("").to_string();
            // Dropping `app` removes the directory: the log's last line goes into the error.
            app.processes.iter_mut().for_each(|p| {
                let _ = p.kill();
                let _ = p.wait();
            });
            CliError::Usage(format!("the application's JobManager {why}: {last}"))
        };
        let line = loop {
            match std::fs::read_to_string(&address) {
                Ok(l) if l.ends_with('\n') => break l,
                _ if start.elapsed() > Duration::from_secs(30) => {
                    return Err(failed(&mut app, "did not start within 30 s"))
                }
                _ => {}
            }
            if let Ok(Some(_)) = app.processes[0].try_wait() {
                return Err(failed(&mut app, "exited"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|p| p.strip_prefix(k))
                .map(str::to_string)
                .ok_or_else(|| CliError::Usage(format!("bad address line '{}'", line.trim())))
        };
        let rpc = field("rpc=")?;
        app.rest = field("rest=")?;
        if let Some(f) = &a.address_file {
            std::fs::write(f, &line)
                .map_err(CliError::io(format!("cannot write {}", f.display())))?;
        }
        eprintln!(
            "Application cluster: JobManager rpc={rpc} rest={} (logs in {})",
            app.rest,
            dir.display()
        );
        for i in 0..a.taskmanagers {
            app.processes.push(spawn(
                vec![
                    "taskmanager".into(),
                    "--jobmanager".into(),
                    rpc.clone(),
                    "--slots".into(),
                    a.slots.to_string(),
                ],
                &format!("taskmanager-{i}.log"),
            )?);
        }
        Ok(app)
    }
}

impl Drop for Application {
    fn drop(&mut self) {
        for p in self.processes.iter_mut().rev() {
            // SAFETY: signals our own child process; no memory is involved.
            unsafe {
                libc::kill(p.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Options of `weir info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The job binary.
    job_binary: PathBuf,
    /// The program's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Runs the job binary in plan mode: its `execute` prints the execution plan (Flink's
/// JSON shape) and the program ends without running the job (as `flink info`).
pub fn info(a: InfoArgs) -> Result<()> {
    check_binary(&a.job_binary)?;
    let status = Command::new(&a.job_binary)
        .args(&a.args)
        .env("WEIR_INFO", "1")
        .env_remove("WEIR_JOBMANAGER")
        .status()
        .map_err(|e| CliError::Usage(format!("cannot start {}: {e}", a.job_binary.display())))?;
    program_outcome(status)
}
