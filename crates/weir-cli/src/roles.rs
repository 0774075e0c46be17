//! `weir jobmanager` and `weir taskmanager`: one cluster role per process.

use crate::error::{CliError, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use weir_cluster::process::jobmanager::{JobManagerConfig, JobManagerProcess};
use weir_cluster::process::taskmanager::{TaskManagerConfig, TaskManagerProcess};

/// Options of `weir jobmanager`.
#[derive(Args)]
pub struct JobManagerArgs {
    /// Host (interface) to bind the RPC and REST ports on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// RPC port TaskManagers connect to (0: any free port).
    #[arg(long, default_value_t = 6123)]
    rpc_port: u16,
    /// REST port clients connect to (0: any free port).
    #[arg(long, default_value_t = 8081)]
    rest_port: u16,
    /// Writes the bound addresses to this file, as one line `rpc=HOST:PORT rest=HOST:PORT`.
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// How often TaskManagers send heartbeats, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    heartbeat_interval_ms: u64,
    /// A TaskManager silent for longer than this is declared lost, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    heartbeat_timeout_ms: u64,
}

/// Options of `weir taskmanager`.
#[derive(Args)]
pub struct TaskManagerArgs {
    /// The JobManager's RPC address, HOST:PORT.
    #[arg(long)]
    jobmanager: String,
    /// Number of task slots.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// The address this TaskManager reports to the JobManager and binds its data port on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The data port other TaskManagers read this one's task output from (0: any free port).
    #[arg(long, default_value_t = 0)]
    data_port: u16,
    /// The RPC port the JobManager starts jobs' workers through (0: any free port).
    #[arg(long, default_value_t = 0)]
    rpc_port: u16,
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::io("cannot start the async runtime"))
}

/// Turns `stop` true on SIGTERM or SIGINT.
async fn stop_on_signal(stop: watch::Sender<bool>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(CliError::io("cannot watch SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(CliError::io("cannot watch SIGINT"))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    let _ = stop.send(true);
    Ok(())
}

/// Writes `line` to `path` atomically (a reader never sees half of it).
pub fn write_atomically(path: &std::path::Path, line: &str) -> Result<()> {
    // A temporary name of its own per file and process, so that two writers in one
    // directory (the CLI's pid file, the JobManager's address file) never share one.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{line}\n"))
        .map_err(CliError::io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(CliError::io(format!("cannot write {}", path.display())))
}

/// Runs a JobManager until a signal stops it.
pub fn run_jobmanager(args: JobManagerArgs) -> Result<()> {
    init_logging();
    if args.heartbeat_timeout_ms <= args.heartbeat_interval_ms {
        return Err(CliError::Usage(format!(
            "--heartbeat-timeout-ms ({}) must be longer than --heartbeat-interval-ms ({})",
            args.heartbeat_timeout_ms, args.heartbeat_interval_ms
        )));
    }
    let config = JobManagerConfig {
        host: args.host,
        rpc_port: args.rpc_port,
        rest_port: args.rest_port,
        heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
        heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
    };
    runtime()?.block_on(async move {
        let jm = JobManagerProcess::start(config).await?;
        let addresses = jm.addresses();
        tracing::info!(rpc = %addresses.rpc, rest = %addresses.rest, "bound addresses");
        if let Some(path) = &args.address_file {
            write_atomically(path, &addresses.to_line())?;
        }
        let signals = tokio::spawn(stop_on_signal(jm.stopper()));
        let ended = jm.wait().await;
        signals.abort();
        if let Some(path) = &args.address_file {
            let _ = std::fs::remove_file(path);
        }
        ended.map_err(CliError::from)
    })
}

/// Runs a TaskManager until a signal stops it.
pub fn run_taskmanager(args: TaskManagerArgs) -> Result<()> {
    init_logging();
    let tm = TaskManagerProcess::new(TaskManagerConfig {
        jobmanager: args.jobmanager,
        slots: args.slots,
        host: args.host,
        data_port: args.data_port,
        rpc_port: args.rpc_port,
    })?;
    runtime()?.block_on(async move {
        let (stop, stopped) = watch::channel(false);
        let signals = tokio::spawn(stop_on_signal(stop));
        let ended = tm.run(stopped).await;
        signals.abort();
        ended.map_err(CliError::from)
    })
}
