//! Operators and the push interface that connects them inside a chain.
//!
//! Inside a chain an operator hands each record to the next one by value, through a call of
//! [`Output::collect`], or a run of records at once through [`Output::collect_batch`]: no
//! queue, no serialisation. The last output of a chain is a
//! [`crate::writer::RecordWriter`] (a network edge) or [`Discard`]. Operator logic is written
//! against the small traits [`OneInputOperator`] and [`TwoInputOperator`]; the links
//! ([`OneInputLink`], [`TwoInputLink`]) add what every operator needs: record counters, panic
//! capture that names the operator and subtask, and propagation of watermarks and end of
//! input.

use crate::checkpoint::{CheckpointBarrier, CheckpointNotice};
use crate::element::{StreamRecord, Watermark, WatermarkStatus};
use crate::error::{panic_message, Result, RuntimeError};
use crate::metrics::{MetricsVisitor, OperatorMetrics};
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use weir_state::{OperatorSubtaskState, RestoredState, TaskStateSnapshot};

/// The element-type independent part of an operator input: control elements.
pub trait OutputControl: Send {
    /// Event time advanced.
    fn emit_watermark(&mut self, watermark: Watermark) -> Result<()>;
    /// The stream became idle or active.
    fn emit_watermark_status(&mut self, status: WatermarkStatus) -> Result<()>;
    /// Send partly filled network buffers (the buffer timeout fired).
    fn flush(&mut self) -> Result<()>;
    /// End of input: finish this operator and everything after it.
    fn finish(&mut self) -> Result<()>;
    /// The job stops after a savepoint without draining: operators are not finished (their
    /// state stays as the savepoint holds it); network writers tell consumers to stop too.
    fn stop(&mut self) -> Result<()>;
    /// Report the record counters of every operator from here to the end of the chain.
    fn visit_metrics(&self, _visitor: MetricsVisitor<'_>) {}
    /// Processing time reached `now`: operators fire their due processing-time timers.
    fn on_processing_time(&mut self, _now: i64) -> Result<()> {
        Ok(())
    }
    /// Checkpoint `barrier`: every operator from here to the end of the chain adds its state
    /// to `snapshot`, and network writers send the barrier on.
    fn checkpoint(
        &mut self,
        barrier: &CheckpointBarrier,
        snapshot: &mut TaskStateSnapshot,
    ) -> Result<()>;
    /// Tells every operator from here on that a checkpoint completed or was aborted.
    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> Result<()>;
}

/// Where an operator's records go: the next operator of the chain, a network writer, or
/// several of them.
pub trait Output<T>: OutputControl {
    /// Hands one record on.
    fn collect(&mut self, record: StreamRecord<T>) -> Result<()>;

