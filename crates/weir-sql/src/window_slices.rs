//! The window aggregate for the common case, by slices (Flink's slicing window
//! aggregation): TUMBLE, HOP and CUMULATE windows, group keys of up to two integer-like
//! columns, and aggregates that fit in machine words (`COUNT(*)`, `COUNT(x)`, `SUM`, `MIN`
//! and `MAX` of integers, dates and millisecond timestamps). Other aggregates run on
//! [`crate::window_agg::WindowAggregateOp`], which gives the same rows.
//!
//! A window is the union of consecutive *slices* of the time line: a TUMBLE window is one
//! slice; a HOP window of `size` sliding by `slide` is `size / slide` slices of `slide`
//! (each row is added once, not once per window: W3's five windows per row cost one
//! update); a CUMULATE window of step `step` is the slices from its period's start to its
//! end. Each slice holds, per group key, a row of accumulator words in one flat vector
//! ([`Slice`]): a row is one hash probe and a few integer updates, with no allocation and
//! no dynamic dispatch. Rows are taken a batch at a time; consecutive rows of one slice
//! share the slice lookup.
//!
//! When the watermark passes a window's last millisecond, its slices are merged per key
//! and the window is emitted as one batch; a slice is dropped once the last window that
//! holds it has fired. Late rows follow Flink's slicing rule exactly: a row whose slice
//! belongs only to windows that fired is dropped; otherwise it is added to its slice, and
//! so counts in the windows that have not fired yet. The watermark a row is judged by is
//! the one in force before it (see [`crate::csv_source`]).
//!
//! Departure from DESIGN.md §4's per-key-group layout, as the DataStream API's window-major
//! operator does: slices are laid out by time, not by key group, in memory; a snapshot
//! splits them by each key's key group, so a job restores at another parallelism. The
//! operator runs on the heap state backend; with RocksDB the general operator keeps its
//! accumulators in RocksDB. The two snapshot layouts differ, so a SQL window aggregate's
//! savepoint restores on the state backend that took it.

use crate::aggregate::{AggCall, AggFunc};
use crate::types::{FlinkType, Kind};
use crate::values::{KeyCell, RowKey};
use crate::window_agg::{OutputColumn, WindowAggSpec};
use crate::window_tvf::WindowKind;
use arrow_array::builder::BooleanBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMillisecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int16Array, Int32Array, Int64Array, Int8Array,
    RecordBatch, TimestampMillisecondArray,
};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use std::collections::{BTreeMap, HashMap as StdHashMap};
use std::sync::Arc;
use weir_api::arrow_batch::Batch;
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::{Result, StreamRecord, Watermark};

/// The most group key columns a sliced aggregate takes.
const MAX_KEYS: usize = 2;

/// Emptied slices kept for reuse.
const MAX_SPARE: usize = 4;

/// Snapshot section of the slices (per key group).
const SLICES: &str = "sql-window-slices";

/// A key group's slice entries in a snapshot: ((slice end, first window), key, words).
type SliceEntries = Vec<((i64, i64), RowKey, Vec<i64>)>;

/// A group key of up to [`MAX_KEYS`] integer-like columns, with a bit per NULL cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
struct FastKey {
    values: [i64; MAX_KEYS],
    nulls: u8,
}

/// How one aggregate call updates its accumulator words.
#[derive(Clone, Copy, Debug)]
enum FastAgg {
    /// `COUNT(*)`: one word, the rows.
    CountStar,
    /// `COUNT(x)`: one word, the non-NULL values.
    Count { arg: usize },
    /// `SUM(x)`: two words, the wrapping sum and how many values.
    Sum { arg: usize },
    /// `MIN(x)`: two words, the smallest value and whether there is one.
    Min { arg: usize },
    /// `MAX(x)`: two words, the largest value and whether there is one.
    Max { arg: usize },
}

