//! Row kinds: how an updating SQL stream says what each row does to the result (Flink's
//! `RowKind`). A batch of an updating stream carries them in a last column named
//! [`ROW_KIND`] (Int8, Flink's byte values); a batch without it is all insertions.

use arrow_array::cast::AsArray;
use arrow_array::types::Int8Type;
use arrow_array::{Int8Array, RecordBatch};

/// The name of the row-kind column of an updating stream's batches.
pub const ROW_KIND: &str = "$row_kind";

/// What a row of a changelog does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old version of an updated row is withdrawn.
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a row is withdrawn.
    Delete = 3,
}

impl RowKind {
    /// The kind of byte `b` (Flink's values); unknown bytes are insertions.
    pub fn from_byte(b: i8) -> RowKind {
        match b {
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => RowKind::Insert,
        }
    }

    /// `+I`, `-U`, `+U` or `-D`, as Flink prints it.
    pub fn short(&self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// True for kinds that add a row (`+I`, `+U`).
    pub fn adds(&self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// The row kinds of `batch`, if it has a row-kind column (none: all insertions).
pub fn kinds(batch: &RecordBatch) -> Option<Int8Array> {
    let i = batch.schema().index_of(ROW_KIND).ok()?;
    batch.column(i).as_primitive_opt::<Int8Type>().cloned()
}

/// The kind of row `row` given the batch's [`kinds`].
pub fn kind_at(kinds: Option<&Int8Array>, row: usize) -> RowKind {
    kinds.map_or(RowKind::Insert, |k| RowKind::from_byte(k.value(row)))
}
