//! A SELECT's result while its job runs, for an interactive client (Flink's SQL client in
//! its `table` result mode): the changelog is applied to a materialised table as batches
//! arrive, and the client redraws it, until the job ends or the user cancels it (an
//! unbounded source never ends).
//!
//! ```no_run
//! let mut session = weir_sql::client::Session::new(".", 1);
//! let mut live = session.start_select("SELECT 1 AS one").unwrap();
//! while !live.has_ended().unwrap() {
//!     if live.refresh().unwrap() {
//!         println!("{}", live.render(20));
//!     }
//!     std::thread::sleep(std::time::Duration::from_millis(200));
//! }
//! live.refresh().unwrap();
//! live.finish().unwrap();
//! ```

use crate::changelog::{kind_at, kinds};
use crate::error::{Result, SqlError};
use crate::format;
use crate::job::StartedQuery;
use crate::types::FlinkType;
use arrow_array::RecordBatch;

/// A running SELECT and its result so far.
pub struct LiveQuery {
    started: StartedQuery,
    columns: Vec<(String, FlinkType)>,
    /// The result's rows in arrival order, as their printed cells.
    rows: Vec<Vec<String>>,
    /// Changes applied so far.
    changes: u64,
    cancelled: bool,
}

impl LiveQuery {
    pub(crate) fn new(started: StartedQuery, columns: Vec<(String, FlinkType)>) -> Self {
        LiveQuery {
            started,
            columns,
            rows: Vec::new(),
            changes: 0,
            cancelled: false,
        }
    }

    /// Applies the changes that arrived since the last call; true if there were any.
    /// `+I`/`+U` add a row at the end; `-U`/`-D` take the first equal row out (where an
    /// update's `+U` follows at once, so an updated row moves to the end, as in Flink's
    /// client).
    pub fn refresh(&mut self) -> Result<bool> {
        let batches = self.started.batches.take();
        for batch in &batches {
            self.apply(&batch.0)?;
        }
        Ok(!batches.is_empty())
    }

    fn apply(&mut self, batch: &RecordBatch) -> Result<()> {
        let row_kinds = kinds(batch);
        for r in 0..batch.num_rows() {
            let cells: Vec<String> = self
                .columns
                .iter()
                .enumerate()
                .map(|(c, (_, t))| format::cell(batch.column(c), t, r))
                .collect();
            let kind = kind_at(row_kinds.as_ref(), r);
            if kind.adds() {
                self.rows.push(cells);
            } else {
                let at = self
                    .rows
                    .iter()
                    .position(|row| *row == cells)
                    .ok_or_else(|| {
                        SqlError::Invalid(format!(
                            "the result's changelog withdraws a row it does not hold ({} {})",
                            kind.short(),
                            cells.join(",")
                        ))
                    })?;
                self.rows.remove(at);
            }
            self.changes += 1;
        }
        Ok(())
    }

    /// The rows of the result so far, as printed cells.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// True once the job has ended: finished, failed or cancelled.
    pub fn has_ended(&self) -> Result<bool> {
        Ok(self.started.client.status()?.is_terminal())
    }

    /// Asks the job to stop (the result so far stays).
    pub fn cancel(&mut self) -> Result<()> {
        self.cancelled = true;
        Ok(self.started.client.cancel()?)
    }

    /// Waits for the job to end and takes in its last changes. A failed job is an error;
    /// one stopped by [`Self::cancel`] is not.
    pub fn finish(&mut self) -> Result<()> {
        let ended = self.started.client.wait();
        self.refresh()?;
        match ended {
            Err(_) if self.cancelled => Ok(()),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    /// The result as a table of at most `max_rows` rows (the last ones), with lines
    /// saying how many rows and changes there are.
    pub fn render(&self, max_rows: usize) -> String {
        let header: Vec<String> = self.columns.iter().map(|(n, _)| n.clone()).collect();
        let skip = self.rows.len().saturating_sub(max_rows);
        let mut text = crate::client::tableau(&header, &self.rows[skip..]);
        if skip > 0 {
            text.push_str(&format!("\n({skip} earlier rows not shown)"));
        }
        text.push_str(&format!("\n{} changes", self.changes));
        text
    }
}