impl FastAgg {
    fn of(call: &AggCall) -> Option<FastAgg> {
        let word_arg = || {
            let ty = call.arg_type?;
            fits_word(&ty).then_some(call.arg?)
        };
        Some(match call.func {
            _ if call.retracts => return None,
            AggFunc::CountStar => FastAgg::CountStar,
            AggFunc::Count => FastAgg::Count { arg: call.arg? },
            AggFunc::Sum if call.arg_type?.is_integer() => FastAgg::Sum { arg: call.arg? },
            AggFunc::Min => FastAgg::Min { arg: word_arg()? },
            AggFunc::Max => FastAgg::Max { arg: word_arg()? },
            _ => return None,
        })
    }

    fn words(&self) -> usize {
        match self {
            FastAgg::CountStar | FastAgg::Count { .. } => 1,
            _ => 2,
        }
    }

    /// The accumulator words of no rows.
    fn init(&self, words: &mut Vec<i64>) {
        match self {
            FastAgg::CountStar | FastAgg::Count { .. } => words.push(0),
            _ => words.extend([0, 0]),
        }
    }

    /// Adds `other`'s words into `acc`'s.
    #[inline]
    fn merge(&self, acc: &mut [i64], other: &[i64]) {
        match self {
            FastAgg::CountStar | FastAgg::Count { .. } => acc[0] += other[0],
            FastAgg::Sum { .. } => {
                acc[0] = acc[0].wrapping_add(other[0]);
                acc[1] += other[1];
            }
            FastAgg::Min { .. } | FastAgg::Max { .. } => {
                if other[1] != 0 {
                    let min = matches!(self, FastAgg::Min { .. });
                    if acc[1] == 0 || (min && other[0] < acc[0]) || (!min && other[0] > acc[0]) {
                        acc[0] = other[0];
                    }
                    acc[1] = 1;
                }
            }
        }
    }
}

/// Adds the accumulator words `other` of one key into `acc`, call by call.
#[inline]
fn merge_words(aggs: &[FastAgg], acc: &mut [i64], other: &[i64]) {
    let mut w = 0;
    for a in aggs {
        let n = a.words();
        a.merge(&mut acc[w..w + n], &other[w..w + n]);
        w += n;
    }
}

/// True for the types whose values [`words_of`] turns into `i64`s that order as the values.
fn fits_word(ty: &FlinkType) -> bool {
    matches!(
        ty.kind,
        Kind::TinyInt | Kind::SmallInt | Kind::Int | Kind::BigInt | Kind::Date
    ) || matches!(ty.kind, Kind::Timestamp(p) if p <= 3)
}

/// True for the types a [`FastKey`] cell holds (as the batch exchange hashes them).
fn fits_key(ty: &FlinkType) -> bool {
    matches!(
        ty.kind,
        Kind::Boolean | Kind::TinyInt | Kind::SmallInt | Kind::Int | Kind::BigInt
    )
}

/// A column's values as `i64`s (NULLs as 0; the caller reads the null buffer).
fn words_of(column: &dyn Array) -> Option<Vec<i64>> {
    Some(match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().values().to_vec(),
        DataType::Int32 => widen(column.as_primitive::<Int32Type>().values()),
        DataType::Int16 => widen(column.as_primitive::<Int16Type>().values()),
        DataType::Int8 => widen(column.as_primitive::<Int8Type>().values()),
        DataType::Date32 => widen(column.as_primitive::<Date32Type>().values()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => column
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .to_vec(),
        DataType::Boolean => {
            let b = column.as_boolean();
            (0..b.len()).map(|i| b.value(i) as i64).collect()
        }
        _ => return None,
    })
}

fn widen<T: Copy + Into<i64>>(values: &[T]) -> Vec<i64> {
    values.iter().map(|v| (*v).into()).collect()
}

/// One slice: per group key, a row of accumulator words.
///
/// Invariants: `keys[i]` owns the words `accs[i * width .. (i + 1) * width]`, and
/// `index[keys[i]] == i` for every `i`; `accs.len() == keys.len() * width`.
#[derive(Clone, Default)]
struct Slice {
    index: hashbrown::HashMap<FastKey, u32>,
    keys: Vec<FastKey>,
    accs: Vec<i64>,
}

