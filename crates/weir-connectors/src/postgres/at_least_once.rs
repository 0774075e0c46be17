//! The writer for `DeliveryGuarantee::None` and `AtLeastOnce`: rows are buffered and
//! written in committed batches when the buffer is full, when its oldest row waited for the
//! batch interval, at the end of input and, for at-least-once, at every checkpoint barrier
//! (so everything before the barrier is in the database when the checkpoint completes; a
//! restart may write rows after it again, which an upsert absorbs).
//!
//! A batch that fails with a transient error (connection lost, serialisation failure, a
//! server restart) is retried on a new connection after a growing pause, as Flink's JDBC
//! sink does with its `maxRetries`; other errors fail the task at once.

use super::buffer::RowBuffer;
use super::connection::{Connection, Target};
use super::RowEncoder;
use crate::error::ConnectorError;
use std::time::Duration;
use weir_api::functions::UserError;
use weir_api::sink::{ProcessingTimeService, SinkWriter};

/// How batches are retried.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retries {
    /// Retries after the first attempt.
    pub max: u32,
    /// Pause before retry `n` is `n * backoff`.
    pub backoff: Duration,
}

pub(crate) struct AtLeastOnceWriter<T> {
    pub target: Target,
    pub encoder: RowEncoder<T>,
    pub conn: Option<Connection>,
    pub buffer: RowBuffer,
    pub clock: ProcessingTimeService,
    pub batch_interval: Option<Duration>,
    pub retries: Retries,
    pub flush_on_checkpoint: bool,
}

impl<T> AtLeastOnceWriter<T> {
    /// Writes the buffer in one transaction, retrying transient failures on a new
    /// connection.
    fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            let result = match &mut self.conn {
                Some(conn) => conn.insert_committed(self.buffer.rows()),
                None => Connection::open(&self.target)
                    .and_then(|c| self.conn.insert(c).insert_committed(self.buffer.rows())),
            };
            match result {
                Ok(()) => {
                    self.buffer.clear();
                    return Ok(());
                }
                Err(e) if e.is_transient() && attempt < self.retries.max => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, max = self.retries.max, "postgres sink: retrying a batch on a new connection");
                    self.conn = None;
                    std::thread::sleep(self.retries.backoff * attempt);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn schedule_interval_flush(&self) {
        if let (Some(interval), Some(oldest)) = (self.batch_interval, self.buffer.oldest_ms()) {
            self.clock.request(oldest + interval.as_millis() as i64);
        }
    }
}

impl<T: Send> SinkWriter<T> for AtLeastOnceWriter<T> {
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        let row = self.encoder.encode(&value)?;
        let was_empty = self.buffer.is_empty();
        self.buffer.push(row, self.clock.now());
        if self.buffer.len() >= self.target.batch_size {
            self.flush()?;
        } else if was_empty {
            self.schedule_interval_flush();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        Ok(self.flush()?)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        if self.flush_on_checkpoint {
            self.flush()?;
        }
        Ok(Vec::new())
    }

    fn on_processing_time(&mut self, now_ms: i64) -> Result<(), UserError> {
        let (Some(interval), Some(oldest)) = (self.batch_interval, self.buffer.oldest_ms()) else {
            return Ok(());
        };
        if now_ms - oldest >= interval.as_millis() as i64 {
            self.flush()?;
        } else {
            self.schedule_interval_flush();
        }
        Ok(())
    }
}
