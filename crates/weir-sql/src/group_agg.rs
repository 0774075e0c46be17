//! The group aggregate operator: `GROUP BY` without a window (Flink's `GroupAggregate`), an
//! updating result.
//!
//! Input batches hold the group key columns first, then the aggregates' argument columns,
//! and a row-kind column if the input is itself updating. The batch exchange in front of
//! the operator partitions rows by the key columns. Per group key, keyed state holds the
//! number of rows in the group and the accumulators. For each group a batch touched, the
//! operator emits what changed: `+I` for a new group, `-U` of the old row and `+U` of the
//! new one for a changed group, `-D` for a group whose last row was withdrawn, and nothing
//! if the group's row did not change (as Flink does without state TTL).
//!
//! Departure from Flink: Flink emits the changes after every input row unless mini-batch
//! is enabled; Weir emits them once per input batch (Flink's mini-batch behaviour), so a
//! group touched by many rows of a batch gives one update, not one per row. The materialised
//! result is the same after every batch.

use crate::aggregate::{Acc, AggCall};
use crate::changelog::{kind_at, kinds, RowKind, ROW_KIND};
use crate::csv_source::schema_of;
use crate::retention::{Retention, StateTtl};
use crate::types::FlinkType;
use crate::values::{emit_rows, value_at, RowKey, Value};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::timers::{restore_keyed, snapshot_keyed, InternalTimers};
use weir_runtime::operator::{OneInputOperator, OperatorInfo, Outputs};
use weir_runtime::{Result, StreamRecord};
use weir_state::{KeyedStateBackend, StateId};

/// What one output column of a group aggregate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupColumn {
    /// Group key column `i`.
    Key(usize),
    /// Aggregate call `i`.
    Agg(usize),
}

/// A group aggregate as data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupAggSpec {
    /// Input columns `0..keys` are the group key.
    pub keys: usize,
    /// The aggregate calls, over input columns.
    pub aggs: Vec<AggCall>,
    /// The output columns with their names and types (a row-kind column follows them).
    pub output: Vec<(String, GroupColumn, FlinkType)>,
    /// Idle state retention (`table.exec.state.ttl`; set when the job is built).
    #[serde(default)]
    pub state_ttl: Option<StateTtl>,
}

impl GroupAggSpec {
    /// The Arrow schema of the output batches: the output columns, then the row kind.
    pub fn schema(&self) -> SchemaRef {
        let columns: Vec<(String, FlinkType)> = self
            .output
            .iter()
            .map(|(n, _, t)| (n.clone(), *t))
            .collect();
        let mut fields: Vec<Field> = schema_of(&columns)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ROW_KIND, DataType::Int8, false));
        Arc::new(Schema::new(fields))
    }
}

/// One group's state: how many rows it holds and their accumulators.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Group {
    rows: i64,
    accs: Vec<Acc>,
}

/// The output row of a group: its key cells and aggregate values.
fn result_row(spec: &GroupAggSpec, key: &RowKey, group: &Group) -> Vec<Option<Value>> {
    spec.output
        .iter()
        .map(|(_, c, _)| match *c {
            GroupColumn::Key(i) => key.0.get(i).and_then(|k| k.value()),
            GroupColumn::Agg(i) => spec.aggs[i].value(&group.accs[i]),
        })
        .collect()
}

/// Removes the current key's group.
fn remove_group(
    backend: &mut KeyedStateBackend<RowKey>,
    groups: StateId,
) -> weir_state::Result<()> {
    let (table, k, slot) = backend.table::<(), Group>(groups)?;
    table.remove(slot, k, &()).map(|_| ())
}

/// State name of the groups.
const GROUPS: &str = "groups";

/// Runs a [`GroupAggSpec`] on one subtask.
pub struct GroupAggregateOp {
    spec: Arc<GroupAggSpec>,
    schema: SchemaRef,
    backend: KeyedStateBackend<RowKey>,
    groups: StateId,
    /// The state retention's cleanup timers (processing time), if there is a TTL.
    timers: InternalTimers<RowKey, ()>,
    retention: Option<Retention<()>>,
    info: OperatorInfo,
}

impl GroupAggregateOp {
    /// The operator for subtask `info`, its state in the subtask's keyed store.
    pub fn new(spec: Arc<GroupAggSpec>, info: &OperatorInfo) -> Result<Self> {
        let mut backend = KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism);
        let groups = backend
            .register::<(), Group>(GROUPS)
            .map_err(|e| info.error(e.to_string()))?;
        let retention = Retention::register(&mut backend, spec.state_ttl)
            .map_err(|e| info.error(e.to_string()))?;
        Ok(GroupAggregateOp {
            retention,
            schema: spec.schema(),
            spec,
            backend,
            groups,
            timers: InternalTimers::new(info.processing_time.clone()),
            info: info.clone(),
        })
    }

    fn state_err(&self, e: weir_state::StateError) -> weir_runtime::RuntimeError {
        self.info.error(e.to_string())
    }

    /// Drops the current key's group if its TTL passed (it starts afresh).
    fn expire_if_idle(&mut self, now: i64) -> Result<()> {
        let Some(r) = &self.retention else {
            return Ok(());
        };
        if r.expired(&mut self.backend, &(), now)
            .map_err(|e| self.info.error(e.to_string()))?
        {
            self.remove_group()?;
        }
        Ok(())
    }

    fn remove_group(&mut self) -> Result<()> {
        remove_group(&mut self.backend, self.groups).map_err(|e| self.state_err(e))
    }
}