    /// Hands on a run of consecutive records, in order, and leaves `batch` empty (its
    /// capacity stays with the caller, to be filled again).
    ///
    /// A batch holds records only: whoever fills one hands it on before any watermark,
    /// status change, barrier or end of input, so control elements keep their place in the
    /// stream. Processing a batch operator by operator is therefore equivalent to passing
    /// its records one at a time; it only saves a virtual call, the link's bookkeeping and
    /// a copy of each record through the stack per operator.
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<()> {
        for r in batch.drain(..) {
            self.collect(r)?;
        }
        Ok(())
    }
}

/// How many records of type `T` a chain hands on in one batch: a batch fills about 16 KiB,
/// so it stays in the L1 cache between two operators, and holds 16 to 1024 records.
#[inline]
pub fn batch_capacity<T>() -> usize {
    let size = std::mem::size_of::<StreamRecord<T>>().max(1);
    (16 * 1024 / size).clamp(16, 1024)
}

/// Identity of one operator instance, for errors and metrics.
#[derive(Clone, Debug, Default)]
pub struct OperatorInfo {
    /// StreamGraph node id.
    pub node: u32,
    /// Operator name.
    pub name: String,
    /// Subtask index, from 0.
    pub subtask: u32,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// The task's processing-time callbacks.
    pub processing_time: crate::time::ProcessingTimeService,
    /// Wakes the task from another thread for an `on_processing_time` call.
    pub waker: crate::time::TaskWaker,
    /// Where the operator's user functions register metrics.
    pub metrics: crate::user_metrics::MetricGroup,
    /// The job's periodic watermark interval in ms (0: off).
    pub auto_watermark_interval_ms: u64,
    /// The operator's stable id: its state in checkpoints is filed under it.
    pub uid: String,
    /// The state this subtask starts from, when the job is restored.
    pub restored: Option<std::sync::Arc<RestoredState>>,
    /// How the task's input head aligns checkpoint barriers.
    pub alignment: weir_core::BarrierAlignment,
    /// Where keyed state lives.
    pub state_backend: weir_core::StateBackendConfig,
}

impl OperatorInfo {
    /// The keyed store of this subtask (heap tables, or a RocksDB instance of its own), for
    /// the key groups it owns.
    pub fn keyed_store(&self) -> Result<weir_state::KeyedStore> {
        let range = weir_core::KeyGroupRange::for_subtask(
            self.max_parallelism,
            self.parallelism,
            self.subtask,
        );
        let label = format!("{}-{}", self.uid, self.subtask);
        weir_state::KeyedStore::open(&self.state_backend, range, &label)
            .map_err(|e| self.error(format!("cannot open its keyed state backend: {e}")))
    }

    /// An operator failure with this operator's name and subtask.
    pub fn error(&self, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Operator {
            operator: self.name.clone(),
            subtask: self.subtask,
            message: message.into(),
        }
    }
}

thread_local! {
    /// The operator in whose user code the current panic started, innermost first.
    static PANICKED_IN: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// Marks a call into an operator; if a panic unwinds through it, the innermost marked
/// operator is remembered for the error.
struct PanicScope<'a>(&'a OperatorInfo);

impl Drop for PanicScope<'_> {
    #[inline]
    fn drop(&mut self) {
        // `panicking()` is one relaxed load of a global counter while nothing panics.
        if std::thread::panicking() {
            PANICKED_IN.with(|p| {
                let mut p = p.borrow_mut();
                if p.is_none() {
                    *p = Some((self.0.name.clone(), self.0.subtask));
                }
            });
        }
    }
}

/// Runs user code of the operator `info`. A panic is not caught here (that would cost a copy
/// of every record per chain link): it unwinds to the task's [`catch_user_panic`], which turns
/// it into [`RuntimeError::UserPanic`] naming the innermost operator it went through.
#[inline]
pub fn guarded<R>(info: &OperatorInfo, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let _scope = PanicScope(info);
    f()
}

/// Makes every panic start with a clean attribution, so a panic that user code caught itself
/// cannot be blamed for a later one. The previous hook (printing the message) still runs.
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICKED_IN.try_with(|p| p.borrow_mut().take());
            previous(info);
        }));
    });
}

/// Runs `f`, turning a panic into [`RuntimeError::UserPanic`] for the operator it started in
/// (or a plain error if it started outside any operator).
pub fn catch_user_panic<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    install_panic_hook();
    PANICKED_IN.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            Err(match PANICKED_IN.with(|p| p.borrow_mut().take()) {
                Some((operator, subtask)) => RuntimeError::UserPanic {
                    operator,
                    subtask,
                    message,
                },
                None => {
                    RuntimeError::Other(format!("a task panicked outside user code: {message}"))
                }
            })
        }
    }
}

