//! Checkpoints in an S3-compatible object store: the `exactly_once` job, broken on purpose,
//! checkpoints to `s3://...` on a local S3 server (moto, started here on a free port) and
//! recovers from there with exactly-once output.
//!
//! Needs `moto_server` on the PATH (`pip install 'moto[server]'`, as `.ci/run` does).

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

#[path = "support/s3_server.rs"]
mod s3_server;

use weir::state::CheckpointStorage;

#[test]
fn checkpoints_in_s3_recover_exactly_once() {
    let s3 = s3_server::S3Server::start("weir");
    // The only test in this binary: the process environment is its own.
    s3.configure_env();

    let events = 60_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = common::example_args(events, 2, &tmp.path().join("out"), "s3://weir/checkpoints");
    a.fail_at = vec![25_000, 45_001];
    let result = exactly_once::run(&a).unwrap();
    assert!(result.restarts >= 1);
    let (_, from) = result.checkpoints.restored_from.clone().unwrap();
    assert!(from.starts_with("s3://weir/checkpoints/"), "{from}");
    assert_eq!(common::committed(&a.output_dir), common::reference(events));

    // The retained checkpoints are in the bucket, each with its metadata.
    let job = CheckpointStorage::open(&format!("s3://weir/checkpoints/{}", result.job_id)).unwrap();
    let dirs = job.list_dirs("").unwrap();
    assert!(!dirs.is_empty() && dirs.len() <= 2, "{dirs:?}");
    for d in dirs {
        assert!(job.exists(&format!("{d}/_metadata")), "{d} has no metadata");
    }
}
