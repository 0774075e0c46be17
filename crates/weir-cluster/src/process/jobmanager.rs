//! The JobManager process: the ResourceManager's and the JobMasters' RPC services, the REST
//! API (where clients submit jobs with their binaries), and the check that declares silent
//! TaskManagers lost. Jobs run in workers on the TaskManagers ([`super::worker`]).

use super::blob_store::BlobStore;
use super::job_routes::{JobMasterService, JobRoutes, TaskMetricsTable};
use super::remote_task_executor::RemoteTaskExecutor;
use super::JobManagerAddresses;
use crate::error::{ClusterError, Result};
use crate::metrics::ClusterMetrics;
use crate::rest::{self, RestState};
use crate::rpc::job_master::job_master_server::JobMasterServer;
use crate::rpc::resource_manager::resource_manager_server::{
    ResourceManager as ResourceManagerRpc, ResourceManagerServer,
};
use crate::rpc::{
    DisconnectTaskManagerRequest, Empty, HeartbeatRequest, HeartbeatResponse,
    RegisterTaskManagerRequest, RegisterTaskManagerResponse,
};
use crate::task_manager_registry::{Registration, TaskManagerInfo, TaskManagerRegistry};
use crate::ResourceManagerGateway;
use crate::{Dispatcher, DispatcherGateway, ResourceManager};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};

/// How a JobManager process is set up.
#[derive(Clone, Debug)]
pub struct JobManagerConfig {
    /// The host to bind both ports on.
    pub host: String,
    /// The RPC port (0: any free port).
    pub rpc_port: u16,
    /// The REST port (0: any free port).
    pub rest_port: u16,
    /// How often TaskManagers send heartbeats.
    pub heartbeat_interval: Duration,
    /// After how long without a heartbeat a TaskManager is declared lost.
    pub heartbeat_timeout: Duration,
}

impl Default for JobManagerConfig {
    fn default() -> Self {
        JobManagerConfig {
            host: "127.0.0.1".into(),
            rpc_port: 6123,
            rest_port: 8081,
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(10),
        }
    }
}

/// The ResourceManager's gRPC service over the TaskManager table.
struct ResourceManagerService {
    id: String,
    registry: Arc<TaskManagerRegistry>,
    heartbeat_interval: Duration,
    /// Slots of registered TaskManagers, handed to JobMasters.
    slots: Arc<ResourceManager>,
    routes: Arc<JobRoutes>,
    addresses: JobManagerAddresses,
}

impl ResourceManagerService {
    /// A TaskManager is gone (it left, or was declared lost): its slots are removed and the
    /// subtasks it ran fail.
    fn gone(&self, id: &str, reason: &str) {
        self.slots.unregister(id);
        self.routes.process_lost(None, id, reason);
    }
}

