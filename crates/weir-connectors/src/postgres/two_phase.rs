//! The exactly-once writer: PostgreSQL's two-phase commit, driven by checkpoints (what
//! Flink's `JdbcSink.exactlyOnceSink` does with XA transactions).
//!
//! - Rows go into one open transaction per subtask (`BEGIN` at the first row after a
//!   barrier), in batches as the buffer fills.
//! - On a checkpoint barrier the transaction is prepared (`PREPARE TRANSACTION gid`): its
//!   rows are durable on the server but invisible. The prepared transaction ids go into the
//!   checkpoint.
//! - When the checkpoint completes, its transactions (and those of earlier checkpoints that
//!   were aborted) are committed (`COMMIT PREPARED gid`). At the end of a bounded job the
//!   last transaction is prepared when the input ends and committed on the job's final
//!   notice.
//! - On restore, the writer first commits the transactions of the checkpoint it restores
//!   from (that checkpoint completed; its notice may not have arrived before the failure),
//!   then rolls back what failed attempts prepared for later checkpoints, which the
//!   replayed input writes again.
//!
//! A transaction id is `<prefix>:<subtask>:<checkpoint>:<run>`. `<run>` is random per
//! writer instance, so two attempts never reuse an id. Which leftovers a subtask rolls back
//! on start: those of its own subtask index, and subtask 0 also those of indexes the job no
//! longer has (after a rescale), each only if prepared for a checkpoint after the one
//! restored (all of them on a fresh start). Nothing another running subtask may still
//! commit is touched, since restored transactions all belong to checkpoints up to the
//! restored one. A committed or rolled-back id that is committed again is a no-op: PostgreSQL
//! no longer knows it, which is the outcome wanted, so commits can be retried.
//!
//! Locks: a prepared transaction keeps its row locks until it commits, and the commit runs
//! on the task thread when the checkpoint's notice arrives. An upsert that wrote key K
//! before a barrier and writes K again after it would wait for its own prepared transaction,
//! which the waiting thread is the one to commit. So an upsert writer holds its rows (one
//! per key) while any transaction it prepared is not committed yet, and writes them once
//! the commit is through. If a barrier comes while rows are held, they go into that
//! checkpoint's state and are written from there after a restore. Appends take no row locks
//! that later appends wait for, and are written at once. Subtasks that upsert the same keys
//! can still wait for each other's prepared transactions: partition the sink's input by the
//! conflict key (`key_by`), as Flink's upsert sinks do; the sink's lock timeout turns a wait
//! that cannot end into a failure that says so, and the restart resolves it.

use super::buffer::RowBuffer;
use super::connection::{is_unknown_transaction, Connection, Target};
use super::row::EncodedRow;
use super::statement::quote_literal;
use super::RowEncoder;
use crate::error::ConnectorError;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use weir_api::functions::UserError;
use weir_api::sink::{CheckpointNotice, SinkContext, SinkWriter};

/// Rows of a checkpoint's state go into entries of at most this many rows, so they spread
/// over the subtasks of a rescaled job.
const ROWS_PER_STATE_ENTRY: usize = 1024;

/// What the writer keeps in a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
enum StateEntry {
    /// A transaction prepared for `checkpoint` (`u64::MAX`: the end of input).
    Prepared { gid: String, checkpoint: u64 },
    /// Rows held at the barrier (an upsert writer waiting for a commit).
    Rows(Vec<EncodedRow>),
}

/// A parsed transaction id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TransactionId<'a> {
    pub prefix: &'a str,
    pub subtask: u32,
    pub checkpoint: u64,
    pub run: &'a str,
}

impl<'a> TransactionId<'a> {
    /// The id's text.
    pub fn format(prefix: &str, subtask: u32, checkpoint: u64, run: &str) -> String {
        format!("{prefix}:{subtask}:{checkpoint}:{run}")
    }