/// A side output with a concrete element type, type-erased for storage in [`Outputs`].
pub trait SideOutputSlot: OutputControl {
    /// For the downcast to [`TypedSideOutput`].
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The consumers of one side output (elements of type `S`).
pub struct TypedSideOutput<S>(pub Box<dyn Output<S>>);

impl<S: 'static> OutputControl for TypedSideOutput<S> {
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.0.emit_watermark(wm)
    }
    fn emit_watermark_status(&mut self, s: WatermarkStatus) -> Result<()> {
        self.0.emit_watermark_status(s)
    }
    fn flush(&mut self) -> Result<()> {
        self.0.flush()
    }
    fn finish(&mut self) -> Result<()> {
        self.0.finish()
    }
    fn stop(&mut self) -> Result<()> {
        self.0.stop()
    }
    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        self.0.visit_metrics(v)
    }
    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.0.on_processing_time(now)
    }
    fn checkpoint(&mut self, b: &CheckpointBarrier, s: &mut TaskStateSnapshot) -> Result<()> {
        self.0.checkpoint(b, s)
    }
    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        self.0.notify_checkpoint(n)
    }
}

impl<S: 'static> SideOutputSlot for TypedSideOutput<S> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// All outputs of one operator: the main output and its side outputs by tag.
pub struct Outputs<O> {
    main: Box<dyn Output<O>>,
    sides: Vec<(String, Box<dyn SideOutputSlot>)>,
    records_out: u64,
}

impl<O> Outputs<O> {
    /// Outputs with a main output and side outputs keyed by tag id.
    pub fn new(main: Box<dyn Output<O>>, sides: Vec<(String, Box<dyn SideOutputSlot>)>) -> Self {
        Outputs {
            main,
            sides,
            records_out: 0,
        }
    }

    /// Emits a record on the main output.
    #[inline]
    pub fn collect(&mut self, record: StreamRecord<O>) -> Result<()> {
        self.records_out += 1;
        self.main.collect(record)
    }

    /// Emits a batch of records on the main output (see [`Output::collect_batch`]); `batch`
    /// is left empty.
    #[inline]
    pub fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<O>>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.records_out += batch.len() as u64;
        self.main.collect_batch(batch)
    }

    /// Emits a record on the side output `tag`. Records for a tag nobody consumes are
    /// dropped, as in Flink. Fails if the tag is consumed with another element type.
    pub fn collect_side<S: 'static>(&mut self, tag: &str, record: StreamRecord<S>) -> Result<()> {
        collect_side(&mut self.sides, tag, record)
    }

    /// Records emitted on the main output so far.
    pub fn records_out(&self) -> u64 {
        self.records_out
    }

    /// Borrows the main output and the side outputs separately, so that a function can
    /// hold a collector and a context at the same time.
    pub fn split(&mut self) -> (MainOutput<'_, O>, SideOutputs<'_>) {
        (
            MainOutput {
                main: &mut self.main,
                records_out: &mut self.records_out,
            },
            SideOutputs {
                sides: &mut self.sides,
            },
        )
    }
}

/// The main output of an operator, borrowed from its [`Outputs`].
pub struct MainOutput<'a, O> {
    main: &'a mut Box<dyn Output<O>>,
    records_out: &'a mut u64,
}

impl<O> MainOutput<'_, O> {
    /// Emits a record.
    #[inline]
    pub fn collect(&mut self, record: StreamRecord<O>) -> Result<()> {
        *self.records_out += 1;
        self.main.collect(record)
    }

    /// Emits a batch of records (see [`Output::collect_batch`]); `batch` is left empty.
    #[inline]
    pub fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<O>>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        *self.records_out += batch.len() as u64;
        self.main.collect_batch(batch)
    }
}

/// The side outputs of an operator, borrowed from its [`Outputs`].
pub struct SideOutputs<'a> {
    sides: &'a mut Vec<(String, Box<dyn SideOutputSlot>)>,
}

impl SideOutputs<'_> {
    /// Emits a record on side output `tag` (dropped if nobody consumes the tag).
    pub fn collect<S: 'static>(&mut self, tag: &str, record: StreamRecord<S>) -> Result<()> {
        collect_side(self.sides, tag, record)
    }
}

