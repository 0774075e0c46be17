//! The window aggregate operator: `GROUP BY window_start, window_end, keys...` over a
//! window TVF (Flink's `WindowAggregate`).
//!
//! Input batches hold the group key columns first, then the aggregates' argument columns,
//! the time attribute and (when the table declares a watermark) the watermark in force
//! before each row (see [`crate::csv_source`]). The batch exchange in front of the operator
//! partitions rows by the key columns. Each row adds to the accumulators of its windows,
//! kept in keyed state per (group key, window end), and registers an event-time timer at the
//! window's last millisecond; when the watermark passes it, the window's row is emitted and
//! its state dropped.
//!
//! Late rows are dropped exactly where Flink drops them: a window has fired once the
//! watermark reached its end minus one, and a row adds to none of its windows that have
//! fired (for HOP and CUMULATE it still adds to its later windows). The watermark a row is
//! judged by is the one Flink's per-row watermark emission would have sent before it:
//! the largest of the operator's watermark and the row's own watermark column, so rows in
//! one batch are judged as if each had travelled alone.

use crate::aggregate::{Acc, AggCall};
use crate::csv_source::schema_of;
use crate::types::FlinkType;
use crate::values::{emit_rows, value_at, RowKey, Value};
use crate::window_tvf::WindowKind;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::timers::{restore_keyed, snapshot_keyed, InternalTimers};
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyedStateBackend, StateId};

/// What one output column of a window aggregate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputColumn {
    /// Group key column `i`.
    Key(usize),
    /// The window's start.
    WindowStart,
    /// The window's end.
    WindowEnd,
    /// The window's time attribute: its end minus one millisecond.
    WindowTime,
    /// Aggregate call `i`.
    Agg(usize),
}

/// A window aggregate as data: what it groups by, computes and emits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowAggSpec {
    /// The windows.
    pub window: WindowKind,
    /// Input columns `0..keys` are the group key.
    pub keys: usize,
    /// The group key columns' types.
    pub key_types: Vec<FlinkType>,
    /// The input column of the time attribute (TIMESTAMP(3): milliseconds).
    pub rowtime: usize,
    /// The input column of per-row watermarks, if the input has one.
    pub watermark: Option<usize>,
    /// The aggregate calls, over input columns.
    pub aggs: Vec<AggCall>,
    /// The output columns with their names and types.
    pub output: Vec<(String, OutputColumn, FlinkType)>,
}

impl WindowAggSpec {
    /// The Arrow schema of the output batches.
    pub fn schema(&self) -> SchemaRef {
        let columns: Vec<(String, FlinkType)> = self
            .output
            .iter()
            .map(|(n, _, t)| (n.clone(), *t))
            .collect();
        schema_of(&columns)
    }
}

/// State name of the accumulators.
const ACCUMULATORS: &str = "window-accumulators";
/// State name of a SESSION aggregate's open sessions.
const SESSIONS: &str = "window-sessions";

/// An open session of one group: its bounds and accumulators.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    start: i64,
    end: i64,
    accs: Vec<Acc>,
}

/// Runs a [`WindowAggSpec`] on one subtask.
pub struct WindowAggregateOp {
    spec: Arc<WindowAggSpec>,
    schema: SchemaRef,
    backend: KeyedStateBackend<RowKey>,
    accumulators: StateId,
    sessions: StateId,
    timers: InternalTimers<RowKey, i64>,
    watermark: i64,
    info: OperatorInfo,
    windows: Vec<(i64, i64)>,
    args: Vec<Option<Value>>,
}

