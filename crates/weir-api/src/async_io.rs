//! Asynchronous I/O (Flink's `AsyncDataStream`): an async call per record (a lookup in a
//! database or a service) with many calls in flight, instead of one blocking call at a time.
//!
//! - **Ordered** ([`AsyncDataStream::ordered_wait`]): results leave in the order the records
//!   came in. **Unordered** ([`AsyncDataStream::unordered_wait`]): a result leaves as soon
//!   as its call completes, but never across a watermark: what came before a watermark
//!   leaves before it, what came after leaves after it (Flink's semantics for event time).
//! - **Capacity**: at most `capacity` records are in flight; the next record waits for a
//!   call to complete, so a slow service backpressures the job.
//! - **Timeouts**: a call (with its retries) not complete after `timeout` goes to
//!   [`AsyncFunction::timeout`], which may give results or fail the job (the default).
//! - **Retries** ([`AsyncRetryStrategy`]): a failed call (or, if asked, an empty result) is
//!   tried again after a fixed or exponentially growing delay, within the timeout.
//! - **Exactly once**: the records in flight are stored in every checkpoint and their
//!   calls made again on restore, so no record is lost or answered twice in the output.
//!
//! The calls run on a tokio runtime owned by the operator subtask (one worker thread). When
//! one completes, it wakes the task ([`weir_runtime::time::TaskWaker`]), which emits what
//! became ready on its own thread.
//!
//! ```no_run
//! use std::time::Duration;
//! use weir_api::async_io::{AsyncDataStream, AsyncFunction, AsyncResult};
//! use weir_api::prelude::*;
//!
//! #[derive(Clone)]
//! struct Lookup;
//!
//! impl AsyncFunction<u64, (u64, String)> for Lookup {
//!     fn async_invoke(&self, id: u64) -> AsyncResult<(u64, String)> {
//!         Box::pin(async move {
//!             // e.g. a query through an async database client
//!             Ok(vec![(id, format!("name-{id}"))])
//!         })
//!     }
//! }
//! # let env = StreamExecutionEnvironment::new();
//! # let ids = env.from_sequence(1, 10).map(|i: i64| i as u64);
//! let named = AsyncDataStream::unordered_wait(&ids, Lookup, Duration::from_secs(1), 100);
//! ```

use crate::datastream::DataStream;
use crate::functions::{user_error, RuntimeContext, UserError};
use crate::graph::NodeKind;
use crate::types::Data;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;
use weir_runtime::checkpoint::CheckpointBarrier;
use weir_runtime::operator::{guarded, OneInputLink, OneInputOperator, OperatorInfo, Outputs};
use weir_runtime::time::TaskWaker;
use weir_runtime::{OutputControl, Result, StreamRecord, Watermark};
use weir_state::{OperatorSubtaskState, RestoredState};

/// What an async call returns: the records for its input.
pub type AsyncResult<O> = Pin<Box<dyn Future<Output = Result<Vec<O>, UserError>> + Send>>;

/// An asynchronous function called once per record (Flink's `AsyncFunction`).
pub trait AsyncFunction<I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }

    /// Starts the call for `input`. The future runs on the subtask's async runtime; an
    /// error fails the job (after the retries, if any).
    fn async_invoke(&self, input: I) -> AsyncResult<O>;

    /// The call for `input` did not complete in time: the records to emit instead, or an
    /// error that fails the job (the default, as in Flink).
    fn timeout(&self, _input: &I) -> Result<Vec<O>, UserError> {
        Err("the async call timed out".into())
    }
}

/// When to try a call again (Flink's `AsyncRetryStrategy`).
#[derive(Clone, Debug, PartialEq)]
pub struct AsyncRetryStrategy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Each further delay is the previous one times this (1.0: a fixed delay).
    pub multiplier: f64,
    /// No delay grows beyond this.
    pub max_delay: Duration,
    /// Also retry a call that returned no records.
    pub retry_on_empty_result: bool,
}

impl AsyncRetryStrategy {
    /// Up to `max_retries` retries, `delay` apart.
    pub fn fixed_delay(max_retries: u32, delay: Duration) -> Self {
        AsyncRetryStrategy {
            max_retries,
            initial_delay: delay,
            multiplier: 1.0,
            max_delay: delay,
            retry_on_empty_result: false,
        }
    }

    /// Up to `max_retries` retries, the delay starting at `initial` and growing by
    /// `multiplier` up to `max`.
    pub fn exponential_backoff(
        max_retries: u32,
        initial: Duration,
        max: Duration,
        multiplier: f64,
    ) -> Self {
        AsyncRetryStrategy {
            max_retries,
            initial_delay: initial,
            multiplier: multiplier.max(1.0),
            max_delay: max,
            retry_on_empty_result: false,
        }
    }