fn collect_side<S: 'static>(
    sides: &mut [(String, Box<dyn SideOutputSlot>)],
    tag: &str,
    record: StreamRecord<S>,
) -> Result<()> {
    for (t, slot) in sides.iter_mut() {
        if t == tag {
            return match slot.as_any_mut().downcast_mut::<TypedSideOutput<S>>() {
                Some(out) => out.0.collect(record),
                None => Err(RuntimeError::Other(format!(
                    "side output '{tag}' was declared with another type than {}",
                    std::any::type_name::<S>()
                ))),
            };
        }
    }
    Ok(())
}

impl<O> OutputControl for Outputs<O> {
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.main.emit_watermark(wm)?;
        for (_, s) in &mut self.sides {
            s.emit_watermark(wm)?;
        }
        Ok(())
    }
    fn emit_watermark_status(&mut self, st: WatermarkStatus) -> Result<()> {
        self.main.emit_watermark_status(st)?;
        for (_, s) in &mut self.sides {
            s.emit_watermark_status(st)?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.main.flush()?;
        for (_, s) in &mut self.sides {
            s.flush()?;
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.main.finish()?;
        for (_, s) in &mut self.sides {
            s.finish()?;
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<()> {
        self.main.stop()?;
        for (_, s) in &mut self.sides {
            s.stop()?;
        }
        Ok(())
    }
    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        self.main.visit_metrics(v);
        for (_, s) in &self.sides {
            s.visit_metrics(v);
        }
    }
    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.main.on_processing_time(now)?;
        for (_, s) in &mut self.sides {
            s.on_processing_time(now)?;
        }
        Ok(())
    }
    fn checkpoint(&mut self, b: &CheckpointBarrier, snap: &mut TaskStateSnapshot) -> Result<()> {
        self.main.checkpoint(b, snap)?;
        for (_, s) in &mut self.sides {
            s.checkpoint(b, snap)?;
        }
        Ok(())
    }
    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        self.main.notify_checkpoint(n)?;
        for (_, s) in &mut self.sides {
            s.notify_checkpoint(n)?;
        }
        Ok(())
    }
}

impl<O: Send> Output<O> for Outputs<O> {
    #[inline]
    fn collect(&mut self, record: StreamRecord<O>) -> Result<()> {
        Outputs::collect(self, record)
    }
    #[inline]
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<O>>) -> Result<()> {
        Outputs::collect_batch(self, batch)
    }
}

/// Sends each record to several outputs (an operator followed by more than one consumer).
pub struct FanOut<T> {
    outs: Vec<Box<dyn Output<T>>>,
    /// The copy of a batch that each output but the last receives.
    copy: Vec<StreamRecord<T>>,
}

impl<T> FanOut<T> {
    /// A fan-out over `outs`.
    pub fn new(outs: Vec<Box<dyn Output<T>>>) -> Self {
        FanOut {
            outs,
            copy: Vec::new(),
        }
    }
}

impl<T: Send> OutputControl for FanOut<T> {
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.emit_watermark(wm))
    }
    fn emit_watermark_status(&mut self, st: WatermarkStatus) -> Result<()> {
        self.outs
            .iter_mut()
            .try_for_each(|o| o.emit_watermark_status(st))
    }
    fn flush(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.flush())
    }
    fn finish(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.finish())
    }
    fn stop(&mut self) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.stop())
    }
    fn visit_metrics(&self, v: MetricsVisitor<'_>) {
        for o in &self.outs {
            o.visit_metrics(v);
        }
    }
    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        self.outs
            .iter_mut()
            .try_for_each(|o| o.on_processing_time(now))
    }
    fn checkpoint(&mut self, b: &CheckpointBarrier, snap: &mut TaskStateSnapshot) -> Result<()> {
        self.outs.iter_mut().try_for_each(|o| o.checkpoint(b, snap))
    }
    fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
        self.outs
            .iter_mut()
            .try_for_each(|o| o.notify_checkpoint(n))
    }
}