#[tonic::async_trait]
impl ResourceManagerRpc for ResourceManagerService {
    async fn register_task_manager(
        &self,
        request: Request<RegisterTaskManagerRequest>,
    ) -> std::result::Result<Response<RegisterTaskManagerResponse>, Status> {
        let r = request.into_inner();
        if r.task_manager_id.is_empty() || r.slots == 0 {
            return Err(Status::invalid_argument(
                "a TaskManager registers with a non-empty id and at least one slot",
            ));
        }
        let data_port = u16::try_from(r.data_port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Status::invalid_argument(format!("bad data port {}", r.data_port)))?;
        let info = TaskManagerInfo {
            id: r.task_manager_id,
            host: r.host,
            pid: r.pid,
            data_port,
            slots: r.slots,
            allocated_slots: 0,
            cpu_cores: r.cpu_cores,
            physical_memory: r.physical_memory,
            last_heartbeat_epoch_ms: 0,
        };
        let rpc_port = u16::try_from(r.rpc_port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Status::invalid_argument(format!("bad RPC port {}", r.rpc_port)))?;
        let (id, host, slots) = (info.id.clone(), info.host.clone(), info.slots);
        let gateway = RemoteTaskExecutor::connect(
            id.clone(),
            &format!("{host}:{rpc_port}"),
            tokio::runtime::Handle::current(),
            self.addresses.rest.to_string(),
            self.addresses.rpc.to_string(),
            self.routes.clone(),
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if self.slots.unregister(&id) {
            // Registered again: what ran there under the old registration is gone.
            self.routes
                .process_lost(None, &id, "the TaskManager registered again");
        }
        self.slots
            .register_task_manager(id.clone(), slots as usize, Arc::new(gateway));
        match self.registry.register(info) {
            Registration::New => {
                tracing::info!(task_manager = %id, %host, slots, "TaskManager registered")
            }
            Registration::Again => {
                tracing::info!(task_manager = %id, %host, slots, "TaskManager registered again")
            }
        }
        Ok(Response::new(RegisterTaskManagerResponse {
            resource_manager_id: self.id.clone(),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: self.registry.heartbeat_timeout().as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> std::result::Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let registered =
            r.resource_manager_id == self.id && self.registry.heartbeat(&r.task_manager_id);
        Ok(Response::new(HeartbeatResponse { registered }))
    }

    async fn disconnect_task_manager(
        &self,
        request: Request<DisconnectTaskManagerRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        let r = request.into_inner();
        if self.registry.remove(&r.task_manager_id) {
            tracing::info!(task_manager = %r.task_manager_id, reason = %r.reason, "TaskManager disconnected");
        }
        self.gone(
            &r.task_manager_id,
            &format!("the TaskManager disconnected: {}", r.reason),
        );
        Ok(Response::new(Empty {}))
    }
}

/// The TaskManagers as the REST API lists them: the registry (hosts, heartbeats) with the
/// ResourceManager's allocations.
struct TaskManagerSlots {
    registry: Arc<TaskManagerRegistry>,
    slots: Arc<ResourceManager>,
}

impl crate::task_manager_registry::TaskManagerDirectory for TaskManagerSlots {
    fn list(&self) -> Vec<TaskManagerInfo> {
        self.registry
            .list()
            .into_iter()
            .map(|mut tm| {
                tm.allocated_slots = self.slots.allocated_slots(&tm.id).min(tm.slots);
                tm
            })
            .collect()
    }
}

/// A running JobManager: its bound addresses and what stops it.
pub struct JobManagerProcess {
    addresses: JobManagerAddresses,
    stop: watch::Sender<bool>,
    /// The RPC server, the REST server and the heartbeat check.
    servers: JoinSet<Result<()>>,
    /// Uploaded job binaries; removed when the JobManager stops.
    work_dir: std::path::PathBuf,
}

/// How long a stopping JobManager waits for its servers to finish open requests.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A server task's outcome as the JobManager's.
fn server_outcome(joined: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    joined.unwrap_or_else(|e| {
        Err(ClusterError::Network {
            context: "a JobManager server task panicked".into(),
            message: e.to_string(),
        })
    })
}

async fn bind(host: &str, port: u16, what: &str) -> Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| ClusterError::Network {
            context: format!("cannot bind the {what} port {host}:{port}"),
            message: e.to_string(),
        })
}

fn local_addr(l: &TcpListener, what: &str) -> Result<std::net::SocketAddr> {
    l.local_addr().map_err(|e| ClusterError::Network {
        context: format!("cannot read the bound {what} address"),
        message: e.to_string(),
    })
}

/// A random id for a role instance (hex, 32 digits), as Flink's resource ids are.
pub(crate) fn instance_id() -> String {
    format!("{}", weir_core::JobId::generate())
}

impl JobManagerProcess {
    /// Binds the ports and starts serving on the current tokio runtime.
    pub async fn start(config: JobManagerConfig) -> Result<JobManagerProcess> {
        let rpc_listener = bind(&config.host, config.rpc_port, "RPC").await?;
        let rest_listener = bind(&config.host, config.rest_port, "REST").await?;
        let addresses = JobManagerAddresses {
            rpc: local_addr(&rpc_listener, "RPC")?,
            rest: local_addr(&rest_listener, "REST")?,
        };
        let registry = Arc::new(TaskManagerRegistry::new(config.heartbeat_timeout));
        let metrics = Arc::new(ClusterMetrics::default());
        let slots = ResourceManager::new();
        let routes = Arc::new(JobRoutes::default());
        let dispatcher: Arc<dyn DispatcherGateway> =
            Dispatcher::new(slots.clone(), Arc::new(|_| {}), metrics.clone());
        let instance = instance_id();
        let work_dir = std::env::temp_dir().join(format!("weir-jobmanager-{instance}"));
        let blobs = Arc::new(BlobStore::open(work_dir.join("blobs"))?);
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        let slots_for_rest = slots.clone();
        let rm = Arc::new(ResourceManagerService {
            id: instance,
            registry: registry.clone(),
            heartbeat_interval: config.heartbeat_interval,
            slots,
            routes: routes.clone(),
            addresses,
        });
        let rm_for_expiry = rm.clone();
        let task_metrics = Arc::new(TaskMetricsTable::default());
        let task_metrics_table = task_metrics.clone();
        let mut servers = JoinSet::new();
        {
            let stopped = stopped.clone();
            servers.spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(ResourceManagerServer::from_arc(rm))
                    .add_service(JobMasterServer::new(JobMasterService::new(
                        routes,
                        task_metrics_table,
                    )))
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(rpc_listener),
                        until_stopped(stopped),
                    )
                    .await
                    .map_err(|e| ClusterError::Network {
                        context: "the RPC server failed".into(),
                        message: e.to_string(),
                    })
            });
        }
        let directory = Arc::new(TaskManagerSlots {
            registry: registry.clone(),
            slots: slots_for_rest,
        });
        let state = Arc::new(
            RestState::new(dispatcher, directory, metrics)
                .with_blobs(blobs)
                .with_task_metrics(task_metrics),
        );
        {
            let stopped = stopped.clone();
            servers.spawn(async move {
                axum::serve(rest_listener, rest::router(state))
                    .with_graceful_shutdown(until_stopped(stopped))
                    .await
                    .map_err(|e| ClusterError::Network {
                        context: "the REST server failed".into(),
                        message: e.to_string(),
                    })
            });
        }
        {
            let registry = registry.clone();
            let rm = rm_for_expiry;
            let mut stopped = stopped.clone();
            let period = (config.heartbeat_timeout / 4).max(Duration::from_millis(10));
            servers.spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(period) => {}
                        _ = stopped.changed() => return Ok(()),
                    }
                    for tm in registry.expire(Instant::now()) {
                        tracing::warn!(
                            task_manager = %tm.id,
                            host = %tm.host,
                            slots = tm.slots,
                            timeout_ms = registry.heartbeat_timeout().as_millis() as u64,
                            "TaskManager lost: no heartbeat within the timeout; its slots are released"
                        );
                        rm.gone(&tm.id, "no heartbeat within the timeout");
                    }
                }
            });
        }
        tracing::info!(rpc = %addresses.rpc, rest = %addresses.rest, "JobManager started");
        Ok(JobManagerProcess {
            addresses,
            stop,
            servers,
            work_dir,
        })
    }

    /// The bound addresses.
    pub fn addresses(&self) -> JobManagerAddresses {
        self.addresses
    }

    /// Waits until a server ends (one failed, or the JobManager was asked to stop), then
    /// stops the others, giving them [`SHUTDOWN_TIMEOUT`] to finish open requests. Returns
    /// the first failure.
    pub async fn wait(mut self) -> Result<()> {
        let mut result = match self.servers.join_next().await {
            Some(joined) => server_outcome(joined),
            None => Ok(()),
        };
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.servers.join_next()).await {
                Ok(Some(joined)) => {
                    let outcome = server_outcome(joined);
                    if result.is_ok() {
                        result = outcome;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("JobManager servers did not stop in time; aborting them");
                    self.servers.abort_all();
                    break;
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.work_dir) {
            tracing::warn!(dir = %self.work_dir.display(), error = %e, "cannot remove the uploaded job binaries");
        }
        result
    }

    /// A handle that stops this JobManager from elsewhere (e.g. a signal handler).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}