    /// Also retries calls that returned no records.
    pub fn retry_on_empty_result(mut self) -> Self {
        self.retry_on_empty_result = true;
        self
    }

    fn no_retry() -> Self {
        Self::fixed_delay(0, Duration::ZERO)
    }

    /// The delay before retry `n` (from 0).
    fn delay(&self, n: u32) -> Duration {
        let factor = self.multiplier.powi(n.min(64) as i32);
        self.initial_delay.mul_f64(factor).min(self.max_delay)
    }
}

/// Builds async I/O operators (Flink's `AsyncDataStream`).
pub struct AsyncDataStream;

/// How results leave the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputMode {
    Ordered,
    Unordered,
}

impl AsyncDataStream {
    /// Results in any order (but not across watermarks), at most `capacity` in flight.
    pub fn unordered_wait<I: Data, O: Data, F: AsyncFunction<I, O>>(
        stream: &DataStream<I>,
        f: F,
        timeout: Duration,
        capacity: usize,
    ) -> DataStream<O> {
        Self::unordered_wait_with_retry(
            stream,
            f,
            timeout,
            capacity,
            AsyncRetryStrategy::no_retry(),
        )
    }

    /// Results in the order of the records, at most `capacity` in flight.
    pub fn ordered_wait<I: Data, O: Data, F: AsyncFunction<I, O>>(
        stream: &DataStream<I>,
        f: F,
        timeout: Duration,
        capacity: usize,
    ) -> DataStream<O> {
        Self::ordered_wait_with_retry(stream, f, timeout, capacity, AsyncRetryStrategy::no_retry())
    }

    /// [`Self::unordered_wait`] with retries.
    pub fn unordered_wait_with_retry<I: Data, O: Data, F: AsyncFunction<I, O>>(
        stream: &DataStream<I>,
        f: F,
        timeout: Duration,
        capacity: usize,
        retry: AsyncRetryStrategy,
    ) -> DataStream<O> {
        Self::build(stream, f, timeout, capacity, retry, OutputMode::Unordered)
    }

    /// [`Self::ordered_wait`] with retries.
    pub fn ordered_wait_with_retry<I: Data, O: Data, F: AsyncFunction<I, O>>(
        stream: &DataStream<I>,
        f: F,
        timeout: Duration,
        capacity: usize,
        retry: AsyncRetryStrategy,
    ) -> DataStream<O> {
        Self::build(stream, f, timeout, capacity, retry, OutputMode::Ordered)
    }

    fn build<I: Data, O: Data, F: AsyncFunction<I, O>>(
        stream: &DataStream<I>,
        f: F,
        timeout: Duration,
        capacity: usize,
        retry: AsyncRetryStrategy,
        mode: OutputMode,
    ) -> DataStream<O> {
        let capacity = capacity.max(1);
        stream.one_input("Async Wait", NodeKind::Operator, move |info, out| {
            let mut f = f.clone();
            guarded(info, || {
                f.open(&RuntimeContext::of(info))
                    .map_err(|e| user_error(info, e))
            })?;
            // A restored job's records in flight are called again in `initialize_state`.
            let op = AsyncWaitOp::new(f, timeout, capacity, retry.clone(), mode, info)?;
            Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
        })
    }
}

/// The operator state under which the records in flight are checkpointed.
const IN_FLIGHT_STATE: &str = "async-wait-in-flight";

/// How a call ended.
enum Outcome<O> {
    Done(Vec<O>),
    Failed(UserError),
    TimedOut,
}

/// A place in the operator's queue: a record with its call, or a watermark that waits for
/// the records before it.
enum Slot<I, O> {
    Record {
        seq: u64,
        input: I,
        timestamp: Option<i64>,
        outcome: Option<Outcome<O>>,
    },
    Watermark(Watermark),
}

/// Completions from the calls, and whether a wake of the task is already on its way.
struct Completions<O> {
    tx: Sender<(u64, Outcome<O>)>,
    wake_pending: AtomicBool,
    waker: TaskWaker,
}

impl<O> Completions<O> {
    fn complete(&self, seq: u64, outcome: Outcome<O>) {
        // The operator may be gone (a failed task): then nobody waits for this.
        if self.tx.send((seq, outcome)).is_ok() && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }
}