impl WindowAggregateOp {
    /// The operator for subtask `info`, its state in the subtask's keyed store.
    pub fn new(spec: Arc<WindowAggSpec>, info: &OperatorInfo) -> Result<Self> {
        let mut backend = KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism);
        let accumulators = backend
            .register::<i64, Vec<Acc>>(ACCUMULATORS)
            .map_err(|e| info.error(e.to_string()))?;
        let sessions = backend
            .register::<(), Vec<Session>>(SESSIONS)
            .map_err(|e| info.error(e.to_string()))?;
        Ok(WindowAggregateOp {
            schema: spec.schema(),
            spec,
            backend,
            accumulators,
            sessions,
            timers: InternalTimers::new(info.processing_time.clone()),
            watermark: i64::MIN,
            info: info.clone(),
            windows: Vec::new(),
            args: Vec::new(),
        })
    }

    fn add_row(&mut self, batch: &RecordBatch, row: usize, watermark: i64) -> Result<()> {
        let spec = self.spec.clone();
        let ts = match value_at(batch.column(spec.rowtime).as_ref(), row) {
            Some(Value::Int(ts)) => ts,
            _ => {
                return Err(self.info.error(
                    "a row's time attribute is NULL (a rowtime must not be NULL, as in Flink)",
                ))
            }
        };
        if let WindowKind::Session { gap } = spec.window {
            return self.add_to_session(batch, row, ts, gap, watermark);
        }
        spec.window.windows_of(ts, &mut self.windows);
        // A window has fired once the watermark reached its last millisecond.
        self.windows.retain(|&(_, end)| end - 1 > watermark);
        if self.windows.is_empty() {
            return Ok(());
        }
        let key = RowKey::of_row(&batch.columns()[..spec.keys], row).ok_or_else(|| {
            self.info
                .error("a group key column of a type that cannot be a key")
        })?;
        self.args.clear();
        self.args.extend(
            spec.aggs
                .iter()
                .map(|a| a.arg.and_then(|c| value_at(batch.column(c).as_ref(), row))),
        );
        self.backend
            .set_current_key(key)
            .map_err(|e| self.info.error(e.to_string()))?;
        for &(_, end) in &self.windows {
            let (table, key, slot) = self
                .backend
                .table::<i64, Vec<Acc>>(self.accumulators)
                .map_err(|e| self.info.error(e.to_string()))?;
            let accs = table
                .get_or_insert_with(slot, key, &end, || {
                    spec.aggs.iter().map(AggCall::empty).collect()
                })
                .map_err(|e| self.info.error(e.to_string()))?;
            for ((call, acc), v) in spec.aggs.iter().zip(accs.iter_mut()).zip(&self.args) {
                call.accumulate(acc, v.as_ref());
            }
            self.timers.register_event(end - 1, key.clone(), end);
        }
        Ok(())
    }

    /// Adds a row at `ts` to its group's session `[ts, ts + gap)`, merged with every open
    /// session it overlaps or touches (Flink's session merging). A row whose merged session
    /// would have fired already is late and dropped; a session that fired takes no row,
    /// so a later row near it opens a session of its own (as in Flink).
    fn add_to_session(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        ts: i64,
        gap: i64,
        watermark: i64,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let key = RowKey::of_row(&batch.columns()[..spec.keys], row).ok_or_else(|| {
            self.info
                .error("a group key column of a type that cannot be a key")
        })?;
        self.backend
            .set_current_key(key.clone())
            .map_err(|e| self.info.error(e.to_string()))?;
        let (table, k, slot) = self
            .backend
            .table::<(), Vec<Session>>(self.sessions)
            .map_err(|e| self.info.error(e.to_string()))?;
        let mut sessions = table
            .get(slot, k, &())
            .map_err(|e| self.info.error(e.to_string()))?
            .cloned()
            .unwrap_or_default();
        let (mut start, mut end) = (ts, ts.saturating_add(gap));
        // A session the row's watermark has passed fired (in Flink, at that watermark;
        // here at the watermark after this batch): it takes no more rows.
        let (merged, mut kept): (Vec<Session>, Vec<Session>) = sessions
            .drain(..)
            .partition(|s| s.end - 1 > watermark && s.start <= end && s.end >= start);
        for s in &merged {
            start = start.min(s.start);
            end = end.max(s.end);
        }
        if end - 1 > watermark {
            for s in &merged {
                self.timers.delete_event(s.end - 1, &key, &s.end);
            }
        }
        if end - 1 <= watermark {
            return Ok(());
        }
        let mut accs: Vec<Acc> = spec.aggs.iter().map(AggCall::empty).collect();
        for s in merged {
            for ((call, acc), other) in spec.aggs.iter().zip(accs.iter_mut()).zip(s.accs) {
                call.merge(acc, other);
            }
        }
        for (call, acc) in spec.aggs.iter().zip(accs.iter_mut()) {
            let v = call
                .arg
                .and_then(|c| value_at(batch.column(c).as_ref(), row));
            call.accumulate(acc, v.as_ref());
        }
        kept.push(Session { start, end, accs });
        let (table, k, slot) = self
            .backend
            .table::<(), Vec<Session>>(self.sessions)
            .map_err(|e| self.info.error(e.to_string()))?;
        table
            .insert(slot, k, &(), kept)
            .map_err(|e| self.info.error(e.to_string()))?;
        self.timers.register_event(end - 1, key, end);
        Ok(())
    }

    /// Removes the session of the current key that ends at `end`, if it is still open.
    fn close_session(&mut self, end: i64) -> Result<Option<(i64, Vec<Acc>)>> {
        let (table, k, slot) = self
            .backend
            .table::<(), Vec<Session>>(self.sessions)
            .map_err(|e| self.info.error(e.to_string()))?;
        let Some(sessions) = table
            .get_mut(slot, k, &())
            .map_err(|e| self.info.error(e.to_string()))?
        else {
            return Ok(None);
        };
        let Some(i) = sessions.iter().position(|s| s.end == end) else {
            return Ok(None);
        };
        let s = sessions.swap_remove(i);
        if sessions.is_empty() {
            table
                .remove(slot, k, &())
                .map_err(|e| self.info.error(e.to_string()))?;
        }
        Ok(Some((s.start, s.accs)))
    }

    /// Emits the windows whose timers are due at `watermark`, as one batch.
    fn fire(&mut self, watermark: i64, out: &mut Outputs<Batch>) -> Result<()> {
        let spec = self.spec.clone();
        let mut rows: Vec<Vec<Option<Value>>> = Vec::new();
        while let Some((_, key, end)) = self.timers.event.pop_due(watermark) {
            self.backend
                .set_current_key(key.clone())
                .map_err(|e| self.info.error(e.to_string()))?;
            let closed = if let WindowKind::Session { .. } = spec.window {
                self.close_session(end)?
            } else {
                let (table, k, slot) = self
                    .backend
                    .table::<i64, Vec<Acc>>(self.accumulators)
                    .map_err(|e| self.info.error(e.to_string()))?;
                table
                    .remove(slot, k, &end)
                    .map_err(|e| self.info.error(e.to_string()))?
                    .map(|accs| (spec.window.start_of(end), accs))
            };
            let Some((start, accs)) = closed else {
                continue;
            };
            rows.push(
                spec.output
                    .iter()
                    .map(|(_, c, _)| match *c {
                        OutputColumn::Key(i) => key.0.get(i).and_then(|k| k.value()),
                        OutputColumn::WindowStart => Some(Value::Int(start)),
                        OutputColumn::WindowEnd => Some(Value::Int(end)),
                        OutputColumn::WindowTime => Some(Value::Int(end - 1)),
                        OutputColumn::Agg(i) => spec.aggs[i].value(&accs[i]),
                    })
                    .collect(),
            );
        }
        emit_rows(
            out,
            &self.schema,
            spec.output.iter().map(|(_, _, t)| *t),
            rows,
            None,
            &self.info,
        )
    }
}

