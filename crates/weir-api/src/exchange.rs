//! Network writers for the edges of a job, monomorphised per element type and partitioner.

use crate::types::{erase, Data, ErasedOutput, TypeOps};
use std::hash::Hash;
use std::sync::Arc;
use weir_core::key_group::key_group_for_key;
use weir_core::PartitionerKind;
use weir_runtime::partitioner::{
    Broadcast, ChannelSelector, CustomSelector, FirstChannel, KeyGroupOfSelector, RoundRobin,
    Shuffle,
};
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::writer::{ChannelBuffers, RecordWriter};
use weir_runtime::{Result, RuntimeError};

/// What a writer is built from.
pub(crate) struct WriterSetup {
    pub channels: ChannelBuffers,
    pub subtask: u32,
    pub consumer_max_parallelism: u32,
    /// The consumers are in this process: records go to them in memory.
    pub in_memory: bool,
}

/// A key selector shared by the subtasks of a job: it makes an owned key, and, when the key
/// is a field of the record (`key_by_ref`), lends it, so that partitioning and state lookups
/// of keys that exist already need no copy of the key.
pub(crate) struct KeySelector<T, K> {
    owned: Arc<dyn Fn(&T) -> K + Send + Sync>,
    by_ref: Option<BorrowFn<T, K>>,
}

type BorrowFn<T, K> = Arc<dyn for<'a> Fn(&'a T) -> &'a K + Send + Sync>;

impl<T, K> Clone for KeySelector<T, K> {
    fn clone(&self) -> Self {
        KeySelector {
            owned: self.owned.clone(),
            by_ref: self.by_ref.clone(),
        }
    }
}

impl<T: 'static, K: 'static> KeySelector<T, K> {
    /// A selector that computes the key.
    pub(crate) fn owned(f: impl Fn(&T) -> K + Send + Sync + 'static) -> Self {
        KeySelector {
            owned: Arc::new(f),
            by_ref: None,
        }
    }

    /// A selector that borrows the key from the record.
    pub(crate) fn by_ref(f: impl for<'a> Fn(&'a T) -> &'a K + Send + Sync + 'static) -> Self
    where
        K: Clone,
    {
        let f: BorrowFn<T, K> = Arc::new(f);
        let g = f.clone();
        KeySelector {
            owned: Arc::new(move |t: &T| g(t).clone()),
            by_ref: Some(f),
        }
    }
}

impl<T, K> KeySelector<T, K> {
    /// The key of `t`, owned.
    #[inline]
    pub(crate) fn key(&self, t: &T) -> K {
        (self.owned)(t)
    }

    /// Calls `f` with the key of `t`: borrowed if the selector can, computed otherwise.
    #[inline]
    pub(crate) fn with_key<R>(&self, t: &T, f: impl FnOnce(&K) -> R) -> R {
        match &self.by_ref {
            Some(b) => f(b(t)),
            None => f(&(self.owned)(t)),
        }
    }
}

/// A user partitioner: key and number of channels to channel.
pub(crate) type PartitionFn<K> = Arc<dyn Fn(&K, usize) -> usize + Send + Sync>;

/// Builds the writer of an edge whose partitioner needs user code (hash, custom).
pub(crate) type WriterFactory = Arc<dyn Fn(WriterSetup) -> Result<ErasedOutput> + Send + Sync>;

fn writer<T: Data, P: ChannelSelector<T> + 'static>(
    setup: WriterSetup,
    selector: P,
) -> ErasedOutput {
    let serializer = BincodeSerializer::<T>::new();
    erase::<T>(if setup.in_memory {
        Box::new(RecordWriter::in_memory(
            setup.channels,
            serializer,
            selector,
        ))
    } else {
        Box::new(RecordWriter::new(setup.channels, serializer, selector))
    })
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
        let sel = KeyGroupOfSelector::new(
            move |t: &T, maxp: u32| key_of.with_key(t, |k| key_group_for_key(k, maxp)),
            maxp,
        );
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
        let sel = CustomSelector::new(move |t: &T| key_of.key(t), move |k: &K, n| partition(k, n));
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