impl Slice {
    /// The position of `key`'s words, added with `init` if the key is new.
    #[inline]
    fn slot(&mut self, key: FastKey, init: &[i64]) -> usize {
        let Slice { index, keys, accs } = self;
        *index.entry(key).or_insert_with(|| {
            keys.push(key);
            accs.extend_from_slice(init);
            (keys.len() - 1) as u32
        }) as usize
    }

    fn clear(&mut self) {
        self.index.clear();
        self.keys.clear();
        self.accs.clear();
    }
}

/// The slicing of a window kind: slice length, and which slices a window spans.
#[derive(Clone, Copy, Debug)]
enum Slicing {
    Tumble { size: i64 },
    Hop { slide: i64, size: i64 },
    Cumulate { step: i64, size: i64 },
}

impl Slicing {
    fn of(kind: &WindowKind) -> Option<Slicing> {
        Some(match *kind {
            WindowKind::Tumble { size } => Slicing::Tumble { size },
            WindowKind::Hop { slide, size } if size % slide == 0 => Slicing::Hop { slide, size },
            WindowKind::Cumulate { step, size } if size % step == 0 => {
                Slicing::Cumulate { step, size }
            }
            _ => return None,
        })
    }

    /// The distance between consecutive slice (and window) ends.
    fn step(&self) -> i64 {
        match *self {
            Slicing::Tumble { size } => size,
            Slicing::Hop { slide, .. } => slide,
            Slicing::Cumulate { step, .. } => step,
        }
    }

    /// The end of the slice holding `ts`.
    #[inline]
    fn slice_end(&self, ts: i64) -> i64 {
        let step = self.step();
        ts - ts.rem_euclid(step) + step
    }

    /// The end of the last window holding the slice that ends at `slice_end`.
    #[inline]
    fn last_window_end(&self, slice_end: i64) -> i64 {
        match *self {
            Slicing::Tumble { .. } => slice_end,
            Slicing::Hop { slide, size } => slice_end + size - slide,
            Slicing::Cumulate { size, .. } => {
                let e = slice_end - 1;
                e - e.rem_euclid(size) + size
            }
        }
    }

    /// The start of the window ending at `end`.
    fn window_start(&self, end: i64) -> i64 {
        match *self {
            Slicing::Tumble { size } | Slicing::Hop { size, .. } => end - size,
            Slicing::Cumulate { size, .. } => {
                let e = end - 1;
                e - e.rem_euclid(size)
            }
        }
    }

    /// The end of the first slice of the window ending at `end`.
    fn first_slice_end(&self, end: i64) -> i64 {
        self.window_start(end) + self.step()
    }

    /// The end of the first window holding the slice ending at `slice_end` that the
    /// watermark `watermark` has not passed (windows end on the slice grid).
    fn first_open_window(&self, slice_end: i64, watermark: i64) -> i64 {
        if watermark < slice_end - 1 {
            return slice_end;
        }
        let step = self.step();
        // The smallest grid point `e` with `e - 1 > watermark`.
        let e = watermark.saturating_add(2);
        (e - e.rem_euclid(step) + if e.rem_euclid(step) == 0 { 0 } else { step }).max(slice_end)
    }
}

