//! What a TaskManager needs to turn a JobGraph vertex into a running task: the job's code
//! ([`JobCode`], implemented by the API layer) and the task's wiring ([`TaskIo`]).

use crate::buffer::BufferPool;
use crate::error::Result;
use crate::inbox::ChannelSender;
use crate::task::ChainHead;
use weir_core::{JobGraph, VertexId};

/// One input channel of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputChannelInfo {
    /// Index of the JobGraph edge the channel belongs to.
    pub edge: usize,
    /// Which input of the head operator (0 or 1) the edge feeds.
    pub input_index: u8,
    /// The producing subtask.
    pub producer: u32,
}

/// The consumers of one outgoing JobGraph edge, as seen by one producer subtask.
pub struct OutputEdgeIo {
    /// Index of the JobGraph edge.
    pub edge: usize,
    /// One sender per consumer channel, in partition order.
    pub senders: Vec<ChannelSender>,
    /// The consumer vertex's max parallelism (number of key groups), for hash edges.
    pub consumer_max_parallelism: u32,
}

/// Everything a subtask is wired to.
pub struct TaskIo {
    /// Subtask index, from 0.
    pub subtask: u32,
    /// Input channels, in channel-index order.
    pub inputs: Vec<InputChannelInfo>,
    /// Outgoing edges of the vertex.
    pub outputs: Vec<OutputEdgeIo>,
    /// The task's bounded buffer pool.
    pub pool: BufferPool,
    /// Send every record at once (buffer timeout 0).
    pub flush_always: bool,
    /// Hand records to consumers in memory ([`crate::typed`]) rather than serialise them;
    /// only for consumers in the same process.
    pub in_memory_exchange: bool,
    /// The task's processing-time callbacks, shared by its operators.
    pub processing_time: crate::time::ProcessingTimeService,
    /// How input heads align checkpoint barriers.
    pub alignment: weir_core::BarrierAlignment,
    /// The state each operator (by uid) starts from, when the job is restored.
    pub restored: std::collections::HashMap<String, std::sync::Arc<weir_state::RestoredState>>,
    /// Wakes the task from other threads (for operators waiting on work elsewhere).
    pub waker: crate::time::TaskWaker,
    /// The task's user metrics, scoped to its job (operators get groups of their own).
    pub metrics: crate::user_metrics::MetricGroup,
}

impl TaskIo {
    /// Takes the output wiring of JobGraph edge `edge`.
    pub fn take_output(&mut self, edge: usize) -> Option<OutputEdgeIo> {
        let i = self.outputs.iter().position(|o| o.edge == edge)?;
        Some(self.outputs.swap_remove(i))
    }
}

/// A job's user code: it knows how to build the operators of every vertex.
///
/// In the embedded mini-cluster this is the program's own graph, shared in memory; in a
/// distributed cluster the same binary rebuilds it on each TaskManager (DESIGN.md §6).
pub trait JobCode: Send + Sync {
    /// Builds subtask `io.subtask` of `vertex`, wired to `io`.
    fn instantiate(&self, graph: &JobGraph, vertex: VertexId, io: TaskIo) -> Result<ChainHead>;

    /// The job's code as a program binary to start on each TaskManager, when the job was
    /// submitted from another process; `None` when the code is here, in this process.
    fn binary(&self) -> Option<&JobBinary> {
        None
    }

    /// The job's watermark alignment groups, as this process holds them: a worker keeps
    /// them in step with the members in other workers through its JobMaster.
    fn alignment_groups(&self) -> Vec<std::sync::Arc<dyn AlignmentSync>> {
        Vec::new()
    }
}

/// A watermark alignment group as one process sees it: its own members' watermarks, and
/// the lowest watermark of the members elsewhere, which the JobMaster tells it.
pub trait AlignmentSync: Send + Sync {
    /// The group's name.
    fn name(&self) -> &str;
    /// The members in this process (source number, subtask) with their latest watermark.
    fn local_watermarks(&self) -> Vec<((u32, u32), i64)>;
    /// The lowest watermark of the group's members in other processes (`None`: none).
    fn set_remote_low(&self, low: Option<i64>);
}

/// A job's program binary in the JobManager's blob store, and how the client ran it: a
/// TaskManager starts it as the job's worker, which rebuilds the same graph (DESIGN.md §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobBinary {
    /// The blob key (SHA-256 of the binary, hex).
    pub blob_key: String,
    /// The program's arguments.
    pub args: Vec<String>,
    /// The `WEIR_*` environment variables the client ran it with.
    pub env: Vec<(String, String)>,
    /// The fingerprint of the graph the client built.
    pub fingerprint: String,
}

impl JobCode for JobBinary {
    fn instantiate(&self, _: &JobGraph, vertex: VertexId, _: TaskIo) -> Result<ChainHead> {
        Err(crate::RuntimeError::Other(format!(
            "vertex {} belongs to a job whose code is the binary {}: it runs in the job's worker process on a TaskManager, not in this process",
            vertex.0, self.blob_key
        )))
    }

    fn binary(&self) -> Option<&JobBinary> {
        Some(self)
    }
}