impl<T: Clone + Send> Output<T> for FanOut<T> {
    #[inline]
    fn collect(&mut self, record: StreamRecord<T>) -> Result<()> {
        if let Some((last, rest)) = self.outs.split_last_mut() {
            for o in rest {
                o.collect(record.clone())?;
            }
            last.collect(record)?;
        }
        Ok(())
    }

    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<()> {
        if let Some((last, rest)) = self.outs.split_last_mut() {
            for o in rest {
                self.copy.clear();
                self.copy.extend(batch.iter().cloned());
                o.collect_batch(&mut self.copy)?;
            }
            last.collect_batch(batch)?;
        }
        batch.clear();
        Ok(())
    }
}

/// Drops everything: the output of sinks and of operators nobody consumes.
pub struct Discard<T>(PhantomData<fn(T)>);

impl<T> Default for Discard<T> {
    fn default() -> Self {
        Discard(PhantomData)
    }
}

impl<T> OutputControl for Discard<T> {
    fn emit_watermark(&mut self, _: Watermark) -> Result<()> {
        Ok(())
    }
    fn emit_watermark_status(&mut self, _: WatermarkStatus) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, _: &CheckpointBarrier, _: &mut TaskStateSnapshot) -> Result<()> {
        Ok(())
    }
    fn notify_checkpoint(&mut self, _: CheckpointNotice) -> Result<()> {
        Ok(())
    }
}

impl<T> Output<T> for Discard<T> {
    #[inline]
    fn collect(&mut self, _: StreamRecord<T>) -> Result<()> {
        Ok(())
    }
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<()> {
        batch.clear();
        Ok(())
    }
}

/// Keeps every record's value in a shared vector: the end of a chain for embedding a
/// runtime piece in a program or a test. Control elements are ignored.
pub struct CollectingOutput<T> {
    values: std::sync::Arc<std::sync::Mutex<Vec<T>>>,
}

impl<T> CollectingOutput<T> {
    /// An output and the vector it fills.
    pub fn new() -> (Self, std::sync::Arc<std::sync::Mutex<Vec<T>>>) {
        let values = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        (
            CollectingOutput {
                values: values.clone(),
            },
            values,
        )
    }
}

impl<T: Send> OutputControl for CollectingOutput<T> {
    fn emit_watermark(&mut self, _: Watermark) -> Result<()> {
        Ok(())
    }
    fn emit_watermark_status(&mut self, _: WatermarkStatus) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, _: &CheckpointBarrier, _: &mut TaskStateSnapshot) -> Result<()> {
        Ok(())
    }
    fn notify_checkpoint(&mut self, _: CheckpointNotice) -> Result<()> {
        Ok(())
    }
}

impl<T: Send> Output<T> for CollectingOutput<T> {
    fn collect(&mut self, r: StreamRecord<T>) -> Result<()> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.value);
        Ok(())
    }
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<T>>) -> Result<()> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch.drain(..).map(|r| r.value));
        Ok(())
    }
}

/// The logic of an operator with one input.
pub trait OneInputOperator<I, O>: Send {
    /// One record arrived.
    fn process_element(&mut self, record: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()>;

    /// A run of consecutive records arrived (no control element between them); `batch`
    /// must be left empty. By default each goes through [`Self::process_element`];
    /// operators that can loop over a batch in place (map, filter, sinks) override it and
    /// hand their output on as a batch too.
    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<I>>,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        for r in batch.drain(..) {
            self.process_element(r, out)?;
        }
        Ok(())
    }

