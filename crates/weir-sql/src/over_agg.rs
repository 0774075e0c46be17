//! The OVER aggregate operator: `agg(x) OVER (PARTITION BY k ORDER BY rowtime ROWS|RANGE
//! BETWEEN ... PRECEDING AND CURRENT ROW)`, Flink's `OverAggregate` on event time. Every
//! input row comes out once, with the aggregates of its frame appended; the result is
//! insert-only.
//!
//! Input batches hold the partition key columns first, then the input row's columns (the
//! per-row watermark among them, if the table declares one), then the aggregates' argument
//! columns. The batch exchange in front of the operator partitions rows by the key columns.
//!
//! A row waits in keyed state until the watermark passes its rowtime; then the rows of a
//! partition are aggregated in rowtime order (rows with equal rowtimes in arrival order).
//! Four frames, each as Flink runs it, with Flink's rule for late rows:
//!
//! | frame | late (dropped) when | rows kept after they were emitted |
//! |---|---|---|
//! | `ROWS` unbounded | rowtime ≤ the operator's watermark | none (accumulators only) |
//! | `RANGE` unbounded | the same | none |
//! | `ROWS n PRECEDING` | rowtime ≤ the partition's last fired rowtime | the last n + 1 |
//! | `RANGE t PRECEDING` | the same | those within t of the last fired rowtime |
//!
//! The bounded frames' rule is per partition, as in Flink: a row behind the watermark is
//! still taken if its partition has not fired a later rowtime, and is aggregated at the next
//! watermark. Rows with equal rowtimes are peers in a `RANGE` frame: they all get the same
//! aggregates; in a `ROWS` frame each row counts only the rows before it. A `RANGE` frame
//! drops a partition's state once the watermark is 1.5 frame lengths past its last row
//! (Flink's cleanup timer; a later row starts the partition afresh).
//!
//! When one source subtask feeds the operator, the watermark a row is judged by is the one
//! in force just before it (the table's per-row watermark column), and the rows it lets
//! through are aggregated before the row is taken: the outcome is the one of Flink's
//! watermark after every row, whatever the batch boundaries are. With parallel sources the
//! operator's watermark is the least of its inputs', known per batch, as in Flink with
//! periodic watermarks.

use crate::aggregate::{Acc, AggCall};
use crate::types::FlinkType;
use crate::values::{emit_rows, value_at, RowKey, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::timers::{restore_keyed, snapshot_keyed, InternalTimers};
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyedStateBackend, StateId};

