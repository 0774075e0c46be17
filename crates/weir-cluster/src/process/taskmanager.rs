//! The TaskManager process: registers its slots with the JobManager's ResourceManager and
//! keeps them registered with heartbeats.
//!
//! The connection to the JobManager is a small state machine ([`Link`]): connect, register,
//! then heartbeat at the interval the ResourceManager asked for. When the ResourceManager no
//! longer knows this TaskManager (it declared it lost, or the JobManager restarted), it
//! registers again; when the JobManager stays unreachable for longer than the heartbeat
//! timeout, it reconnects, and keeps trying until it is stopped, as Flink's TaskExecutor
//! does.

use super::jobmanager::instance_id;
use super::workers::{TaskManagerService, Workers};
use crate::error::{ClusterError, Result};
use crate::rpc::resource_manager::resource_manager_client::ResourceManagerClient;
use crate::rpc::task_manager::task_manager_server::TaskManagerServer;
use crate::rpc::{
    endpoint_uri, DisconnectTaskManagerRequest, HeartbeatRequest, RegisterTaskManagerRequest,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::Channel;
use weir_runtime::exchange::{CreditConfig, NetworkEnvironment};

/// How a TaskManager process is set up.
#[derive(Clone, Debug)]
pub struct TaskManagerConfig {
    /// The JobManager's RPC address, `HOST:PORT`.
    pub jobmanager: String,
    /// Number of task slots.
    pub slots: u32,
    /// The host name this TaskManager reports, and binds its data port on.
    pub host: String,
    /// The data port (0: any free port).
    pub data_port: u16,
    /// The RPC port the JobManager prepares jobs on (0: any free port).
    pub rpc_port: u16,
}

/// Where the link to the ResourceManager stands.
enum Link {
    /// Not connected; try again at the instant.
    Disconnected { retry_at: Instant },
    /// Connected, not registered.
    Connected(ResourceManagerClient<Channel>),
    /// Registered; heartbeats go out at the registration's interval.
    Registered(Registered),
}

/// A registration with a ResourceManager.
struct Registered {
    client: ResourceManagerClient<Channel>,
    /// The ResourceManager's instance id.
    rm: String,
    /// How often to send a heartbeat.
    interval: Duration,
    /// How long without an answered heartbeat before the JobManager counts as lost.
    timeout: Duration,
    /// When a heartbeat was last answered.
    last_ack: Instant,
}

/// How long to wait between connection attempts, and for one RPC.
const RETRY: Duration = Duration::from_millis(500);
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest heartbeat interval a TaskManager accepts from a ResourceManager.
const MIN_HEARTBEAT_MS: u64 = 10;

/// A TaskManager process's registration with its JobManager.
pub struct TaskManagerProcess {
    config: TaskManagerConfig,
    id: String,
    link: Link,
    /// Connection failures in a row, to log the first one and then only now and then.
    failures: u32,
    /// The data plane: the port other processes' tasks read this TaskManager's output from.
    network: NetworkEnvironment,
    /// The bound RPC port, once serving.
    rpc_port: u16,
    /// The jobs' workers, once serving.
    workers: Option<Arc<Workers>>,
    /// The ResourceManager this TaskManager was last registered with.
    last_rm: Option<String>,
}

fn cpu_cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Total physical memory in bytes, from `/proc/meminfo` (0 where it cannot be read).
fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl TaskManagerProcess {
    /// A TaskManager for `config` with a fresh id; nothing happens until [`Self::run`].
    pub fn new(config: TaskManagerConfig) -> Result<Self> {
        if config.slots == 0 {
            return Err(ClusterError::Network {
                context: "cannot start a TaskManager".into(),
                message: "it needs at least one slot (--slots N)".into(),
            });
        }
        let bind = format!("{}:{}", config.host, config.data_port);
        let bind: std::net::SocketAddr = bind.parse().map_err(|_| ClusterError::Network {
            context: "cannot start a TaskManager".into(),
            message: format!("'{bind}' is not an IP address and port to bind the data port on"),
        })?;
        let network = NetworkEnvironment::start(bind, CreditConfig::default()).map_err(|e| {
            ClusterError::Network {
                context: format!("cannot bind the data port {bind}"),
                message: e.to_string(),
            }
        })?;
        Ok(TaskManagerProcess {
            network,
            config,
            id: instance_id(),
            link: Link::Disconnected {
                retry_at: Instant::now(),
            },
            failures: 0,
            rpc_port: 0,
            workers: None,
            last_rm: None,
        })
    }

    /// Serves the TaskManager RPC service (jobs' workers) until `stop`; returns the bound
    /// port and the workers, to stop them at the end.
    async fn serve_rpc(&self, stop: watch::Receiver<bool>) -> Result<(u16, Arc<Workers>)> {
        let bind = format!("{}:{}", self.config.host, self.config.rpc_port);
        let listener =
            tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| ClusterError::Network {
                    context: format!("cannot bind the TaskManager's RPC port {bind}"),
                    message: e.to_string(),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| ClusterError::Network {
                context: "cannot read the TaskManager's RPC port".into(),
                message: e.to_string(),
            })?
            .port();
        let workers = Workers::new(
            self.id.clone(),
            self.config.host.clone(),
            self.config.slots as usize,
            std::env::temp_dir().join(format!("weir-taskmanager-{}", self.id)),
            tokio::runtime::Handle::current(),
        );
        let service = TaskManagerService::new(workers.clone());
        tokio::spawn(async move {
            let mut stop = stop;
            let until = async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(TaskManagerServer::new(service))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    until,
                )
                .await
            {
                tracing::error!(error = %e, "the TaskManager's RPC server failed");
            }
        });
        Ok((port, workers))
    }

    /// Keeps the TaskManager registered until `stop` turns true; then tells the
    /// ResourceManager it leaves.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let (rpc_port, workers) = self.serve_rpc(stop.clone()).await?;
        self.rpc_port = rpc_port;
        self.workers = Some(workers.clone());
        tracing::info!(task_manager = %self.id, jobmanager = %self.config.jobmanager, slots = self.config.slots, data = %self.network.local_addr(), rpc_port, "TaskManager started");
        while !*stop.borrow() {
            let wait = self.step().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = stop.changed() => {
                    // A dropped sender can never say stop: treat it as one rather than
                    // spin on a receiver that returns at once.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        let w = workers.clone();
        let _ = tokio::task::spawn_blocking(move || w.stop_all()).await;
        self.leave().await;
        Ok(())
    }

    /// One step of the link's state machine; returns how long to wait before the next.
    async fn step(&mut self) -> Duration {
        let link = std::mem::replace(
            &mut self.link,
            Link::Disconnected {
                retry_at: Instant::now(),
            },
        );
        let (next, wait) = match link {
            Link::Disconnected { retry_at } => self.connect(retry_at).await,
            Link::Connected(client) => self.register(client).await,
            Link::Registered(reg) => self.heartbeat(reg).await,
        };
        self.link = next;
        wait
    }

    fn lost_connection(&mut self, what: &str, error: impl std::fmt::Display) -> (Link, Duration) {
        self.failures += 1;
        if self.failures == 1 || self.failures.is_multiple_of(20) {
            tracing::warn!(task_manager = %self.id, jobmanager = %self.config.jobmanager, attempts = self.failures, "{what}: {error}; retrying");
        }
        (
            Link::Disconnected {
                retry_at: Instant::now() + RETRY,
            },
            RETRY,
        )
    }

    async fn connect(&mut self, retry_at: Instant) -> (Link, Duration) {
        let now = Instant::now();
        if now < retry_at {
            return (Link::Disconnected { retry_at }, retry_at - now);
        }
        let endpoint = match Channel::from_shared(endpoint_uri(&self.config.jobmanager)) {
            Ok(e) => e.connect_timeout(RPC_TIMEOUT).timeout(RPC_TIMEOUT),
            Err(e) => return self.lost_connection("the JobManager address is not valid", e),
        };
        match endpoint.connect().await {
            Ok(channel) => (
                Link::Connected(ResourceManagerClient::new(channel)),
                Duration::ZERO,
            ),
            Err(e) => self.lost_connection("cannot connect to the JobManager", e),
        }
    }

    async fn register(&mut self, mut client: ResourceManagerClient<Channel>) -> (Link, Duration) {
        let request = RegisterTaskManagerRequest {
            task_manager_id: self.id.clone(),
            host: self.config.host.clone(),
            slots: self.config.slots,
            cpu_cores: cpu_cores(),
            physical_memory: physical_memory(),
            pid: std::process::id(),
            data_port: u32::from(self.network.local_addr().port()),
            rpc_port: u32::from(self.rpc_port),
        };
        match client.register_task_manager(request).await {
            Ok(r) => {
                let r = r.into_inner();
                self.failures = 0;
                if self
                    .last_rm
                    .as_ref()
                    .is_some_and(|rm| *rm != r.resource_manager_id)
                {
                    // A new JobManager: the jobs of the old one are gone with it.
                    self.stop_workers("the TaskManager registered with a new JobManager")
                        .await;
                }
                self.last_rm = Some(r.resource_manager_id.clone());
                tracing::info!(task_manager = %self.id, resource_manager = %r.resource_manager_id, "registered at the ResourceManager");
                let interval = Duration::from_millis(r.heartbeat_interval_ms.max(MIN_HEARTBEAT_MS));
                (
                    Link::Registered(Registered {
                        client,
                        rm: r.resource_manager_id,
                        interval,
                        timeout: Duration::from_millis(r.heartbeat_timeout_ms.max(1)),
                        last_ack: Instant::now(),
                    }),
                    interval,
                )
            }
            Err(status) => self.lost_connection("the registration failed", status.message()),
        }
    }

    async fn heartbeat(&mut self, mut reg: Registered) -> (Link, Duration) {
        let request = HeartbeatRequest {
            task_manager_id: self.id.clone(),
            resource_manager_id: reg.rm.clone(),
        };
        match reg.client.heartbeat(request).await {
            Ok(r) if r.get_ref().registered => {
                reg.last_ack = Instant::now();
                let interval = reg.interval;
                (Link::Registered(reg), interval)
            }
            Ok(_) => {
                tracing::info!(task_manager = %self.id, "the ResourceManager does not know this TaskManager (declared lost, or a new JobManager); registering again");
                (Link::Connected(reg.client), Duration::ZERO)
            }
            Err(status) if reg.last_ack.elapsed() < reg.timeout => {
                tracing::debug!(task_manager = %self.id, error = %status.message(), "a heartbeat failed");
                let interval = reg.interval;
                (Link::Registered(reg), interval)
            }
            Err(status) => {
                // As a Flink TaskExecutor that loses its JobManager fails the job's tasks:
                // nobody coordinates their checkpoints or commits any more.
                self.stop_workers("the JobManager did not answer heartbeats within the timeout")
                    .await;
                self.lost_connection(
                    "the JobManager did not answer heartbeats within the timeout",
                    status.message(),
                )
            }
        }
    }

    /// Kills the jobs' workers (off the async threads: it waits for them to exit).
    async fn stop_workers(&self, reason: &'static str) {
        if let Some(w) = self.workers.clone() {
            let _ = tokio::task::spawn_blocking(move || w.stop_jobs(reason)).await;
        }
    }

    /// Tells the ResourceManager this TaskManager leaves (best effort: it may be gone).
    async fn leave(&mut self) {
        let client = match &mut self.link {
            Link::Registered(Registered { client, .. }) | Link::Connected(client) => client,
            Link::Disconnected { .. } => return,
        };
        let request = DisconnectTaskManagerRequest {
            task_manager_id: self.id.clone(),
            reason: "the TaskManager is shutting down".into(),
        };
        if let Err(e) = client.disconnect_task_manager(request).await {
            tracing::debug!(task_manager = %self.id, error = %e.message(), "could not say goodbye to the ResourceManager");
        }
        tracing::info!(task_manager = %self.id, "TaskManager stopped");
    }
}
