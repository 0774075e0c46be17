//! The exactly-once writer: PostgreSQL's two-phase commit, driven by checkpoints (what
//! Flink's `JdbcSink.exactlyOnceSink` does with XA transactions).
//!
//! - Rows go into one open transaction per subtask (`BEGIN` at the first row after a
//!   barrier), in batches as the buffer fills.
//! - On a checkpoint barrier the transaction is prepared (`PREPARE TRANSACTION gid`): its
//!   rows are durable on the server but invisible. The prepared transaction ids go into the
//!   checkpoint.
//! - When the checkpoint completes, its transactions (and those of earlier checkpoints that
//!   were aborted) are committed (`COMMIT PREPARED gid`).
//! - On restore, the writer first commits the transactions of the checkpoint it restores
//!   from (that checkpoint completed; its notice may not have arrived before the failure),
//!   then rolls back what failed attempts prepared for later checkpoints, which the
//!   replayed input writes again, and only then writes the rows the checkpoint held (see
//!   *Locks*), so they never wait for a leftover's row locks.
//! - When the input ends, the open transaction stays open: a checkpoint taken after the end
//!   (finished tasks still take part) prepares it, and the job's final notice commits
//!   everything, so every prepared transaction belongs to a numbered checkpoint.
//!
//! A transaction id is `<prefix>:<subtask>:<checkpoint>:<run>`. `<run>` is random per
//! writer instance, so two attempts never reuse an id. Which leftovers a subtask rolls back
//! on start: those of its own subtask index, and subtask 0 also those of indexes the job no
//! longer has (after a rescale), each only if prepared for a checkpoint after the one
//! restored (all of them on a fresh start). Nothing another subtask may still commit is
//! touched: every transaction in the restored checkpoint was prepared for it or an earlier
//! one. A transaction id that is committed again is a no-op: PostgreSQL no longer knows it,
//! which is the outcome wanted, so commits can be retried.
//!
//! Fencing: a writer's connection carries an `application_name` made of a hash of its prefix
//! and its subtask index, and a starting writer ends the sessions of earlier attempts of its
//! index (subtask 0 also those of indexes the job no longer has) and waits until they are
//! gone. A thread of a failed attempt that has not stopped yet (it may wait for a lock) then
//! loses its connection with its open transaction before the leftovers are resolved. Not
//! covered: a thread of a failed attempt that is itself still starting (connecting, at most
//! the connect timeout of 10 s by default, or resolving its own restore) when the next
//! attempt starts; it could end the newer sessions and resolve against an older checkpoint.
//! Telling attempts apart needs the attempt number in the sink's context.
//!
//! Locks: a prepared transaction keeps its row locks until it commits, and the commit runs
//! on the task thread when the checkpoint's notice arrives. An upsert that wrote key K
//! before a barrier and writes K again after it would wait for its own prepared transaction,
//! which the waiting thread is the one to commit. So an upsert writer holds its rows (one
//! per key) while any transaction it prepared is not committed yet, and writes them once
//! the commit is through. If a barrier comes while rows are held (the previous checkpoint's
//! notice is late, or the checkpoint was aborted), they go into that checkpoint's state, in
//! the same state entry as the writer's prepared transactions. A restored writer commits an
//! entry's transactions, and after the leftovers are rolled back writes and commits the held
//! rows of every entry, so a key's older value never lands after its newer one. After a
//! rescale the held rows are written by the subtask that got the entry, which may not be the
//! one the key is routed to now: if that one already writes the key, the restore write waits
//! for it, for at most 5 s (its own lock timeout), and the task fails and restores again
//! instead of waiting for a commit that needs it.
//!
//! Appends take no row locks that later appends wait for, and are written at once. Subtasks
//! that upsert the same keys can still wait for each other's prepared transactions: partition
//! the sink's input by the conflict key (`key_by`), as Flink's upsert sinks do; the sink's
//! lock timeout turns a wait that cannot end into a failure that says so, and the restart
//! resolves it. Rows whose keys are equal in SQL but not byte for byte (`numeric` 1.0 and
//! 1.00, a case-insensitive collation) are two keys to the buffer and one to the table: an
//! upsert batch holding both fails ("cannot affect row a second time").

use super::buffer::RowBuffer;
use super::connection::{is_unknown_transaction, Connection, Target};
use super::row::EncodedRow;
use super::statement::quote_literal;
use super::{config_error, RowEncoder};
use crate::error::ConnectorError;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use weir_api::functions::UserError;
use weir_api::sink::{CheckpointNotice, SinkContext, SinkWriter};