/// The frame of an OVER aggregate, which always ends at the current row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverFrame {
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`
    RowsUnbounded,
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the frame of a bare `ORDER BY`).
    RangeUnbounded,
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the current row and the `n` before it.
    Rows(u64),
    /// `RANGE BETWEEN INTERVAL t PRECEDING AND CURRENT ROW`: rows at most `t` ms older.
    Range(i64),
}

impl OverFrame {
    /// True for the frames that drop rows again (their MIN/MAX must keep every value).
    pub fn is_bounded(&self) -> bool {
        matches!(self, OverFrame::Rows(_) | OverFrame::Range(_))
    }
}

/// An OVER aggregate as data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OverSpec {
    /// Input columns `0..keys` are the partition key.
    pub keys: usize,
    /// The types of the input row's columns, input columns `keys..keys + columns.len()`.
    pub columns: Vec<FlinkType>,
    /// The input column of the rowtime (the ORDER BY).
    pub rowtime: usize,
    /// The input column of the per-row watermark, if the table declares a watermark; it
    /// is not passed on.
    pub watermark: Option<usize>,
    /// The rows come from one source subtask, so the per-row watermark is the watermark
    /// the operator would see just before the row, and rows move it (set when the job is
    /// built). With several source subtasks a row's watermark can be ahead of the others',
    /// and only the watermarks the operator receives count.
    pub rows_advance_watermark: bool,
    /// The frame.
    pub frame: OverFrame,
    /// The aggregate calls, over input columns.
    pub aggs: Vec<AggCall>,
    /// The output columns' names and types: the row's columns (without the per-row
    /// watermark), then the aggregates.
    pub output: Vec<(String, FlinkType)>,
}

impl OverSpec {
    /// The Arrow schema of the output batches.
    pub fn schema(&self) -> SchemaRef {
        crate::csv_source::schema_of(&self.output)
    }

    /// Flink's cleanup time of a `RANGE t PRECEDING` partition whose newest row is at
    /// `ts`, and the least one that still covers it: `ts + 1.5 t + 1` and `ts + t + 1`.
    fn cleanup_bounds(range_ms: i64, ts: i64) -> (i64, i64) {
        let least = ts.saturating_add(range_ms).saturating_add(1);
        let at = ts
            .saturating_add((range_ms as f64 * 1.5) as i64)
            .saturating_add(1);
        (least, at)
    }
}

/// A buffered row: its columns (partition key excluded) and aggregate arguments.
type Row = Vec<Option<Value>>;

/// One partition's state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Partition {
    /// Rows by rowtime: not aggregated yet, and (bounded frames) those still in a frame.
    rows: BTreeMap<i64, Vec<Row>>,
    /// The accumulators, once a row was aggregated.
    accs: Option<Vec<Acc>>,
    /// Bounded frames: the last rowtime fired (Flink's `lastTriggeringTs`, 0 when unset).
    last_fired: i64,
    /// `ROWS n PRECEDING`: rows in the frame, up to n + 1.
    in_frame: u64,
    /// `RANGE t PRECEDING`: when the partition's state goes (Flink's `cleanupTsState`).
    cleanup_at: Option<i64>,
}

impl Partition {
    /// True for the state of a partition that never took a row.
    fn is_new(&self) -> bool {
        self.rows.is_empty()
            && self.accs.is_none()
            && self.last_fired == 0
            && self.in_frame == 0
            && self.cleanup_at.is_none()
    }
}

/// State name of the partitions.
const PARTITIONS: &str = "over-partitions";

/// Runs an [`OverSpec`] on one subtask.
pub struct OverAggregateOp {
    spec: Arc<OverSpec>,
    schema: SchemaRef,
    backend: KeyedStateBackend<RowKey>,
    partitions: StateId,
    /// Event-time timers per partition (the namespace is unused).
    timers: InternalTimers<RowKey, ()>,
    /// The watermark in force: the largest of the operator's and the rows' per-row ones.
    watermark: i64,
    /// Output rows not emitted yet.
    pending: Vec<Row>,
    /// Where each aggregate's argument is in a buffered row (none for `COUNT(*)`).
    arg_slots: Vec<Option<usize>>,
    info: OperatorInfo,
}

impl OverAggregateOp {
    /// The operator for subtask `info`, its state in the subtask's keyed store.
    pub fn new(spec: Arc<OverSpec>, info: &OperatorInfo) -> Result<Self> {
        let mut backend = KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism);
        let partitions = backend
            .register::<(), Partition>(PARTITIONS)
            .map_err(|e| info.error(e.to_string()))?;
        // Arguments follow the row's columns in a buffered row, in call order.
        let arg_slots = spec
            .aggs
            .iter()
            .scan(spec.columns.len(), |next, a| {
                Some(a.arg.map(|_| {
                    *next += 1;
                    *next - 1
                }))
            })
            .collect();
        Ok(OverAggregateOp {
            schema: spec.schema(),
            spec,
            backend,
            partitions,
            timers: InternalTimers::new(info.processing_time.clone()),
            watermark: i64::MIN,
            pending: Vec::new(),
            arg_slots,
            info: info.clone(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> weir_runtime::RuntimeError {
        self.info.error(e.to_string())
    }

    /// Takes partition `key`'s state out of the table (a new one if it has none); it is
    /// put back with [`Self::store`].
    fn load(&mut self, key: &RowKey) -> Result<Partition> {
        self.backend
            .set_current_key(key.clone())
            .map_err(|e| self.err(e))?;
        let (table, k, slot) = self
            .backend
            .table::<(), Partition>(self.partitions)
            .map_err(|e| self.info.error(e.to_string()))?;
        Ok(table
            .remove(slot, k, &())
            .map_err(|e| self.info.error(e.to_string()))?
            .unwrap_or_default())
    }

    /// Puts the current partition's state back (`None`: it is gone).
    fn store(&mut self, partition: Option<Partition>) -> Result<()> {
        let (table, k, slot) = self
            .backend
            .table::<(), Partition>(self.partitions)
            .map_err(|e| self.info.error(e.to_string()))?;
        match partition {
            Some(p) if !p.is_new() => table.insert(slot, k, &(), p),
            _ => Ok(()),
        }
        .map_err(|e| self.info.error(e.to_string()))
    }

    /// Takes row `row` of `batch` in (or drops it as late), the watermark being `watermark`.
    fn take_row(&mut self, batch: &RecordBatch, row: usize) -> Result<()> {
        let spec = self.spec.clone();
        let ts = match value_at(batch.column(spec.rowtime).as_ref(), row) {
            Some(Value::Int(ts)) => ts,
            _ => {
                return Err(self.err(
                    "a row's time attribute is NULL (a rowtime must not be NULL, as in Flink)",
                ))
            }
        };
        let key = RowKey::of_row(&batch.columns()[..spec.keys], row)
            .ok_or_else(|| self.err("a partition key column of a type that cannot be a key"))?;
        let mut partition = self.load(&key)?;
        let late = if spec.frame.is_bounded() {
            ts <= partition.last_fired
        } else {
            ts <= self.watermark
        };
        if late {
            return self.store(Some(partition));
        }
        let width = spec.keys + spec.columns.len();
        let values: Row = (spec.keys..width)
            .chain(spec.aggs.iter().filter_map(|a| a.arg))
            .map(|c| value_at(batch.column(c).as_ref(), row))
            .collect();
        let first_at_ts = !partition.rows.contains_key(&ts);
        partition.rows.entry(ts).or_default().push(values);
        match spec.frame {
            OverFrame::RowsUnbounded | OverFrame::RangeUnbounded => {
                // One timer per partition, at the next watermark.
                let at = if self.watermark < 0 {
                    0
                } else {
                    self.watermark + 1
                };
                self.timers.register_event(at, key, ());
            }
            OverFrame::Rows(_) => {
                if first_at_ts {
                    self.timers.register_event(ts, key, ());
                }
            }
            OverFrame::Range(range) => {
                if first_at_ts {
                    self.timers.register_event(ts, key.clone(), ());
                }
                let (least, at) = OverSpec::cleanup_bounds(range, ts);
                if partition.cleanup_at.is_none_or(|c| c < least) {
                    self.timers.register_event(at, key, ());
                    partition.cleanup_at = Some(at);
                }
            }
        }
        self.store(Some(partition))
    }

    /// Moves the watermark to `watermark` and fires the timers it passes.
    fn advance(&mut self, watermark: i64) -> Result<()> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        while let Some((ts, key, ())) = self.timers.event.pop_due(watermark) {
            let partition = self.load(&key)?;
            let kept = match self.spec.frame {
                OverFrame::RowsUnbounded | OverFrame::RangeUnbounded => {
                    Some(self.fire_unbounded(&key, partition))
                }
                OverFrame::Rows(n) => Some(self.fire_rows(partition, ts, n + 1)),
                OverFrame::Range(range) => self.fire_range(partition, ts, range),
            };
            self.store(kept)?;
        }
        Ok(())
    }

    /// The aggregate row of `row`: its columns (without the watermark) and `accs`' values.
    fn output_row(&self, row: &Row, accs: &[Acc]) -> Row {
        let spec = &self.spec;
        let mut out: Row = row[..spec.columns.len()]
            .iter()
            .enumerate()
            .filter(|&(i, _)| spec.watermark != Some(spec.keys + i))
            .map(|(_, v)| v.clone())
            .collect();
        out.extend(spec.aggs.iter().zip(accs).map(|(a, acc)| a.value(acc)));
        out
    }

    /// The argument of aggregate `i` in a buffered row.
    fn arg<'r>(&self, row: &'r Row, i: usize) -> Option<&'r Value> {
        row[self.arg_slots[i]?].as_ref()
    }

    fn accumulate(&self, accs: &mut [Acc], row: &Row) {
        for (i, (call, acc)) in self.spec.aggs.iter().zip(accs.iter_mut()).enumerate() {
            call.accumulate(acc, self.arg(row, i));
        }
    }

    fn retract(&self, accs: &mut [Acc], row: &Row) {
        for (i, (call, acc)) in self.spec.aggs.iter().zip(accs.iter_mut()).enumerate() {
            call.retract(acc, self.arg(row, i));
        }
    }

    fn empty_accs(&self) -> Vec<Acc> {
        self.spec.aggs.iter().map(AggCall::empty).collect()
    }

    /// An unbounded frame at the watermark: every row up to it, in rowtime order. Rows with
    /// later rowtimes stay, with a timer for the next watermark.
    fn fire_unbounded(&mut self, key: &RowKey, mut p: Partition) -> Partition {
        let mut accs = p.accs.take().unwrap_or_else(|| self.empty_accs());
        let later = p.rows.split_off(&self.watermark.saturating_add(1));
        for (_, rows) in std::mem::take(&mut p.rows) {
            if self.spec.frame == OverFrame::RangeUnbounded {
                // Peers: every row of the rowtime first, then the same result for each.
                for row in &rows {
                    self.accumulate(&mut accs, row);
                }
                for row in &rows {
                    let out = self.output_row(row, &accs);
                    self.pending.push(out);
                }
            } else {
                for row in &rows {
                    self.accumulate(&mut accs, row);
                    let out = self.output_row(row, &accs);
                    self.pending.push(out);
                }
            }
        }
        if !later.is_empty() {
            self.timers
                .register_event(self.watermark.saturating_add(1), key.clone(), ());
        }
        p.rows = later;
        p.accs = Some(accs);
        p
    }

    /// `ROWS n PRECEDING` at the timer of rowtime `ts`: each row of `ts` in arrival order,
    /// the oldest row leaving the frame once it holds `size` (= n + 1) rows.
    fn fire_rows(&mut self, mut p: Partition, ts: i64, size: u64) -> Partition {
        if let Some(rows) = p.rows.get(&ts).cloned() {
            let mut accs = p.accs.take().unwrap_or_else(|| self.empty_accs());
            for row in &rows {
                if p.in_frame >= size {
                    if let Some(oldest) = Self::pop_oldest(&mut p.rows) {
                        self.retract(&mut accs, &oldest);
                    }
                } else {
                    p.in_frame += 1;
                }
                self.accumulate(&mut accs, row);
                let out = self.output_row(row, &accs);
                self.pending.push(out);
            }
            p.accs = Some(accs);
        }
        p.last_fired = ts;
        p
    }

    /// Removes the first row of the smallest rowtime.
    fn pop_oldest(rows: &mut BTreeMap<i64, Vec<Row>>) -> Option<Row> {
        let mut first = rows.first_entry()?;
        let row = first.get_mut().remove(0);
        if first.get().is_empty() {
            first.remove();
        }
        Some(row)
    }

    /// `RANGE t PRECEDING` at the timer of `ts`: the partition's cleanup if it is due
    /// (`None`), else the rows older than `ts - t` leave the frame and the rows of `ts`
    /// come out with the same aggregates.
    fn fire_range(&mut self, mut p: Partition, ts: i64, range: i64) -> Option<Partition> {
        if p.cleanup_at.is_some_and(|c| c <= ts) {
            return None;
        }
        if p.rows.contains_key(&ts) {
            let mut accs = p.accs.take().unwrap_or_else(|| self.empty_accs());
            let kept = p.rows.split_off(&ts.saturating_sub(range));
            for row in std::mem::replace(&mut p.rows, kept).values().flatten() {
                self.retract(&mut accs, row);
            }
            let rows = p.rows.get(&ts).map_or(&[][..], Vec::as_slice);
            for row in rows {
                self.accumulate(&mut accs, row);
            }
            for row in rows {
                let out = self.output_row(row, &accs);
                self.pending.push(out);
            }
            p.accs = Some(accs);
        }
        p.last_fired = ts;
        Some(p)
    }

    /// Emits the pending output rows as one batch.
    fn flush(&mut self, out: &mut Outputs<Batch>) -> Result<()> {
        let rows = std::mem::take(&mut self.pending);
        emit_rows(
            out,
            &self.schema,
            self.spec.output.iter().map(|(_, t)| *t),
            rows,
            None,
            &self.info,
        )
    }
}

impl OneInputOperator<Batch, Batch> for OverAggregateOp {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        let batch = &record.value.0;
        let row_watermarks = self
            .spec
            .watermark
            .filter(|_| self.spec.rows_advance_watermark)
            .and_then(|c| batch.columns().get(c))
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        for row in 0..batch.num_rows() {
            if let Some(w) = &row_watermarks {
                self.advance(w.value(row))?;
            }
            self.take_row(batch, row)?;
        }
        self.flush(out)
    }

    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<Batch>) -> Result<()> {
        self.advance(watermark.0)?;
        self.flush(out)?;
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
