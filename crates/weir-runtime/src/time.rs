//! Processing time for a task: the wall clock, and the earliest moment at which one of the
//! task's operators wants to be called back.
//!
//! Operators keep their own processing-time timers and announce their earliest one with
//! [`ProcessingTimeService::request`]; the task's mailbox loop sleeps no longer than that and
//! then calls `on_processing_time` down the chain, where each operator fires what is due.
//! One shared atomic is all the coordination needed: everything else stays on the task's
//! thread.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The earliest processing-time callback a task's operators asked for.
#[derive(Clone)]
pub struct ProcessingTimeService {
    next: Arc<AtomicI64>,
}

impl Default for ProcessingTimeService {
    fn default() -> Self {
        ProcessingTimeService {
            next: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }
}

impl fmt::Debug for ProcessingTimeService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProcessingTimeService(next: {})",
            self.next.load(Ordering::Relaxed)
        )
    }
}

impl ProcessingTimeService {
    /// The current processing time in milliseconds.
    pub fn now(&self) -> i64 {
        now_ms()
    }

    /// Asks for a callback at or after `at_ms`.
    pub fn request(&self, at_ms: i64) {
        self.next.fetch_min(at_ms, Ordering::Relaxed);
    }

    /// The requested callback time, if any.
    pub fn next(&self) -> Option<i64> {
        let n = self.next.load(Ordering::Relaxed);
        (n != i64::MAX).then_some(n)
    }

    /// If a callback is due at `now`, clears the request (operators request again what they
    /// still need) and returns true.
    pub fn take_due(&self, now: i64) -> bool {
        let n = self.next.load(Ordering::Relaxed);
        if n <= now {
            self.next.store(i64::MAX, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// How long to sleep at most before the next callback is due.
    pub fn wait_bound(&self, now: i64) -> Option<Duration> {
        self.next()
            .map(|n| Duration::from_millis(n.saturating_sub(now).max(0) as u64))
    }
}

/// Wakes a task from another thread for an `on_processing_time` call down its chain: an
/// operator that waits for work finishing elsewhere (async I/O calls) hands it to what it
/// starts there. Flink's operators put a mail into the task's mailbox for this; here the
/// wake is an empty mail (it interrupts the task's wait) plus a processing-time callback
/// due at once (the task makes it right after running its mails).
#[derive(Clone, Default)]
pub struct TaskWaker {
    inbox: Option<std::sync::Weak<crate::inbox::TaskInbox>>,
    processing_time: ProcessingTimeService,
}

impl fmt::Debug for TaskWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskWaker(bound: {})", self.inbox.is_some())
    }
}

impl TaskWaker {
    /// A waker of the task with `inbox` whose operators share `processing_time`.
    pub fn new(
        inbox: &Arc<crate::inbox::TaskInbox>,
        processing_time: ProcessingTimeService,
    ) -> Self {
        TaskWaker {
            inbox: Some(Arc::downgrade(inbox)),
            processing_time,
        }
    }

    /// Makes the task call `on_processing_time` soon. A task that has ended is not woken
    /// (nothing is kept alive by the waker).
    pub fn wake(&self) {
        self.processing_time.request(i64::MIN);
        if let Some(inbox) = self.inbox.as_ref().and_then(std::sync::Weak::upgrade) {
            inbox.send_mail(Box::new(|| Ok(())));
        }
    }
}