impl OneInputOperator<Batch, Batch> for WindowAggregateOp {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        _: &mut Outputs<Batch>,
    ) -> Result<()> {
        let batch = &record.value.0;
        let row_watermarks = self
            .spec
            .watermark
            .and_then(|c| batch.columns().get(c))
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        for row in 0..batch.num_rows() {
            let watermark = match &row_watermarks {
                Some(w) => self.watermark.max(w.value(row)),
                None => self.watermark,
            };
            self.add_row(batch, row, watermark)?;
        }
        Ok(())
    }

    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<Batch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark.0);
        self.fire(watermark.0, out)?;
        out.emit_watermark(watermark)
    }

    fn state_entries(&self) -> u64 {
        (self.backend.entries() + self.timers.len()) as u64
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        state: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        snapshot_keyed(&self.info, barrier, &mut self.backend, &self.timers, state)
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        restore_keyed(&self.info, &mut self.backend, &mut self.timers, restored)
    }
}

/// A window aggregate operator: by slices where [`SlicedWindowAggregateOp`] applies, the
/// general one otherwise. Both give the same rows.
///
/// [`SlicedWindowAggregateOp`]: crate::window_slices::SlicedWindowAggregateOp
pub enum WindowAggregator {
    /// By slices.
    Sliced(crate::window_slices::SlicedWindowAggregateOp),
    /// Per (key, window) accumulators in keyed state.
    General(WindowAggregateOp),
}

impl OneInputOperator<Batch, Batch> for WindowAggregator {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        match self {
            WindowAggregator::Sliced(op) => op.process_element(record, out),
            WindowAggregator::General(op) => op.process_element(record, out),
        }
    }

    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<Batch>) -> Result<()> {
        match self {
            WindowAggregator::Sliced(op) => op.process_watermark(watermark, out),
            WindowAggregator::General(op) => op.process_watermark(watermark, out),
        }
    }

    fn state_entries(&self) -> u64 {
        match self {
            WindowAggregator::Sliced(op) => op.state_entries(),
            WindowAggregator::General(op) => op.state_entries(),
        }
    }

    fn snapshot_state(
        &mut self,
        barrier: &weir_runtime::checkpoint::CheckpointBarrier,
        state: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        match self {
            WindowAggregator::Sliced(op) => op.snapshot_state(barrier, state),
            WindowAggregator::General(op) => op.snapshot_state(barrier, state),
        }
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        match self {
            WindowAggregator::Sliced(op) => op.initialize_state(restored),
            WindowAggregator::General(op) => op.initialize_state(restored),
        }
    }
}
