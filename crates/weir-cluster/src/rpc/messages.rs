//! Protobuf messages of the control plane. Field numbers are the wire contract: add fields
//! with new numbers, never reuse one.

/// A TaskManager offers its slots to the ResourceManager.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterTaskManagerRequest {
    /// The TaskManager's id, unique for the life of its process.
    #[prost(string, tag = "1")]
    pub task_manager_id: String,
    /// The host the TaskManager runs on, as the JobManager should reach it.
    #[prost(string, tag = "2")]
    pub host: String,
    /// Number of task slots.
    #[prost(uint32, tag = "3")]
    pub slots: u32,
    /// CPU cores of the host.
    #[prost(uint32, tag = "4")]
    pub cpu_cores: u32,
    /// Physical memory of the host, in bytes.
    #[prost(uint64, tag = "5")]
    pub physical_memory: u64,
    /// The TaskManager's process id.
    #[prost(uint32, tag = "6")]
    pub pid: u32,
    /// The port of its data plane (network exchange).
    #[prost(uint32, tag = "7")]
    pub data_port: u32,
    /// The port of its RPC service (jobs' workers are prepared there).
    #[prost(uint32, tag = "8")]
    pub rpc_port: u32,
}

/// The ResourceManager accepted a registration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterTaskManagerResponse {
    /// Identifies this ResourceManager instance: heartbeats name it, so a TaskManager
    /// notices a restarted JobManager.
    #[prost(string, tag = "1")]
    pub resource_manager_id: String,
    /// How often the TaskManager sends a heartbeat, in milliseconds.
    #[prost(uint64, tag = "2")]
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat the TaskManager is declared lost, in milliseconds.
    #[prost(uint64, tag = "3")]
    pub heartbeat_timeout_ms: u64,
}

/// A TaskManager is alive.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatRequest {
    /// The TaskManager's id.
    #[prost(string, tag = "1")]
    pub task_manager_id: String,
    /// The ResourceManager it registered with.
    #[prost(string, tag = "2")]
    pub resource_manager_id: String,
}

/// The answer to a heartbeat.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponse {
    /// False if the ResourceManager does not know the TaskManager (it was declared lost, or
    /// the JobManager restarted): the TaskManager must register again.
    #[prost(bool, tag = "1")]
    pub registered: bool,
}

/// A TaskManager leaves the cluster (it is shutting down).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DisconnectTaskManagerRequest {
    /// The TaskManager's id.
    #[prost(string, tag = "1")]
    pub task_manager_id: String,
    /// Why, for the log.
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// No content.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_round_trip_and_bad_bytes_are_errors() {
        let req = RegisterTaskManagerRequest {
            task_manager_id: "tm-1".into(),
            host: "127.0.0.1".into(),
            slots: 4,
            cpu_cores: 2,
            physical_memory: 1 << 34,
            pid: 42,
            data_port: 40000,
            rpc_port: 40001,
        };
        let bytes = req.encode_to_vec();
        assert_eq!(RegisterTaskManagerRequest::decode(&bytes[..]).unwrap(), req);
        assert!(RegisterTaskManagerRequest::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(HeartbeatRequest::decode(&[0xff, 0xff, 0xff][..]).is_err());
    }
}
