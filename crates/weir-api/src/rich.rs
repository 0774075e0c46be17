//! Rich functions: `map`, `flat_map` and `filter` with a life cycle and user operator state
//! (Flink's `RichFunction` with `open`/`close`, and `CheckpointedFunction`).
//!
//! A rich function is opened once per subtask with an [`OpenContext`]: the subtask's
//! [`RuntimeContext`] and, when the job was restored, the operator state this subtask gets.
//! At every checkpoint it writes its state through a [`SnapshotContext`] as named lists:
//! *list* state is split evenly over the subtasks when a job is restored at another
//! parallelism, *union* state is given whole to every subtask (Flink's `getListState` and
//! `getUnionListState`). `close` runs when the input has ended.
//!
//! ```no_run
//! use weir_api::prelude::*;
//! use weir_api::rich::{OpenContext, RichFunction, RichMapFunction, SnapshotContext};
//!
//! /// Numbers each element with a per-subtask counter that survives failures.
//! #[derive(Clone, Default)]
//! struct Numbered {
//!     next: u64,
//! }
//!
//! impl RichFunction for Numbered {
//!     fn open(&mut self, ctx: &OpenContext<'_>) -> Result<(), UserError> {
//!         // After a rescale a subtask may get several counters: continue after the largest.
//!         self.next = ctx.restored_list::<u64>("next")?.into_iter().max().unwrap_or(0);
//!         Ok(())
//!     }
//!     fn snapshot_state(&mut self, ctx: &mut SnapshotContext<'_>) -> Result<(), UserError> {
//!         ctx.add_list("next", &[self.next])
//!     }
//! }
//!
//! impl RichMapFunction<String, (u64, String)> for Numbered {
//!     fn map(&mut self, value: String) -> Result<(u64, String), UserError> {
//!         self.next += 1;
//!         Ok((self.next, value))
//!     }
//! }
//! # let env = StreamExecutionEnvironment::new();
//! let numbered = env.from_collection(vec!["a".to_string()]).rich_map(Numbered::default());
//! ```

use crate::datastream::DataStream;
use crate::functions::{user_error, Collector, RuntimeContext, UserError};
use crate::graph::NodeKind;
use crate::types::Data;
use serde::de::DeserializeOwned;
use serde::Serialize;
use weir_runtime::checkpoint::{CheckpointBarrier, CheckpointNotice};
use weir_runtime::operator::{guarded, OneInputLink, OneInputOperator, OperatorInfo, Outputs};
use weir_runtime::{Result, StreamRecord};
use weir_state::{OperatorSubtaskState, RestoredState};

/// Operator state sections of rich functions are named `user/<name>`, apart from the
/// runtime's own.
fn section(name: &str) -> String {
    format!("user/{name}")
}

/// What a rich function gets when it opens.
pub struct OpenContext<'a> {
    runtime: RuntimeContext,
    restored: Option<&'a RestoredState>,
}

impl OpenContext<'_> {
    /// Facts about the subtask.
    pub fn runtime(&self) -> &RuntimeContext {
        &self.runtime
    }

    /// True if the job was restored from a checkpoint or savepoint.
    pub fn is_restored(&self) -> bool {
        self.restored.is_some()
    }

    /// This subtask's share of the list state `name` (nothing on a fresh start).
    pub fn restored_list<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, UserError> {
        self.decode(name, |r, s| r.list(s))
    }

    /// Every element of the union list state `name`, as all subtasks wrote it (nothing on a
    /// fresh start).
    pub fn restored_union<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, UserError> {
        self.decode(name, |r, s| r.union(s))
    }

    fn decode<T: DeserializeOwned>(
        &self,
        name: &str,
        pick: impl for<'r> Fn(&'r RestoredState, &str) -> &'r [Vec<u8>],
    ) -> Result<Vec<T>, UserError> {
        let Some(r) = self.restored else {
            return Ok(Vec::new());
        };
        pick(r, &section(name))
            .iter()
            .map(|b| {
                bincode::deserialize(b).map_err(|e| {
                    format!("cannot read the restored operator state '{name}': {e}").into()
                })
            })
            .collect()
    }
}

/// Where a rich function writes its state at a checkpoint.
pub struct SnapshotContext<'a> {
    checkpoint_id: u64,
    out: &'a mut OperatorSubtaskState,
}

impl SnapshotContext<'_> {
    /// The checkpoint being taken.
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// Writes `values` as this subtask's part of the list state `name`, split evenly over
    /// the subtasks on a restore at another parallelism.
    pub fn add_list<T: Serialize>(&mut self, name: &str, values: &[T]) -> Result<(), UserError> {
        let bytes = Self::encode(name, values)?;
        self.out.add_list(&section(name), bytes);
        Ok(())
    }

    /// Writes `values` as this subtask's part of the union list state `name`, of which
    /// every subtask gets all parts on a restore.
    pub fn add_union<T: Serialize>(&mut self, name: &str, values: &[T]) -> Result<(), UserError> {
        let bytes = Self::encode(name, values)?;
        self.out.add_union(&section(name), bytes);
        Ok(())
    }

    fn encode<T: Serialize>(name: &str, values: &[T]) -> Result<Vec<Vec<u8>>, UserError> {
        values
            .iter()
            .map(|v| {
                bincode::serialize(v)
                    .map_err(|e| format!("cannot write the operator state '{name}': {e}").into())
            })
            .collect()
    }
}

