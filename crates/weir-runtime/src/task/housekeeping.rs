//! What a task checks after every step of its default action: due processing-time timers,
//! the buffer timeout's flush, and now and then a copy of its counters for live metrics.

use crate::error::Result;
use crate::head::{InputChainHead, SourceChainHead};
use crate::metrics::{LiveMetrics, MetricsVisitor, LIVE_METRICS_INTERVAL};
use crate::time::{now_ms, ProcessingTimeService};
use std::time::{Duration, Instant};

/// What housekeeping needs of a chain: sources and input chains alike.
pub(super) trait Chain {
    /// Sends partly filled buffers.
    fn flush(&mut self) -> Result<()>;
    /// Processing time reached `now`.
    fn on_processing_time(&mut self, now: i64) -> Result<()>;
    /// Reports per-operator counters.
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>);
}

impl Chain for Box<dyn SourceChainHead> {
    fn flush(&mut self) -> Result<()> {
        SourceChainHead::flush(self.as_mut())
    }
    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        SourceChainHead::on_processing_time(self.as_mut(), now)
    }
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>) {
        SourceChainHead::visit_metrics(self.as_ref(), visitor)
    }
}

impl Chain for Box<dyn InputChainHead> {
    fn flush(&mut self) -> Result<()> {
        InputChainHead::flush(self.as_mut())
    }
    fn on_processing_time(&mut self, now: i64) -> Result<()> {
        InputChainHead::on_processing_time(self.as_mut(), now)
    }
    fn visit_metrics(&self, visitor: MetricsVisitor<'_>) {
        InputChainHead::visit_metrics(self.as_ref(), visitor)
    }
}

/// Copies the chain's counters into `live`. Out of line and cold: it runs about once a
/// second, and must not change how the record loop around it is compiled.
#[cold]
#[inline(never)]
fn publish_live(live: &LiveMetrics, chain: &dyn Chain) {
    let mut metrics = Vec::new();
    chain.visit_metrics(&mut |m| metrics.push(m.clone()));
    live.publish(metrics);
}

/// A task's timers, flush schedule and live-counter schedule.
pub(super) struct Housekeeping {
    timers: ProcessingTimeService,
    /// The buffer timeout (`None`: buffers go out only when full or at a barrier or end).
    timeout: Option<Duration>,
    next_flush: Option<Instant>,
    live: Option<LiveMetrics>,
    next_publish: Instant,
}

impl Housekeeping {
    /// Housekeeping with the task's timer service, buffer timeout and live-counter cell.
    pub(super) fn new(
        timers: ProcessingTimeService,
        timeout: Option<Duration>,
        live: Option<LiveMetrics>,
    ) -> Self {
        Housekeeping {
            timers,
            timeout,
            next_flush: timeout.map(|t| Instant::now() + t),
            live,
            next_publish: Instant::now(),
        }
    }

    /// Fires due timers, then flushes if the buffer timeout is due.
    #[inline]
    pub(super) fn run(&mut self, chain: &mut dyn Chain) -> Result<()> {
        if self.timers.next().is_some() {
            let now = now_ms();
            if self.timers.take_due(now) {
                chain.on_processing_time(now)?;
            }
        }
        self.flush_if_due(chain)
    }

    /// Flushes the chain's partly filled buffers if the buffer timeout is due (and about
    /// once a second publishes its counters with it). Timers do not run.
    #[inline]
    pub(super) fn flush_if_due(&mut self, chain: &mut dyn Chain) -> Result<()> {
        let (Some(t), Some(due)) = (self.timeout, self.next_flush) else {
            return Ok(());
        };
        let now = Instant::now();
        if now < due {
            return Ok(());
        }
        chain.flush()?;
        self.next_flush = Some(now + t);
        if let Some(live) = self.live.as_ref().filter(|_| now >= self.next_publish) {
            publish_live(live, chain);
            self.next_publish = now + LIVE_METRICS_INTERVAL;
        }
        Ok(())
    }

    /// The next buffer-timeout flush.
    pub(super) fn next_flush(&self) -> Option<Instant> {
        self.next_flush
    }

    /// The instant until which the task may sleep: the next flush or timer, whichever is
    /// first, and never later than `cap`.
    pub(super) fn wake_at(&self, cap: Option<Instant>) -> Option<Instant> {
        let timer = self.timers.wait_bound(now_ms()).map(|d| Instant::now() + d);
        [self.next_flush, cap, timer].into_iter().flatten().min()
    }
}
