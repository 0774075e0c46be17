//! A real PostgreSQL server for tests: the machine's own binaries (Debian's `postgresql`
//! package), a fresh data directory, 127.0.0.1 on a port the OS picked, stopped by its
//! process id when the handle is dropped. Shared by the workspace's tests with `#[path]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running server; dropping it stops it (immediate shutdown) and removes its files.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    pid: Option<i32>,
}

/// The newest installed server's binary directory.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    match dirs.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "these tests start a PostgreSQL server and found none under /usr/lib/postgresql: \
             install it with `apt-get install -y postgresql` (bash .ci/run does)"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server binary, as the `postgres` user when we are root (the server refuses to
/// run as root).
fn run(bin: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS gives a free port")
}

impl PgServer {
    /// Starts a server with `max_prepared_transactions = 64` (two-phase commit on).
    pub fn start() -> PgServer {
        Self::start_with(&[("max_prepared_transactions", "64")])
    }

    /// Starts a server with these settings (`-c name=value`).
    pub fn start_with(settings: &[(&str, &str)]) -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "cannot hand {} to the postgres user",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        let data_s = data.display().to_string();
        let out = run(
            &bin.join("initdb"),
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The port is free when asked; another process may take it before the server binds
        // it, so a failed start is tried again on a new port.
        for _ in 0..5 {
            let port = free_port();
            let mut opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
                dir.path().display()
            );
            for (k, v) in settings {
                opts.push_str(&format!(" -c {k}={v}"));
            }
            let log = dir.path().join("log").display().to_string();
            let out = run(
                &bin.join("pg_ctl"),
                &[
                    "-D", &data_s, "-l", &log, "-w", "-t", "30", "start", "-o", &opts,
                ],
            );
            if out.status.success() {
                let pid = std::fs::read_to_string(data.join("postmaster.pid"))
                    .ok()
                    .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()));
                return PgServer { dir, port, pid };
            }
            eprintln!(
                "postgres did not start on port {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("cannot start a PostgreSQL server");
    }

    /// The connection URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` and returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test server");
        c.batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .expect("create the test database");
        self.url(db)
    }

    /// A client of database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls)
            .expect("connect to the test server")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        // SIGQUIT: immediate shutdown of the postmaster and its children.
        let _ = Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = &self.dir;
    }
}
