//! `weir run`: runs a job binary as the client of a cluster, as `flink run` runs a jar. The
//! binary is started with the JobManager's REST address in `WEIR_JOBMANAGER` (and the other
//! options in `WEIR_*` variables); its `execute` then uploads the binary and its graph
//! instead of starting an embedded mini-cluster, and follows the job to its end unless
//! detached.

use crate::client::JobManagerAddress;
use crate::error::{CliError, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::Command;

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
    /// The job binary (a program built with Weir's DataStream API).
    job_binary: PathBuf,
    /// The program's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Runs the job binary against the cluster; fails with the program's exit status.
pub fn run(a: RunArgs) -> Result<()> {
    if !a.job_binary.is_file() {
        return Err(CliError::Usage(format!(
            "the job binary {} does not exist",
            a.job_binary.display()
        )));
    }
    if a.parallelism == Some(0) {
        return Err(CliError::Usage("--parallelism must be at least 1".into()));
    }
    let mut cmd = Command::new(&a.job_binary);
    cmd.args(&a.args)
        .env("WEIR_JOBMANAGER", a.jobmanager.address());
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
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "the job program {} ended with {status}",
            a.job_binary.display()
        )))
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
    if !a.job_binary.is_file() {
        return Err(CliError::Usage(format!(
            "the job binary {} does not exist",
            a.job_binary.display()
        )));
    }
    let status = Command::new(&a.job_binary)
        .args(&a.args)
        .env("WEIR_INFO", "1")
        .env_remove("WEIR_JOBMANAGER")
        .status()
        .map_err(|e| CliError::Usage(format!("cannot start {}: {e}", a.job_binary.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "the job program {} ended with {status}",
            a.job_binary.display()
        )))
    }
}
