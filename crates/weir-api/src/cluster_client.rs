//! Submitting the program to a cluster of processes (`weir run`): the program uploads its
//! own binary and its JobGraph to the JobManager's REST API, as Flink's client uploads the
//! jar and the JobGraph. Each TaskManager then starts the same binary as the job's worker,
//! which rebuilds the graph and runs the subtasks placed there (DESIGN.md §6).

use crate::env::{Backend, JobClient};
use crate::error::{ApiError, Result};
use weir_cluster::rest::client::RestClient;
use weir_cluster::rest::SubmitJobRequest;
use weir_core::JobGraph;

/// The JobManager's REST address, `HOST:PORT`: set, the program runs on that cluster.
pub const JOBMANAGER: &str = "WEIR_JOBMANAGER";
/// Set to `1`, `execute` returns once the job is submitted (`weir run --detached`).
pub const DETACHED: &str = "WEIR_DETACHED";
/// The default parallelism (`weir run --parallelism`).
pub const PARALLELISM: &str = "WEIR_PARALLELISM";
/// A savepoint to start from (`weir run --from-savepoint`).
pub const FROM_SAVEPOINT: &str = "WEIR_FROM_SAVEPOINT";
/// Set, `execute` prints the execution plan as JSON and ends the program (`weir info`).
pub const INFO: &str = "WEIR_INFO";

/// The cluster to submit to, if the program was started for one.
pub(crate) fn jobmanager_address() -> Option<String> {
    std::env::var(JOBMANAGER).ok().filter(|a| !a.is_empty())
}

/// The variables that shape the graph, for the workers to build the same one.
fn graph_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("WEIR_")
                && k != JOBMANAGER
                && k != DETACHED
                && k != INFO
                && !k.starts_with("WEIR_WORKER_")
        })
        .collect()
}

/// Uploads this program's binary, submits `graph`, and returns a client that follows the
/// job (or, detached, one that does not).
pub(crate) fn submit(address: &str, graph: JobGraph, job_name: &str) -> Result<JobClient> {
    let binary = std::env::current_exe().map_err(|e| {
        ApiError::Client(format!(
            "cannot find this program's binary to submit it: {e}"
        ))
    })?;
    let client = RestClient::new(address)?;
    tracing::info!(jobmanager = %address, binary = %binary.display(), "uploading the job binary");
    let blob_key = client.upload_blob(&binary)?;
    let mut env = graph_env();
    // The default parallelism is the client's core count unless set: a worker on a host with
    // another core count must build the same graph, so it gets the client's default.
    if !env.iter().any(|(k, _)| k == PARALLELISM) {
        env.push((
            PARALLELISM.to_string(),
            graph.config.parallelism.to_string(),
        ));
    }
    let request = SubmitJobRequest {
        job_graph: graph,
        blob_key,
        args: std::env::args().skip(1).collect(),
        env,
    };
    let job = client.submit(&request)?;
    println!("Job has been submitted with JobID {job}");
    let detached = std::env::var(DETACHED).is_ok_and(|v| v == "1" || v == "true");
    Ok(JobClient {
        backend: if detached {
            Backend::Detached(client)
        } else {
            Backend::Remote(client)
        },
        job,
        name: job_name.to_string(),
    })
}
