//! User function interfaces: process functions, their context and collector, output tags.

use std::marker::PhantomData;
use weir_runtime::operator::{MainOutput, OperatorInfo, SideOutputs};
use weir_runtime::push::{ensure_spare, lend, push_with_spare};
use weir_runtime::{RuntimeError, StreamRecord};

/// The error a user function may return; it fails the task with the operator's name.
pub type UserError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a user function's error into a runtime error naming the operator.
pub(crate) fn user_error(info: &OperatorInfo, e: UserError) -> RuntimeError {
    // An error that is really the runtime's (e.g. cancellation) passes through unchanged.
    match e.downcast::<RuntimeError>() {
        Ok(rt) => *rt,
        Err(e) => info.error(e.to_string()),
    }
}

/// Identifies a side output and the type of its elements (Flink's `OutputTag`).
pub struct OutputTag<T> {
    id: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> OutputTag<T> {
    /// A tag with the given id; tags are equal when their ids are.
    pub fn new(id: impl Into<String>) -> Self {
        OutputTag {
            id: id.into(),
            _t: PhantomData,
        }
    }

    /// The tag's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag::new(self.id.clone())
    }
}

/// Where a user function emits records; they carry the timestamp of the input record
/// (Flink's `TimestampedCollector`).
///
/// An operator that processes a batch of input records gathers what its function emits in
/// a batch of its own and hands it on when it is full and when the input batch is done.
///
/// Invariant: that batch, if any, always has room for one more record
/// ([`weir_runtime::push`]), restored after every push and after the batch was lent out,
/// also when downstream panics.
pub struct Collector<'a, O> {
    out: MainOutput<'a, O>,
    batch: Option<&'a mut Vec<StreamRecord<O>>>,
    capacity: usize,
    timestamp: Option<i64>,
    error: Option<RuntimeError>,
}

impl<'a, O> Collector<'a, O> {
    pub(crate) fn new(out: MainOutput<'a, O>, timestamp: Option<i64>) -> Self {
        Collector {
            out,
            batch: None,
            capacity: 0,
            timestamp,
            error: None,
        }
    }

    /// A collector that gathers records in `batch` (empty) and hands them on in batches;
    /// [`Self::finish`] hands on the rest.
    pub(crate) fn batched(out: MainOutput<'a, O>, batch: &'a mut Vec<StreamRecord<O>>) -> Self {
        ensure_spare(batch);
        Collector {
            out,
            batch: Some(batch),
            capacity: weir_runtime::operator::batch_capacity::<O>(),
            timestamp: None,
            error: None,
        }
    }

    /// The timestamp the next records carry (that of the input record being processed).
    #[inline]
    pub(crate) fn set_timestamp(&mut self, timestamp: Option<i64>) {
        self.timestamp = timestamp;
    }

    /// True once downstream failed: the operator stops calling the function.
    #[inline]
    pub(crate) fn failed(&self) -> bool {
        self.error.is_some()
    }

    #[inline]
    fn emit(&mut self, record: StreamRecord<O>) {
        match &mut self.batch {
            Some(batch) if self.error.is_none() => {
                // SAFETY: the struct's invariant: the batch has room for one more record.
                unsafe { push_with_spare(batch, record) };
                if batch.len() >= self.capacity || batch.len() == batch.capacity() {
                    self.hand_on();
                }
            }
            _ => self.emit_one(record),
        }
    }

    /// Hands the full batch on (or makes room in it) and keeps the first error; out of line,
    /// so that what a user function inlines per record stays small.
    #[cold]
    #[inline(never)]
    fn hand_on(&mut self) {
        let Some(batch) = &mut self.batch else {
            return;
        };
        let r = if batch.len() >= self.capacity {
            // Room again afterwards, also if downstream panics.
            let out = &mut self.out;
            lend(batch, |b| out.collect_batch(b))
        } else {
            ensure_spare(batch);
            Ok(())
        };
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// A record without a batch, or after downstream failed (then it is dropped).
    #[inline(never)]
    fn emit_one(&mut self, record: StreamRecord<O>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.out.collect(record) {
            self.error = Some(e);
        }
    }

    /// Emits a record.
    #[inline]
    pub fn collect(&mut self, value: O) {
        let timestamp = self.timestamp;
        self.emit(StreamRecord::from_parts(value, timestamp));
    }

    /// Emits a record with an explicit timestamp (`i64::MIN`, `weir_runtime::NO_TIMESTAMP`,
    /// emits one without a timestamp).
    pub fn collect_with_timestamp(&mut self, value: O, timestamp: i64) {
        self.emit(StreamRecord::with_timestamp(value, timestamp));
    }

    /// Hands on what is gathered and returns the first error downstream raised, if any:
    /// the operator returns it once the user function is done.
    pub(crate) fn finish(mut self) -> Result<(), RuntimeError> {
        if let Some(e) = self.error {
            if let Some(batch) = self.batch {
                batch.clear();
            }
            return Err(e);
        }
        match self.batch.take() {
            Some(batch) => self.out.collect_batch(batch),
            None => Ok(()),
        }
    }
}

/// Facts about the running subtask, given to functions when they open.
#[derive(Clone, Debug)]
pub struct RuntimeContext {
    /// Operator name.
    pub operator_name: String,
    /// Subtask index, from 0.
    pub subtask: u32,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Where the function registers its metrics (counters, gauges, histograms, meters),
    /// exported with the job's other metrics.
    pub metrics: weir_runtime::user_metrics::MetricGroup,
}

impl RuntimeContext {
    pub(crate) fn of(info: &OperatorInfo) -> Self {
        RuntimeContext {
            operator_name: info.name.clone(),
            subtask: info.subtask,
            parallelism: info.parallelism,
            max_parallelism: info.max_parallelism,
            metrics: info.metrics.clone(),
        }
    }
}

/// What a process function may ask about the current record and emit besides its main
/// output.
pub struct ProcessContext<'a> {
    pub(crate) sides: SideOutputs<'a>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) watermark: i64,
    pub(crate) error: Option<RuntimeError>,
}

impl ProcessContext<'_> {
    /// The event timestamp of the current record, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Wall-clock time in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Emits `value` on the side output `tag`, with the current record's timestamp.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            let rec = StreamRecord::from_parts(value, self.timestamp);
            if let Err(e) = self.sides.collect(tag.id(), rec) {
                self.error = Some(e);
            }
        }
    }
}

/// A function called for every record of a (non-keyed) stream, with a context for the
/// record's timestamp, the watermark and side outputs (Flink's `ProcessFunction`).
///
/// Each subtask gets its own clone.
pub trait ProcessFunction<I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Called for each record.
    fn process_element(
        &mut self,
        value: I,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError>;

    /// Called once at the end of input, before the outputs are closed.
    fn finish(&mut self, _out: &mut Collector<'_, O>) -> Result<(), UserError> {
        Ok(())
    }
}
