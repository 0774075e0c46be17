//! `weir list` and `weir cancel` against a REST API with a running job (the embedded
//! mini-cluster's), and their errors: an unknown or malformed job id, an unreachable
//! JobManager. Each error is one line on stderr and a non-zero exit.

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use weir::cluster::{JobStatus, MiniCluster, MiniClusterConfig};
use weir::connectors::datagen::DataGeneratorSource;
use weir::prelude::*;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn weir(args: &[&str]) -> Output {
    Command::new(WEIR)
        .args(args)
        .env_remove("WEIR_JOBMANAGER")
        .output()
        .expect("cannot run weir")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn list_and_cancel_a_running_job() {
    let cluster = MiniCluster::start(MiniClusterConfig {
        task_managers: 1,
        slots_per_task_manager: 1,
    });
    let server = cluster.serve_rest("127.0.0.1:0".parse().unwrap()).unwrap();
    let rest = server.address().to_string();
    let env = StreamExecutionEnvironment::new();
    env.set_cluster(cluster.clone());
    env.set_parallelism(1);
    env.from_source(
        DataGeneratorSource::new(u64::MAX, |i| i).with_rate_limit(1000.0),
        "endless",
    )
    .discard();
    let job = env.execute_async("listed job").unwrap();
    let id = job.job_id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while job.status().unwrap() != JobStatus::Running {
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = weir(&["list", "--jobmanager", &rest]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.contains("Running/Restarting Jobs"), "{listed}");
    assert!(
        listed.contains(&format!("{id} : listed job (RUNNING)")),
        "{listed}"
    );

    // The address may also come from WEIR_JOBMANAGER.
    let out = Command::new(WEIR)
        .args(["cancel", &id])
        .env("WEIR_JOBMANAGER", &rest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("Cancelling job {id}.")));
    assert!(job.wait().is_err(), "the job was cancelled");
    let out = weir(&["list", "--jobmanager", &rest]);
    let listed = text(&out.stdout);
    assert!(listed.contains("No running jobs."), "{listed}");
    assert!(
        listed.contains(&format!("{id} : listed job (CANCELED)")),
        "{listed}"
    );

    let out = weir(&[
        "cancel",
        "--jobmanager",
        &rest,
        "0123456789abcdef0123456789abcdef",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("not found") && err.lines().count() == 1,
        "{err}"
    );
    let out = weir(&["cancel", "--jobmanager", &rest, "not-a-job"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("32 hexadecimal digits"));
}

#[test]
fn an_unreachable_jobmanager_is_one_clear_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for args in [
        vec!["list", "--jobmanager", &addr],
        vec![
            "cancel",
            "--jobmanager",
            &addr,
            "0123456789abcdef0123456789abcdef",
        ],
    ] {
        let out = weir(&args);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot reach the JobManager's REST API") && err.lines().count() == 1,
            "{err}"
        );
    }
}