    /// Parses an id made by [`Self::format`]; `None` for any other id.
    pub fn parse(gid: &'a str) -> Option<Self> {
        let mut parts = gid.rsplitn(4, ':');
        let run = parts.next()?;
        let checkpoint = parts.next()?.parse().ok()?;
        let subtask = parts.next()?.parse().ok()?;
        let prefix = parts.next()?;
        Some(TransactionId {
            prefix,
            subtask,
            checkpoint,
            run,
        })
    }
}

/// The longest transaction id PostgreSQL takes is 199 bytes; the subtask, checkpoint and run
/// parts need at most 59.
pub(crate) const MAX_PREFIX_LEN: usize = 128;

pub(crate) struct ExactlyOnceWriter<T> {
    target: Target,
    encoder: RowEncoder<T>,
    conn: Connection,
    prefix: String,
    subtask: u32,
    run: String,
    clock: weir_api::sink::ProcessingTimeService,
    buffer: RowBuffer,
    /// Upsert: hold rows while a prepared transaction of this writer is not committed.
    hold_while_prepared: bool,
    /// A transaction is open on the connection.
    open: bool,
    /// Prepared, not yet committed, in preparation order.
    prepared: Vec<(String, u64)>,
}

impl<T> ExactlyOnceWriter<T> {
    /// A writer that first resolves what earlier attempts left (see the module docs).
    pub fn start(
        target: Target,
        encoder: RowEncoder<T>,
        mut conn: Connection,
        prefix: String,
        ctx: &SinkContext,
    ) -> Result<Self, ConnectorError> {
        let prepared_max = conn.query_strings(
            "SELECT current_setting('max_prepared_transactions')",
            "read max_prepared_transactions",
        )?;
        if prepared_max.first().map(String::as_str) == Some("0") {
            return Err(ConnectorError::Config {
                connector: "postgres sink",
                message: "exactly-once needs PREPARE TRANSACTION, which the server refuses: set \
                          max_prepared_transactions above 0 (at least the sink's parallelism) \
                          in postgresql.conf and restart it"
                    .into(),
            });
        }
        let mut buffer = RowBuffer::new(encoder.key_columns());
        let mut restored = Vec::new();
        for bytes in ctx.restored_state.iter().flatten() {
            let entry: StateEntry =
                bincode::deserialize(bytes).map_err(|e| ConnectorError::Config {
                    connector: "postgres sink",
                    message: format!("unreadable state in the checkpoint: {e}"),
                })?;
            match entry {
                StateEntry::Prepared { gid, .. } => restored.push(gid),
                StateEntry::Rows(rows) => {
                    for r in rows {
                        buffer.push(r, ctx.processing_time.now());
                    }
                }
            }
        }
        for gid in &restored {
            finish_prepared(&mut conn, gid, true)?;
        }
        let leftovers = conn.query_strings(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            "list prepared transactions",
        )?;
        let after = ctx.restored_checkpoint_id;
        for gid in leftovers {
            let Some(id) = TransactionId::parse(&gid) else {
                continue;
            };
            let mine =
                id.subtask == ctx.subtask || (ctx.subtask == 0 && id.subtask >= ctx.parallelism);
            let later = after.is_none_or(|r| id.checkpoint > r);
            if id.prefix == prefix && mine && later && !restored.contains(&gid) {
                tracing::info!(transaction = %gid, "postgres sink: rolling back a transaction a failed attempt prepared");
                finish_prepared(&mut conn, &gid, false)?;
            }
        }
        let run = format!(
            "{:016x}",
            RandomState::new().hash_one((std::time::SystemTime::now(), ctx.subtask))
        );
        Ok(ExactlyOnceWriter {
            hold_while_prepared: !encoder.key_columns().is_empty(),
            target,
            encoder,
            conn,
            prefix,
            subtask: ctx.subtask,
            run,
            clock: ctx.processing_time.clone(),
            buffer,
            open: false,
            prepared: Vec::new(),
        })
    }

    fn holding(&self) -> bool {
        self.hold_while_prepared && !self.prepared.is_empty()
    }

