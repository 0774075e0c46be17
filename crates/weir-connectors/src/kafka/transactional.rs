//! The exactly-once Kafka writer: one Kafka transaction per checkpoint interval,
//! committed when the checkpoint after it completes (Flink's `KafkaSink` with
//! `DeliveryGuarantee.EXACTLY_ONCE`).
//!
//! **Ids.** The transaction that a checkpoint's barrier prepares has the id
//! `<prefix>-<subtask>-<n>`, where `n` is one more than the id of the checkpoint before it.
//! A producer is made per transaction (one producer has one transaction at a time, and
//! the prepared one waits for its commit while the next one fills).
//!
//! **Protocol.** Records go into the open transaction. On the barrier of checkpoint `c`
//! the writer flushes it (every record acknowledged) and keeps it, prepared, with its id
//! in the checkpoint. When checkpoint `c` completes, every transaction prepared up to `c`
//! is committed; transactions of aborted checkpoints wait for the next completed one.
//! At the end of the job every transaction is committed.
//!
//! **Restore.** Transactions in the restored checkpoint must be committed. librdkafka
//! cannot resume another producer's transaction (Flink's Java client does so by setting
//! the producer id and epoch by reflection), so a restored writer commits them through
//! the producers that prepared them: a writer that fails hands its prepared producers to
//! a registry of the process, where the restored writer finds them. **Departure from
//! Flink:** when the process itself died between the completion of a checkpoint and the
//! commit of its transactions, that commit cannot be made; the restored writer aborts
//! the transaction (by fencing its id) and logs an error naming it, so the loss is
//! visible. Transactions of the failed attempt that were still open (ids after the
//! restored checkpoint) are aborted by fencing their ids, for the writer's own subtask
//! index and, after a scale-down, for indexes the job no longer has; ids further ahead
//! than [`LINGER_WINDOW`] are left to the brokers' `transaction.timeout.ms`.

use super::producer::SinkProducer;
use super::sink::{SinkConfig, SERVE_EVERY};
use crate::ConnectorError;
use rdkafka::producer::Producer;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing::{error, info, warn};
use weir_api::functions::UserError;
use weir_api::sink::{CheckpointNotice, SinkContext, SinkWriter};

/// How far past the restored checkpoint a restored writer fences ids of the attempt
/// before it.
pub const LINGER_WINDOW: u64 = 4;

/// How long a transaction call to the brokers may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// A writer's part of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct WriterState {
    subtask: u32,
    /// Ids of the transactions prepared and not committed when the checkpoint was taken.
    prepared: Vec<String>,
}

/// Producers of prepared transactions whose writer went away (a failed task), by
/// transactional id, for the restored writer to commit; and the ids committed lately,
/// so that a restored writer knows a restored id needs nothing more.
struct Registry {
    prepared: HashMap<String, SinkProducer>,
    committed: VecDeque<String>,
}

