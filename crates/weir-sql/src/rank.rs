//! The Top-N operator: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ...)` filtered to the
//! first N rows (`WHERE rn <= N`), Flink's `Rank`; with N = 1 it is Flink's deduplication
//! (keep first with `ORDER BY ts ASC`, keep last with `ORDER BY ts DESC`).
//!
//! Input batches hold the partition key columns first, then the sort key columns, then the
//! row's output columns (without the row number), then a row-kind column if the input is
//! updating. Per partition key, keyed state holds the partition's rows in sort order (each
//! distinct row with its multiplicity). For each partition an input batch touched, the
//! operator compares the first N rows (with their row numbers, if the query selects them)
//! before and after the batch and emits the difference: `-D` for rows that left the top N
//! or changed number, `+I` for those that entered. The materialised result is Flink's; the
//! changelog is shorter (Flink retracts and re-emits per input row).
//!
//! NULLs sort as Flink sorts them: first in ascending order, last in descending order.

use crate::changelog::{kind_at, kinds, RowKind, ROW_KIND};
use crate::types::{FlinkType, Kind};
use crate::values::{emit_rows, value_at, RowKey, Value};
use arrow_schema::SchemaRef;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_api::timers::{restore_keyed, snapshot_keyed, InternalTimers};
use weir_runtime::operator::{OneInputOperator, OperatorInfo, Outputs};
use weir_runtime::{Result, StreamRecord};
use weir_state::{KeyedStateBackend, StateId};

/// One ORDER BY key: ascending or not, NULLs first or last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    /// Ascending order.
    pub asc: bool,
    /// NULLs before the values.
    pub nulls_first: bool,
}

/// A Top-N as data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankSpec {
    /// Input columns `0..keys` are the partition key.
    pub keys: usize,
    /// The sort keys: the input columns after the partition key, in order.
    pub sort: Vec<SortKey>,
    /// How many rows per partition it keeps.
    pub limit: usize,
    /// The types of the row's output columns (after the sort keys).
    pub columns: Vec<FlinkType>,
    /// Where the row number goes among the output columns, if the query selects it.
    pub row_number_at: Option<usize>,
    /// The output columns' names and types (the row number included).
    pub output: Vec<(String, FlinkType)>,
    /// True if the input's batches end with a row-kind column.
    pub updating: bool,
    /// A row goes before the rows that sort equal to it, not after: Flink's deduplication
    /// keeping the last row by time (`ORDER BY rowtime DESC`, `rn = 1`) keeps the newer of
    /// two rows with the same time.
    pub newer_first: bool,
    /// Idle state retention (`table.exec.state.ttl`; set when the job is built).
    #[serde(default)]
    pub state_ttl: Option<crate::retention::StateTtl>,
}

impl RankSpec {
    /// The Arrow schema of the output batches (with the row kind last).
    pub fn schema(&self) -> SchemaRef {
        let mut columns = self.output.clone();
        columns.push((ROW_KIND.to_string(), FlinkType::not_null(Kind::TinyInt)));
        crate::csv_source::schema_of(&columns)
    }

    /// The output rows of a partition's first N rows, numbered.
    fn top(&self, rows: &[Ranked]) -> Vec<Vec<Option<Value>>> {
        let mut out = Vec::new();
        for r in rows {
            for _ in 0..r.count {
                if out.len() == self.limit {
                    return out;
                }
                let mut row = r.row.clone();
                if let Some(at) = self.row_number_at {
                    row.insert(at, Some(Value::Int(out.len() as i64 + 1)));
                }
                out.push(row);
            }
        }
        out
    }