/// Runs an [`AsyncFunction`] (Flink's `AsyncWaitOperator`).
struct AsyncWaitOp<I, O, F> {
    f: Arc<F>,
    /// The subtask's async runtime (taken only when the operator is dropped).
    rt: Option<tokio::runtime::Runtime>,
    timeout: Duration,
    capacity: usize,
    retry: Arc<AsyncRetryStrategy>,
    mode: OutputMode,
    /// Records (and watermarks) not emitted yet, in arrival order.
    queue: VecDeque<Slot<I, O>>,
    /// Records in the queue.
    records: usize,
    next_seq: u64,
    completions: Arc<Completions<O>>,
    rx: Receiver<(u64, Outcome<O>)>,
    info: OperatorInfo,
}

impl<I: Data, O: Send + 'static, F: AsyncFunction<I, O>> AsyncWaitOp<I, O, F> {
    fn new(
        f: F,
        timeout: Duration,
        capacity: usize,
        retry: AsyncRetryStrategy,
        mode: OutputMode,
        info: &OperatorInfo,
    ) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .thread_name(format!("{} async ({})", info.name, info.subtask + 1))
            .build()
            .map_err(|e| info.error(format!("cannot start its async runtime: {e}")))?;
        let (tx, rx) = channel();
        Ok(AsyncWaitOp {
            f: Arc::new(f),
            rt: Some(rt),
            timeout,
            capacity,
            retry: Arc::new(retry),
            mode,
            queue: VecDeque::new(),
            records: 0,
            next_seq: 0,
            completions: Arc::new(Completions {
                tx,
                wake_pending: AtomicBool::new(false),
                waker: info.waker.clone(),
            }),
            rx,
            info: info.clone(),
        })
    }

    /// Queues `input` and starts its call.
    fn start(&mut self, input: I, timestamp: Option<i64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let call = call_with_retries(
            self.f.clone(),
            input.clone(),
            self.timeout,
            self.retry.clone(),
        );
        let completions = self.completions.clone();
        self.rt
            .as_ref()
            .expect("the async runtime lives until the operator is dropped")
            .spawn(async move {
                let outcome = call.await;
                completions.complete(seq, outcome);
            });
        self.queue.push_back(Slot::Record {
            seq,
            input,
            timestamp,
            outcome: None,
        });
        self.records += 1;
    }

    /// Files a completed call with its record.
    fn file(&mut self, seq: u64, outcome: Outcome<O>) {
        for slot in &mut self.queue {
            if let Slot::Record {
                seq: s, outcome: o, ..
            } = slot
            {
                if *s == seq {
                    *o = Some(outcome);
                    return;
                }
            }
        }
    }

    /// Files the completions that arrived, without waiting.
    fn take_completions(&mut self) {
        self.completions
            .wake_pending
            .store(false, Ordering::Release);
        while let Ok((seq, outcome)) = self.rx.try_recv() {
            self.file(seq, outcome);
        }
    }

    /// Waits for one completion and files it.
    fn wait_for_one(&mut self) -> Result<()> {
        let (seq, outcome) = self
            .rx
            .recv()
            .map_err(|_| self.info.error("its async runtime stopped"))?;
        self.file(seq, outcome);
        self.take_completions();
        Ok(())
    }

    /// The records of a completed slot, or the job's failure.
    fn results(&self, input: &I, outcome: Outcome<O>) -> Result<Vec<O>> {
        match outcome {
            Outcome::Done(v) => Ok(v),
            Outcome::Failed(e) => Err(user_error(&self.info, e)),
            Outcome::TimedOut => guarded(&self.info, || {
                self.f.timeout(input).map_err(|e| user_error(&self.info, e))
            }),
        }
    }

    /// Emits what may leave now: in order, the completed records at the front (and the
    /// watermarks they uncover); unordered, also completed records behind an incomplete
    /// one, up to the first watermark.
    fn emit_ready(&mut self, out: &mut Outputs<O>) -> Result<()> {
        loop {
            match self.queue.front() {
                None => return Ok(()),
                Some(Slot::Watermark(_)) => {
                    if let Some(Slot::Watermark(wm)) = self.queue.pop_front() {
                        out.emit_watermark(wm)?;
                    }
                    continue;
                }
                Some(Slot::Record {
                    outcome: Some(_), ..
                }) => {
                    if let Some(slot) = self.queue.pop_front() {
                        self.emit_record(slot, out)?;
                    }
                    continue;
                }
                Some(Slot::Record { outcome: None, .. }) => {}
            }
            if self.mode == OutputMode::Unordered {
                // Completed records of the front segment (before the first watermark).
                let mut i = 1;
                while i < self.queue.len() {
                    match &self.queue[i] {
                        Slot::Watermark(_) => break,
                        Slot::Record {
                            outcome: Some(_), ..
                        } => {
                            if let Some(slot) = self.queue.remove(i) {
                                self.emit_record(slot, out)?;
                            }
                        }
                        Slot::Record { outcome: None, .. } => i += 1,
                    }
                }
            }
            return Ok(());
        }
    }

    fn emit_record(&mut self, slot: Slot<I, O>, out: &mut Outputs<O>) -> Result<()> {
        let Slot::Record {
            input,
            timestamp,
            outcome: Some(outcome),
            ..
        } = slot
        else {
            return Ok(());
        };
        self.records -= 1;
        for v in self.results(&input, outcome)? {
            out.collect(StreamRecord::from_parts(v, timestamp))?;
        }
        Ok(())
    }
}

