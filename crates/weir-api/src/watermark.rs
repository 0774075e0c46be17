//! Event timestamps and watermarks: [`WatermarkStrategy`] (Flink's), its generators, and the
//! operator that assigns timestamps and emits watermarks.
//!
//! A generator sees every event (`on_event`) and is asked periodically (`on_periodic_emit`,
//! every auto-watermark interval, 200 ms by default) for a watermark. Watermarks only move
//! forward: a generator may propose a smaller one, it is not emitted. With idleness, an input
//! that produced no event for the idle timeout is marked idle, so it no longer holds back the
//! watermark downstream, and active again with its next event.

use std::sync::Arc;
use std::time::Duration;
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::{Result, StreamRecord, Watermark, WatermarkStatus, NO_TIMESTAMP};

/// Where a [`WatermarkGenerator`] emits.
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    watermark: Option<i64>,
    idle: Option<bool>,
}

impl WatermarkOutput {
    /// Proposes a watermark.
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.idle = Some(false);
    }

    /// Marks the stream idle until the next watermark or event.
    pub fn mark_idle(&mut self) {
        self.idle = Some(true);
    }

    /// Marks the stream active.
    pub fn mark_active(&mut self) {
        self.idle = Some(false);
    }

    /// The largest watermark proposed, if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Whether the stream was marked idle (`Some(true)`) or active (`Some(false)`).
    pub fn idleness(&self) -> Option<bool> {
        self.idle
    }
}

/// Generates watermarks from events and time (Flink's `WatermarkGenerator`).
pub trait WatermarkGenerator<T>: Send {
    /// Called for every event, after it was emitted.
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput);
    /// Called every auto-watermark interval.
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);
}

/// Emits `max timestamp - out_of_orderness - 1` periodically (Flink's
/// `BoundedOutOfOrdernessWatermarks`; with 0 out-of-orderness, monotonous timestamps).
pub struct BoundedOutOfOrderness {
    max_timestamp: i64,
    out_of_orderness: i64,
}

impl BoundedOutOfOrderness {
    /// A generator tolerating `out_of_orderness`.
    pub fn new(out_of_orderness: Duration) -> Self {
        let ooo = out_of_orderness.as_millis() as i64;
        BoundedOutOfOrderness {
            max_timestamp: i64::MIN.saturating_add(ooo).saturating_add(1),
            out_of_orderness: ooo,
        }
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    fn on_event(&mut self, _: &T, timestamp: i64, _: &mut WatermarkOutput) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        output.emit_watermark(self.max_timestamp - self.out_of_orderness - 1);
    }
}

/// Never emits a watermark.
pub struct NoWatermarks;

impl<T> WatermarkGenerator<T> for NoWatermarks {
    fn on_event(&mut self, _: &T, _: i64, _: &mut WatermarkOutput) {}
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

/// Wraps a generator: marks the stream idle when no event came for `timeout`
/// (Flink's `WatermarksWithIdleness`).
struct WithIdleness<T> {
    inner: Box<dyn WatermarkGenerator<T>>,
    timeout_ms: i64,
    last_activity: i64,
    idle: bool,
    clock: fn() -> i64,
}

impl<T> WatermarkGenerator<T> for WithIdleness<T> {
    fn on_event(&mut self, event: &T, timestamp: i64, output: &mut WatermarkOutput) {
        self.last_activity = (self.clock)();
        if self.idle {
            self.idle = false;
            output.mark_active();
        }
        self.inner.on_event(event, timestamp, output);
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        if (self.clock)() - self.last_activity >= self.timeout_ms {
            if !self.idle {
                self.idle = true;
                output.mark_idle();
            }
        } else {
            self.inner.on_periodic_emit(output);
        }
    }
}

type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;
type TimestampAssigner<T> = Arc<dyn Fn(&T, Option<i64>) -> i64 + Send + Sync>;

/// How a stream gets event timestamps and watermarks (Flink's `WatermarkStrategy`).
pub struct WatermarkStrategy<T> {
    generator: GeneratorFactory<T>,
    assigner: Option<TimestampAssigner<T>>,
    idleness: Option<Duration>,
    /// Set for the built-in bounded out-of-orderness generator, which the operator runs
    /// inline (no virtual call per record).
    bounded: Option<Duration>,
    /// The alignment group and maximum drift of a source's watermarks.
    alignment: Option<(String, Duration)>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generator: self.generator.clone(),
            assigner: self.assigner.clone(),
            idleness: self.idleness,
            bounded: self.bounded,
            alignment: self.alignment.clone(),
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Timestamps only increase: the watermark is the largest timestamp seen minus 1.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Timestamps are at most `max_out_of_orderness` late.
    pub fn for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> Self {
        let mut s = Self::for_generator(move || BoundedOutOfOrderness::new(max_out_of_orderness));
        s.bounded = Some(max_out_of_orderness);
        s
    }

