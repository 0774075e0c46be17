//! User metrics (Flink's `MetricGroup`): counters, gauges, histograms and meters a user
//! function registers for its operator subtask, exported with the cluster's other metrics in
//! Prometheus form as `weir_user_<name>{job_id, job_name, operator_name, subtask}`.
//!
//! A TaskManager holds one [`UserMetrics`] (the registry it exports to); each task gets a
//! [`MetricGroup`] scoped to its job, and each operator one scoped further to itself. The
//! series of a subtask are removed when its task ends, as Flink closes a task's metric
//! group. Without a registry (a runtime used on its own, in tests) the metrics still count;
//! they are just not exported.
//!
//! Updating a metric is an atomic operation on the task thread; nothing locks per record.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The labels of every user metric series.
const LABELS: [&str; 4] = ["job_id", "job_name", "operator_name", "subtask"];

/// One metric family, shared by the subtasks that register the same name.
#[derive(Clone)]
enum Family {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
    Histogram(HistogramVec),
}

impl Family {
    fn kind(&self) -> &'static str {
        match self {
            Family::Counter(_) => "counter",
            Family::Gauge(_) => "gauge",
            Family::Histogram(_) => "histogram",
        }
    }

    fn remove(&self, labels: &[&str]) {
        // A series never updated may not exist; nothing to remove then.
        let _ = match self {
            Family::Counter(v) => v.remove_label_values(labels),
            Family::Gauge(v) => v.remove_label_values(labels),
            Family::Histogram(v) => v.remove_label_values(labels),
        };
    }
}

/// The user metric families of a process, in the registry they are exported from.
pub struct UserMetrics {
    registry: Registry,
    families: Mutex<HashMap<String, Family>>,
}

impl UserMetrics {
    /// User metrics exported through `registry`.
    pub fn new(registry: Registry) -> Arc<Self> {
        Arc::new(UserMetrics {
            registry,
            families: Mutex::new(HashMap::new()),
        })
    }

    /// The family `name` of the kind `make` builds, registered on first use.
    fn family(
        &self,
        name: &str,
        make: impl FnOnce(&str) -> Result<Family, String>,
    ) -> Result<Family, String> {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = families.get(name) {
            return Ok(f.clone());
        }
        let full = format!("weir_user_{name}");
        let f = make(&full)?;
        let collector: Box<dyn Collector> = match &f {
            Family::Counter(v) => Box::new(v.clone()),
            Family::Gauge(v) => Box::new(v.clone()),
            Family::Histogram(v) => Box::new(v.clone()),
        };
        self.registry
            .register(collector)
            .map_err(|e| format!("cannot register metric '{name}': {e}"))?;
        families.insert(name.to_string(), f.clone());
        Ok(f)
    }
}

/// One registered series: its family and label values.
type Series = (Family, [String; 4]);

/// The scope user metrics are registered in: a job's task, or one operator of it.
#[derive(Clone, Default)]
pub struct MetricGroup {
    metrics: Option<Arc<UserMetrics>>,
    /// `job_id`, `job_name`, `operator_name`, `subtask`.
    labels: Arc<[String; 4]>,
    /// Series registered through this group and its clones, removed by [`Self::close`].
    registered: Arc<Mutex<Vec<Series>>>,
}

// A panic cannot leave a metric half-updated: updates are single atomic operations, and
// the locks here recover from poisoning. So a group may cross `catch_unwind`, as the
// operator information holding it does when a task runs user code.
impl std::panic::UnwindSafe for MetricGroup {}
impl std::panic::RefUnwindSafe for MetricGroup {}

impl std::fmt::Debug for MetricGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricGroup({:?})", self.labels)
    }
}

/// A metric name as Prometheus accepts it: letters, digits and `_`, not starting with a
/// digit.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid metric name (letters, digits and '_', not starting with a digit)"
        ))
    }
}

