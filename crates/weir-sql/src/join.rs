//! The regular join operator: `a [LEFT | RIGHT | FULL] JOIN b ON a.k = b.k [AND ...]` without
//! time bounds (Flink's `Join` / `StreamingJoinOperator`): every row of each side is kept in
//! keyed state and joined with every later row of the other side.
//!
//! Both inputs are partitioned by the equi-join key, which is their first `keys` columns;
//! the side's own columns follow, then a row-kind column if the side is updating. Per key,
//! keyed state holds each side's distinct rows with how often each is in and, for the outer
//! sides, with how many rows of the other side it is joined to, so that a row's NULL-padded
//! form is emitted while it has no partner and withdrawn when it gets one (and emitted again
//! when its last partner is withdrawn), as Flink does. A residual condition (the non-equi
//! part of ON) is evaluated on the joined rows of each input batch at once, with DataFusion's
//! physical expressions. NULL keys join nothing (SQL's `=`), but an outer side's row with a
//! NULL key is still emitted NULL-padded.
//!
//! The output is the left side's columns then the right side's, with a row-kind column when
//! it is updating (an outer join, or an updating input): `+I` for a joined row that appears,
//! `-D` for one that goes.
//!
//! With [`IntervalBounds`] (an equi-join whose condition also bounds the distance of the two
//! sides' time attributes, Flink's interval join) a row is only kept while a partner can
//! still arrive: an event-time timer drops it once the watermark passes the last time a
//! partner could have, and an outer side's row that never found one is emitted NULL-padded
//! then, once (so the output is append-only, as Flink's interval join is). A row that is
//! already past that point when it arrives joins what is there and is not kept.

use crate::changelog::{kind_at, kinds, RowKind};
use crate::types::FlinkType;
use crate::values::{build_column, emit_rows, value_at, RowKey, Value};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::timers::{restore_keyed, snapshot_keyed, InternalTimers};
use weir_runtime::operator::{OperatorInfo, OutputControl, Outputs, TwoInputOperator};
use weir_runtime::{Result, StreamRecord};
use weir_state::{KeyedStateBackend, StateId};

/// Which rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinKind {
    /// Joined rows only.
    Inner,
    /// And left rows without a partner, NULL-padded.
    Left,
    /// And right rows without a partner, NULL-padded.
    Right,
    /// And rows of either side without a partner.
    Full,
}

impl JoinKind {
    /// True if unmatched rows of `side` (0 left, 1 right) are emitted NULL-padded.
    pub fn keeps(&self, side: usize) -> bool {
        matches!(
            (self, side),
            (JoinKind::Left, 0) | (JoinKind::Right, 1) | (JoinKind::Full, _)
        )
    }
}

/// The time bounds of an interval join: `right.time - left.time` lies in `[lower, upper]`
/// (milliseconds), with each side's time attribute among its own columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalBounds {
    /// The left side's time attribute (index among its columns).
    pub left_time: usize,
    /// The right side's time attribute.
    pub right_time: usize,
    /// The smallest `right.time - left.time`.
    pub lower: i64,
    /// The largest `right.time - left.time`.
    pub upper: i64,
}

impl IntervalBounds {
    /// The last watermark at which a row of `side` at `time` can still get a partner.
    fn expiry(&self, side: usize, time: i64) -> i64 {
        if side == 0 {
            time.saturating_add(self.upper)
        } else {
            time.saturating_sub(self.lower)
        }
    }
}

/// A regular join as data (the residual condition is compiled per job).
#[derive(Clone, Debug)]
pub struct JoinSpec {
    /// Which rows it keeps.
    pub kind: JoinKind,
    /// Both inputs' first `keys` columns are the equi-join key.
    pub keys: usize,
    /// The types of each side's own columns (after the key columns).
    pub sides: [Vec<FlinkType>; 2],
    /// True if the side's batches end with a row-kind column.
    pub updating: [bool; 2],
    /// The output columns: the left side's, then the right side's (outer sides nullable).
    pub output: Vec<(String, FlinkType)>,
    /// True if the output is updating (it has a row-kind column).
    pub emits_kinds: bool,
    /// Time bounds, for an interval join.
    pub interval: Option<IntervalBounds>,
    /// Idle state retention of a regular join's rows (`table.exec.state.ttl`; set when the
    /// job is built). An interval join's rows go with the watermark instead.
    pub state_ttl: Option<crate::retention::StateTtl>,
}

impl JoinSpec {
    /// A row of `side` padded with NULLs for the other side.
    fn padded(&self, side: usize, mine: &[Option<Value>]) -> Vec<Option<Value>> {
        let nulls = vec![None; self.sides[1 - side].len()];
        joined(side, mine, &nulls)
    }
}

