//! Jobs on a cluster of processes: real `weir jobmanager` and `weir taskmanager` processes
//! on 127.0.0.1 with OS-assigned ports, and the `exactly_once` example submitted unchanged
//! with `weir run`. Its committed output is compared with the reference computed here: after
//! a plain run across two TaskManagers, after `kill -9` of a TaskManager in the middle of
//! the job, and while another job on the same cluster fails. A job that needs more slots
//! than the cluster has ends with one clear line.
//!
//! The binaries are found next to this test's executable (`cargo test --workspace` builds
//! the `weir` binary and the examples first).

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

use common::{committed, reference};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The target directory's profile directory (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps")
        .to_path_buf()
}

fn binary(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo test --workspace builds it)",
        path.display()
    );
    path
}

fn weir_bin() -> PathBuf {
    binary(profile_dir().join("weir"))
}

fn example_bin() -> PathBuf {
    example_named("exactly_once")
}

fn example_named(name: &str) -> PathBuf {
    binary(profile_dir().join("examples").join(name))
}

/// A child process killed when the test ends, whatever happens.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A JobManager and TaskManagers, with their logs and temporary files in one directory.
struct Cluster {
    dir: tempfile::TempDir,
    rpc: String,
    rest: String,
    jobmanager: Proc,
    task_managers: Vec<Proc>,
}

impl Cluster {
    /// A JobManager whose TaskManagers are lost after `heartbeat_timeout_ms` of silence.
    /// A JobManager and `count` TaskManagers of `slots` slots each, all registered.
    fn with_task_managers(heartbeat_timeout_ms: u64, count: usize, slots: u32) -> Cluster {
        let mut cluster = Cluster::start(heartbeat_timeout_ms);
        for _ in 0..count {
            cluster.add_task_manager(slots);
        }
        cluster.wait_for_task_managers(count);
        cluster
    }

