//! Checkpoints in an S3-compatible object store: the `exactly_once` job, broken on purpose,
//! checkpoints to `s3://...` on a local S3 server (moto, started here on a free port) and
//! recovers from there with exactly-once output.
//!
//! Needs `moto_server` on the PATH (`pip install 'moto[server]'`, as `.ci/run` does).

#[path = "../examples/exactly_once.rs"]
#[allow(dead_code)]
mod exactly_once;

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir::state::CheckpointStorage;

/// A moto S3 server on 127.0.0.1, stopped when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(port: u16, req: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn start_s3() -> S3Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server is needed for this test: pip install 'moto[server]'");
    let server = S3Server { child, port };
    let start = Instant::now();
    loop {
        let created = request(
            port,
            &format!("PUT /weir HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        );
        match created {
            Ok(r) if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") => break,
            _ if start.elapsed() > Duration::from_secs(30) => {
                panic!("the S3 server on port {port} did not come up")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    server
}

#[test]
fn checkpoints_in_s3_recover_exactly_once() {
    let s3 = start_s3();
    // The only test in this binary: the process environment is its own.
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", s3.port));
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");

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
