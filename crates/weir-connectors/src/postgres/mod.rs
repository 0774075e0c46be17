//! A PostgreSQL sink (Flink's `JdbcSink` for PostgreSQL): appends or upserts rows, in
//! batches, with Flink's three delivery guarantees.
//!
//! ```no_run
//! use weir_connectors::postgres::{DeliveryGuarantee, PostgresSink};
//! # fn job(totals: weir_api::DataStream<(String, i64)>) {
//! let sink = PostgresSink::upsert(
//!     "postgres://app@127.0.0.1:5432/shop",
//!     "totals",
//!     &["key", "total"],
//!     &["key"],
//!     |(key, total): &(String, i64), row| {
//!         row.push(key.as_str()).push(*total);
//!     },
//! )
//! .with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
//! .with_transaction_prefix("shop-totals");
//! totals.sink_to(sink, "totals");
//! # }
//! ```
//!
//! - **Append** (`INSERT`) or **upsert** (`INSERT ... ON CONFLICT (keys) DO UPDATE`, the
//!   keys a unique constraint of the table); rows are built by a function of the record,
//!   each value checked against its column's type when it is pushed.
//! - **Batches** of up to `batch_size` rows (default 5000), written when full, when the
//!   oldest row waited `batch_interval` (default 1 s; `None` turns it off), at checkpoints
//!   and at the end of input. An upsert batch keeps one row per key (the last).
//! - [`DeliveryGuarantee::None`]: batches only; [`AtLeastOnce`](DeliveryGuarantee::AtLeastOnce)
//!   (the default): also at every checkpoint barrier, so a completed checkpoint's rows are
//!   in the table; transient failures retried `max_retries` times (default 3) on a new
//!   connection. [`ExactlyOnce`](DeliveryGuarantee::ExactlyOnce): two-phase commit with
//!   `PREPARE TRANSACTION`, see [`two_phase`]; the server needs `max_prepared_transactions`
//!   above 0.
//!
//! The sink talks to the server with the `postgres` crate, without TLS. A batch that needs
//! a retry waits on the task's thread (as Flink's JDBC sink does), which delays barriers by
//! the backoff.

mod at_least_once;
mod buffer;
mod connection;
mod row;
mod statement;
pub mod two_phase;

pub use postgres::types::ToSql;
pub use row::Row;

use crate::error::ConnectorError;
use at_least_once::{AtLeastOnceWriter, Retries};
use buffer::RowBuffer;
use connection::{Connection, Target};
use postgres::types::Type;
use row::EncodedRow;
use std::sync::Arc;
use std::time::Duration;
use two_phase::ExactlyOnceWriter;
use weir_api::functions::UserError;
use weir_api::sink::{Sink, SinkContext, SinkWriter};

pub use crate::delivery::DeliveryGuarantee;

