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