/// What a writer keeps in a checkpoint: one entry, so that an old subtask's transactions
/// and held rows are restored together, by one new subtask, in order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WriterState {
    /// Transactions prepared and not known to be committed, oldest first, with the
    /// checkpoint each was prepared for.
    prepared: Vec<(String, u64)>,
    /// Rows held at the barrier (an upsert writer waiting for a commit).
    rows: Vec<EncodedRow>,
    /// The columns' type OIDs the rows are encoded for.
    types: Vec<u32>,
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
/// parts with their separators need at most 10 + 20 + 16 + 3 = 49.
pub(crate) const MAX_PREFIX_LEN: usize = 128;

/// The `application_name` of a writer's sessions: PostgreSQL keeps 63 bytes of it, so the
/// prefix goes in as a 64-bit hash that does not change between builds.
pub(crate) fn session_name(prefix: &str, subtask: u32) -> String {
    format!(
        "weir-sink-{:016x}-{subtask}",
        weir_core::key_group::stable_hash(prefix)
    )
}

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

fn state_error(target: &Target, subtask: u32, message: String) -> ConnectorError {
    config_error(format!(
        "table {}, subtask {subtask}: {message}",
        target.table
    ))
}

impl<T> ExactlyOnceWriter<T> {
    /// A writer that first fences and resolves what earlier attempts left (see the module
    /// docs).
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
            return Err(config_error(
                "exactly-once needs PREPARE TRANSACTION, which the server refuses: set \
                 max_prepared_transactions above 0 in postgresql.conf and restart it (each \
                 exactly-once sink subtask keeps one prepared transaction per checkpoint that \
                 has not completed yet, usually one)"
                    .into(),
            ));
        }
        fence(&mut conn, &prefix, ctx)?;
        let (restored, held) = restore(&target, &mut conn, &encoder, ctx)?;
        roll_back_leftovers(&mut conn, &prefix, ctx, &restored)?;
        write_held(&mut conn, &held)?;
        let run = format!(
            "{:016x}",
            RandomState::new().hash_one((std::time::SystemTime::now(), ctx.subtask))
        );
        Ok(ExactlyOnceWriter {
            hold_while_prepared: !encoder.key_columns().is_empty(),
            buffer: RowBuffer::new(encoder.key_columns()),
            target,
            encoder,
            conn,
            prefix,
            subtask: ctx.subtask,
            run,
            clock: ctx.processing_time.clone(),
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
    /// meanwhile if nothing prepared is left. A failed commit fails the task; the
    /// transactions not committed yet are in the checkpoint the job restores from.
    fn commit(&mut self, upto: u64) -> Result<(), ConnectorError> {
        while let Some((gid, checkpoint)) = self.prepared.first() {
            if *checkpoint > upto {
                break;
            }
            finish_prepared(&mut self.conn, gid, true)?;
            self.prepared.remove(0);
        }
        if !self.holding() && self.buffer.len() >= self.target.batch_size {
            self.flush()?;
        }
        Ok(())
    }
}

/// Ends the sessions of earlier attempts of this writer's subtask index (and, in subtask 0,
/// of indexes the job no longer has).
fn fence(conn: &mut Connection, prefix: &str, ctx: &SinkContext) -> Result<(), ConnectorError> {
    let mine = session_name(prefix, ctx.subtask);
    conn.execute(
        &format!("SET application_name = {}", quote_literal(&mine)),
        "name the session",
    )?;
    let stem = session_name(prefix, 0);
    let stem = &stem[..stem.len() - 1];
    let sessions = conn.query_strings(
        "SELECT pid::text || ' ' || application_name FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND datname = current_database()",
        "list the database's sessions",
    )?;
    for s in sessions {
        let Some((pid, name)) = s.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        let index = name.strip_prefix(stem).and_then(|i| i.parse::<u32>().ok());
        let ours =
            index.is_some_and(|i| i == ctx.subtask || (ctx.subtask == 0 && i >= ctx.parallelism));
        if ours {
            tracing::info!(session = %name, pid, "postgres sink: ending a session of a failed attempt");
            end_session(conn, pid)?;
        }
    }
    Ok(())
}

/// Commits the restored transactions, entry by entry (one entry per writer of the
/// checkpoint). Returns their ids and the rows the entries held, in entry order.
fn restore<T>(
    target: &Target,
    conn: &mut Connection,
    encoder: &RowEncoder<T>,
    ctx: &SinkContext,
) -> Result<(Vec<String>, Vec<RowBuffer>), ConnectorError> {
    let types: Vec<u32> = conn.types().iter().map(|t| t.oid()).collect();
    let mut ids = Vec::new();
    let mut held_rows = Vec::new();
    for bytes in ctx.restored_state.iter().flatten() {
        let state: WriterState = bincode::deserialize(bytes).map_err(|e| {
            state_error(
                target,
                ctx.subtask,
                format!("unreadable state in the checkpoint: {e}"),
            )
        })?;
        for (gid, _) in &state.prepared {
            finish_prepared(conn, gid, true)?;
            ids.push(gid.clone());
        }
        if state.rows.is_empty() {
            continue;
        }
        if state.types != types {
            return Err(state_error(
                target,
                ctx.subtask,
                format!(
                    "the checkpoint holds rows for columns of types {:?} (OIDs); the table's \
                     columns ({}) now have {types:?}",
                    state.types,
                    target.columns.join(", ")
                ),
            ));
        }
        let mut held = RowBuffer::new(encoder.key_columns());
        for r in state.rows {
            held.push(r, ctx.processing_time.now());
        }
        held_rows.push(held);
    }
    Ok((ids, held_rows))
}

/// Writes and commits rows a restored checkpoint held, waiting at most 5 s for a row lock
/// (see the module docs on rescaling).
fn write_held(conn: &mut Connection, held: &[RowBuffer]) -> Result<(), ConnectorError> {
    held.iter().try_for_each(|rows| {
        conn.insert_committed_within(rows.rows(), Some(std::time::Duration::from_secs(5)))
    })
}

/// Ends session `pid` and waits until it is gone (a session in the middle of a statement
/// ends when it next checks for interrupts), for at most 10 s.
fn end_session(conn: &mut Connection, pid: i32) -> Result<(), ConnectorError> {
    conn.query_strings(
        &format!("SELECT pg_terminate_backend({pid})::text"),
        "end a session of a failed attempt",
    )?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = conn.query_strings(
            &format!("SELECT count(*)::text FROM pg_stat_activity WHERE pid = {pid}"),
            "wait for a session of a failed attempt to end",
        )?;
        if left.first().map(String::as_str) == Some("0") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(config_error(format!(
                "session {pid} of a failed attempt of this sink did not end within 10 s \
                 (ending it needs the same role, or membership in pg_signal_backend)"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Rolls back what failed attempts prepared after the restored checkpoint (see the module
/// docs for which leftovers are this subtask's).
fn roll_back_leftovers(
    conn: &mut Connection,
    prefix: &str,
    ctx: &SinkContext,
    restored: &[String],
) -> Result<(), ConnectorError> {
    let leftovers = conn.query_strings(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
        "list prepared transactions",
    )?;
    for gid in leftovers {
        let Some(id) = TransactionId::parse(&gid) else {
            continue;
        };
        let mine = id.subtask == ctx.subtask || (ctx.subtask == 0 && id.subtask >= ctx.parallelism);
        let later = ctx.restored_checkpoint_id.is_none_or(|r| id.checkpoint > r);
        if id.prefix == prefix && mine && later && !restored.contains(&gid) {
            tracing::info!(transaction = %gid, "postgres sink: rolling back a transaction a failed attempt prepared");
            finish_prepared(conn, &gid, false)?;
        }
    }
    Ok(())
}

/// Commits (or rolls back) a prepared transaction; one PostgreSQL no longer knows was
/// resolved before (by an earlier attempt, after the checkpoint's notice) and is left alone.
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
            tracing::info!(transaction = %gid, "postgres sink: transaction resolved before");
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

    /// The open transaction stays open: a checkpoint after the end prepares it, the final
    /// notice commits it.
    fn finish(&mut self) -> Result<(), UserError> {
        if !self.holding() {
            self.flush()?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        self.prepare(checkpoint_id)?;
        if self.prepared.is_empty() && self.buffer.is_empty() {
            return Ok(Vec::new());
        }
        let state = WriterState {
            prepared: self.prepared.clone(),
            rows: self.buffer.rows().to_vec(),
            types: self.conn.types().iter().map(|t| t.oid()).collect(),
        };
        let bytes = bincode::serialize(&state).map_err(|e| {
            state_error(
                &self.target,
                self.subtask,
                format!("cannot encode the sink's state: {e}"),
            )
        })?;
        Ok(vec![bytes])
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        match notice {
            CheckpointNotice::Complete(id) => self.commit(id)?,
            // Prepared transactions stay: the next checkpoint carries and commits them.
            CheckpointNotice::Aborted(_) => {}
            CheckpointNotice::Final => {
                self.commit(u64::MAX)?;
                // Nothing is replayed any more: what is left is written and committed
                // directly.
                self.flush()?;
                if self.open {
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
        assert!(
            TransactionId::format(
                &"p".repeat(MAX_PREFIX_LEN),
                u32::MAX,
                u64::MAX,
                "0123456789abcdef"
            )
            .len()
                < 200
        );
        assert_eq!(TransactionId::parse("someone-else's"), None);
        assert_eq!(TransactionId::parse("a:b:c:d"), None);
    }
}