    /// A custom generator, created per subtask by `factory`.
    pub fn for_generator<G, F>(factory: F) -> Self
    where
        G: WatermarkGenerator<T> + 'static,
        F: Fn() -> G + Send + Sync + 'static,
    {
        WatermarkStrategy {
            generator: Arc::new(move || Box::new(factory())),
            assigner: None,
            idleness: None,
            bounded: None,
            alignment: None,
        }
    }

    /// Timestamps, but no watermarks.
    pub fn no_watermarks() -> Self {
        Self::for_generator(|| NoWatermarks)
    }

    /// Takes each event's timestamp from `assigner(event, previous_timestamp)`; without an
    /// assigner, records keep the timestamp they have.
    pub fn with_timestamp_assigner(
        mut self,
        assigner: impl Fn(&T, Option<i64>) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(assigner));
        self
    }

    /// Aligns a source's watermarks with the other sources of `group` (Flink's
    /// `withWatermarkAlignment`): a source subtask whose watermark is more than `max_drift`
    /// ahead of the group's lowest stops reading until the others catch up. Applies where
    /// the strategy is given to a source
    /// ([`StreamExecutionEnvironment::from_source_with_watermarks`](crate::StreamExecutionEnvironment::from_source_with_watermarks)).
    pub fn with_watermark_alignment(mut self, group: &str, max_drift: Duration) -> Self {
        self.alignment = Some((group.to_string(), max_drift));
        self
    }

    /// The alignment group and maximum drift, if set.
    pub fn watermark_alignment(&self) -> Option<(&str, Duration)> {
        self.alignment.as_ref().map(|(g, d)| (g.as_str(), *d))
    }

    /// Marks the stream idle after `timeout` without events.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// A new generator of this strategy (with idleness, if set), e.g. one per split of a
    /// source that generates watermarks per split.
    pub fn create_watermark_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        self.create_dynamic_generator()
    }

    /// The event timestamp of `event`: the assigner's, or `previous` (the timestamp the
    /// record came with, e.g. a Kafka record's) without an assigner.
    pub fn timestamp_of(&self, event: &T, previous: Option<i64>) -> i64 {
        match &self.assigner {
            Some(a) => a(event, previous),
            None => previous.unwrap_or(NO_TIMESTAMP),
        }
    }

    pub(crate) fn create_generator(&self) -> Generator<T> {
        match (self.bounded, self.idleness) {
            (Some(ooo), None) => Generator::Bounded(BoundedOutOfOrderness::new(ooo)),
            _ => Generator::Dynamic(self.create_dynamic_generator()),
        }
    }

    fn create_dynamic_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        let inner = (self.generator)();
        match self.idleness {
            None => inner,
            Some(t) => Box::new(WithIdleness {
                inner,
                timeout_ms: t.as_millis() as i64,
                last_activity: weir_runtime::time::now_ms(),
                idle: false,
                clock: weir_runtime::time::now_ms,
            }),
        }
    }
}

/// A generator as the operator runs it: the built-in one inline, others behind a pointer.
pub(crate) enum Generator<T> {
    Bounded(BoundedOutOfOrderness),
    Dynamic(Box<dyn WatermarkGenerator<T>>),
}

/// Assigns timestamps and emits the generator's watermarks (Flink's
/// `TimestampsAndWatermarksOperator`). Watermarks from upstream are dropped, except the
/// final one at the end of input.
pub(crate) struct TimestampsAndWatermarksOp<T> {
    pub assigner: Option<TimestampAssigner<T>>,
    pub generator: Generator<T>,
    pub interval_ms: i64,
    pub next_periodic: i64,
    pub current: i64,
    pub idle: bool,
    pub info: OperatorInfo,
}