/// Runs a [`WindowAggSpec`] by slices on one subtask (see the module documentation).
pub struct SlicedWindowAggregateOp {
    spec: Arc<WindowAggSpec>,
    schema: SchemaRef,
    slicing: Slicing,
    aggs: Vec<FastAgg>,
    /// The accumulator words of no rows, for all calls.
    init: Vec<i64>,
    /// Words per key.
    width: usize,
    key_types: Vec<FlinkType>,
    /// By (slice end, end of the first window the slice counts in): rows that came after
    /// the watermark passed some of their slice's windows count only in the later ones.
    slices: BTreeMap<(i64, i64), Slice>,
    /// The end of the last window fired (`i64::MIN`: none yet).
    fired_up_to: i64,
    /// After a restore: per key group, the end of the last window that fired before the
    /// snapshot, so no window fires twice.
    restored_fired: Option<(i64, StdHashMap<u32, i64>)>,
    watermark: i64,
    info: OperatorInfo,
    /// Reused: the window being merged; per-batch slice ends and key words.
    merged: Slice,
    /// Emptied slices of fired windows, reused for new ones: a new slice then fills
    /// without growing its table step by step.
    spare: Vec<Slice>,
    slice_ends: Vec<(i64, i64)>,
}

impl SlicedWindowAggregateOp {
    /// True if `spec` runs by slices.
    pub fn supports(spec: &WindowAggSpec) -> bool {
        Slicing::of(&spec.window).is_some()
            && spec.keys <= MAX_KEYS
            && spec.key_types.len() == spec.keys
            && spec.key_types.iter().all(fits_key)
            && spec.aggs.iter().all(|a| FastAgg::of(a).is_some())
    }

    /// The operator for subtask `info` (see [`Self::supports`]).
    pub fn new(spec: Arc<WindowAggSpec>, info: &OperatorInfo) -> Result<Self> {
        let unsupported = || info.error("a window aggregate that cannot run by slices");
        let slicing = Slicing::of(&spec.window).ok_or_else(unsupported)?;
        let aggs = spec
            .aggs
            .iter()
            .map(FastAgg::of)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(unsupported)?;
        let mut init = Vec::new();
        for a in &aggs {
            a.init(&mut init);
        }
        Ok(SlicedWindowAggregateOp {
            schema: spec.schema(),
            slicing,
            width: init.len(),
            init,
            aggs,
            key_types: spec.key_types.clone(),
            spec,
            slices: BTreeMap::new(),
            fired_up_to: i64::MIN,
            restored_fired: None,
            watermark: i64::MIN,
            info: info.clone(),
            merged: Slice::default(),
            spare: Vec::new(),
            slice_ends: Vec::new(),
        })
    }

    fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        let time = batch.column(self.spec.rowtime);
        if time.null_count() > 0 {
            return Err(self.info.error(
                "a row's time attribute is NULL (a rowtime must not be NULL, as in Flink)",
            ));
        }
        let times = words_of(time.as_ref()).ok_or_else(|| {
            self.info
                .error("a time attribute that is not a TIMESTAMP(3)")
        })?;
        let row_watermarks = self
            .spec
            .watermark
            .and_then(|c| batch.columns().get(c))
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        // Each row's slice, or `i64::MIN` if every window holding it fired.
        self.slice_ends.clear();
        // Windows up to `fired_up_to` fired: after a restore (which starts without a
        // watermark, as Flink's operators do) a row for them is late too, not kept in a
        // slice no window will read.
        let fired = self.fired_up_to.saturating_sub(1);
        for (row, &ts) in times.iter().enumerate() {
            let watermark = match row_watermarks {
                Some(w) => self.watermark.max(w.value(row)),
                None => self.watermark,
            }
            .max(fired);
            let end = self.slicing.slice_end(ts);
            let late = self.slicing.last_window_end(end) - 1 <= watermark;
            self.slice_ends.push(if late {
                (i64::MIN, i64::MIN)
            } else {
                (end, self.slicing.first_open_window(end, watermark))
            });
        }
        let keys = self.keys_of(batch)?;
        let args = self.args_of(batch)?;
        let mut row = 0;
        while row < n {
            let end = self.slice_ends[row];
            let run = self.slice_ends[row..]
                .iter()
                .position(|&e| e != end)
                .map_or(n, |p| row + p);
            if end.0 != i64::MIN {
                let spare = &mut self.spare;
                let slice = self
                    .slices
                    .entry(end)
                    .or_insert_with(|| spare.pop().unwrap_or_default());
                for (r, key) in keys.iter().enumerate().take(run).skip(row) {
                    let at = slice.slot(*key, &self.init);
                    let words = &mut slice.accs[at * self.width..(at + 1) * self.width];
                    accumulate(&self.aggs, words, &args, r);
                }
            }
            row = run;
        }
        Ok(())
    }

    /// The group key of every row of `batch`.
    fn keys_of(&self, batch: &RecordBatch) -> Result<Vec<FastKey>> {
        let mut keys = vec![FastKey::default(); batch.num_rows()];
        for k in 0..self.spec.keys {
            let column = batch.column(k);
            let values = words_of(column.as_ref())
                .ok_or_else(|| self.info.error("a group key column of an unexpected type"))?;
            for (key, v) in keys.iter_mut().zip(values) {
                key.values[k] = v;
            }
            if let Some(nulls) = column.nulls() {
                for (row, key) in keys.iter_mut().enumerate() {
                    if nulls.is_null(row) {
                        key.values[k] = 0;
                        key.nulls |= 1 << k;
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Each aggregate call's argument column as words, with its null buffer.
    fn args_of(&self, batch: &RecordBatch) -> Result<Vec<Arg>> {
        self.aggs
            .iter()
            .map(|a| match *a {
                FastAgg::CountStar => Ok(Arg::default()),
                FastAgg::Count { arg } => Ok(Arg {
                    values: Vec::new(),
                    nulls: batch.column(arg).nulls().cloned(),
                }),
                FastAgg::Sum { arg } | FastAgg::Min { arg } | FastAgg::Max { arg } => {
                    let column = batch.column(arg);
                    Ok(Arg {
                        values: words_of(column.as_ref()).ok_or_else(|| {
                            self.info
                                .error("an aggregate argument of an unexpected type")
                        })?,
                        nulls: column.nulls().cloned(),
                    })
                }
            })
            .collect()
    }

    /// Fires every window whose last millisecond the watermark `watermark` reached, in the
    /// order of their ends, and drops the slices no later window needs.
    fn fire(&mut self, watermark: i64, out: &mut Outputs<Batch>) -> Result<()> {
        let step = self.slicing.step();
        // The earliest window a slice counts in; the slices are few (a window's worth).
        while let Some(first) = self.slices.keys().map(|&(_, from)| from).min() {
            let end = if self.fired_up_to == i64::MIN {
                first
            } else {
                first.max(self.fired_up_to.saturating_add(step))
            };
            if end - 1 > watermark {
                break;
            }
            self.emit_window(end, out)?;
            self.fired_up_to = end;
            while let Some(entry) = self.slices.first_entry() {
                if self.slicing.last_window_end(entry.key().0) > end {
                    break;
                }
                let mut slice = entry.remove();
                if self.spare.len() < MAX_SPARE {
                    slice.clear();
                    self.spare.push(slice);
                }
            }
        }
        if self
            .restored_fired
            .as_ref()
            .is_some_and(|(max, _)| *max <= self.fired_up_to)
        {
            self.restored_fired = None;
        }
        Ok(())
    }

    /// Merges the slices of the window ending at `end` per key and emits its rows.
    fn emit_window(&mut self, end: i64, out: &mut Outputs<Batch>) -> Result<()> {
        let first = self.slicing.first_slice_end(end);
        let mut slices = self
            .slices
            .range((first, i64::MIN)..=(end, i64::MAX))
            .filter(|((_, from), _)| *from <= end)
            .map(|(_, s)| s);
        let only = slices.clone().count() == 1;
        let merged = if only {
            match slices.next() {
                Some(s) => s,
                None => return Ok(()),
            }
        } else {
            self.merged.clear();
            for s in slices {
                for (i, key) in s.keys.iter().enumerate() {
                    let at = self.merged.slot(*key, &self.init);
                    merge_words(
                        &self.aggs,
                        &mut self.merged.accs[at * self.width..(at + 1) * self.width],
                        &s.accs[i * self.width..(i + 1) * self.width],
                    );
                }
            }
            &self.merged
        };
        let rows: Vec<usize> = match &self.restored_fired {
            Some((_, fired)) => (0..merged.keys.len())
                .filter(|&i| {
                    let kg = weir_core::key_group::key_group_for_key(
                        &row_key(&merged.keys[i], &self.key_types),
                        self.info.max_parallelism,
                    );
                    fired.get(&kg).is_none_or(|f| end > *f)
                })
                .collect(),
            None => (0..merged.keys.len()).collect(),
        };
        if rows.is_empty() {
            return Ok(());
        }
        let start = self.slicing.window_start(end);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.output.len());
        for (_, column, ty) in &self.spec.output {
            columns.push(match *column {
                OutputColumn::Key(k) => key_column(merged, &rows, k, &self.key_types[k]),
                OutputColumn::WindowStart => timestamps(start, rows.len()),
                OutputColumn::WindowEnd => timestamps(end, rows.len()),
                OutputColumn::WindowTime => timestamps(end - 1, rows.len()),
                OutputColumn::Agg(i) => {
                    let offset: usize = self.aggs[..i].iter().map(FastAgg::words).sum();
                    agg_column(merged, &rows, self.width, offset, &self.aggs[i], ty)
                }
            });
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| self.info.error(format!("cannot build a result batch: {e}")))?;
        out.collect(StreamRecord::new(Batch(batch)))
    }
}

/// An aggregate call's argument, as words and nulls.
#[derive(Default)]
struct Arg {
    values: Vec<i64>,
    nulls: Option<arrow_buffer::NullBuffer>,
}

impl Arg {
    #[inline]
    fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }
}

/// Adds row `row` of `args` to the accumulator words of one key.
#[inline]
fn accumulate(aggs: &[FastAgg], words: &mut [i64], args: &[Arg], row: usize) {
    let mut w = 0;
    for (a, arg) in aggs.iter().zip(args) {
        match *a {
            FastAgg::CountStar => words[w] += 1,
            FastAgg::Count { .. } => words[w] += i64::from(!arg.is_null(row)),
            FastAgg::Sum { .. } => {
                if !arg.is_null(row) {
                    words[w] = words[w].wrapping_add(arg.values[row]);
                    words[w + 1] += 1;
                }
            }
            FastAgg::Min { .. } | FastAgg::Max { .. } => {
                if !arg.is_null(row) {
                    let v = arg.values[row];
                    let min = matches!(a, FastAgg::Min { .. });
                    if words[w + 1] == 0 || (min && v < words[w]) || (!min && v > words[w]) {
                        words[w] = v;
                    }
                    words[w + 1] = 1;
                }
            }
        }
        w += a.words();
    }
}

/// The key as the general operator and the batch exchange see it (for key groups).
fn row_key(key: &FastKey, types: &[FlinkType]) -> RowKey {
    RowKey(
        types
            .iter()
            .enumerate()
            .map(|(k, ty)| {
                if key.nulls & (1 << k) != 0 {
                    return KeyCell::Null;
                }
                let v = key.values[k];
                match ty.kind {
                    Kind::Boolean => KeyCell::Bool(v != 0),
                    Kind::TinyInt => KeyCell::I8(v as i8),
                    Kind::SmallInt => KeyCell::I16(v as i16),
                    Kind::Int => KeyCell::I32(v as i32),
                    _ => KeyCell::I64(v),
                }
            })
            .collect(),
    )
}

/// `n` copies of a millisecond timestamp.
fn timestamps(ms: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_value(ms, n))
}

/// Key column `k` of the keys at `rows`, in its own type.
fn key_column(slice: &Slice, rows: &[usize], k: usize, ty: &FlinkType) -> ArrayRef {
    let cell = |i: &usize| {
        let key = &slice.keys[*i];
        (key.nulls & (1 << k) == 0).then_some(key.values[k])
    };
    match ty.kind {
        Kind::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for v in rows.iter().map(cell) {
                b.append_option(v.map(|v| v != 0));
            }
            Arc::new(b.finish()) as Arc<BooleanArray>
        }
        _ => typed_words(ty, rows.iter().map(cell)),
    }
}

