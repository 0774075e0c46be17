//! A client of a JobManager's REST API, for programs that submit themselves to a cluster
//! (`weir run`): upload the binary, submit the graph, follow and cancel the job.

use super::submit::SubmitJobRequest;
use crate::error::{ClusterError, Result};
use crate::result::{JobExecutionResult, JobStatus};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use weir_core::JobId;

/// How long one request may take (an upload of a large binary included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How often a waiting client asks whether the job ended.
const POLL: Duration = Duration::from_millis(200);

/// A REST client of one JobManager.
pub struct RestClient {
    base: String,
    http: reqwest::blocking::Client,
}

fn network(context: String) -> impl FnOnce(reqwest::Error) -> ClusterError {
    move |e| ClusterError::Network {
        context,
        message: e.to_string(),
    }
}

impl RestClient {
    /// A client of the JobManager whose REST API listens at `address` (`HOST:PORT`).
    pub fn new(address: &str) -> Result<Self> {
        let base = if address.starts_with("http://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("http://{address}")
        };
        // Uploads take as long as the binary is large; every other call is short, and a
        // JobManager that stops answering ends it after the timeout.
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(network("cannot create an HTTP client".into()))?;
        Ok(RestClient { base, http })
    }

    fn read(&self, what: &str, r: reqwest::blocking::Response) -> Result<Value> {
        let status = r.status();
        let text = r.text().map_err(network(format!(
            "{what}: the JobManager's answer broke off"
        )))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.ok_or_else(|| ClusterError::Network {
                context: format!("{what}: the JobManager's answer is not JSON"),
                message: text.chars().take(200).collect(),
            });
        }
        // Weir's errors are {"errors": [..]}; a request the server could not even read
        // (bad JSON, too large) is answered in plain text.
        let message = body
            .as_ref()
            .and_then(|b| {
                b["errors"]
                    .as_array()?
                    .first()?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        Err(ClusterError::Network {
            context: format!("{what}: the JobManager answered {status}"),
            message,
        })
    }

    fn unreachable(&self, what: &str) -> impl FnOnce(reqwest::Error) -> ClusterError + '_ {
        let context = format!("{what}: cannot reach the JobManager at {}", self.base);
        network(context)
    }

    /// Uploads the file at `path` to the blob store; returns its key.
    pub fn upload_blob(&self, path: &Path) -> Result<String> {
        let what = format!("uploading {}", path.display());
        let file = std::fs::File::open(path).map_err(|e| ClusterError::Network {
            context: format!("cannot read {}", path.display()),
            message: e.to_string(),
        })?;
        let r = self
            .http
            .post(format!("{}/blobs", self.base))
            .body(reqwest::blocking::Body::from(file))
            .send()
            .map_err(self.unreachable(&what))?;
        let body = self.read(&what, r)?;
        body["blobKey"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClusterError::Network {
                context: what,
                message: "the answer has no blobKey".into(),
            })
    }

    /// Submits a job; returns its id.
    pub fn submit(&self, request: &SubmitJobRequest) -> Result<JobId> {
        let what = "submitting the job";
        let r = self
            .http
            .post(format!("{}/jobs", self.base))
            .json(request)
            .send()
            .map_err(self.unreachable(what))?;
        let body = self.read(what, r)?;
        body["jobid"]
            .as_str()
            .and_then(|s| crate::rpc::convert::job_id(s, "submit answer").ok())
            .ok_or_else(|| ClusterError::Network {
                context: what.into(),
                message: "the answer has no job id".into(),
            })
    }

    /// The job's status.
    pub fn status(&self, job: JobId) -> Result<JobStatus> {
        let what = format!("asking for job {job}");
        let r = self
            .http
            .get(format!("{}/jobs/{job}", self.base))
            .send()
            .map_err(self.unreachable(&what))?;
        let body = self.read(&what, r)?;
        let state = body["state"].as_str().unwrap_or_default();
        JobStatus::from_flink_name(state).ok_or_else(|| ClusterError::Network {
            context: what,
            message: format!("unknown job state '{state}'"),
        })
    }

