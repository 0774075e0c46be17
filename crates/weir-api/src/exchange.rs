//! Network writers for the edges of a job, monomorphised per element type and partitioner.

use crate::types::{erase, Data, ErasedOutput, TypeOps};
use std::hash::Hash;
use std::sync::Arc;
use weir_core::PartitionerKind;
use weir_runtime::partitioner::{
    Broadcast, ChannelSelector, CustomSelector, FirstChannel, KeyGroupSelector, RoundRobin, Shuffle,
};
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::writer::{ChannelBuffers, RecordWriter};
use weir_runtime::{Result, RuntimeError};

/// What a writer is built from.
pub(crate) struct WriterSetup {
    pub channels: ChannelBuffers,
    pub subtask: u32,
    pub consumer_max_parallelism: u32,
}

/// A key selector shared by the subtasks of a job.
pub(crate) type KeySelector<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// A user partitioner: key and number of channels to channel.
pub(crate) type PartitionFn<K> = Arc<dyn Fn(&K, usize) -> usize + Send + Sync>;

/// Builds the writer of an edge whose partitioner needs user code (hash, custom).
pub(crate) type WriterFactory = Arc<dyn Fn(WriterSetup) -> Result<ErasedOutput> + Send + Sync>;

fn writer<T: Data, P: ChannelSelector<T> + 'static>(
    setup: WriterSetup,
    selector: P,
) -> ErasedOutput {
    erase::<T>(Box::new(RecordWriter::new(
        setup.channels,
        BincodeSerializer::<T>::new(),
        selector,
    )))
}

/// A writer for partitioners that need no user code.
pub(crate) fn plain_writer<T: Data>(
    kind: PartitionerKind,
    setup: WriterSetup,
) -> Result<ErasedOutput> {
    let subtask = setup.subtask as usize;
    Ok(match kind {
        PartitionerKind::Forward | PartitionerKind::Global => writer::<T, _>(setup, FirstChannel),
        PartitionerKind::Rebalance => writer::<T, _>(setup, RoundRobin::starting_at(subtask)),
        PartitionerKind::Rescale => writer::<T, _>(setup, RoundRobin::starting_at(0)),
        PartitionerKind::Shuffle => writer::<T, _>(setup, Shuffle::new(subtask as u64)),
        PartitionerKind::Broadcast => writer::<T, _>(setup, Broadcast),
        PartitionerKind::Hash | PartitionerKind::Custom => {
            return Err(RuntimeError::Other(format!(
                "internal error: a {kind:?} edge has no key selector"
            )))
        }
    })
}

/// The writer factory of a keyed (hash) edge.
pub(crate) fn hash_writer<T: Data, K: Hash + 'static>(key_of: KeySelector<T, K>) -> WriterFactory {
    Arc::new(move |setup: WriterSetup| {
        let key_of = key_of.clone();
        let maxp = setup.consumer_max_parallelism;
        let sel = KeyGroupSelector::new(move |t: &T| key_of(t), maxp);
        Ok(writer::<T, _>(setup, sel))
    })
}

/// The writer factory of a custom-partitioned edge.
pub(crate) fn custom_writer<T: Data, K: 'static>(
    key_of: KeySelector<T, K>,
    partition: PartitionFn<K>,
) -> WriterFactory {
    Arc::new(move |setup: WriterSetup| {
        let key_of = key_of.clone();
        let partition = partition.clone();
        let sel = CustomSelector::new(move |t: &T| key_of(t), move |k: &K, n| partition(k, n));
        Ok(writer::<T, _>(setup, sel))
    })
}

/// A writer for a plain partitioner, for the element type described by `ty`.
pub(crate) fn plain_writer_for(
    ty: TypeOps,
    kind: PartitionerKind,
    setup: WriterSetup,
) -> Result<ErasedOutput> {
    (ty.plain_writer)(kind, setup)
}