/// The life cycle and state of a rich function; every method has a default that does
/// nothing. Each subtask gets its own clone.
pub trait RichFunction: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record, with the restored state if any.
    fn open(&mut self, _ctx: &OpenContext<'_>) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once when the input has ended, after the last record.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Writes the function's state into a checkpoint.
    fn snapshot_state(&mut self, _ctx: &mut SnapshotContext<'_>) -> Result<(), UserError> {
        Ok(())
    }

    /// A checkpoint completed (every task has its state).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }
}

/// A rich `map` (Flink's `RichMapFunction`).
pub trait RichMapFunction<I, O>: RichFunction {
    /// The record for `value`.
    fn map(&mut self, value: I) -> Result<O, UserError>;
}

/// A rich `flat_map` (Flink's `RichFlatMapFunction`).
pub trait RichFlatMapFunction<I, O>: RichFunction {
    /// Emits any number of records for `value`.
    fn flat_map(&mut self, value: I, out: &mut Collector<'_, O>) -> Result<(), UserError>;
}

/// A rich `filter` (Flink's `RichFilterFunction`).
pub trait RichFilterFunction<T>: RichFunction {
    /// True to keep `value`.
    fn filter(&mut self, value: &T) -> Result<bool, UserError>;
}

impl<T: Data> DataStream<T> {
    /// Maps each element with a [`RichMapFunction`].
    pub fn rich_map<O: Data, F: RichMapFunction<T, O>>(&self, f: F) -> DataStream<O> {
        self.rich("Map", f, |f, r: StreamRecord<T>, out: &mut Outputs<O>| {
            let ts = r.timestamp();
            let v = f.map(r.value)?;
            Ok(out.collect(StreamRecord::from_parts(v, ts))?)
        })
    }

    /// Flat-maps each element with a [`RichFlatMapFunction`].
    pub fn rich_flat_map<O: Data, F: RichFlatMapFunction<T, O>>(&self, f: F) -> DataStream<O> {
        self.rich(
            "Flat Map",
            f,
            |f, r: StreamRecord<T>, out: &mut Outputs<O>| {
                let (main, _) = out.split();
                let mut c = Collector::new(main, r.timestamp());
                let res = f.flat_map(r.value, &mut c);
                c.finish()?;
                res
            },
        )
    }

    /// Filters with a [`RichFilterFunction`].
    pub fn rich_filter<F: RichFilterFunction<T>>(&self, f: F) -> DataStream<T> {
        self.rich(
            "Filter",
            f,
            |f, r: StreamRecord<T>, out: &mut Outputs<T>| {
                if f.filter(&r.value)? {
                    out.collect(r)?;
                }
                Ok(())
            },
        )
    }

    fn rich<O: Data, F: RichFunction>(
        &self,
        name: &str,
        f: F,
        call: RecordCall<F, T, O>,
    ) -> DataStream<O> {
        self.one_input(name, NodeKind::Operator, move |info, out| {
            let mut f = f.clone();
            let ctx = OpenContext {
                runtime: RuntimeContext::of(info),
                restored: info.restored.as_deref(),
            };
            guarded(info, || f.open(&ctx).map_err(|e| user_error(info, e)))?;
            let op = RichOp {
                f,
                call,
                info: info.clone(),
                closed: false,
            };
            Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
        })
    }
}

/// Calls a rich function for one record and emits what it returns.
type RecordCall<F, I, O> = fn(&mut F, StreamRecord<I>, &mut Outputs<O>) -> Result<(), UserError>;

/// Runs a rich function: `call` per record, and the function's life cycle and state.
struct RichOp<F: RichFunction, I, O> {
    f: F,
    call: RecordCall<F, I, O>,
    info: OperatorInfo,
    /// `close` ran.
    closed: bool,
}

impl<I, O, F: RichFunction> OneInputOperator<I, O> for RichOp<F, I, O> {
    fn process_element(&mut self, r: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()> {
        (self.call)(&mut self.f, r, out).map_err(|e| user_error(&self.info, e))
    }

    fn finish(&mut self, _: &mut Outputs<O>) -> Result<()> {
        self.closed = true;
        self.f.close().map_err(|e| user_error(&self.info, e))
    }

    fn snapshot_state(
        &mut self,
        barrier: &CheckpointBarrier,
        state: &mut OperatorSubtaskState,
    ) -> Result<()> {
        let mut ctx = SnapshotContext {
            checkpoint_id: barrier.id,
            out: state,
        };
        self.f
            .snapshot_state(&mut ctx)
            .map_err(|e| user_error(&self.info, e))
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice, _: &mut Outputs<O>) -> Result<()> {
        match notice {
            CheckpointNotice::Complete(id) => self
                .f
                .notify_checkpoint_complete(id)
                .map_err(|e| user_error(&self.info, e)),
            _ => Ok(()),
        }
    }
}

impl<F: RichFunction, I, O> Drop for RichOp<F, I, O> {
    fn drop(&mut self) {
        // A failed or cancelled task does not reach `finish`; the function still closes
        // (Flink closes functions on every way out), its error only logged. Not while a
        // panic unwinds: a second panic would abort the process.
        if !self.closed && !std::thread::panicking() {
            self.closed = true;
            if let Err(e) = self.f.close() {
                tracing::warn!(operator = %self.info.name, subtask = self.info.subtask, error = %e, "closing a function failed");
            }
        }
    }
}
