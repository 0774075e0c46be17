//! Evictors: remove elements from a window before or after its function runs (Flink's
//! `Evictor`). A window with an evictor keeps all its elements.

/// An element with its timestamp, as evictors see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimestampedValue<T> {
    /// The element.
    pub value: T,
    /// Its event timestamp (`i64::MIN` if it has none).
    pub timestamp: i64,
}

/// Removes elements from a window's contents.
pub trait Evictor<T, W>: Send + Sync {
    /// Before the window function runs.
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, window: &W);
    /// After the window function ran.
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, window: &W);
    /// A fresh copy for another subtask.
    fn box_clone(&self) -> Box<dyn Evictor<T, W>>;
}

/// Keeps at most `max_count` elements, dropping the oldest (Flink's `CountEvictor`).
#[derive(Clone, Copy, Debug)]
pub struct CountEvictor {
    max_count: usize,
    after: bool,
}

impl CountEvictor {
    /// Evicts before the function runs.
    pub fn of(max_count: usize) -> Self {
        CountEvictor {
            max_count,
            after: false,
        }
    }
    /// Evicts after the function ran.
    pub fn of_after(max_count: usize) -> Self {
        CountEvictor {
            max_count,
            after: true,
        }
    }
    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        if elements.len() > self.max_count {
            let drop = elements.len() - self.max_count;
            elements.drain(..drop);
        }
    }
}

impl<T: 'static, W: 'static> Evictor<T, W> for CountEvictor {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if !self.after {
            self.evict(elements)
        }
    }
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if self.after {
            self.evict(elements)
        }
    }
    fn box_clone(&self) -> Box<dyn Evictor<T, W>> {
        Box::new(*self)
    }
}

/// Keeps the elements newer than `size` before the newest one: those with timestamp
/// `<= max timestamp - size` go (Flink's `TimeEvictor`).
#[derive(Clone, Copy, Debug)]
pub struct TimeEvictor {
    size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Evicts before the function runs.
    pub fn of(size: std::time::Duration) -> Self {
        TimeEvictor {
            size: size.as_millis() as i64,
            after: false,
        }
    }
    /// Evicts after the function ran.
    pub fn of_after(size: std::time::Duration) -> Self {
        TimeEvictor {
            size: size.as_millis() as i64,
            after: true,
        }
    }
    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        if !elements.iter().any(|e| e.timestamp != i64::MIN) {
            return;
        }
        let max = elements
            .iter()
            .map(|e| e.timestamp)
            .max()
            .unwrap_or(i64::MIN);
        let cutoff = max.saturating_sub(self.size);
        elements.retain(|e| e.timestamp > cutoff);
    }
}

impl<T: 'static, W: 'static> Evictor<T, W> for TimeEvictor {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if !self.after {
            self.evict(elements)
        }
    }
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if self.after {
            self.evict(elements)
        }
    }
    fn box_clone(&self) -> Box<dyn Evictor<T, W>> {
        Box::new(*self)
    }
}

/// Removes every element whose delta to the window's last element is at least `threshold`
/// (Flink's `DeltaEvictor`), before the function runs or, with [`DeltaEvictor::of_after`],
/// after.
pub struct DeltaEvictor<T> {
    threshold: f64,
    delta: super::triggers::DeltaFunction<T>,
    after: bool,
}

impl<T> Clone for DeltaEvictor<T> {
    fn clone(&self) -> Self {
        DeltaEvictor {
            threshold: self.threshold,
            delta: self.delta.clone(),
            after: self.after,
        }
    }
}

impl<T> DeltaEvictor<T> {
    /// Evicts before the function runs the elements `e` with
    /// `delta(e, last) >= threshold`.
    pub fn of(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor {
            threshold,
            delta: std::sync::Arc::new(delta),
            after: false,
        }
    }

    /// The same, after the function ran.
    pub fn of_after(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor {
            after: true,
            ..Self::of(threshold, delta)
        }
    }

    fn evict(&self, elements: &mut Vec<TimestampedValue<T>>) {
        let Some(last) = elements.last() else {
            return;
        };
        let keep: Vec<bool> = elements
            .iter()
            .map(|e| (self.delta)(&e.value, &last.value) < self.threshold)
            .collect();
        let mut keep = keep.into_iter();
        elements.retain(|_| keep.next().unwrap_or(true));
    }
}

impl<T: 'static, W: 'static> Evictor<T, W> for DeltaEvictor<T> {
    fn evict_before(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if !self.after {
            self.evict(elements)
        }
    }
    fn evict_after(&mut self, elements: &mut Vec<TimestampedValue<T>>, _: &W) {
        if self.after {
            self.evict(elements)
        }
    }
    fn box_clone(&self) -> Box<dyn Evictor<T, W>> {
        Box::new(self.clone())
    }
}