    fn compare(&self, a: &[Option<Value>], b: &[Option<Value>]) -> Ordering {
        for (k, (x, y)) in self.sort.iter().zip(a.iter().zip(b)) {
            let o = match (x, y) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => {
                    if k.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (Some(_), None) => {
                    if k.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (Some(x), Some(y)) => {
                    if k.asc {
                        x.cmp(y)
                    } else {
                        y.cmp(x)
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

/// A distinct row of a partition: its sort key, its columns, how often it is in.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ranked {
    sort: Vec<Option<Value>>,
    row: Vec<Option<Value>>,
    count: i64,
}

/// Removes the current key's partition.
fn remove_partition(
    backend: &mut KeyedStateBackend<RowKey>,
    partitions: StateId,
) -> weir_state::Result<()> {
    let (table, k, slot) = backend.table::<(), Vec<Ranked>>(partitions)?;
    table.remove(slot, k, &()).map(|_| ())
}

/// State name of the partitions.
const PARTITIONS: &str = "rank-partitions";

/// Runs a [`RankSpec`] on one subtask.
pub struct RankOp {
    spec: Arc<RankSpec>,
    schema: SchemaRef,
    backend: KeyedStateBackend<RowKey>,
    partitions: StateId,
    /// The state retention's cleanup timers (processing time), if there is a TTL.
    timers: InternalTimers<RowKey, ()>,
    retention: Option<crate::retention::Retention<()>>,
    info: OperatorInfo,
}

impl RankOp {
    /// The operator for subtask `info`.
    pub fn new(spec: Arc<RankSpec>, info: &OperatorInfo) -> Result<Self> {
        let mut backend = KeyedStateBackend::with_store(info.keyed_store()?, info.max_parallelism);
        let partitions = backend
            .register::<(), Vec<Ranked>>(PARTITIONS)
            .map_err(|e| info.error(e.to_string()))?;
        let retention = crate::retention::Retention::register(&mut backend, spec.state_ttl)
            .map_err(|e| info.error(e.to_string()))?;
        Ok(RankOp {
            retention,
            schema: spec.schema(),
            spec,
            backend,
            partitions,
            timers: InternalTimers::new(info.processing_time.clone()),
            info: info.clone(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> weir_runtime::RuntimeError {
        self.info.error(e.to_string())
    }

    /// Drops the current key's partition if its TTL passed (it starts afresh).
    fn expire_if_idle(&mut self, now: i64) -> Result<()> {
        let Some(r) = &self.retention else {
            return Ok(());
        };
        if r.expired(&mut self.backend, &(), now)
            .map_err(|e| self.err(e))?
        {
            self.remove_partition()?;
        }
        Ok(())
    }

    fn remove_partition(&mut self) -> Result<()> {
        remove_partition(&mut self.backend, self.partitions).map_err(|e| self.err(e))
    }
}

impl OneInputOperator<Batch, Batch> for RankOp {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        out: &mut Outputs<Batch>,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let batch = &record.value.0;
        let row_kinds = if spec.updating { kinds(batch) } else { None };
        let sorts = spec.sort.len();
        let now = self.timers.clock.now();
        // Each partition touched, in order of first touch, with its top N before.
        let mut order: Vec<RowKey> = Vec::new();
        let mut before: HashMap<RowKey, Vec<Vec<Option<Value>>>> = HashMap::new();
        for row in 0..batch.num_rows() {
            let key = RowKey::of_row(&batch.columns()[..spec.keys], row)
                .ok_or_else(|| self.err("a partition key column of a type that cannot be a key"))?;
            let value = |c: usize| value_at(batch.column(c).as_ref(), row);
            let sort: Vec<Option<Value>> = (0..sorts).map(|i| value(spec.keys + i)).collect();
            let columns: Vec<Option<Value>> = (0..spec.columns.len())
                .map(|i| value(spec.keys + sorts + i))
                .collect();
            self.backend
                .set_current_key(key.clone())
                .map_err(|e| self.info.error(e.to_string()))?;
            self.expire_if_idle(now)?;
            // The row writes its partition: it refreshes the partition's TTL.
            if let Some(r) = &self.retention {
                r.written(&mut self.backend, &mut self.timers, &key, &(), now)
                    .map_err(|e| self.info.error(e.to_string()))?;
            }
            // The partition's rows, updated in place.
            let (table, k, slot) = self
                .backend
                .table::<(), Vec<Ranked>>(self.partitions)
                .map_err(|e| self.info.error(e.to_string()))?;
            let rows = table
                .get_or_insert_with(slot, k, &(), Vec::new)
                .map_err(|e| self.info.error(e.to_string()))?;
            if !before.contains_key(&key) {
                before.insert(key.clone(), spec.top(rows));
                order.push(key);
            }
            // The first position whose row sorts after the new one (ties keep arrival
            // order), or the equal row's.
            if kind_at(row_kinds.as_ref(), row).adds() {
                match rows.iter().position(|r| r.row == columns && r.sort == sort) {
                    Some(i) => rows[i].count += 1,
                    None => {
                        let after = |o: Ordering| {
                            o == Ordering::Greater || (spec.newer_first && o == Ordering::Equal)
                        };
                        let at = rows
                            .iter()
                            .position(|r| after(spec.compare(&r.sort, &sort)))
                            .unwrap_or(rows.len());
                        rows.insert(
                            at,
                            Ranked {
                                sort,
                                row: columns,
                                count: 1,
                            },
                        );
                    }
                }
            } else if let Some(i) = rows.iter().position(|r| r.row == columns && r.sort == sort) {
                rows[i].count -= 1;
                if rows[i].count <= 0 {
                    rows.remove(i);
                }
            }
            if !spec.updating {
                // Nothing is ever withdrawn: rows behind the first N cannot come back.
                let mut kept = 0;
                rows.retain(|r| {
                    let keep = kept < spec.limit as i64;
                    kept += r.count;
                    keep
                });
            }
            if rows.is_empty() {
                table
                    .remove(slot, k, &())
                    .map_err(|e| self.info.error(e.to_string()))?;
            }
        }
        let mut changes: Vec<Vec<Option<Value>>> = Vec::new();
        let mut change_kinds: Vec<i8> = Vec::new();
        for key in order {
            self.backend
                .set_current_key(key.clone())
                .map_err(|e| self.info.error(e.to_string()))?;
            let (table, k, slot) = self
                .backend
                .table::<(), Vec<Ranked>>(self.partitions)
                .map_err(|e| self.info.error(e.to_string()))?;
            let after = table
                .get(slot, k, &())
                .map_err(|e| self.info.error(e.to_string()))?
                .map_or_else(Vec::new, |rows| spec.top(rows));
            let mut gone = before.remove(&key).unwrap_or_default();
            let mut came = Vec::new();
            for r in after {
                match gone.iter().position(|g| *g == r) {
                    Some(i) => {
                        gone.swap_remove(i);
                    }
                    None => came.push(r),
                }
            }
            for (kind, rows) in [(RowKind::Delete, gone), (RowKind::Insert, came)] {
                for r in rows {
                    changes.push(r);
                    change_kinds.push(kind as i8);
                }
            }
        }
        emit_rows(
            out,
            &self.schema,
            spec.output.iter().map(|(_, t)| *t),
            changes,
            Some(change_kinds),
            &self.info,
        )
    }

    fn on_processing_time(&mut self, now: i64, _: &mut Outputs<Batch>) -> Result<()> {
        let Some(r) = &self.retention else {
            return Ok(());
        };
        let partitions = self.partitions;
        r.expire_due(&mut self.backend, &mut self.timers, now, |backend, _| {
            remove_partition(backend, partitions)
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