/// The call for `input` with retries, within `timeout` overall.
async fn call_with_retries<I: Clone, O, F: AsyncFunction<I, O>>(
    f: Arc<F>,
    input: I,
    timeout: Duration,
    retry: Arc<AsyncRetryStrategy>,
) -> Outcome<O> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        let r = tokio::time::timeout_at(deadline, f.async_invoke(input.clone())).await;
        let retryable = match &r {
            Err(_) => return Outcome::TimedOut,
            Ok(Ok(v)) => retry.retry_on_empty_result && v.is_empty(),
            Ok(Err(_)) => true,
        };
        if !retryable || attempt >= retry.max_retries {
            return match r {
                Ok(Ok(v)) => Outcome::Done(v),
                Ok(Err(e)) => Outcome::Failed(e),
                Err(_) => Outcome::TimedOut,
            };
        }
        let wake = tokio::time::Instant::now() + retry.delay(attempt);
        if wake >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Outcome::TimedOut;
        }
        tokio::time::sleep_until(wake).await;
        attempt += 1;
    }
}

impl<I: Data, O: Send + 'static, F: AsyncFunction<I, O>> OneInputOperator<I, O>
    for AsyncWaitOp<I, O, F>
{
    fn process_element(&mut self, r: StreamRecord<I>, out: &mut Outputs<O>) -> Result<()> {
        self.take_completions();
        self.emit_ready(out)?;
        // Full: wait for calls to complete (backpressure), emitting what they free.
        while self.records >= self.capacity {
            self.wait_for_one()?;
            self.emit_ready(out)?;
        }
        let ts = r.timestamp();
        self.start(r.value, ts);
        Ok(())
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.queue.push_back(Slot::Watermark(wm));
        self.take_completions();
        self.emit_ready(out)
    }

    fn on_processing_time(&mut self, _now: i64, out: &mut Outputs<O>) -> Result<()> {
        self.take_completions();
        self.emit_ready(out)
    }

    fn finish(&mut self, out: &mut Outputs<O>) -> Result<()> {
        self.take_completions();
        self.emit_ready(out)?;
        while self.records > 0 {
            self.wait_for_one()?;
            self.emit_ready(out)?;
        }
        Ok(())
    }

    fn initialize_state(&mut self, restored: &RestoredState) -> Result<()> {
        // The records a restored checkpoint had in flight are called again.
        for bytes in restored.list(IN_FLIGHT_STATE) {
            let (input, timestamp): (I, Option<i64>) =
                weir_state::snapshot::decode(IN_FLIGHT_STATE, bytes).map_err(|e| {
                    self.info
                        .error(format!("cannot read its restored records: {e}"))
                })?;
            self.start(input, timestamp);
        }
        Ok(())
    }

    fn snapshot_state(
        &mut self,
        _: &CheckpointBarrier,
        state: &mut OperatorSubtaskState,
    ) -> Result<()> {
        // Every record not emitted yet, completed or not, is called again on restore (its
        // result was not emitted before the barrier, so it is not in the output yet).
        let mut entries = Vec::with_capacity(self.records);
        for slot in &self.queue {
            if let Slot::Record {
                input, timestamp, ..
            } = slot
            {
                entries.push(
                    weir_state::snapshot::encode(IN_FLIGHT_STATE, &(input, timestamp)).map_err(
                        |e| {
                            self.info
                                .error(format!("cannot write its records in flight: {e}"))
                        },
                    )?,
                );
            }
        }
        state.add_list(IN_FLIGHT_STATE, entries);
        Ok(())
    }
}

impl<I, O, F> Drop for AsyncWaitOp<I, O, F> {
    fn drop(&mut self) {
        // Calls still running are abandoned with the task; nothing waits for them (a call
        // blocked in user code must not hold up the task's end).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
