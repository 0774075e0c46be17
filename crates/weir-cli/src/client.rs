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
