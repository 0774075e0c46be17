//! The StreamGraph: one node per transformation, with the code that builds its operator.

use crate::exchange::WriterFactory;
use crate::types::{ErasedOutput, TypeOps};
use std::sync::Arc;
use weir_core::{NodeId, PartitionerKind};
use weir_runtime::head::{InputChainHead, SourceChainHead};
use weir_runtime::operator::{OperatorInfo, SideOutputSlot};
use weir_runtime::Result;

/// Whether an operator may be chained to its neighbours (Flink's `ChainingStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainingStrategy {
    /// Chains to the operator before it and the ones after it.
    Always,
    /// Starts a new chain; later operators may chain to it.
    Head,
    /// Never chained.
    Never,
}

/// The role of a node, for the execution plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Produces records.
    Source,
    /// Transforms records.
    Operator,
    /// Consumes records.
    Sink,
}

/// Side outputs handed to an operator builder: tag id and its consumers.
pub(crate) type Sides = Vec<(String, Box<dyn SideOutputSlot>)>;

/// Builds a source subtask in front of its outputs.
pub(crate) type SourceBuilder = Arc<
    dyn Fn(&OperatorInfo, ErasedOutput, Sides) -> Result<Box<dyn SourceChainHead>> + Send + Sync,
>;
/// Builds a one-input operator subtask; returns its input (a `Box<dyn Output<I>>`, erased).
pub(crate) type OneInputBuilder =
    Arc<dyn Fn(&OperatorInfo, ErasedOutput, Sides) -> Result<ErasedOutput> + Send + Sync>;
/// Builds a two-input operator subtask as a task head, given which input each channel feeds.
pub(crate) type TwoInputBuilder = Arc<
    dyn Fn(&OperatorInfo, ErasedOutput, Sides, Vec<u8>, String) -> Result<Box<dyn InputChainHead>>
        + Send
        + Sync,
>;

/// The code of a node.
#[derive(Clone)]
pub(crate) enum NodeCode {
    Source(SourceBuilder),
    OneInput(OneInputBuilder),
    TwoInput(TwoInputBuilder),
}

/// One transformation.
#[derive(Clone)]
pub struct StreamNode {
    /// Node id, dense from 0 in creation order (a topological order).
    pub id: NodeId,
    /// Operator name.
    pub name: String,
    /// User-assigned stable id.
    pub uid: Option<String>,
    /// Parallelism as set by the user (validated when the job graph is built).
    pub parallelism: Option<i64>,
    /// Max parallelism as set by the user.
    pub max_parallelism: Option<i64>,
    /// Slot sharing group as set by the user.
    pub slot_sharing_group: Option<String>,
    /// Chaining strategy.
    pub chaining: ChainingStrategy,
    /// Role.
    pub kind: NodeKind,
    /// True for sources that can only run with parallelism 1.
    pub non_parallel: bool,
    pub(crate) code: NodeCode,
    pub(crate) out_type: TypeOps,
    pub(crate) in_type: Option<TypeOps>,
}

/// A connection between two nodes.
#[derive(Clone)]
pub struct StreamEdge {
    /// Producer.
    pub source: NodeId,
    /// Consumer.
    pub target: NodeId,
    /// Partitioner chosen by the user; `None` means forward if parallelisms match, else
    /// rebalance.
    pub partitioner: Option<PartitionerKind>,
    /// Which input of the consumer (0 or 1).
    pub input_index: u8,
    /// The side output carried, if not the main output.
    pub side_output: Option<String>,
    pub(crate) ty: TypeOps,
    pub(crate) writer: Option<WriterFactory>,
}