    /// Event time advanced; by default forwarded.
    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<O>) -> Result<()> {
        out.emit_watermark(watermark)
    }

    /// The input became idle or active again; by default forwarded.
    fn process_watermark_status(
        &mut self,
        status: WatermarkStatus,
        out: &mut Outputs<O>,
    ) -> Result<()> {
        out.emit_watermark_status(status)
    }

    /// The input ended; emit what is still pending. Outputs are finished afterwards.
    fn finish(&mut self, _out: &mut Outputs<O>) -> Result<()> {
        Ok(())
    }

    /// Processing time reached `now`; fire due processing-time timers.
    fn on_processing_time(&mut self, _now: i64, _out: &mut Outputs<O>) -> Result<()> {
        Ok(())
    }

    /// Entries of keyed state, windows and timers the operator holds (a metric).
    fn state_entries(&self) -> u64 {
        0
    }

    /// Adds the operator's state to a checkpoint. Operators that hold state must write all
    /// of it here (keyed state per key group); the default is for stateless operators.
    fn snapshot_state(
        &mut self,
        _barrier: &CheckpointBarrier,
        _state: &mut OperatorSubtaskState,
    ) -> Result<()> {
        Ok(())
    }

    /// Loads the state of a restored job; called once, before the first record.
    fn initialize_state(&mut self, _restored: &RestoredState) -> Result<()> {
        Ok(())
    }

    /// A checkpoint completed or was aborted (two-phase-commit sinks commit or roll back).
    fn notify_checkpoint(
        &mut self,
        _notice: CheckpointNotice,
        _out: &mut Outputs<O>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The [`OutputControl`] methods both operator links share: they use the link's `op`,
/// `out`, `info` and `records_in`.
macro_rules! link_control_methods {
    () => {
        fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
            let (op, out) = (&mut self.op, &mut self.out);
            guarded(&self.info, || op.process_watermark(wm, out))
        }
        fn flush(&mut self) -> Result<()> {
            self.out.flush()
        }
        fn finish(&mut self) -> Result<()> {
            let (op, out) = (&mut self.op, &mut self.out);
            guarded(&self.info, || op.finish(out))?;
            self.out.finish()
        }
        fn stop(&mut self) -> Result<()> {
            self.out.stop()
        }
        fn visit_metrics(&self, v: MetricsVisitor<'_>) {
            v(&OperatorMetrics {
                node: self.info.node,
                name: self.info.name.clone(),
                records_in: self.records_in,
                records_out: self.out.records_out(),
                state_entries: self.op.state_entries(),
            });
            self.out.visit_metrics(v);
        }
        fn on_processing_time(&mut self, now: i64) -> Result<()> {
            let (op, out) = (&mut self.op, &mut self.out);
            guarded(&self.info, || op.on_processing_time(now, out))?;
            self.out.on_processing_time(now)
        }
        fn checkpoint(
            &mut self,
            b: &CheckpointBarrier,
            snap: &mut TaskStateSnapshot,
        ) -> Result<()> {
            let mut st = OperatorSubtaskState::default();
            let op = &mut self.op;
            guarded(&self.info, || op.snapshot_state(b, &mut st))?;
            if !st.is_empty() {
                snap.operators.insert(self.info.uid.clone(), st);
            }
            self.out.checkpoint(b, snap)
        }
        fn notify_checkpoint(&mut self, n: CheckpointNotice) -> Result<()> {
            let (op, out) = (&mut self.op, &mut self.out);
            guarded(&self.info, || op.notify_checkpoint(n, out))?;
            self.out.notify_checkpoint(n)
        }
    };
}

/// An operator with one input inside a chain.
pub struct OneInputLink<I, O, Op> {
    op: Op,
    out: Outputs<O>,
    info: OperatorInfo,
    records_in: u64,
    _i: PhantomData<fn(I)>,
}

impl<I, O: 'static, Op: OneInputOperator<I, O>> OneInputLink<I, O, Op> {
    /// Links `op` to its outputs; a restored job's state (in `info`) is loaded into it.
    pub fn new(mut op: Op, out: Outputs<O>, info: OperatorInfo) -> Result<Self> {
        if let Some(r) = info.restored.clone() {
            guarded(&info, || op.initialize_state(&r))?;
        }
        Ok(OneInputLink {
            op,
            out,
            info,
            records_in: 0,
            _i: PhantomData,
        })
    }
}

impl<I, O: 'static, Op: OneInputOperator<I, O>> OutputControl for OneInputLink<I, O, Op> {
    link_control_methods!();

    fn emit_watermark_status(&mut self, st: WatermarkStatus) -> Result<()> {
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.process_watermark_status(st, out))
    }
}

