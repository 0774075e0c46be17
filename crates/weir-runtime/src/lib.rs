//! Weir's task runtime: the machinery under every job.
//!
//! - [`task`]: one OS thread per subtask, running a mailbox loop over its input and mails.
//! - [`operator`]: the push interface of operators inside a chain ([`Output`]), and the
//!   small composable operator traits the API builds on.
//! - [`buffer`], [`inbox`], [`writer`], [`reader`]: the exchange between tasks. Records are
//!   serialised into fixed-size buffers taken from a bounded per-task pool; a full pool blocks
//!   the writer, which is how backpressure reaches the sources. Between tasks of one process
//!   [`typed`] batches carry the records in memory instead, bounded by the same pool.
//! - [`exchange`]: the network data plane between processes (TCP, credit-based flow
//!   control); a consumer's inbox receives network buffers like local ones.
//! - [`partitioner`]: which consumer subtask gets a record.
//! - `allocator` (feature `jemalloc`): the global allocator for job binaries.
//! - [`batch`]: Arrow `RecordBatch`es as stream elements, with a hash partitioner that splits a
//!   batch by key into one batch per consumer.

#[cfg(feature = "jemalloc")]
pub mod allocator;
pub mod batch;
pub mod buffer;
pub mod checkpoint;
pub mod deploy;
pub mod element;
pub mod error;
pub mod exchange;
pub mod head;
pub mod inbox;
pub mod metrics;
pub mod operator;
pub mod partitioner;
pub mod push;
pub mod reader;
pub mod serializer;
pub mod source;
pub mod task;
pub mod time;
pub mod typed;
pub mod user_metrics;
pub mod valve;
pub mod writer;

pub use element::{StreamRecord, Watermark, WatermarkStatus, NO_TIMESTAMP};
pub use error::{Result, RuntimeError};
pub use operator::{Output, OutputControl, Outputs};
