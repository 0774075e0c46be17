//! `weir list` and `weir cancel`: client commands that talk to a JobManager's REST API, as
//! `flink list` and `flink cancel` do (`--jobmanager HOST:PORT` is the REST address, also
//! from `WEIR_JOBMANAGER`).

use crate::error::{CliError, Result};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// Where the JobManager's REST API is.
#[derive(Args)]
pub struct JobManagerAddress {
    /// The JobManager's REST address, HOST:PORT (default: $WEIR_JOBMANAGER, else
    /// 127.0.0.1:8081).
    #[arg(long)]
    jobmanager: Option<String>,
}

impl JobManagerAddress {
    /// The REST address as given (or the default).
    pub fn address(&self) -> String {
        self.jobmanager
            .clone()
            .or_else(|| std::env::var("WEIR_JOBMANAGER").ok())
            .unwrap_or_else(|| "127.0.0.1:8081".into())
    }

    fn base_url(&self) -> String {
        let addr = self.address();
        if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        }
    }
}

/// Options of `weir cancel`.
#[derive(Args)]
pub struct CancelArgs {
    #[command(flatten)]
    jobmanager: JobManagerAddress,
    /// The job's id (32 hex digits, as `weir list` shows it).
    job_id: String,
}

fn client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Usage(format!("cannot set up an HTTP client: {e}")))
}

/// Sends a request and returns the status and the JSON body (Null when there is none).
fn call(method: reqwest::Method, url: &str) -> Result<(u16, Value)> {
    let response = client()?.request(method, url).send().map_err(|e| {
        CliError::Usage(format!(
            "cannot reach the JobManager's REST API at {url}: {}",
            root_cause(&e)
        ))
    })?;
    let status = response.status().as_u16();
    let body = response.text().unwrap_or_default();
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// The innermost error's message (reqwest wraps the OS error a few levels down).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The REST API's error message of a failed call.
fn rest_error(status: u16, body: &Value) -> CliError {
    let message = body["errors"][0]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("the JobManager answered with HTTP {status}"));
    CliError::Usage(message)
}

/// `weir list`: the jobs of the cluster, running ones first.
pub fn list(address: JobManagerAddress) -> Result<()> {
    let url = format!("{}/jobs/overview", address.base_url());
    let (status, body) = call(reqwest::Method::GET, &url)?;
    if status != 200 {
        return Err(rest_error(status, &body));
    }
    let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
    let line = |j: &Value| {
        format!(
            "{} : {} ({})",
            j["jid"].as_str().unwrap_or("?"),
            j["name"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or("?")
        )
    };
    let ended = |j: &Value| {
        matches!(
            j["state"].as_str(),
            Some("FINISHED" | "CANCELED" | "FAILED")
        )
    };
    let (done, active): (Vec<&Value>, Vec<&Value>) = jobs.iter().partition(|j| ended(j));
    if active.is_empty() {
        println!("No running jobs.");
    } else {
        println!("------------------ Running/Restarting Jobs -------------------");
        active.iter().for_each(|j| println!("{}", line(j)));
        println!("--------------------------------------------------------------");
    }
    if !done.is_empty() {
        println!("---------------------- Terminated Jobs -----------------------");
        done.iter().for_each(|j| println!("{}", line(j)));
        println!("--------------------------------------------------------------");
    }
    Ok(())
}

/// `weir cancel JOB_ID`: asks the JobManager to cancel the job.
pub fn cancel(args: CancelArgs) -> Result<()> {
    let url = format!(
        "{}/jobs/{}?mode=cancel",
        args.jobmanager.base_url(),
        args.job_id
    );
    let (status, body) = call(reqwest::Method::PATCH, &url)?;
    match status {
        202 | 200 => {
            println!("Cancelling job {}.", args.job_id);
            Ok(())
        }
        _ => Err(rest_error(status, &body)),
    }
}

/// Options of `weir savepoint`.
#[derive(Args)]
pub struct SavepointArgs {
    #[command(flatten)]
    jobmanager: JobManagerAddress,
    /// The job's id.
    job_id: String,
    /// The directory the savepoint goes into (a new directory below it).
    target_directory: Option<String>,
    /// How long to wait for the savepoint, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// Options of `weir stop`.
#[derive(Args)]
pub struct StopArgs {
    #[command(flatten)]
    jobmanager: JobManagerAddress,
    /// The directory the final savepoint goes into.
    #[arg(long, short = 'p')]
    savepoint_dir: String,
    /// The job's id.
    job_id: String,
    /// How long to wait for the savepoint, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// Sends a JSON body and returns the status and the JSON answer.
fn post_json(url: &str, body: &Value) -> Result<(u16, Value)> {
    let response = client()?.post(url).json(body).send().map_err(|e| {
        CliError::Usage(format!(
            "cannot reach the JobManager's REST API at {url}: {}",
            root_cause(&e)
        ))
    })?;
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Follows a savepoint operation until it completes; returns its location.
fn await_savepoint(base: &str, job: &str, request: &str, timeout: Duration) -> Result<String> {
    let url = format!("{base}/jobs/{job}/savepoints/{request}");
    let start = std::time::Instant::now();
    loop {
        let (status, body) = call(reqwest::Method::GET, &url)?;
        if status != 200 {
            return Err(rest_error(status, &body));
        }
        if body["status"]["id"] == "COMPLETED" {
            let op = &body["operation"];
            if let Some(location) = op["location"].as_str() {
                return Ok(location.to_string());
            }
            let cause = op["failure-cause"]["stack-trace"]
                .as_str()
                .unwrap_or("no reason given");
            return Err(CliError::Usage(format!("the savepoint failed: {cause}")));
        }
        if start.elapsed() > timeout {
            return Err(CliError::Usage(format!(
                "the savepoint did not complete within {timeout:?}; it may still complete: GET {url}"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn request_id(status: u16, body: &Value) -> Result<String> {
    if status != 202 && status != 200 {
        return Err(rest_error(status, body));
    }
    body["request-id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CliError::Usage("the JobManager answered no request id".into()))
}

/// `weir savepoint JOB_ID [DIR]`: takes a savepoint of a running job (as `flink savepoint`).
pub fn savepoint(args: SavepointArgs) -> Result<()> {
    let base = args.jobmanager.base_url();
    println!("Triggering savepoint for job {}.", args.job_id);
    let mut body = serde_json::json!({ "cancel-job": false });
    if let Some(dir) = &args.target_directory {
        body["target-directory"] = Value::String(dir.clone());
    }
    let (status, answer) = post_json(&format!("{base}/jobs/{}/savepoints", args.job_id), &body)?;
    let request = request_id(status, &answer)?;
    let location = await_savepoint(
        &base,
        &args.job_id,
        &request,
        Duration::from_secs(args.timeout_s),
    )?;
    println!("Savepoint completed. Path: {location}");
    Ok(())
}

/// `weir stop --savepoint-dir DIR JOB_ID`: stops a job with a final savepoint (as `flink stop`).
pub fn stop(args: StopArgs) -> Result<()> {
    let base = args.jobmanager.base_url();
    println!("Suspending job {} with a savepoint.", args.job_id);
    let body = serde_json::json!({ "targetDirectory": args.savepoint_dir, "drain": false });
    let (status, answer) = post_json(&format!("{base}/jobs/{}/stop", args.job_id), &body)?;
    let request = request_id(status, &answer)?;
    let location = await_savepoint(
        &base,
        &args.job_id,
        &request,
        Duration::from_secs(args.timeout_s),
    )?;
    println!("Savepoint completed. Path: {location}");
    Ok(())
}