/// Ids remembered as committed.
const COMMITTED_KEPT: usize = 4096;

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Mutex::new(Registry {
                prepared: HashMap::new(),
                committed: VecDeque::new(),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn remember_committed(id: String) {
    let mut r = registry();
    if r.committed.len() == COMMITTED_KEPT {
        r.committed.pop_front();
    }
    r.committed.push_back(id);
}

/// The transactional id of transaction `n` of subtask `subtask`.
pub(crate) fn transactional_id(prefix: &str, subtask: u32, n: u64) -> String {
    format!("{prefix}-{subtask}-{n}")
}

/// A prepared transaction waiting for its checkpoint.
struct Prepared {
    checkpoint: u64,
    id: String,
    producer: SinkProducer,
}

/// The exactly-once writer of one sink subtask.
pub(crate) struct TransactionalWriter<T> {
    config: Arc<SinkConfig<T>>,
    subtask: u32,
    /// The open transaction: its id and producer.
    open: Option<(String, SinkProducer)>,
    /// The number of the next transaction to open.
    next: u64,
    prepared: Vec<Prepared>,
    sent: u64,
}

impl<T> TransactionalWriter<T> {
    /// Resolves the restored transactions, fences lingering ones, and gets ready.
    pub(crate) fn start(
        config: Arc<SinkConfig<T>>,
        ctx: &SinkContext,
    ) -> Result<Self, ConnectorError> {
        let restored_from = ctx.restored_checkpoint_id.unwrap_or(0);
        let writer = TransactionalWriter {
            subtask: ctx.subtask,
            open: None,
            next: restored_from + 1,
            prepared: Vec::new(),
            sent: 0,
            config,
        };
        for bytes in ctx.restored_state.as_deref().unwrap_or_default() {
            let state: WriterState =
                bincode::deserialize(bytes).map_err(|e| ConnectorError::Config {
                    connector: "kafka sink",
                    message: format!("cannot read the checkpointed transactions: {e}"),
                })?;
            for id in &state.prepared {
                writer.commit_restored(id)?;
            }
            if state.subtask >= ctx.parallelism {
                writer.fence_lingering(state.subtask, restored_from)?;
            }
        }
        writer.fence_lingering(ctx.subtask, restored_from)?;
        Ok(writer)
    }

    /// A producer for transaction `id`, initialised: this fences every earlier producer
    /// of the id and aborts its open transaction.
    fn producer_for(&self, id: &str) -> Result<SinkProducer, ConnectorError> {
        let mut properties = self.config.properties.clone();
        properties.push(("transactional.id".into(), id.into()));
        let p = SinkProducer::new(&properties)?;
        p.producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| ConnectorError::kafka(format!("initialise transactions for '{id}'"), e))?;
        Ok(p)
    }

    /// Commits restored transaction `id` through the producer that prepared it.
    fn commit_restored(&self, id: &str) -> Result<(), ConnectorError> {
        let found = registry().prepared.remove(id);
        if let Some(p) = found {
            p.producer.commit_transaction(TXN_TIMEOUT).map_err(|e| {
                ConnectorError::kafka(format!("commit restored transaction '{id}'"), e)
            })?;
            info!(id, "committed a restored kafka transaction");
            remember_committed(id.to_string());
            return Ok(());
        }
        if registry().committed.iter().any(|c| c == id) {
            return Ok(());
        }
        error!(
            id,
            "kafka sink: the restored transaction was prepared by a process that is gone; if that process failed before committing it, its records are lost. It is aborted now."
        );
        self.producer_for(id).map(drop)
    }

    /// Fences ids `n` of `subtask` just after `restored_from`, so open transactions of the
    /// attempt before are aborted; prepared producers of those ids that this process
    /// still holds are aborted too.
    fn fence_lingering(&self, subtask: u32, restored_from: u64) -> Result<(), ConnectorError> {
        for n in restored_from + 1..=restored_from + LINGER_WINDOW {
            let id = transactional_id(&self.config.transactional_id_prefix, subtask, n);
            let held = registry().prepared.remove(&id);
            if let Some(p) = held {
                let _ = p.producer.abort_transaction(TXN_TIMEOUT);
            }
            self.producer_for(&id)?;
        }
        Ok(())
    }

    /// The open transaction, opened if there is none.
    fn open(&mut self) -> Result<&SinkProducer, ConnectorError> {
        if self.open.is_none() {
            let id = transactional_id(
                &self.config.transactional_id_prefix,
                self.subtask,
                self.next,
            );
            let p = self.producer_for(&id)?;
            p.producer
                .begin_transaction()
                .map_err(|e| ConnectorError::kafka(format!("begin transaction '{id}'"), e))?;
            self.open = Some((id, p));
        }
        Ok(&self.open.as_ref().expect("opened above").1)
    }

    /// Flushes the open transaction and keeps it, prepared, for `checkpoint`.
    fn prepare(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        if let Some((id, producer)) = self.open.take() {
            producer.flush()?;
            self.prepared.push(Prepared {
                checkpoint,
                id,
                producer,
            });
        }
        Ok(())
    }

    /// Commits the prepared transactions of checkpoints up to `checkpoint`, oldest first.
    fn commit_up_to(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        while self
            .prepared
            .first()
            .is_some_and(|p| p.checkpoint <= checkpoint)
        {
            let p = self.prepared.remove(0);
            p.producer
                .producer
                .commit_transaction(TXN_TIMEOUT)
                .map_err(|e| ConnectorError::kafka(format!("commit transaction '{}'", p.id), e))?;
            remember_committed(p.id);
        }
        Ok(())
    }
}

impl<T: Send + 'static> SinkWriter<T> for TransactionalWriter<T> {
    fn write(&mut self, value: T, timestamp: Option<i64>) -> Result<(), UserError> {
        let record = self.config.serializer.serialize(&value, timestamp)?;
        let producer = self.open()?;
        producer.send(&record)?;
        self.sent += 1;
        if self.sent.is_multiple_of(SERVE_EVERY) {
            let producer = &self.open.as_ref().expect("open").1;
            producer.serve();
            producer.check()?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, UserError> {
        self.prepare(checkpoint_id)?;
        self.next = checkpoint_id + 1;
        let state = WriterState {
            subtask: self.subtask,
            prepared: self.prepared.iter().map(|p| p.id.clone()).collect(),
        };
        Ok(vec![bincode::serialize(&state)?])
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<(), UserError> {
        match notice {
            CheckpointNotice::Complete(id) => self.commit_up_to(id)?,
            // What it prepared is committed with the next completed checkpoint.
            CheckpointNotice::Aborted(_) => {}
            CheckpointNotice::Final => {
                self.prepare(u64::MAX)?;
                self.commit_up_to(u64::MAX)?;
            }
        }
        Ok(())
    }
}

impl<T> Drop for TransactionalWriter<T> {
    fn drop(&mut self) {
        if let Some((id, p)) = self.open.take() {
            if let Err(e) = p.producer.abort_transaction(TXN_TIMEOUT) {
                warn!(id, error = %e, "kafka sink: cannot abort the open transaction");
            }
        }
        if !self.prepared.is_empty() {
            let mut r = registry();
            for p in self.prepared.drain(..) {
                r.prepared.insert(p.id, p.producer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_prefix_subtask_and_number() {
        assert_eq!(transactional_id("orders", 2, 17), "orders-2-17");
    }

    #[test]
    fn committed_ids_are_remembered_up_to_a_bound() {
        for i in 0..COMMITTED_KEPT + 10 {
            remember_committed(format!("t-{i}"));
        }
        let r = registry();
        assert_eq!(r.committed.len(), COMMITTED_KEPT);
        assert!(!r.committed.iter().any(|c| c == "t-0"));
        assert!(r
            .committed
            .iter()
            .any(|c| c == &format!("t-{}", COMMITTED_KEPT + 9)));
    }
}