    /// Writes the buffer into the open transaction (opening one if needed).
    fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if !self.open {
            self.conn.execute("BEGIN", "begin a transaction")?;
            self.open = true;
        }
        self.conn.insert(self.buffer.rows())?;
        self.buffer.clear();
        Ok(())
    }

    /// Prepares the open transaction for `checkpoint`.
    fn prepare(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        if !self.holding() {
            self.flush()?;
        }
        if !self.open {
            return Ok(());
        }
        let gid = TransactionId::format(&self.prefix, self.subtask, checkpoint, &self.run);
        self.conn.execute(
            &format!("PREPARE TRANSACTION {}", quote_literal(&gid)),
            &format!("prepare transaction {gid}"),
        )?;
        self.open = false;
        self.prepared.push((gid, checkpoint));
        Ok(())
    }

    /// Commits what was prepared for checkpoints up to `upto`, then writes rows held
    /// meanwhile if nothing prepared is left.
    fn commit(&mut self, upto: u64) -> Result<(), ConnectorError> {
        let mut keep = Vec::new();
        for (gid, checkpoint) in std::mem::take(&mut self.prepared) {
            if checkpoint <= upto {
                finish_prepared(&mut self.conn, &gid, true)?;
            } else {
                keep.push((gid, checkpoint));
            }
        }
        self.prepared = keep;
        if !self.holding() && self.buffer.len() >= self.target.batch_size {
            self.flush()?;
        }
        Ok(())
    }
}

/// Commits (or rolls back) a prepared transaction; one PostgreSQL no longer knows was
/// resolved before and is left alone. Transient failures are retried once on a new
/// connection.
fn finish_prepared(conn: &mut Connection, gid: &str, commit: bool) -> Result<(), ConnectorError> {
    let verb = if commit {
        "COMMIT PREPARED"
    } else {
        "ROLLBACK PREPARED"
    };
    let sql = format!("{verb} {}", quote_literal(gid));
    match conn.client().batch_execute(&sql) {
        Ok(()) => Ok(()),
        Err(e) if is_unknown_transaction(&e) => {
            tracing::debug!(transaction = %gid, "postgres sink: transaction resolved before");
            Ok(())
        }
        Err(e) => Err(conn.error(&format!("{} transaction {gid}", verb.to_lowercase()), &e)),
    }
}

impl<T: Send> SinkWriter<T> for ExactlyOnceWriter<T> {
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        let row = self.encoder.encode(&value)?;
        self.buffer.push(row, self.clock.now());
        if self.buffer.len() >= self.target.batch_size && !self.holding() {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        Ok(self.prepare(u64::MAX)?)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        self.prepare(checkpoint_id)?;
        let mut state = Vec::new();
        for (gid, checkpoint) in &self.prepared {
            state.push(StateEntry::Prepared {
                gid: gid.clone(),
                checkpoint: *checkpoint,
            });
        }
        for rows in self.buffer.rows().chunks(ROWS_PER_STATE_ENTRY) {
            state.push(StateEntry::Rows(rows.to_vec()));
        }
        state
            .iter()
            .map(|e| bincode::serialize(e).map_err(|e| e.to_string().into()))
            .collect()
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        match notice {
            CheckpointNotice::Complete(id) => self.commit(id)?,
            // Prepared transactions stay: the next checkpoint carries and commits them.
            CheckpointNotice::Aborted(_) => {}
            CheckpointNotice::Final => {
                self.commit(u64::MAX)?;
                // Rows held at the end of input: nothing is replayed any more, so they are
                // written and committed directly.
                if !self.buffer.is_empty() || self.open {
                    self.flush()?;
                    self.conn.execute("COMMIT", "commit the last rows")?;
                    self.open = false;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_round_trip_even_with_colons_in_the_prefix() {
        let gid = TransactionId::format("orders:eu", 3, u64::MAX, "00ff");
        assert_eq!(
            TransactionId::parse(&gid),
            Some(TransactionId {
                prefix: "orders:eu",
                subtask: 3,
                checkpoint: u64::MAX,
                run: "00ff"
            })
        );
        assert!(gid.len() <= MAX_PREFIX_LEN + 59 && gid.len() < 200);
        assert_eq!(TransactionId::parse("someone-else's"), None);
        assert_eq!(TransactionId::parse("a:b:c:d"), None);
    }
}