/// The function that turns a record into a row.
type RowFn<T> = dyn Fn(&T, &mut Row<'_>) + Send + Sync;

/// Writes records into a PostgreSQL table.
pub struct PostgresSink<T> {
    url: String,
    table: String,
    columns: Vec<String>,
    keys: Vec<String>,
    row: Arc<RowFn<T>>,
    batch_size: usize,
    batch_interval: Option<Duration>,
    retries: Retries,
    lock_timeout: Duration,
    guarantee: DeliveryGuarantee,
    transaction_prefix: Option<String>,
}

impl<T> PostgresSink<T> {
    /// Appends one row per record to `table` (`INSERT INTO table (columns) VALUES ...`);
    /// `row` pushes the record's values in `columns` order. `url` is a libpq-style
    /// connection string (`postgres://user:password@host:port/database` or
    /// `host=... user=...`).
    pub fn append<F>(url: &str, table: &str, columns: &[&str], row: F) -> Self
    where
        F: Fn(&T, &mut Row<'_>) + Send + Sync + 'static,
    {
        Self::upsert(url, table, columns, &[], row)
    }

    /// Inserts or updates one row per record: a row whose `keys` match an existing one
    /// replaces its other columns (`ON CONFLICT (keys) DO UPDATE`). `keys` must be a unique
    /// constraint (or the primary key) of `table`; no keys means append.
    pub fn upsert<F>(url: &str, table: &str, columns: &[&str], keys: &[&str], row: F) -> Self
    where
        F: Fn(&T, &mut Row<'_>) + Send + Sync + 'static,
    {
        PostgresSink {
            url: url.to_string(),
            table: table.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            keys: keys.iter().map(|c| c.to_string()).collect(),
            row: Arc::new(row),
            batch_size: 5000,
            batch_interval: Some(Duration::from_secs(1)),
            retries: Retries {
                max: 3,
                backoff: Duration::from_secs(1),
            },
            lock_timeout: Duration::from_secs(60),
            guarantee: DeliveryGuarantee::default(),
            transaction_prefix: None,
        }
    }

    /// Rows per batch (and per statement) at most.
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Writes a batch once its oldest row waited this long (`None`: only when full, at
    /// checkpoints and at the end). Not used with exactly-once, where rows become visible
    /// at commit anyway.
    pub fn with_batch_interval(mut self, interval: Option<Duration>) -> Self {
        self.batch_interval = interval;
        self
    }

    /// Retries of a batch that failed with a transient error, and the pause before the
    /// first (the n-th waits n times as long). Exactly-once writers do not retry writes: a
    /// lost connection loses the open transaction, so the task fails and the job restores.
    pub fn with_retries(mut self, max: u32, backoff: Duration) -> Self {
        self.retries = Retries { max, backoff };
        self
    }

    /// How long a statement waits for a row lock before it fails (PostgreSQL's
    /// `lock_timeout`; default 60 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The delivery guarantee (default at-least-once).
    pub fn with_delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Names this sink's prepared transactions and sessions (exactly-once only, and then
    /// required; up to 128 characters out of `A-Za-z0-9_.:-`). It must be unique among the
    /// jobs and sinks writing to the database and stay the same across restarts of a job: a
    /// starting sink ends the sessions and resolves the transactions that earlier attempts
    /// left under it.
    pub fn with_transaction_prefix(mut self, prefix: &str) -> Self {
        self.transaction_prefix = Some(prefix.to_string());
        self
    }

    fn validate(&self) -> Result<(), ConnectorError> {
        if self.columns.is_empty() {
            return Err(config_error(format!(
                "no columns given for table {}",
                self.table
            )));
        }
        if let Some(k) = self.keys.iter().find(|k| !self.columns.contains(k)) {
            return Err(config_error(format!(
                "upsert key '{k}' is not one of the columns ({})",
                self.columns.join(", ")
            )));
        }
        if self.batch_size == 0 {
            return Err(config_error("the batch size must be at least 1".into()));
        }
        if self.guarantee == DeliveryGuarantee::ExactlyOnce {
            match &self.transaction_prefix {
                None => {
                    return Err(config_error(
                        "exactly-once needs a transaction prefix (with_transaction_prefix), \
                         unique per job and sink and the same across restarts"
                            .into(),
                    ))
                }
                Some(p)
                    if p.is_empty()
                        || p.len() > two_phase::MAX_PREFIX_LEN
                        || !p
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)) =>
                {
                    return Err(config_error(format!(
                        "the transaction prefix '{p}' must have 1 to {} characters out of \
                         A-Z, a-z, 0-9, '_', '.', ':' and '-'",
                        two_phase::MAX_PREFIX_LEN
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            table: self.table.clone(),
            columns: self.columns.clone(),
            keys: self.keys.clone(),
            batch_size: self.batch_size,
            lock_timeout: self.lock_timeout,
        }
    }
}

/// A configuration error of the Postgres sink: what is wrong and how to fix it.
pub(crate) fn config_error(message: String) -> ConnectorError {
    ConnectorError::Config {
        connector: "postgres sink",
        message,
    }
}

/// Turns records into encoded rows with the user's row function and the columns' types.
pub(crate) struct RowEncoder<T> {
    table: String,
    row: Arc<RowFn<T>>,
    columns: Vec<String>,
    types: Vec<Type>,
    key_columns: Vec<usize>,
}

impl<T> RowEncoder<T> {
    /// The row of `value`, or why it does not fit the table.
    pub fn encode(&self, value: &T) -> Result<EncodedRow, ConnectorError> {
        let mut row = Row::new(&self.types, &self.columns);
        (self.row)(value, &mut row);
        row.finish()
            .map_err(|message| config_error(format!("a row for table {}: {message}", self.table)))
    }

    /// Indexes of the upsert key columns (empty: append).
    pub fn key_columns(&self) -> Vec<usize> {
        self.key_columns.clone()
    }
}

impl<T: Send + 'static> Sink<T> for PostgresSink<T> {
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        self.validate()?;
        let target = self.target();
        let conn = Connection::open(&target)?;
        let encoder = RowEncoder {
            table: self.table.clone(),
            row: self.row.clone(),
            columns: self.columns.clone(),
            types: conn.types().to_vec(),
            key_columns: self
                .keys
                .iter()
                .filter_map(|k| self.columns.iter().position(|c| c == k))
                .collect(),
        };
        let buffer = RowBuffer::new(encoder.key_columns());
        Ok(match (self.guarantee, &self.transaction_prefix) {
            (DeliveryGuarantee::ExactlyOnce, Some(prefix)) => Box::new(ExactlyOnceWriter::start(
                target,
                encoder,
                conn,
                prefix.clone(),
                ctx,
            )?),
            _ => Box::new(AtLeastOnceWriter {
                target,
                encoder,
                conn: Some(conn),
                buffer,
                clock: ctx.processing_time.clone(),
                batch_interval: self.batch_interval,
                retries: self.retries,
                flush_on_checkpoint: self.guarantee != DeliveryGuarantee::None,
            }),
        })
    }
}
