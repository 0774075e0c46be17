//! Watermarks of a table declared with `WATERMARK FOR ts AS ts - INTERVAL ...`, generated
//! where its rows are read.

use arrow_array::{ArrayRef, Int64Array};
use std::sync::Arc;
use weir_runtime::Watermark;

/// The bounded-out-of-orderness watermark of one source reader: the largest rowtime read
/// so far minus the declared delay. Flink's watermark assigner emits a watermark after
/// every row that advances it, and whether a row is late depends on the watermark just
/// before it; a reader emits one per batch instead, and the per-row column
/// ([`RowWatermarks::before_each`]) keeps the per-row answer for the operators that drop
/// late rows.
#[derive(Clone, Debug)]
pub struct RowWatermarks {
    delay_ms: i64,
    max_rowtime: i64,
    emitted: i64,
}

impl RowWatermarks {
    /// A generator for a watermark `delay_ms` behind the largest rowtime. A restored
    /// reader starts a new one, without a watermark (as Flink's generators restart).
    pub fn new(delay_ms: i64) -> Self {
        RowWatermarks {
            delay_ms,
            max_rowtime: i64::MIN,
            emitted: i64::MIN,
        }
    }

    /// The watermark in force now (`i64::MIN` before the first row).
    pub fn current(&self) -> i64 {
        if self.max_rowtime == i64::MIN {
            i64::MIN
        } else {
            self.max_rowtime.saturating_sub(self.delay_ms)
        }
    }

    /// Returns the watermark in force before a row at `rowtime_ms`, then takes the row in.
    #[inline]
    pub fn observe(&mut self, rowtime_ms: i64) -> i64 {
        let before = self.current();
        self.max_rowtime = self.max_rowtime.max(rowtime_ms);
        before
    }

    /// The per-row watermark column of a batch whose rowtimes (milliseconds) are
    /// `rowtimes`, taking them in.
    pub fn before_each(&mut self, rowtimes: impl IntoIterator<Item = i64>) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rowtimes.into_iter().map(|t| self.observe(t)),
        ))
    }

    /// The watermark to emit after a batch, if it moved since the last one emitted.
    pub fn advance(&mut self) -> Option<Watermark> {
        let now = self.current();
        (now > self.emitted).then(|| {
            self.emitted = now;
            Watermark(now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn each_row_sees_the_watermark_before_it() {
        let mut w = RowWatermarks::new(5);
        let col = w.before_each([10, 20, 15, 30]);
        let col = col.as_primitive::<Int64Type>();
        assert_eq!(col.values().as_ref(), &[i64::MIN, 5, 15, 15]);
        assert_eq!(w.advance(), Some(Watermark(25)));
        assert_eq!(w.advance(), None, "emitted once until it moves");
        w.observe(29);
        assert_eq!(w.advance(), None, "an older row does not move it");
    }
}
