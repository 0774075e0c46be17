//! Weir's DataStream API.
//!
//! A program creates a [`StreamExecutionEnvironment`], adds sources, transforms the streams
//! with typed Rust closures and functions, adds sinks, and calls
//! [`execute`](StreamExecutionEnvironment::execute). Every call adds a node to a StreamGraph;
//! `execute` turns it into a JobGraph (chaining operators as Flink does) and runs it on the
//! embedded mini-cluster.
//!
//! ```
//! use weir_api::prelude::*;
//!
//! let env = StreamExecutionEnvironment::new();
//! env.set_parallelism(2);
//! let lines = vec!["a b".to_string(), "b c".to_string(), "c".to_string()];
//! let counts = env
//!     .from_collection(lines)
//!     .flat_map(|line: String, out: &mut Collector<(String, u64)>| {
//!         for w in line.split(' ') {
//!             out.collect((w.to_string(), 1));
//!         }
//!     })
//!     .key_by(|(w, _)| w.clone())
//!     .sum(|(_, n)| n)
//!     .collect_values();
//! env.execute("word count").unwrap();
//! let mut finals = std::collections::BTreeMap::new();
//! for (w, n) in counts.take() {
//!     let e = finals.entry(w).or_insert(0);
//!     *e = n.max(*e);
//! }
//! assert_eq!(finals["b"], 2);
//! ```

/// The Arrow crates [`arrow_batch::Batch`] is built on, for users of batches.
pub use arrow_array;
/// Arrow schemas and data types.
pub use arrow_schema;
pub mod alignment;
pub mod arrow_batch;
pub mod async_io;
pub mod broadcast;
pub mod cluster_client;
pub mod collect;
pub mod connected;
pub mod datastream;
pub mod env;
pub mod error;
mod exchange;
pub mod functions;
pub mod graph;
pub mod join;
pub mod keyed;
pub mod keyed_co_process;
pub mod keyed_process;
mod operators;
pub mod rich;
mod runner;
pub mod sink;
pub mod source;
pub mod split_watermarks;
pub mod timers;
mod translate;
mod types;
mod uid_hash;
pub mod watermark;
pub mod window;

pub use datastream::DataStream;
pub use env::{JobClient, StreamExecutionEnvironment};
pub use error::{ApiError, Result};
pub use functions::{
    Collector, OutputTag, ProcessContext, ProcessFunction, RuntimeContext, UserError,
};
pub use keyed::KeyedStream;
pub use types::Data;

/// Everything a job program usually needs.
pub mod prelude {
    pub use crate::broadcast::{
        BroadcastContext, BroadcastProcessFunction, BroadcastStateDescriptor,
        KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedReadOnlyContext,
        KeyedStateAccess, ReadOnlyContext,
    };
    pub use crate::connected::{CoProcessFunction, ConnectedStreams};
    pub use crate::datastream::DataStream;
    pub use crate::env::{JobClient, StreamExecutionEnvironment};
    pub use crate::error::{ApiError, Result};
    pub use crate::functions::{
        Collector, OutputTag, ProcessContext, ProcessFunction, RuntimeContext, UserError,
    };
    pub use crate::join::{Either, JoinContext, ProcessJoinFunction};
    pub use crate::keyed::KeyedStream;
    pub use crate::keyed_co_process::{ConnectedKeyedStreams, KeyedCoProcessFunction};
    pub use crate::keyed_process::{KeyedContext, KeyedProcessFunction};
    pub use crate::rich::{
        OpenContext, RichFilterFunction, RichFlatMapFunction, RichFunction, RichMapFunction,
        SnapshotContext,
    };
    pub use crate::sink::{CheckpointNotice, CollectedValues, Sink, SinkContext, SinkWriter};
    pub use crate::source::{decode_split, encode_split, Boundedness, Source, SourceContext};
    pub use crate::timers::TimeDomain;
    pub use crate::types::Data;
    pub use crate::watermark::{WatermarkGenerator, WatermarkOutput, WatermarkStrategy};
    pub use crate::window::assigners::{
        EventTimeSessionWindows, GlobalWindows, ProcessingTimeSessionWindows,
        SlidingEventTimeWindows, SlidingProcessingTimeWindows, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows, WindowAssigner,
    };
    pub use crate::window::evictors::{CountEvictor, Evictor, TimeEvictor, TimestampedValue};
    pub use crate::window::functions::{ProcessWindowFunction, WindowContext};
    pub use crate::window::stream::WindowedStream;
    pub use crate::window::triggers::{
        ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger,
        EventTimeTrigger, ProcessingTimeTrigger, PurgingTrigger, Trigger, TriggerContext,
        TriggerResult,
    };
    pub use crate::window::{GlobalWindow, TimeWindow, Window};
    pub use weir_cluster::{
        CheckpointHistory, CheckpointStats, CheckpointStatus, JobExecutionResult, JobStatus,
        MiniCluster, MiniClusterConfig,
    };
    pub use weir_core::{
        CheckpointingMode, RestartStrategy, StateBackendConfig, StateBackendKind,
        TaskThreadScheduling,
    };
    pub use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
    pub use weir_state::{
        AggregateFunction, AggregatingState, ListState, MapState, ReducingState, StateTtlConfig,
        StateVisibility, TtlUpdateType, ValueState,
    };
}