/// The joined row of a row of `side` and a row of the other side.
fn joined(side: usize, mine: &[Option<Value>], other: &[Option<Value>]) -> Vec<Option<Value>> {
    let (l, r) = if side == 0 {
        (mine, other)
    } else {
        (other, mine)
    };
    l.iter().chain(r).cloned().collect()
}

/// The non-equi part of a join condition, compiled, with the joined row's schema.
struct Residual {
    expr: Option<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Residual {
    /// Which candidate pairs (joined rows of `spec`'s columns) pass the condition.
    fn mask(
        &self,
        spec: &JoinSpec,
        pairs: &[Vec<Option<Value>>],
        info: &OperatorInfo,
    ) -> Result<Vec<bool>> {
        let Some(residual) = &self.expr else {
            return Ok(vec![true; pairs.len()]);
        };
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<ArrayRef> = spec
            .sides
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| build_column(t, pairs.iter().map(|p| p[i].clone())))
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| info.error(format!("cannot build the joined rows: {e}")))?;
        let mask = residual
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| info.error(e.strip_backtrace()))?;
        let mask: &BooleanArray = mask
            .as_boolean_opt()
            .ok_or_else(|| info.error("a join condition that is not BOOLEAN"))?;
        Ok((0..mask.len())
            .map(|i| mask.is_valid(i) && mask.value(i))
            .collect())
    }
}

/// One distinct row of a side, with its multiplicity and (for an outer side) how many rows
/// of the other side it is joined to.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    row: Vec<Option<Value>>,
    count: i64,
    partners: i64,
    /// When it was last written (processing time), for the state TTL.
    written: i64,
}

/// State names of the two sides' rows.
const SIDES: [&str; 2] = ["join-left", "join-right"];

/// Runs a [`JoinSpec`] on one subtask.
pub struct JoinOp {
    spec: Arc<JoinSpec>,
    residual: Residual,
    schema: SchemaRef,
    backend: KeyedStateBackend<RowKey>,
    states: [StateId; 2],
    /// Expiry timers of an interval join (event time), and the state retention's cleanup
    /// timers (processing time), per key and side.
    timers: InternalTimers<RowKey, u8>,
    /// A regular join's state retention, per key and side: the side's rows go when the
    /// side was not written for the TTL; single rows older than it are dropped when their
    /// key's rows are next touched.
    retention: Option<crate::retention::Retention<u8>>,
    watermark: i64,
    info: OperatorInfo,
}

/// The changes one input batch causes, as output rows.
#[derive(Default)]
struct Changes {
    rows: Vec<Vec<Option<Value>>>,
    kinds: Vec<i8>,
}

impl Changes {
    fn push(&mut self, kind: RowKind, row: Vec<Option<Value>>, times: i64) {
        for _ in 0..times.max(0) {
            self.rows.push(row.clone());
            self.kinds.push(kind as i8);
        }
    }
}