impl MetricGroup {
    /// The group of a task of job `job_id` (`job_name`), exporting to `metrics` if given.
    pub fn for_task(metrics: Option<Arc<UserMetrics>>, job_id: &str, job_name: &str) -> Self {
        MetricGroup {
            metrics,
            labels: Arc::new([job_id.into(), job_name.into(), String::new(), String::new()]),
            registered: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The group of operator `operator` in subtask `subtask` of this task's job. Its series
    /// are removed with the task's ([`Self::close`] on the task's group).
    pub fn for_operator(&self, operator: &str, subtask: u32) -> Self {
        let [job_id, job_name, _, _] = &*self.labels;
        MetricGroup {
            metrics: self.metrics.clone(),
            labels: Arc::new([
                job_id.clone(),
                job_name.clone(),
                operator.into(),
                subtask.to_string(),
            ]),
            registered: self.registered.clone(),
        }
    }

    fn label_values(&self) -> [&str; 4] {
        let l = &*self.labels;
        [&l[0], &l[1], &l[2], &l[3]]
    }

    /// The family `name`, checked to be of the kind `kind`, and records the series.
    fn series(
        &self,
        name: &str,
        kind: &'static str,
        make: impl FnOnce(&str) -> Result<Family, String>,
    ) -> Result<Option<Family>, String> {
        check_name(name)?;
        let Some(m) = &self.metrics else {
            return Ok(None);
        };
        let f = m.family(name, make)?;
        if f.kind() != kind {
            return Err(format!(
                "metric '{name}' is registered as a {} already, not a {kind}",
                f.kind()
            ));
        }
        self.registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((f.clone(), (*self.labels).clone()));
        Ok(Some(f))
    }

    /// A counter called `name`.
    pub fn counter(&self, name: &str) -> Result<Counter, String> {
        let f = self.series(name, "counter", |full| {
            IntCounterVec::new(Opts::new(full, "A user counter."), &LABELS)
                .map(Family::Counter)
                .map_err(|e| e.to_string())
        })?;
        Ok(Counter {
            inner: match f {
                Some(Family::Counter(v)) => v.with_label_values(&self.label_values()),
                _ => prometheus::IntCounter::new("unexported", "unexported")
                    .map_err(|e| e.to_string())?,
            },
        })
    }

    /// A gauge called `name`, set by the function.
    pub fn gauge(&self, name: &str) -> Result<Gauge, String> {
        let f = self.series(name, "gauge", |full| {
            IntGaugeVec::new(Opts::new(full, "A user gauge."), &LABELS)
                .map(Family::Gauge)
                .map_err(|e| e.to_string())
        })?;
        Ok(Gauge {
            inner: match f {
                Some(Family::Gauge(v)) => v.with_label_values(&self.label_values()),
                _ => prometheus::IntGauge::new("unexported", "unexported")
                    .map_err(|e| e.to_string())?,
            },
        })
    }

    /// A histogram called `name` with the upper bounds `buckets` (Prometheus's default
    /// buckets if empty).
    pub fn histogram(&self, name: &str, buckets: &[f64]) -> Result<Histogram, String> {
        let opts = |full: &str| {
            let o = HistogramOpts::new(full, "A user histogram.");
            if buckets.is_empty() {
                o
            } else {
                o.buckets(buckets.to_vec())
            }
        };
        let f = self.series(name, "histogram", |full| {
            HistogramVec::new(opts(full), &LABELS)
                .map(Family::Histogram)
                .map_err(|e| e.to_string())
        })?;
        Ok(Histogram {
            inner: match f {
                Some(Family::Histogram(v)) => v.with_label_values(&self.label_values()),
                _ => prometheus::Histogram::with_opts(opts("unexported"))
                    .map_err(|e| e.to_string())?,
            },
        })
    }

    /// A meter called `name`: events counted (`weir_user_<name>_total`) and their rate per
    /// second over the last minute (`weir_user_<name>_rate`), as Flink's `MeterView`.
    pub fn meter(&self, name: &str) -> Result<Meter, String> {
        Ok(Meter {
            count: self.counter(&format!("{name}_total"))?,
            rate: self.gauge(&format!("{name}_rate"))?,
            window: Arc::new(Mutex::new(RateWindow::new(Instant::now()))),
        })
    }

    /// Removes the series registered through this group and every group made from it (at
    /// the end of a task).
    pub fn close(&self) {
        let registered =
            std::mem::take(&mut *self.registered.lock().unwrap_or_else(|p| p.into_inner()));
        for (family, labels) in registered {
            let values: Vec<&str> = labels.iter().map(String::as_str).collect();
            family.remove(&values);
        }
    }
}

/// A count that only goes up.
#[derive(Clone, Debug)]
pub struct Counter {
    inner: prometheus::IntCounter,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inner.inc();
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.inner.inc_by(n);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.inner.get()
    }
}

/// A value the function sets.
#[derive(Clone, Debug)]
pub struct Gauge {
    inner: prometheus::IntGauge,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.inner.set(v);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.inner.get()
    }
}