    /// The job's checkpoint counts and history (from Weir's field of
    /// `/jobs/{id}/checkpoints`).
    pub fn checkpoint_stats(&self, job: JobId) -> Result<crate::CheckpointHistory> {
        let what = format!("asking for the checkpoints of job {job}");
        let r = self
            .http
            .get(format!("{}/jobs/{job}/checkpoints", self.base))
            .send()
            .map_err(self.unreachable(&what))?;
        let body = self.read(&what, r)?;
        serde_json::from_value(body["weir-history"].clone()).map_err(|e| ClusterError::Network {
            context: what,
            message: format!("the answer has no readable checkpoint history: {e}"),
        })
    }

    /// Registered TaskManagers.
    pub fn task_managers(&self) -> Result<usize> {
        let what = "listing the TaskManagers";
        let r = self
            .http
            .get(format!("{}/taskmanagers", self.base))
            .send()
            .map_err(self.unreachable(what))?;
        let body = self.read(what, r)?;
        Ok(body["taskmanagers"].as_array().map_or(0, Vec::len))
    }

    /// Takes a savepoint of the job into a new directory below `target_dir` and waits for
    /// it; with `stop` the job ends after it. Returns the savepoint's location.
    pub fn savepoint(&self, job: JobId, target_dir: &str, stop: bool) -> Result<String> {
        let what = format!("a savepoint of job {job}");
        let (url, body) = if stop {
            (
                format!("{}/jobs/{job}/stop", self.base),
                serde_json::json!({ "targetDirectory": target_dir, "drain": false }),
            )
        } else {
            (
                format!("{}/jobs/{job}/savepoints", self.base),
                serde_json::json!({ "target-directory": target_dir, "cancel-job": false }),
            )
        };
        let r = self
            .http
            .post(url)
            .json(&body)
            .send()
            .map_err(self.unreachable(&what))?;
        let answer = self.read(&what, r)?;
        let request = answer["request-id"]
            .as_str()
            .ok_or_else(|| ClusterError::Network {
                context: what.clone(),
                message: "the answer has no request-id".into(),
            })?
            .to_string();
        loop {
            let r = self
                .http
                .get(format!("{}/jobs/{job}/savepoints/{request}", self.base))
                .send()
                .map_err(self.unreachable(&what))?;
            let body = self.read(&what, r)?;
            if body["status"]["id"] == "COMPLETED" {
                let op = &body["operation"];
                return match op["location"].as_str() {
                    Some(location) => Ok(location.to_string()),
                    None => Err(ClusterError::Savepoint {
                        job,
                        message: op["failure-cause"]["stack-trace"]
                            .as_str()
                            .unwrap_or("no reason given")
                            .to_string(),
                    }),
                };
            }
            std::thread::sleep(POLL);
        }
    }

    /// Asks the job to cancel.
    pub fn cancel(&self, job: JobId) -> Result<()> {
        let what = format!("cancelling job {job}");
        let r = self
            .http
            .patch(format!("{}/jobs/{job}?mode=cancel", self.base))
            .send()
            .map_err(self.unreachable(&what))?;
        self.read(&what, r).map(|_| ())
    }

    /// Waits for the job to end: its result, or why it failed or was cancelled.
    pub fn wait(&self, job: JobId) -> Result<JobExecutionResult> {
        let what = format!("waiting for job {job}");
        loop {
            let r = self
                .http
                .get(format!("{}/jobs/{job}/execution-result", self.base))
                .send()
                .map_err(self.unreachable(&what))?;
            let body = self.read(&what, r)?;
            if body["status"]["id"] == "COMPLETED" {
                let r = &body["job-execution-result"];
                return match r["application-status"].as_str() {
                    Some("SUCCEEDED") => {
                        serde_json::from_value(r["weir-result"].clone()).map_err(|e| {
                            ClusterError::Network {
                                context: what,
                                message: format!("the job's result cannot be read: {e}"),
                            }
                        })
                    }
                    Some("CANCELED") => Err(ClusterError::Cancelled(job)),
                    _ => Err(ClusterError::RemoteJobFailed {
                        job,
                        message: r["failure-cause"]["stack-trace"]
                            .as_str()
                            .unwrap_or("no reason given")
                            .to_string(),
                    }),
                };
            }
            std::thread::sleep(POLL);
        }
    }
}