impl OneInputOperator<Batch, Batch> for GroupAggregateOp {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let batch = &record.value.0;
        let row_kinds = kinds(batch);
        // Each group the batch touches, in order of first touch, with its row before.
        let mut touched: Vec<(RowKey, Option<Vec<Option<Value>>>)> = Vec::new();
        let mut seen: HashSet<RowKey> = HashSet::new();
        let mut args: Vec<Option<Value>> = Vec::with_capacity(spec.aggs.len());
        let now = self.timers.clock.now();
        for row in 0..batch.num_rows() {
            let key = RowKey::of_row(&batch.columns()[..spec.keys], row).ok_or_else(|| {
                self.info
                    .error("a group key column of a type that cannot be a key")
            })?;
            args.clear();
            args.extend(
                spec.aggs
                    .iter()
                    .map(|a| a.arg.and_then(|c| value_at(batch.column(c).as_ref(), row))),
            );
            let adds = kind_at(row_kinds.as_ref(), row).adds();
            self.backend
                .set_current_key(key.clone())
                .map_err(|e| self.state_err(e))?;
            self.expire_if_idle(now)?;
            if !adds {
                // Flink ignores a retraction of a group it does not hold.
                let (table, k, slot) = self
                    .backend
                    .table::<(), Group>(self.groups)
                    .map_err(|e| self.info.error(e.to_string()))?;
                let held = table
                    .get(slot, k, &())
                    .map_err(|e| self.info.error(e.to_string()))?
                    .is_some_and(|g| g.rows > 0);
                if !held {
                    continue;
                }
            }
            // The row writes its group: it refreshes the group's TTL.
            if let Some(r) = &self.retention {
                r.written(&mut self.backend, &mut self.timers, &key, &(), now)
                    .map_err(|e| self.info.error(e.to_string()))?;
            }
            let first_touch = seen.insert(key.clone());
            let (table, k, slot) = self
                .backend
                .table::<(), Group>(self.groups)
                .map_err(|e| self.info.error(e.to_string()))?;
            let group = table
                .get_or_insert_with(slot, k, &(), || Group {
                    rows: 0,
                    accs: spec.aggs.iter().map(AggCall::empty).collect(),
                })
                .map_err(|e| self.info.error(e.to_string()))?;
            if first_touch {
                let before = (group.rows > 0).then(|| result_row(&spec, &key, group));
                touched.push((key, before));
            }
            for ((call, acc), v) in spec.aggs.iter().zip(group.accs.iter_mut()).zip(&args) {
                if adds {
                    call.accumulate(acc, v.as_ref());
                } else {
                    call.retract(acc, v.as_ref());
                }
            }
            group.rows += if adds { 1 } else { -1 };
        }
        // The changes, as one batch.
        let mut rows: Vec<Vec<Option<Value>>> = Vec::new();
        let mut row_kinds: Vec<i8> = Vec::new();
        for (key, before) in touched {
            self.backend
                .set_current_key(key.clone())
                .map_err(|e| self.state_err(e))?;
            let (table, k, slot) = self
                .backend
                .table::<(), Group>(self.groups)
                .map_err(|e| self.info.error(e.to_string()))?;
            let after = match table
                .get(slot, k, &())
                .map_err(|e| self.info.error(e.to_string()))?
            {
                Some(g) if g.rows > 0 => Some(result_row(&spec, &key, g)),
                _ => None,
            };
            if after.is_none() {
                self.remove_group()?;
            }
            match (before, after) {
                (None, Some(a)) => {
                    rows.push(a);
                    row_kinds.push(RowKind::Insert as i8);
                }
                // With a TTL an unchanged row is sent again (Flink does, so that state
                // downstream is refreshed too).
                (Some(b), Some(a)) if b != a || self.retention.is_some() => {
                    rows.push(b);
                    row_kinds.push(RowKind::UpdateBefore as i8);
                    rows.push(a);
                    row_kinds.push(RowKind::UpdateAfter as i8);
                }
                (Some(b), None) => {
                    rows.push(b);
                    row_kinds.push(RowKind::Delete as i8);
                }
                _ => {}
            }
        }
        emit_rows(
            out,
            &self.schema,
            spec.output.iter().map(|(_, _, t)| *t),
            rows,
            Some(row_kinds),
            &self.info,
        )
    }

    fn on_processing_time(&mut self, now: i64, _: &mut Outputs<Batch>) -> Result<()> {
        let Some(r) = &self.retention else {
            return Ok(());
        };
        let groups = self.groups;
        r.expire_due(&mut self.backend, &mut self.timers, now, |backend, _| {
            remove_group(backend, groups)
        })
        .map_err(|e| self.state_err(e))
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
