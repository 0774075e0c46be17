//! The element types a DataStream can carry, and their type-erased operations.

use crate::exchange::WriterSetup;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use weir_core::PartitionerKind;
use weir_runtime::head::{InputChainHead, OneInputHead};
use weir_runtime::operator::{Discard, FanOut, Output, SideOutputSlot, TypedSideOutput};
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::{Result, RuntimeError};

/// What a stream element must be: cloneable (fan-out), sendable between task threads, and
/// serde-serialisable (exchange between tasks). Implemented for every such type.
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

/// A `Box<dyn Output<T>>` with `T` erased, as passed between graph nodes while a chain is
/// assembled.
pub(crate) type ErasedOutput = Box<dyn Any + Send>;

/// Erases the element type of an output.
pub(crate) fn erase<T: 'static>(o: Box<dyn Output<T>>) -> ErasedOutput {
    Box::new(o)
}

/// Recovers a typed output; a mismatch is a bug in graph assembly, reported as an error.
pub(crate) fn unerase<T: 'static>(o: ErasedOutput) -> Result<Box<dyn Output<T>>> {
    o.downcast::<Box<dyn Output<T>>>().map(|b| *b).map_err(|_| {
        RuntimeError::Other(format!(
            "internal error: chain output is not of element type {}",
            std::any::type_name::<T>()
        ))
    })
}

/// Builds the input head of a chain: its chain, channel count, barrier alignment mode and
/// task name.
pub(crate) type InputHeadBuilder =
    fn(ErasedOutput, usize, weir_core::BarrierAlignment, String) -> Result<Box<dyn InputChainHead>>;

/// Operations on outputs of one element type, with the type erased.
#[derive(Clone, Copy)]
pub(crate) struct TypeOps {
    /// Combines several outputs into one (fan-out).
    pub fanout: fn(Vec<ErasedOutput>) -> Result<ErasedOutput>,
    /// An output that drops everything.
    pub discard: fn() -> ErasedOutput,
    /// Wraps outputs as a side output slot.
    pub side_slot: fn(ErasedOutput) -> Result<Box<dyn SideOutputSlot>>,
    /// A network input head that decodes this type into `chain`.
    pub input_head: InputHeadBuilder,
    /// A network writer for a partitioner that needs no user code.
    pub plain_writer: fn(PartitionerKind, WriterSetup) -> Result<ErasedOutput>,
}

impl TypeOps {
    /// The operations for `T`.
    pub fn of<T: Data>() -> TypeOps {
        TypeOps {
            fanout: |outs| {
                let mut typed = outs
                    .into_iter()
                    .map(unerase::<T>)
                    .collect::<Result<Vec<_>>>()?;
                Ok(if typed.len() == 1 {
                    erase::<T>(typed.remove(0))
                } else {
                    erase::<T>(Box::new(FanOut::new(typed)))
                })
            },
            discard: || erase::<T>(Box::new(Discard::<T>::default())),
            side_slot: |o| Ok(Box::new(TypedSideOutput::<T>(unerase::<T>(o)?))),
            input_head: |chain, channels, mode, task| {
                Ok(Box::new(OneInputHead::new(
                    channels,
                    mode,
                    BincodeSerializer::<T>::new(),
                    unerase::<T>(chain)?,
                    task,
                )))
            },
            plain_writer: crate::exchange::plain_writer::<T>,
        }
    }
}
