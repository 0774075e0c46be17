//! `weir`: start a JobManager or a TaskManager process, or a whole session cluster on this
//! host (shaped after Flink's `jobmanager.sh`, `taskmanager.sh` and `start-cluster.sh`), and
//! list or cancel jobs through a cluster's REST API (as `flink list` and `flink cancel`), and
//! run Flink SQL scripts (`weir sql`, as Flink's SQL client).

mod client;
mod cluster;
mod error;
mod roles;
mod run;
mod sql;
mod sql_repl;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Weir: Apache Flink's architecture and programming model, in Rust.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a JobManager (ResourceManager RPC service and REST API) until SIGTERM or Ctrl-C.
    Jobmanager(roles::JobManagerArgs),
    /// Runs a TaskManager that offers its slots to a JobManager, until SIGTERM or Ctrl-C.
    Taskmanager(roles::TaskManagerArgs),
    /// Starts or stops a session cluster on this host, as background processes.
    Cluster {
        #[command(subcommand)]
        action: cluster::ClusterAction,
    },
    /// Runs a job binary on a cluster: it submits itself and its graph (as `flink run`).
    Run(run::RunArgs),
    /// Lists the jobs of a cluster (through its REST API).
    List(client::JobManagerAddress),
    /// Cancels a job (through the cluster's REST API).
    Cancel(client::CancelArgs),
    /// Takes a savepoint of a running job (through the cluster's REST API).
    Savepoint(client::SavepointArgs),
    /// Stops a job with a final savepoint (through the cluster's REST API).
    Stop(client::StopArgs),
    /// Prints a job binary's execution plan as JSON, without running it.
    Info(run::InfoArgs),
    /// Runs a Flink SQL script on the embedded mini-cluster (`-f FILE`, or standard input).
    Sql(sql::SqlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Jobmanager(args) => roles::run_jobmanager(args),
        Command::Taskmanager(args) => roles::run_taskmanager(args),
        Command::Cluster { action } => cluster::run(action),
        Command::Run(args) => run::run(args),
        Command::List(address) => client::list(address),
        Command::Cancel(args) => client::cancel(args),
        Command::Savepoint(args) => client::savepoint(args),
        Command::Stop(args) => client::stop(args),
        Command::Info(args) => run::info(args),
        Command::Sql(args) => sql::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The program printed its own error line.
        Err(error::CliError::ProgramFailed(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::FAILURE
        }
    }
}
