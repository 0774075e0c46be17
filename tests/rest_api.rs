//! The REST API over a running job: the embedded mini-cluster serves the same endpoints as a
//! JobManager process, with Flink's paths, field names and HTTP codes.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use weir::cluster::{MiniCluster, MiniClusterConfig};
use weir::connectors::datagen::DataGeneratorSource;
use weir::prelude::*;

/// A plain HTTP/1.1 request; the status code and the body as text.
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("REST port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// A plain HTTP/1.1 request; the status code and the body as JSON (or Null).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let (status, body) = request(addr, method, path);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A plain GET; the body as text.
fn http_text(addr: SocketAddr, path: &str) -> String {
    request(addr, "GET", path).1
}

/// A mini-cluster with one two-slot TaskManager serving REST on a free port, and an
/// environment at parallelism 2 that runs jobs on it.
fn two_slot_cluster_with_rest() -> (weir::cluster::rest::RestServer, StreamExecutionEnvironment) {
    let cluster = MiniCluster::start(MiniClusterConfig {
        task_managers: 1,
        slots_per_task_manager: 2,
    });
    let server = cluster
        .serve_rest("127.0.0.1:0".parse().unwrap())
        .expect("REST server");
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(cluster);
    env.set_parallelism(2);
    (server, env)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_job_is_listed_described_and_cancelled_over_rest() {
    let (server, env) = two_slot_cluster_with_rest();
    let rest = server.address();
    env.from_source(
        DataGeneratorSource::new(u64::MAX, |i| i).with_rate_limit(2000.0),
        "endless",
    )
    .map(|i: u64| i + 1)
    .discard();
    let job = env.execute_async("rest job").unwrap();
    let id = job.job_id().to_string();
    eventually("the job to run", || {
        job.status().unwrap() == weir::cluster::JobStatus::Running
    });

    let (status, jobs) = http(rest, "GET", "/jobs");
    assert_eq!(status, 200);
    assert_eq!(jobs["jobs"][0]["id"], id.as_str());
    assert_eq!(jobs["jobs"][0]["status"], "RUNNING");
    let (_, overview) = http(rest, "GET", "/jobs/overview");
    assert_eq!(overview["jobs"][0]["jid"], id.as_str());
    assert_eq!(overview["jobs"][0]["name"], "rest job");
    let (status, detail) = http(rest, "GET", &format!("/jobs/{id}"));
    assert_eq!((status, detail["state"].as_str()), (200, Some("RUNNING")));
    // Flink's times: started, not ended, running for a while.
    let start = detail["start-time"].as_u64().expect("start-time");
    assert!(start > 1_700_000_000_000, "{detail}");
    assert_eq!(detail["end-time"], -1);
    assert!(detail["duration"].as_u64().is_some(), "{detail}");
    assert_eq!(overview["jobs"][0]["start-time"], start);
    let vertices = detail["vertices"].as_array().expect("vertices");
    assert_eq!(
        vertices.len(),
        1,
        "source, map and sink are one chain: {detail}"
    );
    assert_eq!(vertices[0]["parallelism"], 2);
    assert_eq!(vertices[0]["status"], "RUNNING");
    let (_, cluster_overview) = http(rest, "GET", "/overview");
    assert_eq!(cluster_overview["jobs-running"], 1);
    assert_eq!(cluster_overview["taskmanagers"], 1);
    assert_eq!(cluster_overview["slots-total"], 2);
    assert_eq!(
        cluster_overview["slots-available"], 0,
        "the job holds both slots"
    );
    let (_, tms) = http(rest, "GET", "/taskmanagers");
    assert_eq!(tms["taskmanagers"][0]["slotsNumber"], 2);
    assert_eq!(tms["taskmanagers"][0]["freeSlots"], 0);

    // Bad requests are refused without touching the job.
    let (status, body) = http(rest, "PATCH", &format!("/jobs/{id}?mode=stop"));
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("mode"));
    let (status, _) = http(rest, "PATCH", "/jobs/0123456789abcdef0123456789abcdef");
    assert_eq!(status, 404);

    // Cancel, as `flink cancel` does it: 202, then the job ends CANCELED.
    let (status, body) = http(rest, "PATCH", &format!("/jobs/{id}?mode=cancel"));
    assert_eq!((status, body), (202, serde_json::json!({})));
    assert!(
        job.wait().is_err(),
        "a cancelled job reports its cancellation"
    );
    let (_, detail) = http(rest, "GET", &format!("/jobs/{id}"));
    assert_eq!(detail["state"], "CANCELED");
    let end = detail["end-time"]
        .as_u64()
        .expect("an ended job has an end-time");
    assert_eq!(
        detail["duration"].as_u64(),
        Some(end - detail["start-time"].as_u64().unwrap())
    );
    let (_, cluster_overview) = http(rest, "GET", "/overview");
    assert_eq!(cluster_overview["jobs-cancelled"], 1);
    assert_eq!(cluster_overview["jobs-running"], 0);
    eventually("the slots to come back", || {
        http(rest, "GET", "/overview").1["slots-available"] == 2
    });
    let (status, metrics) = request(rest, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("weir_jobmanager_numRunningJobs 0"),
        "{metrics}"
    );
    drop(server);
    assert!(
        TcpStream::connect_timeout(&rest, Duration::from_millis(500)).is_err(),
        "dropping the server closes the port"
    );
}

#[test]
fn checkpoint_statistics_have_flinks_shape() {
    let cluster = MiniCluster::start(MiniClusterConfig {
        task_managers: 1,
        slots_per_task_manager: 1,
    });
    let server = cluster.serve_rest("127.0.0.1:0".parse().unwrap()).unwrap();
    let rest = server.address();
    let dir = tempfile::tempdir().unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(cluster.clone());
    env.set_parallelism(1);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_checkpoint_storage(dir.path().to_str().unwrap());
    env.from_source(
        DataGeneratorSource::new(u64::MAX, |i| i % 10).with_rate_limit(2000.0),
        "endless",
    )
    .key_by(|k: &u64| *k)
    .reduce(|a, b| a + b)
    .discard();
    let job = env.execute_async("checkpointed").unwrap();
    let id = job.job_id().to_string();
    let path = format!("/jobs/{id}/checkpoints");
    eventually("two completed checkpoints", || {
        http(rest, "GET", &path).1["counts"]["completed"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    let (status, cp) = http(rest, "GET", &path);
    assert_eq!(status, 200);
    let counts = &cp["counts"];
    assert!(counts["total"].as_u64() >= counts["completed"].as_u64());
    assert_eq!(counts["failed"], 0);
    let latest = &cp["latest"]["completed"];
    assert_eq!(latest["status"], "COMPLETED");
    assert_eq!(latest["is_savepoint"], false);
    assert!(latest["checkpointed_size"].as_u64() > Some(0), "{latest}");
    assert!(
        latest["external_path"]
            .as_str()
            .is_some_and(|p| p.contains("chk-")),
        "{latest}"
    );
    let history = cp["history"].as_array().unwrap();
    assert!(history.len() >= 2);
    assert!(
        history[0]["id"].as_u64() > history[1]["id"].as_u64(),
        "newest first, as Flink lists them"
    );
    assert!(cp["summary"]["end_to_end_duration"]["max"]
        .as_u64()
        .is_some());
    assert_eq!(
        http(
            rest,
            "GET",
            "/jobs/0123456789abcdef0123456789abcdef/checkpoints"
        )
        .0,
        404
    );

    // The plan: the source chain, and the reduce chain reading it by hash.
    let (status, plan) = http(rest, "GET", &format!("/jobs/{id}/plan"));
    assert_eq!(status, 200);
    assert_eq!(plan["plan"]["jid"], id.as_str());
    let nodes = plan["plan"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{plan}");
    let source = nodes
        .iter()
        .find(|n| n.get("inputs").is_none())
        .expect("a node without inputs");
    assert!(
        source["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Source: endless<br/>")),
        "{source}"
    );
    let reduce = nodes.iter().find(|n| n.get("inputs").is_some()).unwrap();
    assert_eq!(reduce["inputs"][0]["ship_strategy"], "HASH");
    assert_eq!(reduce["inputs"][0]["id"], source["id"]);
    job.cancel().unwrap();
    let _ = job.wait();
}

#[test]
fn vertex_metrics_count_records_while_the_job_runs() {
    let (server, env) = two_slot_cluster_with_rest();
    let rest = server.address();
    env.from_source(
        DataGeneratorSource::new(u64::MAX, |i| i).with_rate_limit(4000.0),
        "endless",
    )
    .rebalance()
    .map(|i: u64| i + 1)
    .discard();
    let job = env.execute_async("metrics job").unwrap();
    let id = job.job_id().to_string();
    let metrics = |v: usize| {
        let (_, detail) = http(rest, "GET", &format!("/jobs/{id}"));
        detail["vertices"][v]["metrics"].clone()
    };
    eventually("both vertices to report records", || {
        let (source, sink) = (metrics(0), metrics(1));
        source["write-records"].as_u64().unwrap_or(0) > 0
            && source["write-records-complete"] == true
            && sink["read-records"].as_u64().unwrap_or(0) > 0
            && sink["read-records-complete"] == true
    });
    let (source, sink) = (metrics(0), metrics(1));
    assert_eq!(
        source["read-records"], 0,
        "a source reads nothing: {source}"
    );
    assert_eq!(sink["write-records"], 0, "a sink writes nothing: {sink}");
    // The counts grow while the job runs.
    let before = sink["read-records"].as_u64().unwrap();
    eventually("the counts to grow", || {
        metrics(1)["read-records"].as_u64().unwrap_or(0) > before
    });
    // The same counts per operator and subtask in Prometheus' text format.
    let text = http_text(rest, "/metrics");
    let series = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(&format!("job_id=\"{id}\"")))
            .count()
    };
    assert!(series("weir_operator_numRecordsIn{") >= 4, "{text}");
    assert!(series("weir_operator_numRecordsOut{") >= 4, "{text}");
    assert_eq!(series("weir_task_backPressuredTimeMsTotal{"), 4, "{text}");
    assert!(
        sink["accumulated-backpressured-time"].as_u64().is_some(),
        "{sink}"
    );
    job.cancel().unwrap();
    let _ = job.wait();
}