/// A distribution of observed values.
#[derive(Clone, Debug)]
pub struct Histogram {
    inner: prometheus::Histogram,
}

impl Histogram {
    /// Observes `v`.
    #[inline]
    pub fn observe(&self, v: f64) {
        self.inner.observe(v);
    }

    /// Values observed so far.
    pub fn count(&self) -> u64 {
        self.inner.get_sample_count()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        self.inner.get_sample_sum()
    }
}

/// Events per second over the last [`RATE_SECONDS`] seconds, in one-second buckets.
const RATE_SECONDS: usize = 60;

struct RateWindow {
    start: Instant,
    /// Events per second, by second since `start` modulo the window.
    buckets: [u64; RATE_SECONDS],
    /// The second the newest bucket is for.
    second: u64,
}

impl RateWindow {
    fn new(start: Instant) -> Self {
        RateWindow {
            start,
            buckets: [0; RATE_SECONDS],
            second: 0,
        }
    }

    /// Moves the window to `now`, clearing the seconds that passed without events.
    fn advance(&mut self, now: Instant) {
        let second = now.duration_since(self.start).as_secs();
        let passed = second.saturating_sub(self.second).min(RATE_SECONDS as u64);
        for s in 1..=passed {
            self.buckets[((self.second + s) % RATE_SECONDS as u64) as usize] = 0;
        }
        self.second = self.second.max(second);
    }

    fn add(&mut self, now: Instant, n: u64) {
        self.advance(now);
        self.buckets[(self.second % RATE_SECONDS as u64) as usize] += n;
    }

    /// Events per second over the window (the seconds since the start, while the window is
    /// not full yet).
    fn rate(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let span = (now.duration_since(self.start).as_secs_f64()).clamp(1.0, RATE_SECONDS as f64);
        self.buckets.iter().sum::<u64>() as f64 / span
    }
}

/// Events and their rate (Flink's `Meter`). Clones share the count and the rate.
#[derive(Clone)]
pub struct Meter {
    count: Counter,
    rate: Gauge,
    /// Only the task thread marks events: the lock is never contended.
    window: Arc<Mutex<RateWindow>>,
}

impl Meter {
    /// One event.
    #[inline]
    pub fn mark_event(&self) {
        self.mark_events(1);
    }

    /// `n` events.
    pub fn mark_events(&self, n: u64) {
        let now = Instant::now();
        self.count.inc_by(n);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.add(now, n);
        self.rate.set(w.rate(now).round() as i64);
    }

    /// Events so far.
    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// Events per second over the last minute.
    pub fn rate(&self) -> f64 {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rate(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn series_are_labelled_exported_and_removed_with_the_task() {
        let registry = Registry::new();
        let task = MetricGroup::for_task(Some(UserMetrics::new(registry.clone())), "j1", "job");
        let op = task.for_operator("Map", 1);
        let c = op.counter("parsed").unwrap();
        c.inc_by(3);
        op.gauge("lag").unwrap().set(-7);
        op.histogram("size", &[1.0, 10.0]).unwrap().observe(5.0);
        let text = render(&registry);
        assert!(
            text.contains(
                r#"weir_user_parsed{job_id="j1",job_name="job",operator_name="Map",subtask="1"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains("weir_user_lag{") && text.contains("} -7"),
            "{text}"
        );
        assert!(text.contains("weir_user_size_bucket{"), "{text}");
        // Another subtask shares the family; a kind clash and a bad name are errors.
        task.for_operator("Map", 2).counter("parsed").unwrap().inc();
        assert!(op.gauge("parsed").unwrap_err().contains("counter"));
        assert!(op.counter("bad name").is_err());
        task.close();
        assert!(!render(&registry).contains("weir_user_parsed{"));
    }

    fn render(r: &Registry) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&r.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn metrics_count_without_a_registry_and_meters_rate_over_a_minute() {
        let g = MetricGroup::default();
        let c = g.counter("x").unwrap();
        c.inc();
        assert_eq!(c.get(), 1);
        let start = Instant::now();
        let mut w = RateWindow::new(start);
        for s in 0..10 {
            w.add(start + Duration::from_secs(s), 30);
        }
        assert!((w.rate(start + Duration::from_secs(10)) - 30.0).abs() < 1e-9);
        // A minute and more later the old events have left the window.
        assert_eq!(w.rate(start + Duration::from_secs(200)), 0.0);
    }
}
