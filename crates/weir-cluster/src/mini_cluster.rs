//! The embedded mini-cluster: a ResourceManager, a Dispatcher and TaskManagers in one
//! process, talking through the same gateways as a distributed cluster.

use crate::dispatcher::Dispatcher;
use crate::gateway::{DispatcherGateway, ResourceManagerGateway, SlotReport, TaskExecutorGateway};
use crate::metrics::ClusterMetrics;
use crate::resource_manager::ResourceManager;
use crate::shuffle::LocalShuffle;
use crate::task_manager::TaskManager;
use std::sync::Arc;

/// Size of a mini-cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniClusterConfig {
    /// Number of TaskManagers.
    pub task_managers: usize,
    /// Slots per TaskManager.
    pub slots_per_task_manager: usize,
}

impl Default for MiniClusterConfig {
    fn default() -> Self {
        MiniClusterConfig {
            task_managers: 1,
            slots_per_task_manager: 1,
        }
    }
}

/// JobManager roles and TaskManagers in this process.
pub struct MiniCluster {
    metrics: Arc<ClusterMetrics>,
    resource_manager: Arc<ResourceManager>,
    dispatcher: Arc<Dispatcher>,
    task_managers: Vec<Arc<TaskManager>>,
}

impl MiniCluster {
    /// Starts the roles and registers the TaskManagers.
    pub fn start(config: MiniClusterConfig) -> Arc<Self> {
        let shuffle = Arc::new(LocalShuffle::default());
        let resource_manager = ResourceManager::new();
        let task_managers: Vec<Arc<TaskManager>> = (0..config.task_managers)
            .map(|i| {
                TaskManager::new(
                    format!("taskmanager-{i}"),
                    config.slots_per_task_manager,
                    shuffle.clone(),
                )
            })
            .collect();
        let metrics = Arc::new(ClusterMetrics::default());
        // User metrics are exported with the cluster's own, in one registry.
        let user_metrics = weir_runtime::user_metrics::UserMetrics::new(metrics.registry().clone());
        for tm in &task_managers {
            tm.export_user_metrics(user_metrics.clone());
            let gw: Arc<dyn TaskExecutorGateway> = tm.clone();
            resource_manager.register_task_manager(tm.id().clone(), tm.slots(), gw);
        }
        let rm: Arc<dyn ResourceManagerGateway> = resource_manager.clone();
        let s = shuffle.clone();
        let dispatcher =
            Dispatcher::new(rm, Arc::new(move |job| s.release_job(job)), metrics.clone());
        Arc::new(MiniCluster {
            metrics,
            resource_manager,
            dispatcher,
            task_managers,
        })
    }

    /// The Dispatcher, where jobs are submitted.
    pub fn dispatcher(&self) -> Arc<dyn DispatcherGateway> {
        self.dispatcher.clone()
    }

    /// The cluster's metrics (checkpoints, restarts, user metrics of running tasks), for
    /// scraping.
    pub fn metrics(&self) -> &Arc<ClusterMetrics> {
        &self.metrics
    }

    /// Slot counts.
    pub fn slot_report(&self) -> SlotReport {
        self.resource_manager.slot_report()
    }

    /// Serves the REST API (Flink's paths and shapes, as a JobManager process does) for
    /// this mini-cluster's jobs and TaskManagers at `address` (port 0: any free port), until
    /// the returned server is dropped.
    pub fn serve_rest(
        &self,
        address: std::net::SocketAddr,
    ) -> crate::Result<crate::rest::RestServer> {
        let state = crate::rest::RestState::new(
            self.dispatcher.clone(),
            self.resource_manager.clone(),
            self.metrics.clone(),
        )
        .with_task_metrics(Arc::new(self.task_managers.clone()));
        crate::rest::RestServer::start(address, Arc::new(state))
    }

    /// Task threads still alive in all TaskManagers.
    pub fn running_tasks(&self) -> usize {
        self.task_managers.iter().map(|t| t.running_tasks()).sum()
    }
}