impl<I, O: 'static, Op: OneInputOperator<I, O>> Output<I> for OneInputLink<I, O, Op> {
    #[inline]
    fn collect(&mut self, record: StreamRecord<I>) -> Result<()> {
        self.records_in += 1;
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.process_element(record, out))
    }

    #[inline]
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<I>>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.records_in += batch.len() as u64;
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.process_batch(batch, out))
    }
}

/// The logic of an operator with two inputs (connected streams, joins).
pub trait TwoInputOperator<A, B, O>: Send {
    /// A record arrived on the first input.
    fn process_element1(&mut self, record: StreamRecord<A>, out: &mut Outputs<O>) -> Result<()>;
    /// A record arrived on the second input.
    fn process_element2(&mut self, record: StreamRecord<B>, out: &mut Outputs<O>) -> Result<()>;
    /// The combined watermark of both inputs advanced; by default forwarded.
    fn process_watermark(&mut self, watermark: Watermark, out: &mut Outputs<O>) -> Result<()> {
        out.emit_watermark(watermark)
    }
    /// Input `input` (0 or 1) ended.
    fn end_input(&mut self, _input: usize, _out: &mut Outputs<O>) -> Result<()> {
        Ok(())
    }
    /// Both inputs ended.
    fn finish(&mut self, _out: &mut Outputs<O>) -> Result<()> {
        Ok(())
    }
    /// Processing time reached `now`; fire due processing-time timers.
    fn on_processing_time(&mut self, _now: i64, _out: &mut Outputs<O>) -> Result<()> {
        Ok(())
    }
    /// Entries of keyed state, buffers and timers the operator holds (a metric).
    fn state_entries(&self) -> u64 {
        0
    }

    /// Adds the operator's state to a checkpoint. Operators that hold state must write all
    /// of it here (keyed state per key group); the default is for stateless operators.
    fn snapshot_state(
        &mut self,
        _barrier: &CheckpointBarrier,
        _state: &mut OperatorSubtaskState,
    ) -> Result<()> {
        Ok(())
    }

    /// Loads the state of a restored job; called once, before the first record.
    fn initialize_state(&mut self, _restored: &RestoredState) -> Result<()> {
        Ok(())
    }

    /// A checkpoint completed or was aborted (two-phase-commit sinks commit or roll back).
    fn notify_checkpoint(
        &mut self,
        _notice: CheckpointNotice,
        _out: &mut Outputs<O>,
    ) -> Result<()> {
        Ok(())
    }
}

/// A two-input operator at the head of its chain.
pub struct TwoInputLink<A, B, O, Op> {
    op: Op,
    out: Outputs<O>,
    info: OperatorInfo,
    records_in: u64,
    _i: PhantomData<fn(A, B)>,
}

impl<A, B, O: 'static, Op: TwoInputOperator<A, B, O>> TwoInputLink<A, B, O, Op> {
    /// Links `op` to its outputs; a restored job's state (in `info`) is loaded into it.
    pub fn new(mut op: Op, out: Outputs<O>, info: OperatorInfo) -> Result<Self> {
        if let Some(r) = info.restored.clone() {
            guarded(&info, || op.initialize_state(&r))?;
        }
        Ok(TwoInputLink {
            op,
            out,
            info,
            records_in: 0,
            _i: PhantomData,
        })
    }

    /// A record on the first input.
    #[inline]
    pub fn process1(&mut self, record: StreamRecord<A>) -> Result<()> {
        self.records_in += 1;
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.process_element1(record, out))
    }

    /// A record on the second input.
    #[inline]
    pub fn process2(&mut self, record: StreamRecord<B>) -> Result<()> {
        self.records_in += 1;
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.process_element2(record, out))
    }

    /// Input `input` ended.
    pub fn end_input(&mut self, input: usize) -> Result<()> {
        let (op, out) = (&mut self.op, &mut self.out);
        guarded(&self.info, || op.end_input(input, out))
    }
}