impl JoinOp {
    /// The operator for subtask `info`; `residual` is compiled against the joined row
    /// (`residual_schema`: the left side's columns, then the right side's).
    pub fn new(
        spec: Arc<JoinSpec>,
        residual: Option<Arc<dyn PhysicalExpr>>,
        residual_schema: SchemaRef,
        info: &OperatorInfo,
    ) -> Result<Self> {
        let mut backend = KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism);
        let mut states = [0; 2];
        for (s, name) in states.iter_mut().zip(SIDES) {
            *s = backend
                .register::<(), Vec<Stored>>(name)
                .map_err(|e| info.error(e.to_string()))?;
        }
        let ttl = spec.state_ttl.filter(|_| spec.interval.is_none());
        let retention = crate::retention::Retention::register(&mut backend, ttl)
            .map_err(|e| info.error(e.to_string()))?;
        let mut columns: Vec<(String, FlinkType)> = spec.output.clone();
        if spec.emits_kinds {
            columns.push((
                crate::changelog::ROW_KIND.to_string(),
                FlinkType::not_null(crate::types::Kind::TinyInt),
            ));
        }
        Ok(JoinOp {
            schema: crate::csv_source::schema_of(&columns),
            residual: Residual {
                expr: residual,
                schema: residual_schema,
            },
            spec,
            backend,
            states,
            retention,
            timers: InternalTimers::new(info.processing_time.clone()),
            watermark: i64::MIN,
            info: info.clone(),
        })
    }

    /// When a row of `side` stops waiting for partners (interval joins only).
    fn expiry_of(&self, side: usize, row: &[Option<Value>]) -> Option<i64> {
        let b = self.spec.interval?;
        let column = if side == 0 { b.left_time } else { b.right_time };
        match row.get(column) {
            Some(Some(Value::Int(t))) => Some(b.expiry(side, *t)),
            // A NULL time waits for nothing.
            _ => Some(i64::MIN),
        }
    }

    /// Drops the rows of both sides of the current key that expired at `watermark`,
    /// emitting an outer side's rows that never found a partner.
    fn expire(&mut self, watermark: i64, changes: &mut Changes) -> Result<()> {
        for side in 0..2 {
            let rows = self.stored(side)?;
            let mut kept = Vec::with_capacity(rows.len());
            for r in rows {
                // Flink keeps a stored row through a watermark equal to its expiry.
                if self.expiry_of(side, &r.row).is_some_and(|e| e < watermark) {
                    if self.spec.kind.keeps(side) && r.partners == 0 {
                        changes.push(RowKind::Insert, self.spec.padded(side, &r.row), r.count);
                    }
                } else {
                    kept.push(r);
                }
            }
            self.store(side, kept)?;
        }
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> weir_runtime::RuntimeError {
        self.info.error(e.to_string())
    }

    /// Drops the current key's rows of `side` that were not written for the TTL (expired
    /// rows are never joined).
    fn drop_idle_rows(&mut self, side: usize, now: i64) -> Result<()> {
        let Some(ttl) = self.retention.as_ref().map(|r| r.ttl_ms()) else {
            return Ok(());
        };
        let (table, k, slot) = self
            .backend
            .table::<(), Vec<Stored>>(self.states[side])
            .map_err(|e| self.info.error(e.to_string()))?;
        let Some(rows) = table
            .get_mut(slot, k, &())
            .map_err(|e| self.info.error(e.to_string()))?
        else {
            return Ok(());
        };
        rows.retain(|r| r.written.saturating_add(ttl) > now);
        if rows.is_empty() {
            table
                .remove(slot, k, &())
                .map_err(|e| self.info.error(e.to_string()))?;
        }
        Ok(())
    }

    /// The stored rows of `side` under the current key.
    fn stored(&mut self, side: usize) -> Result<Vec<Stored>> {
        let (table, key, slot) = self
            .backend
            .table::<(), Vec<Stored>>(self.states[side])
            .map_err(|e| self.info.error(e.to_string()))?;
        Ok(table
            .get(slot, key, &())
            .map_err(|e| self.info.error(e.to_string()))?
            .cloned()
            .unwrap_or_default())
    }

    fn store(&mut self, side: usize, rows: Vec<Stored>) -> Result<()> {
        let (table, key, slot) = self
            .backend
            .table::<(), Vec<Stored>>(self.states[side])
            .map_err(|e| self.info.error(e.to_string()))?;
        let r = if rows.is_empty() {
            table.remove(slot, key, &()).map(|_| ())
        } else {
            table.insert(slot, key, &(), rows)
        };
        r.map_err(|e| self.info.error(e.to_string()))
    }

    fn process(
        &mut self,
        side: usize,
        batch: &RecordBatch,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let other = 1 - side;
        let width = spec.sides[side].len();
        let row_kinds = if spec.updating[side] {
            kinds(batch)
        } else {
            None
        };
        let mut changes = Changes::default();
        let now = self.timers.clock.now();
        for row in 0..batch.num_rows() {
            let key = RowKey::of_row(&batch.columns()[..spec.keys], row)
                .ok_or_else(|| self.err("a join key column of a type that cannot be a key"))?;
            let null_key = key.0.contains(&crate::values::KeyCell::Null);
            let data: Vec<Option<Value>> = (0..width)
                .map(|c| value_at(batch.column(spec.keys + c).as_ref(), row))
                .collect();
            let adds = kind_at(row_kinds.as_ref(), row).adds();
            if null_key && !spec.kind.keeps(side) {
                continue;
            }
            // The key again for the TTL's bookkeeping (no copy without a TTL).
            let ttl_key = self.retention.is_some().then(|| key.clone());
            self.backend
                .set_current_key(key)
                .map_err(|e| self.info.error(e.to_string()))?;
            self.drop_idle_rows(0, now)?;
            self.drop_idle_rows(1, now)?;
            let kind = if adds {
                RowKind::Insert
            } else {
                RowKind::Delete
            };
            // The other side's rows of this key, updated in place (no copy per row).
            let mut matched = 0i64;
            if !null_key {
                let (table, k, slot) = self
                    .backend
                    .table::<(), Vec<Stored>>(self.states[other])
                    .map_err(|e| self.info.error(e.to_string()))?;
                if let Some(partners) = table
                    .get_mut(slot, k, &())
                    .map_err(|e| self.info.error(e.to_string()))?
                {
                    let pairs: Vec<Vec<Option<Value>>> = partners
                        .iter()
                        .map(|p| joined(side, &data, &p.row))
                        .collect();
                    let mask = self.residual.mask(&spec, &pairs, &self.info)?;
                    for ((p, pair), ok) in partners.iter_mut().zip(pairs).zip(mask) {
                        if !ok {
                            continue;
                        }
                        matched += p.count;
                        if spec.kind.keeps(other) && spec.interval.is_some() {
                            p.partners += if adds { 1 } else { -1 };
                        } else if spec.kind.keeps(other) {
                            let padded = spec.padded(other, &p.row);
                            if adds {
                                if p.partners == 0 {
                                    changes.push(RowKind::Delete, padded, p.count);
                                }
                                p.partners += 1;
                            } else {
                                p.partners -= 1;
                                if p.partners == 0 {
                                    changes.push(RowKind::Insert, padded, p.count);
                                }
                            }
                        }
                        changes.push(kind, pair, p.count);
                    }
                }
            }
            let expiry = self.expiry_of(side, &data);
            let expired = expiry.is_some_and(|e| e <= self.watermark);
            // A regular outer join pads a row at once; an interval join when it expires.
            if matched == 0
                && spec.kind.keeps(side)
                && (spec.interval.is_none() || expired || null_key)
            {
                changes.push(kind, self.spec.padded(side, &data), 1);
            }
            if null_key || expired {
                // Nothing can join it any more: it is not kept.
                continue;
            }
            if let Some(e) = expiry {
                let key = self
                    .backend
                    .current_key()
                    .map_err(|e| self.info.error(e.to_string()))?
                    .clone();
                self.timers
                    .register_event(e.saturating_add(1), key, side as u8);
            }
            let (table, k, slot) = self
                .backend
                .table::<(), Vec<Stored>>(self.states[side])
                .map_err(|e| self.info.error(e.to_string()))?;
            let mine = table
                .get_or_insert_with(slot, k, &(), Vec::new)
                .map_err(|e| self.info.error(e.to_string()))?;
            match mine.iter().position(|s| s.row == data) {
                Some(i) if adds => {
                    mine[i].count += 1;
                    mine[i].written = now;
                }
                Some(i) => {
                    mine[i].count -= 1;
                    if mine[i].count <= 0 {
                        mine.swap_remove(i);
                    }
                }
                None if adds => mine.push(Stored {
                    row: data,
                    count: 1,
                    partners: matched,
                    written: now,
                }),
                None => {}
            }
            if mine.is_empty() {
                table
                    .remove(slot, k, &())
                    .map_err(|e| self.info.error(e.to_string()))?;
            }
            if let (Some(r), Some(key)) = (&self.retention, &ttl_key) {
                r.written(&mut self.backend, &mut self.timers, key, &(side as u8), now)
                    .map_err(|e| self.info.error(e.to_string()))?;
            }
        }
        self.emit(changes, out)
    }

    fn emit(&self, changes: Changes, out: &mut Outputs<Batch>) -> Result<()> {
        let Changes { rows, kinds } = changes;
        emit_rows(
            out,
            &self.schema,
            self.spec.output.iter().map(|(_, t)| *t),
            rows,
            self.spec.emits_kinds.then_some(kinds),
            &self.info,
        )
    }
}

impl TwoInputOperator<Batch, Batch, Batch> for JoinOp {
    fn process_element1(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        self.process(0, &record.value.0, out)
    }

    fn process_element2(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        self.process(1, &record.value.0, out)
    }

    fn process_watermark(
        &mut self,
        watermark: weir_runtime::Watermark,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        self.watermark = self.watermark.max(watermark.0);
        let mut changes = Changes::default();
        while let Some((_, key, _)) = self.timers.event.pop_due(watermark.0) {
            self.backend
                .set_current_key(key)
                .map_err(|e| self.info.error(e.to_string()))?;
            self.expire(watermark.0, &mut changes)?;
        }
        self.emit(changes, out)?;
        out.emit_watermark(watermark)
    }

    fn on_processing_time(&mut self, now: i64, _: &mut Outputs<Batch>) -> Result<()> {
        let Some(r) = &self.retention else {
            return Ok(());
        };
        let states = self.states;
        r.expire_due(&mut self.backend, &mut self.timers, now, |backend, side| {
            let (table, k, slot) = backend.table::<(), Vec<Stored>>(states[*side as usize])?;
            table.remove(slot, k, &()).map(|_| ())
        })
        .map_err(|e| self.err(e))
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