/// An aggregate's result column for the keys at `rows`.
fn agg_column(
    slice: &Slice,
    rows: &[usize],
    width: usize,
    offset: usize,
    agg: &FastAgg,
    ty: &FlinkType,
) -> ArrayRef {
    let words = |i: &usize| &slice.accs[i * width + offset..];
    match agg {
        FastAgg::CountStar | FastAgg::Count { .. } => Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|i| words(i)[0]),
        )),
        _ => typed_words(
            ty,
            rows.iter().map(|i| {
                let w = words(i);
                (w[1] != 0).then_some(w[0])
            }),
        ),
    }
}

/// Words as a column of `ty`; integers narrower than BIGINT wrap as Java's do.
fn typed_words(ty: &FlinkType, values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    match ty.kind {
        Kind::TinyInt => Arc::new(values.map(|v| v.map(|v| v as i8)).collect::<Int8Array>()),
        Kind::SmallInt => Arc::new(values.map(|v| v.map(|v| v as i16)).collect::<Int16Array>()),
        Kind::Int => Arc::new(values.map(|v| v.map(|v| v as i32)).collect::<Int32Array>()),
        Kind::Date => Arc::new(values.map(|v| v.map(|v| v as i32)).collect::<Date32Array>()),
        Kind::Timestamp(_) => Arc::new(values.collect::<TimestampMillisecondArray>()),
        _ => Arc::new(values.collect::<Int64Array>()),
    }
}

