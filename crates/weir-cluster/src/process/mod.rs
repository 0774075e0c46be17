//! The networked cluster's processes: a JobManager ([`jobmanager`]) and TaskManagers
//! ([`taskmanager`]), each in its own OS process, talking gRPC ([`crate::rpc`]).
//!
//! The JobManager runs the ResourceManager's RPC service and the REST API; TaskManagers
//! register their slots with it and heartbeat. A TaskManager that goes silent for longer
//! than the heartbeat timeout is declared lost and its slots are released.

pub mod blob_store;
pub mod job_routes;
pub mod jobmanager;
pub mod remote_task_executor;
pub mod taskmanager;
pub mod worker;
pub mod workers;

use crate::error::{ClusterError, Result};
use std::net::SocketAddr;

/// The addresses a JobManager bound, as written to its address file: one line
/// `rpc=HOST:PORT rest=HOST:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobManagerAddresses {
    /// The RPC (gRPC) address TaskManagers connect to.
    pub rpc: SocketAddr,
    /// The REST address clients connect to.
    pub rest: SocketAddr,
}

impl JobManagerAddresses {
    /// The address file's line.
    pub fn to_line(&self) -> String {
        format!("rpc={} rest={}", self.rpc, self.rest)
    }

    /// Parses an address file's line.
    pub fn parse(line: &str) -> Result<Self> {
        let bad = |why: &str| ClusterError::Network {
            context: format!("malformed JobManager address line '{}'", line.trim()),
            message: why.to_string(),
        };
        let (mut rpc, mut rest) = (None, None);
        for part in line.split_whitespace() {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=HOST:PORT"))?;
            let addr: SocketAddr = value.parse().map_err(|_| bad("not a HOST:PORT address"))?;
            match key {
                "rpc" => rpc = Some(addr),
                "rest" => rest = Some(addr),
                _ => return Err(bad("unknown key (expected rpc= and rest=)")),
            }
        }
        Ok(JobManagerAddresses {
            rpc: rpc.ok_or_else(|| bad("no rpc= address"))?,
            rest: rest.ok_or_else(|| bad("no rest= address"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lines_round_trip_and_bad_lines_are_errors() {
        let a = JobManagerAddresses {
            rpc: "127.0.0.1:6123".parse().unwrap(),
            rest: "127.0.0.1:8081".parse().unwrap(),
        };
        assert_eq!(JobManagerAddresses::parse(&a.to_line()).unwrap(), a);
        assert_eq!(
            JobManagerAddresses::parse(&format!("{}\n", a.to_line())).unwrap(),
            a
        );
        assert!(JobManagerAddresses::parse("rpc=127.0.0.1:1").is_err());
        assert!(JobManagerAddresses::parse("rpc=x rest=127.0.0.1:1").is_err());
        assert!(JobManagerAddresses::parse("").is_err());
    }
}