impl<T> TimestampsAndWatermarksOp<T> {
    pub(crate) fn new(
        strategy: &WatermarkStrategy<T>,
        interval_ms: u64,
        info: &OperatorInfo,
    ) -> Self
    where
        T: 'static,
    {
        let mut op = TimestampsAndWatermarksOp {
            assigner: strategy.assigner.clone(),
            generator: strategy.create_generator(),
            interval_ms: interval_ms as i64,
            next_periodic: i64::MAX,
            current: i64::MIN,
            idle: false,
            info: info.clone(),
        };
        if op.interval_ms > 0 {
            op.next_periodic = info.processing_time.now() + op.interval_ms;
            info.processing_time.request(op.next_periodic);
        }
        op
    }

    /// The event timestamp of `r`: the assigner's, or the one it carries.
    #[inline]
    fn timestamp_of(&self, r: &StreamRecord<T>) -> i64 {
        match &self.assigner {
            Some(a) => a(&r.value, r.timestamp()),
            None => r.timestamp().unwrap_or(NO_TIMESTAMP),
        }
    }

    fn apply(&mut self, wo: WatermarkOutput, out: &mut dyn OutputControl) -> Result<()> {
        if let Some(w) = wo.watermark {
            if self.idle {
                self.idle = false;
                out.emit_watermark_status(WatermarkStatus::Active)?;
            }
            if w > self.current {
                self.current = w;
                out.emit_watermark(Watermark(w))?;
            }
        }
        match wo.idle {
            Some(true) if !self.idle => {
                self.idle = true;
                out.emit_watermark_status(WatermarkStatus::Idle)?;
            }
            Some(false) if self.idle => {
                self.idle = false;
                out.emit_watermark_status(WatermarkStatus::Active)?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl<T: Send + 'static> OneInputOperator<T, T> for TimestampsAndWatermarksOp<T> {
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<T>) -> Result<()> {
        let ts = self.timestamp_of(&r);
        let g = match &mut self.generator {
            Generator::Bounded(b) => {
                b.max_timestamp = b.max_timestamp.max(ts);
                return out.collect(StreamRecord::with_timestamp(r.value, ts));
            }
            Generator::Dynamic(g) => g,
        };
        let mut wo = WatermarkOutput::default();
        g.on_event(&r.value, ts, &mut wo);
        out.collect(StreamRecord::with_timestamp(r.value, ts))?;
        if wo.watermark.is_none() && wo.idle.is_none() {
            return Ok(());
        }
        self.apply(wo, out)
    }

    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<T>>,
        out: &mut Outputs<T>,
    ) -> Result<()> {
        let Generator::Bounded(b) = &self.generator else {
            // A custom generator may emit a watermark after any event: record by record.
            for r in batch.drain(..) {
                self.process_element(r, out)?;
            }
            return Ok(());
        };
        // The built-in generator only emits periodically: the batch stays one batch and
        // gets its timestamps in place.
        let mut max = b.max_timestamp;
        for r in batch.iter_mut() {
            let ts = self.timestamp_of(r);
            max = max.max(ts);
            r.set_timestamp(Some(ts));
        }
        if let Generator::Bounded(b) = &mut self.generator {
            b.max_timestamp = max;
        }
        out.collect_batch(batch)
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<T>) -> Result<()> {
        if wm == Watermark::MAX && self.current != i64::MAX {
            self.current = i64::MAX;
            if self.idle {
                self.idle = false;
                out.emit_watermark_status(WatermarkStatus::Active)?;
            }
            return out.emit_watermark(wm);
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Outputs<T>) -> Result<()> {
        if self.interval_ms <= 0 {
            return Ok(());
        }
        if now >= self.next_periodic {
            let mut wo = WatermarkOutput::default();
            match &mut self.generator {
                Generator::Bounded(b) => WatermarkGenerator::<T>::on_periodic_emit(b, &mut wo),
                Generator::Dynamic(g) => g.on_periodic_emit(&mut wo),
            }
            self.apply(wo, out)?;
            self.next_periodic = now + self.interval_ms;
        }
        self.info.processing_time.request(self.next_periodic);
        Ok(())
    }
}
