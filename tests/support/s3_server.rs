//! A local S3-compatible server (moto) for tests: started on a free port of 127.0.0.1 with
//! one bucket, stopped (by the process id it started) when dropped.
//!
//! Needs `moto_server` on the PATH (`pip install 'moto[server]'`, as `.ci/run` does).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto S3 server on 127.0.0.1, stopped when dropped.
pub struct S3Server {
    child: Child,
    /// Its port.
    pub port: u16,
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

impl S3Server {
    /// Starts a server with the bucket `bucket`.
    pub fn start(bucket: &str) -> S3Server {
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
                &format!("PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
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

    /// Points this process's S3 clients at the server (the `AWS_*` variables). The
    /// environment is the process's: call it from a test binary whose tests all use this
    /// one server.
    pub fn configure_env(&self) {
        std::env::set_var(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", self.port),
        );
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}
