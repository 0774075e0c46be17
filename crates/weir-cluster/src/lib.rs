//! Weir's cluster roles, shaped after Flink's:
//!
//! - [`ResourceManager`]: registry of TaskManagers and their slots; hands slots to jobs.
//! - [`TaskManager`]: a number of slots; deploys and runs tasks, one thread each.
//! - [`Dispatcher`]: accepts jobs, starts one JobMaster per job, keeps their status.
//! - [`job_master`]: schedules one job's subtasks onto slots with slot sharing, runs the
//!   [`coordinator`] of checkpoints, and on a task failure cancels every task and restarts
//!   from the latest checkpoint as the [`restart`] strategy allows.
//! - [`MiniCluster`]: all of them in one process, the default for examples and tests.
//!
//! - [`process`]: the networked cluster: a JobManager process (ResourceManager service over
//!   gRPC, [`rest`] API) and TaskManager processes that register and heartbeat ([`rpc`]).
//!
//! The roles talk only through the gateway traits in [`gateway`], so that the networked
//! cluster can implement them over RPC without changing the roles themselves.

pub mod coordinator;
pub mod dispatcher;
pub mod error;
pub mod gateway;
pub mod job_master;
pub mod metrics;
pub mod mini_cluster;
pub mod process;
pub mod resource_manager;
pub mod rest;
pub mod restart;
pub mod result;
pub mod rpc;
pub mod shuffle;
pub mod task_manager;
pub mod task_manager_registry;
pub mod thread_scheduling;
pub mod wiring;

pub use dispatcher::Dispatcher;
pub use error::{ClusterError, Result};
pub use gateway::{
    DispatcherGateway, JobMasterGateway, ResourceManagerGateway, TaskExecutorGateway,
    TaskStateListener,
};
pub use metrics::ClusterMetrics;
pub use mini_cluster::{MiniCluster, MiniClusterConfig};
pub use resource_manager::ResourceManager;
pub use result::{
    CheckpointHistory, CheckpointStats, CheckpointStatus, JobExecutionResult, JobStatus,
    OperatorSummary,
};
pub use task_manager::TaskManager;
