//! Real `weir` JobManager and TaskManager processes on 127.0.0.1 with OS-assigned ports:
//! registration, heartbeats, a TaskManager lost to `kill -9`, re-registration with a new
//! JobManager, the REST API's answers, bad arguments, and `weir cluster start|stop`.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// A child process killed when the test ends, whatever happens.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: sends a signal to our own child process; no memory is involved.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to exit, up to `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(WEIR)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start weir"),
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(WEIR)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run weir")
}

/// Waits until `f` returns `Some`, up to `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `rpc=` and `rest=` addresses of an address file, once it exists.
fn addresses(file: &Path) -> (SocketAddr, SocketAddr) {
    eventually(Duration::from_secs(20), "the address file", || {
        let line = std::fs::read_to_string(file).ok()?;
        let mut rpc = None;
        let mut rest = None;
        for part in line.split_whitespace() {
            match part.split_once('=')? {
                ("rpc", a) => rpc = a.parse().ok(),
                ("rest", a) => rest = a.parse().ok(),
                _ => return None,
            }
        }
        Some((rpc?, rest?))
    })
}

/// A plain HTTP/1.1 request; returns the status code and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path).expect("REST request failed");
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, v)
}

fn task_manager_ids(rest: SocketAddr) -> Vec<String> {
    let (_, v) = get_json(rest, "/taskmanagers");
    v["taskmanagers"]
        .as_array()
        .expect("taskmanagers is a list")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The heartbeat timeout of the test JobManagers: long enough that a loaded machine does
/// not lose live TaskManagers, short enough to see a lost one go.
const HEARTBEAT_TIMEOUT_MS: u64 = 3000;

/// Starts a JobManager on `rpc_port` (0: any) and returns it with its RPC and REST
/// addresses. A fixed port may be taken for a moment by another test's connection: the
/// start is retried a few times.
fn start_jobmanager(dir: &Path, name: &str, rpc_port: u16) -> (Proc, SocketAddr, SocketAddr) {
    let file = dir.join(name);
    for _ in 0..5 {
        let mut jm = spawn(&[
            "jobmanager",
            "--rpc-port",
            &rpc_port.to_string(),
            "--rest-port",
            "0",
            "--heartbeat-interval-ms",
            "100",
            "--heartbeat-timeout-ms",
            &HEARTBEAT_TIMEOUT_MS.to_string(),
            "--address-file",
            file.to_str().unwrap(),
        ]);
        let started = eventually(Duration::from_secs(20), "the address file", || {
            if let Ok(Some(_)) = jm.0.try_wait() {
                return Some(None);
            }
            std::fs::read_to_string(&file).ok()?;
            Some(Some(addresses(&file)))
        });
        if let Some((rpc, rest)) = started {
            return (jm, rpc, rest);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the JobManager did not start on RPC port {rpc_port}");
}

#[test]
fn task_managers_register_heartbeat_and_are_lost_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut jm, rpc, rest) = start_jobmanager(dir.path(), "jm1", 0);
    let rpc_s = rpc.to_string();
    let tm_a = spawn(&["taskmanager", "--jobmanager", &rpc_s, "--slots", "2"]);
    let mut tm_b = spawn(&["taskmanager", "--jobmanager", &rpc_s, "--slots", "3"]);
    eventually(Duration::from_secs(20), "two TaskManagers", || {
        (task_manager_ids(rest).len() == 2).then_some(())
    });

    let (status, overview) = get_json(rest, "/overview");
    assert_eq!(status, 200);
    assert_eq!(overview["taskmanagers"], 2);
    assert_eq!(overview["slots-total"], 5);
    assert_eq!(overview["slots-available"], 5);
    assert_eq!(overview["jobs-running"], 0);
    let (_, tms) = get_json(rest, "/taskmanagers");
    let tms = tms["taskmanagers"].as_array().unwrap().clone();
    let mut slots: Vec<u64> = tms
        .iter()
        .map(|t| t["slotsNumber"].as_u64().unwrap())
        .collect();
    slots.sort();
    assert_eq!(slots, vec![2, 3]);
    assert!(tms
        .iter()
        .all(|t| t["hardware"]["cpuCores"].as_u64() > Some(0)));
    let one = tms[0]["id"].as_str().unwrap();
    let (status, detail) = get_json(rest, &format!("/taskmanagers/{one}"));
    assert_eq!((status, detail["id"].as_str()), (200, Some(one)));

    // Each TaskManager serves a data port; bad frames there close that connection only.
    for t in &tms {
        let port = t["dataPort"].as_u64().expect("dataPort is a number");
        assert!(port > 0 && port <= u64::from(u16::MAX), "{t}");
        let mut s = TcpStream::connect(("127.0.0.1", port as u16)).expect("data port open");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&[0xff; 32]).unwrap();
        let mut answer = Vec::new();
        // The TaskManager closes the connection: the read ends instead of timing out.
        let read = s.read_to_end(&mut answer);
        assert!(
            read.as_ref()
                .map_or_else(|e| e.kind() != std::io::ErrorKind::WouldBlock, |_| true),
            "{read:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        task_manager_ids(rest).len(),
        2,
        "both TaskManagers keep running"
    );

    // Error answers, with Flink's codes and one readable message each.
    let (status, body) = get_json(rest, "/jobs");
    assert_eq!((status, body), (200, serde_json::json!({ "jobs": [] })));
    let (status, body) = get_json(rest, "/jobs/not-a-job-id");
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("not-a-job-id"));
    let (status, body) = get_json(rest, "/jobs/00000000000000000000000000000000");
    assert_eq!(status, 404);
    assert!(body["errors"][0].as_str().unwrap().contains("not found"));
    let (status, _) = get_json(rest, "/no/such/path");
    assert_eq!(status, 404);
    let (status, _) = get_json(rest, "/taskmanagers/nobody");
    assert_eq!(status, 404);
    let (status, metrics) = http(rest, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("weir_jobmanager_numRegisteredTaskManagers 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_jobmanager_taskSlotsTotal 5"),
        "{metrics}"
    );

    // kill -9 of a TaskManager: after the heartbeat timeout it is gone, with its slots.
    tm_b.signal(libc::SIGKILL);
    tm_b.wait_exit(Duration::from_secs(5))
        .expect("kill -9 ends the process");
    eventually(
        Duration::from_secs(20),
        "the lost TaskManager to be removed",
        || {
            let (_, o) = get_json(rest, "/overview");
            (o["taskmanagers"] == 1 && o["slots-total"] == 2).then_some(())
        },
    );

    // A new JobManager on the same RPC port: the surviving TaskManager registers again.
    jm.signal(libc::SIGKILL);
    jm.wait_exit(Duration::from_secs(5))
        .expect("kill -9 ends the JobManager");
    let (mut jm2, _, rest2) = start_jobmanager(dir.path(), "jm2", rpc.port());
    eventually(
        Duration::from_secs(20),
        "re-registration at the new JobManager",
        || (task_manager_ids(rest2).len() == 1).then_some(()),
    );

    // SIGTERM stops both roles cleanly, and the TaskManager says goodbye.
    let mut tm_a = tm_a;
    let sigterm = Instant::now();
    tm_a.signal(libc::SIGTERM);
    let status = tm_a
        .wait_exit(Duration::from_secs(10))
        .expect("SIGTERM stops a TaskManager");
    assert!(status.success(), "{status:?}");
    eventually(Duration::from_secs(10), "the TaskManager to leave", || {
        task_manager_ids(rest2).is_empty().then_some(())
    });
    assert!(
        sigterm.elapsed() < Duration::from_millis(HEARTBEAT_TIMEOUT_MS),
        "the TaskManager left by saying goodbye, not by the heartbeat timeout"
    );
    jm2.signal(libc::SIGTERM);
    let status = jm2
        .wait_exit(Duration::from_secs(10))
        .expect("SIGTERM stops a JobManager");
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_arguments_and_busy_ports_fail_with_one_clear_line() {
    let out = run(&["taskmanager", "--jobmanager", "127.0.0.1:1", "--slots", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one slot"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run(&["jobmanager", "--rpc-port", "0", "--rest-port", &port]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind the REST port 127.0.0.1:{port}")),
        "{err}"
    );

    let out = run(&[
        "jobmanager",
        "--heartbeat-interval-ms",
        "500",
        "--heartbeat-timeout-ms",
        "100",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be longer"));
}

#[test]
fn cluster_start_and_stop_manage_background_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("cluster");
    let d_s = d.to_str().unwrap();
    let start = [
        "cluster",
        "start",
        "--dir",
        d_s,
        "--taskmanagers",
        "2",
        "--slots",
        "2",
        "--rpc-port",
        "0",
        "--rest-port",
        "0",
    ];
    /// Stops the cluster if the test fails half-way (its processes are not our children).
    struct StopOnDrop(String);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            let _ = run(&["cluster", "stop", "--dir", &self.0]);
        }
    }
    let out = run(&start);
    let _guard = StopOnDrop(d_s.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, rest) = addresses(&d.join("jobmanager.address"));
    eventually(Duration::from_secs(20), "two TaskManagers", || {
        (task_manager_ids(rest).len() == 2).then_some(())
    });
    let pids: Vec<i32> = ["jobmanager", "taskmanager-0", "taskmanager-1"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(d.join(format!("{n}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(d.join("log").join("jobmanager.log").exists());

    let again = run(&start);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    let out = run(&["cluster", "stop", "--dir", d_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in pids {
        // Gone, or a zombie its new parent has not reaped yet.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rfind(')')
            .is_some_and(|i| !state[i + 1..].trim_start().starts_with('Z'));
        assert!(!running, "process {pid} still runs after `cluster stop`");
    }
    let out = run(&["cluster", "stop", "--dir", d_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster is running"));
}