impl OneInputOperator<Batch, Batch> for SlicedWindowAggregateOp {
    fn process_element(
        &mut self,
        record: StreamRecord<Batch>,
        _: &mut Outputs<Batch>,
    ) -> Result<()> {
        self.add_batch(&record.value.0)
    }

    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<Batch>) -> Result<()> {
        self.watermark = self.watermark.max(watermark.0);
        self.fire(watermark.0, out)?;
        out.emit_watermark(watermark)
    }

    fn state_entries(&self) -> u64 {
        self.slices.values().map(|s| s.keys.len() as u64).sum()
    }

    /// Writes, per key group, every slice entry `(slice end, key, accumulator words)` and
    /// the end of the last window fired.
    fn snapshot_state(
        &mut self,
        _: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        let mut per_kg: BTreeMap<u32, SliceEntries> = BTreeMap::new();
        for (&end, slice) in &self.slices {
            for (i, key) in slice.keys.iter().enumerate() {
                let key = row_key(key, &self.key_types);
                let kg = weir_core::key_group::key_group_for_key(&key, self.info.max_parallelism);
                let words = slice.accs[i * self.width..(i + 1) * self.width].to_vec();
                per_kg.entry(kg).or_default().push((end, key, words));
            }
        }
        let range = weir_state::KeyGroupRange::for_subtask(
            self.info.max_parallelism,
            self.info.parallelism,
            self.info.subtask,
        );
        let err = |e: weir_state::StateError| self.info.error(format!("snapshot: {e}"));
        for kg in range.start..range.end {
            let entries = per_kg.remove(&kg).unwrap_or_default();
            // A key group restored with a later bound keeps it until the operator passes it.
            let fired = match &self.restored_fired {
                Some((_, bounds)) => bounds
                    .get(&kg)
                    .map_or(self.fired_up_to, |b| (*b).max(self.fired_up_to)),
                None => self.fired_up_to,
            };
            let bytes = weir_state::snapshot::encode(SLICES, &(fired, entries)).map_err(err)?;
            st.add_section(kg, SLICES, bytes);
        }
        Ok(())
    }

    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        let err = |e: weir_state::StateError| self.info.error(format!("restore: {e}"));
        let mut fired = StdHashMap::new();
        for (kg, bytes) in restored.sections(SLICES) {
            let (fired_up_to, entries): (i64, SliceEntries) =
                weir_state::snapshot::decode(SLICES, bytes).map_err(err)?;
            fired.insert(kg, fired_up_to);
            for (end, key, words) in entries {
                if words.len() != self.width || key.0.len() != self.spec.keys {
                    return Err(self
                        .info
                        .error("restore: the snapshot's window aggregate has another shape"));
                }
                let mut fast = FastKey::default();
                for (k, cell) in key.0.iter().enumerate() {
                    match cell {
                        KeyCell::Null => fast.nulls |= 1 << k,
                        KeyCell::Bool(b) => fast.values[k] = *b as i64,
                        KeyCell::I8(v) => fast.values[k] = *v as i64,
                        KeyCell::I16(v) => fast.values[k] = *v as i64,
                        KeyCell::I32(v) => fast.values[k] = *v as i64,
                        KeyCell::I64(v) => fast.values[k] = *v,
                        KeyCell::Str(_) => {
                            return Err(self
                                .info
                                .error("restore: a string key in a sliced aggregate"))
                        }
                    }
                }
                let slice = self.slices.entry(end).or_default();
                let at = slice.slot(fast, &self.init);
                merge_words(
                    &self.aggs,
                    &mut slice.accs[at * self.width..(at + 1) * self.width],
                    &words,
                );
            }
        }
        // Windows up to the earliest restored bound fired everywhere; later ones are
        // checked per key group until the last bound is passed.
        if let (Some(&min), Some(&max)) = (fired.values().min(), fired.values().max()) {
            self.fired_up_to = min;
            if max > min {
                self.restored_fired = Some((max, fired));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_windows_line_up() {
        let hop = Slicing::Hop {
            slide: 2_000,
            size: 10_000,
        };
        assert_eq!(hop.slice_end(1_999), 2_000);
        assert_eq!(hop.slice_end(2_000), 4_000);
        assert_eq!(hop.last_window_end(2_000), 10_000);
        assert_eq!(hop.first_slice_end(10_000), 2_000);
        assert_eq!(hop.window_start(10_000), 0);
        // A row of slice 2 000 after the watermark passed 1 999 and 3 999 counts from the
        // window ending at 6 000 on.
        assert_eq!(hop.first_open_window(2_000, 1_998), 2_000);
        assert_eq!(hop.first_open_window(2_000, 1_999), 4_000);
        assert_eq!(hop.first_open_window(2_000, 3_999), 6_000);
        assert_eq!(hop.first_open_window(2_000, 4_500), 6_000);
        let cumulate = Slicing::Cumulate {
            step: 2_000,
            size: 6_000,
        };
        assert_eq!(cumulate.last_window_end(2_000), 6_000);
        assert_eq!(cumulate.last_window_end(6_000), 6_000);
        assert_eq!(cumulate.last_window_end(8_000), 12_000);
        assert_eq!(cumulate.window_start(10_000), 6_000);
        assert_eq!(cumulate.first_slice_end(10_000), 8_000);
        let tumble = Slicing::Tumble { size: 5 };
        assert_eq!(tumble.slice_end(-1), 0);
        assert_eq!(tumble.last_window_end(0), 0);
    }

    #[test]
    fn merging_keeps_counts_sums_and_extremes() {
        let aggs = [
            FastAgg::CountStar,
            FastAgg::Sum { arg: 0 },
            FastAgg::Max { arg: 0 },
            FastAgg::Min { arg: 0 },
        ];
        let mut a = vec![2, 10, 2, 7, 1, 3, 1];
        merge_words(&aggs, &mut a, &[1, -4, 1, 9, 1, -4, 1]);
        assert_eq!(a, vec![3, 6, 3, 9, 1, -4, 1]);
        let mut empty = vec![0, 0, 0, 0, 0, 0, 0];
        let none = vec![0, 0, 0, 0, 0, 0, 0];
        merge_words(&aggs, &mut empty, &none);
        assert_eq!(empty, none, "no values stay no values (NULL results)");
    }
}
