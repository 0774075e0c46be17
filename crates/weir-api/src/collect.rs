//! `execute_and_collect`: runs a job and hands its results to the caller as an iterator
//! (Flink's `DataStream.executeAndCollect`), for tests, notebooks and small clients.
//!
//! The job's collect sink writes into a bounded channel, so a caller that reads slowly
//! backpressures the job instead of buffering its output. The iterator ends when the job
//! ends and every result was read; a failed job gives its error as the last item.
//! Dropping the iterator before the end cancels the job, as closing Flink's iterator does.
//!
//! ```no_run
//! use weir_api::prelude::*;
//! let env = StreamExecutionEnvironment::new();
//! let squares = env.from_sequence(1, 5).map(|i: i64| i * i);
//! let got: Vec<i64> = squares
//!     .execute_and_collect("squares")?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(got.len(), 5);
//! # Ok::<(), weir_api::ApiError>(())
//! ```

use crate::datastream::DataStream;
use crate::env::JobClient;
use crate::error::Result;
use crate::functions::UserError;
use crate::sink::{Sink, SinkContext, SinkWriter};
use crate::types::Data;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

/// Results buffered between the job and the caller before the job waits.
const BUFFERED_RESULTS: usize = 4096;

/// How often an idle iterator looks whether the job has ended.
const POLL: Duration = Duration::from_millis(10);

impl<T: Data> DataStream<T> {
    /// Runs the job this stream belongs to and returns an iterator over this stream's
    /// elements as they are produced (in no particular order across subtasks). The
    /// elements come back into this process: on the embedded mini-cluster only.
    pub fn execute_and_collect(&self, job_name: &str) -> Result<CollectIterator<T>> {
        let (tx, rx) = sync_channel(BUFFERED_RESULTS);
        self.env().state.borrow_mut().collects_in_process = true;
        self.sink_to(ChannelSink { tx }, "Collect Sink");
        let client = self.env().execute_async(job_name)?;
        Ok(CollectIterator {
            rx: Some(rx),
            client,
            done: false,
        })
    }
}

/// The results of a job started by [`DataStream::execute_and_collect`].
pub struct CollectIterator<T> {
    /// Taken (closed) when the iterator is dropped early.
    rx: Option<Receiver<T>>,
    client: JobClient,
    done: bool,
}

impl<T> CollectIterator<T> {
    /// The running job, e.g. to take a savepoint.
    pub fn job(&self) -> &JobClient {
        &self.client
    }

    /// The job has ended: what is left in the channel, then its result.
    fn after_end(&mut self) -> Option<Result<T>> {
        if let Some(v) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
            return Some(Ok(v));
        }
        self.done = true;
        match self.client.wait() {
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl<T> Iterator for CollectIterator<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        loop {
            let rx = self.rx.as_ref()?;
            match rx.recv_timeout(POLL) {
                Ok(v) => return Some(Ok(v)),
                Err(RecvTimeoutError::Disconnected) => return self.after_end(),
                Err(RecvTimeoutError::Timeout) => {}
            }
            // A sink writes its results before its task ends, so once the job has ended
            // every result is in the channel.
            let ended = match self.client.status() {
                Ok(s) => s.is_terminal(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if ended {
                return self.after_end();
            }
        }
    }
}

impl<T> Drop for CollectIterator<T> {
    fn drop(&mut self) {
        if !self.done {
            // Nobody reads any more: stop the job. Closing the channel fails a sink blocked
            // on a full buffer, so its task sees the cancellation.
            let _ = self.client.cancel();
            drop(self.rx.take());
            let _ = self.client.wait();
        }
    }
}

/// Sends each record to the iterator; waits while the iterator's buffer is full.
struct ChannelSink<T> {
    tx: SyncSender<T>,
}

struct ChannelWriter<T> {
    tx: SyncSender<T>,
}

impl<T: Send + 'static> Sink<T> for ChannelSink<T> {
    fn create_writer(
        &self,
        _: &SinkContext,
    ) -> std::result::Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(ChannelWriter {
            tx: self.tx.clone(),
        }))
    }
}

impl<T: Send> SinkWriter<T> for ChannelWriter<T> {
    fn write(&mut self, value: T, _: Option<i64>) -> std::result::Result<(), UserError> {
        self.tx
            .send(value)
            .map_err(|_| "the collecting client went away".into())
    }
}