impl<A, B, O: 'static, Op: TwoInputOperator<A, B, O>> OutputControl for TwoInputLink<A, B, O, Op> {
    link_control_methods!();

    fn emit_watermark_status(&mut self, st: WatermarkStatus) -> Result<()> {
        self.out.emit_watermark_status(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Double;
    impl OneInputOperator<i64, i64> for Double {
        fn process_element(&mut self, r: StreamRecord<i64>, out: &mut Outputs<i64>) -> Result<()> {
            if r.value == 13 {
                panic!("unlucky {}", r.value);
            }
            out.collect(r.replace(r.value * 2))?;
            out.collect_side("odd", r.replace(r.value % 2 == 1))
        }
    }

    #[test]
    fn link_counts_routes_side_outputs_and_names_panics() {
        let (collect, got) = CollectingOutput::new();
        let info = OperatorInfo {
            node: 3,
            name: "Double".into(),
            subtask: 1,
            parallelism: 2,
            max_parallelism: 128,
            ..Default::default()
        };
        let mut link = OneInputLink::new(
            Double,
            Outputs::new(
                Box::new(collect),
                vec![(
                    "odd".to_string(),
                    Box::new(TypedSideOutput::<bool>(Box::new(Discard::default()))),
                )],
            ),
            info,
        )
        .unwrap();
        for i in 1..=3 {
            link.collect(StreamRecord::new(i)).unwrap();
        }
        assert_eq!(*got.lock().unwrap(), vec![2, 4, 6]);
        let err = catch_user_panic(|| link.collect(StreamRecord::new(13)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'Double'") && err.contains("subtask 1") && err.contains("unlucky 13"),
            "{err}"
        );
        let mut seen = Vec::new();
        link.visit_metrics(&mut |m| seen.push((m.records_in, m.records_out)));
        assert_eq!(seen, vec![(4, 3)]);
    }

    #[test]
    fn a_batch_goes_through_record_by_record_operators_to_every_branch() {
        let (a, got_a) = CollectingOutput::new();
        let (b, got_b) = CollectingOutput::new();
        let fan = FanOut::new(vec![Box::new(a), Box::new(b)]);
        let mut link = OneInputLink::new(
            Double,
            Outputs::new(Box::new(fan), Vec::new()),
            OperatorInfo::default(),
        )
        .unwrap();
        for round in 0..2 {
            let mut batch: Vec<_> = (1..=5).map(StreamRecord::new).collect();
            link.collect_batch(&mut batch).unwrap();
            assert!(batch.is_empty(), "round {round}");
        }
        let want = vec![2, 4, 6, 8, 10, 2, 4, 6, 8, 10];
        assert_eq!(*got_a.lock().unwrap(), want);
        assert_eq!(*got_b.lock().unwrap(), want);
        let mut seen = Vec::new();
        link.visit_metrics(&mut |m| seen.push((m.records_in, m.records_out)));
        assert_eq!(seen, vec![(10, 10)]);
        assert!((16..=1024).contains(&batch_capacity::<[u8; 4096]>()));
        assert_eq!(batch_capacity::<()>(), 1024);
    }

    #[test]
    fn a_panic_caught_by_user_code_is_not_blamed_later() {
        let info = OperatorInfo {
            name: "Catcher".into(),
            ..Default::default()
        };
        // Within one task: user code catches a panic that went through an operator scope,
        // then a panic happens outside any operator.
        let err = catch_user_panic(|| -> Result<()> {
            let caught = std::panic::catch_unwind(|| {
                let _ = guarded(&info, || -> Result<()> { panic!("inner") });
            });
            assert!(caught.is_err());
            panic!("runtime bug")
        })
        .unwrap_err()
        .to_string();
        assert!(
            !err.contains("Catcher") && err.contains("runtime bug"),
            "{err}"
        );
    }
}