    fn start(heartbeat_timeout_ms: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let address_file = dir.path().join("address");
        let log = std::fs::File::create(dir.path().join("jobmanager.log")).expect("log");
        let jobmanager = Proc(
            Command::new(weir_bin())
                .args(["jobmanager", "--rpc-port", "0", "--rest-port", "0"])
                .arg("--address-file")
                .arg(&address_file)
                .args(["--heartbeat-interval-ms", "200"])
                .args(["--heartbeat-timeout-ms", &heartbeat_timeout_ms.to_string()])
                .env("TMPDIR", dir.path())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start the JobManager"),
        );
        let start = Instant::now();
        let line = loop {
            if let Ok(l) = std::fs::read_to_string(&address_file) {
                if l.ends_with('\n') {
                    break l;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no JobManager address"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|p| p.strip_prefix(k))
                .expect("address line")
                .to_string()
        };
        Cluster {
            rpc: field("rpc="),
            rest: field("rest="),
            dir,
            jobmanager,
            task_managers: Vec::new(),
        }
    }

    /// Starts a TaskManager with `slots` slots; returns its index.
    fn add_task_manager(&mut self, slots: u32) -> usize {
        let i = self.task_managers.len();
        let log = std::fs::File::create(self.log_path(&format!("taskmanager-{i}"))).expect("log");
        self.task_managers.push(Proc(
            Command::new(weir_bin())
                .args(["taskmanager", "--jobmanager", &self.rpc])
                .args(["--slots", &slots.to_string()])
                .env("TMPDIR", self.dir.path())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a TaskManager"),
        ));
        i
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// The tails of every log, for a failing assertion.
    fn logs(&self) -> String {
        let mut out = String::new();
        let mut names = vec!["jobmanager".to_string()];
        names.extend((0..self.task_managers.len()).map(|i| format!("taskmanager-{i}")));
        for n in names {
            let text = self.log(&n);
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            out.push_str(&format!("--- {n} ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn get(&self, path: &str) -> Value {
        reqwest::blocking::get(format!("http://{}{path}", self.rest))
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    /// The JobManager's Prometheus scrape (empty if it does not answer).
    fn metrics_text(&self) -> String {
        reqwest::blocking::get(format!("http://{}/metrics", self.rest))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    /// Waits until `n` TaskManagers are registered.
    fn wait_for_task_managers(&self, n: usize) {
        let start = Instant::now();
        while self.get("/taskmanagers")["taskmanagers"]
            .as_array()
            .map_or(0, Vec::len)
            < n
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{n} TaskManagers did not register\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `weir run` of the `exactly_once` example with `args`; its output goes to
    /// `run.log`.
    fn run(&self, args: &[String]) -> Proc {
        self.run_program("run", &[], &example_bin(), args)
    }

    /// Starts `weir run [OPTIONS] BINARY -- ARGS` against this cluster; its output goes to
    /// `<log>.log`.
    fn run_program<S: AsRef<std::ffi::OsStr>>(
        &self,
        log: &str,
        options: &[&str],
        binary: &Path,
        args: &[S],
    ) -> Proc {
        let file = std::fs::File::create(self.log_path(log)).expect("log");
        Proc(
            Command::new(weir_bin())
                .args(["run", "--jobmanager", &self.rest])
                .args(options)
                .arg(binary)
                .arg("--")
                .args(args)
                .env("TMPDIR", self.dir.path())
                .stdout(file.try_clone().expect("log"))
                .stderr(file)
                .spawn()
                .expect("start weir run"),
        )
    }

    fn wait_for_log(&self, name: &str, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log(name).contains(text) {
            assert!(
                start.elapsed() < limit,
                "'{text}' not in the {name} log within {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait(p: &mut Proc, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(s)) = p.0.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn example_args(events: u64, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--events",
        &events.to_string(),
        "--parallelism",
        "2",
        "--output-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(out.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs `run` to its end and checks it succeeded and committed exactly the reference.
fn assert_exactly_once(cluster: &Cluster, run: &mut Proc, events: u64, out: &Path) {
    let status = wait(run, Duration::from_secs(180));
    assert!(
        status.is_some_and(|s| s.success()),
        "weir run ended with {status:?}\n--- run ---\n{}\n{}",
        cluster.log("run"),
        cluster.logs()
    );
    let got = committed(out);
    let want = reference(events);
    assert!(
        got == want,
        "committed {} lines, the reference has {}\n{}",
        got.len(),
        want.len(),
        cluster.logs()
    );
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn a_keyed_windowed_job_across_two_task_managers_commits_the_reference() {
    let cluster = Cluster::with_task_managers(10_000, 2, 1);
    let out = cluster.dir.path().join("out");
    let mut run = cluster.run(&example_args(
        20_000,
        &out,
        &["--checkpoint-interval-ms", "100"],
    ));
    assert_exactly_once(&cluster, &mut run, 20_000, &out);
    // Each TaskManager ran a worker: the keyed exchanges crossed processes.
    for i in 0..2 {
        assert!(
            cluster
                .log(&format!("taskmanager-{i}"))
                .contains("job worker started"),
            "TaskManager {i} ran no worker\n{}",
            cluster.logs()
        );
    }
    assert!(cluster
        .log("run")
        .contains("Job has been submitted with JobID"));
    // The workers' counts reached the JobManager: the sink's vertex read every line.
    let id = submitted_job_id(&cluster);
    let detail = cluster.get(&format!("/jobs/{id}"));
    let sink = detail["vertices"]
        .as_array()
        .and_then(|v| v.last())
        .expect("vertices");
    assert_eq!(
        sink["metrics"]["read-records"].as_u64(),
        Some(reference(20_000).len() as u64),
        "{detail}"
    );
    assert_eq!(sink["metrics"]["read-records-complete"], true, "{detail}");
}

#[test]
fn kill_9_of_a_task_manager_mid_job_restores_exactly_once_on_another() {
    let mut cluster = Cluster::with_task_managers(1_500, 2, 1);
    let out = cluster.dir.path().join("out");
    let events = 400_000;
    // Slow enough for checkpoints before the kill; the restart waits until the lost
    // TaskManager's heartbeat timeout has passed. Unaligned: the barriers overtake the
    // buffers queued on both sides of the network channels, and the restore replays them.
    let mut run = cluster.run(&example_args(
        events,
        &out,
        &[
            "--unaligned",
            "--checkpoint-interval-ms",
            "100",
            "--poll-pause-ms",
            "2",
            "--restart-delay-ms",
            "2500",
        ],
    ));
    cluster.wait_for_log("jobmanager", "checkpoint complete", Duration::from_secs(60));
    // The spare TaskManager joins once the job runs on the first two.
    let spare = cluster.add_task_manager(1);
    cluster.wait_for_task_managers(3);
    let victim = (0..spare)
        .find(|i| {
            cluster
                .log(&format!("taskmanager-{i}"))
                .contains("job worker started")
        })
        .expect("a TaskManager runs the job");
    // SAFETY: sends SIGKILL to our own child process; no memory is involved.
    unsafe {
        libc::kill(cluster.task_managers[victim].0.id() as i32, libc::SIGKILL);
    }
    assert_exactly_once(&cluster, &mut run, events, &out);
    assert!(
        cluster.log("jobmanager").contains("asking for new slots"),
        "the job did not move off the lost TaskManager\n{}",
        cluster.logs()
    );
    // The killed TaskManager's worker died with it (PR_SET_PDEATHSIG), and the workers of
    // the others were stopped when the job was released: no job binary runs any more.
    let workers = cluster.dir.path().join("weir-taskmanager-");
    wait_until_no_process_with(
        &[workers.display().to_string()],
        Duration::from_secs(10),
        "worker processes outlived their job",
    );
}

#[test]
fn a_binary_that_builds_another_graph_fails_its_job_and_the_other_job_runs_on() {
    let cluster = Cluster::with_task_managers(10_000, 2, 2);
    let out = cluster.dir.path().join("out");
    let events = 200_000;
    let mut good = cluster.run(&example_args(
        events,
        &out,
        &["--checkpoint-interval-ms", "100", "--poll-pause-ms", "2"],
    ));
    cluster.wait_for_log("jobmanager", "checkpoint complete", Duration::from_secs(60));

    // A second job whose graph is not what its binary builds: one operator's uid differs.
    let bad_out = cluster.dir.path().join("bad-out");
    let args = example_args(1_000, &bad_out, &[]);
    let parsed = {
        use clap::Parser;
        exactly_once::Args::parse_from(
            std::iter::once("exactly_once".to_string()).chain(args.clone()),
        )
    };
    let (env, _) = exactly_once::build(&parsed).expect("the example builds");
    let mut graph = env.job_graph("Exactly once").expect("graph");
    graph.vertices[1].operators[0].uid = "not-what-the-binary-builds".into();
    let http = reqwest::blocking::Client::new();
    let base = format!("http://{}", cluster.rest);
    let blob: Value = http
        .post(format!("{base}/blobs"))
        .body(std::fs::read(example_bin()).expect("example binary"))
        .send()
        .and_then(|r| r.json())
        .expect("upload");
    let submitted: Value = http
        .post(format!("{base}/jobs"))
        .json(&json!({
            "jobGraph": graph,
            "blobKey": blob["blobKey"],
            "args": args,
            "env": [],
        }))
        .send()
        .and_then(|r| r.json())
        .expect("submit");
    let bad = submitted["jobid"].as_str().expect("job id").to_string();
    let start = Instant::now();
    let result = loop {
        let r = cluster.get(&format!("/jobs/{bad}/execution-result"));
        if r["status"]["id"] == "COMPLETED" {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the mismatched job did not end\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let r = &result["job-execution-result"];
    assert_eq!(r["application-status"], "FAILED", "{result}");
    let cause = r["failure-cause"]["stack-trace"]
        .as_str()
        .unwrap_or_default();
    assert!(cause.contains("built a different graph"), "{cause}");
    // Restarting cannot help a binary that builds another graph: one failure, no restart.
    let history = cluster.get(&format!("/jobs/{bad}/exceptions"));
    let entries = history["exceptionHistory"]["entries"]
        .as_array()
        .expect("entries");
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["exceptionName"], "JobBinaryFailed", "{history}");

    // The other job was not touched.
    assert_exactly_once(&cluster, &mut good, events, &out);
}

#[test]
fn a_job_needing_more_slots_than_the_cluster_has_ends_with_one_line() {
    let cluster = Cluster::with_task_managers(10_000, 1, 1);
    let out = cluster.dir.path().join("out");
    let mut run = cluster.run(&example_args(1_000, &out, &[]));
    let status = wait(&mut run, Duration::from_secs(60)).expect("weir run ends");
    assert!(!status.success());
    let log = cluster.log("run");
    let error = log
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{log}"));
    assert!(
        error.contains("could not allocate 2 slots"),
        "unclear error: {error}"
    );
    let other = log
        .lines()
        .filter(|l| !l.starts_with("Job has been submitted") && *l != error)
        .count();
    assert_eq!(other, 0, "one error line, nothing else:\n{log}");
}

/// The job id `weir run` printed.
fn submitted_job_id(cluster: &Cluster) -> String {
    job_id_in_log(cluster, "run")
}

/// The job id a `weir run` printed into log `name`, waiting up to a minute for it.
fn job_id_in_log(cluster: &Cluster, name: &str) -> String {
    let start = Instant::now();
    loop {
        let log = cluster.log(name);
        if let Some(id) = log
            .lines()
            .find_map(|l| l.strip_prefix("Job has been submitted with JobID "))
        {
            return id.trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no job id in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no process's command line mentions any of `needles`, up to `limit`.
fn wait_until_no_process_with(needles: &[String], limit: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let left: Vec<String> = needles.iter().flat_map(|n| processes_with(n)).collect();
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < limit, "{what}: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a `weir` client command against the cluster; returns its exit status and output.
fn weir_cli(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let out = Command::new(weir_bin())
        .args(args)
        .env("WEIR_JOBMANAGER", &cluster.rest)
        .output()
        .expect("run weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The newest complete checkpoint below `root` (`<root>/<job>/chk-N` with a `_metadata`).
fn latest_checkpoint(root: &Path) -> Option<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for job in std::fs::read_dir(root).ok()?.flatten() {
        for chk in std::fs::read_dir(job.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = chk.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_prefix("chk-")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if chk.path().join("_metadata").is_file() && best.as_ref().is_none_or(|b| n > b.0) {
                best = Some((n, chk.path()));
            }
        }
    }
    best.map(|b| b.1)
}

#[test]
fn after_kill_9_of_the_job_manager_the_job_resumes_from_its_checkpoint_on_a_new_cluster() {
    let first = Cluster::with_task_managers(1_500, 2, 1);
    let out = first.dir.path().join("out");
    let checkpoints = first.dir.path().join("chk");
    let events = 400_000;
    let chk = checkpoints.display().to_string();
    let args = example_args(
        events,
        &out,
        &[
            "--checkpoint-interval-ms",
            "100",
            "--poll-pause-ms",
            "2",
            "--checkpoint-dir",
            &chk,
        ],
    );
    let mut run = first.run(&args);
    first.wait_for_log("jobmanager", "checkpoint complete", Duration::from_secs(60));
    // SAFETY: sends SIGKILL to our own child process; no memory is involved.
    unsafe {
        libc::kill(first.jobmanager.0.id() as i32, libc::SIGKILL);
    }
    let status = wait(&mut run, Duration::from_secs(60)).expect("the client ends");
    assert!(
        !status.success(),
        "the client cannot follow a dead JobManager"
    );
    // The TaskManagers stop the orphaned workers once the JobManager is silent for longer
    // than the heartbeat timeout: nothing commits behind the checkpoint any more.
    let workers = first.dir.path().join("weir-taskmanager-");
    wait_until_no_process_with(
        &[workers.display().to_string()],
        Duration::from_secs(20),
        "the workers outlived their JobManager",
    );
    let checkpoint = latest_checkpoint(&checkpoints).expect("a retained checkpoint");

    let second = Cluster::with_task_managers(10_000, 2, 1);
    let checkpoint = checkpoint.display().to_string();
    let mut resumed = second.run_program(
        "run",
        &["--from-savepoint", &checkpoint],
        &example_bin(),
        &args,
    );
    assert_exactly_once(&second, &mut resumed, events, &out);
}

#[test]
fn savepoint_and_stop_from_the_command_line_then_resume_exactly_once() {
    let cluster = Cluster::with_task_managers(10_000, 1, 2);
    let out = cluster.dir.path().join("out");
    let events = 400_000;
    let args = example_args(
        events,
        &out,
        &["--checkpoint-interval-ms", "200", "--poll-pause-ms", "2"],
    );
    let mut run = cluster.run(&args);
    let job = submitted_job_id(&cluster);
    cluster.wait_for_log("jobmanager", "checkpoint complete", Duration::from_secs(60));
    // The running job holds both slots of the one TaskManager.
    let overview = cluster.get("/overview");
    assert_eq!(
        (&overview["slots-total"], &overview["slots-available"]),
        (&json!(2), &json!(0)),
        "{overview}"
    );
    assert_eq!(
        cluster.get("/taskmanagers")["taskmanagers"][0]["freeSlots"],
        0
    );

    let savepoints = cluster.dir.path().join("savepoints");
    let dir = savepoints.display().to_string();
    let (ok, text) = weir_cli(&cluster, &["savepoint", &job, &dir]);
    assert!(ok && text.contains("Savepoint completed. Path: "), "{text}");
    let (ok, text) = weir_cli(&cluster, &["savepoint", &"0".repeat(32), &dir]);
    assert!(!ok && text.contains("not found"), "{text}");

    let (ok, text) = weir_cli(&cluster, &["stop", "--savepoint-dir", &dir, &job]);
    assert!(ok, "{text}");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("Savepoint completed. Path: "))
        .expect("the savepoint's path")
        .trim()
        .to_string();
    let status = wait(&mut run, Duration::from_secs(60)).expect("the stopped job ends");
    assert!(status.success(), "{}", cluster.log("run"));
    assert!(
        committed(&out).len() < reference(events).len(),
        "the job was stopped before its end"
    );

    let mut resumed =
        cluster.run_program("run", &["--from-savepoint", &path], &example_bin(), &args);
    assert_exactly_once(&cluster, &mut resumed, events, &out);
}

#[test]
fn info_prints_the_plan_without_running_the_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let output = Command::new(weir_bin())
        .arg("info")
        .arg(example_bin())
        .arg("--")
        .args(example_args(1_000, &out, &[]))
        .output()
        .expect("weir info");
    assert!(output.status.success());
    let plan: Value = serde_json::from_slice(&output.stdout).expect("the plan is JSON");
    let nodes = plan["nodes"].as_array().expect("nodes");
    assert!(nodes
        .iter()
        .any(|n| n["contents"].as_str().is_some_and(|c| c.contains("Window"))));
    assert!(!out.exists(), "the job must not run");
}

#[test]
fn application_mode_runs_the_job_on_a_cluster_of_its_own_and_stops_it_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let address = dir.path().join("address");
    let output = Command::new(weir_bin())
        .args([
            "run",
            "--application",
            "--taskmanagers",
            "2",
            "--address-file",
        ])
        .arg(&address)
        .arg(example_bin())
        .arg("--")
        .args(example_args(
            20_000,
            &out,
            &["--checkpoint-interval-ms", "100"],
        ))
        .env("TMPDIR", dir.path())
        .output()
        .expect("weir run --application");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Application cluster: JobManager"), "{text}");
    assert_eq!(committed(&out), reference(20_000));
    // Its JobManager and TaskManagers ended with the job.
    let line = std::fs::read_to_string(&address).expect("the address file");
    let rpc = line
        .split_whitespace()
        .find_map(|p| p.strip_prefix("rpc="))
        .expect("rpc address")
        .to_string();
    wait_until_no_process_with(
        &[
            rpc,
            dir.path().join("weir-application-").display().to_string(),
        ],
        Duration::from_secs(10),
        "the application's cluster outlived it",
    );
}

#[test]
fn a_crashed_worker_restarts_only_its_job_and_both_jobs_commit_exactly_once() {
    let cluster = Cluster::with_task_managers(10_000, 2, 2);
    let events = 300_000;
    let slow = ["--checkpoint-interval-ms", "100", "--poll-pause-ms", "2"];
    let out_a = cluster.dir.path().join("out-a");
    let mut a = cluster.run(&example_args(events, &out_a, &slow));
    let _ = submitted_job_id(&cluster);
    let out_b = cluster.dir.path().join("out-b");
    let mut b = cluster.run_program(
        "run-b",
        &[],
        &example_bin(),
        &example_args(events, &out_b, &slow),
    );
    let job_b = job_id_in_log(&cluster, "run-b");
    // Job B's workers (the job binary under a TaskManager's cache, writing to out-b), once
    // job B has a completed checkpoint.
    let start = Instant::now();
    let worker = loop {
        let checkpointed = cluster
            .log("jobmanager")
            .lines()
            .any(|l| l.contains("checkpoint complete") && l.contains(&job_b));
        let found = processes_with(&out_b.display().to_string())
            .into_iter()
            .find(|p| p.contains("weir-taskmanager-"));
        if let (Some(w), true) = (&found, checkpointed) {
            break w.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "job B's worker did not start\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid: i32 = worker
        .split(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid");
    // SAFETY: sends SIGKILL to a worker process this test's cluster started; no memory is
    // involved.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert_exactly_once(&cluster, &mut a, events, &out_a);
    let status = wait(&mut b, Duration::from_secs(180));
    assert!(
        status.is_some_and(|s| s.success()),
        "job B ended with {status:?}\n{}",
        cluster.logs()
    );
    assert!(committed(&out_b) == reference(events), "job B's output");
    let jm = cluster.log("jobmanager");
    let important: String = jm
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("RESTART"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        jm.contains("the job's worker process exited"),
        "the crash was not noticed\n{important}\n{}",
        cluster.logs()
    );
    assert_eq!(
        jm.matches("RESTARTING").count(),
        1,
        "one restart, job B's\n{}",
        cluster.logs()
    );
    // The failure is in job B's exception history, job A's is empty (Flink's shape).
    let b = cluster.get(&format!("/jobs/{job_b}/exceptions"));
    let entries = b["exceptionHistory"]["entries"]
        .as_array()
        .expect("entries");
    assert_eq!(entries.len(), 1, "{b}");
    assert_eq!(entries[0]["exceptionName"], "TaskFailed", "{b}");
    assert!(
        entries[0]["taskName"]
            .as_str()
            .is_some_and(|t| t.contains("/2)")),
        "{b}"
    );
    assert!(
        entries[0]["timestamp"].as_u64().is_some_and(|t| t > 0),
        "{b}"
    );
    assert_eq!(b["exceptionHistory"]["truncated"], false);
    let a_id = cluster
        .log("run")
        .lines()
        .find_map(|l| l.strip_prefix("Job has been submitted with JobID "))
        .expect("job A's id")
        .trim()
        .to_string();
    assert_eq!(
        cluster.get(&format!("/jobs/{a_id}/exceptions")),
        json!({ "exceptionHistory": { "entries": [], "truncated": false } })
    );
}

/// The resident set size of process `pid` in MB, if it still runs.
fn rss_mb(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[test]
fn backpressure_crosses_processes_and_the_workers_memory_stays_flat() {
    let cluster = Cluster::with_task_managers(10_000, 2, 1);
    let out = cluster.dir.path().join("out");
    let records: u64 = 200_000;
    // 200 MB of payload from a source that could produce it in well under a second, into
    // sinks that take about three seconds for it.
    let records_arg = records.to_string();
    let out_arg = out.display().to_string();
    let mut run = cluster.run_program(
        "run",
        &[],
        &example_named("backpressure"),
        &[
            "--records",
            &records_arg,
            "--pause-every",
            "40",
            "--pause-ms",
            "1",
            "--parallelism",
            "2",
            "--output-dir",
            &out_arg,
        ],
    );
    let workers = cluster
        .dir
        .path()
        .join("weir-taskmanager-")
        .display()
        .to_string();
    let mut peak: f64 = 0.0;
    let mut samples = 0;
    // The user metric the job's map counts in the workers, as the JobManager exports it.
    let mut records_made = 0u64;
    let mut next_scrape = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = run.0.try_wait() {
            break status;
        }
        if Instant::now() >= next_scrape {
            next_scrape = Instant::now() + Duration::from_millis(200);
            let text = cluster.metrics_text();
            let made: f64 = text
                .lines()
                .filter(|l| l.starts_with("weir_user_records_made{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            records_made = records_made.max(made as u64);
        }
        for p in processes_with(&workers) {
            let pid = p.split(':').next().unwrap_or_default().to_string();
            if let Some(mb) = rss_mb(&pid) {
                peak = peak.max(mb);
                samples += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{}\n{}",
        cluster.log("run"),
        cluster.logs()
    );
    let (mut count, mut sum) = (0u64, 0u64);
    for e in std::fs::read_dir(&out).expect("output") {
        let text = std::fs::read_to_string(e.expect("entry").path()).expect("part");
        let (c, s) = text.trim().split_once(',').expect("count,sum");
        count += c.parse::<u64>().expect("count");
        sum += s.parse::<u64>().expect("sum");
    }
    assert_eq!((count, sum), (records, records * (records - 1) / 2));
    eprintln!("workers' peak RSS {peak:.0} MB over {samples} samples");
    // The JobManager saw the source side wait for buffers: backpressure, per vertex.
    let id = submitted_job_id(&cluster);
    let detail = cluster.get(&format!("/jobs/{id}"));
    let source_waited = detail["vertices"][0]["metrics"]["accumulated-backpressured-time"]
        .as_u64()
        .unwrap_or(0);
    assert!(source_waited > 100, "{detail}");
    assert!(
        records_made > 0 && records_made <= records,
        "the workers' user metric did not reach the JobManager's /metrics: {records_made}"
    );
    assert!(
        samples > 20,
        "the job ran too briefly to watch ({samples} samples)"
    );
    assert!(
        peak < 64.0,
        "a worker's memory reached {peak:.0} MB: the source ran ahead of the sink"
    );
}

#[test]
fn a_program_that_collects_results_into_itself_is_refused_by_a_cluster() {
    let cluster = Cluster::start(10_000);
    let output = Command::new(weir_bin())
        .args(["run", "--jobmanager", &cluster.rest])
        .arg(example_named("parallel_pipeline"))
        .args(["--", "--count", "1000"])
        .env("TMPDIR", cluster.dir.path())
        .output()
        .expect("weir run");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        text.contains("collect_values or execute_and_collect"),
        "unclear refusal: {text}"
    );
    assert_eq!(
        cluster.get("/jobs/overview")["jobs"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "nothing was submitted"
    );
}

#[test]
fn the_programs_job_client_stops_a_cluster_job_with_a_savepoint_and_it_resumes() {
    let cluster = Cluster::with_task_managers(10_000, 2, 1);
    let out = cluster.dir.path().join("out");
    let savepoints = cluster.dir.path().join("savepoints");
    let events = 400_000;
    let common = ["--checkpoint-interval-ms", "200", "--poll-pause-ms", "2"];
    let sp = savepoints.display().to_string();
    let mut stopping = common.to_vec();
    stopping.extend(["--stop-after-ms", "2000", "--savepoint-dir", &sp]);
    let mut run = cluster.run(&example_args(events, &out, &stopping));
    let status = wait(&mut run, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}\n{}",
        cluster.log("run"),
        cluster.logs()
    );
    let log = cluster.log("run");
    let path = log
        .lines()
        .find_map(|l| l.strip_prefix("stopped with savepoint "))
        .unwrap_or_else(|| panic!("no savepoint in:\n{log}"))
        .trim()
        .to_string();
    // The program read its job's checkpoint statistics from the JobManager.
    let completed: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("checkpoints completed before the stop: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no checkpoint statistics in:\n{log}"));
    assert!(completed >= 1, "{log}");
    assert!(committed(&out).len() < reference(events).len());
    let mut resumed = cluster.run_program(
        "run",
        &["--from-savepoint", &path],
        &example_bin(),
        &example_args(events, &out, &common),
    );
    assert_exactly_once(&cluster, &mut resumed, events, &out);
}

#[test]
fn an_application_whose_job_manager_cannot_start_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = busy.local_addr().expect("address").port().to_string();
    let output = Command::new(weir_bin())
        .args(["run", "--application", "--rest-port", &port])
        .arg(example_bin())
        .arg("--")
        .args(example_args(1_000, &dir.path().join("out"), &[]))
        .env("TMPDIR", dir.path())
        .output()
        .expect("weir run --application");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        text.contains("JobManager exited") && text.contains("bind"),
        "unclear error: {text}"
    );
}

#[test]
fn a_detached_run_returns_at_once_and_the_job_completes_on_its_own() {
    let cluster = Cluster::with_task_managers(10_000, 1, 2);
    let out = cluster.dir.path().join("out");
    let events = 100_000;
    let mut run = cluster.run_program(
        "run",
        &["--detached"],
        &example_bin(),
        &example_args(events, &out, &["--poll-pause-ms", "2"]),
    );
    let status = wait(&mut run, Duration::from_secs(60)).expect("weir run --detached ends");
    assert!(status.success(), "{}", cluster.log("run"));
    let id = submitted_job_id(&cluster);
    let start = Instant::now();
    while cluster.get(&format!("/jobs/{id}"))["state"] != "FINISHED" {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the detached job did not finish\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(committed(&out), reference(events));
}

/// The workers' data addresses of the jobs a JobManager prepared, from its log.
fn worker_data_addresses(cluster: &Cluster) -> Vec<String> {
    cluster
        .log("jobmanager")
        .lines()
        .filter(|l| l.contains("job prepared on a TaskManager"))
        .filter_map(|l| {
            let at = l.rfind("data")?;
            let rest = &l[at..];
            let start = rest.find("127.0.0.1:")?;
            let addr: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            Some(addr)
        })
        .collect()
}

#[test]
fn garbage_on_a_running_workers_data_port_leaves_the_job_exactly_once() {
    use std::io::{Read, Write};
    let cluster = Cluster::with_task_managers(10_000, 2, 1);
    let out = cluster.dir.path().join("out");
    let events = 200_000;
    let mut run = cluster.run(&example_args(
        events,
        &out,
        &["--checkpoint-interval-ms", "100", "--poll-pause-ms", "2"],
    ));
    cluster.wait_for_log("jobmanager", "checkpoint complete", Duration::from_secs(60));
    let addresses = worker_data_addresses(&cluster);
    assert_eq!(addresses.len(), 2, "{}", cluster.logs());
    // Random bytes, an oversized length, an unknown tag, a buffer for a stream nobody
    // requested, and a frame cut off mid-way: each closes only its own connection.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for addr in &addresses {
        for garbage in [
            random.clone(),
            vec![0xff; 64],
            vec![3, 0, 0, 0, 99, 1, 2],
            vec![9, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![20, 0, 0, 0, 1, 0],
        ] {
            let mut s = std::net::TcpStream::connect(addr.as_str()).expect("a worker's data port");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let _ = s.write_all(&garbage);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    }
    assert_exactly_once(&cluster, &mut run, events, &out);
    // The workers saw the bad frames (their log goes to their TaskManager's).
    let closed = (0..2)
        .filter(|i| {
            cluster
                .log(&format!("taskmanager-{i}"))
                .contains("closing a data connection")
        })
        .count();
    assert_eq!(closed, 2, "{}", cluster.logs());
    assert!(
        !cluster.log("jobmanager").contains("RESTARTING"),
        "the job restarted\n{}",
        cluster.logs()
    );
}

/// `first_ms,last_ms,count` of each sink subtask of the `aligned_sources` example.
fn timings(dir: &Path) -> Vec<(u64, u64, u64)> {
    (0..2)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("part-{i}"))).expect("part");
            let v: Vec<u64> = text
                .trim()
                .split(',')
                .map(|x| x.parse().expect("a number"))
                .collect();
            (v[0], v[1], v[2])
        })
        .collect()
}

#[test]
fn watermark_alignment_holds_a_fast_source_subtask_back_across_task_managers() {
    let cluster = Cluster::with_task_managers(10_000, 2, 1);
    let run = |out: &Path, aligned: bool| {
        let out_arg = out.display().to_string();
        // The slow subtask takes 4 s or more; the fast one, alone, a fraction of that (long
        // enough that the first watermark exchanges happen while it runs).
        let mut args = vec![
            "--events",
            "100000",
            "--slow-every",
            "25",
            "--fast-every",
            "1000",
            "--output-dir",
            &out_arg,
        ];
        if !aligned {
            args.push("--no-alignment");
        }
        let mut run = cluster.run_program("run", &[], &example_named("aligned_sources"), &args);
        let status = wait(&mut run, Duration::from_secs(120));
        assert!(
            status.is_some_and(|s| s.success()),
            "{}\n{}",
            cluster.log("run"),
            cluster.logs()
        );
        timings(out)
    };
    // Without alignment the fast subtask is done long before the slow one.
    let free = run(&cluster.dir.path().join("free"), false);
    let (slow, fast) = (free[0], free[1]);
    assert_eq!((slow.2, fast.2), (100_000, 100_000));
    assert!(
        fast.1 + 2_000 < slow.1,
        "the comparison run must show a gap: slow ended at {}, fast at {}",
        slow.1,
        fast.1
    );
    // With alignment (the subtasks are in two workers) it keeps pace: it ends within the
    // drift, the sync interval and the watermark interval of the slow one. The fast subtask
    // alone runs ~100 ms; until the slow one's worker has reported a first watermark to the
    // JobMaster the group has no low mark and the fast one runs free (as in Flink, whose
    // coordinator aligns on reported watermarks only), so a run whose fast subtask finished
    // in that window proves nothing: up to three runs, and one must show it held back.
    let mut gaps = Vec::new();
    for attempt in 0..3 {
        let aligned = run(&cluster.dir.path().join(format!("aligned-{attempt}")), true);
        let (slow, fast) = (aligned[0], aligned[1]);
        assert_eq!((slow.2, fast.2), (100_000, 100_000));
        gaps.push(slow.1 as i64 - fast.1 as i64);
        if fast.1 + 1_000 >= slow.1 {
            break;
        }
    }
    eprintln!(
        "without alignment the fast subtask ended {} ms before the slow one, with it {gaps:?} ms",
        free[0].1 as i64 - free[1].1 as i64,
    );
    assert!(
        gaps.last().is_some_and(|g| *g <= 1_000),
        "the fast subtask ran ahead in every run: it ended {gaps:?} ms before the slow one"
    );
}
